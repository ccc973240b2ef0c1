"""The audit log: an append-only hash chain per tenant over finished spans (a run is its
root span). Pure functions; the SQL backend stores and reads the entries.

Entry ``n`` of a tenant holds the digest of one span row and
``hash_n = sha256(hash_{n-1} | digest_n | record_id_n)``. :func:`verify_chain` recomputes
the chain and compares every row with the digest it was logged with, so it finds an
edited span, a deleted span, an edited or deleted log entry, and a span that was
inserted without going through the log.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["GENESIS", "AuditEntry", "AuditProblem", "AuditReport", "chain_hash", "row_digest", "verify_chain"]

GENESIS = "0" * 64


def row_digest(row: Mapping[str, Any]) -> str:
    """SHA-256 over a canonical JSON form of a stored span row (every column)."""
    text = json.dumps(dict(row), sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def chain_hash(prev_hash: str, digest: str, record_id: str) -> str:
    """The hash of one entry, from its predecessor's."""
    return hashlib.sha256(f"{prev_hash}|{digest}|{record_id}".encode()).hexdigest()


@dataclass(frozen=True)
class AuditEntry:
    """One row of the audit log."""

    seq: int
    record_type: str
    record_id: str
    digest: str
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


def verify_chain(
    tenant_id: str, entries: Iterable[AuditEntry], rows: Mapping[str, Mapping[str, Any]]
) -> AuditReport:
    """Check ``entries`` (ordered by seq) against the finished span ``rows`` by span id."""
    report = AuditReport(tenant_id, records=len(rows))
    prev, expected_seq = GENESIS, 1
    latest: dict[str, AuditEntry] = {}
    for e in entries:
        report.entries += 1
        if e.seq != expected_seq:
            report.problems.append(AuditProblem(
                "missing_entry", None, expected_seq,
                f"audit entries {expected_seq}..{e.seq - 1} of tenant {tenant_id!r} are missing (deleted)",
            ))
        if e.prev_hash != prev:
            report.problems.append(AuditProblem(
                "broken_chain", e.record_id, e.seq,
                f"audit entry {e.seq} (span {e.record_id}) does not follow the entry before it",
            ))
        if chain_hash(e.prev_hash, e.digest, e.record_id) != e.hash:
            report.problems.append(AuditProblem(
                "edited_entry", e.record_id, e.seq, f"audit entry {e.seq} (span {e.record_id}) was edited",
            ))
        prev, expected_seq = e.hash, e.seq + 1
        latest[e.record_id] = e
    for record_id, e in latest.items():
        row = rows.get(record_id)
        if row is None:
            report.problems.append(AuditProblem(
                "deleted_record", record_id, e.seq, f"span {record_id} (audit entry {e.seq}) was deleted",
            ))
        elif row_digest(row) != e.digest:
            report.problems.append(AuditProblem(
                "edited_record", record_id, e.seq,
                f"span {record_id} was edited after it was logged (audit entry {e.seq})",
            ))
    for record_id in rows.keys() - latest.keys():
        report.problems.append(AuditProblem(
            "unlogged_record", record_id, None, f"span {record_id} is not in the audit log (inserted behind Sutram's back)",
        ))
    return report
