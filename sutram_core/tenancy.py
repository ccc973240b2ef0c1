"""Tenant scope: every read and write in Sutram names exactly one tenant.

A tenant id is a short printable string. Stores are bound to a tenant, or take it per
call; there is no API that reads or writes across tenants.
"""

from __future__ import annotations

import re

from sutram_core.errors import TenantError

__all__ = ["DEFAULT_TENANT", "resolve_tenant", "validate_tenant"]

DEFAULT_TENANT = "default"
_TENANT_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:@\-]{0,127}")


def validate_tenant(tenant: object) -> str:
    """Return ``tenant`` if it is a valid tenant id, else raise :class:`TenantError`.

    >>> validate_tenant("acme")
    'acme'
    """
    if not isinstance(tenant, str) or not _TENANT_RE.fullmatch(tenant):
        raise TenantError(
            f"invalid tenant id {tenant!r}: use 1 to 128 characters from letters, digits "
            "and _ . : @ -, starting with a letter or digit"
        )
    return tenant


def resolve_tenant(bound: str | None, requested: object | None) -> str:
    """Decide the tenant of one call.

    ``bound`` is the tenant a store was created for (or None); ``requested`` is the tenant
    named by the call (for LangGraph, ``config["configurable"]["tenant_id"]``). A store
    bound to a tenant refuses calls for another one.
    """
    if requested is None:
        return bound if bound is not None else DEFAULT_TENANT
    tenant = validate_tenant(requested)
    if bound is not None and tenant != bound:
        raise TenantError(
            f"this store is bound to tenant {bound!r} but the call asks for tenant "
            f"{tenant!r}; open a store for that tenant instead"
        )
    return tenant
