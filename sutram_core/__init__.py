"""Sutram's platform: models, interfaces, engine and backends, free of any framework."""

from importlib.metadata import PackageNotFoundError, version

from sutram_core.config import DEFAULT_URL, parse_url
from sutram_core.errors import (
    CheckpointCorruptError,
    CheckpointDecodeError,
    CheckpointError,
    ConfigurationError,
    InvalidCheckpointError,
    MissingDependencyError,
    SchemaVersionError,
    StorageError,
    SutramError,
    TenantError,
)
from sutram_core.runs import Budget, durable_step
from sutram_core.tenancy import DEFAULT_TENANT, resolve_tenant, validate_tenant

try:
    __version__ = version("sutram")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "DEFAULT_TENANT",
    "DEFAULT_URL",
    "Budget",
    "CheckpointCorruptError",
    "CheckpointDecodeError",
    "CheckpointError",
    "ConfigurationError",
    "InvalidCheckpointError",
    "MissingDependencyError",
    "SchemaVersionError",
    "StorageError",
    "SutramError",
    "TenantError",
    "__version__",
    "durable_step",
    "parse_url",
    "resolve_tenant",
    "validate_tenant",
]
