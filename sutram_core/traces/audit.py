"""The audit log: an append-only hash chain per tenant over stored spans (a run is its
root span). Pure functions; the SQL backend stores and reads the entries.

Each entry covers one written batch of a tenant: ``records`` lists ``[span id, digest]``
for every span row in it (running roots too), and its hash chains it to the entry before.
:func:`verify_chain` recomputes the chain and compares every stored span with the digest
it was last logged with.

What it proves depends on the key:

* With an audit key (``SUTRAM_AUDIT_KEY``, or a file named by ``SUTRAM_AUDIT_KEY_FILE``;
  kept outside the database), each hash is an HMAC-SHA256 over the tenant, the sequence
  number, the previous hash and the records. Someone who can write the database but has
  not the key cannot edit, delete, insert or reorder spans or entries, nor recompute the
  chain, without ``verify`` reporting it. Deleting the newest entries together with their
  spans, or a tenant's whole log and spans, leaves a shorter chain that is consistent in
  itself: only a *head* kept elsewhere shows it (``sutram audit head`` prints one per
  tenant, signed with the key; ``verify --head FILE`` checks the chain still reaches it).
* Without a key the chain is plain SHA-256: it finds accidental edits and careless
  tampering, not someone who recomputes it. ``verify`` says so.

Neither stops a person who holds the key, nor proves spans that were never written
(a process killed before its batch reached the database).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from sutram_core.errors import ConfigurationError

__all__ = [
    "GENESIS", "AuditEntry", "AuditProblem", "AuditReport", "chain_hash", "check_heads", "encode_records",
    "head_record", "load_audit_key", "row_digest", "verify_chain",
]

GENESIS = "0" * 64
_KEYED = "k1"  # prefix of a keyed hash: "k1:<key id>:<hmac>"


def load_audit_key() -> bytes | None:
    """The audit key from ``SUTRAM_AUDIT_KEY`` (text) or the file ``SUTRAM_AUDIT_KEY_FILE``
    names (its bytes, surrounding whitespace removed); None when neither is set."""
    text = os.environ.get("SUTRAM_AUDIT_KEY")
    path = os.environ.get("SUTRAM_AUDIT_KEY_FILE")
    if text:
        key = text.encode()
    elif path:
        try:
            key = Path(path).read_bytes().strip()
        except OSError as exc:
            raise ConfigurationError(f"SUTRAM_AUDIT_KEY_FILE={path!r} cannot be read: {exc}") from exc
    else:
        return None
    if len(key) < 16:
        raise ConfigurationError("the audit key must be at least 16 bytes; make one with: "
                                 "python -c 'import secrets; print(secrets.token_hex(32))'")
    return key


def _key_id(key: bytes) -> str:
    """A short public fingerprint of the key (which key signed an entry), not the key."""
    return hmac.new(key, b"sutram-audit-key-id", hashlib.sha256).hexdigest()[:12]


def row_digest(values: Sequence[Any]) -> str:
    """SHA-256 over a span row's column values, in table order."""
    return hashlib.sha256(orjson.dumps(list(values))).hexdigest()


def encode_records(records: Sequence[tuple[str, str]]) -> str:
    """The stored form of an entry's ``[span id, digest]`` list."""
    return orjson.dumps(records).decode()


def chain_hash(prev_hash: str, records: str, key: bytes | None = None, tenant: str = "", seq: int = 0) -> str:
    """The hash of one entry: with ``key``, ``k1:<key id>:`` and an HMAC over the tenant,
    the sequence number, the predecessor's hash and the records; without, plain SHA-256
    over the predecessor's hash and the records."""
    digest = hashlib.sha256(records.encode()).hexdigest()
    if key is None:
        return hashlib.sha256(f"{prev_hash}|{digest}".encode()).hexdigest()
    mac = hmac.new(key, f"{tenant}|{seq}|{prev_hash}|{digest}".encode(), hashlib.sha256).hexdigest()
    return f"{_KEYED}:{_key_id(key)}:{mac}"


def head_record(tenant: str, seq: int, hash_: str, key: bytes | None) -> dict[str, Any]:
    """The head of a tenant's chain, to keep outside the database (``sutram audit head``);
    signed with ``key`` when there is one."""
    head: dict[str, Any] = {"tenant": tenant, "seq": seq, "hash": hash_, "at": int(time.time())}
    if key is not None:
        head["sig"] = hmac.new(key, f"head|{tenant}|{seq}|{hash_}".encode(), hashlib.sha256).hexdigest()
    return head


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
    #           | unsigned_entry | key_needed | removed_tail | rewritten_head | forged_head | removed_log
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
    keyed: bool = False  # every entry was checked against the audit key
    head_seq: int = 0  # the newest entry (what a head records)
    head_hash: str = GENESIS

    @property
    def ok(self) -> bool:
        """True when the whole chain and every logged row verify."""
        return not self.problems


