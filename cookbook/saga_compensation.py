"""Sagas: side effects that are undone when a run fails for good or is cancelled.

    python cookbook/saga_compensation.py

``@durable_step(compensate=undo)`` journals a side effect (it runs once, even if the node
runs again after a crash) and registers how to undo it. When the run fails with a
permanent error, or is cancelled with ``runner.cancel(run_id)``, the compensations of the
steps it completed run newest first, each exactly once. Each step gets a stable
idempotency key (``idempotency_key()``) to hand to the outside world, so a payment API
can also recognise a retry.
"""

from __future__ import annotations

from typing import Any

from langgraph.graph import END, START, StateGraph
from typing_extensions import TypedDict

from sutram_adapters.langgraph import durable
from sutram_core import durable_step
from sutram_core.runs import idempotency_key

LEDGER: list[str] = []  # stands for the outside world (a payment provider, a hotel's API)


def refund(charge: dict[str, Any]) -> None:
    LEDGER.append(f"refund {charge['charge_id']} ({charge['amount']} EUR)")


def release(room: dict[str, Any]) -> None:
    LEDGER.append(f"release room {room['room']}")


@durable_step(compensate=refund)
def charge_card(customer: str, amount: int) -> dict[str, Any]:
    key = idempotency_key()  # the same on every retry of this step: send it to the payment API
    LEDGER.append(f"charge {customer} {amount} EUR (idempotency key {key[:18]}...)")
    return {"charge_id": f"ch_{key[-8:]}", "amount": amount}


@durable_step(compensate=release)
def reserve_hotel(city: str) -> dict[str, Any]:
    LEDGER.append(f"reserve a room in {city}")
    return {"room": f"{city}-412"}


class Trip(TypedDict, total=False):
    customer: str
    city: str
    flight: str


class NoSeatsLeft(Exception):
    """A permanent error: retrying will not help."""


def book(state: Trip) -> dict[str, Any]:
    charge_card(state["customer"], 840)
    reserve_hotel(state["city"])
    if state["city"] == "Atlantis":
        raise NoSeatsLeft("no flights to Atlantis")
    return {"flight": "TP1234"}


def build() -> Any:
    builder = StateGraph(Trip)
    builder.add_node("book", book)
    builder.add_edge(START, "book")
    builder.add_edge("book", END)
    return builder.compile()


def main() -> None:
    with durable(build(), tenant="acme") as runner:
        print("trip to Lisbon:")
        runner.invoke({"customer": "ana", "city": "Lisbon"}, thread_id="trip-lisbon", run_id="trip-lisbon")
        print("  " + "\n  ".join(LEDGER))
        LEDGER.clear()
        print("trip to Atlantis (the flight cannot be booked):")
        try:
            runner.invoke({"customer": "ben", "city": "Atlantis"}, thread_id="trip-atlantis", run_id="trip-atlantis")
        except NoSeatsLeft as exc:
            print(f"  run failed: {exc}")
        print("  " + "\n  ".join(LEDGER))
        run = runner.ledger.get("acme", "trip-atlantis")
        print(f"  ledger: {run.status.value}, error {run.error!r}")
        print("  compensating again does nothing:", runner.compensate("trip-atlantis"))


if __name__ == "__main__":
    main()
