"""The audit log: an append-only hash chain per tenant over finished spans (a run is its
root span). Pure functions; the SQL backend stores and reads the entries.

Each entry covers one written batch of a tenant: ``records`` lists ``[span id, digest]``
for every span in it, and ``hash_n = sha256(hash_{n-1} | sha256(records_n))``.
:func:`verify_chain` recomputes the chain and compares every stored span with the digest
it was logged with, so it finds an edited span, a deleted span, an edited or deleted
log entry, and a span inserted without going through the log.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

__all__ = [
    "GENESIS", "AuditEntry", "AuditProblem", "AuditReport", "chain_hash", "encode_records", "row_digest",
    "verify_chain",
]

GENESIS = "0" * 64


def row_digest(values: Sequence[Any]) -> str:
    """SHA-256 over a span row's column values, in table order."""
    return hashlib.sha256(orjson.dumps(list(values))).hexdigest()


def encode_records(records: Sequence[tuple[str, str]]) -> str:
    """The stored form of an entry's ``[span id, digest]`` list."""
    return orjson.dumps(records).decode()


def chain_hash(prev_hash: str, records: str) -> str:
    """The hash of one entry, from its predecessor's hash and its records text."""
    return hashlib.sha256(f"{prev_hash}|{hashlib.sha256(records.encode()).hexdigest()}".encode()).hexdigest()


@dataclass(frozen=True)
class AuditEntry:
    """One row of the audit log."""

    seq: int
    records: str
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class AuditProblem:
    """One thing that does not verify; ``what`` is a sentence naming the row."""

    kind: str  # edited_record | deleted_record | unlogged_record | broken_chain | edited_entry | missing_entry
    record_id: str | None
    seq: int | None
    what: str


@dataclass
class AuditReport:
    """The result of verifying one tenant's chain."""

    tenant_id: str
    entries: int = 0
    records: int = 0
    problems: list[AuditProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when the whole chain and every logged row verify."""
        return not self.problems


def verify_chain(tenant_id: str, entries: Iterable[AuditEntry], rows: Mapping[str, Sequence[Any]]) -> AuditReport:
    """Check ``entries`` (ordered by seq) against the finished span ``rows`` (column
    values in table order) by span id."""
    report = AuditReport(tenant_id, records=len(rows))
    problems = report.problems
    prev, expected_seq = GENESIS, 1
    latest: dict[str, tuple[str, int]] = {}
    for e in entries:
        report.entries += 1
        if e.seq != expected_seq:
            problems.append(AuditProblem("missing_entry", None, expected_seq,
                                         f"audit entries {expected_seq}..{e.seq - 1} of tenant {tenant_id!r} are missing (deleted)"))
        if e.prev_hash != prev:
            problems.append(AuditProblem("broken_chain", None, e.seq,
                                         f"audit entry {e.seq} does not follow the entry before it"))
        if chain_hash(e.prev_hash, e.records) != e.hash:
            problems.append(AuditProblem("edited_entry", None, e.seq, f"audit entry {e.seq} was edited"))
        prev, expected_seq = e.hash, e.seq + 1
        try:
            for record_id, digest in orjson.loads(e.records):
                latest[record_id] = (digest, e.seq)
        except (orjson.JSONDecodeError, TypeError, ValueError):
            problems.append(AuditProblem("edited_entry", None, e.seq, f"audit entry {e.seq} is unreadable"))
    for record_id, (digest, seq) in latest.items():
        row = rows.get(record_id)
        if row is None:
            problems.append(AuditProblem("deleted_record", record_id, seq,
                                         f"span {record_id} (audit entry {seq}) was deleted"))
        elif row_digest(row) != digest:
            problems.append(AuditProblem("edited_record", record_id, seq,
                                         f"span {record_id} was edited after it was logged (audit entry {seq})"))
    for record_id in rows.keys() - latest.keys():
        problems.append(AuditProblem("unlogged_record", record_id, None,
                                     f"span {record_id} is not in the audit log (inserted behind Sutram's back)"))
    return report
