"""The compliance source's part of the chaos rounds: files published, faults armed, kills mid-download.

Each round publishes new files on the Compliance Logs Platform emulator (some repeating records
of earlier files, as the COSTS feed does; some sharing an `end_time`, so a listing page ends on
a boundary file that the next page returns again; some published late, behind the newest file
but inside `lookback`) and arms one fault kind of this API, dealt round-robin so every kind is
armed whatever the number of rounds: an expired signed URL, a body that fails its checksum, a
truncated body, a dropped connection, a rate limit with and without `Retry-After`, 5xx answers.
A fault left armed by a run that ended first fires in a later run; what fired is read from the
emulator's counters. Some rounds also hold a download and SIGKILL the shipper while it waits
for the body. The final check compares every sink with the records of every file (one per
`event_id`).
"""

from __future__ import annotations

import random
import signal
import subprocess
import threading
import time
from collections import Counter
from datetime import UTC, datetime

from shipper.emulator.compliance.faults import ComplianceFault
from shipper.emulator.compliance.server import ComplianceEmulator

KEY, KEY_ENV = "sk-proj-chaos-compliance-0123456789SECRET", "CHAOS_COMPLIANCE_KEY"
TYPES = ("AUTH_LOG", "AUDIT_LOG", "APP_LOG", "CONVERSATION_MESSAGE")
PAGE_SIZE = 5  # small listing pages: boundaries (and their re-returned files) come often
# What each armed kind does; "timeout" at storage is the held download a kill lands in.
FAULTS: dict[str, ComplianceFault] = {
    "expired_url": ComplianceFault("expired_url", where="download"),
    "checksum": ComplianceFault("checksum", where="storage"),
    "truncated": ComplianceFault("truncated", where="storage"),
    "reset": ComplianceFault("reset", where="storage"),
    "429_retry_after": ComplianceFault("429", where="list", retry_after="1"),
    "429": ComplianceFault("429", where="download"),
    "503": ComplianceFault("503", where="storage"),
    "500": ComplianceFault("500", where="list"),
}
KILL_EVERY = 5  # every fifth round holds a download and kills the shipper in it
HOLD = 30.0  # how long the held download would wait (the kill comes first)
WINDOW = 100  # the source's window_max_events: a file of more than 4 x this is streamed


