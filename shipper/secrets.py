"""Secrets: read from an environment variable or a file, never from config text or argv.

Every secret read through here is remembered so the log processor and error reporting can
replace it with a mask wherever it would otherwise appear.
"""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path

from pydantic import SecretStr

from shipper.errors import ConfigError

_known: set[str] = set()
_lock = threading.Lock()
# Shapes of credentials we redact even when we never read them (a key pasted into a URL, say).
_PATTERNS = re.compile(r"\b(sk-[A-Za-z0-9_\-]{8,}|whsec_[A-Za-z0-9+/=]{8,})")
# An Authorization value echoed back (a receiver's error body, a proxy's page): keep the scheme.
_CREDENTIALS = re.compile(r"\b(Basic|Bearer|Splunk|ApiKey)(\s+)[A-Za-z0-9._~+/:\\\-]{8,}=*", re.I)
MASK = "***"


class SecretUnavailableError(ConfigError):
    """The variable is unset or the file unreadable; the message says which (a config error)."""


def remember(secret: str) -> None:
    if len(secret) >= 4:
        with _lock:
            _known.add(secret)


def redact(text: str) -> str:
    """`text` with every known secret, and anything shaped like an OpenAI or webhook key, masked."""
    with _lock:
        known = sorted(_known, key=len, reverse=True)
    for secret in known:
        if secret in text:
            text = text.replace(secret, MASK)
    return _CREDENTIALS.sub(rf"\1\2{MASK}", _PATTERNS.sub(MASK, text))


def read_secret(*, env: str | None, file: Path | None, what: str) -> SecretStr:
    """The secret from `file` when given, else from the environment variable `env`."""
    if file is not None:
        try:
            value = file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise SecretUnavailableError(
                f"cannot read {what} from file {file}: {exc.strerror}"
            ) from None
        if not value:
            raise SecretUnavailableError(f"{what} file {file} is empty")
    elif env:
        value = os.environ.get(env, "").strip()
        if not value:
            raise SecretUnavailableError(f"{what}: environment variable {env} is not set or empty")
    else:
        raise SecretUnavailableError(
            f"{what}: neither an environment variable nor a file is configured"
        )
    remember(value)
    return SecretStr(value)
