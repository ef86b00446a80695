"""The configuration file: TOML, validated once at the edge, strictly (unknown keys rejected).

Every field carries a description; docs/reference/configuration.md is generated from them
(`python -m docgen.config_reference`).
"""

from __future__ import annotations

import datetime as dt
import functools
import ipaddress
import re
import tomllib
from collections.abc import Iterator, Mapping
from importlib.metadata import entry_points
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from shipper.config.durations import Duration
from shipper.config.inline_secrets import guard_inline_secrets
from shipper.config.secret_ref import (
    SecretFields,
    SecretRef,
    secret_refs,
    sink_section,
    source_section,
)
from shipper.errors import ConfigError
from shipper.pipeline.sink import SinkPlugin, SinkSettings
from shipper.source.audit_log.event_types import split_by_scope
from shipper.source.chatgpt_compliance.event_types import DEFAULT_EVENT_TYPES
from shipper.source.chatgpt_compliance.event_types import ScopeKind as ComplianceScope

SINK_ENTRY_POINT_GROUP = "shipper.sinks"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def is_loopback_url(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class SourceSettings(_Strict, SecretFields):
    """The keys every `[source]` has, whatever its type; each type's table adds its own.

    The pipeline and the runtime read only these (`shipper.pipeline.cycle`, `shipper.runtime`).
    """

    type: str = Field(default="audit_log", description="Which source (see each source's table).")
    _table: str | None = PrivateAttr(default=None)  # the table a per-type source came from

    @property
    def table_name(self) -> str:
        """The `name` of the source table as written (a compliance source's types share it)."""
        return self._table or self.name

    name: str = Field(
        default="default",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
        description="Name of this source; keys its state directory.",
    )
    organization: str | None = Field(
        default=None, description="Label carried into every event (`organization` field)."
    )
    base_url: str = Field(
        default="https://api.openai.com/v1", description="API base URL (the emulator's for tests)."
    )
    api_key: SecretRef = Field(
        default_factory=lambda: SecretRef(env="OPENAI_ADMIN_KEY"),
        description="The admin API key: a variable or a file (container secrets).",
    )
    allow_plain_http: bool = Field(
        default=False,
        description="Allow an http:// base_url to a non-loopback host (never do this).",
    )
    start_at: dt.datetime | None = Field(
        default=None,
        description="Where a sink without a cursor starts (RFC 3339); default 24h ago.",
    )
    lookback: Duration = Field(
        default=600.0, description="How late an event may appear and still be delivered."
    )
    poll_interval: Duration = Field(
        default=60.0, description="Pause between cycles in follow mode."
    )
    retention: Duration = Field(
        default=30 * 86400.0,
        description="How long the API is assumed to keep events; a sink further behind is reported loudly.",
    )
    page_size: int = Field(default=100, ge=1, le=100, description="Events per API page (limit).")
    concurrency: int = Field(
        default=8,
        ge=1,
        le=32,
        description="Most API requests in flight at once during a backfill (time windows fetched side by side); a 429 or 503 halves it until clean answers widen it again.",
    )
    window_max_events: int = Field(
        default=5000, ge=100, le=1_000_000, description="Target events per window (bounds memory)."
    )
    request_timeout: Duration = Field(default=30.0, description="Timeout of one API request.")
    request_deadline: Duration | None = Field(
        default=None,
        description="Longest one API request may take, whatever the peer does; default 2 x request_timeout.",
    )
    max_response_bytes: int = Field(
        default=32 * 1024 * 1024, ge=1024, description="Largest API answer accepted (decoded)."
    )
    retry_max_attempts: int = Field(default=8, ge=1, le=1000, description="Attempts per API page.")
    retry_max_time: Duration = Field(
        default=300.0, description="Longest time one API page is retried."
    )
    clock_safety_lag: Duration = Field(
        default=5.0,
        description="A cycle reads up to this long before now, now being the earlier of the local clock and the API's (its `Date` header).",
    )

    @field_validator("start_at")
    @classmethod
    def _aware(cls, value: dt.datetime | None) -> dt.datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("start_at needs a time zone, e.g. 2026-01-01T00:00:00Z")
        return value

    @model_validator(mode="after")
    def _safe_url(self) -> SourceSettings:
        scheme = urlsplit(self.base_url).scheme
        if scheme not in ("http", "https"):
            raise ValueError(f"base_url must be http(s), not {self.base_url!r}")
        if scheme == "http" and not is_loopback_url(self.base_url) and not self.allow_plain_http:
            raise ValueError(
                "base_url uses plain http to a non-loopback host: the API key would travel in "
                "clear text (set allow_plain_http = true only if you really mean it)"
            )
        return self


class AuditLogSettings(SourceSettings):
    """`[source]` with `type = "audit_log"` (the default): the organization's audit log."""

    type: Literal["audit_log"] = Field(
        default="audit_log",
        description="Which source: audit_log (the organization's audit log, with an admin key).",
    )
    event_types: list[str] = Field(
        default_factory=list,
        description="Only these event types (tenant-scoped ones need include_tenant_events).",
    )
    project_ids: list[str] = Field(default_factory=list, description="Only these projects.")
    actor_ids: list[str] = Field(default_factory=list, description="Only these actors.")
    actor_emails: list[str] = Field(default_factory=list, description="Only these actor emails.")
    resource_ids: list[str] = Field(default_factory=list, description="Only these targets.")
    include_tenant_events: bool = Field(
        default=True, description="Also make the tenant_only=true pass (tenant-scoped event types)."
    )

    @model_validator(mode="after")
    def _event_types_have_their_pass(self) -> AuditLogSettings:
        tenant = split_by_scope(self.event_types)[1]
        if tenant and not self.include_tenant_events:
            raise ValueError(
                f"event_types names tenant-scoped types ({', '.join(tenant)}), which only the "
                "tenant_only pass returns: set include_tenant_events = true or remove them"
            )
        return self


_WORKSPACE_ID = re.compile(
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
)
_ORGANIZATION_ID = re.compile(r"^org-[A-Za-z0-9_-]+$")
_EVENT_TYPE_NAME = re.compile(r"^[A-Za-z0-9_]{1,40}$")
_SOURCE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class ComplianceSourceSettings(SourceSettings):
    """`[source]` with `type = "chatgpt_compliance"`: the ChatGPT Enterprise Compliance Logs
    Platform (log files per event type). Each event type is read by a pipeline of its own, with
    its own cursors, named `<name>.<EVENT_TYPE>` (see docs/sources.md)."""

    type: Literal["chatgpt_compliance"] = Field(
        default="chatgpt_compliance",
        description="Which source: chatgpt_compliance (ChatGPT Enterprise Compliance Logs Platform).",
    )
    base_url: str = Field(
        default="https://api.chatgpt.com/v1/compliance",
        description="Compliance API base URL (no government host is known: set it if yours differs).",
    )
    api_key: SecretRef = Field(
        default_factory=lambda: SecretRef(env="OPENAI_COMPLIANCE_KEY"),
        description="A Compliance API key with read scope, or a workspace Admin key with read permission per log category.",
    )
    scope: str = Field(
        description='Whose logs: "workspaces/<workspace uuid>" or "organizations/org-...".',
    )
    event_types: list[str] | None = Field(
        default=None,
        description="Event types to export; default the scope's types without content (workspaces: AUDIT_LOG, AUTH_LOG, APP_AUTH_LOG, CODEX_SECURITY_LOG; organizations: COSTS). Content-bearing types (CONVERSATION_MESSAGE, APP_LOG, CODEX_LOG, CUSTOM_AGENTS_LOG) only when named.",
    )
    poll_interval: Duration = Field(
        default=300.0, description="Pause between cycles in follow mode."
    )
    lookback: Duration = Field(
        default=3600.0,
        description="How late a log file may be published behind the newest one and still be delivered.",
    )
    max_file_bytes: int = Field(
        default=256 * 1024 * 1024,
        ge=1024,
        description="Largest log file downloaded (decoded); a larger one fails its event type's cycle.",
    )
    download_deadline: Duration = Field(
        default=900.0, description="Longest one log file download may take, whatever the peer does."
    )

    @field_validator("scope")
    @classmethod
    def _scope(cls, value: str) -> str:
        kind, sep, ident = value.partition("/")
        if not sep or kind not in ("workspaces", "organizations"):
            raise ValueError(
                f'expected "workspaces/<uuid>" or "organizations/org-...", got {value!r}'
            )
        if any(c in ident for c in "/\\") or ident in (".", "..") or "." in ident:
            raise ValueError(f"the id in {value!r} may not contain '/', '\\' or '.'")
        if kind == "workspaces" and not _WORKSPACE_ID.match(ident):
            raise ValueError(f"a workspace id is a UUID, got {ident!r}")
        if kind == "organizations" and not _ORGANIZATION_ID.match(ident):
            raise ValueError(
                f"an organization id is org- followed by letters/digits, got {ident!r}"
            )
        return value

    @field_validator("event_types")
    @classmethod
    def _event_type_names(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        if not value:
            raise ValueError("name at least one event type (or leave the key out)")
        if bad := [t for t in value if not _EVENT_TYPE_NAME.match(t)]:
            raise ValueError(f"not event type names: {', '.join(map(repr, bad))}")
        if dupes := sorted({t for t in value if value.count(t) > 1}):
            raise ValueError(f"named twice: {', '.join(dupes)}")
        return value

    @model_validator(mode="after")
    def _names_fit(self) -> ComplianceSourceSettings:
        for event_type in self.selected_event_types:
            if not _SOURCE_NAME.match(f"{self.name}.{event_type}"):
                raise ValueError(
                    f"name {self.name!r} is too long: each event type's pipeline is named "
                    f"{self.name}.{event_type}, at most 64 characters"
                )
        return self

    @property
    def scope_kind(self) -> ComplianceScope:
        return "organizations" if self.scope.startswith("organizations/") else "workspaces"

    @property
    def selected_event_types(self) -> list[str]:
        """The event types named, or the scope's defaults (no content-bearing type)."""
        if self.event_types is not None:
            return list(self.event_types)
        return list(DEFAULT_EVENT_TYPES[self.scope_kind])

    def per_event_type(self) -> list[ComplianceSourceSettings]:
        """One source per event type, `<name>.<EVENT_TYPE>`: each has its own cursors, so a
        type whose grant is missing fails alone."""
        subs = []
        for t in self.selected_event_types:
            sub = self.model_copy(update={"name": f"{self.name}.{t}", "event_types": [t]})
            sub._table = self.name
            subs.append(sub)
        return subs


def _source_type(value: Any) -> str:
    """The `type` a source table names; a table without one is the audit log."""
    kind = value.get("type", "audit_log") if isinstance(value, dict) else value.type
    return str(kind)


# What a `[source]` or `[[sources]]` table is, by its `type`.
SOURCE_MODELS: dict[str, type[SourceSettings]] = {
    "audit_log": AuditLogSettings,
    "chatgpt_compliance": ComplianceSourceSettings,
}
AnySource = Annotated[
    Annotated[AuditLogSettings, Tag("audit_log")]
    | Annotated[ComplianceSourceSettings, Tag("chatgpt_compliance")],
    Discriminator(
        _source_type,
        custom_error_type="source_type",
        custom_error_message=f"unknown source type (known: {', '.join(SOURCE_MODELS)})",
    ),
]


class StateSettings(_Strict):
    """`[state]`: where cursors, the lock and dead letters live."""

    dir: Path = Field(
        default=Path("./state"), description="State directory (a volume in containers)."
    )


class LogSettings(_Strict):
    """`[log]`: structured logging."""

    level: Literal["debug", "info", "warning", "error"] = Field(
        default="info", description="Least severe level written."
    )
    format: Literal["auto", "json", "console"] = Field(
        default="auto", description="auto = console on a terminal, JSON lines otherwise."
    )


class MetricsSettings(_Strict):
    """`[metrics]`: Prometheus metrics and health endpoints (follow mode), textfile (cron)."""

    listen: str | None = Field(
        default="127.0.0.1:9108",
        description='host:port serving /metrics, /healthz, /readyz in follow mode; "" disables.',
    )
    textfile: Path | None = Field(
        default=None,
        description="After each run, write metrics here in node_exporter textfile format.",
    )
    ready_after: Duration | None = Field(
        default=None,
        description="/readyz fails when no cycle succeeded for this long; default 3 x poll_interval + 60s.",
    )
    live_after: Duration | None = Field(
        default=None,
        description="/healthz fails when nothing made progress for this long; default 3 x poll_interval + 60s.",
    )

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str | None) -> str | None:
        if not value:
            return None
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or int(port) > 65535:
            raise ValueError(f"expected host:port such as 127.0.0.1:9108, got {value!r}")
        return value


class Config(_Strict):
    """The whole file. `sinks` holds each sink's own validated settings.

    `[source]` is the shorthand for a single organization; `[[sources]]` lists several
    (managed security providers), each with its own name, key, organization label and state.
    """

    source: AnySource | None = None
    sources: list[AnySource] = Field(default_factory=list)
    state: StateSettings = Field(default_factory=StateSettings)
    log: LogSettings = Field(default_factory=LogSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    sinks: list[SinkSettings] = Field(min_length=1)
    path: Path | None = None

    @model_validator(mode="after")
    def _one_way_to_name_sources(self) -> Config:
        if (self.source is None) == (not self.sources):
            raise ValueError("give exactly one of [source] or [[sources]]")
        # A compliance source's per-type names share the namespace (they name state directories).
        names = [s.name for s in self.configured_sources] + [
            sub.name
            for s in self.configured_sources
            if isinstance(s, ComplianceSourceSettings)
            for sub in s.per_event_type()
        ]
        if dupes := sorted({n for n in names if names.count(n) > 1}):
            raise ValueError(f"source names must be unique: {', '.join(dupes)}")
        tables = [s.name for s in self.configured_sources]
        for index, sink in enumerate(self.sinks):
            if unknown := [n for n in sink.sources if n not in tables]:
                raise ValueError(
                    f"sinks[{index}].sources: {', '.join(map(repr, unknown))} is not a configured "
                    f"source (the sources are named {', '.join(map(repr, tables))})"
                )
        return self

    @property
    def configured_sources(self) -> list[SourceSettings]:
        """The source tables as written."""
        return [self.source] if self.source is not None else list(self.sources)

    @property
    def all_sources(self) -> list[SourceSettings]:
        """The sources that run, each with its own pipeline and state: a compliance source is
        one per event type (`<name>.<EVENT_TYPE>`)."""
        expanded: list[SourceSettings] = []
        for source in self.configured_sources:
            if isinstance(source, ComplianceSourceSettings):
                expanded.extend(source.per_event_type())
            else:
                expanded.append(source)
        return expanded


def sink_takes(sink: SinkSettings, source: SourceSettings) -> bool:
    """Whether `sink` takes `source`'s events: its `sources` names the source's table, or is
    empty (every source)."""
    return not sink.sources or source.table_name in sink.sources


def read_every_secret(config: Config) -> None:
    """Read each secret the config names, at start-up: one missing is a config error (exit 2)
    naming the file, the table and the key, before any state is touched."""
    owners: list[tuple[str, BaseModel]] = [
        (source_section(s.name), s) for s in config.configured_sources
    ]
    owners += [(sink_section(s.name), s) for s in config.sinks]
    for section, settings in owners:
        for ref in secret_refs(settings):
            ref.read(section, config.path)


class _SinkRegistry(Mapping[str, "SinkPlugin"]):
    """Installed sinks by type name; a sink's module is imported only when it is looked up.

    A run that configures two sinks should not pay start-up time and memory for the other three.
    """

    def __init__(self) -> None:
        self._points = {ep.name: ep for ep in entry_points(group=SINK_ENTRY_POINT_GROUP)}
        self._loaded: dict[str, SinkPlugin] = {}

    def __getitem__(self, name: str) -> SinkPlugin:
        if name not in self._loaded:
            self._loaded[name] = self._points[name].load()
        return self._loaded[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._points)

    def __len__(self) -> int:
        return len(self._points)


@functools.cache
def sink_plugins() -> Mapping[str, SinkPlugin]:
    """Installed sinks by type name, from the `shipper.sinks` entry-point group (loaded lazily).

    Looked up once per process: listing entry points reads every installed distribution's
    metadata, about 10 ms, which a cron run would otherwise pay once per sink.
    """
    return _SinkRegistry()


def _loc(prefix: str, loc: tuple[Any, ...]) -> str:
    key = prefix
    for part in loc:
        if part in SOURCE_MODELS:  # the union's tag, not a key of the file
            continue
        key += f"[{part}]" if isinstance(part, int) else (f".{part}" if key else str(part))
    return key


def _raise_validation(exc: ValidationError, path: str, prefix: str = "") -> None:
    problems = []
    for err in exc.errors():
        key = _loc(prefix, tuple(err["loc"]))
        message = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        if err["type"] == "source_type":
            key = _loc(key, ("type",))
        problems.append(f"{key}: {message}")
    raise ConfigError("; ".join(problems), path=path) from None


def _validate_sink(
    raw: Any, index: int, path: str, plugins: Mapping[str, SinkPlugin]
) -> SinkSettings:
    key = f"sinks[{index}]"
    if not isinstance(raw, dict):
        raise ConfigError("must be a table", path=path, key=key)
    kind = raw.get("type")
    if not isinstance(kind, str) or kind not in plugins:
        known = ", ".join(sorted(plugins)) or "none installed"
        raise ConfigError(
            f"unknown sink type {kind!r} (known: {known})", path=path, key=f"{key}.type"
        )
    model = plugins[kind].settings_model
    try:
        settings = model.model_validate(raw)
    except ValidationError as exc:
        _raise_validation(exc, path, key)
    if settings.format not in model.allowed_formats:
        raise ConfigError(
            f"format {settings.format!r} is not available for {kind} sinks "
            f"(choose one of {', '.join(model.allowed_formats)})",
            path=path,
            key=f"{key}.format",
        )
    return settings


def parse_config(
    data: dict[str, Any], path: str, plugins: Mapping[str, SinkPlugin] | None = None
) -> Config:
    """Validate a parsed TOML document; `ConfigError` names the file and key of every problem."""
    plugins = sink_plugins() if plugins is None else plugins
    raw_sinks = data.get("sinks")
    if not isinstance(raw_sinks, list) or not raw_sinks:
        raise ConfigError("at least one [[sinks]] table is required", path=path, key="sinks")
    sinks = [_validate_sink(raw, i, path, plugins) for i, raw in enumerate(raw_sinks)]
    names = [s.name for s in sinks]
    if dupes := sorted({n for n in names if names.count(n) > 1}):
        raise ConfigError(f"sink names must be unique: {', '.join(dupes)}", path=path, key="sinks")
    try:
        return Config.model_validate({**data, "sinks": sinks, "path": Path(path)})
    except ValidationError as exc:
        _raise_validation(exc, path)
    raise AssertionError("unreachable")


def load_config(path: Path, plugins: Mapping[str, SinkPlugin] | None = None) -> Config:
    """Read and validate a config file; every failure is a `ConfigError`, never a traceback."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file: {exc.strerror}", path=str(path)) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", path=str(path)) from None
    if "path" in data:
        raise ConfigError("unknown key", path=str(path), key="path")
    guard_inline_secrets(data, path)
    return parse_config(data, str(path), plugins)
