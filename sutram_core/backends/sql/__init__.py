"""The SQL backend (SQLite and PostgreSQL through SQLAlchemy 2)."""

from sutram_core.backends.sql.checkpoints import SqlCheckpointStore
from sutram_core.backends.sql.database import Database
from sutram_core.backends.sql.traces import SqlTraceStore

__all__ = ["Database", "SqlCheckpointStore", "SqlTraceStore"]
