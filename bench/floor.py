"""The least CPU a poller on httpx can spend per event: the bound on what the shipper can reach.

Not a usable tool: it does only what no poller can skip, as cheaply as this stack allows. One
GET per page straight through httpx's transport, the page read with msgspec into each event's
own bytes and id (nothing decoded that is not needed), one buffered write per page. No
de-duplication, no sort, no cursor, no per-window fsync, no retries, no threads. Same passes
and output as bench/baseline.py.

    python bench/floor.py --base-url http://127.0.0.1:8089/v1 --start 0 --end 1999999999 \\
        --out /tmp/floor.jsonl        # key from $OPENAI_ADMIN_KEY
"""

from __future__ import annotations

import argparse
import os
import sys
from urllib.parse import urlencode

import httpx
import msgspec

PATH = "/organization/audit_logs"


class Page(msgspec.Struct):
    data: list[msgspec.Raw]
    has_more: bool
    last_id: str | None = None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--start", type=int, required=True)
    parser.add_argument("--end", type=int, required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    transport = httpx.HTTPTransport()
    headers = httpx.Headers({"Authorization": f"Bearer {os.environ['OPENAI_ADMIN_KEY']}"})
    read_page = msgspec.json.Decoder(Page).decode
    count = 0
    with open(args.out, "wb") as out:
        for tenant_only in ("false", "true"):
            query = {
                "effective_at[gte]": str(args.start),
                "effective_at[lt]": str(args.end),
                "limit": "100",
                "tenant_only": tenant_only,
            }
            after = None
            while True:
                params = urlencode(dict(query, **({"after": after} if after else {})))
                request = httpx.Request("GET", f"{args.base_url}{PATH}?{params}", headers=headers)
                response = transport.handle_request(request)
                page = read_page(response.read())
                response.close()
                if page.data:
                    out.write(b"\n".join(page.data) + b"\n")
                count += len(page.data)
                if not page.has_more:
                    break
                after = page.last_id
    print(count)
    return 0


if __name__ == "__main__":
    sys.exit(main())
