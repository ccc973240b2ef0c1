"""Memory on a live Weaviate that behaves like a server: native tenants, and a server that
is killed mid-work, away for a while, and back.

The tenancy test uses the suite's server (``SUTRAM_WEAVIATE_URL``). The outage tests start
a server of their own (``integrations/weaviate/testserver.py``), since they kill it: one
scenario, run once for the module, writes, kills the server with SIGKILL, tries to write
and read while it is down, starts it again on the same data, and records what happened;
each test checks one part of the record.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from langgraph.graph import END, START, StateGraph
from langgraph.store.base import BaseStore
from typing_extensions import TypedDict

from sutram_adapters.langgraph import SutramSaver, SutramStore
from sutram_core.errors import DatabaseUnavailableError
from sutram_core.memory import MemoryStore
from tests.conftest import NO_WEAVIATE, WEAVIATE_URL
from tests.memory_support import WordHashEmbedder

pytestmark = pytest.mark.skipif(not WEAVIATE_URL, reason=NO_WEAVIATE)

ROOT = Path(__file__).resolve().parents[1]
INDEX: Any = {"dims": WordHashEmbedder.dims, "embed": WordHashEmbedder(), "fields": ["text"]}  # the stores' vectors alike
RETRY_SECONDS = 1.0  # SUTRAM_DB_RETRY_SECONDS for the outage: how long a call waits for the server


def _testserver() -> ModuleType:
    spec = importlib.util.spec_from_file_location("weaviate_testserver", ROOT / "integrations/weaviate/testserver.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- native multi-tenancy ------------------------------------------------------------------------


@pytest.mark.parametrize("mem_backend", ["weaviate"])
def test_each_sutram_tenant_is_a_weaviate_tenant_created_on_first_use_and_never_seen_by_another(mem_url: str) -> None:
    import weaviate

    with MemoryStore.from_url(mem_url, embedder=WordHashEmbedder()) as store:
        backend: Any = store.backend
        collection = backend.client.collections.get(backend.name)
        assert "acme" not in collection.tenants.get()
        assert store.search("tea", tenant="globex") == []  # a read is a first use too
        assert "globex" in collection.tenants.get()
        store.put(("users", "u1"), "drink", {"text": "acme secret green tea"}, tenant="acme")
        store.add(("notes",), "acme secret plan for tea", tenant="acme")
        assert {"acme", "globex"} <= set(collection.tenants.get())
        # the objects live in acme's Weaviate tenant, not in a shared one filtered by a field
        assert collection.with_tenant("acme").aggregate.over_all(total_count=True).total_count == 2
        assert collection.with_tenant("globex").aggregate.over_all(total_count=True).total_count == 0
        for mode in ("hybrid", "keyword", "vector"):
            assert store.search("acme secret tea", mode=mode, tenant="globex") == []  # no namespace prefix
            assert store.search("acme secret tea", namespace=("users",), mode=mode, tenant="globex") == []
        assert store.list(tenant="globex") == [] and store.list_namespaces(tenant="globex") == []
        assert store.get(("users", "u1"), "drink", tenant="globex") is None
        assert store.history(("users", "u1"), "drink", tenant="globex") == []
        assert store.count(tenant="globex") == 0 and store.count(tenant="acme") == 2
        with pytest.raises(weaviate.exceptions.WeaviateBaseError):
            collection.query.fetch_objects(limit=1)  # a multi-tenant collection has no tenant-less reads


# -- a server that goes away ---------------------------------------------------------------------


class Note(TypedDict):
    user: str
    answer: str


def _graph(saver: SutramSaver, store: SutramStore) -> Any:
    def remember(state: Note, *, store: BaseStore) -> dict[str, Any]:
        store.put(("users", state["user"]), "pref", {"text": f"{state['user']} likes green tea"})
        return {"answer": "remembered"}

    builder = StateGraph(Note)
    builder.add_node("greet", lambda state: {"answer": "hello"})
    builder.add_node("remember", remember)
    builder.add_edge(START, "greet")
    builder.add_edge("greet", "remember")
    builder.add_edge("remember", END)
    return builder.compile(checkpointer=saver, store=store)


@dataclass
class Outage:
    """What the scenario saw: the store it used, what was acknowledged before the kill, the
    errors (and how long each took) while the server was down."""

    store: MemoryStore
    url: str
    acknowledged: dict[tuple[tuple[str, ...], str], str] = field(default_factory=dict)
    procedure_versions: int = 0
    deleted: tuple[tuple[str, ...], str] = (("gone",), "k")
    errors: dict[str, tuple[BaseException, float]] = field(default_factory=dict)
    graph_error: BaseException | None = None
    checkpoint_before: dict[str, Any] = field(default_factory=dict)
    checkpoint_during: dict[str, Any] = field(default_factory=dict)
    sql_url: str = ""


@pytest.fixture(scope="module")
def outage() -> Iterator[Outage]:
    server = _testserver()
    if server.binary() is None:
        pytest.skip("no Weaviate server binary can be built here (Go is needed): see integrations/weaviate/README.md")
    state = Path(tempfile.mkdtemp(prefix="sutram-wv-outage-"))
    work = Path(tempfile.mkdtemp(prefix="sutram-wv-sql-"))
    old_retry = os.environ.get("SUTRAM_DB_RETRY_SECONDS")
    os.environ["SUTRAM_DB_RETRY_SECONDS"] = str(RETRY_SECONDS)
    try:
        url = server.start(state)
        assert url, f"the outage test's Weaviate did not start; see {state / 'server.log'}"
        store = MemoryStore.from_url(url, tenant="acme", embedder=WordHashEmbedder())
        seen = Outage(store=store, url=url, sql_url=f"sqlite:///{work / 'sutram.db'}")
        # acknowledged writes of every kind, the last one just before the kill
        for i in range(30):
            seen.acknowledged[(("notes",), f"n{i}")] = store.put(("notes",), f"n{i}", {"text": f"note {i}"}).text
        added = store.add(("facts",), "Alice prefers green tea")
        seen.acknowledged[(("facts",), added.key)] = added.text
        for version in ("v1", "v2", "v3"):
            store.put(("procedures",), "refunds", {"text": f"refunds {version}"}, kind="procedural")
        seen.acknowledged[(("procedures",), "refunds")] = "refunds v3"
        seen.procedure_versions = 3
        store.put(*seen.deleted, {"text": "erased"})
        store.delete(*seen.deleted)
        new = store.supersede((("facts",), added.key), "Alice prefers black coffee now")
        seen.acknowledged.pop((("facts",), added.key))
        seen.acknowledged[(("facts",), new.key)] = new.text
        with SutramSaver.from_url(seen.sql_url) as saver, SutramStore.from_url(url, tenant="acme", index=INDEX) as lg:
            _graph(saver, lg).invoke({"user": "u1", "answer": ""}, {"configurable": {"thread_id": "before"}})
            seen.checkpoint_before = saver.get_tuple({"configurable": {"thread_id": "before"}}).checkpoint  # type: ignore[union-attr]
            seen.acknowledged[(("users", "u1"), "pref")] = "u1 likes green tea"

            server.kill(state, signal.SIGKILL)
            calls = {
                "put": lambda: store.put(("notes",), "while-down", {"text": "written while down"}),
                "add": lambda: store.add(("facts",), "Bob rides a red bike"),
                "get": lambda: store.get(("notes",), "n1"),
                "search": lambda: store.search("note"),
                "connect": lambda: MemoryStore.from_url(url, tenant="acme", embedder=WordHashEmbedder()),
            }
            for name, call in calls.items():
                started = time.monotonic()
                try:
                    call()
                except Exception as exc:  # recorded, checked by the tests
                    seen.errors[name] = (exc, time.monotonic() - started)
            config = {"configurable": {"thread_id": "during"}}
            try:
                _graph(saver, lg).invoke({"user": "u2", "answer": ""}, config)
            except Exception as exc:
                seen.graph_error = exc
            during = saver.get_tuple(config)
            seen.checkpoint_during = during.checkpoint if during else {}
            assert server.start(state) == url, f"the server did not come back; see {state / 'server.log'}"
            # the graph resumes from its checkpoint once the memory is back
            _graph(saver, lg).invoke(None, config)
        yield seen
        store.close()
    finally:
        if old_retry is None:
            os.environ.pop("SUTRAM_DB_RETRY_SECONDS", None)
        else:
            os.environ["SUTRAM_DB_RETRY_SECONDS"] = old_retry
        server.stop(state)
        for f in work.iterdir():
            f.unlink()
        work.rmdir()


def test_every_acknowledged_write_is_there_after_the_server_was_killed(outage: Outage) -> None:
    with MemoryStore.from_url(outage.url, tenant="acme", embedder=WordHashEmbedder()) as fresh:
        for (ns, key), text in outage.acknowledged.items():
            got = fresh.get(ns, key)
            assert got is not None and got.text == text, (ns, key)
        assert len(fresh.history(("procedures",), "refunds")) == outage.procedure_versions
        assert fresh.get(*outage.deleted) is None and fresh.history(*outage.deleted) == []
        (old,) = [r for r in fresh.history(("facts",), next(k for ns, k in outage.acknowledged if ns == ("facts",)))]
        assert old.supersedes is not None  # the superseded fact's successor, its predecessor closed:
        closed = fresh.list(("facts",), as_of=old.created_at.timestamp() - 1e-3)  # type: ignore[union-attr]
        assert [r.text for r in closed] == ["Alice prefers green tea"]


@pytest.mark.parametrize("call", ["put", "add", "get", "search", "connect"])
def test_a_call_while_the_server_is_down_is_a_typed_error_within_seconds(outage: Outage, call: str) -> None:
    error, seconds = outage.errors[call]
    assert isinstance(error, DatabaseUnavailableError), repr(error)
    assert seconds < RETRY_SECONDS + 4, f"{call} took {seconds:.1f} s to fail"
    assert "Weaviate at http://127.0.0.1:" in str(error) and "Start the server" in str(error)


def test_a_write_refused_while_the_server_was_down_left_nothing_behind(outage: Outage) -> None:
    with MemoryStore.from_url(outage.url, tenant="acme", embedder=WordHashEmbedder()) as fresh:
        assert fresh.get(("notes",), "while-down") is None
        assert [r.text for r in fresh.list(("facts",))] == ["Alice prefers black coffee now"]
        assert fresh.count(("notes",)) == 30


def test_a_graph_step_whose_memory_write_failed_is_not_checkpointed_and_resumes(outage: Outage) -> None:
    assert isinstance(outage.graph_error, DatabaseUnavailableError), repr(outage.graph_error)
    # the SQL side holds the steps before the failed one, never the failed step's update
    assert outage.checkpoint_during["channel_values"].get("answer") == "hello"
    with SutramSaver.from_url(outage.sql_url) as saver:
        done = saver.get_tuple({"configurable": {"thread_id": "during"}})
        assert done is not None and done.checkpoint["channel_values"]["answer"] == "remembered"
    with SutramStore.from_url(outage.url, tenant="acme", index=INDEX) as lg:
        item = lg.get(("users", "u2"), "pref")
        assert item is not None and item.value == {"text": "u2 likes green tea"}


def test_the_store_that_saw_the_outage_works_again_once_the_server_is_back(outage: Outage) -> None:
    store = outage.store
    store.put(("notes",), "after", {"text": "written after the restart"})
    assert store.get(("notes",), "after") is not None
    assert store.get(("notes",), "n29") is not None
    assert [h.record.key for h in store.search("written after the restart", limit=1)] == ["after"]
