"""The compliance records the package ships as samples (`shipper/emulator/compliance/samples`)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import orjson

import shipper.emulator.compliance
from shipper.model.event import ComplianceRecord

# The folder itself, for tests that read the files one by one (the package is installed as files).
SAMPLES = Path(shipper.emulator.compliance.__file__).parent / "samples"

ORG = "acme-prod"
FILE_END = 1784592000  # 2026-07-21T00:00:00Z, after every sample's timestamp


def _sample_files() -> list[str]:
    folder = resources.files("shipper.emulator.compliance").joinpath("samples")
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".jsonl"))


def records() -> list[dict[str, Any]]:
    """Every sample record, in file and line order."""
    folder = resources.files("shipper.emulator.compliance").joinpath("samples")
    found: list[dict[str, Any]] = []
    for name in _sample_files():
        for line in folder.joinpath(name).read_text("utf-8").splitlines():
            if line.strip():
                found.append(orjson.loads(line))
    return found


def record(raw: Any, effective_at: int = FILE_END) -> ComplianceRecord:
    """A record as the source builds it: id = event_id, type = type (both may be missing)."""
    obj = raw if isinstance(raw, dict) else {}
    event_id = obj.get("event_id")
    record_type = obj.get("type")
    return ComplianceRecord(
        event_id if isinstance(event_id, str) and event_id else "no-event-id",
        record_type if isinstance(record_type, str) else "unknown",
        effective_at,
        raw,
        ORG,
    )


def sample(record_type: str, **match: Any) -> ComplianceRecord:
    """The first sample of a type whose top-level or inner fields equal `match`."""
    for raw in records():
        if raw.get("type") != record_type:
            continue
        inner = {**raw, **raw.get("action_data", {}), **raw.get("event_details", {})}
        if all(inner.get(k) == v for k, v in match.items()):
            return record(raw)
    raise LookupError(f"no {record_type} sample with {match}")


def sample_ids() -> list[str]:
    """A readable id per sample record, for parametrized tests."""
    ids = []
    for raw in records():
        inner = raw.get("event_type") or raw.get("action") or raw.get("log_type") or ""
        ids.append(f"{raw['type']}-{inner}-{raw['event_id'][-4:]}")
    return ids
