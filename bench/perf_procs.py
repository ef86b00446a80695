"""Processes for the benchmark: the emulator in its own process, measured runs, the machine line.

Every measured program runs as a child process and is measured alone: wall time around it,
CPU time (user + system) and peak RSS from `os.wait4`'s resource usage of that very child, as
bench/launch.py (a small process in between) reports them.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.request import urlopen

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
KEY = "sk-admin-bench-0123456789"
ENV = {**os.environ, "OPENAI_ADMIN_KEY": KEY, "PYTHONDONTWRITEBYTECODE": "1"}


@dataclass(frozen=True, slots=True)
class Measured:
    wall: float  # seconds
    cpu: float  # user + system seconds
    rss_mib: float  # peak resident set size
    output: str  # stdout

    def per_event_us(self, events: int) -> float:
        return self.cpu / max(events, 1) * 1e6


def measure(
    argv: list[str], *, timeout: float = 900.0, env_extra: dict[str, str] | None = None
) -> Measured:
    """Run `argv` to completion through bench/launch.py (which see: the peak RSS must be the
    program's own), with `env_extra` added to its environment; `RuntimeError` with its stderr
    if it fails."""
    with (
        tempfile.TemporaryFile("w+") as out,
        tempfile.TemporaryFile("w+") as err,
        tempfile.TemporaryDirectory() as scratch,
    ):
        report = Path(scratch) / "usage.json"
        launcher = [PYTHON, "-S", "-I", str(ROOT / "bench" / "launch.py"), str(report)]
        subprocess.run(
            [*launcher, str(timeout), "--", *argv],
            cwd=ROOT,
            env={**ENV, **(env_extra or {})},
            stdout=out,
            stderr=err,
            timeout=timeout + 60,
            check=True,
        )
        usage = json.loads(report.read_text())
        out.seek(0)
        err.seek(0)
        if usage["exit"] != 0:
            raise RuntimeError(
                f"{' '.join(argv[:6])} exited {usage['exit']}:\n{err.read()[-3000:]}"
            )
        return Measured(usage["wall"], usage["cpu"], usage["maxrss_kib"] / 1024, out.read())


@contextlib.contextmanager
def emulator(
    workdir: Path,
    *,
    events: int,
    days: float,
    seed: int = 1,
    page_delay: float = 0.0,
    max_concurrent_lists: int | None = None,
) -> Iterator[str]:
    """An emulator process serving `events` generated events ending now; yields its base URL."""
    port_file = workdir / f"emulator-{events}-{page_delay}.port"
    port_file.unlink(missing_ok=True)
    argv = [
        PYTHON,
        "-m",
        "shipper.cli.main",
        "emulate",
        "--port",
        "0",
        "--port-file",
        str(port_file),
    ]
    argv += ["--events", str(events), "--days", str(days), "--seed", str(seed)]
    argv += ["--page-delay", str(page_delay)]
    if max_concurrent_lists is not None:
        argv += ["--max-concurrent-lists", str(max_concurrent_lists)]
    proc = subprocess.Popen(argv, cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, text=True)
    try:
        deadline = time.monotonic() + 600
        while not port_file.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the emulator did not start (exit {proc.returncode})")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port_file.read_text().strip()}/v1"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def list_answers(base_url: str) -> tuple[int, int]:
    """(list requests, 429s) the emulator at `base_url` answered so far."""
    with urlopen(f"{base_url.removesuffix('/v1')}/_emulator/stats", timeout=10) as answer:
        stats = json.loads(answer.read())  # loopback, our own emulator
    return stats["list_requests"], stats["responses_by_status"].get("429", 0)


def compile_sources() -> None:
    """Byte-compile the project's modules (into the tree's ignored `__pycache__`), so the runs
    measure the shipper as an install runs it: pip compiles a package's modules when it installs
    it, while measured runs here never write bytecode and would otherwise compile every module
    from source each time (about 40 ms of each run's start-up)."""
    subprocess.run(
        [PYTHON, "-m", "compileall", "-q", "shipper", "sinks", "bench"],
        cwd=ROOT,
        env={k: v for k, v in ENV.items() if k != "PYTHONDONTWRITEBYTECODE"},
        check=True,
        stdout=subprocess.DEVNULL,
    )


def machine() -> str:
    """CPU model, cores, memory, OS and Python: the line printed under every table."""
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory = ""
    with contextlib.suppress(OSError, ValueError, IndexError):
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f", {kib / 1024 / 1024:.0f} GiB RAM"
    return (
        f"{model}, {os.cpu_count()} cores{memory}, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}"
    )
