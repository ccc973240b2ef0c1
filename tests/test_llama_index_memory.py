"""LlamaIndex memory on Sutram: the chat store contract, blocks, recall across processes, Context round trip."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.storage.chat_store.base_db import MessageStatus
from llama_index.core.workflow import Context, JsonSerializer

from sutram_adapters.llama_index import (
    SutramChatStore,
    SutramFactBlock,
    SutramMemory,
    SutramProceduralBlock,
    close_shared_memories,
)
from tests.fake_llama import RecallLLM

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _close_shared() -> Iterator[None]:
    yield
    close_shared_memories()


def msg(role: str, text: str) -> ChatMessage:
    return ChatMessage(role=role, content=text)


async def test_chat_store_keeps_order_status_and_counts(db_url: str) -> None:
    store = SutramChatStore(url=db_url, tenant="acme")
    await store.add_messages("s1", [msg("user", f"m{i}") for i in range(5)])
    await store.add_message("s2", msg("user", "other session"))
    assert [m.content for m in await store.get_messages("s1")] == ["m0", "m1", "m2", "m3", "m4"]
    archived = await store.archive_oldest_messages("s1", 2)
    assert [m.content for m in archived] == ["m0", "m1"]
    assert await store.count_messages("s1") == 3
    assert await store.count_messages("s1", status=MessageStatus.ARCHIVED) == 2
    assert await store.count_messages("s1", status=None) == 5
    assert [m.content for m in await store.get_messages("s1", limit=2, offset=1)] == ["m3", "m4"]
    assert [m.content for m in await store.delete_oldest_messages("s1", 1)] == ["m0"]
    deleted = await store.delete_message("s1", 2)  # an id, as AsyncDBChatStore documents: m1 was added second
    assert deleted is not None and deleted.content == "m1"
    assert await store.delete_message("s1", 2) is None
    await store.set_messages("s1", [msg("assistant", "fresh")])
    assert [(m.role.value, m.content) for m in await store.get_messages("s1")] == [("assistant", "fresh")]
    assert await store.get_keys() == ["s1", "s2"]
    await store.delete_messages("s1")
    assert await store.get_messages("s1", status=None) == []
    other = SutramChatStore(url=db_url, tenant="globex")
    assert await other.get_keys() == [] and await other.get_messages("s2") == []


async def test_chat_order_is_the_sessions_sequence_not_the_clock(db_url: str,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    store = SutramChatStore(url=db_url, tenant="acme")
    await store.add_message("s", msg("user", "first"))
    start = time.time_ns()
    # the clock steps back an hour, then stands still: every later message shares one tick
    monkeypatch.setattr(time, "time_ns", lambda: start - 3600 * 10**9)
    for i in range(12):
        await store.add_message("s", msg("user", f"m{i}"))
    await store.add_messages("s", [msg("assistant", "x"), msg("assistant", "y")])
    monkeypatch.undo()
    want = ["first", *[f"m{i}" for i in range(12)], "x", "y"]
    assert [m.content for m in await store.get_messages("s")] == want
    # Memory archives the oldest by that order
    assert [m.content for m in await store.archive_oldest_messages("s", 3)] == want[:3]


async def test_delete_message_takes_the_message_id(db_url: str) -> None:
    store = SutramChatStore(url=db_url, tenant="acme")
    await store.add_messages("s", [msg("user", f"m{i}") for i in range(1, 6)])  # ids 1..5
    await store.archive_oldest_messages("s", 2)
    await store.delete_oldest_messages("s", 1)  # m1 goes
    # ids do not move when earlier messages are archived or deleted, and count archived ones
    deleted = await store.delete_message("s", 4)
    assert deleted is not None and deleted.content == "m4"
    assert await store.delete_message("s", 1) is None and await store.delete_message("s", 99) is None
    assert [m.content for m in await store.get_messages("s", status=None)] == ["m2", "m3", "m5"]
    await store.add_message("s", msg("user", "m6"))
    deleted = await store.delete_message("s", 6)
    assert deleted is not None and deleted.content == "m6"


def test_legacy_chat_store_interface(db_url: str) -> None:
    legacy = SutramChatStore(url=db_url, tenant="acme").legacy()
    legacy.add_message("k", msg("user", "hello"))
    legacy.add_message("k", msg("assistant", "hi"))
    assert [m.content for m in legacy.get_messages("k")] == ["hello", "hi"]
    last = legacy.delete_last_message("k")
    assert last is not None and last.content == "hi"
    legacy.set_messages("k", [msg("user", "a"), msg("user", "b")])
    removed = legacy.delete_message("k", 1)
    assert removed is not None and removed.content == "b"
    assert legacy.get_keys() == ["k"]
    assert [m.content for m in legacy.delete_messages("k") or []] == ["a"]
    assert legacy.get_messages("k") == []


async def test_memory_blocks_facts_persist_and_procedures_version(mem_url: str) -> None:
    facts = SutramFactBlock(url=mem_url, tenant="acme", namespace=["facts", "alice"])
    facts.remember("Alice prefers green tea over coffee")
    facts.remember("Alice lives in Lisbon")
    facts.remember("alice prefers green tea over coffee!")  # a near-duplicate: merged
    again = SutramFactBlock(url=mem_url, tenant="acme", namespace=["facts", "alice"], top_k=1)
    assert await again.aget(input="what does Alice like to drink?") == "- alice prefers green tea over coffee!"
    procedures = SutramProceduralBlock(url=mem_url, tenant="acme", namespace=["procedures", "support"])
    procedures.set_instruction("refunds", "Ask for the order number.")
    procedures.set_instruction("refunds", "Ask for the order number, then check the date.")
    assert await procedures.aget() == "- Ask for the order number, then check the date."
    assert len(procedures.memory.history(("procedures", "support"), "refunds")) == 2


_AGENT_SESSIONS = """
import asyncio, sys
from llama_index.core.agent.workflow import FunctionAgent
from sutram_adapters.llama_index import SutramMemory
from tests.fake_llama import RecallLLM

