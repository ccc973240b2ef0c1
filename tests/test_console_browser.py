"""The console in a real browser: headless Chromium (Debian's package) driven by Playwright.
Clicks from the runs list into a run and its timeline, compares two checkpoints, opens a
fork diff, searches memory, sees a page of another origin fail to resume a paused run, and
resumes it through the console; saves a screenshot of each page under test-output/console/
(or $SUTRAM_TEST_OUTPUT/console/)."""

from __future__ import annotations

import html
import http.server
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sutram_adapters.console import create_app
from sutram_adapters.langgraph.durable import durable
from tests.console_agents import seed_agents
from tests.console_seed import Seeded, seed
from tests.durable_graph import build

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
# as the machine's probe found: without these, Chromium reaches for Google's hosts at start
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists() or shutil.which("chromium") is None,
    reason="Debian's chromium is not installed (make test installs it with apt-get; it could not here)",
)


SERVED: dict[str, str] = {}  # the database URL the module's console serves


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Seeded]]:
    import uvicorn

    url = f"sqlite:///{tmp_path_factory.mktemp('console') / 'console.db'}"
    data = seed(url)
    seed_agents(url, tenant="desk")
    app = create_app(url, runner_factory=lambda tenant: durable(build(), url=url, tenant=tenant))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    SERVED["url"] = url
    yield f"http://127.0.0.1:{port}", data
    srv.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def shots() -> Path:
    folder = Path(os.environ.get("SUTRAM_TEST_OUTPUT", ROOT / "test-output")) / "console"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def page() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        # headless, with a fresh profile of Playwright's own
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        view = browser.new_page(viewport={"width": 1400, "height": 900})
        yield view
        browser.close()


def test_from_the_runs_list_into_a_run_and_its_timeline(server: tuple[str, Seeded], page: Any, shots: Path) -> None:
    base, _ = server
    page.goto(f"{base}/?tenant=acme")
    assert page.locator("table#runs a.run-link").count() == 3
    assert "secret-globex-topic" not in page.content()
    page.screenshot(path=str(shots / "runs.png"), full_page=True)
    page.locator("#run-search").fill("Coffee")  # a word from one run's input
    page.locator("#run-search").press("Enter")
    page.wait_for_url("**q=Coffee**")
    assert page.locator("table#runs a.run-link").count() == 1
    assert page.locator("table#runs .preview-in").inner_text() == "→ coffee"
    page.screenshot(path=str(shots / "runs-search.png"), full_page=False)
    page.goto(f"{base}/?tenant=acme")
    page.locator("table#runs a.run-link").first.click()
    page.wait_for_selector("#tree")
    assert page.locator("#tree tr.span").count() >= 6  # workflow, nodes, model calls
    page.screenshot(path=str(shots / "run-tree.png"), full_page=True)
    page.get_by_role("button", name="timeline").click()
    assert page.locator("#waterfall").is_visible() and not page.locator("#tree").is_visible()
    assert page.locator("#waterfall .bar.llm").count() >= 1
    page.screenshot(path=str(shots / "run-timeline.png"), full_page=True)


def test_a_checkpoint_diff_and_a_fork_diff(server: tuple[str, Seeded], page: Any, shots: Path) -> None:
    base, data = server
    page.goto(f"{base}/runs/{data.completed_run}?tenant=acme")
    page.locator("#thread-link").click()
    page.wait_for_selector("#checkpoints")
    page.locator("#checkpoints input[name=a]").last.check()
    page.locator("#compare-button").click()
    page.wait_for_selector("#checkpoint-diff")
    assert "answers" in page.locator("#checkpoint-diff").inner_text()
    page.screenshot(path=str(shots / "checkpoint-diff.png"), full_page=True)
    page.goto(f"{base}/threads/{data.fork}?tenant=acme")
    page.locator("#fork-diff").click()
    page.wait_for_selector("#diff-calls")
    assert page.locator("#diff-calls tr.call-new").count() == 3 and "matcha" in page.content()
    page.screenshot(path=str(shots / "fork-diff.png"), full_page=True)


