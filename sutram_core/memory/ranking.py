"""Fusing vector and keyword evidence into one score per memory, and weighting by recency.

Hybrid search finds candidates two ways (the nearest vectors, the best keyword matches)
and scores every candidate the same way, on every backend::

    score = cosine + identifier * I + name * N + words * W ** words_power

``cosine`` is the similarity of the query and the memory (a keyword-only candidate gets
the lowest cosine among the vector candidates: it was not near enough to be one of them).
``I``, ``N`` and ``W`` are the shares of the query's identifiers, names and other words
that the memory contains, each word weighted by how rare it is among the candidates
(IDF over the candidate pool; a word the query has and no candidate has still counts in
the total, so a memory that shares one word of a long question gets little). What the
query holds decides how much the keywords count:

- an identifier (a word with a digit: ``ORD-19494``, ``E4927``, ``v2.3.1``, ``db-61``) is
  strong evidence: a memory holding it outranks near twins that differ by a digit or two,
  which embeddings cannot tell apart;
- a name (a capitalised word, the first one only when it is not a usual opener such as
  "Please" or "Does", and none when the query is in title case) picks
  the memories about that person or thing, and the vector decides among them;
- other words count little and only when a memory shares most of them (the square), so a
  paraphrase keeps its vector order and a coincidental shared word does not reorder it.

The score is comparable across queries and monotone with the returned order; in
``mode="vector"`` it is exactly the cosine similarity (as LangGraph's stores report), in
``mode="keyword"`` the keyword evidence alone. The weights were chosen by leave-one-set-out
cross-validation on the labelled sets under ``tests/data/`` (see
``tests/test_memory_quality.py``): ``identifier`` is fixed at 1.0 by design (an exact
identifier match decides); for each set the other three were picked on the remaining
sets, and the values shipped here are the ones most of those folds chose.
"""

from __future__ import annotations

import functools
import heapq
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = [
    "MAX_KEYWORD_CHARS", "MAX_KEYWORD_TERMS", "FusionWeights", "QueryTerms", "evidence", "fuse", "keyword_terms",
    "recency_factor", "shares", "stem", "weigh",
]

MAX_KEYWORD_TERMS = 64  # distinct words a keyword search uses (see keyword_terms)
MAX_KEYWORD_CHARS = 1 << 20  # characters of a query read for its words
_WORD_RE = re.compile(r"[^\W_]+", re.UNICODE)
# Words that carry no topic: dropped from keyword queries (they match everything and drown BM25).
_STOPWORDS = frozenset(
    "a an and are as at be by can could did do does for from had has have how i in is it its me my "
    "of on or our she he should so that the their them they this to was we were what when where "
    "which who whom why will with would you your".split()
)
# Words that open a question or a request with a capital letter and name nothing.
_OPENERS = frozenset(
    "please tell show list find give remind get let lets can could would should will shall may might must "
    "is are was were am be been has have had do does did any some all every no not yes hi hello hey thanks "
    "thank ok okay so but if then also now just whose there here these those his her we you he she they "
    "summary summarize search look check recall remember describe explain".split()
)
_SUFFIXES = (("ies", "y"), ("sses", "ss"), ("ing", ""), ("ed", ""), ("es", ""), ("s", ""))


@dataclass(frozen=True)
class FusionWeights:
    """How much each kind of keyword evidence adds to the cosine (see the module docstring)."""

    identifier: float = 1.0
    name: float = 0.5
    words: float = 0.3
    words_power: float = 2.0


