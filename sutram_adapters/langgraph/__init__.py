"""LangGraph integration: the checkpointer, the long-term memory store and the durable runner.

Only the checkpointer is imported with the package: ``import sutram_adapters.langgraph``
costs what LangGraph's own saver does plus SQLAlchemy (``bench/imports.py``). The durable
runner (which brings LangChain's callbacks and tracers) and ``SutramStore`` (the ``memory``
extra) are imported when first named.
"""

from __future__ import annotations

import sys
import types
from typing import TYPE_CHECKING, Any

from sutram_adapters.langgraph.saver import SutramSaver
from sutram_core._lazy import lazy_attributes

if TYPE_CHECKING:
    from sutram_adapters.langgraph.durable import DurableRunner, durable, run_memory_namespace
    from sutram_adapters.langgraph.store import SutramStore

__all__ = ["DurableRunner", "SutramSaver", "SutramStore", "durable", "run_memory_namespace"]

_LAZY = {"SutramStore": "store", "DurableRunner": "durable", "durable": "durable",
         "run_memory_namespace": "durable"}


__getattr__ = lazy_attributes(__name__, _LAZY, globals())


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


class _Package(types.ModuleType):
    """Importing the submodule ``durable`` binds it on the package; the package's
    ``durable`` stays the function (as when it was imported eagerly)."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "durable" and isinstance(value, types.ModuleType):
            value = value.durable
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
