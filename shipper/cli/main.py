"""The `shipper` command. Only `main()` turns errors into exit codes and messages.

Imports are lazy so `shipper --help` starts fast.
"""

from __future__ import annotations

import argparse
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from shipper.cli.exit_codes import ExitCode, exit_code_of, exit_code_of_run
from shipper.errors import ShipperError

EXIT_CODES_HELP = """exit codes:
  0  success (every sink caught up, or follow mode stopped cleanly)
  1  internal error (a bug: please report it)
  2  configuration error (the message names the file and key)
  3  the API refused the request (401 bad key, 403 no permission / audit logging off, 400/404)
  4  the API stayed unavailable after retries (5xx, 429, timeouts, garbled bodies)
  5  at least one sink could not be delivered to; its cursor stayed where it was
  6  another shipper holds the state directory's lock
  7  a state file (cursor, dead letters, quarantine) is damaged; the message names the file
     and what to do (restore it from a backup, or delete it as the message says)
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="shipper",
        description="Export an OpenAI organization's audit log into your SIEM, at-least-once.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="deliver events (follow mode unless --once)")
    run.add_argument("--config", required=True, type=Path)
    run.add_argument("--once", action="store_true", help="catch up to now, deliver, commit, exit")
    check = sub.add_parser("check", help="validate the config, probe the API and every sink")
    check.add_argument("--config", required=True, type=Path)
    status = sub.add_parser("status", help="per-sink cursor, lag and state location")
    status.add_argument("--config", required=True, type=Path)
    status.add_argument("--json", action="store_true", help="machine-readable output")
    sub.add_parser("emulate", help="serve the built-in audit-log API emulator", add_help=False)
    init = sub.add_parser("init", help="write a commented starter config")
    init.add_argument("--config", type=Path, default=Path("shipper.toml"), help="where to write it")
    init.add_argument("--force", action="store_true", help="overwrite an existing file")
    dlq = sub.add_parser("dlq", help="inspect, re-send or delete a sink's dead letters")
    dlq.add_argument("action", choices=["list", "replay", "purge"])
    dlq.add_argument("--config", required=True, type=Path)
    dlq.add_argument("--sink", required=True, help="the sink's name")
    dlq.add_argument("--json", action="store_true", help="list: the raw JSON lines")
    dlq.add_argument("--yes", action="store_true", help="purge: really delete")
    cursor = sub.add_parser("cursor", help="carry a renamed sink's cursor over to its new name")
    cursor.add_argument("action", choices=["rename"])
    cursor.add_argument("old", metavar="OLD", help="the sink's former name (its cursor file)")
    cursor.add_argument("new", metavar="NEW", help="the sink's name in the config now")
    cursor.add_argument("--config", required=True, type=Path)
    cursor.add_argument("--force", action="store_true", help="replace NEW's existing cursor")
    quarantine = sub.add_parser(
        "quarantine", help="inspect or re-read the API entries that could not be read"
    )
    quarantine.add_argument("action", choices=["list", "replay"])
    quarantine.add_argument("--config", required=True, type=Path)
    quarantine.add_argument("--source", help="the source's name (default: the only one)")
    quarantine.add_argument("--json", action="store_true", help="list: the raw JSON lines")
    demo = sub.add_parser("demo", help="run the whole pipeline against the built-in emulator")
    demo.add_argument("--out", type=Path, default=Path("shipper-demo"))
    demo.add_argument("--events", type=int, default=2000)
    return parser


def _cmd_run(args: argparse.Namespace) -> int:
    from shipper.config.settings import load_config
    from shipper.runtime import app, logs
    from shipper.runtime.gcfreeze import freeze_startup
    from shipper.runtime.progress import wanted
    from shipper.runtime.signals import install_reopen_handler, install_stop_handlers

    config = load_config(args.config)
    logs.configure(config.log.level, config.log.format)
    freeze_startup()  # the last of start-up's imports is done
    stop = threading.Event()
    install_stop_handlers(stop)
    if not args.once:
        install_reopen_handler()
    outcome = app.run(
        config,
        once=args.once,
        stop=stop,
        progress=wanted(config.log.format),
        stop_grace=app.STOP_GRACE,
        stop_grace_exit_code=ExitCode.INTERRUPTED,
    )
    return int(exit_code_of_run(outcome))


def _cmd_check(args: argparse.Namespace) -> int:
    from shipper.cli.check import run_checks

    return run_checks(args.config)


def _cmd_status(args: argparse.Namespace) -> int:
    from shipper.cli.status import show_status

    return show_status(args.config, as_json=args.json)


def _cmd_init(args: argparse.Namespace) -> int:
    from shipper.config.starter import write_starter

    return write_starter(args.config, force=args.force)


def _cmd_dlq(args: argparse.Namespace) -> int:
    from shipper.cli.dlq import main as dlq

    return dlq(args.action, args.config, args.sink, as_json=args.json, yes=args.yes)


def _cmd_cursor(args: argparse.Namespace) -> int:
    from shipper.pipeline.orphan_cursors import main as cursor

    return cursor(args.config, args.old, args.new, force=args.force)


def _cmd_quarantine(args: argparse.Namespace) -> int:
    from shipper.cli.dlq import quarantine_main

    return quarantine_main(args.action, args.config, args.source, as_json=args.json)


def _cmd_demo(args: argparse.Namespace) -> int:
    from shipper.cli.demo import run_demo

    return run_demo(args.out, events=args.events)


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "run": _cmd_run,
    "check": _cmd_check,
    "status": _cmd_status,
    "demo": _cmd_demo,
    "dlq": _cmd_dlq,
    "quarantine": _cmd_quarantine,
    "init": _cmd_init,
    "cursor": _cmd_cursor,
}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["emulate"]:
        from shipper.emulator.cli import main as emulate

        return emulate(argv[1:])
    args = _parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except ShipperError as exc:
        from shipper.secrets import redact

        print(f"shipper: error: {redact(str(exc))}", file=sys.stderr)
        return int(exit_code_of(exc))
    except KeyboardInterrupt:
        return int(ExitCode.INTERRUPTED)


if __name__ == "__main__":
    sys.exit(main())