def test_a_thread_s_conversation_and_two_checkpoints_compared_message_by_message(
        server: tuple[str, Seeded], page: Any, shots: Path) -> None:
    base, _ = server
    page.goto(f"{base}/threads/support-thread?tenant=desk")
    turn = page.locator("#conversation li.turn")
    assert turn.count() == 1 and turn.locator(".message").count() == 5  # question, tool calls, answers, reply
    assert "lookup_order" in turn.inner_text()
    page.screenshot(path=str(shots / "thread-conversation.png"), full_page=False)
    page.locator("#compare-button").click()  # a: the checkpoint before the last, b: the last
    diff = page.locator("#checkpoint-diff")
    diff.wait_for()
    added = diff.locator(".message.msg-added")
    assert added.count() == 1 and diff.locator(".message.msg-removed, .message.msg-changed").count() == 0
    assert "B-9 could not be found" in added.inner_text() and "assistant" in added.inner_text().lower()
    assert "1 added" in diff.locator("tr.channel-changed th").inner_text()
    assert diff.locator("li.unchanged").count() == 1  # the four earlier messages fold into one row
    page.screenshot(path=str(shots / "checkpoint-diff-messages.png"), full_page=True)


def test_a_memory_search(server: tuple[str, Seeded], page: Any, shots: Path) -> None:
    base, _ = server
    page.goto(f"{base}/memory?tenant=acme")
    page.fill("#memory-query", "what milk does Ana take?")
    page.keyboard.press("Enter")
    page.wait_for_url("**q=*")
    first = page.locator("#memories tbody tr").first
    assert "oat milk" in first.inner_text() and "Globex" not in page.content()
    assert first.locator("a.provenance").get_attribute("href") == "/runs/run-tea?tenant=acme"
    page.screenshot(path=str(shots / "memory-search.png"), full_page=True)


@pytest.fixture
def attacker_page(server: tuple[str, Seeded]) -> Iterator[str]:
    """A page on another port of 127.0.0.1 (same site, another origin) that posts the console's
    resume form as soon as it loads, as a page the operator happens to open would."""
    base, data = server
    action = html.escape(f"{base}/runs/{data.paused_run}/resume?tenant=acme")
    body = (f'<!doctype html><title>cute cats</title><form method="post" action="{action}">'
            '<input name="max_tokens" value="99999"><input name="confirm" value="yes"></form>'
            "<script>document.forms[0].submit()</script>").encode()

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/cats.html"
    httpd.shutdown()
    thread.join(10)


def test_a_page_of_another_origin_cannot_resume_a_paused_run(server: tuple[str, Seeded], page: Any, shots: Path,
                                                             attacker_page: str) -> None:
    base, data = server
    page.goto(f"{base}/runs/{data.paused_run}?tenant=acme")  # the operator has the console open
    ledger = page.locator("#ledger").inner_text()
    assert "paused" in ledger and "max_tokens reached" in ledger
    page.goto(attacker_page)
    page.wait_for_url(f"{base}/**")  # the form went to the console; what came back:
    page.screenshot(path=str(shots / "csrf-refused.png"), full_page=True)
    answer = page.locator("main").inner_text()
    page.goto(f"{base}/runs/{data.paused_run}?tenant=acme")
    assert page.locator("#ledger").inner_text() == ledger  # still paused, its budget unchanged
    assert "Not allowed" in answer and "not by the console" in answer


def test_filter_paused_runs_and_resume_one_after_confirmation(server: tuple[str, Seeded], page: Any,
                                                              shots: Path) -> None:
    base, data = server
    page.goto(f"{base}/?tenant=acme")
    page.select_option("select[name=status]", "paused")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**status=paused*")
    rows = page.locator("table#runs tbody tr")
    assert rows.count() == 1 and "paused" in rows.first.locator(".badge").inner_text()
    assert data.paused_run in rows.first.inner_text()  # the ledger's id beside the trace's
    page.screenshot(path=str(shots / "runs-paused.png"), full_page=True)
    rows.first.locator("a.run-link").click()
    page.wait_for_selector("#ledger")
    assert page.locator("#durable-id").inner_text() == data.paused_run
    page.get_by_role("link", name="resume it").click()
    page.wait_for_url("**/paused?tenant=acme")
    form = page.locator(f"form.resume[data-run='{data.paused_run}']")
    form.locator("input[name=max_tokens]").fill("5000")
    page.once("dialog", lambda dialog: dialog.dismiss())
    form.locator("input[name=confirm]").check()
    form.get_by_role("button", name="Resume").click()
    assert page.url.endswith("/paused?tenant=acme")  # dismissed: nothing was sent
    page.screenshot(path=str(shots / "paused.png"), full_page=True)
    page.once("dialog", lambda dialog: dialog.accept())
    form.locator("input[name=confirm]").check()
    form.get_by_role("button", name="Resume").click()
    page.wait_for_url(f"**/runs/{data.paused_run}?tenant=acme")
    assert "completed" in page.locator("#ledger").inner_text()
    page.screenshot(path=str(shots / "resumed.png"), full_page=True)


