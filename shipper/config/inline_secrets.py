"""Secrets written inline in the config file: masked everywhere, and a warning if others can read the file.

Keys ending in `_env` or `_file` point at secrets and are fine. A value under a key that names a
credential (authorization, token, secret, password, api key, cookie) is a secret written inline,
typically an `Authorization` entry in a webhook's `headers`.
"""

from __future__ import annotations

import re
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import structlog

from shipper.secrets import remember

log = structlog.get_logger("shipper.config.settings")

_CREDENTIAL_KEY = re.compile(r"(authorization|token|secret|passw(or)?d|api[-_]?key|cookie)", re.I)


def inline_secrets(data: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """(key path, value) of every string that sits under a credential-named key."""
    if isinstance(data, dict):
        for key, value in data.items():
            where = f"{path}.{key}" if path else str(key)
            named = _CREDENTIAL_KEY.search(str(key)) and not str(key).endswith(("_env", "_file"))
            if named and isinstance(value, str) and value:
                yield where, value
            else:
                yield from inline_secrets(value, where)
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from inline_secrets(value, f"{path}[{index}]")


def guard_inline_secrets(data: dict[str, Any], path: Path) -> list[str]:
    """Remember inline secrets for masking; warn when the file is readable by group or others."""
    found = list(inline_secrets(data))
    for _, value in found:
        remember(value)
    keys = [key for key, _ in found]
    try:
        mode = path.stat().st_mode
    except OSError:
        return keys
    if keys and mode & (stat.S_IRGRP | stat.S_IROTH):
        log.warning(
            "config_secret_readable_by_others",
            path=str(path),
            keys=keys,
            mode=oct(stat.S_IMODE(mode)),
            fix="chmod 600 the file, or move the secret to an environment variable or *_file key",
        )
    return keys
