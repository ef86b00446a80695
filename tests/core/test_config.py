"""Config loading: strict, with errors that name the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipper.config.settings import AuditLogSettings, load_config, parse_config
from shipper.errors import ConfigError

MINIMAL = """
[source]
base_url = "http://127.0.0.1:1/v1"
lookback = "10m"
poll_interval = "90s"

[[sinks]]
type = "file"
name = "archive"
path = "out/audit.jsonl"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "shipper.toml"
    path.write_text(text)
    return path


def test_minimal_config_with_defaults(tmp_path: Path) -> None:
    """The documented keys load, durations become seconds, defaults fill the rest."""
    config = load_config(write(tmp_path, MINIMAL))
    source = config.all_sources[0]
    assert isinstance(source, AuditLogSettings)
    assert source.lookback == 600 and source.poll_interval == 90
    assert source.api_key.env == "OPENAI_ADMIN_KEY"
    assert source.include_tenant_events is True
    assert config.sinks[0].name == "archive" and config.sinks[0].format == "raw"
    assert config.state.dir == Path("./state")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (MINIMAL.replace('lookback = "10m"', 'lookback = "10 minutes"'), "source.lookback"),
        (MINIMAL + "\nsurprise = 1\n", "surprise: unknown key"),
        (
            MINIMAL.replace('path = "out/audit.jsonl"', 'path = "x"\ncolour = "red"'),
            "sinks[0].colour: unknown key",
        ),
        (
            MINIMAL.replace('type = "file"', 'type = "carrier_pigeon"'),
            "sinks[0].type: unknown sink type 'carrier_pigeon'",
        ),
        (MINIMAL.replace('name = "archive"', 'name = "bad name!"'), "sinks[0].name"),
        (
            MINIMAL + '\n[[sinks]]\ntype = "file"\nname = "archive"\npath = "y"\n',
            "sink names must be unique: archive",
        ),
        (MINIMAL.replace("http://127.0.0.1:1/v1", "http://audit.example.com/v1"), "plain http"),
        (MINIMAL.replace("[source]", '[source]\nstart_at = "2026-01-01T00:00:00"'), "time zone"),
        (
            MINIMAL.replace('path = "out/audit.jsonl"', 'path = "x"\nformat = "xml"'),
            "sinks[0].format",
        ),
        ("[source\n", "not valid TOML"),
        (MINIMAL.split("[[sinks]]", maxsplit=1)[0], "at least one [[sinks]]"),
        (
            MINIMAL.replace('path = "out/audit.jsonl"', 'path = "x"\nsources = ["nope"]'),
            "sinks[0].sources: 'nope' is not a configured source (the sources are named 'default')",
        ),
    ],
    ids=[
        "duration",
        "unknown-top",
        "unknown-sink-key",
        "sink-type",
        "sink-name",
        "dup-names",
        "plain-http",
        "naive-start",
        "format",
        "toml",
        "no-sinks",
        "unknown-source",
    ],
)
def test_bad_config_names_file_and_key(tmp_path: Path, text: str, expected: str) -> None:
    """Every mistake is a ConfigError whose message names the file and what is wrong."""
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(path) in str(info.value)
    assert expected in str(info.value)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    """A config path that does not exist is reported, not a traceback."""
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "nope.toml")


def test_tenant_scoped_event_types_without_the_tenant_pass_are_a_config_error(
    tmp_path: Path,
) -> None:
    """Only the tenant_only pass returns tenant-scoped types: asking for them with
    include_tenant_events = false would deliver nothing of them, silently."""
    text = MINIMAL.replace(
        'poll_interval = "90s"',
        'poll_interval = "90s"\ninclude_tenant_events = false\n'
        'event_types = ["project.created", "tenant.user.added"]',
    )
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text))
    assert "source.event_types" in str(caught.value) or "source:" in str(caught.value)
    assert "tenant.user.added" in str(caught.value)
    assert "include_tenant_events" in str(caught.value)


def test_the_clock_safety_lag_is_a_few_seconds_by_default(tmp_path: Path) -> None:
    """Cycles stop short of now by `clock_safety_lag` (5 s unless set)."""
    assert load_config(write(tmp_path, MINIMAL)).all_sources[0].clock_safety_lag == 5
    text = MINIMAL.replace(
        'poll_interval = "90s"', 'poll_interval = "90s"\nclock_safety_lag = "30s"'
    )
    assert load_config(write(tmp_path, text)).all_sources[0].clock_safety_lag == 30


def _hec(**keys: object) -> dict[str, object]:
    return {"type": "splunk_hec", "name": "hec", "url": "https://splunk.example:8088", **keys}


def _sink_error(raw: dict[str, object]) -> str:
    from shipper.config.settings import sink_plugins

    with pytest.raises(ConfigError) as caught:
        parse_config({"source": {}, "sinks": [raw]}, "x.toml", sink_plugins())
    return str(caught.value)


def test_a_secret_accepts_the_nested_form_and_the_flat_keys_alike() -> None:
    """`token = { env = "V" }` and `token_env = "V"` give the same SecretRef."""
    from shipper.config.settings import sink_plugins

    plugins = sink_plugins()
    nested = parse_config({"source": {}, "sinks": [_hec(token={"env": "V"})]}, "x", plugins)
    flat = parse_config({"source": {}, "sinks": [_hec(token_env="V")]}, "x", plugins)
    refs = [config.sinks[0].token for config in (nested, flat)]  # type: ignore[attr-defined]
    assert [(ref.env, ref.file) for ref in refs] == [("V", None)] * 2


def test_a_secret_given_both_flat_and_nested_is_refused() -> None:
    """Setting token_env and token = {...} together is a config error naming both."""
    assert "give token or token_env/token_file, not both" in _sink_error(
        _hec(token_env="A", token={"file": "/b"})
    )


def test_a_bad_flat_secret_key_is_named_as_written() -> None:
    """A wrong type under token_env is reported at sinks[0].token_env, not token.env."""
    assert "sinks[0].token_env:" in _sink_error(_hec(token_env=5))


def test_a_required_secret_left_out_names_the_keys_to_set() -> None:
    """A HEC sink without a token says to set token_env or token_file."""
    assert "sinks[0].token: Value error, set token_env or token_file" in _sink_error(_hec())
