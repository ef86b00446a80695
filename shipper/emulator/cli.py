"""`shipper emulate`: serve generated audit-log events on loopback until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import os
import threading
import time
from pathlib import Path

from shipper.emulator.events import generate_events
from shipper.emulator.server import Emulator
from shipper.runtime.signals import install_stop_handlers

DEMO_KEY = "sk-admin-emulator-demo"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="shipper emulate",
        description="Serve an emulated OpenAI audit-log API (GET /v1/organization/audit_logs).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8089, help="port (default 8089; 0 = pick one)")
    parser.add_argument("--events", type=int, default=1000, help="events to generate")
    parser.add_argument(
        "--days", type=float, default=1.0, help="spread of the events, ending now (days)"
    )
    parser.add_argument("--order", choices=("desc", "asc"), default="desc", help="listing order")
    parser.add_argument("--seed", type=int, default=0, help="seed for events and faults")
    parser.add_argument(
        "--page-delay",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="latency added to every list response (benchmarks; requests still overlap)",
    )
    parser.add_argument(
        "--max-concurrent-lists",
        type=int,
        metavar="N",
        help="answer 429 to a list request arriving while N are being answered (a rate limiter)",
    )
    parser.add_argument(
        "--pretty", action="store_true", help="indent list pages (as many JSON APIs do)"
    )
    parser.add_argument(
        "--api-key-env",
        default="OPENAI_ADMIN_KEY",
        metavar="NAME",
        help=f"environment variable holding the accepted key (unset: accept {DEMO_KEY})",
    )
    parser.add_argument("--port-file", type=Path, help="write the bound port here once listening")
    return parser


def _write_port(path: Path, port: int) -> None:
    """Write atomically so a script polling the file never reads a partial number."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(f"{port}\n", encoding="utf-8")
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    """Serve in the foreground; returns 0 after SIGTERM or SIGINT."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.events < 0 or args.days <= 0 or args.page_delay < 0:
        parser.error("--events must be >= 0, --days > 0 and --page-delay >= 0")
    if args.max_concurrent_lists is not None and args.max_concurrent_lists < 1:
        parser.error("--max-concurrent-lists must be >= 1")
    api_key = os.environ.get(args.api_key_env)
    if not api_key:
        api_key = DEMO_KEY
        print(f"{args.api_key_env} is not set: accepting the demo key {DEMO_KEY}", flush=True)
    now = int(time.time())
    span = max(1, int(args.days * 86_400))
    stop = threading.Event()
    install_stop_handlers(stop)
    # The generated dicts are dropped once stored (the store keeps JSON bytes): a million of
    # them would otherwise hold gigabytes for as long as the emulator serves.
    emulator = Emulator(
        api_key=api_key,
        events=generate_events(args.events, start=now - span, end=now, seed=args.seed),
        order=args.order,
        host=args.host,
        port=args.port,
        page_delay=args.page_delay,
        max_concurrent_lists=args.max_concurrent_lists,
        pretty=args.pretty,
        seed=args.seed,
    ).start()
    try:
        if args.port_file is not None:
            _write_port(args.port_file, emulator.port)
        print(f"emulator serving {args.events} events at {emulator.base_url}", flush=True)
        stop.wait()
    finally:
        emulator.stop()
    return 0
