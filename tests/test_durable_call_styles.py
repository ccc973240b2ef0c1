"""Every chat-model call inside a durable task is journaled and budgeted, however it is made:
invoke, ainvoke, stream, astream, structured output, bound tools, a model with cache=False;
a user's own LangChain cache keeps working. Each node makes three calls, then fails once
with a recoverable error; the retry from the checkpoint must answer the three calls from
the journal (the provider log shows each call once), and a streamed replay is a stream."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessageChunk
from langgraph.graph import END, START, StateGraph
from pydantic import BaseModel
from typing_extensions import TypedDict

from sutram_adapters.langgraph.durable import durable
from sutram_core.runs import Budget, RunStatus
from tests.durable_graph import LoggedModel


class S(TypedDict):
    out: list[str]
    chunks: list[int]


class Answer(BaseModel):
    text: str


class Flaky:
    """Fails the node once, after its calls, with an error the runner retries."""

    def __init__(self) -> None:
        self.failed = False

    def __call__(self) -> None:
        if not self.failed:
            self.failed = True
            raise ConnectionError("connection reset after the calls")


class ToolCallingModel(LoggedModel):
    """A LoggedModel that answers with a tool call when tools are bound (so
    ``with_structured_output`` works as with a provider's model)."""

    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
        from langchain_core.utils.function_calling import convert_to_openai_tool

        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], **kwargs)

    def _generate(self, messages: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any) -> Any:
        result = super()._generate(messages, stop, run_manager, **kwargs)
        tools = kwargs.get("tools")
        if tools:
            message = result.generations[0].message
            message.tool_calls = [{"name": tools[0]["function"]["name"], "args": {"text": str(message.content)},
                                   "id": f"call-{len(messages)}", "type": "tool_call"}]
        return result


def _call(style: str, model: Any, prompt: str) -> tuple[str, int]:
    """One model call in ``style``; the text and the number of chunks the caller saw."""
    if style == "invoke":
        return str(model.invoke(prompt).content), 1
    if style == "stream":
        chunks = list(model.stream(prompt))
        assert all(isinstance(c, AIMessageChunk) for c in chunks)
        return "".join(str(c.content) for c in chunks), len(chunks)
    if style == "no-cache":
        return str(model.model_copy(update={"cache": False}).invoke(prompt).content), 1
    if style == "bind_tools":
        return str(model.bind(tools=[]).invoke(prompt).content), 1
    if style == "structured":
        return ToolCallingModel().with_structured_output(Answer).invoke(prompt).text, 1  # type: ignore[union-attr]
    raise AssertionError(style)


async def _acall(style: str, model: Any, prompt: str) -> tuple[str, int]:
    if style == "ainvoke":
        return str((await model.ainvoke(prompt)).content), 1
    if style == "astream":
        chunks = [c async for c in model.astream(prompt)]
        return "".join(str(c.content) for c in chunks), len(chunks)
    raise AssertionError(style)


def _graph(style: str, flaky: Flaky) -> Any:
    def work(state: S) -> dict[str, Any]:
        model = LoggedModel()
        done = [_call(style, model, f"{style} question {i}") for i in range(3)]
        flaky()
        return {"out": [t for t, _ in done], "chunks": [n for _, n in done]}

    async def awork(state: S) -> dict[str, Any]:
        model = LoggedModel()
        done = [await _acall(style, model, f"{style} question {i}") for i in range(3)]
        flaky()
        return {"out": [t for t, _ in done], "chunks": [n for _, n in done]}

    builder = StateGraph(S)
    builder.add_node("work", awork if style in ("ainvoke", "astream") else work)
    builder.add_edge(START, "work")
    builder.add_edge("work", END)
    return builder.compile()


@pytest.mark.parametrize("style", ["invoke", "stream", "no-cache", "bind_tools", "ainvoke", "astream"])
async def test_calls_made_before_a_retry_are_answered_from_the_journal(db_url: str, calls: Path, style: str) -> None:
    with durable(_graph(style, Flaky()), url=db_url, backoff_seconds=0.01) as runner:
        if style in ("ainvoke", "astream"):
            out = await runner.ainvoke({"out": [], "chunks": []}, thread_id=f"t-{style}", run_id=f"r-{style}")
        else:
            out = runner.invoke({"out": [], "chunks": []}, thread_id=f"t-{style}", run_id=f"r-{style}")
        run = runner.ledger.get("default", f"r-{style}")
    assert run.status is RunStatus.COMPLETED and run.attempts == 1
    made = calls.read_text().splitlines()
    assert made == [f"{style} question {i}" for i in range(3)], made  # each call reached the model once
    assert out["out"] == [f"echo: {style} question {i}" for i in range(3)]
    if "stream" in style:  # the replay was a stream of the recorded chunks, as many as a live one
        from tests.fake_models import EchoChatModel

        live = [len(list(EchoChatModel().stream(f"{style} question {i}"))) for i in range(3)]
        assert out["chunks"] == live and min(live) > 1
    assert run.spend.tokens > 0  # streamed usage counted too


