"""The straightforward poller the shipper is measured against: stdlib only, one page at a time.

What anyone would write in an afternoon: one keep-alive `http.client` connection, the whole span
as one window (the ordinary pass, then the `tenant_only` pass), `json.loads` per page, and one
`json.dumps` plus one buffered `write` per event into a JSON-lines file, fsync'd at the end.
429 and 5xx are retried after `Retry-After` (or a second). No cursor, no dedupe, no sort.

    python bench/baseline.py --base-url http://127.0.0.1:8089/v1 --start 0 --end 1999999999 \\
        --out /tmp/baseline.jsonl        # key from $OPENAI_ADMIN_KEY
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import sys
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode, urlsplit

PATH = "/organization/audit_logs"


def fetch_pass(
    conn: http.client.HTTPConnection, prefix: str, key: str, query: dict[str, str]
) -> Iterator[dict[str, Any]]:
    """Yield every event of one pass, page by page."""
    after = None
    while True:
        params = dict(query, **({"after": after} if after else {}))
        headers = {"Authorization": f"Bearer {key}"}
        conn.request("GET", f"{prefix}{PATH}?{urlencode(params)}", headers=headers)
        response = conn.getresponse()
        body = response.read()
        if response.status == 429 or response.status >= 500:
            time.sleep(float(response.getheader("Retry-After") or 1))
            continue
        if response.status != 200:
            sys.exit(f"HTTP {response.status}: {body[:200]!r}")
        page = json.loads(body)
        yield from page["data"]
        if not page["has_more"]:
            return
        after = page["last_id"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--start", type=int, required=True)
    parser.add_argument("--end", type=int, required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    url = urlsplit(args.base_url)
    conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port or 80, timeout=30)
    key = os.environ["OPENAI_ADMIN_KEY"]
    count = 0
    with open(args.out, "w", encoding="utf-8") as out:
        for tenant_only in ("false", "true"):
            query = {
                "effective_at[gte]": str(args.start),
                "effective_at[lt]": str(args.end),
                "limit": "100",
                "tenant_only": tenant_only,
            }
            for event in fetch_pass(conn, url.path.rstrip("/"), key, query):
                out.write(json.dumps(event) + "\n")
                count += 1
        out.flush()
        os.fsync(out.fileno())
    print(count)
    return 0


if __name__ == "__main__":
    sys.exit(main())
