"""Configuration: one URL decides the backend.

``SUTRAM_URL`` names the database; without it Sutram uses a SQLite file under
``./.sutram/``. Accepted forms::

    sqlite:///relative/path.db       sqlite:////absolute/path.db
    sqlite:///app.db?synchronous=FULL
    sqlite:///app.db?mode=ro            read-only: nothing created, migrated or written
    sqlite:///app.db?immutable=1        read-only, and the file cannot change while open
    postgresql://user:pass@host:5432/db   (also postgres:// and postgresql+psycopg://)

Read-only opening is described in :mod:`sutram_core.backends.sql.sqlite_readonly`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from sutram_core.errors import ConfigurationError

__all__ = ["DEFAULT_URL", "DatabaseURL", "default_url", "parse_url", "read_only_if_unwritable"]

DEFAULT_URL = "sqlite:///.sutram/sutram.db"
_SQLITE_SYNC = {"OFF", "NORMAL", "FULL", "EXTRA"}


@dataclass(frozen=True)
class DatabaseURL:
    """A parsed database URL.

    ``sqlalchemy_url`` is what SQLAlchemy is given; ``options`` holds Sutram's own query
    parameters (for SQLite, ``synchronous``, and ``mode``/``immutable`` when read-only),
    which are not passed to the driver.
    """

    backend: str  # "sqlite" or "postgresql"
    sqlalchemy_url: str
    options: dict[str, str]
    path: Path | None = None  # the SQLite file

    @property
    def read_only(self) -> bool:
        """True for a SQLite file opened with ``?mode=ro`` or ``?immutable=1``."""
        return self.options.get("mode") == "ro" or self.options.get("immutable") == "1"


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
        options = {"synchronous": sync}
        mode = query.pop("mode", None)
        if mode is not None:
            if mode != "ro":
                raise ConfigurationError(f"mode={mode!r}: the one SQLite mode option is mode=ro (read-only)")
            options["mode"] = mode
        immutable = query.pop("immutable", None)
        if immutable is not None:
            if immutable not in ("0", "1"):
                raise ConfigurationError(f"immutable={immutable!r}: use immutable=1 (read-only, the file never changes)")
            if immutable == "1":
                options["immutable"] = immutable
        if query:
            raise ConfigurationError(f"unknown SQLite URL options {sorted(query)}")
        path = Path(path_text)
        return DatabaseURL("sqlite", f"sqlite+pysqlite:///{path}", options, path)
    if scheme in ("postgresql", "postgres", "postgresql+psycopg"):
        rest = raw.split("://", 1)[1]
        return DatabaseURL("postgresql", f"postgresql+psycopg://{rest}", {})
    raise ConfigurationError(
        f"unsupported database URL {raw!r}: use sqlite:///path.db or postgresql://..."
    )


def read_only_if_unwritable(url: str | None = None) -> str | None:
    """``url``, or, for an existing SQLite file that this process cannot write (the file or
    its folder: a read-only mount, someone else's files), the same file with ``mode=ro``.

    For commands that only read (``sutram runs``, ``trace``, ``memory``, ``audit verify``),
    so that they work where a writable opening would fail.
    """
    parsed = parse_url(url)
    path = parsed.path
    if parsed.backend != "sqlite" or parsed.read_only or path is None or not path.is_file():
        return url
    if os.access(path, os.W_OK) and os.access(path.parent, os.W_OK):
        return url
    raw = url or default_url()
    return raw + ("&" if "?" in raw else "?") + "mode=ro"


def url_of_conn_string(conn_string: str) -> str:
    """A Sutram URL for what LangGraph's ``from_conn_string`` takes: a URL as it is, a
    bare path as a SQLite file (``"app.db"`` -> ``sqlite:///app.db``)."""
    if "://" in conn_string:
        return conn_string
    if conn_string.strip() in ("", ":memory:"):
        raise ConfigurationError(
            "Sutram needs a SQLite file (several connections share it): give a path such as 'app.db', "
            "or a URL such as sqlite:///app.db or postgresql://..."
        )
    path = Path(conn_string)
    return f"sqlite:///{path}" if not path.is_absolute() else f"sqlite:////{str(path).lstrip('/')}"
