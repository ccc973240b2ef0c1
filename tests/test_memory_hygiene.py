"""Memory hygiene, as a new user meets it: facts split from questions, tool calls remembered
as what happened, run memories kept out of users' searches, provenance of graph writes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.tools import FunctionTool

from sutram_adapters.llama_index import (
    SutramChatStore,
    SutramEpisodicBlock,
    SutramFactBlock,
    SutramMemory,
    close_shared_memories,
)
from sutram_core.memory import MemoryStore
from sutram_core.memory.sentences import split_sentences, statements
from tests.fake_llama import RecallLLM, UsageFunctionCallingLLM


@pytest.fixture(autouse=True)
def _close_shared() -> Iterator[None]:
    yield
    close_shared_memories()


# -- facts are statements, sentence by sentence ----------------------------------------------


@pytest.mark.parametrize(("text", "kept"), [
    ("I take my coffee with oat milk. Where is order A-1042?", ["I take my coffee with oat milk."]),
    ("Where is order A-1042? I take my coffee with oat milk!", ["I take my coffee with oat milk!"]),
    ("My plan is 3.5 GB, e.g. the small one. Can you upgrade it?", ["My plan is 3.5 GB, e.g. the small one."]),
    ("Dr. Okafor is my doctor. Is she in today?", ["Dr. Okafor is my doctor."]),
    ("My invoice is at https://billing.example.com/inv?id=77. Why was I charged twice?",
     ["My invoice is at https://billing.example.com/inv?id=77."]),
    ("Thanks! I moved to Porto.\nwhere is my parcel", ["I moved to Porto."]),
    ("Is it raining?", []),
])
def test_statements_are_kept_and_questions_dropped(text: str, kept: list[str]) -> None:
    assert statements(text) == kept


def test_decimals_ids_and_abbreviations_do_not_split_a_sentence() -> None:
    assert split_sentences("Order A-1042 costs 3.50 EUR, i.e. less than ORD-19.494. Mr. J. Smith paid.") == [
        "Order A-1042 costs 3.50 EUR, i.e. less than ORD-19.494.", "Mr. J. Smith paid."]


async def test_a_fact_said_with_a_question_is_kept_and_recalled_later(db_url: str) -> None:
    memory = SutramMemory.from_defaults(session_id="mon", user_id="alice", tenant="acme", url=db_url)
    await FunctionAgent(tools=[], llm=RecallLLM()).run("I take my coffee with oat milk. Where is order A-1042?",
                                                        memory=memory)
    facts = MemoryStore.from_url(db_url, tenant="acme", embedder=False)
    try:
        stored = [r.text for r in facts.list(("facts", "alice"))]
    finally:
        facts.close()
    assert stored == ["I take my coffee with oat milk."]
    later = SutramMemory.from_defaults(session_id="fri", user_id="alice", tenant="acme", url=db_url)
    answer = await FunctionAgent(tools=[], llm=RecallLLM()).run("How do I take my coffee?", memory=later)
    assert "oat milk" in str(answer) and "A-1042" not in str(answer)


async def test_the_fact_block_keeps_each_statement_of_a_message_as_its_own_fact(db_url: str) -> None:
    block = SutramFactBlock(url=db_url, tenant="acme", namespace=["facts", "bob"])
    await block.aput([ChatMessage(role="user", content="I live in Lisbon. I am allergic to peanuts. Hi? Thanks!"),
                      ChatMessage(role="assistant", content="Noted. You live in Lisbon.")])
    assert sorted(r.text for r in block.memory.list(("facts", "bob"))) == [
        "I am allergic to peanuts.", "I live in Lisbon."]


# -- tool calls are remembered as what happened ------------------------------------------------


def get_weather(city: str = "Paris") -> dict[str, Any]:
    """The weather in a city."""
    return {"city": city, "temp_c": 18, "sky": "sunny", "raw": {"station": "LFPG", "readings": list(range(400))}}


async def test_tool_calls_are_remembered_as_readable_bounded_text_and_kept_whole(db_url: str) -> None:
    episodes = SutramEpisodicBlock(url=db_url, tenant="acme", namespace=["episodes", "carol"], eager=True)
    memory = SutramMemory.from_defaults(session_id="s-tools", user_id="carol", tenant="acme", url=db_url,
                                        memory_blocks=[episodes])
    agent = FunctionAgent(tools=[FunctionTool.from_defaults(get_weather)], llm=UsageFunctionCallingLLM())
    await agent.run("What is the weather like?", memory=memory)

    recalled = [r.text for r in episodes.memory.list(("episodes", "carol"), order="key")]
    assert "assistant: called tool get_weather(city=Paris)" in recalled
    (result,) = [t for t in recalled if t.startswith("tool ")]
    assert result.startswith("tool get_weather returned: city: Paris, temp_c: 18, sky: sunny")
    assert len(result) <= 400 and "{" not in result.split("raw:")[0]

    chat = SutramChatStore(url=db_url, tenant="acme")
    records = chat.memory.list(("chat", "s-tools"), order="key")
    texts = [r.text for r in records]
    assert "called tool get_weather(city=Paris)" in texts
    assert any(t.startswith("tool get_weather returned: city: Paris") and len(t) <= 400 for t in texts)
    # the chat store still gives back every message whole: the call and the full result
    messages = await chat.get_messages("s-tools")
    call = next(m for m in messages if any(b.block_type == "tool_call" for b in m.blocks))
    answer = next(m for m in messages if m.role.value == "tool")
    assert call.blocks[0].tool_name == "get_weather"  # type: ignore[union-attr]
    assert "'readings': [0, 1, 2" in (answer.content or "") and len(answer.content or "") > 1000


async def test_openai_style_tool_calls_and_a_result_added_later_are_named(db_url: str) -> None:
    chat = SutramChatStore(url=db_url, tenant="acme")
    call = ChatMessage(role="assistant", content="", additional_kwargs={"tool_calls": [
        {"id": "call_1", "type": "function",
         "function": {"name": "lookup_order", "arguments": '{"order_id": "A-1042", "verbose": true}'}}]})
    await chat.add_message("s-oa", call)
    # the result arrives in a later call and does not name its tool
    await chat.add_message("s-oa", ChatMessage(role="tool", content='{"status": "shipped", "eta": "2026-12-02"}',
                                               additional_kwargs={"tool_call_id": "call_1"}))
    texts = [r.text for r in chat.memory.list(("chat", "s-oa"), order="key")]
    assert texts == ["called tool lookup_order(order_id=A-1042, verbose=true)",
                     "tool lookup_order returned: status: shipped, eta: 2026-12-02"]
    hits = chat.memory.search("order A-1042 shipped", namespace=("chat", "s-oa"), mode="keyword")
    assert hits and (await chat.get_messages("s-oa"))[0].additional_kwargs["tool_calls"][0]["id"] == "call_1"