def verify_chain(tenant_id: str, entries: Iterable[AuditEntry], rows: Mapping[str, Sequence[Any]],
                 key: bytes | None = None) -> AuditReport:
    """Check ``entries`` (ordered by seq) against the stored span ``rows`` (column values in
    table order) by span id; with ``key``, every entry must carry that key's HMAC."""
    report = AuditReport(tenant_id, records=len(rows))
    problems = report.problems
    prev, expected_seq = GENESIS, 1
    latest: dict[str, tuple[str, int]] = {}
    signed_with = f"{_KEYED}:{_key_id(key)}:" if key is not None else None
    unsigned = 0
    for e in entries:
        report.entries += 1
        if e.seq != expected_seq:
            problems.append(AuditProblem("missing_entry", None, expected_seq,
                                         f"audit entries {expected_seq}..{e.seq - 1} of tenant {tenant_id!r} are missing (deleted)"))
        if e.prev_hash != prev:
            problems.append(AuditProblem("broken_chain", None, e.seq,
                                         f"audit entry {e.seq} does not follow the entry before it"))
        keyed = e.hash.startswith(f"{_KEYED}:")
        if signed_with is not None and not e.hash.startswith(signed_with):
            unsigned += 1
            if unsigned == 1:
                problems.append(AuditProblem("unsigned_entry", None, e.seq,
                                             f"audit entry {e.seq} is not signed with this audit key (a chain "
                                             "recomputed without the key, or written with another key or none)"))
        elif keyed and key is None:
            if not any(p.kind == "key_needed" for p in problems):
                problems.append(AuditProblem("key_needed", None, e.seq,
                                             "the chain is signed: set SUTRAM_AUDIT_KEY (or SUTRAM_AUDIT_KEY_FILE) "
                                             "to verify it"))
        elif chain_hash(e.prev_hash, e.records, key if keyed else None, tenant_id, e.seq) != e.hash:
            problems.append(AuditProblem("edited_entry", None, e.seq, f"audit entry {e.seq} was edited"))
        prev, expected_seq = e.hash, e.seq + 1
        try:
            for record_id, digest in orjson.loads(e.records):
                latest[record_id] = (digest, e.seq)
        except (orjson.JSONDecodeError, TypeError, ValueError):
            problems.append(AuditProblem("edited_entry", None, e.seq, f"audit entry {e.seq} is unreadable"))
    report.keyed = signed_with is not None and report.entries > 0 and unsigned == 0
    report.head_seq, report.head_hash = expected_seq - 1, prev
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


def check_heads(reports: dict[str, AuditReport], heads: Iterable[Mapping[str, Any]],
                hash_at: Callable[[str, int], str | None], key: bytes | None) -> list[AuditProblem]:
    """Compare heads kept outside the database with the chains as they are now: each head's
    entry must still be there with the same hash. ``reports`` are this verification's
    (``head_seq`` says where each chain ends now); ``hash_at(tenant, seq)`` reads one stored
    hash. Problems are added to the tenant's report too (one is made for a tenant whose log
    is gone)."""
    found: list[AuditProblem] = []
    for head in heads:
        tenant, seq, hash_ = str(head.get("tenant")), int(head.get("seq", 0)), str(head.get("hash"))
        report = reports.get(tenant) or reports.setdefault(tenant, AuditReport(tenant))
        problem: AuditProblem | None = None
        if key is not None and "sig" in head:
            sig = hmac.new(key, f"head|{tenant}|{seq}|{hash_}".encode(), hashlib.sha256).hexdigest()
            if not hmac.compare_digest(sig, str(head["sig"])):
                problem = AuditProblem("forged_head", None, seq, f"the kept head of tenant {tenant!r} is not "
                                       "signed with this audit key: it was altered, or made with another key")
        if problem is None and seq > 0:
            stored = hash_at(tenant, seq)
            if report.head_seq == 0:
                problem = AuditProblem("removed_log", None, seq, f"tenant {tenant!r} had {seq} audit entries "
                                       "(kept head) and has none now: its log was removed")
            elif stored is None:
                problem = AuditProblem("removed_tail", None, seq, f"the audit log of tenant {tenant!r} reached entry "
                                       f"{seq} (kept head) and ends at {report.head_seq} now: the newest were removed")
            elif stored != hash_:
                problem = AuditProblem("rewritten_head", None, seq, f"audit entry {seq} of tenant {tenant!r} differs "
                                       "from the kept head: the chain was rewritten")
        if problem is not None:
            found.append(problem)
            report.problems.append(problem)
    return found