@pytest.mark.parametrize("style", ["invoke", "stream", "astream", "structured", "no-cache", "bind_tools"])
async def test_a_token_budget_pauses_each_call_style_at_the_limit(db_url: str, calls: Path, style: str) -> None:
    async def node(state: S) -> dict[str, Any]:
        model = ToolCallingModel()
        out = []
        for i in range(4):
            prompt = f"{style} q{i}"
            if style == "invoke":
                out.append(str(model.invoke(prompt).content))
            elif style == "stream":
                out.append("".join(str(c.content) for c in model.stream(prompt)))
            elif style == "astream":
                out.append("".join([str(c.content) async for c in model.astream(prompt)]))
            elif style in ("no-cache", "bind_tools"):
                out.append(_call(style, model, prompt)[0])
            else:
                out.append(str(await model.with_structured_output(Answer).ainvoke(prompt)))
        return {"out": out}

    builder = StateGraph(S)
    builder.add_node("work", node)
    builder.add_edge(START, "work")
    builder.add_edge("work", END)
    with durable(builder.compile(), url=db_url) as runner:
        await runner.ainvoke({"out": [], "chunks": []}, thread_id=f"tb-{style}", run_id=f"rb-{style}",
                             budget=Budget(max_tokens=10))
        run = runner.ledger.get("default", f"rb-{style}")
    assert run.status is RunStatus.PAUSED and "max_tokens" in (run.pause_reason or "")
    made = calls.read_text().splitlines()
    assert 1 <= len(made) < 4 and run.spend.tokens >= 10, (made, run.spend)


def test_a_users_own_cache_keeps_working_outside_durable_tasks(db_url: str, calls: Path) -> None:
    from langchain_core.caches import InMemoryCache
    from langchain_core.globals import get_llm_cache, set_llm_cache

    before = get_llm_cache()
    mine = InMemoryCache()
    set_llm_cache(mine)
    try:
        with durable(_graph("invoke", Flaky()), url=db_url, backoff_seconds=0.01) as runner:
            runner.invoke({"out": [], "chunks": []}, thread_id="t-cache", run_id="r-cache")
        LoggedModel().invoke("outside 1")
        LoggedModel().invoke("outside 1")  # answered by the user's cache
        assert calls.read_text().splitlines().count("outside 1") == 1
        assert mine._cache  # the user's cache holds the call made outside
    finally:
        set_llm_cache(before)
    assert os.environ["SUTRAM_TEST_CALL_LOG"]


class Died(BaseException):
    """Stands for the worker dying mid-node: no handler catches it, the run is left running
    with a lease nobody renews."""


def _async_graph(die: list[bool]) -> Any:
    async def work(state: S) -> dict[str, Any]:
        model = LoggedModel()
        out = []
        for i in range(3):
            if i == 2 and die:
                die.pop()
                raise Died()
            out.append("".join([str(c.content) async for c in model.astream(f"async question {i}")]))
        return {"out": out}

    builder = StateGraph(S)
    builder.add_node("work", work)
    builder.add_edge(START, "work")
    builder.add_edge("work", END)
    return builder.compile()


@pytest.mark.parametrize("how", ["recover", "arecover"])
async def test_an_async_run_whose_worker_died_is_recovered_through_the_async_api(
        db_url: str, calls: Path, how: str) -> None:
    import asyncio

    with durable(_async_graph([True]), url=db_url, lease_seconds=0.5) as dying:
        assert dying.needs_async
        with pytest.raises(Died):
            await dying.ainvoke({"out": [], "chunks": []}, thread_id=f"ta-{how}", run_id=f"ra-{how}")
    await asyncio.sleep(0.7)  # the lease expires: the worker is "dead"
    with durable(_async_graph([]), url=db_url, lease_seconds=5) as worker:
        if how == "recover":
            (run,) = await asyncio.to_thread(worker.recover)  # sync recovery of an async graph
        else:
            (run,) = await worker.arecover()
        state = await worker.graph.aget_state({"configurable": {"thread_id": f"ta-{how}"}})
    assert run.status is RunStatus.COMPLETED and run.attempts == 2
    assert state.values["out"] == [f"echo: async question {i}" for i in range(3)]
    assert calls.read_text().splitlines() == [f"async question {i}" for i in range(3)]  # none made twice


async def test_poll_recovers_in_the_background_of_an_async_app(db_url: str, calls: Path) -> None:
    import asyncio

    with durable(_async_graph([True]), url=db_url, lease_seconds=0.5) as dying:
        with pytest.raises(Died):
            await dying.ainvoke({"out": [], "chunks": []}, thread_id="tp", run_id="rp")
    with durable(_async_graph([]), url=db_url, lease_seconds=5) as worker:
        poller = asyncio.create_task(worker.poll(interval=0.2))
        for _ in range(50):
            await asyncio.sleep(0.2)
            if (await asyncio.to_thread(worker.ledger.get, "default", "rp")).status is RunStatus.COMPLETED:
                break
        poller.cancel()
        run = await asyncio.to_thread(worker.ledger.get, "default", "rp")
    assert run.status is RunStatus.COMPLETED
    assert calls.read_text().splitlines() == [f"async question {i}" for i in range(3)]


