"""`shipper check` for Elasticsearch/OpenSearch: who answers, and may these credentials write.

`GET /` names the product and version (OpenSearch says `version.distribution = "opensearch"`).
A least-privilege key may not read it (403: it lacks the `monitor` cluster privilege, which
shipping does not need), so a 403 there still proves the credentials are valid. On Elasticsearch
`_security/user/_has_privileges` then tells whether they may create documents in the index.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import orjson

from shipper.sink_api import RETRYABLE_STATUSES, SinkFatalError, SinkRetryableError, describe
from sinks.elasticsearch.bulk import privilege_message

Send = Callable[[str, str, bytes | None], httpx.Response]  # (method, path, json body)
WRONG_CREDENTIALS = "the API key or password is wrong (or expired)"


def _json(response: httpx.Response) -> Any:
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return None


def cluster_verdict(sink: str, info: Any) -> tuple[str, bool]:
    """("Elasticsearch 8.14.0, cluster 'prod'", is_opensearch); fatal for Elasticsearch before 7."""
    info = info if isinstance(info, dict) else {}
    version = info.get("version") if isinstance(info.get("version"), dict) else {}
    number = str(version.get("number", "?"))
    opensearch = version.get("distribution") == "opensearch"
    product = "OpenSearch" if opensearch else "Elasticsearch"
    major = number.split(".", 1)[0]
    if not opensearch and major.isdigit() and int(major) < 7:
        raise SinkFatalError(sink, f"Elasticsearch {number} is too old: 7.x or later is needed")
    return (f"{product} {number}, cluster {info.get('cluster_name', '?')!r}", opensearch)


def _privileges_verdict(sink: str, index: str, send: Send) -> str:
    body = orjson.dumps(
        {"index": [{"names": [index], "privileges": ["create_doc", "auto_configure"]}]}
    )
    response = send("POST", "/_security/user/_has_privileges", body)
    answer = _json(response)
    granted = answer.get("index", {}).get(index) if isinstance(answer, dict) else None
    if response.status_code != 200 or not isinstance(granted, dict):
        return ""  # security off, or a product without this API: the first write will tell
    if granted.get("create_doc") is not True:
        raise SinkFatalError(sink, privilege_message(index))
    if granted.get("auto_configure") is not True:
        return f"; may write to {index!r} but not create it (it must already exist)"
    return f"; may write to {index!r}"


def probe(sink: str, index: str, send: Send) -> str:
    """A one-line verdict; `SinkFatalError` naming what to fix when the answer is a refusal."""
    response = send("GET", "/", None)
    if response.status_code == 401:
        raise SinkFatalError(sink, f"{describe(response)}: {WRONG_CREDENTIALS}")
    if response.status_code in RETRYABLE_STATUSES:
        raise SinkRetryableError(sink, f"{describe(response)}: the cluster is not available now")
    if response.status_code == 403:
        head, opensearch = "credentials valid (cluster info needs the monitor privilege)", False
    elif response.status_code == 200:
        head, opensearch = cluster_verdict(sink, _json(response))
    else:
        raise SinkFatalError(
            sink, f"{describe(response)}: this does not look like Elasticsearch; check url"
        )
    return head if opensearch else head + _privileges_verdict(sink, index, send)
