"""The compliance source: one event type's log files, read window by window (the source contract).

A `[source] type = "chatgpt_compliance"` runs one pipeline per event type, named
`<name>.<EVENT_TYPE>` (`ComplianceSourceSettings.per_event_type`): each type has its own cursors,
so a type whose grant is missing fails alone. This client serves one of them.

Cursor rules (API.md §4, docs/sources.md):

- A record's cursor key is the whole second (floor) of its file's `end_time`; a window
  `[start, end)` holds the records of every file whose second lies in it.
- `final_until(since)` lists from `since` to the last page and keeps the files' metadata for
  the cycle's windows (listed once per cycle, not once per window). The cycle reads no further
  than the newest `last_end_time` (or, when it is null, the newest `end_time`) plus one second:
  a cursor only moves to a time the API returned, never to the local clock, and an empty
  listing leaves it where it is.
- The first `after` of a listing is one microsecond before the window's first second, so the
  boundary file comes back whether `after` is inclusive or exclusive (UNKNOWN); every page after
  that asks from the previous page's `last_end_time`. Files listed twice are one (by id).
- A page with `has_more` whose cursor did not move past the `after` sent would page forever:
  retried as an anomaly, then a failure of the run (`SourceUnavailableError`).
- Files every sink already holds (`skip`) are not downloaded again; the others are read whole
  and named in `Found.parts`. Records repeated across files (COSTS does that) are one, by id.
- A file is downloaded whole and verified before any of its records is handed on, kept in
  memory up to `SPOOL_IN_MEMORY` and in an anonymous file in the state directory beyond (gone
  with the process, whatever stops it). A window past `limit` records overflows wherever it is,
  inside a file too; a second that holds more than `limit` is streamed (`stream_pass`), so
  memory holds a batch of records, whatever the size of the file.
"""

from __future__ import annotations

import contextlib
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote, urlencode

from pydantic import SecretStr
from tenacity import RetryCallState

from shipper.config.secret_ref import source_section
from shipper.config.settings import ComplianceSourceSettings, SourceSettings
from shipper.errors import (
    RetryableResponseError,
    SourceRefusedError,
    SourceUnavailableError,
)
from shipper.model.event import AuditEvent, ComplianceRecord
from shipper.pipeline.windows import Found, WindowOverflowError, assemble, overflow_error
from shipper.retry import (
    RetryPolicy,
    note_source_retry,
    parse_retry_after,
    retryable_statuses,
    retrying,
)
from shipper.runtime import stopping
from shipper.runtime.logs import source_logger
from shipper.runtime.metrics import Metrics
from shipper.secrets import redact
from shipper.source.api_get import Getter, HttpxGetter, Reply, TransportFailure
from shipper.source.audit_log.parse import Defect
from shipper.source.chatgpt_compliance.download import (
    REDIRECTS,
    Storage,
    UnsafeRedirectError,
    check_redirect,
)
from shipper.source.chatgpt_compliance.event_types import (
    CONTENT_EVENT_TYPES,
    unexpected_event_types,
)
from shipper.source.chatgpt_compliance.listing import (
    ListingPage,
    LogFile,
    error_message,
    format_after,
    parse_listing,
)
from shipper.source.chatgpt_compliance.records import JsonValues, read_record
from shipper.source.inflight import Answer, InFlightLimit, RetryAfterGate
from shipper.source.quarantine import Listed, Quarantine

# The shared table (`shipper.retry`), as is: no answer of this API is known to need more.
RETRYABLE_STATUSES = retryable_statuses()
PUSH_BACK = frozenset({429, 503})
MAX_PAGES = 100_000  # per listing: 10 million files, far beyond 30 days of any feed
MICROS = 1_000_000
# A downloaded file up to this size is kept in memory while read; a larger one on disk.
SPOOL_IN_MEMORY = 1 << 20
READ_CHUNK = 1 << 20
# Files kept after they are read: a window that overflowed is read again in pieces, and the
# pieces take its files from here instead of downloading them again.
KEPT_FILES = 4


@dataclass(frozen=True, slots=True)
class _Listing:
    """The files listed from `since` (whole seconds) up to the watermark `until` (exclusive)."""

    since: int
    until: int
    files: tuple[LogFile, ...]

    def covers(self, start: int, end: int) -> bool:
        return self.since <= start and end <= self.until


