"""No planted secret ever appears in a log line, an error, `status`/`check`/`dlq` output, or a file we write."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from structlog.testing import capture_logs

from shipper.config.settings import load_config
from shipper.emulator import Emulator, generate_events
from shipper.testing.receivers.base import Receiver, Recorded, Reply
from shipper.testing.receivers.elasticsearch import FakeElasticsearch
from shipper.testing.receivers.splunk_hec import FakeHec, Token
from shipper.testing.receivers.webhook import FakeWebhook, echo
from tests.conftest import T0, config_text, write_config

ADMIN_KEY = "sk-admin-PLANTED-ADMIN-7f3a9c2e1d"
WRONG_ADMIN_KEY = "sk-admin-PLANTED-WRONG-0b1c2d3e4f"
HEC_TOKEN = "PLANTED-HEC-TOKEN-5d6e7f80"
WRONG_HEC_TOKEN = "PLANTED-WRONG-HEC-91a2b3c4"
ES_KEY = "PLANTED-ES-API-KEY-a1b2c3d4e5"
BEARER = "PLANTED-BEARER-c0ffee1234"
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"PLANTED-WEBHOOK-SIGNING-KEY-32b!").decode()
INLINE = "PLANTED-INLINE-HEADER-77aa88bb"
SECRETS = [
    ADMIN_KEY,
    WRONG_ADMIN_KEY,
    HEC_TOKEN,
    WRONG_HEC_TOKEN,
    ES_KEY,
    BEARER,
    WEBHOOK_SECRET,
    INLINE,
]


def shipper(*args: str, key: str = ADMIN_KEY, env: dict[str, str] | None = None) -> str:
    env = {
        **os.environ,
        "SHIPPER_TEST_ADMIN_KEY": key,
        "T_ES": ES_KEY,
        "T_BEARER": BEARER,
        **(env or {}),
    }
    result = subprocess.run(
        [sys.executable, "-m", "shipper.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    return result.stdout + result.stderr


def leaks(text: str) -> list[str]:
    return [s for s in SECRETS if s in text or s[6:] in text]


def test_no_secret_in_outputs_errors_state_or_files(tmp_path: Path) -> None:
    """Runs that succeed, dead-letter, hit refused tokens and a refused admin key print and write no secret."""
    (tmp_path / "hec-token").write_text(WRONG_HEC_TOKEN)
    (tmp_path / "webhook-secret").write_text(WEBHOOK_SECRET)
    events = generate_events(120, start=T0 - 3600, end=T0, seed=9)
    hec = FakeHec({HEC_TOKEN: Token()})
    hook = FakeWebhook(secret=WEBHOOK_SECRET, bearer=BEARER)
    with (
        Emulator(api_key=ADMIN_KEY, events=events) as emu,
        hec.receiver,
        hook.receiver,
        FakeElasticsearch(api_key=ES_KEY) as es,
    ):
        es.reject(events[3]["id"])
        sinks = (
            f'[[sinks]]\ntype = "webhook"\nname = "hook"\nurl = "{hook.receiver.url}"\n'
            f'bearer_token_env = "T_BEARER"\nsecret_file = "{tmp_path}/webhook-secret"\n'
            f'headers = {{ "X-Api-Key" = "{INLINE}" }}\n\n'
            f'[[sinks]]\ntype = "splunk_hec"\nname = "splunk"\nurl = "{hec.receiver.url}"\n'
            f'token_file = "{tmp_path}/hec-token"\nretry_max_attempts = 1\n\n'
            f'[[sinks]]\ntype = "elasticsearch"\nname = "es"\nurl = "{es.url}"\napi_key_env = "T_ES"\n'
        )
        config = write_config(tmp_path, config_text(emu.base_url, tmp_path, sinks=sinks))
        config.chmod(0o644)
        out = shipper("run", "--once", "--config", str(config))
        assert "sink 'splunk'" in out  # the refused token path really ran
        assert len(hook.ids()) == len(events) and len(es.docs()) == len(events) - 1
        out += shipper("status", "--config", str(config))
        out += shipper("status", "--json", "--config", str(config))
        out += shipper("check", "--config", str(config))
        out += shipper("dlq", "list", "--config", str(config), "--sink", "es")
        out += shipper("run", "--once", "--config", str(config), key=WRONG_ADMIN_KEY)
        assert "HTTP 401" in out and "config_secret_readable_by_others" in out
    assert leaks(out) == []
    for path in tmp_path.rglob("*"):
        if path.is_file() and path.name not in {"hec-token", "webhook-secret", "shipper.toml"}:
            assert leaks(path.read_text(errors="replace")) == [], path
    for path in (tmp_path / "state").rglob("*"):
        if path.is_file():
            assert path.stat().st_mode & 0o077 == 0, f"{path} is readable by others"


def test_inline_secret_warns_only_when_others_can_read(tmp_path: Path) -> None:
    """A credential written inline is flagged when the config is group/world-readable, not when it is 0600."""
    sinks = f'[[sinks]]\ntype = "webhook"\nname = "hook"\nurl = "http://127.0.0.1:9/x"\nheaders = {{ "X-Api-Key" = "{INLINE}" }}\n'
    config = write_config(tmp_path, config_text("http://127.0.0.1:9/v1", tmp_path, sinks=sinks))
    config.chmod(0o644)
    with capture_logs() as logs:
        load_config(config)
    warning = [entry for entry in logs if entry["event"] == "config_secret_readable_by_others"]
    assert warning and warning[0]["keys"] == ["sinks[0].headers.X-Api-Key"]
    config.chmod(0o600)
    with capture_logs() as logs:
        load_config(config)
    assert not [entry for entry in logs if entry["event"] == "config_secret_readable_by_others"]


BASIC_USER, BASIC_PASSWORD = "shipper-user", "PLANTED-BASIC-PASSWORD-3e4f"
ES_ID_KEY = "PLANTED-ES-ID:PLANTED-ES-KEY-9a8b7c"
PROXY_TOKEN = "PLANTED-PROXY-TOKEN-5566aa"  # a credential we never read, echoed by a proxy


def _echo(status: int) -> Callable[[Recorded], Reply]:
    """A receiver that answers `status` with everything it was sent, headers first."""

    def answer(request: Recorded) -> Reply:
        upstream = f"proxy: Authorization: Bearer {PROXY_TOKEN}\n".encode()
        return Reply(status, upstream + echo(request))

    return answer


def test_credentials_echoed_by_receivers_reach_no_dead_letter_log_or_status(
    tmp_path: Path,
) -> None:
    """Basic (and its base64), bearer, HEC and ES ApiKey values echoed back are masked everywhere."""
    basic_b64 = base64.b64encode(f"{BASIC_USER}:{BASIC_PASSWORD}".encode()).decode()
    es_b64 = base64.b64encode(ES_ID_KEY.encode()).decode()
    planted = [BASIC_PASSWORD, basic_b64, BEARER, HEC_TOKEN, ES_ID_KEY, es_b64, PROXY_TOKEN]
    (tmp_path / "hec-token").write_text(HEC_TOKEN)
    events = generate_events(30, start=T0 - 3600, end=T0, seed=14)
    basic = FakeWebhook(basic=(BASIC_USER, BASIC_PASSWORD))
    bearer = FakeWebhook(bearer=BEARER)
    for hook in (basic, bearer):
        hook.echo = True
        hook.reject_ids = {events[4]["id"]}
    basic.receiver.script(_echo(500))  # one retried 500 first: its reason is logged
    with (
        Emulator(api_key=ADMIN_KEY, events=events) as emu,
        basic.receiver,
        bearer.receiver,
        Receiver(_echo(403)) as hec,
        Receiver(_echo(503)) as es,
    ):
        sinks = (
            f'[[sinks]]\ntype = "webhook"\nname = "basic"\nurl = "{basic.receiver.url}"\n'
            f'username = "{BASIC_USER}"\npassword_env = "T_PW"\nretry_max_attempts = 2\n\n'
            f'[[sinks]]\ntype = "webhook"\nname = "bearer"\nurl = "{bearer.receiver.url}"\n'
            f'bearer_token_env = "T_BEARER"\n\n'
            f'[[sinks]]\ntype = "splunk_hec"\nname = "splunk"\nurl = "{hec.url}"\n'
            f'token_file = "{tmp_path}/hec-token"\nretry_max_attempts = 1\n\n'
            f'[[sinks]]\ntype = "elasticsearch"\nname = "es"\nurl = "{es.url}"\n'
            f'api_key_env = "T_ES"\nretry_max_attempts = 2\nretry_max_time = "3s"\n'
        )
        config = write_config(tmp_path, config_text(emu.base_url, tmp_path, sinks=sinks))
        env = {"T_PW": BASIC_PASSWORD, "T_ES": ES_ID_KEY}
        out = shipper("run", "--once", "--config", str(config), env=env)
        assert "retrying" in out and "sink 'splunk'" in out and "sink 'es'" in out
        assert len(basic.ids()) == len(bearer.ids()) == len(events) - 1
        out += shipper("status", "--config", str(config), env=env)
        out += shipper("status", "--json", "--config", str(config), env=env)
        for sink in ("basic", "bearer"):
            out += shipper("dlq", "list", "--config", str(config), "--sink", sink, env=env)
    letters = b"".join(p.read_bytes() for p in (tmp_path / "state" / "dead-letter").glob("*"))
    found = out + letters.decode()
    assert [s for s in planted if s in found] == []
    assert letters.count(b"\n") == 2  # one refused event per webhook, its reason the echo
    assert b"authorization: Basic ***" in letters and b"authorization: Bearer ***" in letters
