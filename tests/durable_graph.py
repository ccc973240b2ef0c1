"""A graph for the durable-runner tests: one node makes three model calls, and can SIGKILL
its own process between the second and the third (once, when a marker file exists).
Every provider call is appended to a log file, so a test counts them across processes."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

from langchain_core.messages import HumanMessage
from langgraph.graph import END, START, StateGraph
from typing_extensions import TypedDict

from tests.fake_models import EchoChatModel


class State(TypedDict):
    topic: str
    answers: list[str]
    done: bool


class LoggedModel(EchoChatModel):
    """Appends each provider call (invoked or streamed) to the file SUTRAM_TEST_CALL_LOG names."""

    def _generate(self, messages: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any) -> Any:
        _log_call(messages)
        return super()._generate(messages, stop, run_manager, **kwargs)

    def _stream(self, messages: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any) -> Any:
        _log_call(messages)
        return super()._stream(messages, stop, run_manager, **kwargs)


def _log_call(messages: Any) -> None:
    with open(os.environ["SUTRAM_TEST_CALL_LOG"], "a") as log:
        log.write(f"{messages[-1].content}\n")
        log.flush()
        os.fsync(log.fileno())


def research(state: State) -> dict[str, Any]:
    model = LoggedModel()
    answers = []
    for i in range(3):
        if i == 2:
            marker = Path(os.environ["SUTRAM_TEST_KILL_MARKER"])
            if marker.exists():
                marker.unlink()
                os.kill(os.getpid(), signal.SIGKILL)
        answers.append(str(model.invoke([HumanMessage(f"{state['topic']} question {i}")]).content))
    return {"answers": answers}


def finish(state: State) -> dict[str, Any]:
    return {"done": True}


def build() -> Any:
    builder = StateGraph(State)
    builder.add_node("research", research)
    builder.add_node("finish", finish)
    builder.add_edge(START, "research")
    builder.add_edge("research", "finish")
    builder.add_edge("finish", END)
    return builder.compile()
GRAPH = build()


# -- a saga: two steps with compensations, then a node that may fail for good -------------

from sutram_core import durable_step  # noqa: E402

UNDONE: list[str] = []


def _refund(result: dict[str, Any]) -> None:
    UNDONE.append(f"refund {result['charge_id']}")


def _release(result: dict[str, Any]) -> None:
    UNDONE.append(f"release {result['seat']}")


@durable_step(compensate=_refund)
def charge_card(amount: int) -> dict[str, Any]:
    return {"charge_id": f"ch-{amount}"}


@durable_step(compensate=_release)
def reserve_seat(flight: str) -> dict[str, Any]:
    return {"seat": f"{flight}-12A"}


def book(state: State) -> dict[str, Any]:
    charge_card(420)
    reserve_seat("TP1234")
    if state["topic"] == "fail":
        raise ValueError("airline rejected the booking")
    return {"done": True}


def build_saga() -> Any:
    builder = StateGraph(State)
    builder.add_node("book", book)
    builder.add_edge(START, "book")
    builder.add_edge("book", END)
    return builder.compile()


# -- runs that die mid-graph without killing the test process ----------------------------


class Crash(BaseException):
    """Stands for the process dying: no handler catches it, so the run is left running
    in the ledger with a lease nobody renews (as after a SIGKILL)."""


def _crash_if_asked(state: State) -> dict[str, Any]:
    if os.environ.get("SUTRAM_TEST_CRASH"):
        raise Crash()
    return {"done": True}


def build_crashing() -> Any:
    """research (three model calls), then a node that "dies" when SUTRAM_TEST_CRASH is set."""
    builder = StateGraph(State)
    builder.add_node("research", research)
    builder.add_node("wrap_up", _crash_if_asked)
    builder.add_edge(START, "research")
    builder.add_edge("research", "wrap_up")
    builder.add_edge("wrap_up", END)
    return builder.compile()
