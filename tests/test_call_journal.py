"""The call journal: a durable step runs once per position in its task; replays answer from the journal."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from sutram_core import durable_step
from sutram_core.backends.sql.database import Database
from sutram_core.backends.sql.journal import SqlCallJournal
from sutram_core.errors import InvalidRunError
from sutram_core.runs import CallScope, JournalEntry, JournalKey, idempotency_key


@pytest.fixture
def journal(db_url: str) -> Iterator[SqlCallJournal]:
    db = Database(db_url)
    yield SqlCallJournal(db)
    db.close()


calls: list[str] = []
keys: list[str | None] = []


@durable_step
def charge(order: str, amount: int) -> dict[str, object]:
    calls.append(f"charge {order}")
    keys.append(idempotency_key())
    return {"order": order, "charged": amount, "pair": (1, 2)}


@durable_step(name="email")
async def send_email(to: str) -> str:
    calls.append(f"email {to}")
    return f"sent to {to}"


def scope(journal: SqlCallJournal, tenant: str = "acme", task: str = "task-1") -> CallScope:
    return CallScope(journal, tenant=tenant, thread_id="t1", task_id=task, checkpoint_ns="")


@pytest.fixture(autouse=True)
def _reset() -> None:
    calls.clear()
    keys.clear()


def test_outside_a_scope_a_step_just_runs(journal: SqlCallJournal) -> None:
    assert charge("o1", 5)["charged"] == 5 and charge("o1", 5)["charged"] == 5
    assert calls == ["charge o1", "charge o1"] and keys == [None, None]


def test_a_replayed_task_gets_recorded_results_without_running_steps_again(journal: SqlCallJournal) -> None:
    with scope(journal) as first:
        a = charge("o1", 5)
        b = charge("o2", 7)
    assert calls == ["charge o1", "charge o2"] and first.recorded == 2
    assert a == {"order": "o1", "charged": 5, "pair": [1, 2]}  # what a replay gives, from the start
    with scope(journal) as replay:  # the task runs again after a crash: same thread, same task
        assert charge("o1", 5) == a and charge("o2", 7) == b
        charge("o3", 1)  # a call past the crash point runs
    assert calls == ["charge o1", "charge o2", "charge o3"]
    assert (replay.replayed, replay.recorded) == (2, 1)
    assert keys[0] and keys[0].startswith("sutram-") and len(set(keys)) == 3


def test_the_idempotency_key_is_stable_across_replays(journal: SqlCallJournal) -> None:
    @durable_step
    def fails_then_works(attempt: list[int]) -> str | None:
        attempt[0] += 1
        if attempt[0] == 1:
            keys.append(idempotency_key())
            raise ConnectionError("provider down")
        keys.append(idempotency_key())
        return idempotency_key()

    counter = [0]
    with scope(journal), pytest.raises(ConnectionError):
        fails_then_works(counter)
    with scope(journal):
        assert fails_then_works(counter) == keys[0] == keys[1]  # an unrecorded call is retried, same key


async def test_async_steps_are_journaled_too(journal: SqlCallJournal) -> None:
    with scope(journal):
        assert await send_email("a@example.com") == "sent to a@example.com"
    with scope(journal):
        assert await send_email("a@example.com") == "sent to a@example.com"
    assert calls == ["email a@example.com"]


def test_different_inputs_at_the_same_position_run_again(journal: SqlCallJournal) -> None:
    with scope(journal):
        charge("o1", 5)
    with scope(journal):
        assert charge("o1", 6)["charged"] == 6  # the task changed: not answered from the journal
    assert calls == ["charge o1", "charge o1"]


def test_tasks_and_tenants_do_not_share_entries(journal: SqlCallJournal) -> None:
    with scope(journal):
        charge("o1", 5)
    with scope(journal, task="task-2"):
        charge("o1", 5)
    with scope(journal, tenant="globex"):
        charge("o1", 5)
    assert calls == ["charge o1"] * 3


def test_the_first_recorded_result_wins(journal: SqlCallJournal) -> None:
    key = JournalKey("acme", "t1", "", "task-1", 0)
    first = journal.put(key, JournalEntry("llm", "chat", "h", '"first"'))
    second = journal.put(key, JournalEntry("llm", "chat", "h", '"second"'))
    assert first.output == second.output == '"first"'
    assert [e.output for _, e in journal.entries("acme", "t1")] == ['"first"']


def test_a_result_json_cannot_hold_is_refused_and_not_recorded(journal: SqlCallJournal) -> None:
    @durable_step
    def bad() -> object:
        return object()

    with scope(journal), pytest.raises(InvalidRunError, match="JSON"):
        bad()
    assert journal.entries("acme", "t1") == []


def test_concurrent_tasks_number_their_own_calls(journal: SqlCallJournal) -> None:
    async def task(name: str) -> list[object]:
        with scope(journal, task=name):
            return [charge(f"{name}-{i}", i) for i in range(3)]

    async def both() -> list[list[object]]:
        return list(await asyncio.gather(task("a"), task("b")))

    first = asyncio.run(both())
    calls.clear()
    assert asyncio.run(both()) == first and calls == []
