"""LlamaIndex integration: instrumentation span/event handlers and a legacy callback handler."""

from sutram_adapters.llama_index.callbacks import SutramLlamaCallbackHandler
from sutram_adapters.llama_index.instrumentation import (
    SutramEventHandler,
    SutramInstrumentation,
    SutramSpanHandler,
    instrument,
    trace_scope,
)

__all__ = [
    "SutramEventHandler",
    "SutramInstrumentation",
    "SutramLlamaCallbackHandler",
    "SutramSpanHandler",
    "instrument",
    "trace_scope",
]
