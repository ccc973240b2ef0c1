"""LangChain integration: the tracing callback handler and the journaled-call cache hook."""

from sutram_adapters.langchain.handler import SutramCallbackHandler
from sutram_adapters.langchain.journal import JournalCache

__all__ = ["JournalCache", "SutramCallbackHandler"]
