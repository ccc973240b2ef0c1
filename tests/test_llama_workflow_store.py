"""SutramWorkflowStore: the LlamaIndex workflow server's handler store on Sutram.

One contract, written from ``AbstractWorkflowStore``'s documented behaviour, runs against
Sutram's store (SQLite and PostgreSQL) and, as the reference, against the stores shipped
with llama-agents-server (``MemoryWorkflowStore`` and ``SqliteWorkflowStore``): the same
assertions hold for all of them. Tests of what only Sutram has (tenants, typed errors,
reopening a database from another store object) follow the contract.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)
from llama_agents.client.protocol.serializable_events import EventEnvelopeWithMetadata
from llama_agents.server import (
    HandlerQuery,
    MemoryWorkflowStore,
    PersistentHandler,
    SqliteWorkflowStore,
)
from llama_agents.server._store.abstract_workflow_store import AbstractWorkflowStore
from workflows.context.serializers import PickleSerializer
from workflows.events import StopEvent

from sutram_adapters.llama_index.workflow_store import SutramWorkflowStore
from sutram_core.errors import ConfigurationError, InvalidRunError, TenantError
from tests.conftest import make_url

T0 = datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=timezone.utc)
KINDS = [
    "sutram-sqlite",
    pytest.param("sutram-postgres", marks=pytest.mark.postgres),
    "reference-memory",
    "reference-sqlite",
]


@dataclass
class Stores:
    """Opens stores of one kind over one database (a reference memory store is one object)."""

    kind: str
    location: str
    opened: list[AbstractWorkflowStore] = field(default_factory=list)

    @property
    def sutram(self) -> bool:
        return self.kind.startswith("sutram")

    @property
    def persistent(self) -> bool:
        return self.kind != "reference-memory"

    def open(self, tenant: str = "acme") -> AbstractWorkflowStore:
        if self.kind == "reference-memory":
            if not self.opened:
                self.opened.append(MemoryWorkflowStore(max_completed=None))
            return self.opened[0]
        store: AbstractWorkflowStore
        if self.sutram:
            store = SutramWorkflowStore(self.location, tenant=tenant, poll_interval=0.05)
        else:
            store = SqliteWorkflowStore(self.location, poll_interval=0.05)
        self.opened.append(store)
        return store

    def close(self) -> None:
        for store in self.opened:
            if isinstance(store, SutramWorkflowStore):
                store.close()


@pytest.fixture(params=KINDS)
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stores]:
    kind = str(request.param)
    if kind.startswith("sutram"):
        urls = make_url(kind.removeprefix("sutram-"), tmp_path)
        made = Stores(kind, next(urls))
    else:
        urls = iter(())
        made = Stores(kind, str(tmp_path / "reference.db"))
    try:
        yield made
    finally:
        made.close()
        next(urls, None)


@pytest.fixture
async def store(stores: Stores) -> AbstractWorkflowStore:
    opened = stores.open()
    await opened.start()
    return opened


def handler(handler_id: str, *, workflow: str = "greet", status: Any = "running", run_id: str | None = None,
            **fields: Any) -> PersistentHandler:
    return PersistentHandler(handler_id=handler_id, workflow_name=workflow, status=status,
                             run_id=run_id if run_id is not None else f"run-{handler_id}", **fields)


def envelope(name: str, **value: Any) -> EventEnvelopeWithMetadata:
    return EventEnvelopeWithMetadata(value=value, type=name, types=[name, "Event"], qualified_name=f"app.{name}")


STOP = EventEnvelopeWithMetadata(value={"result": 1}, type="StopEvent", types=["StopEvent", "Event"],
                                 qualified_name="workflows.events.StopEvent")


def ids(handlers: list[PersistentHandler]) -> list[str]:
    return [h.handler_id for h in handlers]


# -- the contract: handlers --------------------------------------------------------------------


async def test_a_stored_handler_reads_back_with_every_field(store: AbstractWorkflowStore) -> None:
    full = handler("h1", status="completed", error="boom", result=StopEvent(result={"answer": [1, "two"]}),
                   started_at=T0, updated_at=T0 + timedelta(seconds=1), completed_at=T0 + timedelta(seconds=2),
                   idle_since=T0 + timedelta(microseconds=1))
    await store.update(full)
    [found] = await store.query(HandlerQuery(handler_id_in=["h1"]))
    assert found == full
    assert found.result == StopEvent(result={"answer": [1, "two"]})
    assert found.idle_since == T0 + timedelta(microseconds=1)  # microseconds survive


async def test_updating_a_handler_replaces_every_field_and_keeps_one_row(store: AbstractWorkflowStore) -> None:
    await store.update(handler("h1", error="first", idle_since=T0, result=StopEvent(result=1)))
    replaced = handler("h1", workflow="other", status="failed", run_id="run-2", completed_at=T0)
    await store.update(replaced)
    assert await store.query(HandlerQuery()) == [replaced]  # error, idle_since and result cleared


async def test_query_without_filters_lists_handlers_in_the_order_first_stored(store: AbstractWorkflowStore) -> None:
    for hid in ("c", "a", "b"):
        await store.update(handler(hid))
    await store.update(handler("c", status="completed"))  # an update keeps its place
    assert ids(await store.query(HandlerQuery())) == ["c", "a", "b"]
    await store.delete(HandlerQuery(handler_id_in=["c"]))
    await store.update(handler("c"))  # stored again after a delete: last
    assert ids(await store.query(HandlerQuery())) == ["a", "b", "c"]


async def test_each_filter_takes_only_matching_handlers_and_filters_combine(store: AbstractWorkflowStore) -> None:
    await store.update(handler("h1", workflow="w1", status="running", run_id="r1"))
    await store.update(handler("h2", workflow="w1", status="completed", run_id="r2", idle_since=T0))
    await store.update(handler("h3", workflow="w2", status="failed", run_id="r3", idle_since=T0))
    await store.update(handler("h4", workflow="w2", status="cancelled", run_id="r4"))

    async def found(**query: Any) -> set[str]:
        return set(ids(await store.query(HandlerQuery(**query))))

    assert await found(handler_id_in=["h2", "h4", "nope"]) == {"h2", "h4"}
    assert await found(run_id_in=["r1", "r3"]) == {"h1", "h3"}
    assert await found(workflow_name_in=["w2"]) == {"h3", "h4"}
    assert await found(status_in=["completed", "cancelled"]) == {"h2", "h4"}
    assert await found(is_idle=True) == {"h2", "h3"}
    assert await found(is_idle=False) == {"h1", "h4"}
    assert await found(workflow_name_in=["w1"], is_idle=True) == {"h2"}
    assert await found(workflow_name_in=["w1"], status_in=["failed"]) == set()
    assert await found(handler_id_in=["h1", "h3"], run_id_in=["r3", "r4"]) == {"h3"}


async def test_an_empty_filter_list_matches_nothing(store: AbstractWorkflowStore) -> None:
    await store.update(handler("h1"))
    for empty in ("handler_id_in", "run_id_in", "workflow_name_in", "status_in"):
        assert await store.query(HandlerQuery(**{empty: []})) == []
        assert await store.delete(HandlerQuery(**{empty: []})) == 0
    assert ids(await store.query(HandlerQuery())) == ["h1"]


async def test_delete_removes_the_matching_handlers_and_says_how_many(store: AbstractWorkflowStore) -> None:
    for hid, status in (("h1", "completed"), ("h2", "running"), ("h3", "completed")):
        await store.update(handler(hid, status=status))
    assert await store.delete(HandlerQuery(status_in=["completed"])) == 2
    assert ids(await store.query(HandlerQuery())) == ["h2"]
    assert await store.delete(HandlerQuery(status_in=["completed"])) == 0
    assert await store.delete(HandlerQuery(handler_id_in=["h2"])) == 1
    assert await store.query(HandlerQuery()) == []


async def test_delete_without_any_filter_deletes_nothing(stores: Stores, store: AbstractWorkflowStore) -> None:
    if stores.kind == "reference-memory":
        pytest.skip("MemoryWorkflowStore deletes everything for an empty query; the SQL stores (server's and "
                    "Sutram's) refuse to, so a missing filter cannot wipe the table")
    await store.update(handler("h1"))
    assert await store.delete(HandlerQuery()) == 0
    assert ids(await store.query(HandlerQuery())) == ["h1"]


async def test_a_handler_without_a_run_is_stored_and_no_run_filter_matches_it(store: AbstractWorkflowStore) -> None:
    await store.update(PersistentHandler(handler_id="h0", workflow_name="greet", status="running"))
    [found] = await store.query(HandlerQuery())
    assert found.run_id is None
    assert await store.query(HandlerQuery(run_id_in=["None", ""])) == []


async def test_update_handler_status_sets_the_status_and_stamps_times(store: AbstractWorkflowStore) -> None:
    await store.update(handler("h1", run_id="r1", started_at=T0))
    before = datetime.now(timezone.utc)
    await store.update_handler_status("r1", status="completed", result=StopEvent(result="done"), error="late")
    [done] = await store.query(HandlerQuery(run_id_in=["r1"]))
    assert (done.status, done.result, done.error, done.started_at) == ("completed", StopEvent(result="done"),
                                                                       "late", T0)
    assert done.updated_at is not None and done.completed_at is not None
    assert done.updated_at >= before - timedelta(seconds=1) and done.completed_at == done.updated_at

    await store.update_handler_status("r1", idle_since=T0)
    [idle] = await store.query(HandlerQuery(is_idle=True))
    assert (idle.idle_since, idle.status, idle.result) == (T0, "completed", StopEvent(result="done"))
    await store.update_handler_status("r1", idle_since=None)
    assert await store.query(HandlerQuery(is_idle=True)) == []


async def test_update_handler_status_of_a_running_status_leaves_completed_at(store: AbstractWorkflowStore) -> None:
    await store.update(handler("h1", run_id="r1"))
    await store.update_handler_status("r1", status="running")
    [found] = await store.query(HandlerQuery())
    assert found.completed_at is None and found.updated_at is not None


async def test_update_handler_status_of_an_unknown_run_creates_nothing(store: AbstractWorkflowStore) -> None:
    await store.update_handler_status("no-such-run", status="failed")
    assert await store.query(HandlerQuery()) == []


# -- the contract: events ----------------------------------------------------------------------


async def test_events_are_numbered_from_zero_per_run_and_read_back_in_order(store: AbstractWorkflowStore) -> None:
    for i in range(3):
        await store.append_event("r1", envelope("Progress", step=i))
    await store.append_event("r2", envelope("Other"))
    events = await store.query_events("r1")
    assert [e.sequence for e in events] == [0, 1, 2]
    assert [e.event for e in events] == [envelope("Progress", step=i) for i in range(3)]
    assert {e.run_id for e in events} == {"r1"} and all(isinstance(e.timestamp, datetime) for e in events)
    assert [e.sequence for e in await store.query_events("r2")] == [0]
    assert await store.query_events("never-ran") == []


async def test_query_events_after_a_sequence_and_with_a_limit(store: AbstractWorkflowStore) -> None:
    for i in range(5):
        await store.append_event("r1", envelope("Progress", step=i))
    assert [e.sequence for e in await store.query_events("r1", after_sequence=2)] == [3, 4]
    assert [e.sequence for e in await store.query_events("r1", after_sequence=-1)] == [0, 1, 2, 3, 4]
    assert [e.sequence for e in await store.query_events("r1", limit=2)] == [0, 1]
    assert [e.sequence for e in await store.query_events("r1", after_sequence=1, limit=2)] == [2, 3]
    assert await store.query_events("r1", after_sequence=4) == []
    assert await store.query_events("r1", limit=0) == []


async def test_subscribe_yields_stored_then_new_events_and_ends_at_the_stop_event(
        store: AbstractWorkflowStore) -> None:
    await store.append_event("r1", envelope("Progress", step=0))
    await store.append_event("r1", envelope("Progress", step=1))
    seen: list[int] = []

    async def follow() -> None:
        async for event in store.subscribe_events("r1", after_sequence=0):
            seen.append(event.sequence)

    follower = asyncio.create_task(follow())
    await asyncio.sleep(0.1)
    assert seen == [1] and not follower.done()  # waiting for more
    await store.append_event("r1", envelope("Progress", step=2))
    await store.append_event("r1", STOP)
    await asyncio.wait_for(follower, timeout=5)
    assert seen == [1, 2, 3]


async def test_subscribe_after_the_stop_event_was_stored_ends_with_it(store: AbstractWorkflowStore) -> None:
    await store.append_event("r1", envelope("Progress"))
    await store.append_event("r1", STOP)
    got = [e async for e in store.subscribe_events("r1")]
    assert [e.sequence for e in got] == [0, 1] and got[-1].event == STOP


# -- the contract: ticks -----------------------------------------------------------------------


async def test_ticks_are_numbered_per_run_and_keep_their_json(store: AbstractWorkflowStore) -> None:
    data = [{"kind": "step", "n": i, "nested": {"list": [1, 2.5, None, True, "x"], "s": "é\u2603"}}
            for i in range(3)]
    for tick in data:
        await store.append_tick("r1", tick)
    await store.append_tick("r2", {"kind": "other"})
    ticks = await store.get_ticks("r1")
    assert [(t.run_id, t.sequence, t.tick_data) for t in ticks] == [("r1", i, d) for i, d in enumerate(data)]
    assert [t.sequence for t in await store.get_ticks("r2")] == [0]
    assert await store.get_ticks("never-ran") == []


async def test_stream_ticks_yields_every_tick_in_order_across_pages(store: AbstractWorkflowStore) -> None:
    for i in range(205):  # more than two pages of the SQL stores
        await store.append_tick("r1", {"n": i})
    streamed = [t async for t in store.stream_ticks("r1")]
    assert [t.sequence for t in streamed] == list(range(205))
    assert [t.tick_data["n"] for t in streamed] == list(range(205))
    assert [t async for t in store.stream_ticks("never-ran")] == []


# -- the contract: state -----------------------------------------------------------------------


async def test_a_run_has_one_state_store_per_namespace(store: AbstractWorkflowStore) -> None:
    root = store.create_state_store("r1")
    assert store.create_state_store("r1") is root
    child = store.create_state_store("r1", namespace=("child",))
    assert child is not root
    await root.set("greeting", "hello")
    await child.set("greeting", "hi")
    assert await root.get("greeting") == "hello" and await child.get("greeting") == "hi"
    assert await store.create_state_store("r2").get("greeting", None) is None


async def test_state_edits_sets_and_clear(store: AbstractWorkflowStore) -> None:
    state = store.create_state_store("r1")
    await state.set("counter", 1)
    async with state.edit_state() as editing:
        editing["counter"] = editing["counter"] + 1
        editing["items"] = ["a", {"b": 2}]
    assert await state.get("counter") == 2 and await state.get("items") == ["a", {"b": 2}]
    await state.clear()
    assert await state.get("counter", None) is None


async def test_state_handed_over_seeds_another_run(store: AbstractWorkflowStore) -> None:
    source = store.create_state_store("r1")
    await source.set("city", "Paris")
    await store.create_state_store("r1", namespace=("child",)).set("depth", 1)
    from workflows.context import JsonSerializer

    handoff = await source.serialize_for_handoff(JsonSerializer())
    target = store.create_state_store("r2", serialized_state=handoff)
    assert await target.get("city") == "Paris"
    await target.set("city", "Rome")
    assert await source.get("city") == "Paris"  # a copy, not the same row


async def test_namespaces_that_join_to_the_same_text_stay_apart(stores: Stores, store: AbstractWorkflowStore) -> None:
    if stores.kind == "reference-sqlite":
        pytest.skip("SqliteWorkflowStore keys a namespace by its labels joined with '/': ('a/b',) is ('a', 'b')")
    await store.create_state_store("r1", namespace=("a/b",)).set("v", 1)
    await store.create_state_store("r1", namespace=("a", "b")).set("v", 2)
    assert await store.create_state_store("r1", namespace=("a/b",)).get("v") == 1


# -- the contract: persistence and concurrent writers -----------------------------------------


async def test_a_new_store_object_on_the_same_database_sees_everything(stores: Stores,
                                                                       store: AbstractWorkflowStore) -> None:
    if not stores.persistent:
        pytest.skip("MemoryWorkflowStore keeps nothing beyond its object")
    stored = handler("h1", run_id="r1", result=StopEvent(result=[1, 2]), started_at=T0)
    await store.update(stored)
    await store.append_event("r1", envelope("Progress", step=1))
    await store.append_tick("r1", {"n": 1})
    await store.create_state_store("r1").set("k", "v")
    if isinstance(store, SutramWorkflowStore):
        store.close()

    again = stores.open()
    await again.start()
    assert await again.query(HandlerQuery()) == [stored]
    assert [e.event for e in await again.query_events("r1")] == [envelope("Progress", step=1)]
    assert [t.tick_data for t in await again.get_ticks("r1")] == [{"n": 1}]
    assert await again.create_state_store("r1").get("k") == "v"
    await again.append_event("r1", envelope("Progress", step=2))  # numbering goes on
    assert [e.sequence for e in await again.query_events("r1")] == [0, 1]


async def test_concurrent_writers_in_threads_number_every_event_and_tick_once(stores: Stores,
                                                                             store: AbstractWorkflowStore) -> None:
    if not stores.persistent:
        pytest.skip("MemoryWorkflowStore lives in one event loop")
    writers, each = 4, 10
    errors: list[BaseException] = []

    def write(w: int) -> None:
        async def run() -> None:
            own = stores.open()  # its own store object and connections, as another process has
            for i in range(each):
                await own.append_event("r1", envelope("Progress", writer=w, i=i))
                await own.append_tick("r1", {"writer": w, "i": i})
        try:
            asyncio.run(run())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    await asyncio.to_thread(lambda: ([t.start() for t in threads], [t.join() for t in threads]))
    assert errors == []
    events = await store.query_events("r1")
    assert [e.sequence for e in events] == list(range(writers * each))
    assert sorted((e.event.value["writer"], e.event.value["i"]) for e in events) == [
        (w, i) for w in range(writers) for i in range(each)]
    ticks = await store.get_ticks("r1")
    assert [t.sequence for t in ticks] == list(range(writers * each))
    for w in range(writers):  # each writer's own events keep its order
        assert [e.event.value["i"] for e in events if e.event.value["writer"] == w] == list(range(each))


# -- Sutram only: tenants, typed errors, JSON at rest --------------------------------------------


@pytest.fixture
def sutram_url(db_url: str) -> str:
    return db_url


async def test_another_tenant_sees_nothing_of_a_tenants_handlers_events_ticks_or_state(sutram_url: str) -> None:
    async with SutramWorkflowStore.from_url(sutram_url, tenant="acme") as acme:
        other = acme.for_tenant("globex")
        await acme.update(handler("h1", run_id="r1"))
        await acme.append_event("r1", envelope("Progress"))
        await acme.append_tick("r1", {"n": 1})
        await acme.create_state_store("r1").set("secret", "acme's")

        assert await other.query(HandlerQuery()) == []
        assert await other.query(HandlerQuery(handler_id_in=["h1"], run_id_in=["r1"])) == []
        assert await other.delete(HandlerQuery(handler_id_in=["h1"])) == 0
        await other.update_handler_status("r1", status="cancelled")
        assert await other.query_events("r1") == [] and await other.get_ticks("r1") == []
        assert [e async for e in other.stream_ticks("r1")] == []
        assert await other.create_state_store("r1").get("secret", None) is None

        # the same ids in the other tenant are other rows
        await other.update(handler("h1", run_id="r1", workflow="theirs"))
        await other.append_event("r1", envelope("Theirs"))
        [mine] = await acme.query(HandlerQuery())
        assert (mine.workflow_name, mine.status) == ("greet", "running")
        assert [e.sequence for e in await other.query_events("r1")] == [0]
        assert len(await acme.query_events("r1")) == 1

        # a state handle cannot reach into another tenant
        handle = await acme.create_state_store("r1").serialize_for_handoff(None)  # type: ignore[arg-type]
        with pytest.raises(TenantError, match="tenant 'acme'"):
            other.create_state_store("r9", serialized_state=handle)
        assert await other.delete(HandlerQuery(workflow_name_in=["theirs"])) == 1
        assert ids(await acme.query(HandlerQuery())) == ["h1"]


async def test_bad_input_raises_a_typed_error_and_writes_nothing(sutram_url: str) -> None:
    async with SutramWorkflowStore.from_url(sutram_url, tenant="acme") as store:
        bogus = handler("h1")
        bogus.status = "bogus"  # type: ignore[assignment]  # no validation on assignment
        cases: list[tuple[Any, type[Exception], str]] = [
            (store.update(bogus), InvalidRunError, "status must be one of"),
            (store.update(handler("")), InvalidRunError, "handler_id"),
            (store.update(handler("h1", error="nul\x00byte")), InvalidRunError, "NUL"),
            (store.update({"handler_id": "h1"}), InvalidRunError, "PersistentHandler"),  # type: ignore[arg-type]
            (store.query(HandlerQuery(handler_id_in="h1")), InvalidRunError, "list of strings"),  # type: ignore[arg-type]
            (store.append_tick("r1", {"x": float("nan")}), InvalidRunError, "JSON"),
            (store.append_tick("r1", {"x": object()}), InvalidRunError, "JSON"),
            (store.append_event("", envelope("E")), InvalidRunError, "run_id"),
            (store.query_events("r1", limit=-1), InvalidRunError, "limit"),
        ]
        for call, error, message in cases:
            with pytest.raises(error, match=message):
                await call
        assert await store.query(HandlerQuery()) == [] and await store.get_ticks("r1") == []
        with pytest.raises(ConfigurationError, match="PickleSerializer"):
            store.create_state_store("r1", serializer=PickleSerializer())
    with pytest.raises(TenantError):
        SutramWorkflowStore(sutram_url, tenant="no spaces")


async def test_everything_is_stored_as_json_text(sutram_url: str) -> None:
    async with SutramWorkflowStore.from_url(sutram_url, tenant="acme") as store:
        await store.update(handler("h1", run_id="r1", result=StopEvent(result={"a": 1})))
        await store.append_event("r1", envelope("Progress"))
        await store.append_tick("r1", {"n": 1})
        await store.create_state_store("r1").set("k", [1])
        with store.database.engine.connect() as conn:
            for table, column in (("sutram_workflow_handlers", "result"), ("sutram_workflow_events", "event"),
                                  ("sutram_workflow_ticks", "tick"), ("sutram_workflow_state", "state")):
                [(text,)] = conn.execute(sa.text(f"SELECT {column} FROM {table} WHERE tenant_id = 'acme'")).all()
                assert isinstance(json.loads(text), dict), (table, text)


async def test_a_result_the_server_cannot_decode_is_flagged_and_kept_by_updates(sutram_url: str) -> None:
    async with SutramWorkflowStore.from_url(sutram_url, tenant="acme") as store:
        await store.update(handler("h1", run_id="r1", result=StopEvent(result={"answer": 42})))

        def refuse(workflow_name: str) -> Any:
            raise ImportError(f"workflow {workflow_name} is not registered")

        store.result_decoder = refuse
        [unreadable] = await store.query(HandlerQuery())
        assert unreadable.result is None and unreadable.result_unreadable
        unreadable.status = "completed"
        await store.update(unreadable)  # written back as read: the stored result stays
        await store.update_handler_status("r1", idle_since=T0)
        store.result_decoder = None
        [again] = await store.query(HandlerQuery())
        assert again.status == "completed" and again.idle_since == T0
        assert again.result == StopEvent(result={"answer": 42}) and not again.result_unreadable


async def test_blocking_work_runs_off_the_event_loop(sutram_url: str) -> None:
    async with SutramWorkflowStore.from_url(sutram_url, tenant="acme") as store:
        threads: list[str] = []
        original = store.database.offload

        async def spy(fn: Any, /, *args: Any, **kwargs: Any) -> Any:
            def recorded() -> Any:
                threads.append(threading.current_thread().name)
                return fn(*args, **kwargs)
            return await original(recorded)

        store.database.offload = spy  # type: ignore[method-assign]
        await store.update(handler("h1"))
        await store.query(HandlerQuery())
        await store.append_event("r1", envelope("E"))
        await store.create_state_store("r1").set("k", 1)
        assert threads and all(name.startswith("sutram-db") for name in threads), threads


# -- a state machine: Sutram against the reference memory store --------------------------------

HANDLER_IDS = st.sampled_from(["a", "b", "c", "d"])
NAMES = st.sampled_from(["w1", "w2"])
STATUSES = st.sampled_from(["running", "completed", "failed", "cancelled"])
RUNS = st.sampled_from(["r1", "r2", "r3"])
SUBSET = st.none() | st.lists(st.sampled_from(["a", "b", "c", "d", "w1", "w2", "r1", "r2", "r3", "running",
                                               "completed", "failed", "cancelled", "x"]), max_size=3)


@st.composite
def queries(draw: st.DrawFn, *, filtered: bool) -> HandlerQuery:
    query = HandlerQuery(handler_id_in=draw(SUBSET), run_id_in=draw(SUBSET), workflow_name_in=draw(SUBSET),
                         status_in=draw(SUBSET), is_idle=draw(st.none() | st.booleans()))
    if filtered and query == HandlerQuery():
        query.handler_id_in = [draw(HANDLER_IDS)]
    return query


class AgainstTheReference(RuleBasedStateMachine):
    """Random updates, deletes, queries and events: Sutram's store answers as
    ``MemoryWorkflowStore`` does (a fresh tenant per run stands for a fresh database)."""

    url = ""
    counter = 0

    @initialize()
    def open_stores(self) -> None:
        type(self).counter += 1
        self.loop = asyncio.new_event_loop()
        self.sutram = SutramWorkflowStore(self.url, tenant=f"machine-{self.counter}")
        self.reference = MemoryWorkflowStore(max_completed=None)

    def both(self, call: str, *args: Any) -> tuple[Any, Any]:
        ours = self.loop.run_until_complete(getattr(self.sutram, call)(*args))
        theirs = self.loop.run_until_complete(getattr(self.reference, call)(*args))
        return ours, theirs

    @rule(hid=HANDLER_IDS, name=NAMES, status=STATUSES, run=RUNS, idle=st.booleans(),
          seconds=st.integers(0, 10**6))
    def update(self, hid: str, name: str, status: str, run: str, idle: bool, seconds: int) -> None:
        def make() -> PersistentHandler:
            at = T0 + timedelta(seconds=seconds, microseconds=seconds % 999_983)
            return PersistentHandler(handler_id=hid, workflow_name=name, status=status, run_id=run,  # type: ignore[arg-type]
                                     started_at=at, idle_since=at if idle else None,
                                     result=StopEvent(result=seconds) if status == "completed" else None)
        self.loop.run_until_complete(self.sutram.update(make()))
        self.loop.run_until_complete(self.reference.update(make()))  # its own object: the memory store keeps it

    @rule(query=queries(filtered=True))
    def delete(self, query: HandlerQuery) -> None:
        ours, theirs = self.both("delete", query)
        assert ours == theirs

    @rule(query=queries(filtered=False))
    def query(self, query: HandlerQuery) -> None:
        ours, theirs = self.both("query", query)
        assert ours == theirs

    @rule(run=RUNS, step=st.integers(0, 9))
    def append_event(self, run: str, step: int) -> None:
        self.both("append_event", run, envelope("Progress", step=step))

    @rule(run=RUNS, after=st.none() | st.integers(-1, 6), limit=st.none() | st.integers(0, 4))
    def query_events(self, run: str, after: int | None, limit: int | None) -> None:
        ours, theirs = self.both("query_events", run, after, limit)
        assert [(e.sequence, e.event) for e in ours] == [(e.sequence, e.event) for e in theirs]

    @invariant()
    def same_handlers(self) -> None:
        if hasattr(self, "sutram"):
            ours, theirs = self.both("query", HandlerQuery())
            assert ours == theirs

    def teardown(self) -> None:
        if hasattr(self, "sutram"):
            self.sutram.close()
            self.loop.close()


def test_sutram_answers_as_the_reference_memory_store_under_random_operations(db_url: str) -> None:
    AgainstTheReference.url = db_url
    run_state_machine_as_test(AgainstTheReference, settings=settings(
        max_examples=15, stateful_step_count=20, deadline=None))