class Approval(TypedDict):
    out: list[str]
    chunks: list[int]
    approved: str


def _approval_graph(die: list[bool]) -> Any:
    """A subgraph whose node makes two calls, asks a person (interrupt), then makes a third
    (and can die just before it); the parent routes on with Command(goto=...)."""
    from langgraph.types import Command, interrupt

    def review(state: Approval) -> dict[str, Any]:
        model = LoggedModel()
        out = [str(model.invoke(f"review {i}").content) for i in range(2)]
        answer = interrupt({"question": "approve?"})
        if die:
            die.pop()
            raise Died()
        out.append(str(model.invoke(f"after {answer}").content))
        return {"out": out, "approved": answer}

    inner = StateGraph(Approval)
    inner.add_node("review", review)
    inner.add_edge(START, "review")
    inner.add_edge("review", END)

    def route(state: Approval) -> Command[Any]:
        return Command(goto="ship" if state["approved"] == "yes" else END)

    def ship(state: Approval) -> dict[str, Any]:
        return {"out": [*state["out"], str(LoggedModel().invoke("ship it").content)]}

    outer = StateGraph(Approval)
    outer.add_node("sub", inner.compile())
    outer.add_node("route", route, destinations=("ship", END))
    outer.add_node("ship", ship)
    outer.add_edge(START, "sub")
    outer.add_edge("sub", "route")
    outer.add_edge("ship", END)
    return outer.compile()


def test_an_interrupt_inside_a_subgraph_is_answered_and_a_kill_after_it_recovered(db_url: str, calls: Path) -> None:
    import time

    start = {"out": [], "chunks": [], "approved": ""}
    with durable(_approval_graph([True]), url=db_url, lease_seconds=0.5) as runner:
        runner.invoke(start, thread_id="t-approve", run_id="r-approve")
        run = runner.ledger.get("default", "r-approve")
        assert run.status is RunStatus.PAUSED and "waiting for input" in (run.pause_reason or "")
        with pytest.raises(Died):  # answered, then the worker dies mid-node
            runner.resume("r-approve", value="yes")
    time.sleep(0.7)
    with durable(_approval_graph([]), url=db_url) as worker:
        (run,) = worker.recover()
        state = worker.graph.get_state({"configurable": {"thread_id": "t-approve"}}).values
    assert run.status is RunStatus.COMPLETED
    assert state["out"] == ["echo: review 0", "echo: review 1", "echo: after yes", "echo: ship it"]
    assert calls.read_text().splitlines() == ["review 0", "review 1", "after yes", "ship it"]  # each once



def _dying_graph(style: str, die: list[bool]) -> Any:
    """Three calls in ``style``, then (once) the worker dies before the node ends."""
    def work(state: S) -> dict[str, Any]:
        done = [_call(style, LoggedModel(), f"{style} question {i}") for i in range(3)]
        if die:
            die.pop()
            raise Died()
        return {"out": [t for t, _ in done], "chunks": [n for _, n in done]}

    async def awork(state: S) -> dict[str, Any]:
        done = [await _acall(style, LoggedModel(), f"{style} question {i}") for i in range(3)]
        if die:
            die.pop()
            raise Died()
        return {"out": [t for t, _ in done], "chunks": [n for _, n in done]}

    builder = StateGraph(S)
    builder.add_node("work", awork if style in ("ainvoke", "astream") else work)
    builder.add_edge(START, "work")
    builder.add_edge("work", END)
    return builder.compile()


@pytest.mark.parametrize("style", ["invoke", "stream", "no-cache", "bind_tools", "structured", "ainvoke", "astream"])
async def test_each_call_style_is_recovered_after_its_worker_died(db_url: str, calls: Path, style: str) -> None:
    import asyncio

    is_async = style in ("ainvoke", "astream")
    with durable(_dying_graph(style, [True]), url=db_url, lease_seconds=0.5) as dying:
        with pytest.raises(Died):
            if is_async:
                await dying.ainvoke({"out": [], "chunks": []}, thread_id=f"tk-{style}", run_id=f"rk-{style}")
            else:
                await asyncio.to_thread(dying.invoke, {"out": [], "chunks": []}, thread_id=f"tk-{style}",
                                        run_id=f"rk-{style}")
    await asyncio.sleep(0.7)  # the lease expires
    with durable(_dying_graph(style, []), url=db_url) as worker:
        (run,) = await worker.arecover() if is_async else await asyncio.to_thread(worker.recover)
    assert run.status is RunStatus.COMPLETED and run.attempts == 2
    assert calls.read_text().splitlines() == [f"{style} question {i}" for i in range(3)]  # none made twice