class _Spooled:
    """A log file downloaded whole and verified, read back as often as needed: in memory up to
    `SPOOL_IN_MEMORY`, else in an anonymous temporary file (no name: nothing is left behind)."""

    def __init__(self, directory: Path | None) -> None:
        self._file: IO[bytes] = tempfile.SpooledTemporaryFile(  # noqa: SIM115 (see close)
            max_size=SPOOL_IN_MEMORY, dir=None if directory is None else str(directory)
        )

    def write(self, chunk: bytes) -> None:
        self._file.write(chunk)

    def chunks(self) -> Iterator[bytes]:
        """The file from its start (one reader at a time: see `ComplianceSource._file`)."""
        self._file.seek(0)
        while chunk := self._file.read(READ_CHUNK):
            yield chunk

    def close(self) -> None:
        self._file.close()


class _Kept:
    """The last `KEPT_FILES` files read, by id; a file taken is held by its reader alone."""

    def __init__(self) -> None:
        self._files: dict[str, _Spooled] = {}
        self._lock = threading.Lock()

    def take(self, file_id: str) -> _Spooled | None:
        with self._lock:
            return self._files.pop(file_id, None)

    def keep(self, file_id: str, spool: _Spooled) -> None:
        with self._lock:
            self._files[file_id] = spool
            dropped = [self._files.pop(i) for i in list(self._files)[:-KEPT_FILES]]
        for old in dropped:
            old.close()

    def close(self) -> None:
        with self._lock:
            dropped, self._files = list(self._files.values()), {}
        for old in dropped:
            old.close()


@dataclass(slots=True)
class _Defects:
    """A file's unreadable records and those without an id, as they are met."""

    defects: list[Defect]
    without_id: int = 0


def _overflow(limit: int, start: int, end: int, found: Found) -> WindowOverflowError:
    """The overflow of a window that had read `found`, which it empties: the error's traceback
    keeps this frame alive while the window is read again in pieces, and must not keep every
    record read so far with it."""
    error = overflow_error(f"more than {limit} records in [{start}, {end})", found)
    found.clear()
    return error


def refusal(status: int, api_message: str | None, settings: ComplianceSourceSettings) -> str:
    """What an operator must do about a refused request, by status (never the key itself)."""
    detail = f" The API said: {redact(api_message)}" if api_message else ""
    ref = settings.api_key
    where = f"file {ref.file}" if ref.file else f"${ref.env}"
    event_type = settings.selected_event_types[0]
    if status == 401:
        return (
            f"HTTP 401: the compliance key (from {where}) was rejected: it is wrong or revoked, "
            "or Compliance API access was never enabled on it. Ask OpenAI support to enable the "
            "Compliance API with read scope on a dedicated API Platform key, or use a workspace "
            f"Admin key with read permission for the log categories exported.{detail}"
        )
    if status == 403:
        return (
            f"HTTP 403: the key may not read {event_type} logs of {settings.scope}. A Compliance "
            "API key needs the read scope (ask OpenAI support to grant it, quoting the key's last "
            "four characters, name and creator); a workspace Admin key needs read permission for "
            f"the {event_type} log category (a Workspace Owner grants it in the ChatGPT Admin "
            f"Console, Credentials, Admin keys). The other event types carry on.{detail}"
        )
    if status == 404:
        return (
            f"HTTP 404: {settings.scope} is not known at {settings.base_url}: check source.scope "
            "(a workspace UUID, or an API Platform org id for organizations/) and "
            f"source.base_url.{detail}"
        )
    return f"HTTP {status}: the API refused the request for {event_type} logs.{detail}"


