"""Build ``memory_qa.json``: the labelled set of the retrieval-quality test.

40 people with 5 facts each (200 memories) and 60 questions that paraphrase one fact
each, without reusing the fact's content words. Every question has near-miss
distractors: the same person's four other facts (which share the name, the only keyword
overlap) and the same kind of fact about 39 other people. Run it again to rebuild the
file; it is deterministic.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

NAMES = [
    "Alice", "Bruno", "Chiara", "Dmitri", "Elena", "Farid", "Greta", "Hiro", "Ines", "Jonas",
    "Kofi", "Lena", "Marco", "Nadia", "Oscar", "Priya", "Quentin", "Rosa", "Sven", "Tariq",
    "Uma", "Viktor", "Wen", "Ximena", "Yusuf", "Zofia", "Anika", "Boris", "Carmen", "Diego",
    "Emeka", "Freya", "Gustavo", "Hana", "Ivan", "Julia", "Kenji", "Lucia", "Mateo", "Noor",
]

FACTS = {
    "drink": (
        ["{n} drinks {v} every morning.", "Each morning {n} has a cup of {v}."],
        ["green tea", "black coffee", "an oat milk latte", "hot chocolate", "chai", "espresso", "mint tea", "matcha"],
        ["What beverage does {n} start the day with?", "Which hot drink does {n} reach for after waking up?"],
    ),
    "city": (
        ["{n} moved to {v} last spring.", "{n} relocated to {v} for a new start."],
        ["Lisbon", "Osaka", "Montreal", "Nairobi", "Copenhagen", "Buenos Aires", "Vienna", "Seoul"],
        ["Where does {n} live these days?", "In which town is {n} based now?"],
    ),
    "job": (
        ["{n} works as a {v}.", "{n} earns a living as a {v}."],
        ["nurse", "civil engineer", "pastry chef", "airline pilot", "high school teacher", "tax accountant",
         "veterinarian", "software developer"],
        ["What is {n}'s profession?", "What does {n} do for a job?"],
    ),
    "pet": (
        ["{n} has a {v} called Pepper.", "{n} adopted a {v} from the shelter."],
        ["parrot", "golden retriever", "tabby cat", "rabbit", "tortoise", "hamster", "border collie", "goldfish"],
        ["Which animal lives with {n}?", "What kind of companion animal does {n} look after?"],
    ),
    "allergy": (
        ["{n} is allergic to {v}.", "{n} gets a bad reaction from {v}."],
        ["peanuts", "shellfish", "strawberries", "gluten", "dairy", "sesame", "eggs", "kiwi"],
        ["Which food must {n} stay away from?", "What should the kitchen never serve {n}?"],
    ),
}


def build(seed: int = 7) -> dict[str, object]:
    rng = random.Random(seed)
    memories = []
    facts_of: dict[tuple[str, str], str] = {}
    for name in NAMES:
        for topic, (templates, values, _) in FACTS.items():
            key = f"{name.lower()}-{topic}"
            text = rng.choice(templates).format(n=name, v=rng.choice(values))
            memories.append({"key": key, "text": text, "person": name, "topic": topic})
            facts_of[(name, topic)] = key
    questions = []
    pairs = rng.sample(sorted(facts_of), 60)
    for name, topic in pairs:
        question = rng.choice(FACTS[topic][2]).format(n=name)
        questions.append({"question": question, "answer": facts_of[(name, topic)]})
    return {"memories": memories, "questions": questions}


if __name__ == "__main__":
    out = Path(__file__).with_name("memory_qa.json")
    out.write_text(json.dumps(build(), indent=1) + "\n")
    print(f"wrote {out}")
