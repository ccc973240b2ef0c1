"""LangChain integration: the tracing callback handler."""

from sutram_adapters.langchain.handler import SutramCallbackHandler

__all__ = ["SutramCallbackHandler"]
