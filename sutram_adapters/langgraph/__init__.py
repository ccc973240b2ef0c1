"""LangGraph integration: the checkpointer (and later the store and durable runner)."""

from sutram_adapters.langgraph.saver import SutramSaver

__all__ = ["SutramSaver"]
