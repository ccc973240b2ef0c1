"""LlamaIndex integration: instrumentation span/event handlers, a legacy callback handler,
memory (chat store, memory blocks, ``SutramMemory``), journaled LLMs (``journaled``), durable
workflows and agents (``durable_workflow``) and the workflow server's handler store
(``SutramWorkflowStore``, which needs ``llama-agents-server``); the last two are imported when
first named."""

from typing import TYPE_CHECKING

from sutram_core._lazy import lazy_attributes
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

if TYPE_CHECKING:
    from sutram_adapters.llama_index.durable import DurableWorkflow, durable_workflow
    from sutram_adapters.llama_index.workflow_store import SutramWorkflowStore

__all__ = [
    "DurableWorkflow",
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
    "SutramWorkflowStore",
    "close_shared_memories",
    "durable_workflow",
    "instrument",
    "journaled",
    "trace_scope",
]

__getattr__ = lazy_attributes(__name__, {"SutramWorkflowStore": "workflow_store", "DurableWorkflow": "durable",
                                         "durable_workflow": "durable"}, globals())


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
