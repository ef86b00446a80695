"""A large CONVERSATION_MESSAGE backfill into the file sink: throughput and peak RSS by file size.

    .venv/bin/python bench/compliance_backfill.py            # 96 MiB in files of 1, 8, 32, 96 MiB
    .venv/bin/python bench/compliance_backfill.py --total-mib 8 --sizes 1,4

The same volume is served as fewer, larger files; each row is `shipper run --once` (a child
process, measured alone: wall, CPU and its own peak RSS) against the compliance emulator, into a
raw file sink. The ratios compare each row with the smallest files: memory that stays flat as
files grow shows as an RSS ratio near 1.0. The emulator runs in this process (its memory is not
the shipper's).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `bench/...py` as a script

from bench.perf_procs import PYTHON, Measured, compile_sources, machine, measure
from shipper.emulator.compliance.server import DEFAULT_START, ComplianceEmulator

KEY, KEY_ENV = "sk-proj-bench-compliance-0123456789", "OPENAI_COMPLIANCE_KEY"
RECORD_BYTES = 4096  # a long assistant answer
TYPE = "CONVERSATION_MESSAGE"


@dataclass(frozen=True, slots=True)
class Row:
    file_mib: int
    files: int
    records: int
    delivered: int
    run: Measured

    @property
    def mib_per_s(self) -> float:
        return self.files * self.file_mib / self.run.wall


def config(work: Path, base_url: str, concurrency: int = 8) -> Path:
    start = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(DEFAULT_START.timestamp() - 3600))
    path = work / "shipper.toml"
    path.write_text(
        "[[sources]]\n"
        'type = "chatgpt_compliance"\nname = "chatgpt"\n'
        f'base_url = "{base_url}"\nscope = "workspaces/{ComplianceEmulator().workspace_id}"\n'
        f'api_key = {{ env = "{KEY_ENV}" }}\nevent_types = ["{TYPE}"]\nstart_at = "{start}"\n'
        f"concurrency = {concurrency}\n\n"
        f'[state]\ndir = "{work / "state"}"\n\n[log]\nformat = "json"\nlevel = "warning"\n\n'
        f'[[sinks]]\ntype = "file"\nname = "archive"\npath = "{work / "out.jsonl"}"\n'
        'format = "raw"\n'
    )
    return path


def run_size(file_mib: int, total_mib: int, work: Path, concurrency: int) -> Row:
    """Serve `total_mib` of records in files of `file_mib` and ship them once."""
    files = max(total_mib // file_mib, 1)
    per_file = file_mib * (1 << 20) // RECORD_BYTES
    with ComplianceEmulator(api_key=KEY) as emu:
        emu.add_files(TYPE, count=files, records_per_file=per_file, record_bytes=RECORD_BYTES)
        path = config(work, emu.base_url, concurrency)
        measured = measure(
            [PYTHON, "-m", "shipper.cli.main", "run", "--once", "--config", str(path)],
            env_extra={KEY_ENV: KEY},
        )
    out = work / "out.jsonl"
    with out.open("rb") as lines:
        delivered = sum(1 for _ in lines)
    return Row(file_mib, files, files * per_file, delivered, measured)


def table(rows: list[Row]) -> str:
    base = rows[0]
    lines = [
        "| file size | files | records | delivered | wall s | MiB/s | CPU s | peak RSS MiB "
        "| RSS ratio | MiB/s ratio |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row.file_mib} MiB | {row.files} | {row.records} | {row.delivered} "
            f"| {row.run.wall:.2f} | {row.mib_per_s:.1f} | {row.run.cpu:.2f} "
            f"| {row.run.rss_mib:.0f} | {row.run.rss_mib / base.run.rss_mib:.2f} "
            f"| {row.mib_per_s / base.mib_per_s:.2f} |"
        )
    return "\n".join(lines)


def run(sizes: list[int], total_mib: int, work: Path, concurrency: int) -> list[Row]:
    rows = []
    for size in sizes:
        folder = work / f"{size}mib"
        folder.mkdir()
        rows.append(run_size(size, total_mib, folder, concurrency))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--total-mib", type=int, default=96)
    parser.add_argument("--sizes", default="1,8,32,96", help="file sizes in MiB")
    parser.add_argument("--concurrency", type=int, default=8, help="the source's concurrency")
    args = parser.parse_args(argv)
    sizes = sorted(int(s) for s in args.sizes.split(","))
    compile_sources()
    with tempfile.TemporaryDirectory(prefix="shipper-compliance-bench-") as tmp:
        rows = run(sizes, args.total_mib, Path(tmp), args.concurrency)
    print(machine())
    print(table(rows))
    short = [row for row in rows if row.delivered != row.records]
    for row in short:
        print(f"{row.file_mib} MiB files: {row.delivered} of {row.records} records delivered")
    return 1 if short else 0


if __name__ == "__main__":
    sys.exit(main())
