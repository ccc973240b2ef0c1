"""LangGraph integration: the checkpointer and the long-term memory store (and later the durable runner)."""

from sutram_adapters.langgraph.saver import SutramSaver
from sutram_adapters.langgraph.store import SutramStore

__all__ = ["SutramSaver", "SutramStore"]
