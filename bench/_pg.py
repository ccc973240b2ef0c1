"""A throwaway PostgreSQL schema for one benchmark run (pgvector's type stays on the path)."""

from __future__ import annotations

import uuid
from urllib.parse import quote

__all__ = ["drop_schema", "fresh_schema"]


def fresh_schema(base_url: str) -> tuple[str, str]:
    """Create an empty schema; return (a URL whose search path starts with it, its name)."""
    import psycopg

    schema = f"bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(base_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in base_url else "?"
    return f"{base_url}{sep}options={quote(f'-csearch_path={schema},public')}", schema


def drop_schema(base_url: str, schema: str) -> None:
    """Drop a schema made by :func:`fresh_schema` and everything in it."""
    import psycopg

    with psycopg.connect(base_url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")
