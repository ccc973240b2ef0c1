"""The parts of LangGraph's store API around the operations: ``setup()``, ``.embeddings``,
the TTL sweeper as written for the async stores, SqliteStore's ``text_fields`` and
PostgresStore's ``distance_type``."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from sutram_adapters.langgraph import SutramStore
from sutram_core.errors import ConfigurationError
from tests.memory_support import WordHashEmbedder


def _embed(texts: list[str]) -> list[list[float]]:
    return WordHashEmbedder()(texts)


def _index(**extra: Any) -> Any:
    return {"dims": WordHashEmbedder.dims, "embed": _embed, **extra}


def test_setup_is_idempotent_and_awaitable(mem_url: str) -> None:
    with SutramStore.from_url(mem_url, index=False) as store:
        store.setup()
        store.setup()

        async def main() -> None:
            await store.setup()  # as written for AsyncPostgresStore

        asyncio.run(main())
        store.put(("a",), "k", {"x": 1})
        assert store.get(("a",), "k") is not None


def test_embeddings_attribute_embeds_like_the_store(db_url: str) -> None:
    with SutramStore.from_url(db_url, index=_index()) as store:
        assert store.embeddings is not None
        assert len(store.embeddings.embed_query("green tea")) == WordHashEmbedder.dims
    with SutramStore.from_url(db_url, index=False) as plain:
        assert plain.embeddings is None
    with SutramStore.from_url(db_url) as default:  # the offline default embedder
        assert default.embeddings is not None and len(default.embeddings.embed_documents(["tea"])[0]) == 384


def test_ttl_sweeper_starts_and_stops_as_written_for_the_async_stores(mem_url: str) -> None:
    async def main() -> None:
        async with SutramStore.from_url(mem_url, index=False, ttl={"default_ttl": 1}) as store:
            sweeper = await store.start_ttl_sweeper(sweep_interval_minutes=60)
            assert sweeper.is_alive()
            assert await store.stop_ttl_sweeper(timeout=5) is True
            assert not sweeper.is_alive()

    asyncio.run(main())
    with SutramStore.from_url(mem_url, index=False) as store:  # and as written for the sync stores
        thread = store.start_ttl_sweeper(sweep_interval_minutes=60)
        assert thread.is_alive() and store.stop_ttl_sweeper(timeout=5) == True  # noqa: E712
        assert not thread.is_alive()


def test_text_fields_of_sqlite_store_choose_the_embedded_fields(db_url: str) -> None:
    with SutramStore.from_url(db_url, index=_index(text_fields=["title"])) as store:
        store.put(("d",), "1", {"title": "green tea", "body": "unrelated words about trains"})
        store.put(("d",), "2", {"title": "trains", "body": "green tea green tea"})
        hits = store.search(("d",), query="green tea")
        assert [h.key for h in hits][:1] == ["1"]


@pytest.mark.parametrize("distance", ["l2", "inner_product", "hamming"])
def test_distance_types_other_than_cosine_are_refused_clearly(db_url: str, distance: str) -> None:
    with pytest.raises(ConfigurationError, match="distance_type"):
        SutramStore.from_url(db_url, index=_index(distance_type=distance))


def test_cosine_distance_type_is_accepted(db_url: str) -> None:
    with SutramStore.from_url(db_url, index=_index(distance_type="cosine")) as store:
        store.put(("d",), "1", {"text": "green tea"})
        assert [h.key for h in store.search(("d",), query="green tea")] == ["1"]
