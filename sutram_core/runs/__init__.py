"""The run ledger: runs, their leases and fences, budgets and spend; the call journal."""

from sutram_core.runs.journal import (
    CallJournal,
    CallScope,
    JournalEntry,
    JournalKey,
    compensate_run,
    compensation,
    current_scope,
    durable_step,
    idempotency_key,
    input_hash,
    journaled_call,
    ns_shape,
)
from sutram_core.runs.records import LLAMA_INDEX_VERSION, Budget, RunRecord, RunStatus, Spend

__all__ = [
    "LLAMA_INDEX_VERSION",
    "Budget",
    "CallJournal",
    "CallScope",
    "JournalEntry",
    "JournalKey",
    "RunRecord",
    "RunStatus",
    "Spend",
    "compensate_run",
    "compensation",
    "current_scope",
    "durable_step",
    "idempotency_key",
    "input_hash",
    "journaled_call",
    "ns_shape",
]