class ComplianceChaos:
    """Publishes files and arms faults on `emu` round by round; counts what happened."""

    def __init__(self, emu: ComplianceEmulator, seed: int, now: int, span: int, lookback: int):
        self.emu, self.lookback = emu, lookback
        self.rng = random.Random(seed ^ 0x5EED)
        self.hits: Counter[str] = Counter()
        self._kinds = list(FAULTS)
        self._rounds = 0
        self._armed = 0  # rounds that armed a fault
        self._served: Counter[str] = Counter()
        for kind in TYPES:  # a day of history, a file every 20 minutes per type
            start = datetime.fromtimestamp(now - span, UTC)
            big = 2048 if kind == "CONVERSATION_MESSAGE" else 0
            emu.add_files(kind, count=span // 1200 - 1, start=start, spacing=1200.0,
                          records_per_file=self.rng.randint(3, 12), record_bytes=big)  # fmt: skip

    def sources_toml(self, start_at: str, config_extra: str = "") -> str:
        types = ", ".join(f'"{t}"' for t in TYPES)
        return (
            '[[sources]]\ntype = "chatgpt_compliance"\nname = "chatgpt"\n'
            f'base_url = "{self.emu.base_url}"\nscope = "workspaces/{self.emu.workspace_id}"\n'
            f'api_key = {{ env = "{KEY_ENV}" }}\nevent_types = [{types}]\n'
            f'start_at = "{start_at}"\nlookback = "{self.lookback}s"\npage_size = {PAGE_SIZE}\n'
            'request_timeout = "1s"\nretry_max_attempts = 6\nretry_max_time = "8s"\n'
            # Small windows: a big file's second is streamed in batches (`big_file` rounds).
            f"window_max_events = {WINDOW}\n"
            f"{config_extra}\n"
        )

    def prepare(self, *, armed: bool = True) -> bool:
        """Publish this round's files and (if `armed`) arm its fault; True if the round kills
        mid-download."""
        self._rounds += 1
        self._served = Counter(self.emu.stats.faults_served)
        now = time.time()
        kind = self.rng.choice(TYPES)
        newest = max(f.end_micros for f in self.emu.files(kind)) / 1e6
        end = max(newest + 1, now - self.rng.uniform(6, 20))
        shape = self._rounds % 4
        if shape == 0:  # two files with one end_time: a page may end between them
            self.emu.add_files(kind, end_times=[_at(end), _at(end)], records_per_file=4)
            self.hits["boundary_tie"] += 1
        elif shape == 1:  # records repeated from earlier files of the feed
            self.emu.add_files(kind, end_times=[_at(end)], duplicate_ratio=0.5,
                               records_per_file=6)  # fmt: skip
            self.hits["duplicate_records"] += 1
        elif shape == 3:  # more records in one file than a window holds: streamed in batches
            self.emu.add_files(kind, end_times=[_at(end)],
                               records_per_file=self.rng.randint(5 * WINDOW, 9 * WINDOW))  # fmt: skip
            self.hits["big_file"] += 1
        else:  # late: behind the newest file, inside lookback
            late = max(newest - self.rng.uniform(1, self.lookback / 2), now - self.lookback / 2)
            self.emu.add_files(kind, end_times=[_at(min(late, end))], records_per_file=3)
            self.hits["late_file"] += 1
        if not armed:
            return False
        self._armed += 1
        self.emu.inject(FAULTS[self._kinds[(self._armed - 1) % len(self._kinds)]])
        killing = self._armed % KILL_EVERY == 0
        if killing:
            self.emu.inject(ComplianceFault("timeout", where="storage", delay=HOLD))
        return killing

    def kill_in_download(self, proc: subprocess.Popen[bytes], limit: float) -> threading.Thread:
        """SIGKILL `proc` once a download is held (a thread; gives up after `limit` s)."""
        before = self.emu.stats.faults_served.get("storage:timeout", 0)

        def watch() -> None:
            deadline = time.monotonic() + limit
            while proc.poll() is None and time.monotonic() < deadline:
                if self.emu.stats.faults_served.get("storage:timeout", 0) > before:
                    proc.send_signal(signal.SIGKILL)
                    self.hits["kill_mid_download"] += 1
                    return
                time.sleep(0.02)  # bounded poll of the emulator's counter

        thread = threading.Thread(target=watch, daemon=True)
        thread.start()
        return thread

    def settle(self) -> None:
        """Count the faults that fired this round; an unfired kill hold must not hang later runs."""
        fired = Counter(self.emu.stats.faults_served) - self._served
        for key, count in fired.items():
            if key != "storage:timeout":
                self.hits[f"fault:{key}"] += count

    def clear(self) -> None:
        self.emu.clear_faults()

    def truth(self) -> list[str]:
        """Every record id of every file, once (repeated records collapse)."""
        return sorted({str(r["event_id"]) for kind in TYPES for r in self.emu.records(kind)})

    def notes(self) -> list[str]:
        armed = ", ".join(f"{k} {n}" for k, n in sorted(self.hits.items()))
        return [f"compliance source: {armed or 'nothing happened'}"]

    def missing_kinds(self) -> list[str]:
        """Fault kinds that never fired, and shapes never published."""
        fired = {key.rpartition(":")[2] for key in self.hits if key.startswith("fault:")}
        wanted = {fault.kind for fault in FAULTS.values()}
        gaps: list[str] = sorted(wanted - fired)
        if not self.hits["kill_mid_download"]:
            gaps.append("kill_mid_download")
        return gaps


def _at(seconds: float) -> datetime:
    return datetime.fromtimestamp(round(seconds, 6), UTC)
