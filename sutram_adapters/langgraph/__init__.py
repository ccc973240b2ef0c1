"""LangGraph integration: the checkpointer, the long-term memory store and the durable runner."""

from sutram_adapters.langgraph.durable import DurableRunner, durable, run_memory_namespace
from sutram_adapters.langgraph.saver import SutramSaver
from sutram_adapters.langgraph.store import SutramStore

__all__ = ["DurableRunner", "SutramSaver", "SutramStore", "durable", "run_memory_namespace"]
