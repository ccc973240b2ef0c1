"""Retrieval quality on six labelled sets, on every backend, judged on sets held out.

The sets (``tests/data/memory_sets/*.json``, built by ``build_memory_sets.py``, and
``memory_qa.json`` as "people") are of different character: paraphrases, identifiers
with near-twin codes, near-miss names, superseded facts, long notes and chat turns, and
people's facts asked about in other words. Every question has near-miss distractors.

Two kinds of test:

- the default search (``mode="hybrid"``, the shipped :class:`FusionWeights`) on each set
  and backend: never more than 0.01 below the better of its own halves (vector-only,
  keyword-only), and at or above the set's floor;
- leave-one-set-out cross-validation of the fusion weights: for each set, the weights
  are chosen on the other five sets only and scored on the held-out one, which must keep
  the same bound. The shipped weights are the ones most folds choose.

Runs with the real default embedder (MiniLM int8).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from typing import Any

import pytest

from sutram_core.memory import FusionWeights, MemoryStore
from sutram_core.memory.ranking import QueryTerms, shares, weigh
from tests.memory_eval import SET_NAMES, _time, fill, load_set, mrr, store_search
from tests.memory_support import MEMORY_BACKENDS, memory_url, open_memory

# The floor of the default search on each set. Two sets are bound by what the embedder
# understands, not by fusion: on "paraphrase" and "people" the keywords carry almost
# nothing (keyword-only MRR 0.13 and 0.40) and vector-only MRR is 0.81 and 0.84, so the
# default search can at best keep the vector order there (README, "Memory search quality").
FLOORS = {"paraphrase": 0.80, "identifiers": 0.95, "names": 0.90, "temporal": 0.90, "conversations": 0.90,
          "people": 0.83}
GRID = [FusionWeights(identifier=1.0, name=n, words=w, words_power=p)
        for n, w, p in itertools.product((0.1, 0.2, 0.3, 0.5, 0.7, 1.0), (0.0, 0.05, 0.1, 0.2, 0.3), (1.0, 2.0, 3.0))]


@pytest.fixture(scope="module", params=MEMORY_BACKENDS)
def filled(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Every set loaded into its own tenant of one store on the backend."""
    backend = request.param
    urls = memory_url(backend, tmp_path_factory.mktemp("quality"))
    with open_memory(backend, next(urls), embedder=None) as store:
        sets = {}
        for name in SET_NAMES:
            data = load_set(name)
            tenant = f"quality-{name}"
            fill(_Bound(store, tenant), data)
            sets[name] = (data, tenant)
        yield {"backend": backend, "store": store, "sets": sets}
    urls.close()


class _Bound:
    """``store`` with every call made for ``tenant`` (the sets stay apart)."""

    def __init__(self, store: MemoryStore, tenant: str) -> None:
        self.store, self.tenant = store, tenant

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.store, name)
        if name in ("put_many", "supersede", "search"):
            return lambda *a, **k: attr(*a, tenant=self.tenant, **k)
        return attr


def _scores(filled: dict[str, Any], name: str) -> dict[str, float]:
    cache = filled.setdefault("scores", {})
    if name in cache:
        return cache[name]  # type: ignore[no-any-return]
    data, tenant = filled["sets"][name]
    bound = _Bound(filled["store"], tenant)
    cache[name] = {mode: mrr(store_search(bound, mode), data["questions"])  # type: ignore[arg-type]
                   for mode in ("vector", "keyword", "hybrid")}
    return cache[name]  # type: ignore[no-any-return]


@pytest.mark.parametrize("name", SET_NAMES)
def test_the_default_search_is_never_worse_than_its_better_half(filled: dict[str, Any], name: str) -> None:
    s = _scores(filled, name)
    print(f"{filled['backend']} {name}: vector {s['vector']:.3f} keyword {s['keyword']:.3f} "
          f"default {s['hybrid']:.3f}")
    assert s["hybrid"] >= max(s["vector"], s["keyword"]) - 0.01
    assert s["hybrid"] >= FLOORS[name]


