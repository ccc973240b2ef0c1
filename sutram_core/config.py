"""Configuration: one URL decides the backend.

``SUTRAM_URL`` names the database; without it Sutram uses a SQLite file under
``./.sutram/``. Accepted forms::

    sqlite:///relative/path.db       sqlite:////absolute/path.db
    sqlite:///app.db?synchronous=FULL
    postgresql://user:pass@host:5432/db   (also postgres:// and postgresql+psycopg://)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from sutram_core.errors import ConfigurationError

__all__ = ["DEFAULT_URL", "DatabaseURL", "default_url", "parse_url"]

DEFAULT_URL = "sqlite:///.sutram/sutram.db"
_SQLITE_SYNC = {"OFF", "NORMAL", "FULL", "EXTRA"}


@dataclass(frozen=True)
class DatabaseURL:
    """A parsed database URL.

    ``sqlalchemy_url`` is what SQLAlchemy is given; ``options`` holds Sutram's own query
    parameters (for SQLite, ``synchronous``), which are not passed to the driver.
    """

    backend: str  # "sqlite" or "postgresql"
    sqlalchemy_url: str
    options: dict[str, str]
    path: Path | None = None  # the SQLite file


def default_url() -> str:
    """The URL from ``SUTRAM_URL``, or the embedded SQLite default."""
    return os.environ.get("SUTRAM_URL") or DEFAULT_URL


def parse_url(url: str | None = None) -> DatabaseURL:
    """Parse a Sutram database URL (default: :func:`default_url`).

    Raises :class:`ConfigurationError` for an unknown scheme or option.
    """
    raw = url or default_url()
    parts = urlsplit(raw)
    scheme = parts.scheme.lower()
    query = dict(parse_qsl(parts.query))
    if scheme in ("sqlite", "sqlite+pysqlite"):
        if raw.startswith(f"{parts.scheme}:///"):
            path_text = raw[len(f"{parts.scheme}:///") :].split("?", 1)[0]
        else:
            raise ConfigurationError(
                f"SQLite URL {raw!r} needs three slashes: sqlite:///relative.db or "
                "sqlite:////absolute/path.db"
            )
        if not path_text or path_text == ":memory:":
            raise ConfigurationError(
                "Sutram needs a SQLite file (several connections share it); give a path "
                "such as sqlite:///.sutram/sutram.db"
            )
        sync = query.pop("synchronous", "NORMAL").upper()
        if sync not in _SQLITE_SYNC:
            raise ConfigurationError(
                f"synchronous={sync!r} is not a SQLite setting; use one of {sorted(_SQLITE_SYNC)}"
            )
        if query:
            raise ConfigurationError(f"unknown SQLite URL options {sorted(query)}")
        path = Path(path_text)
        return DatabaseURL("sqlite", f"sqlite+pysqlite:///{path}", {"synchronous": sync}, path)
    if scheme in ("postgresql", "postgres", "postgresql+psycopg"):
        rest = raw.split("://", 1)[1]
        return DatabaseURL("postgresql", f"postgresql+psycopg://{rest}", {})
    raise ConfigurationError(
        f"unsupported database URL {raw!r}: use sqlite:///path.db or postgresql://..."
    )
