"""``sutram audit verify`` against someone who can write the database but does not hold the
audit key: each kind of tampering fails verification (exit 1) and is named, on SQLite and
PostgreSQL. What the chain cannot see alone (a removed tail, a removed tenant log) is
caught against a head kept outside the database."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from sutram_adapters.cli import main
from sutram_adapters.langchain import SutramCallbackHandler
from sutram_core.backends.sql.database import Database
from sutram_core.backends.sql.schema import audit_log, spans
from sutram_core.traces import Tracer
from sutram_core.traces.audit import chain_hash
from tests.fake_models import EchoChatModel

KEY = "k" * 32


@pytest.fixture
def keyed(db_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Two tenants, three traced model calls each, written with the audit key."""
    monkeypatch.setenv("SUTRAM_AUDIT_KEY", KEY)
    for tenant in ("acme", "globex"):
        with Tracer.from_url(db_url) as tracer:
            handler = SutramCallbackHandler(tracer=tracer, tenant=tenant)
            for i in range(3):
                EchoChatModel().invoke(f"hi {i}", {"callbacks": [handler]})
                tracer.flush()  # one audit entry per call
    return db_url


def _verify(url: str, capsys: Any, *extra: str) -> tuple[int, str]:
    code = main(["audit", "verify", "--url", url, *extra])
    return code, capsys.readouterr().out


def _head(url: str, tmp_path: Path, capsys: Any) -> Path:
    path = tmp_path / "heads.jsonl"
    assert main(["audit", "head", "--url", url, "--out", str(path)]) == 0
    capsys.readouterr()
    return path


def _sql(url: str, *statements: Any) -> None:
    db = Database(url)
    with db.engine.begin() as conn:
        for st in statements:
            conn.execute(st)
    db.close()


def test_untouched_signed_chains_verify_with_their_heads(keyed: str, tmp_path: Path, capsys: Any) -> None:
    heads = _head(keyed, tmp_path, capsys)
    lines = [json.loads(x) for x in heads.read_text().splitlines()]
    assert {h["tenant"] for h in lines} == {"acme", "globex"} and all(h["seq"] == 3 and h["sig"] for h in lines)
    code, out = _verify(keyed, capsys, "--head", str(heads))
    assert code == 0 and out.count("signed with the audit key") == 2


def test_an_edited_span_fails(keyed: str, capsys: Any) -> None:
    _sql(keyed, sa.update(spans).where(spans.c.tenant_id == "acme").values(output_tokens=1))
    code, out = _verify(keyed, capsys)
    assert code == 1 and "was edited after it was logged" in out and "tenant globex: ok" in out


def test_a_deleted_span_fails(keyed: str, capsys: Any) -> None:
    victim = _first_span(keyed, "acme")
    _sql(keyed, sa.delete(spans).where(spans.c.span_id == victim))
    code, out = _verify(keyed, capsys)
    assert code == 1 and f"span {victim} (audit entry" in out and "was deleted" in out


@pytest.mark.parametrize("status", ["ok", "running"])
def test_an_inserted_span_fails_whatever_its_status(keyed: str, capsys: Any, status: str) -> None:
    _sql(keyed, sa.insert(spans).values(
        tenant_id="acme", run_id="forged-run", span_id="forged-span", parent_id=None, name="forged", kind="chain",
        status=status, start_ns=1, attributes="{}"))
    code, out = _verify(keyed, capsys)
    assert code == 1 and "span forged-span is not in the audit log" in out


def test_a_chain_recomputed_without_the_key_fails(keyed: str, capsys: Any) -> None:
    """The attacker edits a span, then rewrites every entry's records and hashes with plain
    SHA-256 (and, separately, with a key of their own)."""
    from sutram_core.traces.audit import encode_records, row_digest
    from sutram_core.traces.store import SPAN_COLUMNS

    for forged_key in (None, b"x" * 32):
        _sql(keyed, sa.update(spans).where(spans.c.tenant_id == "acme").values(output_tokens=99))
        db = Database(keyed)
        with db.engine.begin() as conn:
            rows = {r.span_id: [getattr(r, c) for c in SPAN_COLUMNS]
                    for r in conn.execute(sa.select(spans).where(spans.c.tenant_id == "acme"))}
            prev = "0" * 64
            entries = conn.execute(sa.select(audit_log.c.seq, audit_log.c.records)
                                   .where(audit_log.c.tenant_id == "acme").order_by(audit_log.c.seq)).all()
            for seq, records in entries:
                ids = [sid for sid, _ in json.loads(records)]
                new = encode_records([(sid, row_digest(rows[sid])) for sid in ids])
                h = chain_hash(prev, new, forged_key, "acme", seq)
                conn.execute(sa.update(audit_log).where(audit_log.c.tenant_id == "acme", audit_log.c.seq == seq)
                             .values(records=new, prev_hash=prev, hash=h))
                prev = h
        db.close()
        code, out = _verify(keyed, capsys, "--tenant", "acme")
        assert code == 1 and "is not signed with this audit key" in out, forged_key