def keyword_terms(query: str) -> list[str]:
    """The content words of a query, lower-cased, stop words removed, in order, unique;
    bounded so that no query can stall the store.

    Only the first :data:`MAX_KEYWORD_CHARS` characters (1 MiB, about 0.1 s to read) are
    read, and at most :data:`MAX_KEYWORD_TERMS` (64) distinct words are searched. A longer
    query keeps its longest words (a long word is usually a rare one, so the most selective;
    ties go to the earlier word), in their order in the query. The cost of a keyword search
    grows with its terms: on 3,000 memories of 20 words (this project's 2-core test
    machine), 64 terms take 7 ms on SQLite and 26 ms on PostgreSQL, 1,024 terms 0.18 s and
    0.8 s, and 150,000 terms (a 1 MB query) took 8 s on SQLite before this bound.

    >>> keyword_terms("What does the user drink? The user drinks tea")
    ['user', 'drink', 'drinks', 'tea']
    >>> len(keyword_terms(" ".join(f"w{i}" for i in range(1000)) + " photosynthesis"))
    64
    >>> "photosynthesis" in keyword_terms(" ".join(f"w{i}" for i in range(1000)) + " photosynthesis")
    True
    """
    seen: dict[str, None] = {}
    for word in _WORD_RE.findall(query[:MAX_KEYWORD_CHARS].lower()):
        if word not in _STOPWORDS and len(word) > 1:
            seen.setdefault(word, None)
    terms = list(seen)
    if len(terms) <= MAX_KEYWORD_TERMS:
        return terms
    kept = set(heapq.nsmallest(MAX_KEYWORD_TERMS, range(len(terms)), key=lambda i: (-len(terms[i]), i)))
    return [t for i, t in enumerate(terms) if i in kept]


@functools.lru_cache(maxsize=1 << 16)
def stem(word: str) -> str:
    """A light, deterministic suffix stripper (plurals, -ing, -ed), so "drinks" meets "drink".

    >>> [stem(w) for w in ("drinks", "parties", "ordered", "running", "gas", "4411")]
    ['drink', 'party', 'order', 'runn', 'gas', '4411']
    """
    if any(c.isdigit() for c in word):
        return word
    for suffix, replacement in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: len(word) - len(suffix)] + replacement
    return word


def _stems(text: str) -> frozenset[str]:
    # cached: the same memories come back as candidates query after query; long texts are
    # not kept (4,096 of them could hold gigabytes)
    return _stems_cached(text) if len(text) <= 4096 else _stem_all(text)


def _stem_all(text: str) -> frozenset[str]:
    return frozenset(stem(w) for w in _WORD_RE.findall(text.lower()))


_stems_cached = functools.lru_cache(maxsize=1 << 12)(_stem_all)


