"""The SQL backend (SQLite and PostgreSQL through SQLAlchemy 2)."""

from sutram_core.backends.sql.checkpoints import SqlCheckpointStore
from sutram_core.backends.sql.database import Database

__all__ = ["Database", "SqlCheckpointStore"]
