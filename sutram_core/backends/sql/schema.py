"""The one SQLAlchemy schema shared by SQLite and PostgreSQL.

Tables are declared once here; ``migrations.py`` creates them in order. Every table
starts its primary key with ``tenant_id`` so that no row can exist outside a tenant.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.dialects.postgresql import JSONB

__all__ = [
    "ALL_PARTS",
    "PARTS",
    "audit_log",
    "blob_chain_index",
    "checkpoint_blobs",
    "checkpoint_writes",
    "checkpoints",
    "journal",
    "memories",
    "memory_current_index",
    "memory_expiry_index",
    "memory_id_index",
    "memory_key_index",
    "memory_seq_index",
    "memory_state",
    "metadata",
    "run_index",
    "run_lease_index",
    "run_thread_index",
    "runs",
    "schema_version",
    "span_start_index",
    "span_thread_index",
    "spans",
    "thread_tombstones",
    "workflow_events",
    "workflow_handler_id_index",
    "workflow_handler_run_index",
    "workflow_handlers",
    "workflow_journal",
    "workflow_state",
    "workflow_ticks",
]

metadata = MetaData()

schema_version = Table(
    "sutram_schema_version",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("description", Text, nullable=False),
    Column("applied_at", String, nullable=False),
)

# One row per checkpoint. ``checkpoint`` holds the serialized checkpoint without its
# channel values (those live in checkpoint_blobs, once per channel version);
# ``channel_versions`` is the JSON map channel -> version key, so the store can find and
# garbage-collect blobs without deserializing anything.
checkpoints = Table(
    "sutram_checkpoints",
    metadata,
    Column("tenant_id", String, primary_key=True),
    Column("thread_id", String, primary_key=True),
    Column("checkpoint_ns", String, primary_key=True),
    Column("checkpoint_id", String, primary_key=True),
    Column("parent_checkpoint_id", String, nullable=True),
    Column("run_id", String, nullable=True),
    Column("type", String, nullable=False),
    Column("checkpoint", LargeBinary, nullable=False),
    Column("channel_versions", Text, nullable=False),
    Column("metadata", Text, nullable=False),
)

# One row per (channel, version). ``kind`` is "full" (the whole serialized value),
# "delta" (only the items appended to a list since ``prev_version``; ``base_version``
# names the full row the chain starts from) or "empty" (the channel had no value).
checkpoint_blobs = Table(
    "sutram_checkpoint_blobs",
    metadata,
    Column("tenant_id", String, primary_key=True),
    Column("thread_id", String, primary_key=True),
    Column("checkpoint_ns", String, primary_key=True),
    Column("channel", String, primary_key=True),
    Column("version", String, primary_key=True),
    Column("kind", String(8), nullable=False),
    Column("type", String, nullable=False),
    Column("data", LargeBinary, nullable=False),
    Column("base_version", String, nullable=True),
    Column("prev_version", String, nullable=True),
    Column("items", Integer, nullable=True),
)

# The delta rows of each chain, by the full row it starts from. Partial (schema version 12):
# full rows have no base, so they cost no entry here, and a lookup of a row by its version
# cannot pick this index over the primary key (with stale statistics PostgreSQL did, then
# scanned every version of the channel).
blob_chain_index = Index(
    "ix_sutram_blobs_chain",
    checkpoint_blobs.c.tenant_id,
    checkpoint_blobs.c.thread_id,
    checkpoint_blobs.c.checkpoint_ns,
    checkpoint_blobs.c.channel,
    checkpoint_blobs.c.base_version,
    postgresql_where=checkpoint_blobs.c.base_version.isnot(None),
    sqlite_where=checkpoint_blobs.c.base_version.isnot(None),
)

checkpoint_writes = Table(
    "sutram_checkpoint_writes",
    metadata,
    Column("tenant_id", String, primary_key=True),
    Column("thread_id", String, primary_key=True),
    Column("checkpoint_ns", String, primary_key=True),
    Column("checkpoint_id", String, primary_key=True),
    Column("task_id", String, primary_key=True),
    Column("idx", Integer, primary_key=True, autoincrement=False),
    Column("channel", String, nullable=False),
    Column("type", String, nullable=False),
    Column("data", LargeBinary, nullable=False),
    Column("task_path", String, nullable=False, default=""),
)

# Added in schema version 2 (langgraph 7206): a deleted thread leaves a mark, and a late
# put or put_writes for a checkpoint created before the mark is ignored instead of
# bringing the thread back.
thread_tombstones = Table(
    "sutram_thread_tombstones",
    metadata,
    Column("tenant_id", String, primary_key=True),
    Column("thread_id", String, primary_key=True),
    Column("mark", String, nullable=False),
)

# Partial (schema version 15): a run id is in a checkpoint's metadata only when the caller's
# config names one (LangGraph's server does; a plain graph and Sutram's runner do not), and
# an entry for every other checkpoint cost each write a page of this index.
run_index = Index(
    "ix_sutram_checkpoints_run",
    checkpoints.c.tenant_id,
    checkpoints.c.run_id,
    postgresql_where=checkpoints.c.run_id.isnot(None),
    sqlite_where=checkpoints.c.run_id.isnot(None),
)

# Added in schema version 3: one row per finished span (a root span is written when it
# starts, with status "running", and rewritten when it ends). Attribute names follow the
# OpenTelemetry GenAI conventions; see ``sutram_core.traces.spans``.
spans = Table(
    "sutram_spans",
    metadata,
    Column("tenant_id", String, primary_key=True),
    # run first: a run's spans are one range of the primary key, and no second index is kept
    Column("run_id", String, primary_key=True),
    Column("span_id", String, primary_key=True),
    Column("parent_id", String, nullable=True),
    Column("name", String, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("operation", String(32), nullable=True),
    Column("status", String(16), nullable=False),
    Column("error_type", String, nullable=True),
    Column("error_message", Text, nullable=True),
    Column("start_ns", BigInteger, nullable=False),
    Column("end_ns", BigInteger, nullable=True),
    Column("thread_id", String, nullable=True),
    Column("checkpoint_ns", String, nullable=True),
    Column("task_id", String, nullable=True),
    Column("step", Integer, nullable=True),
    Column("provider", String, nullable=True),
    Column("request_model", String, nullable=True),
    Column("response_model", String, nullable=True),
    Column("input_tokens", Integer, nullable=True),
    Column("output_tokens", Integer, nullable=True),
    Column("cache_read_tokens", Integer, nullable=True),
    Column("cost_usd", Float, nullable=True),
    Column("tool_name", String, nullable=True),
    Column("tool_call_id", String, nullable=True),
    Column("inputs", Text, nullable=True),
    Column("outputs", Text, nullable=True),
    Column("attributes", Text, nullable=False),
)

# Runs are root spans. Two partial indexes cover the runs list (of a tenant, of a thread),
# newest first; a child span pays for neither.
_ROOTS = spans.c.parent_id.is_(None)
span_start_index = Index(
    "ix_sutram_spans_roots", spans.c.tenant_id, spans.c.start_ns, sqlite_where=_ROOTS, postgresql_where=_ROOTS
)
span_thread_index = Index(
    "ix_sutram_spans_thread_roots", spans.c.tenant_id, spans.c.thread_id, spans.c.start_ns,
    sqlite_where=_ROOTS, postgresql_where=_ROOTS,
)
# Added in schema version 9: a tenant's model calls by time, for the stats page, the
# model filter and the list of models (only model-call rows pay for it on write)
_MODEL_CALLS = spans.c.kind == "llm"
span_model_call_index = Index(
    "ix_sutram_spans_model_calls", spans.c.tenant_id, spans.c.start_ns,
    sqlite_where=_MODEL_CALLS, postgresql_where=_MODEL_CALLS,
)

# Added in schema version 3: the audit log, an append-only hash chain per tenant. Each
# entry covers one written batch: ``records`` is the JSON list of [span id, row digest]
# and ``hash = sha256(prev_hash | sha256(records))``; ``sutram audit verify`` recomputes it.
audit_log = Table(
    "sutram_audit_log",
    metadata,
    Column("tenant_id", String, primary_key=True),
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("records", Text, nullable=False),
    Column("prev_hash", String(128), nullable=False),
    Column("hash", String(128), nullable=False),
    Column("recorded_at_ns", BigInteger, nullable=False),
)

# Added in schema version 4: memories. ``pk`` is an ever-increasing integer (never reused,
# so an in-process vector index can key on it); ``id`` is the public id. The current
# record of a key has ``valid_to`` NULL; closed versions stay. ``namespace`` is the labels
# joined by "\x1f" (each label followed by one), so a prefix is a string range. ``seq``
# is the tenant's change number of the last write to the row. PostgreSQL keeps value and
# metadata as jsonb, a generated tsvector for keyword search, and (added when the store
# first runs with pgvector) a vector column; SQLite keeps the vector as float32 bytes and
# an FTS5 index.
_JSON = Text().with_variant(JSONB(), "postgresql")
memories = Table(
    "sutram_memories",
    metadata,
    Column("pk", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("tenant_id", String, nullable=False),
    Column("id", String(32), nullable=False),
    Column("namespace", String().with_variant(String(collation="C"), "postgresql"), nullable=False),
    Column("depth", Integer, nullable=False),
    Column("key", String, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("text", Text, nullable=False),
    Column("value", _JSON, nullable=False),
    Column("metadata", _JSON, nullable=False),
    Column("embedding", LargeBinary, nullable=True),
    Column("provenance", Text, nullable=True),
    Column("version", Integer, nullable=False),
    Column("supersedes", String(32), nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("valid_from", BigInteger, nullable=False),
    Column("valid_to", BigInteger, nullable=True),
    Column("ttl_seconds", Float, nullable=True),
    Column("expires_at", BigInteger, nullable=True),
    Column("seq", BigInteger, nullable=False),
    sqlite_autoincrement=True,
)
_CURRENT = memories.c.valid_to.is_(None)
memory_current_index = Index(
    "ux_sutram_memories_current", memories.c.tenant_id, memories.c.namespace, memories.c.key,
    unique=True, sqlite_where=_CURRENT, postgresql_where=_CURRENT,
)
memory_id_index = Index("ux_sutram_memories_id", memories.c.tenant_id, memories.c.id, unique=True)
memory_key_index = Index(
    "ix_sutram_memories_versions", memories.c.tenant_id, memories.c.namespace, memories.c.key, memories.c.version
)
memory_seq_index = Index("ix_sutram_memories_seq", memories.c.tenant_id, memories.c.seq)
_EXPIRING = memories.c.expires_at.isnot(None)
memory_expiry_index = Index(
    "ix_sutram_memories_expiry", memories.c.expires_at, sqlite_where=_EXPIRING, postgresql_where=_EXPIRING
)

# Per tenant: the last change number and how many hard deletes happened (an in-process
# vector index reloads when the count moves).
memory_state = Table(
    "sutram_memory_state",
    metadata,
    Column("tenant_id", String, primary_key=True),
    Column("seq", BigInteger, nullable=False),
    Column("deletes", BigInteger, nullable=False),
)

# Added in schema version 5: the run ledger. ``fence`` rises with every claim; writes by an
# executor carry the fence it claimed with, and are refused once another claim raised it.
# Times are microseconds since the epoch.
runs = Table(
    "sutram_runs",
    metadata,
    Column("tenant_id", String, primary_key=True),
    Column("run_id", String, primary_key=True),
    Column("thread_id", String, nullable=False),
    Column("graph_name", String, nullable=False),
    Column("graph_version", String, nullable=False),
    Column("status", String(16), nullable=False),
    Column("executor_id", String, nullable=True),
    Column("fence", BigInteger, nullable=False),
    Column("lease_expires_at", BigInteger, nullable=True),
    Column("budget", Text, nullable=False),
    Column("spend", Text, nullable=False),
    Column("pause_reason", Text, nullable=True),
    Column("error", Text, nullable=True),
    Column("attempts", Integer, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("finished_at", BigInteger, nullable=True),
)
_LIVE = runs.c.status == "running"
run_lease_index = Index(
    "ix_sutram_runs_leases", runs.c.lease_expires_at, sqlite_where=_LIVE, postgresql_where=_LIVE
)
run_thread_index = Index("ix_sutram_runs_thread", runs.c.tenant_id, runs.c.thread_id, runs.c.created_at)

# Added in schema version 6: what each durable run was started with (serialized as the
# checkpointer serializes state, never pickled), so a run whose worker died before the
# first checkpoint was written is started again from its input instead of failing.
run_inputs = Table(
    "sutram_run_inputs",
    metadata,
    Column("tenant_id", String, primary_key=True),
    Column("run_id", String, primary_key=True),
    Column("type", String, nullable=False),
    Column("data", LargeBinary, nullable=False),
)

# Added in schema version 5: the call journal. One row per completed LLM call or durable
# step, keyed by where it happened (thread, checkpoint namespace, task) and its position
# among the task's calls; the first result recorded for a key is kept (exactly once).
journal = Table(
    "sutram_journal",
    metadata,
    Column("tenant_id", String, primary_key=True),
    Column("thread_id", String, primary_key=True),
    Column("checkpoint_ns", String, primary_key=True),
    Column("task_id", String, primary_key=True),
    Column("call_index", Integer, primary_key=True, autoincrement=False),
    Column("kind", String(16), nullable=False),
    Column("name", String, nullable=False),
    Column("input_hash", String(64), nullable=False),
    Column("output", Text, nullable=False),
    Column("run_id", String, nullable=True),
    Column("tokens", Integer, nullable=False),
    Column("cost_usd", Float, nullable=False),
    Column("compensate", String, nullable=True),
    Column("created_at", BigInteger, nullable=False),
)

# Added in schema version 10: the LlamaIndex workflow server's handler store
# (``sutram_adapters.llama_index.workflow_store``). ``pk`` only orders handlers by when they
# were first stored (an update keeps it); a handler is found by (tenant, handler id). Times
# are microseconds since the epoch; ``result`` is the JSON the workflow serializer wrote.
workflow_handlers = Table(
    "sutram_workflow_handlers",
    metadata,
    Column("pk", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("tenant_id", String, nullable=False),
    Column("handler_id", String, nullable=False),
    Column("workflow_name", String, nullable=False),
    Column("status", String(16), nullable=False),
    Column("run_id", String, nullable=True),
    Column("error", Text, nullable=True),
    Column("result", Text, nullable=True),
    Column("started_at", BigInteger, nullable=True),
    Column("updated_at", BigInteger, nullable=True),
    Column("completed_at", BigInteger, nullable=True),
    Column("idle_since", BigInteger, nullable=True),
    sqlite_autoincrement=True,
)
workflow_handler_id_index = Index(
    "ux_sutram_workflow_handlers_id", workflow_handlers.c.tenant_id, workflow_handlers.c.handler_id, unique=True
)
workflow_handler_run_index = Index(
    "ix_sutram_workflow_handlers_run", workflow_handlers.c.tenant_id, workflow_handlers.c.run_id
)

# A run's published events and its runtime ticks: append-only, numbered 0, 1, 2, ... per
# (tenant, run); each row is the JSON text the framework's model dumps to.
workflow_events = Table(
    "sutram_workflow_events",
    metadata,
    Column("tenant_id", String, primary_key=True),
    Column("run_id", String, primary_key=True),
    Column("sequence", BigInteger, primary_key=True, autoincrement=False),
    Column("recorded_at", BigInteger, nullable=False),
    Column("event", Text, nullable=False),
)
workflow_ticks = Table(
    "sutram_workflow_ticks",
    metadata,
    Column("tenant_id", String, primary_key=True),
    Column("run_id", String, primary_key=True),
    Column("sequence", BigInteger, primary_key=True, autoincrement=False),
    Column("recorded_at", BigInteger, nullable=False),
    Column("tick", Text, nullable=False),
)

# A run's workflow state, one row per state namespace (the JSON list of its labels; "[]"
# for the root). ``state`` is the JSON the workflow serializer wrote.
workflow_state = Table(
    "sutram_workflow_state",
    metadata,
    Column("tenant_id", String, primary_key=True),
    Column("run_id", String, primary_key=True),
    Column("namespace", String, primary_key=True),
    Column("state", Text, nullable=False),
    Column("state_type", String, nullable=True),
    Column("state_module", String, nullable=True),
    Column("updated_at", BigInteger, nullable=False),
)

# Added in schema version 11: a durable LlamaIndex workflow run's journal
# (``sutram_adapters.llama_index.durable``): each runtime tick of the run, numbered from 0 as
# the workflow runtime numbers them, written before the tick's effects start. Replaying the
# ticks rebuilds the run's state, so a run whose worker died continues from its last step.
workflow_journal = Table(
    "sutram_workflow_journal",
    metadata,
    Column("tenant_id", String, primary_key=True),
    Column("run_id", String, primary_key=True),
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("tick", Text, nullable=False),
    # after a step's result: the run's state (its Context store) as the step left it
    Column("state", Text, nullable=True),
    Column("recorded_at", BigInteger, nullable=False),
)


# The schema comes in parts, each the tables of one feature. From schema version 14 a part
# is made when something first needs it (``Database.setup(parts)``): a saver alone makes the
# checkpoint tables only, which is what LangGraph's own savers make, and a database holds
# another part once a store of it is used. The first table of a part tells whether it exists.
PARTS: dict[str, tuple[Table, ...]] = {
    "checkpoints": (checkpoints, checkpoint_blobs, checkpoint_writes, thread_tombstones),
    "traces": (spans, audit_log),
    "memory": (memories, memory_state),
    "runs": (runs, run_inputs, journal),
    "workflows": (workflow_handlers, workflow_events, workflow_ticks, workflow_state, workflow_journal),
}
ALL_PARTS = frozenset(PARTS)