class ComplianceSource:
    """One event type of the Compliance Logs Platform; the source contract
    (`shipper.source.contract.Source`) with one pass, and `shipper.emulator.compliance` for its
    emulator."""

    def __init__(
        self,
        settings: ComplianceSourceSettings,
        api_key: SecretStr,
        *,
        sleep: Callable[[float], Any] = stopping.pause,
        metrics: Metrics | None = None,
        quarantine: Quarantine | None = None,
    ) -> None:
        types = settings.selected_event_types
        if len(types) != 1:
            raise ValueError("a ComplianceSource reads one event type (see per_event_type)")
        self.settings = settings
        self.event_type = types[0]
        self.metrics = metrics
        self.quarantine = quarantine
        self._log = source_logger(settings.name)
        self._sleep = sleep
        self._policy = RetryPolicy(
            max_attempts=settings.retry_max_attempts, max_time=settings.retry_max_time
        )
        observe = metrics.api_request_observer(settings.name) if metrics is not None else None
        self._api: Getter = HttpxGetter(
            f"{settings.base_url.rstrip('/')}/{settings.scope}",
            {"authorization": f"Bearer {api_key.get_secret_value()}", "user-agent": "shipper/0.1"},
            settings.request_timeout,
            connections=settings.concurrency + 2,  # a spare for a request being torn down
            observe=observe,
            deadline=settings.request_deadline,
            max_body=settings.max_response_bytes,
        )
        self._storage = Storage(
            timeout=settings.request_timeout,
            deadline=settings.download_deadline,
            max_bytes=settings.max_file_bytes,
        )
        self._in_flight = InFlightLimit(settings.concurrency)
        self._gate = RetryAfterGate(sleep)
        self._listing: _Listing | None = None
        # Where a file too big for memory is kept while read (set by the runtime: the state
        # directory, sized for it; None: the system's temporary directory).
        self.spool_dir: Path | None = None
        self._kept = _Kept()
        self.requests = 0
        self.retries = 0
        self._warn_about_types(settings)

    def _warn_about_types(self, settings: ComplianceSourceSettings) -> None:
        if unexpected_event_types(settings.scope_kind, [self.event_type]):
            self._log.warning(
                "event_type_unknown",
                event_type=self.event_type,
                scope=settings.scope_kind,
                meaning="no peer has seen this event type served under this scope (a typo, the "
                "other scope's type, or a type newer than this shipper); asked for anyway",
            )
        if self.event_type in CONTENT_EVENT_TYPES:
            self._log.info(
                "content_event_type_exported",
                event_type=self.event_type,
                meaning="its records carry what people wrote or read; exported because "
                "event_types names it",
            )

    @property
    def passes(self) -> tuple[str, ...]:
        return (self.event_type,)

    def close(self) -> None:
        self._api.close()
        self._storage.close()
        self._kept.close()

    def api_clock_offset(self) -> float | None:
        """None: the cycle is bounded by the listing's watermark (`final_until`), not a clock."""
        return None

    # requests

    def _get(self, target: str) -> Reply:
        """One GET of the API (listing or download redirect), counted and paced."""
        self._gate.hold_back()
        self.requests += 1
        ticket, status = self._in_flight.acquire(), 0
        try:
            reply = self._api.get(target)
            status = reply.status
        except TransportFailure as exc:
            raise RetryableResponseError(redact(str(exc)) or "no detail", cause=exc.cause) from None
        finally:
            self._answered(ticket, status)
        if status in RETRYABLE_STATUSES:
            request_id = reply.headers.get("x-request-id")
            retry_after = parse_retry_after(reply.headers.get("retry-after"))
            self._gate.pause(retry_after)
            raise RetryableResponseError(
                f"HTTP {status}" + (f" (x-request-id {request_id})" if request_id else ""),
                retry_after=retry_after,
                cause=f"http_{status}",
            )
        return reply

    def _answered(self, ticket: int, status: int) -> None:
        answer: Answer = (
            "pushed_back"
            if status in PUSH_BACK
            else "accepted"
            if status in (200, 307)
            else "other"
        )
        self._in_flight.release(ticket, answer)

    def _refused(self, reply: Reply) -> SourceRefusedError:
        return SourceRefusedError(
            refusal(reply.status, error_message(reply.body), self.settings),
            status=reply.status,
            request_id=reply.headers.get("x-request-id"),
        )

    def _note_retry(self, state: RetryCallState) -> None:
        self.retries += 1
        note_source_retry(self._log, state, self.metrics, self.settings.name)

    def _retried(self, what: str, attempt: Callable[[], Any]) -> Any:
        retry = retrying(
            self._policy,
            retry_on=lambda exc: isinstance(exc, RetryableResponseError),
            sleep=self._sleep,
            before_sleep=self._note_retry,
        )
        try:
            return retry(attempt)
        except RetryableResponseError as exc:
            raise SourceUnavailableError(
                f"{what} ({self.event_type}) kept failing; last error: {exc}"
            ) from None

    # listing

    def _page_attempt(self, after: int) -> ListingPage:
        query = urlencode(
            {
                "event_type": self.event_type,
                "after": format_after(after),
                "limit": self.settings.page_size,
            }
        )
        reply = self._get(f"/logs?{query}")
        if reply.status != 200:
            raise self._refused(reply)
        page = parse_listing(reply.body, self.event_type)
        if page.foreign:
            self._log.warning(
                "foreign_event_types_listed",
                asked_for=self.event_type,
                listed=page.foreign,
                meaning="the listing held files of other event types; skipped (their own "
                "pipelines read them)",
            )
        if page.has_more:
            following = page.newest
            if following is None or following <= after:
                raise RetryableResponseError(
                    f"listing anomaly: has_more is true but last_end_time "
                    f"({format_after(following) if following is not None else 'null'}) did not "
                    f"move past after={format_after(after)}: paging on would never end",
                    cause="listing_anomaly",
                )
        return page

    def _page(self, after: int) -> ListingPage:
        page: ListingPage = self._retried(
            "listing the log files", lambda: self._page_attempt(after)
        )
        return page

    def _list(self, since: int, until: int | None = None) -> tuple[list[LogFile], int | None]:
        """Files from second `since` on (up to `until` if given), oldest first, each once; and
        the newest time (microseconds) the listing vouched for."""
        after = since * MICROS - 1  # the boundary file, whether `after` is inclusive or not
        files: dict[str, LogFile] = {}
        newest: int | None = None
        for _ in range(MAX_PAGES):
            page = self._page(after)
            for log_file in page.files:
                if log_file.second >= since:
                    files.setdefault(log_file.id, log_file)
            if page.newest is not None:
                newest = page.newest if newest is None else max(newest, page.newest)
            if not page.has_more or (until is not None and (newest or 0) >= until * MICROS):
                break
            assert page.newest is not None  # `_page_attempt` refuses a page that cannot go on
            after = page.newest
        else:
            raise SourceUnavailableError(f"more than {MAX_PAGES} listing pages: giving up")
        return sorted(files.values(), key=lambda f: (f.end_micros, f.id)), newest

    def final_until(self, since: int) -> int:
        """The second after the newest `last_end_time` listed from `since`, or `since` when
        nothing is listed; the files listed are kept for this cycle's windows."""
        files, newest = self._list(since)
        until = since if newest is None else max(since, newest // MICROS + 1)
        self._listing = _Listing(since, until, tuple(files))
        return until

    def _files(self, start: int, end: int) -> list[LogFile]:
        listing = self._listing
        if listing is not None and listing.covers(start, end):
            files = list(listing.files)
        else:  # a window outside this cycle's listing (fetch_window, a probe): list it now
            files, _ = self._list(start, end)
        return [f for f in files if start <= f.second < end]

    # download

    def _download_attempt(self, log_file: LogFile) -> _Spooled:
        reply = self._get(f"/logs/{quote(log_file.id, safe='')}")
        if reply.status in REDIRECTS:
            try:
                url = check_redirect(reply.headers.get("location"))
            except UnsafeRedirectError as exc:
                raise SourceRefusedError(f"log file {log_file.id}: {exc}") from None
        elif reply.status != 200:
            raise self._refused(reply)
        else:
            url = None  # served by the API itself: tolerated
        spool = _Spooled(self.spool_dir)
        try:
            if url is None:
                spool.write(reply.body)
            else:
                self._storage.read(url, log_file, spool.write)
        except BaseException:
            spool.close()
            raise
        return spool

    def _download(self, log_file: LogFile) -> _Spooled:
        if log_file.size is not None and log_file.size > self.settings.max_file_bytes:
            raise SourceUnavailableError(
                f"log file {log_file.id} ({self.event_type}) is {log_file.size} bytes, over "
                f"max_file_bytes ({self.settings.max_file_bytes}): raise it to read this file"
            )
        spool: _Spooled = self._retried(
            f"downloading log file {log_file.id}", lambda: self._download_attempt(log_file)
        )
        return spool

    @contextlib.contextmanager
    def _file(self, log_file: LogFile) -> Iterator[_Spooled]:
        """The file, downloaded (or kept from an earlier read), held by this reader alone;
        kept afterwards."""
        spool = self._kept.take(log_file.id) or self._download(log_file)
        try:
            yield spool
        finally:
            self._kept.keep(log_file.id, spool)

    def _records(
        self, spool: _Spooled, log_file: LogFile, organization: str | None, bad: _Defects
    ) -> Iterator[ComplianceRecord]:
        """The file's records in order; what is not a record goes to `bad`."""
        values = JsonValues()

        def raw_values() -> Iterator[bytes]:
            for chunk in spool.chunks():
                yield from values.feed(chunk)
            if (rest := values.finish()) is not None:
                yield rest  # a file that ends inside a value (verified whole: the file is so)

        for raw in raw_values():
            item = read_record(raw, self.event_type, log_file.second, organization)
            if isinstance(item, Defect):
                bad.defects.append(item)
            else:
                bad.without_id += item.id.startswith("sha256:")
                yield item

    def _settle(self, bad: _Defects, log_file: LogFile, start: int, end: int) -> None:
        """Quarantine what was unreadable and say what had no id (before the records that
        followed them may move a cursor)."""
        if bad.defects:
            self._keep(bad.defects, Listed(start, end, False, None, log_file.id, log_file.second))
            bad.defects = []
        if bad.without_id:
            self._log.warning(
                "records_without_event_id",
                file=log_file.id,
                count=bad.without_id,
                meaning="delivered with a deterministic id (sha256: of the record's bytes)",
            )
            bad.without_id = 0

    # the contract

    def fetch_pass(
        self,
        start: int,
        end: int,
        which: str,
        /,
        *,
        limit: int | None = None,
        organization: str | None = None,
        sharing: int = 1,
        abandon: threading.Event | None = None,
        skip: frozenset[str] = frozenset(),
    ) -> Found:
        """The records of every file whose `end_time` second is in `[start, end)`, by id."""
        try:
            return self._read(
                start, end, limit=limit, organization=organization, abandon=abandon, skip=skip
            )
        except WindowOverflowError:
            if abandon is not None:
                abandon.set()
            raise

    def _read(
        self,
        start: int,
        end: int,
        *,
        limit: int | None,
        organization: str | None,
        abandon: threading.Event | None,
        skip: frozenset[str],
    ) -> Found:
        found = Found()
        for log_file in self._files(start, end):
            if log_file.id in skip:
                continue
            if abandon is not None and abandon.is_set():
                raise WindowOverflowError("another pass of the window overflowed", len(found))
            if limit is not None and len(found) >= limit:
                # Full before this file: say so without downloading it.
                raise _overflow(limit, start, end, found)
            bad = _Defects([])
            with self._file(log_file) as spool:
                for record in self._records(spool, log_file, organization, bad):
                    found[record.id] = record
                    if limit is not None and len(found) > limit:
                        # Inside a file too: the cycle cuts down to this file's second and
                        # streams it (`stream_pass`).
                        raise _overflow(limit, start, end, found)
            self._settle(bad, log_file, start, end)
            found.parts[log_file.id] = log_file.second
        return found

    def stream_pass(
        self,
        start: int,
        end: int,
        which: str,
        /,
        *,
        batch: int,
        organization: str | None = None,
        skip: frozenset[str] = frozenset(),
    ) -> Iterator[Found]:
        """The records of every file of `[start, end)` in batches of `batch`, as they are read
        from each verified file; a file's id is in the `parts` of the batch after its last
        record, and the last batch (possibly empty) follows the last file."""
        found = Found()
        for log_file in self._files(start, end):
            if log_file.id in skip:
                continue
            bad = _Defects([])
            with self._file(log_file) as spool:
                for record in self._records(spool, log_file, organization, bad):
                    found[record.id] = record
                    if len(found) >= batch:
                        self._settle(bad, log_file, start, end)
                        yield found
                        found = Found()
            self._settle(bad, log_file, start, end)
            found.parts[log_file.id] = log_file.second
        yield found

    def _keep(self, defects: list[Defect], listed: Listed) -> None:
        """Quarantine a file's unreadable records (durably, before its window is delivered)."""
        if self.quarantine is None:
            self._log.error(
                "records_unreadable",
                file=listed.part,
                count=len(defects),
                reasons=sorted({d.reason for d in defects}),
                meaning="no quarantine configured: these records are not kept",
            )
            return
        try:
            self.quarantine.keep(defects, listed)
        except OSError as exc:  # the window must not be delivered past records not kept
            raise SourceUnavailableError(
                f"cannot keep {len(defects)} unreadable records of {listed.part} in "
                f"{self.quarantine.path}: {exc.strerror or exc}"
            ) from None

    def fetch_window(
        self, start: int, end: int, *, organization: str | None = None, limit: int | None = None
    ) -> list[AuditEvent]:
        """Every record of `[start, end)`, oldest first by (effective_at, id)."""
        found = self.fetch_pass(start, end, self.event_type, limit=limit, organization=organization)
        return assemble([found], limit)

    def probe(self) -> str:
        """For `shipper check`: one listing page of the retention period and, when it lists a
        file, that file's download (which proves the grant and the storage path)."""
        since = int(time.time() - self.settings.retention)
        page = self._page(since * MICROS)
        if not page.files:
            return f"reachable, key accepted for {self.event_type} (no log file listed)"
        first = page.files[0]
        bad = _Defects([])
        with self._file(first) as spool:
            records = sum(1 for _ in self._records(spool, first, None, bad))
        return (
            f"reachable, key accepted for {self.event_type} ({len(page.files)} file(s) on page "
            f"1; downloaded {first.id}: {records} record(s))"
        )


def compliance_client(settings: SourceSettings, metrics: Metrics | None = None) -> ComplianceSource:
    """The source of one event type of a `[source] type = "chatgpt_compliance"`, with its key."""
    if not isinstance(settings, ComplianceSourceSettings):
        raise TypeError(f"not compliance settings: type {settings.type!r}")
    key = settings.api_key.read(source_section(settings.name))
    return ComplianceSource(settings, key, metrics=metrics)
