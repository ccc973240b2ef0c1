"""LlamaIndex LLM calls inside a durable task are made once: journaled(llm) answers a replay
from the journal (chat, complete, streams, async, a function-calling agent), and a durable
LangGraph run whose node uses a LlamaIndex LLM repeats no call after a crash."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from langgraph.graph import END, START, StateGraph
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.tools import FunctionTool
from typing_extensions import TypedDict

from sutram_adapters.langgraph.durable import durable
from sutram_adapters.llama_index import journaled
from sutram_core.backends.sql.database import Database
from sutram_core.backends.sql.journal import SqlCallJournal
from sutram_core.runs import CallScope, RunStatus
from tests.fake_llama import UsageFunctionCallingLLM

PROVIDER: list[str] = []


class CountingLLM(UsageFunctionCallingLLM):
    """The mock function-calling LLM, recording each call that reaches the "provider"."""

    def _get_response_generator(self) -> Any:
        inner = super()._get_response_generator()

        def respond(messages: Sequence[ChatMessage], **kwargs: Any) -> ChatMessage:
            PROVIDER.append(str(messages[-1].content))
            return inner(messages, **kwargs)  # type: ignore[no-any-return]

        return respond


@pytest.fixture
def journal(db_url: str) -> Iterator[SqlCallJournal]:
    db = Database(db_url)
    PROVIDER.clear()
    yield SqlCallJournal(db)
    db.close()


def _task(journal: SqlCallJournal, task: str = "node-task") -> CallScope:
    return CallScope(journal, tenant="acme", thread_id="t1", task_id=task, run_id="r1")


def _msg(text: str) -> list[ChatMessage]:
    return [ChatMessage(role="user", content=text)]


def test_chat_and_streams_replay_from_the_journal(journal: SqlCallJournal) -> None:
    llm = journaled(CountingLLM())
    assert type(llm).__name__ == "JournaledCountingLLM" and isinstance(llm, CountingLLM)
    with _task(journal) as first:
        answers = [str(llm.chat(_msg(f"question {i}")).message.content) for i in range(2)]
        streamed = [r.delta for r in llm.stream_chat(_msg("streamed"))]
    assert len(PROVIDER) == 3 and first.recorded == 3
    with _task(journal) as replay:
        again = [str(llm.chat(_msg(f"question {i}")).message.content) for i in range(2)]
        replayed_stream = list(llm.stream_chat(_msg("streamed")))
        llm.chat(_msg("a new question"))
    assert again == answers and len(PROVIDER) == 4 and (replay.replayed, replay.recorded) == (3, 1)
    assert replayed_stream[-1].message.content == "".join(d or "" for d in streamed)
    entries = [e for _, e in journal.entries("acme", "t1")]
    assert [e.kind for e in entries] == ["llm"] * 4
    chats = [entries[i] for i in (0, 1, 3)]  # the mock's sync stream reports no usage
    assert all(e.tokens > 0 and e.cost_usd > 0 and e.name.startswith("gpt-4o-mini") for e in chats)


def test_outside_a_durable_task_the_llm_is_unchanged(journal: SqlCallJournal) -> None:
    original = CountingLLM()
    llm = journaled(original)
    assert journaled(llm) is llm and type(original) is CountingLLM
    llm.chat(_msg("hello"))
    llm.chat(_msg("hello"))
    assert PROVIDER == ["hello", "hello"] and journal.entries("acme", "t1") == []


def test_async_calls_and_completions_replay(journal: SqlCallJournal) -> None:
    llm = journaled(CountingLLM())

    async def task() -> list[str]:
        with _task(journal):
            chat = await llm.achat(_msg("async question"))
            done = await llm.acomplete("complete this")
            stream = [r async for r in await llm.astream_chat(_msg("async stream"))]
            return [str(chat.message.content), done.text, str(stream[-1].message.content)]

    first = asyncio.run(task())
    made = len(PROVIDER)
    assert asyncio.run(task()) == first and len(PROVIDER) == made


def test_a_function_calling_agent_replays_tool_choices_from_the_journal(journal: SqlCallJournal) -> None:
    tool_runs: list[str] = []

    def order_status() -> str:
        """The status of the customer's order (the mock LLM calls tools without arguments)."""
        tool_runs.append("order_status")
        return "order A-1: packed"

    agent = FunctionAgent(tools=[FunctionTool.from_defaults(order_status)], llm=journaled(CountingLLM()))

    async def run() -> str:
        with _task(journal, "agent-task"):
            return str(await agent.run("where is A-1?"))

    first = asyncio.run(run())
    made = len(PROVIDER)
    assert made == 2 and tool_runs == ["order_status"]  # it chose the tool, then answered
    assert asyncio.run(run()) == first and len(PROVIDER) == made  # the model was not asked again
    assert tool_runs == ["order_status"] * 2  # the tool is the app's: journal it with @durable_step


class Travel(TypedDict):
    city: str
    notes: list[str]


def test_a_durable_run_with_a_llama_index_llm_repeats_no_call_after_a_crash(db_url: str) -> None:
    PROVIDER.clear()
    llm = journaled(CountingLLM())
    crash = [True]

    def plan(state: Travel) -> dict[str, Any]:
        notes = []
        for topic in ("sights", "food", "transport"):
            if topic == "transport" and crash[0]:
                crash[0] = False
                raise KeyboardInterrupt  # the worker dies mid-node (no error handler sees it)
            notes.append(str(llm.chat(_msg(f"{topic} in {state['city']}")).message.content))
        return {"notes": notes}

    builder = StateGraph(Travel)
    builder.add_node("plan", plan)
    builder.add_edge(START, "plan")
    builder.add_edge("plan", END)
    with durable(builder.compile(), url=db_url, tenant="acme", lease_seconds=0.3) as runner:
        with pytest.raises(KeyboardInterrupt):
            runner.invoke({"city": "Lisbon", "notes": []}, thread_id="trip", run_id="trip-1")
        import time

        time.sleep(0.4)
        (recovered,) = runner.recover()
        assert recovered.status is RunStatus.COMPLETED and recovered.spend.tokens > 0
    assert PROVIDER == ["sights in Lisbon", "food in Lisbon", "transport in Lisbon"]