def test_an_edited_entry_and_a_gap_fail(keyed: str, capsys: Any) -> None:
    _sql(keyed, sa.delete(audit_log).where(audit_log.c.tenant_id == "acme", audit_log.c.seq == 2))
    code, out = _verify(keyed, capsys)
    assert code == 1 and "audit entries 2..2 of tenant 'acme' are missing" in out


def test_a_removed_tail_fails_against_the_kept_head(keyed: str, tmp_path: Path, capsys: Any) -> None:
    heads = _head(keyed, tmp_path, capsys)
    last = json.loads(_audit_records(keyed, "acme", 3))
    _sql(keyed, sa.delete(audit_log).where(audit_log.c.tenant_id == "acme", audit_log.c.seq == 3),
         sa.delete(spans).where(spans.c.span_id.in_([sid for sid, _ in last])))
    code, _ = _verify(keyed, capsys)
    assert code == 0  # consistent in itself: only the head can tell
    code, out = _verify(keyed, capsys, "--head", str(heads))
    assert code == 1 and "reached entry 3 (kept head) and ends at 2 now" in out


def test_a_removed_tenant_log_fails(keyed: str, tmp_path: Path, capsys: Any) -> None:
    heads = _head(keyed, tmp_path, capsys)
    _sql(keyed, sa.delete(audit_log).where(audit_log.c.tenant_id == "acme"))
    code, out = _verify(keyed, capsys)  # its spans are still there: unlogged
    assert code == 1 and "tenant acme:" in out and "is not in the audit log" in out
    _sql(keyed, sa.delete(spans).where(spans.c.tenant_id == "acme"))
    code, out = _verify(keyed, capsys, "--head", str(heads))
    assert code == 1 and "tenant 'acme' had 3 audit entries (kept head) and has none now" in out
    _sql(keyed, sa.delete(audit_log), sa.delete(spans))  # the entire log
    code, out = _verify(keyed, capsys, "--head", str(heads))
    # globex's count is what its head recorded (3, or 4 when the seeding run's writer
    # flushed one more entry under load); what matters is that the removal is named
    assert code == 1 and re.search(r"'globex' had \d+ audit entries \(kept head\) and has none now", out)


def test_a_forged_head_fails(keyed: str, tmp_path: Path, capsys: Any) -> None:
    heads = _head(keyed, tmp_path, capsys)
    lines = [json.loads(x) for x in heads.read_text().splitlines()]
    lines[0]["seq"] = 2
    heads.write_text("".join(json.dumps(h) + "\n" for h in lines))
    code, out = _verify(keyed, capsys, "--head", str(heads))
    assert code == 1 and "is not signed with this audit key" in out


def test_a_signed_chain_needs_the_key_to_verify(keyed: str, capsys: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SUTRAM_AUDIT_KEY")
    code, out = _verify(keyed, capsys)
    assert code == 1 and "set SUTRAM_AUDIT_KEY" in out


def test_a_short_audit_key_is_refused(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from sutram_core.errors import ConfigurationError

    monkeypatch.setenv("SUTRAM_AUDIT_KEY", "short")
    with pytest.raises(ConfigurationError, match="at least 16 bytes"):
        Tracer.from_url(db_url)


def _first_span(url: str, tenant: str) -> str:
    db = Database(url)
    with db.engine.begin() as conn:
        victim = conn.execute(sa.select(spans.c.span_id).where(spans.c.tenant_id == tenant).limit(1)).scalar_one()
    db.close()
    return str(victim)


def _audit_records(url: str, tenant: str, seq: int) -> str:
    db = Database(url)
    with db.engine.begin() as conn:
        records = conn.execute(sa.select(audit_log.c.records).where(
            audit_log.c.tenant_id == tenant, audit_log.c.seq == seq)).scalar_one()
    db.close()
    return str(records)
