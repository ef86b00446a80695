"""The audit log's event-type catalog, and which types only the `tenant_only=true` listing returns.

The spec (`tenant_only`): "Required for tenant-scoped events such as `role.bound_to_resource`
and `role.unbound_from_resource`. When `true`, all supplied event types must be tenant-scoped."
The catalog (`data/event_types.json`) lists every type but records no scope per type, so the
scope is the namespace (`tenant.*`) plus the two role bindings the spec names.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from importlib import resources


def _load_catalog() -> tuple[str, ...]:
    text = resources.files("shipper").joinpath("data/event_types.json").read_text("utf-8")
    return tuple(json.loads(text)["event_types"])


CATALOG: tuple[str, ...] = _load_catalog()
_KNOWN = frozenset(CATALOG)
# The spec names these two outside the `tenant.` namespace as needing `tenant_only=true`.
_TENANT_ROLE_TYPES = frozenset({"role.bound_to_resource", "role.unbound_from_resource"})


def is_tenant_scoped(event_type: str) -> bool:
    """True for types the API returns only with `tenant_only=true` (also unknown `tenant.*`)."""
    return event_type.startswith("tenant.") or event_type in _TENANT_ROLE_TYPES


def unknown_event_types(types: Iterable[str]) -> list[str]:
    """The types of `types` the catalog does not list, sorted."""
    return sorted({t for t in types if t not in _KNOWN})


def split_by_scope(types: Iterable[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """`types` as (those the ordinary listing returns, those only `tenant_only=true` returns)."""
    ordinary = tuple(t for t in types if not is_tenant_scoped(t))
    tenant = tuple(t for t in types if is_tenant_scoped(t))
    return ordinary, tenant
