"""Sutram's platform: models, interfaces, engine and backends, free of any framework.

``Budget``, ``durable_step`` and ``__version__`` are looked up when first named: importing
the checkpointer does not load the run ledger's modules nor read the package metadata.
"""

from typing import TYPE_CHECKING, Any

from sutram_core._lazy import lazy_attributes
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
from sutram_core.tenancy import DEFAULT_TENANT, resolve_tenant, validate_tenant

if TYPE_CHECKING:
    from sutram_core.runs import Budget, durable_step

    __version__: str

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

_lazy = lazy_attributes(__name__, {"Budget": "runs", "durable_step": "runs"}, globals())


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            found = version("sutram")
        except PackageNotFoundError:  # a source tree that was never installed
            found = "0+unknown"
        globals()["__version__"] = found
        return found
    return _lazy(name)


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
