"""A lean HTTP receiver for the sink benchmark, in its own process: HEC, `_bulk` and a webhook.

It answers each protocol's success reply and counts events, nothing more, so the benchmark
measures the sink and not a test double (tests/receivers validate every document; that costs
more than the sink spends sending it). Events are counted by their framing: HEC event objects
and webhook documents are one per line, `_bulk` has two lines (action, document) per event.

    python bench/perf_receiver.py --port-file /tmp/rx.port
    GET /_count  -> {"events": N}
"""

from __future__ import annotations

import argparse
import gzip
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

HEC_OK = b'{"text":"Success","code":0}'


class Counter:
    def __init__(self) -> None:
        self.events = 0
        self.lock = threading.Lock()

    def add(self, count: int) -> None:
        with self.lock:
            self.events += count


COUNTER = Counter()


def _lines(body: bytes) -> int:
    return body.count(b"\n") + (0 if not body or body.endswith(b"\n") else 1)


def answer(path: str, body: bytes) -> bytes:
    """Count the events of one request and return the receiver's success reply."""
    if path.startswith("/services/collector"):
        COUNTER.add(_lines(body))
        return HEC_OK
    if path.endswith("/_bulk"):
        items = _lines(body) // 2
        COUNTER.add(items)
        return b'{"took":1,"errors":false,"items":[%s]}' % b",".join(
            [b'{"create":{"status":201}}'] * items
        )
    COUNTER.add(_lines(body))
    return b"ok"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        """Silent."""

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        if self.headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        self._reply(answer(self.path, body))

    def do_GET(self) -> None:
        self._reply(json.dumps({"events": COUNTER.events}).encode())

    do_PUT = do_POST

    def _reply(self, body: bytes) -> None:
        head = (
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        self.wfile.write(head.encode() + body)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port-file", type=Path, required=True)
    args = parser.parse_args()
    server = Server(("127.0.0.1", 0), Handler)
    tmp = args.port_file.with_name(args.port_file.name + ".tmp")
    tmp.write_text(str(server.server_address[1]))
    tmp.replace(args.port_file)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