async def main():
    url, turns = sys.argv[1], sys.argv[2:]
    for session, tenant, text in zip(turns[::3], turns[1::3], turns[2::3]):
        memory = SutramMemory.from_defaults(session_id=session, user_id="alice", tenant=tenant, url=url)
        print(str(await FunctionAgent(tools=[], llm=RecallLLM()).run(text, memory=memory)).replace(chr(10), " "))

asyncio.run(main())
"""


def agent_sessions_in_new_process(url: str, *turns: tuple[str, str, str]) -> list[str]:
    """Run agent turns (session, tenant, text) with SutramMemory in one fresh Python process;
    return their answers."""
    argv = [part for turn in turns for part in turn]
    out = subprocess.run([sys.executable, "-c", _AGENT_SESSIONS, url, *argv], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().splitlines()[-len(turns):]


def test_a_function_agent_recalls_a_fact_stored_by_an_earlier_process(mem_url: str) -> None:
    (first,) = agent_sessions_in_new_process(mem_url, ("monday", "acme", "I prefer green tea, never coffee."))
    assert "green tea" in first  # the fact block keeps a fact the moment it is said
    second, stranger = agent_sessions_in_new_process(mem_url, ("friday", "acme", "What should I drink?"),
                                                     ("friday", "globex", "What should I drink?"))
    assert "green tea" in second
    assert stranger == "I don't know yet."  # same user id, other tenant: nothing leaks


async def test_a_context_round_trip_keeps_the_memory(mem_url: str) -> None:
    agent = FunctionAgent(tools=[], llm=RecallLLM())
    memory = SutramMemory.from_defaults(session_id="s-ctx", user_id="bob", tenant="acme", url=mem_url)
    ctx = Context(agent)
    await agent.run("I am vegetarian.", memory=memory, ctx=ctx)
    payload = json.dumps(ctx.to_dict(serializer=JsonSerializer()))
    close_shared_memories()  # as if in a new process: no live connection survives

    restored = Context.from_dict(agent, json.loads(payload), serializer=JsonSerializer())
    revived = await restored.store.get("memory")
    assert isinstance(revived, SutramMemory)
    assert (revived.session_id, revived.tenant, revived.url) == ("s-ctx", "acme", mem_url)
    assert [b.name for b in revived.memory_blocks] == ["facts", "episodes"]
    history = await revived.aget_all()
    assert [m.content for m in history][:2] == ["I am vegetarian.", "From memory: I am vegetarian."]
    answer = await agent.run("What do I eat?", ctx=restored)
    assert "vegetarian" in str(answer)
