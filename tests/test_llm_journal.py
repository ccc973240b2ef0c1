"""LangChain model calls inside a durable task are made once; a replay answers from the journal."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.globals import get_llm_cache, set_llm_cache
from langchain_core.messages import HumanMessage

from sutram_adapters.langchain.journal import JournalCache
from sutram_core.backends.sql.database import Database
from sutram_core.backends.sql.journal import SqlCallJournal
from sutram_core.runs import CallScope
from tests.fake_models import EchoChatModel

PROVIDER_CALLS: list[str] = []


class CountingModel(EchoChatModel):
    """Echoes, records every provider call, and reports usage."""

    def _generate(self, messages: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any) -> Any:
        PROVIDER_CALLS.append(str(messages[-1].content))
        return super()._generate(messages, stop, run_manager, **kwargs)


@pytest.fixture
def journal(db_url: str) -> Iterator[SqlCallJournal]:
    db = Database(db_url)
    previous = get_llm_cache()
    set_llm_cache(JournalCache())
    PROVIDER_CALLS.clear()
    yield SqlCallJournal(db)
    set_llm_cache(previous)
    db.close()


def _task(journal: SqlCallJournal) -> CallScope:
    return CallScope(journal, tenant="acme", thread_id="t1", task_id="node-task", run_id="r1")


def test_a_crashed_task_replays_its_completed_calls_from_the_journal(journal: SqlCallJournal) -> None:
    model = CountingModel()
    with _task(journal) as first:
        answers = [model.invoke([HumanMessage(f"question {i}")]).content for i in range(3)]
        # ...the process dies here, before the task's checkpoint
    assert len(PROVIDER_CALLS) == 3 and first.recorded == 3
    with _task(journal) as replay:  # the task runs again from its checkpoint
        again = [model.invoke([HumanMessage(f"question {i}")]).content for i in range(3)]
        model.invoke([HumanMessage("question 3")])  # the call that never completed
    assert again == answers
    assert PROVIDER_CALLS == ["question 0", "question 1", "question 2", "question 3"] and (replay.replayed, replay.recorded) == (3, 1)
    entries = journal.entries("acme", "t1")
    assert [k.call_index for k, _ in entries] == [0, 1, 2, 3]
    assert all(e.kind == "llm" and e.tokens > 0 and e.run_id == "r1" for _, e in entries)


def test_outside_a_durable_task_models_are_called_as_usual(journal: SqlCallJournal) -> None:
    model = CountingModel()
    model.invoke([HumanMessage("hi")])
    model.invoke([HumanMessage("hi")])
    assert len(PROVIDER_CALLS) == 2 and journal.entries("acme", "t1") == []


def test_async_calls_are_journaled(journal: SqlCallJournal) -> None:
    model = CountingModel()

    async def run() -> list[Any]:
        with _task(journal):
            return [(await model.ainvoke([HumanMessage(f"q{i}")])).content for i in range(2)]

    first = asyncio.run(run())
    assert asyncio.run(run()) == first and len(PROVIDER_CALLS) == 2


def test_a_changed_prompt_at_the_same_position_calls_the_model(journal: SqlCallJournal) -> None:
    model = CountingModel()
    with _task(journal):
        model.invoke([HumanMessage("plan a trip to Lisbon")])
    with _task(journal):
        model.invoke([HumanMessage("plan a trip to Porto")])
    assert len(PROVIDER_CALLS) == 2
