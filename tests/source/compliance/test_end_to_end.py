"""A compliance source through the real CLI and runtime into the file sink: one pipeline per
event type, every record delivered once, cursors per type in `shipper status`, files every sink
holds not downloaded again, and a type the API refuses failing alone."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import orjson
import pytest

from shipper.cli.main import main
from shipper.config.settings import ComplianceSourceSettings, load_config
from shipper.emulator.compliance import ComplianceEmulator
from shipper.errors import ConfigError
from tests.source.compliance.conftest import KEY, SINCE, START, WORKSPACE, HandmadeFiles

KEY_ENV = "SHIPPER_TEST_COMPLIANCE_KEY"


def write_config(tmp_path: Path, emu: ComplianceEmulator, event_types: list[str]) -> Path:
    names = ", ".join(f'"{t}"' for t in event_types)
    path = tmp_path / "shipper.toml"
    path.write_text(
        f'[[sources]]\ntype = "chatgpt_compliance"\nname = "ws"\nbase_url = "{emu.base_url}"\n'
        f'scope = "workspaces/{emu.workspace_id}"\nevent_types = [{names}]\n'
        f'api_key_env = "{KEY_ENV}"\nstart_at = "2026-07-19T00:00:00Z"\nlookback = "1h"\n'
        'retry_max_attempts = 2\nretry_max_time = "5s"\n\n'
        f'[state]\ndir = "{tmp_path}/state"\n\n[log]\nformat = "json"\n\n'
        '[metrics]\nlisten = ""\n\n'
        f'[[sinks]]\ntype = "file"\nname = "archive"\npath = "{tmp_path}/out.jsonl"\n'
        'format = "raw"\n'
    )
    return path


def delivered(tmp_path: Path) -> list[str]:
    lines = (tmp_path / "out.jsonl").read_bytes().splitlines()
    return [orjson.loads(line)["event_id"] for line in lines if line.strip()]


@pytest.fixture
def compliance_key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(KEY_ENV, KEY)
    return KEY


def test_two_event_types_run_once_deliver_every_record_once_with_a_cursor_each(
    emulator: ComplianceEmulator,
    tmp_path: Path,
    compliance_key: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`run --once` twice: every record of both types lands once, the second run downloads
    nothing, and `status --json` shows each type's cursor at its newest file's second + 1."""
    auth = emulator.add_files("AUTH_LOG", count=30, records_per_file=4, spacing=900)
    audit = emulator.add_files("AUDIT_LOG", count=12, records_per_file=3, spacing=1800)
    config = write_config(tmp_path, emulator, ["AUTH_LOG", "AUDIT_LOG"])
    expected = [r["event_id"] for t in ("AUTH_LOG", "AUDIT_LOG") for r in emulator.records(t)]

    assert main(["run", "--once", "--config", str(config)]) == 0
    assert sorted(delivered(tmp_path)) == sorted(expected)
    downloads = emulator.stats.storage_requests
    assert downloads == len(auth) + len(audit)

    assert main(["run", "--once", "--config", str(config)]) == 0
    assert sorted(delivered(tmp_path)) == sorted(expected)
    assert emulator.stats.storage_requests == downloads  # held by every sink: not read again

    capsys.readouterr()
    assert main(["status", "--config", str(config), "--json"]) == 0
    status = orjson.loads(capsys.readouterr().out)
    cursors = {s["event_type"]: s["sinks"][0]["high_water"] for s in status["sources"]}
    assert cursors == {
        "AUTH_LOG": auth[-1].end_micros // 1_000_000 + 1,
        "AUDIT_LOG": audit[-1].end_micros // 1_000_000 + 1,
    }
    assert [s["source"] for s in status["sources"]] == ["ws.AUTH_LOG", "ws.AUDIT_LOG"]
    assert main(["status", "--config", str(config)]) == 0
    assert "event type AUDIT_LOG" in capsys.readouterr().out


def test_a_file_published_late_within_lookback_is_delivered_next_run(
    emulator: ComplianceEmulator, tmp_path: Path, compliance_key: str
) -> None:
    """A file listed after the cursor passed its end_time (within lookback) is still delivered."""
    emulator.add_files("AUTH_LOG", end_times=[START + timedelta(minutes=m) for m in (10, 30)])
    config = write_config(tmp_path, emulator, ["AUTH_LOG"])
    assert main(["run", "--once", "--config", str(config)]) == 0
    (late,) = emulator.add_files("AUTH_LOG", end_times=[START + timedelta(minutes=20)])
    assert main(["run", "--once", "--config", str(config)]) == 0
    ids = delivered(tmp_path)
    assert len(ids) == len(set(ids)) == len(emulator.records("AUTH_LOG"))
    assert {r["event_id"] for r in emulator.file_records(late)} <= set(ids)


