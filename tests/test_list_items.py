"""Reusing the bytes of list items already checkpointed gives exactly the bytes that
LangGraph's serializer would produce, and never reuses an item that was replaced."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

from sutram_adapters.langgraph import SutramSaver
from sutram_adapters.langgraph._list_items import ListItemSerializer
from tests.helpers import config

items = st.one_of(
    st.text(max_size=8).map(lambda t: HumanMessage(content=t)),
    st.text(max_size=8).map(lambda t: AIMessage(content=t, tool_calls=[{"name": "f", "args": {"x": t}, "id": "c1"}])),
    st.text(max_size=8).map(lambda t: ToolMessage(content=t, tool_call_id="c1")),
    st.integers(-(2**63), 2**63 - 1),
    st.dictionaries(st.text(max_size=3), st.integers(-(2**63), 2**63 - 1), max_size=2),
)


@settings(max_examples=150, deadline=None)
@given(steps=st.lists(st.tuples(st.sampled_from(["append", "replace_one", "new_list"]),
                                st.lists(items, min_size=1, max_size=3)), min_size=1, max_size=12))
def test_bytes_equal_the_serializers_for_any_sequence(steps: list[tuple[str, list[Any]]]) -> None:
    serde = JsonPlusSerializer()
    reuse = ListItemSerializer(serde)
    value: list[Any] = []
    for op, new in steps:
        if op == "append":
            value = [*value, *new]
        elif op == "replace_one" and value:
            value = [new[0], *value[1:]]
        else:
            value = list(new)
        assert reuse.dumps(("t", "th", "", "messages"), value) == serde.dumps_typed(value)


def test_an_item_replaced_by_an_equal_looking_object_is_encoded_again() -> None:
    serde = JsonPlusSerializer()
    reuse = ListItemSerializer(serde)
    first = HumanMessage(content="hello", id="1")
    reuse.dumps(("t", "th", "", "m"), [first])
    edited = HumanMessage(content="hello, edited", id="1")
    assert reuse.dumps(("t", "th", "", "m"), [edited]) == serde.dumps_typed([edited])


def test_reuse_can_be_turned_off(tmp_path: object) -> None:
    with SutramSaver.from_url(f"sqlite:///{tmp_path}/r.db", reuse_list_items=False) as saver:
        msg = HumanMessage(content="a", id="1")
        cp = {"v": 4, "id": "1f000000-0000-6000-8000-000000000001", "ts": "", "channel_values": {"m": [msg]},
              "channel_versions": {"m": "1"}, "versions_seen": {}, "updated_channels": None}
        saver.put(config("t"), cp, {}, {"m": "1"})
        msg.content = "edited in place"  # only honoured because reuse is off
        cp2 = {**cp, "id": "1f000000-0000-6000-8000-000000000002", "channel_values": {"m": [msg]},
               "channel_versions": {"m": "2"}}
        saver.put(config("t", "", cp["id"]), cp2, {}, {"m": "2"})
        t = saver.get_tuple(config("t"))
        assert t is not None and t.checkpoint["channel_values"]["m"][0].content == "edited in place"
