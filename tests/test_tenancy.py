"""Tenant isolation: two tenants using the same thread ids never see each other's data."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sutram_adapters.langgraph import SutramSaver
from sutram_core.errors import TenantError
from tests.helpers import config, put


def ids(saver: SutramSaver, cfg: dict | None) -> set[str]:  # type: ignore[type-arg]
    return {t.config["configurable"]["checkpoint_id"] for t in saver.list(cfg)}


def test_same_thread_ids_are_isolated_in_every_method(db_url: str) -> None:
    with SutramSaver.from_url(db_url) as base:
        a, b = base.for_tenant("acme"), base.for_tenant("globex")
        a1 = put(a, "t1", {"messages": ["a-secret"]}, run_id="run-a")
        b1 = put(b, "t1", {"messages": ["b-secret"]}, run_id="run-b")
        a.put_writes(a1, [("ch", "a-write")], "task")
        b.put_writes(b1, [("ch", "b-write")], "task")

        ta, tb = a.get_tuple(config("t1")), b.get_tuple(config("t1"))
        assert ta and tb
        assert ta.checkpoint["channel_values"]["messages"] == ["a-secret"]
        assert tb.checkpoint["channel_values"]["messages"] == ["b-secret"]
        assert [w[2] for w in ta.pending_writes or []] == ["a-write"]
        assert [w[2] for w in tb.pending_writes or []] == ["b-write"]
        # a specific checkpoint id of the other tenant is not found
        assert a.get_tuple(b1) is None and b.get_tuple(a1) is None
        assert ids(a, None) == {a1["configurable"]["checkpoint_id"]}
        assert ids(b, None) == {b1["configurable"]["checkpoint_id"]}
        assert ids(a, config("t1")) == {a1["configurable"]["checkpoint_id"]}

        # writes aimed at the other tenant's checkpoint id stay in the writer's tenant
        a.put_writes(b1, [("ch", "a-into-b")], "task2")
        tb = b.get_tuple(config("t1"))
        assert tb is not None and [w[2] for w in tb.pending_writes or []] == ["b-write"]

        a.delete_for_runs(["run-b"])
        assert b.get_tuple(config("t1")) is not None
        a.copy_thread("t1", "t1-copy")
        assert b.get_tuple(config("t1-copy")) is None
        a.prune(["t1"], strategy="delete")
        assert a.get_tuple(config("t1")) is None
        assert b.get_tuple(config("t1")) is not None
        b.delete_thread("t1-copy")
        assert a.get_tuple(config("t1-copy")) is not None


def test_tenant_from_config_matches_bound_tenant(db_url: str) -> None:
    with SutramSaver.from_url(db_url) as saver:
        put(saver, "t1", {"x": 1}, tenant_id="acme")
        assert saver.get_tuple(config("t1", tenant_id="acme")) is not None
        assert saver.get_tuple(config("t1", tenant_id="globex")) is None
        assert saver.get_tuple(config("t1")) is None  # the default tenant
        bound = saver.for_tenant("acme")
        assert bound.get_tuple(config("t1")) is not None
        with pytest.raises(TenantError, match="bound to tenant 'acme'"):
            bound.get_tuple(config("t1", tenant_id="globex"))
        with pytest.raises(TenantError, match="invalid tenant id"):
            saver.get_tuple(config("t1", tenant_id="bad tenant\n"))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(st.tuples(st.sampled_from(["A", "B"]), st.sampled_from(["put", "write", "delete", "prune", "copy"]),
                              st.sampled_from(["t1", "t2"])), min_size=1, max_size=25))
def test_no_operation_of_one_tenant_shows_in_another(db_url: str, ops: list[tuple[str, str, str]]) -> None:
    tenants = {"A": f"a{uuid.uuid4().hex[:8]}", "B": f"b{uuid.uuid4().hex[:8]}"}
    with SutramSaver.from_url(db_url) as base:
        savers = {k: base.for_tenant(v) for k, v in tenants.items()}
        mine: dict[str, set[str]] = {"A": set(), "B": set()}
        n = 0
        for who, op, thread in ops:
            s = savers[who]
            if op == "put":
                cfg = put(s, thread, {"owner": who, "messages": [who] * 3})
                mine[who].add(cfg["configurable"]["checkpoint_id"])
            elif op == "write" and (t := s.get_tuple(config(thread))):
                s.put_writes(t.config, [("owner", who)], "task")
            elif op == "delete":
                s.delete_thread(thread)
            elif op == "prune":
                s.prune([thread])
            elif op == "copy":
                n += 1
                s.copy_thread(thread, f"{thread}-c{n}")
            for k, sv in savers.items():
                for t in sv.list(None):
                    assert t.checkpoint["channel_values"]["owner"] == k
                    assert all(w[2] == k for w in t.pending_writes or [])
                    assert t.config["configurable"]["checkpoint_id"] in mine[k]
