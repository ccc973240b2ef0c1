"""``SearchItem.score`` means one thing whatever the query (issue 15 item 2).

Before, the score was a fused reciprocal rank (at most about 0.13) when keywords matched
too, the raw cosine when only vectors did and raw BM25 when only keywords did: a document
scored 0.127 for its exact text and 0.69 for a near question, and an unrelated question
could score above a good one. Now it is the cosine plus keyword evidence: higher is more
relevant, comparable across queries, monotone with the order, and exactly the cosine
LangGraph's stores report when no keyword matches. Real MiniLM embeddings, both databases.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from langgraph.store.memory import InMemoryStore

from sutram_adapters.langgraph import SutramStore

DOCS = {
    "tea": "Alice drinks green tea every morning",
    "lisbon": "Bruno moved to Lisbon last spring",
    "refund": "Order ORD-19494 was refunded on 3 May",
    "twin": "Order ORD-19949 was refunded on 3 May",
    "cello": "The user's daughter is learning to play the cello",
}


@pytest.fixture
def stores(db_url: str) -> Iterator[tuple[SutramStore, InMemoryStore]]:
    with SutramStore(db_url, tenant="scores", index={"dims": 384, "embed": _minilm(), "fields": ["text"]}) as ours:
        peer = InMemoryStore(index={"dims": 384, "embed": ours.embeddings, "fields": ["text"]})  # type: ignore[typeddict-item]
        for key, text in DOCS.items():
            ours.put(("docs",), key, {"text": text})
            peer.put(("docs",), key, {"text": text})
        yield ours, peer


def _minilm() -> object:
    from sutram_adapters.langgraph.store import _EmbedderEmbeddings
    from sutram_core.memory.embedders import default_embedder

    return _EmbedderEmbeddings(default_embedder())


def _scores(store: SutramStore | InMemoryStore, query: str) -> dict[str, float]:
    return {h.key: h.score for h in store.search(("docs",), query=query, limit=10)}  # type: ignore[misc]


def test_without_a_keyword_match_the_score_is_the_cosine_langgraph_reports(
        stores: tuple[SutramStore, InMemoryStore]) -> None:
    ours, peer = stores
    for query in ("which hot beverage starts the day?", "who relocated to Portugal?", "a stringed instrument"):
        mine, theirs = _scores(ours, query), _scores(peer, query)
        assert mine.keys() == theirs.keys()
        for key in mine:
            assert mine[key] == pytest.approx(theirs[key], abs=1e-4), (query, key)


def test_the_exact_text_scores_at_least_as_high_as_a_paraphrase(stores: tuple[SutramStore, InMemoryStore]) -> None:
    ours, _ = stores
    exact = _scores(ours, DOCS["tea"])["tea"]
    near = _scores(ours, "what does Alice drink in the morning?")["tea"]
    unrelated = _scores(ours, "quarterly revenue of the sales team")["tea"]
    assert exact > near > unrelated
    assert exact >= 0.99  # the cosine of a text with itself, plus its keyword evidence


def test_a_good_answer_outscores_an_unrelated_question(stores: tuple[SutramStore, InMemoryStore]) -> None:
    ours, _ = stores
    good = max(_scores(ours, "Where does Bruno live now?").values())
    poor = max(_scores(ours, "how do I configure the kubernetes ingress controller?").values())
    assert good > poor + 0.2


def test_scores_fall_with_the_order_and_the_identifier_decides(stores: tuple[SutramStore, InMemoryStore]) -> None:
    ours, _ = stores
    for query in ("refund ORD-19494", "ORD-19949", "Alice tea", "Lisbon", "cello lessons", "was it refunded?"):
        hits = ours.search(("docs",), query=query, limit=10)
        scores = [h.score for h in hits]
        assert all(s is not None for s in scores)
        assert scores == sorted(scores, reverse=True), query  # type: ignore[type-var]
    top = ours.search(("docs",), query="status of ORD-19494", limit=2)
    assert [h.key for h in top] == ["refund", "twin"] and top[0].score > top[1].score + 0.5  # type: ignore[operator]
