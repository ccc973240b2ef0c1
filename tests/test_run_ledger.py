"""The run ledger contract, on SQLite and PostgreSQL: claims, leases, fencing, spend, pause."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sutram_core.backends.sql.database import Database
from sutram_core.backends.sql.runs import SqlRunLedger
from sutram_core.errors import InvalidRunError, LeaseLostError, RunNotFoundError
from sutram_core.runs import Budget, RunStatus, Spend

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def ledger(db_url: str) -> Iterator[SqlRunLedger]:
    db = Database(db_url)
    yield SqlRunLedger(db)
    db.close()


def test_a_run_goes_from_pending_through_running_to_completed(ledger: SqlRunLedger) -> None:
    run = ledger.create("acme", "r1", thread_id="t1", graph_name="agent", graph_version="v1",
                        budget=Budget(max_tokens=1000))
    assert (run.status, run.fence, run.budget.max_tokens) == (RunStatus.PENDING, 0, 1000)
    claimed = ledger.claim("acme", "r1", executor="w1", lease_seconds=30)
    assert claimed is not None and claimed.status is RunStatus.RUNNING and claimed.fence == 1
    assert claimed.executor_id == "w1" and claimed.attempts == 1
    ledger.heartbeat("acme", claimed, lease_seconds=30)
    assert ledger.add_spend("acme", claimed, Spend(tokens=120, cost_usd=0.01, steps=1)).tokens == 120
    assert ledger.add_spend("acme", claimed, Spend(tokens=80, steps=1)) == Spend(200, 0.01, 2, 0.0)
    ledger.finish("acme", claimed, "completed")
    done = ledger.get("acme", "r1")
    assert done.status is RunStatus.COMPLETED and done.finished_at is not None and done.lease_expires_at is None
    assert ledger.claim("acme", "r1", executor="w2", lease_seconds=30) is None  # finished runs stay finished


def test_a_live_lease_cannot_be_taken_and_an_expired_one_can(ledger: SqlRunLedger) -> None:
    ledger.create("acme", "r1", thread_id="t1")
    first = ledger.claim("acme", "r1", executor="w1", lease_seconds=0.2)
    assert first is not None
    assert ledger.claim("acme", "r1", executor="w2", lease_seconds=30) is None
    time.sleep(0.3)
    second = ledger.claim("acme", "r1", executor="w2", lease_seconds=30)
    assert second is not None and second.fence == first.fence + 1 and second.executor_id == "w2"


def test_a_zombie_worker_cannot_write_after_its_lease_was_taken(ledger: SqlRunLedger) -> None:
    ledger.create("acme", "r1", thread_id="t1")
    zombie = ledger.claim("acme", "r1", executor="w1", lease_seconds=0.1)
    assert zombie is not None
    time.sleep(0.2)
    (heir,) = ledger.claim_expired(executor="w2", lease_seconds=30)
    for write in (lambda: ledger.heartbeat("acme", zombie, lease_seconds=30),
                  lambda: ledger.add_spend("acme", zombie, Spend(tokens=5)),
                  lambda: ledger.pause("acme", zombie, "budget"),
                  lambda: ledger.finish("acme", zombie, "failed", error="late")):
        with pytest.raises(LeaseLostError, match="stop working on it"):
            write()
    assert ledger.get("acme", "r1").spend.tokens == 0
    ledger.finish("acme", heir, "completed")
    assert ledger.get("acme", "r1").status is RunStatus.COMPLETED


def test_pause_keeps_the_reason_and_resume_reclaims(ledger: SqlRunLedger) -> None:
    ledger.create("acme", "r1", thread_id="t1")
    run = ledger.claim("acme", "r1", executor="w1", lease_seconds=30)
    assert run is not None
    ledger.pause("acme", run, "max_tokens reached: 1200 of 1000 tokens")
    paused = ledger.get("acme", "r1")
    assert paused.status is RunStatus.PAUSED and paused.pause_reason and paused.executor_id is None
    assert ledger.claim("acme", "r1", executor="w2", lease_seconds=30) is None  # recovery leaves it alone
    assert ledger.claim_expired(executor="w2", lease_seconds=30) == []
    resumed = ledger.claim("acme", "r1", executor="w2", lease_seconds=30, resume=True)
    assert resumed is not None and resumed.status is RunStatus.RUNNING and resumed.pause_reason is None


def test_listing_tenants_and_bad_input(ledger: SqlRunLedger) -> None:
    ledger.create("acme", "a", thread_id="t1")
    ledger.create("acme", "b", thread_id="t2")
    ledger.create("globex", "a", thread_id="t1")
    assert {r.run_id for r in ledger.runs("acme")} == {"a", "b"}
    assert [r.run_id for r in ledger.runs("acme", thread_id="t2")] == ["b"]
    assert [r.tenant_id for r in ledger.runs("globex")] == ["globex"]
    with pytest.raises(InvalidRunError, match="already exists"):
        ledger.create("acme", "a", thread_id="t9")
    with pytest.raises(RunNotFoundError):
        ledger.get("acme", "missing")
    with pytest.raises(RunNotFoundError):
        ledger.claim("globex", "b", executor="w", lease_seconds=1)
    with pytest.raises(InvalidRunError):
        Budget(max_cost_usd=-1)
    run = ledger.claim("acme", "a", executor="w", lease_seconds=30)
    assert run is not None
    with pytest.raises(InvalidRunError):
        ledger.finish("acme", run, "running")


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(["claim", "expire", "heartbeat", "finish"]), min_size=1, max_size=12))
def test_at_most_one_owner_and_the_fence_only_rises(ledger: SqlRunLedger, steps: list[str]) -> None:
    run_id = f"r{abs(hash(tuple(steps))) % 10**9}-{time.monotonic_ns()}"
    ledger.create("acme", run_id, thread_id="t")
    owners: dict[str, int] = {}
    fence = 0
    for i, step in enumerate(steps):
        worker = f"w{i % 3}"
        if step == "claim":
            got = ledger.claim("acme", run_id, executor=worker, lease_seconds=30)
            if got is not None:
                owners = {worker: got.fence}
        elif step == "expire":
            got = ledger.claim("acme", run_id, executor=worker, lease_seconds=0.001)
            if got is not None:
                owners = {worker: got.fence}
            time.sleep(0.005)
            taken = ledger.claim_expired(executor=f"x{i}", lease_seconds=30, tenant="acme")
            if taken:
                owners = {f"x{i}": taken[0].fence}
        elif step in ("heartbeat", "finish") and owners:
            (owned,) = owners.values()
            for stale in range(1, owned):  # every older fence is refused
                with pytest.raises(LeaseLostError):
                    ledger.heartbeat("acme", run_id, lease_seconds=30, fence=stale)
            if step == "finish":
                ledger.finish("acme", run_id, "completed", fence=owned)
                owners = {}
        current = ledger.get("acme", run_id)
        assert current.fence >= fence
        fence = current.fence
        if current.status is RunStatus.RUNNING:
            assert list(owners.values()) == [current.fence]


_WORKER = """
import sys, time
from sutram_core.backends.sql.database import Database
from sutram_core.backends.sql.runs import SqlRunLedger
ledger = SqlRunLedger(Database(sys.argv[1]))
mine = []
while True:
    got = ledger.claim_expired(executor=sys.argv[2], lease_seconds=60, limit=3)
    if not got:
        break
    mine += [r.run_id for r in got]
    time.sleep(0.01)
print(" ".join(mine))
"""


def test_several_worker_processes_each_claim_an_expired_run_once(ledger: SqlRunLedger, db_url: str) -> None:
    for i in range(40):
        ledger.create("acme", f"run-{i}", thread_id=f"t{i}")
        assert ledger.claim("acme", f"run-{i}", executor="dead-worker", lease_seconds=0.05) is not None
    time.sleep(0.1)
    procs = [subprocess.Popen([sys.executable, "-c", _WORKER, db_url, f"w{n}"], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for n in range(4)]
    claimed: list[str] = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        claimed += out.split()
    assert sorted(claimed) == sorted(f"run-{i}" for i in range(40))  # each exactly once
    assert {r.executor_id for r in ledger.runs("acme")} <= {"w0", "w1", "w2", "w3"}
