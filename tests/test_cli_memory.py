"""``sutram memory search`` and ``sutram memory list``."""

from __future__ import annotations

import json

import pytest

from sutram_adapters.cli import main
from sutram_core.memory import MemoryStore


@pytest.fixture
def filled(db_url: str) -> str:
    with MemoryStore.from_url(db_url, tenant="acme") as store:
        store.put(("users", "alice"), "drink", {"text": "Alice prefers green tea"}, provenance={"run_id": "r1"})
        store.put(("users", "alice"), "city", {"text": "Alice lives in Lisbon"}, kind="episodic")
        store.put(("users", "bob"), "drink", {"text": "Bob drinks espresso"})
    with MemoryStore.from_url(db_url, tenant="globex") as other:
        other.put(("users", "carol"), "drink", {"text": "Carol drinks green tea too"})
    return db_url


def test_memory_search_json_ranks_the_best_match_first_within_the_tenant(filled: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["memory", "search", "what tea does Alice like", "--tenant", "acme", "--json", "--url", filled]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["key"] == "drink" and rows[0]["namespace"] == ["users", "alice"]
    assert rows[0]["provenance"] == {"run_id": "r1"} and rows[0]["score"] > 0
    assert all(r["text"] != "Carol drinks green tea too" for r in rows)


def test_memory_search_by_kind_and_namespace(filled: str, capsys: pytest.CaptureFixture[str]) -> None:
    main(["memory", "search", "Alice", "--tenant", "acme", "--kind", "episodic", "--json", "--url", filled])
    assert [r["key"] for r in json.loads(capsys.readouterr().out)] == ["city"]
    main(["memory", "list", "--tenant", "acme", "--namespace", "users/bob", "--json", "--url", filled])
    assert [r["text"] for r in json.loads(capsys.readouterr().out)] == ["Bob drinks espresso"]


def test_memory_list_table(filled: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["memory", "list", "--tenant", "globex", "--url", filled]) == 0
    out = capsys.readouterr().out
    assert "Carol drinks green tea too" in out and "Alice" not in out


def test_memory_search_without_a_query_is_a_usage_error(filled: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["memory", "search", "--url", filled]) == 2
    assert "needs a QUERY" in capsys.readouterr().err
