"""A secret that cannot be read is a configuration error (exit 2) for the source and every sink
alike, at start-up, naming the table, the key and the variable or file, without a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import KEY, KEY_ENV, config_text, write_config

UNSET = "SHIPPER_TEST_SURELY_UNSET"
DEAD = "http://127.0.0.1:9"  # nothing listens: exit 2 must come before any connection

# (table as the error names it, [[sinks]] body without the secret key, the secret's key stem)
SINKS = {
    "splunk_hec": (
        '[[sinks]] "hec"',
        f'type = "splunk_hec"\nname = "hec"\nurl = "{DEAD}"\n',
        "token",
    ),
    "elasticsearch": (
        '[[sinks]] "es"',
        f'type = "elasticsearch"\nname = "es"\nurl = "{DEAD}"\n',
        "api_key",
    ),
    "elasticsearch_password": (
        '[[sinks]] "es"',
        f'type = "elasticsearch"\nname = "es"\nurl = "{DEAD}"\nusername = "u"\n',
        "password",
    ),
    "webhook_bearer": (
        '[[sinks]] "hook"',
        f'type = "webhook"\nname = "hook"\nurl = "{DEAD}/"\n',
        "bearer_token",
    ),
    "webhook_password": (
        '[[sinks]] "hook"',
        f'type = "webhook"\nname = "hook"\nurl = "{DEAD}/"\nusername = "u"\n',
        "password",
    ),
    "webhook_secret": (
        '[[sinks]] "hook"',
        f'type = "webhook"\nname = "hook"\nurl = "{DEAD}/"\n',
        "secret",
    ),
}


def run_once(config: Path, *, admin_key: bool = True) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in (KEY_ENV, UNSET)}
    if admin_key:
        env[KEY_ENV] = KEY
    return subprocess.run(
        [sys.executable, "-m", "shipper.cli.main", "run", "--once", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def assert_config_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in result.stderr, (needle, result.stderr)


@pytest.mark.parametrize("case", sorted(SINKS))
@pytest.mark.parametrize("form", ["env", "file"])
def test_a_sink_whose_secret_is_missing_exits_2_naming_the_key(
    tmp_path: Path, case: str, form: str
) -> None:
    """An unset variable or a missing file behind any sink secret: exit 2, table, key and where."""
    section, body, stem = SINKS[case]
    missing = UNSET if form == "env" else str(tmp_path / "no-such-secret")
    sinks = f'[[sinks]]\n{body}{stem}_{form} = "{missing}"\n'
    config = write_config(tmp_path, config_text(DEAD + "/v1", tmp_path, sinks=sinks))
    assert_config_error(run_once(config), str(config), section, f"{stem}_{form}", missing)


def test_the_nested_form_is_named_as_written(tmp_path: Path) -> None:
    """`token = { env = "..." }` unset: the error names `token.env`, the form the file uses."""
    sinks = f'[[sinks]]\n{SINKS["splunk_hec"][1]}token = {{ env = "{UNSET}" }}\n'
    config = write_config(tmp_path, config_text(DEAD + "/v1", tmp_path, sinks=sinks))
    assert_config_error(run_once(config), '[[sinks]] "hec": token.env', UNSET)


def test_the_source_key_unset_exits_2_naming_the_key(tmp_path: Path) -> None:
    """No admin key in the environment: exit 2 naming [source], api_key_env and the variable."""
    config = write_config(tmp_path, config_text(DEAD + "/v1", tmp_path))
    assert_config_error(
        run_once(config, admin_key=False), '[source] "default": api_key_env', KEY_ENV
    )


def test_the_source_key_file_missing_exits_2_naming_the_key(tmp_path: Path) -> None:
    """An admin key file that does not exist: exit 2 naming api_key_file and the path."""
    missing = tmp_path / "no-admin-key"
    text = config_text(DEAD + "/v1", tmp_path).replace(
        f'api_key_env = "{KEY_ENV}"', f'api_key_file = "{missing}"'
    )
    config = write_config(tmp_path, text)
    assert_config_error(run_once(config), "api_key_file", str(missing))


def test_an_empty_secret_file_exits_2(tmp_path: Path) -> None:
    """A secret file with nothing in it is as missing as no file."""
    empty = tmp_path / "empty-token"
    empty.write_text("\n")
    sinks = f'[[sinks]]\n{SINKS["splunk_hec"][1]}token_file = "{empty}"\n'
    config = write_config(tmp_path, config_text(DEAD + "/v1", tmp_path, sinks=sinks))
    assert_config_error(run_once(config), "token_file", "is empty")


@pytest.mark.parametrize(("form", "written"), [("env", "hash_key_env"), ("file", "hash_key.file")])
def test_a_missing_privacy_hash_key_exits_2_naming_the_key(
    tmp_path: Path, form: str, written: str
) -> None:
    """The hash key of a sink's privacy rules is read at start-up like any secret: exit 2, key named."""
    missing = UNSET if form == "env" else str(tmp_path / "no-such-key")
    key = f'hash_key_env = "{missing}"' if form == "env" else f'hash_key = {{ file = "{missing}" }}'
    sinks = (
        f'[[sinks]]\ntype = "file"\nname = "siem"\npath = "{tmp_path}/out.jsonl"\n'
        f'privacy = {{ hash = ["actor.session.user.email"], {key} }}\n'
    )
    config = write_config(tmp_path, config_text(DEAD + "/v1", tmp_path, sinks=sinks))
    assert_config_error(
        run_once(config), str(config), f'[[sinks]] "siem": privacy.{written}', missing
    )


def test_a_short_privacy_hash_key_exits_2_without_showing_it(tmp_path: Path) -> None:
    """A hash key under 16 characters is guessable: exit 2 naming the key, the key itself unshown."""
    key_file = tmp_path / "hash-key"
    key_file.write_text("Sh0rtK3y\n")
    sinks = (
        f'[[sinks]]\ntype = "file"\nname = "siem"\npath = "{tmp_path}/out.jsonl"\n'
        f'privacy = {{ hash = ["actor.session.user.email"], hash_key_file = "{key_file}" }}\n'
    )
    config = write_config(tmp_path, config_text(DEAD + "/v1", tmp_path, sinks=sinks))
    result = run_once(config)
    assert_config_error(result, str(config), '[[sinks]] "siem": privacy.hash_key', "16 characters")
    assert "Sh0rtK3y" not in result.stderr + result.stdout