def _candidates(filled: dict[str, Any], name: str) -> list[dict[str, Any]]:
    """Each question's candidates as the backend finds them: 40 by vector, 40 by keyword."""
    data, tenant = filled["sets"][name]
    store = filled["store"]
    out = []
    for q in data["questions"]:
        kwargs = dict(limit=40, as_of=_time(q.get("as_of")), tenant=tenant)
        vec = store.search(q["question"], mode="vector", **kwargs)
        kw = store.search(q["question"], mode="keyword", **kwargs)
        texts = {h.record.key: h.record.text for h in vec + kw}
        cosine = {h.record.key: h.score for h in vec}
        floor = min(cosine.values(), default=0.0)
        # the cosine and the three keyword shares of each candidate: a weighting is then arithmetic
        parts = shares(QueryTerms.parse(q["question"]), texts) if kw else {}
        out.append({"answer": q["answer"], "cands": [(k, cosine.get(k, floor), parts.get(k)) for k in texts]})
    return out


def _mrr_with(cands: list[dict[str, Any]], weights: FusionWeights) -> float:
    total = 0.0
    for c in cands:
        scored = sorted(((-(cos + (weigh(p, weights) if p else 0.0)), k) for k, cos, p in c["cands"]))
        keys = [k for _, k in scored[:10]]
        total += 1.0 / (keys.index(c["answer"]) + 1) if c["answer"] in keys else 0.0
    return total / len(cands)


# the fusion is one function of the candidates on every backend, and the default search
# scores the same on each (the test above); cross-validating it again on the others would
# repeat the same arithmetic for a minute of the suite's time
@pytest.mark.parametrize("filled", ["sqlite"], indirect=True)
def test_fusion_weights_chosen_without_a_set_hold_on_it(filled: dict[str, Any]) -> None:
    cands = {name: _candidates(filled, name) for name in SET_NAMES}
    halves = {name: max(_scores(filled, name)[m] for m in ("vector", "keyword")) for name in SET_NAMES}
    table = {(w, name): _mrr_with(c, w) for w in GRID for name, c in cands.items()}

    def loss(w: FusionWeights, held: str) -> float:
        # a shortfall below the better half counts three times: the bound matters more than the mean
        gaps = [table[w, n] - halves[n] for n in SET_NAMES if n != held]
        return sum(3 * min(g, 0.0) + g for g in gaps) / len(gaps)

    chosen = {}
    for held in SET_NAMES:
        best = max(GRID, key=lambda w: loss(w, held))
        chosen[held] = best
        print(f"{filled['backend']} held out {held}: weights name={best.name} words={best.words} "
              f"power={best.words_power} -> MRR {table[best, held]:.3f} (better half {halves[held]:.3f})")
        assert table[best, held] >= halves[held] - 0.01, held
    # the shipped weights are among the folds' choices
    shipped = FusionWeights()
    assert any((w.name, w.words, w.words_power) == (shipped.name, shipped.words, shipped.words_power)
               for w in chosen.values())


def test_every_set_is_labelled_with_near_misses_in_varied_wording() -> None:
    for name in SET_NAMES:
        data = load_set(name)
        keys = {m["key"] for m in data["memories"]}
        assert len(data["questions"]) >= 40 and all(q["answer"] in keys for q in data["questions"]), name
        # more memories than answers: every answer has company that is not an answer
        assert len(keys) >= len({q["answer"] for q in data["questions"]}) + 15, name
        if name == "people":
            continue  # the older set (memory_qa.json): two question templates per topic
        # not one template: many different openings among the questions
        openings = {" ".join(q["question"].split()[:2]).lower() for q in data["questions"]}
        assert len(openings) >= 15, (name, len(openings))
    ident = load_set("identifiers")
    text = {m["key"]: m["text"] for m in ident["memories"]}
    for q in ident["questions"]:
        twin = text[q["answer"].replace("id-", "twin-")]
        tokens = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]*[A-Za-z0-9]")
        asked = max((t for t in tokens.findall(q["question"]) if any(c.isdigit() for c in t)), key=len)
        twins = [t for t in tokens.findall(twin) if sorted(t) == sorted(asked) and t != asked]
        assert asked in text[q["answer"]] and asked not in twin and twins, q  # the same digits, two swapped


def test_a_superseded_fact_never_wins_unless_asked_as_of_its_time(filled: dict[str, Any]) -> None:
    data, tenant = filled["sets"]["temporal"]
    store = filled["store"]
    for q in data["questions"]:
        hits = store.search(q["question"], limit=10, as_of=_time(q.get("as_of")), tenant=tenant)
        keys = [h.record.key for h in hits]
        if q.get("as_of") is None:
            assert not any(k.endswith("-old") for k in keys), q
        else:
            assert not any(k.endswith("-new") for k in keys), q
