"""Splitting what a person said into sentences, and telling statements from questions.

A message such as "I take my coffee with oat milk. Where is order A-1042?" holds a fact
and a question; memory keeps the first and not the second. Sentence ends are ``.``, ``!``,
``?`` (or a run of them) followed by white space and the start of a new sentence, and line
breaks. Not ends: abbreviations ("e.g.", "Dr.", "approx."), single initials ("J. Smith"),
decimals and identifiers ("3.5", "v2.1", "A-1042", "ORD-19.494"), and URLs ("?" and "."
inside one are followed by no space).

>>> split_sentences("I take my coffee with oat milk. Where is order A-1042?")
['I take my coffee with oat milk.', 'Where is order A-1042?']
>>> split_sentences("Dr. Okafor moved me to plan 3.5, e.g. the cheaper one. See https://x.io/a?b=1. Thanks!")
['Dr. Okafor moved me to plan 3.5, e.g. the cheaper one.', 'See https://x.io/a?b=1.', 'Thanks!']
>>> statements("I take my coffee with oat milk. Where is order A-1042?")
['I take my coffee with oat milk.']
>>> statements("can you check my order")   # no mark, but it asks
[]
"""

from __future__ import annotations

import re

__all__ = ["is_question", "split_sentences", "statements"]

# Words after which a period does not end a sentence (lower case, without the period).
_ABBREVIATIONS = frozenset("""
    mr mrs ms dr prof sr jr st mt vs etc approx appt apt dept est fig inc ltd co corp no nos vol
    jan feb mar apr jun jul aug sep sept oct nov dec mon tue tues wed thu thur thurs fri sat sun
    e.g i.e a.m p.m u.s u.k a.k.a ca cf al min max tel ext
""".split())

# A candidate end: terminal marks (and closing quotes or brackets) followed by white space.
_END = re.compile(r"""[.!?]+['")\]]*(?=\s)""")

# Words that open a question when a sentence carries no question mark ("where is my order").
_QUESTION_OPENERS = ("what", "who", "whom", "whose", "where", "when", "why", "how", "which", "do", "does",
                     "did", "is", "are", "was", "were", "can", "could", "should", "would", "will", "shall",
                     "may", "might", "am", "have", "has")

# Words said in passing, never facts worth keeping ("Thanks!", "ok").
_PLEASANTRIES = frozenset({"hi", "hello", "hey", "thanks", "thank you", "thanks a lot", "ok", "okay", "yes", "no",
                           "sure", "great", "cool", "bye", "goodbye", "good morning", "good evening", "cheers",
                           "yep", "nope", "fine", "got it", "perfect", "nice"})


# The first character after white space; the last word before a position (looked for in a
# short window: abbreviations are short, and a long line of "a. a. a." stays linear).
_NEXT = re.compile(r"\s*(\S?)")
_LAST_WORD = re.compile(r"(\S*)$")
_WINDOW = 24


def _ends_here(text: str, end: int, mark: str) -> bool:
    """Whether the marks ending at ``end`` close a sentence (not an abbreviation or initial)."""
    bare = mark.rstrip("'\")]")
    if set(bare) != {"."}:  # "!", "?", "?!" always end one
        return True
    following = _NEXT.match(text, end).group(1)  # type: ignore[union-attr]  # always matches
    if bare != ".":  # an ellipsis ends a sentence unless the sentence goes on in lower case
        return not following.islower()
    start = end - len(mark)
    word = _LAST_WORD.search(text[max(0, start - _WINDOW):start]).group(1)  # type: ignore[union-attr]
    word = word.lstrip("(\"'[").lower()
    if word in _ABBREVIATIONS or word.rstrip(".") in _ABBREVIATIONS:
        return False
    if len(word) == 1 and word.isalpha():  # an initial: "J. Smith"
        return False
    # "it costs approx. 3 dollars" is caught above; a lower-case word after a period is
    # more often an unlisted abbreviation than a new sentence
    return not following.islower()


def split_sentences(text: str) -> list[str]:
    """The sentences of ``text``, in order, stripped, none empty (see the module docstring)."""
    if not isinstance(text, str):
        return []
    out: list[str] = []
    for line in text.splitlines():
        begin = 0
        for match in _END.finditer(line):
            if _ends_here(line, match.end(), match.group()):
                sentence = line[begin:match.end()].strip()
                if sentence:
                    out.append(sentence)
                begin = match.end()
        rest = line[begin:].strip()
        if rest:
            out.append(rest)
    return out


def is_question(sentence: str) -> bool:
    """Whether one sentence asks rather than states: it ends with "?", or it carries no
    final mark and opens as a question does ("where is my order")."""
    stripped = sentence.strip().rstrip("'\")]").rstrip()
    if stripped.endswith("?"):
        return True
    if stripped.endswith((".", "!")):
        return False
    first = re.split(r"[\s,]+", stripped.lower(), maxsplit=1)[0]
    return first in _QUESTION_OPENERS


def statements(text: str) -> list[str]:
    """The sentences of ``text`` that state something: not questions, not pleasantries."""
    kept = []
    for sentence in split_sentences(text):
        bare = re.sub(r"[^\w\s]", "", sentence).strip().lower()
        if not bare or bare in _PLEASANTRIES or is_question(sentence):
            continue
        kept.append(sentence)
    return kept
