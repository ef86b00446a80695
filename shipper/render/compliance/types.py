"""Per-type facts of the Compliance Logs Platform: stream name, Splunk sourcetype, CIM models.

One row per known `type`; any other type gets `OTHER` (the platform adds types without notice,
and a record of a new type must still render). Verbs read from action names live here too, so
ECS, OCSF and the docs classify an action the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

from shipper.model.event import ComplianceRecord

SOURCE_TYPE = ComplianceRecord.source_type
# Elastic's `openai_chatgpt_enterprise` integration keeps what ECS has no field for under this
# root, one object per data stream; the same paths keep its users' searches working.
VENDOR_ROOT = "openai_chatgpt_enterprise"
SOURCETYPE_PREFIX = "openai:compliance:"


@dataclass(frozen=True, slots=True)
class TypeInfo:
    """What a record type is, for every rendering."""

    type: str
    stream: str  # the vendor namespace object in ECS, Elastic's data-stream name
    title: str  # human name (CEF header, docs)
    cim: tuple[str, ...]  # Splunk CIM data models the type's events feed
    known: bool = True

    @property
    def sourcetype(self) -> str:
        """Splunk sourcetype: the name Splunk's own add-on gives records of this type."""
        return SOURCETYPE_PREFIX + self.stream


def _row(type_: str, title: str, *cim: str) -> TypeInfo:
    return TypeInfo(type=type_, stream=type_.lower(), title=title, cim=cim)


TYPES: dict[str, TypeInfo] = {
    row.type: row
    for row in (
        _row("AUTH_LOG", "Sign-in activity", "Authentication"),
        _row("AUDIT_LOG", "Admin action", "Change"),
        _row("APP_LOG", "App call", "Web"),
        _row("APP_AUTH_LOG", "App account link", "Change"),
        _row("CODEX_LOG", "Codex activity"),
        _row("CODEX_SECURITY_LOG", "Codex Security", "Vulnerabilities", "Change"),
        _row("CONVERSATION_MESSAGE", "Conversation message"),
        _row("CUSTOM_AGENTS_LOG", "Workspace agent activity", "Change"),
        _row("CHATGPT_PLUGIN_SPREADSHEET", "Plugin usage"),
        _row("COSTS", "Usage and billing"),
    )
}
# Unknown types: the type string stays a value (never a field name) and Splunk's fallback name.
OTHER = TypeInfo(type="", stream="other", title="Compliance record", cim=(), known=False)
OTHER_SOURCETYPE = SOURCETYPE_PREFIX + "logs"


def type_info(record_type: str) -> TypeInfo:
    """The row of a known type; `OTHER` for anything else."""
    return TYPES.get(record_type, OTHER)


def sourcetype(record_type: str) -> str:
    """The Splunk sourcetype of a record type (`openai:compliance:logs` for unknown types)."""
    info = TYPES.get(record_type)
    return info.sourcetype if info else OTHER_SOURCETYPE


# Action-name words -> one verb. Names are UPPER_SNAKE (`INVITE_SEND`, `AGENT_CREATED`,
# `MEMORY_READ`) or lower (`login_success`, `link`); past tenses name the same verb.
_VERB_WORDS: dict[str, str] = {}
for _verb, _words in {
    "create": "CREATE CREATED ADD ADDED SEND SENT PUBLISH PUBLISHED LINK ISSUED INSTALL",
    "delete": "DELETE DELETED REMOVE REMOVED REVOKE REVOKED UNLINK UNINSTALL",
    "read": "READ LIST GET DOWNLOAD VIEW EXPORT",
    "enable": "ENABLE ENABLED ACTIVATE ACTIVATED",
    "disable": "DISABLE DISABLED DEACTIVATE DEACTIVATED",
    "update": "UPDATE UPDATED SET TOGGLE CHANGE CHANGED WRITE RENAME",
}.items():
    _VERB_WORDS |= dict.fromkeys(_words.split(), _verb)


def verb_of(action: str | None) -> str | None:
    """The verb an action name states (create, delete, read, enable, disable, update), if any.

    The first verb word wins: `LIST_WORKSPACE_LOG_FILES` reads, `DELETE_PROJECT_CONNECTOR_SCOPE`
    deletes, `SCAN_CONFIGURATION_UPDATED` updates.
    """
    if not action:
        return None
    for word in action.upper().replace("-", "_").split("_"):
        if verb := _VERB_WORDS.get(word):
            return verb
    return None
