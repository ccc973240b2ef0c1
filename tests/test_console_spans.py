"""The span detail panel over HTTP: a run page with ``?span=ID`` shows what the span saw and
said (chat messages, completion, tool arguments and result, attributes, tokens and cost, the
error with its stack) for a LangGraph and a LlamaIndex run; every value is escaped; long
values are folded, not cut. One seeded SQLite database for the module (the rendering is
the same over any store)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from sutram_adapters.console import create_app
from sutram_core.traces import StoredSpan, open_trace_store
from sutram_core.traces.messages import genai_json, input_messages, output_messages
from tests.console_agents import HOSTILE, Agents, seed_agents


@pytest.fixture(scope="module")
def agents(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Agents]:
    url = f"sqlite:///{tmp_path_factory.mktemp('spans') / 'spans.db'}"
    return url, seed_agents(url)


@pytest.fixture(scope="module")
def client(agents: tuple[str, Agents]) -> Iterator[TestClient]:
    with TestClient(create_app(agents[0]), base_url="http://127.0.0.1:8787") as c:
        yield c


def spans_of(url: str, name: str) -> tuple[str, list[StoredSpan]]:
    with open_trace_store(url) as store:
        (run,) = [r for r in store.runs("acme") if r.name == name]
        return run.run_id, store.run_spans("acme", run.run_id)


def panel(client: TestClient, run_id: str, span: StoredSpan) -> str:
    page = client.get(f"/runs/{run_id}", params={"tenant": "acme", "span": span.span_id})
    assert page.status_code == 200
    return page.text.split('<aside class="span-detail"', 1)[1].split("</aside>", 1)[0]


def test_every_span_in_the_tree_links_to_its_panel(client: TestClient, agents: tuple[str, Agents]) -> None:
    run_id, spans = spans_of(agents[0], "support")
    page = client.get(f"/runs/{run_id}", params={"tenant": "acme"}).text
    assert page.count('class="span-link"') == len(spans)
    assert 'id="span-detail"' not in page  # no panel until a span is chosen


def test_a_chat_span_shows_its_messages_tool_calls_usage_and_cost(client: TestClient,
                                                                  agents: tuple[str, Agents]) -> None:
    run_id, spans = spans_of(agents[0], "support")
    first, second = [s for s in spans if s.kind == "llm"]
    html = panel(client, run_id, first)
    assert "role-system" in html and "You are the order desk" in html
    assert "role-user" in html and "where are orders A-1042 and B-9?" in html
    assert html.count('class="tool-call"') == 2 and "lookup_order" in html and "&#34;order_id&#34;: &#34;B-9&#34;" in html
    assert "tokens 25 in / 9 out" in html and "gpt-4o-mini-2024-07-18" in html
    html = panel(client, run_id, second)
    assert html.count('class="tool-response"') == 2 and "packed, leaves Tuesday" in html
    assert 'id="span-output"' in html and "B-9 could not be found" in html.split('id="span-output"')[1]


def test_a_hostile_prompt_is_shown_as_text(client: TestClient, agents: tuple[str, Agents]) -> None:
    run_id, spans = spans_of(agents[0], "support")
    for span in (spans[0], next(s for s in spans if s.kind == "llm")):
        html = panel(client, run_id, span)
        assert "<script>window.pwned" not in html
        assert "&lt;script&gt;window.pwned=1&lt;/script&gt;" in html


def test_a_tool_span_shows_its_arguments_and_result(client: TestClient, agents: tuple[str, Agents]) -> None:
    run_id, spans = spans_of(agents[0], "support")
    ok = next(s for s in spans if s.kind == "tool" and s.status == "ok")
    html = panel(client, run_id, ok)
    arguments = html.split('id="span-arguments"')[1].split("</section>")[0]
    result = html.split('id="span-result"')[1].split("</section>")[0]
    assert "A-1042" in arguments and result.count("order A-1042: packed, leaves Tuesday") == 1
    assert "gen_ai.tool.call.id" in html and "call-a1042" in html


def test_an_error_span_shows_type_message_and_stack(client: TestClient, agents: tuple[str, Agents]) -> None:
    run_id, spans = spans_of(agents[0], "support")
    failed = next(s for s in spans if s.status == "error")
    html = panel(client, run_id, failed)
    error = html.split('id="span-error"')[1].split("</section>")[0]
    assert "LookupError" in error and "order B-9 is not in the warehouse system" in error
    assert "Traceback (most recent call last)" in error and "console_agents.py" in error and "in lookup_order" in error


def test_a_llama_index_run_shows_its_chat_and_tool(client: TestClient, agents: tuple[str, Agents]) -> None:
    run_id, spans = spans_of(agents[0], "orders")
    first, second = [s for s in spans if s.kind == "llm"]
    html = panel(client, run_id, first)
    assert "You track parcels." in html and "where is parcel P-77?" in html
    assert "track_parcel" in html.split('id="span-output"')[1]  # the completion is a tool call
    html = panel(client, run_id, second)
    assert "out for delivery" in html and "Tool calls complete." in html.split('id="span-output"')[1]
    assert 'class="tool-call"' in html  # the assistant's earlier call, kept from its blocks
    tool = next(s for s in spans if s.kind == "tool")
    html = panel(client, run_id, tool)
    assert "P-77" in html.split('id="span-arguments"')[1] and "parcel P-77: out for delivery" in html


def test_long_values_are_folded_not_cut(tmp_path: Path) -> None:
    from langchain_core.messages import HumanMessage

    from sutram_adapters.langchain import SutramCallbackHandler
    from sutram_core.traces import Tracer
    from tests.fake_models import EchoChatModel

    url = f"sqlite:///{tmp_path / 'long.db'}"
    text = "\n".join(f"line {i} of a long prompt" for i in range(400)) + "\nTHE END"
    with Tracer.from_url(url, max_chars=4096) as tracer:
        EchoChatModel().invoke([HumanMessage(text)], {"callbacks": [SutramCallbackHandler(tracer=tracer)]})
        EchoChatModel().invoke([HumanMessage(text[:2000] + "\nSHORT END")],
                               {"callbacks": [SutramCallbackHandler(tracer=tracer)]})
    with open_trace_store(url) as store:
        whole, cut = (store.run_spans("default", r.run_id)[0] for r in store.runs("default"))  # newest first
    with TestClient(create_app(url), base_url="http://127.0.0.1:8787") as c:
        html = c.get(f"/runs/{whole.run_id}", params={"span": whole.span_id}).text
        assert '<details class="fold">' in html and "SHORT END" in html  # folded, whole
        html = c.get(f"/runs/{cut.run_id}", params={"span": cut.span_id}).text
        assert "more characters were not recorded" in html  # the tracer's cut, said aloud


def test_an_unknown_span_is_a_clear_400(client: TestClient, agents: tuple[str, Agents]) -> None:
    run_id, _ = spans_of(agents[0], "support")
    page = client.get(f"/runs/{run_id}", params={"tenant": "acme", "span": "nope"})
    assert page.status_code == 400 and "has no span" in page.text


def test_messages_read_both_frameworks_into_genai_form() -> None:
    lc = '[[{"type":"ai","content":"","tool_calls":[{"name":"f","args":{"x":1},"id":"c1"}]}]]'
    assert genai_json(output_messages(lc), output=True) == (
        '[{"role":"assistant","parts":[{"type":"tool_call","id":"c1","name":"f","arguments":{"x":1}}],'
        '"finish_reason":"tool_call"}]')
    llama = '{"messages":[{"type":"user","content":"hi"},{"type":"tool","content":"42","tool_call_id":"c1"}]}'
    assert genai_json(input_messages(llama)) == (
        '[{"role":"user","parts":[{"type":"text","content":"hi"}]},'
        '{"role":"tool","parts":[{"type":"tool_call_response","id":"c1","response":"42"}]}]')
    assert input_messages('{"truncated":"[[{","omitted_chars":9}') is None
    assert HOSTILE  # the seeded prompt the escaping test looks for


def test_the_stack_is_content_and_goes_with_it(tmp_path: Path) -> None:
    from sutram_adapters.langchain import SutramCallbackHandler
    from sutram_core.traces import Tracer
    from tests.fake_models import EchoChatModel

    for content in (True, False):
        url = f"sqlite:///{tmp_path / f'{content}.db'}"
        with Tracer.from_url(url, content=content) as tracer:
            with pytest.raises(ConnectionError):
                EchoChatModel(fail_times=1).invoke("hi", {"callbacks": [SutramCallbackHandler(tracer=tracer)]})
        with open_trace_store(url) as store:
            (run,) = store.runs("default")
            (span,) = store.run_spans("default", run.run_id)
        assert span.error_type == "ConnectionError"
        assert ("exception.stacktrace" in span.attributes) is content


def test_a_thread_s_conversation_shows_each_turn_with_the_messages_it_added(db_url: str) -> None:
    from langchain_core.messages import HumanMessage
    from starlette.testclient import TestClient

    from sutram_adapters.console import create_app
    from sutram_adapters.langgraph.durable import durable
    from tests.console_agents import build_support

    with durable(build_support(), url=db_url, tenant="desk", remember_runs=False) as runner:
        runner.invoke({"messages": [HumanMessage("where is A-1042?")]}, thread_id="chat", run_id="turn-1")
        runner.invoke({"messages": [HumanMessage("and <b>B-9</b>?")]}, thread_id="chat", run_id="turn-2")
    with TestClient(create_app(db_url), base_url="http://127.0.0.1") as client:
        page = client.get("/threads/chat?tenant=desk")
    assert page.status_code == 200, page.text
    section = page.text.split('id="conversation"')[1].split("</section>")[0]
    turns = section.split('<li class="turn">')[1:]
    assert len(turns) == 2  # one per run, oldest first, each linked to its trace
    roles = [[t.count(f'class="message role-{r}"') for r in ("user", "assistant", "tool")] for t in turns]
    assert roles == [[1, 2, 2], [1, 1, 0]]  # the second answer needs no new tool call
    assert all("/runs/" in t for t in turns)
    assert "where is A-1042?" in turns[0] and "where is A-1042?" not in turns[1]
    assert "and &lt;b&gt;B-9&lt;/b&gt;?" in turns[1]  # escaped