def _open_span(page: Any, kind: str, nth: int = 0, status: str | None = None) -> Any:
    """Open the panel of the ``nth`` span of ``kind`` from the trace tree with the keyboard
    (focus its link, press Enter), as a keyboard user would; return the panel."""
    rows = page.locator(f"#tree tr.span:has(.kind-dot.{kind})" + (f".status-{status}" if status else ""))
    link = rows.nth(nth).locator("a.span-link")
    link.focus()
    page.keyboard.press("Enter")
    page.wait_for_selector("#span-detail")
    assert page.evaluate("document.activeElement.id") == "span-detail"  # focus moved into the panel
    return page.locator("#span-detail")


def test_a_langgraph_run_s_model_tool_and_error_spans(server: tuple[str, Seeded], page: Any, shots: Path) -> None:
    base, _ = server
    page.goto(f"{base}/?tenant=desk")
    page.get_by_role("link", name="support", exact=True).click()
    page.wait_for_selector("#tree")
    llm = _open_span(page, "llm", 1)
    assert "where are orders A-1042 and B-9?" in llm.locator(".chat.input").inner_text()
    assert "<script>window.pwned=1</script>" in llm.inner_text()  # a hostile prompt shows as text
    assert page.evaluate("window.pwned") is None  # and never ran
    assert "B-9 could not be found" in llm.locator(".chat.output").inner_text()
    assert "tokens 40 in / 14 out" in llm.inner_text()
    page.screenshot(path=str(shots / "span-llm.png"), full_page=False)
    tool = _open_span(page, "tool", 0, "ok")
    assert "A-1042" in tool.locator("#span-arguments").inner_text()
    assert "packed, leaves Tuesday" in tool.locator("#span-result").inner_text()
    page.screenshot(path=str(shots / "span-tool.png"), full_page=False)
    error = _open_span(page, "tool", 0, "error").locator("#span-error")
    assert "LookupError" in error.inner_text() and "Traceback (most recent call last)" in error.inner_text()
    assert "in lookup_order" in error.inner_text()
    page.screenshot(path=str(shots / "span-error.png"), full_page=False)


def test_a_llama_index_run_s_model_span(server: tuple[str, Seeded], page: Any, shots: Path) -> None:
    base, _ = server
    page.goto(f"{base}/?tenant=desk")
    page.get_by_role("link", name="orders", exact=True).click()
    page.wait_for_selector("#tree")
    llm = _open_span(page, "llm", 1)
    assert "where is parcel P-77?" in llm.locator(".chat.input").inner_text()
    assert "Tool calls complete." in llm.locator(".chat.output").inner_text()
    page.screenshot(path=str(shots / "span-llama-llm.png"), full_page=False)


def test_the_stats_charts_render_the_database_totals(server: tuple[str, Seeded], page: Any, shots: Path) -> None:
    base, _ = server
    page.goto(f"{base}/?tenant=desk")
    page.locator("#nav-stats").click()
    page.wait_for_selector("#chart-runs svg")
    runs = page.locator("table#by-graph tbody tr")
    assert runs.count() == 2  # support and orders
    total = page.locator("#stats-total").inner_text()
    assert total.startswith("2 runs · 0 failed")
    # each chart sums to the total: bars drawn for the runs' bucket, and their titles carry the figures
    for chart in ("chart-runs", "chart-tokens", "chart-cost", "chart-latency"):
        assert page.locator(f"#{chart} svg rect").count() >= 1
    import sqlalchemy as sa

    from sutram_core.backends.sql.database import Database
    from sutram_core.backends.sql.schema import spans

    db = Database(SERVED["url"])
    try:
        with db.engine.connect() as conn:  # what the database holds for the tenant's model calls
            tokens_in, tokens_out = conn.execute(sa.select(sa.func.sum(spans.c.input_tokens),
                                                           sa.func.sum(spans.c.output_tokens))
                                                 .where(spans.c.tenant_id == "desk", spans.c.kind == "llm")).one()
    finally:
        db.close()
    assert f"tokens {tokens_in} in / {tokens_out} out" in total
    bars = page.eval_on_selector_all("#chart-tokens svg g.bar-group > title", "els => els.map(e => e.textContent)")
    summed = sum(int(t.split(" in ")[1].split(",")[0]) + int(t.split(" out ")[1]) for t in bars)
    assert summed == tokens_in + tokens_out > 0  # the bars drawn add up to the database's figure
    page.screenshot(path=str(shots / "stats.png"), full_page=True)