def test_a_refused_event_type_fails_alone(
    emulator: ComplianceEmulator, tmp_path: Path, compliance_key: str
) -> None:
    """The API refusing one type (here an unknown name) fails that type's pipeline; the other
    type is delivered all the same and the run's exit code says something failed."""
    emulator.add_files("AUTH_LOG", count=3)
    config = write_config(tmp_path, emulator, ["AUTH_LOG", "NOT_A_TYPE"])
    assert main(["run", "--once", "--config", str(config)]) != 0
    assert sorted(delivered(tmp_path)) == sorted(
        r["event_id"] for r in emulator.records("AUTH_LOG")
    )


def test_check_probes_each_event_type(
    emulator: ComplianceEmulator,
    tmp_path: Path,
    compliance_key: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`shipper check` answers one verdict per event type."""
    config = write_config(tmp_path, emulator, ["AUTH_LOG", "AUDIT_LOG"])
    assert main(["check", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "source ws.AUTH_LOG" in out and "source ws.AUDIT_LOG" in out


def test_the_default_event_types_leave_content_out(tmp_path: Path) -> None:
    """Without event_types, a workspace exports its four non-content types, an organization
    COSTS; content-bearing types only when named."""
    text = (
        '[[sources]]\ntype = "chatgpt_compliance"\nname = "ws"\n'
        'scope = "workspaces/3f2b8c1d-7a4e-4c55-9e21-6d0b5a9c4e10"\n\n'
        '[[sources]]\ntype = "chatgpt_compliance"\nname = "org"\nscope = "organizations/org-a1"\n\n'
        '[[sources]]\nname = "audit"\n\n'
        f'[[sinks]]\ntype = "file"\nname = "f"\npath = "{tmp_path}/o.jsonl"\n'
    )
    (tmp_path / "c.toml").write_text(text)
    config = load_config(tmp_path / "c.toml")
    assert [s.name for s in config.all_sources] == [
        "ws.AUDIT_LOG",
        "ws.AUTH_LOG",
        "ws.APP_AUTH_LOG",
        "ws.CODEX_SECURITY_LOG",
        "org.COSTS",
        "audit",
    ]
    source = config.all_sources[0]
    assert isinstance(source, ComplianceSourceSettings)
    assert source.api_key.env == "OPENAI_COMPLIANCE_KEY" and source.poll_interval == 300


@pytest.mark.parametrize(
    ("table", "error"),
    [
        ('scope = "workspaces/not-a-uuid"', "sources[0].scope: Value error, a workspace id"),
        ('scope = "organizations/org-a/../b"', "sources[0].scope: Value error, the id"),
        ('scope = "teams/x"', "sources[0].scope: Value error, expected"),
        ('scope = "organizations/org-a"\npage_size = 500', "sources[0].page_size"),
        ('scope = "organizations/org-a"\nproject_ids = []', "sources[0].project_ids: unknown key"),
        ('scope = "organizations/org-a"\nevent_types = ["A B"]', "sources[0].event_types"),
        ('scope = "organizations/org-a"\nbase_url = "http://api.example"', "plain http"),
        ("", "sources[0].scope: Field required"),
    ],
)
def test_configuration_errors_name_the_table_and_key(
    tmp_path: Path, table: str, error: str
) -> None:
    """A bad compliance table is a config error naming the key."""
    text = (
        f'[[sources]]\ntype = "chatgpt_compliance"\n{table}\n\n'
        f'[[sinks]]\ntype = "file"\nname = "f"\npath = "{tmp_path}/o.jsonl"\n'
    )
    (tmp_path / "c.toml").write_text(text)
    with pytest.raises(ConfigError, match=error.replace("[", r"\[").replace("]", r"\]")):
        load_config(tmp_path / "c.toml")


def test_an_unknown_source_type_names_the_type_key(tmp_path: Path) -> None:
    """`type = "nope"` is refused with the known types listed."""
    (tmp_path / "c.toml").write_text(
        f'[source]\ntype = "nope"\n\n[[sinks]]\ntype = "file"\nname = "f"\npath = "{tmp_path}/o"\n'
    )
    with pytest.raises(ConfigError, match=r"source\.type: unknown source type"):
        load_config(tmp_path / "c.toml")


def test_unreadable_records_are_quarantined_listed_and_replayed_dated_at_their_file(
    handmade: Callable[..., tuple[HandmadeFiles, str]],
    tmp_path: Path,
    compliance_key: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A file's unreadable record is kept in its type's quarantine with the file id while the
    rest is delivered; `quarantine replay` reads an entry again the compliance way, dated at
    its file (an entry made readable stands for a record a newer shipper can read)."""
    body = b'{"event_id":"good","type":"AUTH_LOG"}\n{"event_id":"bad",}\n'
    _, base = handmade([body])
    config = tmp_path / "shipper.toml"
    config.write_text(
        f'[[sources]]\ntype = "chatgpt_compliance"\nname = "ws"\nbase_url = "{base}"\n'
        f'scope = "workspaces/{WORKSPACE}"\nevent_types = ["AUTH_LOG"]\n'
        f'api_key_env = "{KEY_ENV}"\nstart_at = "2026-07-19T00:00:00Z"\n\n'
        f'[state]\ndir = "{tmp_path}/state"\n\n[metrics]\nlisten = ""\n\n'
        f'[[sinks]]\ntype = "file"\nname = "archive"\npath = "{tmp_path}/out.jsonl"\n'
        'format = "raw"\n'
    )
    assert main(["run", "--once", "--config", str(config)]) == 0
    assert delivered(tmp_path) == ["good"]
    kept = tmp_path / "state" / "ws.AUTH_LOG" / "quarantine.jsonl"
    (entry,) = [orjson.loads(line) for line in kept.read_bytes().splitlines()]
    assert entry["raw"] == '{"event_id":"bad",}' and entry["part"] == f"eclf_{0:032x}"
    assert entry["part_time"] == SINCE  # the file ended at 2026-07-20T00:00:00Z
    assert main(["quarantine", "list", "--config", str(config), "--source", "ws.AUTH_LOG"]) == 0
    assert "1 quarantined entry" in capsys.readouterr().out

    entry["raw"] = '{"event_id":"bad","type":"AUTH_LOG"}'
    kept.write_bytes(orjson.dumps(entry) + b"\n")
    assert main(["quarantine", "replay", "--config", str(config), "--source", "ws.AUTH_LOG"]) == 0
    assert delivered(tmp_path) == ["good", "bad"]


def test_a_missing_compliance_key_is_a_config_error_naming_the_table(
    emulator: ComplianceEmulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The key's variable unset: exit 2 at start-up, naming the source as configured and the key."""
    monkeypatch.delenv(KEY_ENV, raising=False)
    config = write_config(tmp_path, emulator, ["AUTH_LOG", "AUDIT_LOG"])
    assert main(["run", "--once", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert '"ws"' in err and KEY_ENV in err and "ws.AUTH_LOG" not in err


def test_a_type_taken_out_of_event_types_is_reported_and_resumes_when_named_again(
    emulator: ComplianceEmulator,
    tmp_path: Path,
    compliance_key: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Its state stays and is reported at start (`orphan_state`) and in `status`, saying how
    to start it afresh; named again, it resumes from its cursors (nothing downloaded again); a
    renamed source's state is reported as such."""
    emulator.add_files("AUTH_LOG", count=2)
    emulator.add_files("AUDIT_LOG", count=2)
    both = write_config(tmp_path, emulator, ["AUTH_LOG", "AUDIT_LOG"])
    assert main(["run", "--once", "--config", str(both)]) == 0
    downloads = emulator.stats.storage_requests

    one = write_config(tmp_path, emulator, ["AUTH_LOG"])
    capsys.readouterr()
    assert main(["run", "--once", "--config", str(one)]) == 0
    warnings = [
        orjson.loads(line)
        for line in capsys.readouterr().err.splitlines()
        if '"orphan_state"' in line
    ]
    assert [w["pipeline"] for w in warnings] == ["ws.AUDIT_LOG"]
    assert "no longer in the event_types of source 'ws'" in warnings[0]["meaning"]
    assert main(["status", "--config", str(one), "--json"]) == 0
    (state,) = orjson.loads(capsys.readouterr().out)["orphan_states"]
    assert state["name"] == "ws.AUDIT_LOG" and state["high_water_at"] is not None
    assert main(["status", "--config", str(one)]) == 0
    assert "state of ws.AUDIT_LOG" in capsys.readouterr().out

    both = write_config(tmp_path, emulator, ["AUTH_LOG", "AUDIT_LOG"])
    assert main(["run", "--once", "--config", str(both)]) == 0
    assert emulator.stats.storage_requests == downloads  # resumed: nothing read again
    assert main(["status", "--config", str(both), "--json"]) == 0
    assert orjson.loads(capsys.readouterr().out)["orphan_states"] == []

    renamed = both.read_text().replace('name = "ws"', 'name = "chatgpt"')
    both.write_text(renamed)
    assert main(["status", "--config", str(both), "--json"]) == 0
    states = orjson.loads(capsys.readouterr().out)["orphan_states"]
    assert [s["name"] for s in states] == ["ws.AUDIT_LOG", "ws.AUTH_LOG"]
    assert all("no configured source is named" in s["meaning"] for s in states)
