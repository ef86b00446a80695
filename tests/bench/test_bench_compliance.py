"""bench/compliance_backfill.py runs: a tiny round by file size, whose record counts must match."""

from __future__ import annotations

from pathlib import Path

from bench.compliance_backfill import run, table


def test_the_backfill_benchmark_delivers_every_record_at_every_file_size(tmp_path: Path) -> None:
    """Two file sizes, the same volume: every record lands once; the table compares them."""
    rows = run([1, 2], 2, tmp_path, concurrency=2)
    assert [(row.files, row.delivered) for row in rows] == [(2, 512), (1, 512)]
    assert all(row.run.rss_mib > 0 for row in rows)
    assert "| 2 MiB | 1 | 512 | 512 |" in table(rows)
