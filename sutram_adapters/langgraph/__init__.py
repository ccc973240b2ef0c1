"""LangGraph integration: the checkpointer, the long-term memory store and the durable runner.

``SutramStore`` needs the ``memory`` extra; it is imported when first named, so that the
checkpointer and the durable runner import without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sutram_adapters.langgraph.durable import DurableRunner, durable, run_memory_namespace
from sutram_adapters.langgraph.saver import SutramSaver

if TYPE_CHECKING:
    from sutram_adapters.langgraph.store import SutramStore

__all__ = ["DurableRunner", "SutramSaver", "SutramStore", "durable", "run_memory_namespace"]


def __getattr__(name: str) -> Any:
    if name == "SutramStore":
        from sutram_adapters.langgraph.store import SutramStore

        globals()[name] = SutramStore
        return SutramStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
