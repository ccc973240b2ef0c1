"""LlamaIndex integration: instrumentation span/event handlers, a legacy callback handler,
memory (chat store, memory blocks, ``SutramMemory``) and journaled LLMs (``journaled``)."""

from sutram_core.errors import MissingDependencyError

try:  # the llama-index extra
    import llama_index.core  # noqa: F401
except ImportError as exc:
    raise MissingDependencyError("llama-index-core", "llama-index") from exc

from sutram_adapters.llama_index.callbacks import SutramLlamaCallbackHandler
from sutram_adapters.llama_index.instrumentation import (
    SutramEventHandler,
    SutramInstrumentation,
    SutramSpanHandler,
    instrument,
    trace_scope,
)
from sutram_adapters.llama_index.journal import journaled
from sutram_adapters.llama_index.memory import (
    SutramChatStore,
    SutramEpisodicBlock,
    SutramFactBlock,
    SutramLegacyChatStore,
    SutramMemory,
    SutramProceduralBlock,
    close_shared_memories,
)

__all__ = [
    "SutramChatStore",
    "SutramEpisodicBlock",
    "SutramEventHandler",
    "SutramFactBlock",
    "SutramInstrumentation",
    "SutramLegacyChatStore",
    "SutramLlamaCallbackHandler",
    "SutramMemory",
    "SutramProceduralBlock",
    "SutramSpanHandler",
    "close_shared_memories",
    "instrument",
    "journaled",
    "trace_scope",
]
