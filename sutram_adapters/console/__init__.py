"""The operator console (``sutram serve``): runs, traces, checkpoints, memory and audit in
the browser, over the same database (see :mod:`sutram_adapters.console.app`)."""

from sutram_adapters.console.app import ConsoleAccess, create_app

__all__ = ["ConsoleAccess", "create_app"]
