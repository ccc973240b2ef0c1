"""What changed between two states: messages compared as messages, dicts key by key."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sutram_adapters.langgraph.state_diff import diff_states


def _msg(kind: str, text: str) -> dict[str, str]:
    return {"type": kind, "content": text}


def test_a_message_added_in_the_middle_is_one_added_row_and_the_rest_same() -> None:
    a = {"messages": [_msg("human", "hi"), _msg("ai", "hello")]}
    b = {"messages": [_msg("human", "hi"), _msg("human", "also this"), _msg("ai", "hello")]}
    (change,) = diff_states(a, b)
    assert [(r.op, r.message.role) for r in change.messages or []] == [
        ("same", "user"), ("added", "user"), ("same", "assistant")]
    assert change.counts == {"added": 1}


def test_a_replaced_message_is_changed_with_its_before_and_a_removed_one_is_removed() -> None:
    a = {"messages": [_msg("human", "hi"), _msg("ai", "draft"), _msg("ai", "extra")]}
    b = {"messages": [_msg("human", "hi"), _msg("ai", "final")]}
    (change,) = diff_states(a, b)
    rows = change.messages or []
    assert [r.op for r in rows] == ["same", "changed", "removed"]
    assert rows[1].before is not None and rows[1].before.parts[0].content == "draft"
    assert rows[1].message.parts[0].content == "final"


def test_tool_calls_are_part_of_a_message_s_identity() -> None:
    call = {"type": "ai", "content": "", "tool_calls": [{"name": "lookup", "args": {"id": 1}, "id": "c1"}]}
    other = {**call, "tool_calls": [{"name": "lookup", "args": {"id": 2}, "id": "c1"}]}
    (change,) = diff_states({"messages": [call]}, {"messages": [other]})
    assert [r.op for r in change.messages or []] == ["changed"]


def test_dicts_compare_key_by_key_and_other_values_as_before_and_after() -> None:
    changes = diff_states({"prefs": {"tea": "green", "milk": "oat"}, "n": 1, "gone": 0},
                          {"prefs": {"tea": "black", "sugar": 0}, "n": 2, "new": [1]})
    by = {c.channel: c for c in changes}
    assert [(k.key, k.op) for k in by["prefs"].keys] == [("milk", "removed"), ("sugar", "added"), ("tea", "changed")]
    assert (by["n"].op, by["n"].a, by["n"].b, by["n"].messages) == ("changed", 1, 2, None)
    assert (by["gone"].op, by["new"].op) == ("removed", "added")


def test_a_list_that_is_not_all_messages_is_compared_as_a_value() -> None:
    (change,) = diff_states({"answers": ["a"]}, {"answers": ["a", "b"]})
    assert change.messages is None and change.b == ["a", "b"]


@given(st.lists(st.sampled_from(["hi", "yes", "no", "ok"]), max_size=8),
       st.lists(st.sampled_from(["hi", "yes", "no", "ok"]), max_size=8))
def test_the_rows_rebuild_both_conversations(a: list[str], b: list[str]) -> None:
    ma, mb = [_msg("human", t) for t in a], [_msg("human", t) for t in b]
    changes = diff_states({"messages": ma}, {"messages": mb})
    if a == b:
        assert changes == []
        return
    if not b:  # a conversation emptied: no messages to compare against, a plain change
        assert changes[0].messages is None
        return
    rows = changes[0].messages or []
    after = [r.message.parts[0].content for r in rows if r.op != "removed"]
    before = [(r.before or r.message).parts[0].content for r in rows if r.op != "added"]
    assert after == b and before == a