@dataclass(frozen=True)
class QueryTerms:
    """A query's keyword terms (stemmed), sorted into identifiers, names and other words."""

    identifiers: tuple[str, ...]
    names: tuple[str, ...]
    words: tuple[str, ...]

    @classmethod
    def parse(cls, query: str) -> QueryTerms:
        """Sort the words of ``query``.

        >>> QueryTerms.parse("Where is order ORD-19494 for Okafor going?")
        QueryTerms(identifiers=('19494',), names=('ord', 'okafor'), words=('order', 'going'))
        """
        terms = list(dict.fromkeys(stem(t) for t in keyword_terms(query)))
        originals = _WORD_RE.findall(query[:MAX_KEYWORD_CHARS])
        # the first word is capitalised anyway: a name only when it is not a usual opener
        first = originals[:1] if originals and originals[0].lower() not in _OPENERS else []
        capitalised = [w for w in first + originals[1:] if w[:1].isupper() and w.lower() not in _STOPWORDS]
        # a query in title case (or shouting) says nothing by its capitals
        named = set() if len(capitalised) > max(2, len(originals) // 2) else {stem(w.lower()) for w in capitalised}
        identifiers = tuple(t for t in terms if any(c.isdigit() for c in t))
        names = tuple(t for t in terms if t in named and t not in identifiers)
        words = tuple(t for t in terms if t not in identifiers and t not in names)
        return cls(identifiers, names, words)

    def __bool__(self) -> bool:
        return bool(self.identifiers or self.names or self.words)


def _idf(pool: int, df: int) -> float:
    return math.log(1.0 + (pool - df + 0.5) / (df + 0.5))


def shares(query: QueryTerms, texts: Mapping[str, str]) -> dict[str, tuple[float, float, float]]:
    """For each candidate ``id -> text``: the shares of the query's identifiers, names and
    other words it contains, each word weighted by its IDF among the candidates.

    >>> shares(QueryTerms.parse("was order 19494 shipped?"), {"a": "Order 19494 shipped", "b": "Order 19949 shipped"})
    {'a': (1.0, 0.0, 1.0), 'b': (0.0, 0.0, 1.0)}
    """
    stems = {ident: _stems(text) for ident, text in texts.items()}
    pool = len(stems)
    parts: list[dict[str, float]] = []
    for terms in (query.identifiers, query.names, query.words):
        idf = {t: _idf(pool, sum(1 for s in stems.values() if t in s)) for t in terms}
        total = sum(idf.values())
        parts.append({ident: sum(v for t, v in idf.items() if t in s) / total if total else 0.0
                      for ident, s in stems.items()})
    return {ident: (parts[0][ident], parts[1][ident], parts[2][ident]) for ident in stems}


def evidence(query: QueryTerms, texts: Mapping[str, str],
             weights: FusionWeights = FusionWeights()) -> dict[str, float]:
    """The keyword evidence of each candidate ``id -> text`` for ``query`` (0 when none).

    >>> ev = evidence(QueryTerms.parse("status of ORD-19494"),
    ...               {"a": "Order ORD-19494 shipped.", "b": "Order ORD-19949 shipped."})
    >>> ev["a"] > ev["b"]
    True
    """
    return {ident: weigh(share, weights) for ident, share in shares(query, texts).items()}


def weigh(share: tuple[float, float, float], weights: FusionWeights) -> float:
    """Keyword evidence from the three shares :func:`shares` gives."""
    ids, names, words = share
    return float(weights.identifier * ids + weights.name * names + weights.words * math.pow(words, weights.words_power))


def fuse(
    query: str, vector: Sequence[tuple[str, float]], keyword: Sequence[tuple[str, float]],
    texts: Mapping[str, str], weights: FusionWeights = FusionWeights(), mode: str = "hybrid",
) -> list[tuple[str, float]]:
    """Score the candidates of one search; ``(id, score)``, best first (ties by id).

    ``vector`` holds ``(id, cosine)``, ``keyword`` the backend's keyword matches (their
    order breaks ties in ``mode="keyword"``), ``texts`` the text of every candidate.

    >>> texts = {"a": "Invoice INV-20394 was paid.", "b": "Invoice INV-20349 was paid."}
    >>> [i for i, _ in fuse("was INV-20394 paid?", [("b", 0.91), ("a", 0.90)], [("a", 9.0), ("b", 7.0)], texts)]
    ['a', 'b']
    """
    if mode == "vector":
        return sorted(vector, key=lambda pair: (-pair[1], pair[0]))
    terms = QueryTerms.parse(query)
    cosine = dict(vector)
    if mode == "keyword":
        # equal evidence: the shorter memory is the more focused match (as BM25's length
        # part says), then the text itself, so that every backend breaks ties alike and
        # never by the order rows happened to be written in
        order = {ident: i for i, (ident, _) in enumerate(keyword)}
        ev = evidence(terms, {i: texts.get(i, "") for i in order}, weights)
        size = {i: len(_stems(texts.get(i, ""))) for i in order}
        return sorted(ev.items(), key=lambda pair: (-pair[1], size[pair[0]], texts.get(pair[0], ""), order[pair[0]]))
    pool = list(dict.fromkeys([i for i, _ in vector] + [i for i, _ in keyword]))
    ev = evidence(terms, {i: texts.get(i, "") for i in pool}, weights) if terms else {}
    floor = min(cosine.values()) if cosine else 0.0
    scored = [(i, cosine.get(i, floor) + ev.get(i, 0.0)) for i in pool]
    return sorted(scored, key=lambda pair: (-pair[1], pair[0]))


def recency_factor(age_seconds: float, half_life_seconds: float | None) -> float:
    """A multiplier in (0, 1] that halves every ``half_life_seconds`` of age (1 when off)."""
    if not half_life_seconds or half_life_seconds <= 0:
        return 1.0
    return math.pow(0.5, max(age_seconds, 0.0) / half_life_seconds)