AXE_JS = os.environ.get("SUTRAM_AXE_JS", "")


@pytest.mark.skipif(not Path(AXE_JS).is_file(), reason="axe-core is not installed: make test installs it from npm "
                    "(SUTRAM_AXE_JS names its axe.min.js)")
def test_every_page_has_no_serious_or_critical_accessibility_violation(
        server: tuple[str, Seeded], page: Any) -> None:
    base, data = server
    page.goto(f"{base}/runs/run-support?tenant=desk")
    page.locator("#tree a.span-link").last.click()  # a page with a span's detail panel open
    page.wait_for_selector("#span-detail")
    with_panel = page.url.removeprefix(base)
    pages = ["/?tenant=*", "/?tenant=acme&q=coffee", f"/runs/{data.completed_run}?tenant=acme", with_panel,
             "/threads/support-thread?tenant=desk", f"/threads/{data.thread}?tenant=acme&a={data.first_checkpoint}",
             f"/diff?tenant=acme&a={data.thread}&b={data.fork}", "/stats?tenant=desk", "/paused",
             "/memory?tenant=acme&q=tea", "/audit"]
    found: dict[str, list[str]] = {}
    for path in pages:
        page.goto(base + path)
        page.add_script_tag(path=AXE_JS)
        result = page.evaluate("async () => (await axe.run(document)).violations.map("
                               "v => ({id: v.id, impact: v.impact, nodes: v.nodes.map(n => n.target.join(' '))}))")
        bad = [f"{v['id']} ({v['impact']}): {v['nodes'][:3]}" for v in result if v["impact"] in ("serious", "critical")]
        if bad:
            found[path] = bad
    assert not found, "\n".join(f"{p}: {v}" for p, v in found.items())


def test_a_running_run_updates_live_until_it_ends(server: tuple[str, Seeded], page: Any, shots: Path) -> None:
    from sutram_core.backends.sql.database import Database
    from sutram_core.backends.sql.traces import SqlTraceStore
    from sutram_core.traces.store import SPAN_COLUMNS

    base, _ = server
    db = Database(SERVED["url"])
    store = SqlTraceStore(db)
    start = time.time_ns()

    def span(span_id: str, parent: str | None, name: str, kind: str, end: int | None, status: str) -> dict[str, Any]:
        row: dict[str, Any] = dict.fromkeys(SPAN_COLUMNS)
        row.update(tenant_id="live", span_id=span_id, run_id="run-live", parent_id=parent, name=name, kind=kind,
                   status=status, start_ns=start, end_ns=end, attributes="{}")
        return row

    try:
        store.write_spans([span("run-live", None, "watched", "workflow", None, "running"),
                           span("live-1", "run-live", "first-step", "node", start + 10**6, "ok")])
        page.goto(f"{base}/runs/run-live?tenant=live")
        assert page.locator("#live-region[data-live-every]").count() == 1
        assert page.locator("#tree tr.span").count() == 2
        page.screenshot(path=str(shots / "run-live.png"), full_page=False)
        store.write_spans([span("live-2", "run-live", "second-step", "node", start + 2 * 10**6, "ok")])
        page.wait_for_selector("text=second-step", timeout=8000)  # no reload: the page fetched it
        store.write_spans([span("run-live", None, "watched", "workflow", start + 3 * 10**6, "ok")])
        page.wait_for_selector("#live-region:not([data-live-every])", timeout=8000)  # ended: polling stops
        assert page.locator("#tree tr.span").count() == 3 and page.locator(".live").count() == 0
    finally:
        db.close()
