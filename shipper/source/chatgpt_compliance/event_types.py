"""The Compliance Logs Platform's event types: which scope serves each, which carry content.

From the peers' observations (EVENT-TYPES.md §1); the set is open: an unknown name is asked for
all the same (with a warning), since OpenAI adds types without notice.
"""

from __future__ import annotations

from typing import Literal

ScopeKind = Literal["workspaces", "organizations"]

WORKSPACE_EVENT_TYPES = (
    "AUDIT_LOG",
    "AUTH_LOG",
    "APP_LOG",
    "APP_AUTH_LOG",
    "CODEX_LOG",
    "CODEX_SECURITY_LOG",
    "CONVERSATION_MESSAGE",
    "CUSTOM_AGENTS_LOG",
    "CHATGPT_PLUGIN_SPREADSHEET",
)
ORGANIZATION_EVENT_TYPES = ("COSTS",)

# Types whose records hold what people wrote or read: message text, tool input and output,
# Codex prompts and answers, agent run text. Exported only when named (a SIEM is rarely the
# place for it), and never by default. CHATGPT_PLUGIN_SPREADSHEET's shape is unknown: opt-in too.
CONTENT_EVENT_TYPES = frozenset(
    {
        "CONVERSATION_MESSAGE",
        "APP_LOG",
        "CODEX_LOG",
        "CUSTOM_AGENTS_LOG",
        "CHATGPT_PLUGIN_SPREADSHEET",
    }
)

DEFAULT_EVENT_TYPES: dict[ScopeKind, tuple[str, ...]] = {
    "workspaces": tuple(t for t in WORKSPACE_EVENT_TYPES if t not in CONTENT_EVENT_TYPES),
    "organizations": ORGANIZATION_EVENT_TYPES,
}

_KNOWN: dict[ScopeKind, tuple[str, ...]] = {
    "workspaces": WORKSPACE_EVENT_TYPES,
    "organizations": ORGANIZATION_EVENT_TYPES,
}


def unexpected_event_types(scope: ScopeKind, event_types: list[str]) -> list[str]:
    """The names no peer has seen served under `scope` (new types, typos, the other scope's)."""
    return [t for t in event_types if t not in _KNOWN[scope]]
