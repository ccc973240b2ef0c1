"""The operator console (``sutram serve``): runs, traces, checkpoints, memory and audit in
the browser, over the same database (see :mod:`sutram_adapters.console.app`)."""

from sutram_core.errors import MissingDependencyError

try:  # the console extra
    import jinja2  # noqa: F401
    import starlette  # noqa: F401
    import uvicorn  # noqa: F401
except ImportError as exc:
    raise MissingDependencyError(exc.name or "starlette", "console") from exc

from sutram_adapters.console.app import ConsoleAccess, create_app

__all__ = ["ConsoleAccess", "create_app"]
