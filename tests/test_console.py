"""The console's pages over HTTP (Starlette's test client), on SQLite and PostgreSQL: every
page renders what the database holds; tokens scope what a caller sees; other web pages
cannot write through it (CSRF token + Origin check) nor read it under another name (Host
allowlist); bad input gets a 4xx with its reason."""

from __future__ import annotations

import re
import secrets
import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from sutram_adapters.console.app import ConsoleAccess, check_bind, create_app
from sutram_adapters.console.security import allowed_host_names
from sutram_adapters.langgraph.durable import durable
from sutram_core.errors import ConfigurationError
from tests.console_seed import START, Seeded, seed
from tests.durable_graph import build

BASE = "http://127.0.0.1:8787"  # the console as a browser on this machine reaches it
ATTACKER = "http://127.0.0.1:9999"  # another port of the same host: same site, another origin


def local_client(app: Any) -> TestClient:
    return TestClient(app, base_url=BASE)


def csrf_token(client: TestClient, tenant: str = "acme") -> str:
    """The token the paused page's resume form carries (it also sets the session cookie)."""
    page = client.get("/paused", params={"tenant": tenant}).text
    return page.split('name="csrf_token" value="')[1].split('"')[0]


def ledger_state(client: TestClient, run_id: str, tenant: str = "acme") -> tuple[str, dict[str, Any]]:
    run = client.app.state.console.ledger.get(tenant, run_id)  # type: ignore[attr-defined]
    return run.status.value, run.budget.as_dict()


@pytest.fixture
def seeded(db_url: str) -> tuple[str, Seeded]:
    return db_url, seed(db_url)


@pytest.fixture
def client(seeded: tuple[str, Seeded]) -> Iterator[TestClient]:
    url, _ = seeded
    with local_client(create_app(url, runner_factory=lambda t: durable(build(), url=url, tenant=t))) as c:
        yield c


def test_runs_list_filters_and_totals(client: TestClient) -> None:
    page = client.get("/", params={"tenant": "acme"}).text
    assert page.count('class="run-link"') == 3  # the tea, coffee (paused) and matcha (fork) executions
    assert "secret-globex-topic" not in page
    assert "runs ·" in page and "tokens" in page
    paused = client.get("/", params={"tenant": "acme", "status": "paused"}).text
    assert paused.count('class="run-link"') == 1 and 'class="badge paused"' in paused and "run-coffee" in paused
    only_ok = client.get("/", params={"tenant": "acme", "status": "error"}).text
    assert "No runs match." in only_ok
    future = client.get("/", params={"tenant": "acme", "since": "2999-01-01T00:00"}).text
    assert "No runs match." in future and "0 runs" in future


def test_runs_search_by_a_word_from_an_input_and_filter_by_model(client: TestClient) -> None:
    for word in ("coffee", "COFFEE", "cOfF"):  # any case, any part of a word
        page = client.get("/", params={"tenant": "acme", "q": word}).text
        assert page.count('class="run-link"') == 1 and "run-coffee" in page and "1 runs" in page
        assert 'class="preview-in" title="input">→ coffee' in page  # the input's gist, not its JSON
    for literal in ("%", "_", "co%ee", "\\"):  # wildcards are searched for as themselves
        assert "No runs match." in client.get("/", params={"tenant": "acme", "q": literal}).text
    everything = client.get("/", params={"tenant": "acme"}).text
    models = re.findall(r'<option value="([^"]+)" >', everything.split('name="model"')[1].split("</select>")[0])
    assert models, "the seeded runs made model calls"
    with_model = client.get("/", params={"tenant": "acme", "model": models[0]}).text
    assert with_model.count('class="run-link"') >= 1
    assert "No runs match." in client.get("/", params={"tenant": "acme", "model": "no-such-model"}).text
    assert "secret-globex-topic" not in client.get("/", params={"tenant": "acme", "q": "secret"}).text


def _run_ids(page: str) -> list[str]:
    return re.findall(r'class="run-link" href="/runs/([^"?]+)', page)


def test_the_runs_list_sorts_by_each_sortable_column_on_every_tenant(seeded: tuple[str, Seeded],
                                                                     client: TestClient) -> None:
    from sutram_core.traces import open_trace_store

    url, _ = seeded
    with open_trace_store(url) as store:
        every = [r for t in ("acme", "globex") for r in store.runs(t)]
    expected = {
        "newest": sorted(every, key=lambda r: -r.start_ns),
        "oldest": sorted(every, key=lambda r: r.start_ns),
        "slowest": sorted(every, key=lambda r: -(r.duration_ms or 0)),
        "fastest": sorted(every, key=lambda r: r.duration_ms or 0),
        "tokens": sorted(every, key=lambda r: (-(r.input_tokens + r.output_tokens), -r.start_ns)),
        "cost": sorted(every, key=lambda r: (-(r.cost_usd or 0), -r.start_ns)),
    }
    for sort, runs in expected.items():
        page = client.get("/", params={"tenant": "*", "sort": sort}).text
        assert _run_ids(page) == [r.run_id for r in runs], sort
        with open_trace_store(url) as store:  # the store alone, one tenant, in the same order
            assert [r.run_id for r in store.runs("acme", sort=sort)] == [r.run_id for r in runs
                                                                          if r.tenant_id == "acme"], sort
    assert 'aria-sort="descending"' in client.get("/", params={"sort": "slowest"}).text
    assert client.get("/", params={"sort": "random()"}).status_code == 400


def test_an_unrestricted_console_lists_every_tenant_by_default(client: TestClient) -> None:
    for params in ({}, {"tenant": "*"}):
        page = client.get("/", params=params).text
        assert page.count('class="run-link"') == 4 and "all tenants" in page  # acme's three, globex's one
        assert 'href="/runs/run-globex' not in page and '?tenant=globex">' in page  # each run links to its tenant
        assert page.count('<td class="tenant">acme</td>') == 3
    filtered = client.get("/", params={"tenant": "globex"}).text
    assert filtered.count('class="run-link"') == 1
    paused = client.get("/paused").text
    assert "run-coffee" in paused and "resume?tenant=acme" in paused
    found = client.get("/runs/run-globex")  # no tenant named: the run's own is found
    assert found.status_code == 200 and 'id="durable-id">run-globex<' in found.text


def test_a_tenant_token_lists_only_its_tenant_by_default(seeded: tuple[str, Seeded]) -> None:
    url, _ = seeded
    with local_client(create_app(url, token="admin-secret", tenant_tokens={"acme": "acme-secret"})) as c:
        page = c.get("/", headers={"Authorization": "Bearer acme-secret"}).text
        assert page.count('class="run-link"') == 3 and "globex" not in page.split("<main>")[1]
        assert c.get("/runs/run-globex", headers={"Authorization": "Bearer acme-secret"}).status_code == 400


def test_run_page_shows_tree_waterfall_and_journal(client: TestClient, seeded: tuple[str, Seeded]) -> None:
    runs = client.get("/", params={"tenant": "acme"}).text
    first = runs.split('class="run-link" href="')[1].split('"')[0]
    page = client.get(first).text
    assert 'id="tree"' in page and 'id="waterfall"' in page and "research" in page and "llm" in page
    ledger_page = client.get("/runs/run-tea", params={"tenant": "acme"}).text
    journal = ledger_page.split('id="journal"')[1].split("</table>")[0]
    assert journal.count("<td>llm</td>") == 3
    assert 'id="tree"' in ledger_page  # the ledger id opens its execution's trace too
    trace_id = ledger_page.split('id="trace-id">')[1].split("<")[0]
    assert client.get(f"/runs/{trace_id}", params={"tenant": "acme"}).text.count('id="durable-id">run-tea<') == 1
    assert "completed" in ledger_page


def test_thread_page_state_diff_and_fork_diff(client: TestClient, seeded: tuple[str, Seeded]) -> None:
    _, data = seeded
    page = client.get(f"/threads/{data.thread}", params={"tenant": "acme"}).text
    assert 'id="checkpoints"' in page and "echo: tea question 2" in page
    history = page.split('name="a" value="')[1:]
    newest, oldest = history[0].split('"')[0], history[-1].split('"')[0]
    diff = client.get(f"/threads/{data.thread}", params={"tenant": "acme", "a": oldest, "b": newest}).text
    assert 'id="checkpoint-diff"' in diff and "answers" in diff
    fork = client.get(f"/threads/{data.fork}", params={"tenant": "acme"}).text
    assert 'id="fork-origin"' in fork
    fork_diff = client.get("/diff", params={"tenant": "acme", "a": data.thread, "b": data.fork}).text
    assert "matcha" in fork_diff and "only in A" in fork_diff and 'id="diff-calls"' in fork_diff


def test_paused_runs_resume_with_confirmation(client: TestClient, seeded: tuple[str, Seeded]) -> None:
    _, data = seeded
    page = client.get("/paused", params={"tenant": "acme"}).text
    assert data.paused_run in page and "max_tokens reached" in page
    token = csrf_token(client)
    refused = client.post(f"/runs/{data.paused_run}/resume", params={"tenant": "acme"},
                          data={"max_tokens": "5000", "csrf_token": token}, headers={"Origin": BASE})
    assert refused.status_code == 400 and "needs confirmation" in refused.text
    done = client.post(f"/runs/{data.paused_run}/resume", params={"tenant": "acme"},
                       data={"max_tokens": "5000", "confirm": "yes", "csrf_token": token}, headers={"Origin": BASE})
    assert done.status_code == 200 and "completed" in done.text
    assert ledger_state(client, data.paused_run) == ("completed", {"max_tokens": 5000})
    assert data.paused_run not in client.get("/paused", params={"tenant": "acme"}).text


def test_memory_search_browse_and_provenance(client: TestClient) -> None:
    found = client.get("/memory", params={"tenant": "acme", "q": "what milk does Ana take?"}).text
    assert "oat milk" in found and "Globex secret" not in found
    assert 'class="provenance" href="/runs/run-tea?tenant=acme"' in found
    browse = client.get("/memory", params={"tenant": "acme", "namespace": "users/u1"}).text
    assert "Lisbon" in browse


def test_memory_search_pages_by_twenty_with_scores(client: TestClient, seeded: tuple[str, Seeded]) -> None:
    import re

    from sutram_core.memory import MemoryStore

    url, _ = seeded
    with MemoryStore.from_url(url, tenant="pages") as memory:
        for i in range(45):
            memory.put(("notes",), f"n{i}", {"text": f"note {i} about the tea order {i}"})
    seen: list[str] = []
    link = "/memory?" + "tenant=pages&q=tea+order"
    pages = 0
    while link:
        page = client.get(link.replace("&amp;", "&")).text
        pages += 1
        rows = page.split('<tbody>')[1].split('</tbody>')[0]
        seen += re.findall(r"notes / (n\d+)", rows)
        scores = [float(x) for x in re.findall(r'class="score"><span title="vector [^"]*">([0-9.]+)<', rows)]
        assert scores and scores == sorted(scores, reverse=True)  # every hit shows its score, best first
        found = re.search(r'id="memory-next" href="([^"]+)"', page)
        link = found.group(1) if found else ""
    assert pages == 3 and len(seen) == len(set(seen)) == 45  # 20 + 20 + 5, none twice, none lost
    assert client.get("/memory", params={"tenant": "pages", "page": "0"}).status_code == 400


def test_audit_page(client: TestClient) -> None:
    page = client.get("/audit").text
    assert page.count("intact") >= 2 and "broken" not in page


def test_tokens_scope_tenants(seeded: tuple[str, Seeded]) -> None:
    url, _ = seeded
    with local_client(create_app(url, token="admin-secret", tenant_tokens={"acme": "acme-secret"})) as c:
        assert c.get("/").status_code == 403 and "valid access token" in c.get("/").text
        assert "run-link" not in c.get("/", params={"tenant": "acme"}).text
        acme = c.get("/", params={"tenant": "acme", "token": "acme-secret"})
        assert "run-link" in acme.text and "sutram_token" in acme.headers.get("set-cookie", "")
        # the cookie now identifies the caller: other tenants stay closed
        other = c.get("/", params={"tenant": "globex"})
        assert other.status_code == 403 and "does not give access to tenant" in other.text
        assert "Globex secret" not in c.get("/memory", params={"tenant": "acme", "q": "oat milk"}).text
        audit = c.get("/audit").text
        assert "<td>acme</td>" in audit and "<td>globex</td>" not in audit
        c.cookies.clear()
        admin = c.get("/", params={"tenant": "globex"}, headers={"Authorization": "Bearer admin-secret"})
        assert "secret-globex-topic" in admin.text or "run-link" in admin.text


def test_binding_beyond_loopback_needs_a_token() -> None:
    with pytest.raises(ConfigurationError, match="without an access token"):
        check_bind("0.0.0.0", ConsoleAccess())
    check_bind("0.0.0.0", ConsoleAccess("t"))
    check_bind("127.0.0.1", ConsoleAccess())


@pytest.mark.parametrize("backend", ["sqlite"])  # the command once; the pages run on both databases above
def test_sutram_serve_command(seeded: tuple[str, Seeded]) -> None:
    import os
    import socket
    import subprocess
    import sys
    import time
    import urllib.error
    import urllib.request

    url, _ = seeded
    refused = subprocess.run([sys.executable, "-m", "sutram_adapters.cli", "serve", "--url", url, "--host", "0.0.0.0"],
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "without an access token" in refused.stderr
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "sutram_adapters.cli", "serve", "--url", url, "--port", str(port),
                               "--allow-host", "console.test"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ})
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/?tenant=acme", timeout=5) as response:
                    page = response.read().decode()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.2)
        assert "run-link" in page and "<script src=\"/static/console.js\"" in page

        def status(host: str) -> int:
            request = urllib.request.Request(f"http://127.0.0.1:{port}/memory?tenant=acme", headers={"Host": host})
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    return int(response.status)
            except urllib.error.HTTPError as refused:
                return int(refused.code)

        assert status("rebind.attacker.example") == 421 and status(f"rebind.attacker.example:{port}") == 421
        assert status(f"console.test:{port}") == 200 and status(f"localhost:{port}") == 200
    finally:
        server.terminate()
        server.wait(30)


# -- cross-site writes (CSRF) -------------------------------------------------------------

def test_a_resume_from_another_origin_or_without_the_session_token_changes_nothing(
        client: TestClient, seeded: tuple[str, Seeded]) -> None:
    _, data = seeded
    before = ledger_state(client, data.paused_run)
    assert before[0] == "paused"
    token = csrf_token(client)
    other_session = csrf_token(local_client(client.app))  # a token issued to another browser
    form = {"max_tokens": "99999", "confirm": "yes"}
    attempts = {
        "another origin, no token": ({"Origin": ATTACKER}, form),
        "another origin, the session's token": ({"Origin": ATTACKER}, {**form, "csrf_token": token}),
        "an opaque origin": ({"Origin": "null"}, {**form, "csrf_token": token}),
        "another origin in the Referer": ({"Referer": f"{ATTACKER}/evil.html"}, {**form, "csrf_token": token}),
        "the console's origin, no token": ({"Origin": BASE}, form),
        "no origin at all, no token": ({}, form),
        "a forged token": ({"Origin": BASE}, {**form, "csrf_token": "0" * 64}),
        "another session's token": ({"Origin": BASE}, {**form, "csrf_token": other_session}),
    }
    for what, (headers, body) in attempts.items():
        refused = client.post(f"/runs/{data.paused_run}/resume", params={"tenant": "acme"}, data=body, headers=headers)
        assert refused.status_code == 403 and "refused" in refused.text, what
        assert ledger_state(client, data.paused_run) == before, what
    # a script that sends no Origin (not a browser) passes with the session's token
    done = client.post(f"/runs/{data.paused_run}/resume", params={"tenant": "acme"}, data={**form, "csrf_token": token})
    assert done.status_code == 200 and ledger_state(client, data.paused_run) == ("completed", {"max_tokens": 99999})


def test_a_same_site_page_cannot_resume_with_the_admin_cookie(seeded: tuple[str, Seeded]) -> None:
    url, data = seeded
    app = create_app(url, token="admin-secret", tenant_tokens={"acme": "acme-secret"},
                     runner_factory=lambda t: durable(build(), url=url, tenant=t))
    with local_client(app) as admin, local_client(app) as tenant_user:
        assert admin.get("/", params={"token": "admin-secret", "tenant": "acme"}).status_code == 200  # cookie set
        before = ledger_state(admin, data.paused_run)
        # the page on another port of 127.0.0.1 rides on the admin cookie (SameSite lets it: same site)
        forged = admin.post(f"/runs/{data.paused_run}/resume", params={"tenant": "acme"},
                            data={"max_tokens": "99999", "confirm": "yes"}, headers={"Origin": ATTACKER})
        assert forged.status_code == 403 and ledger_state(admin, data.paused_run) == before
        # nor does a token issued to another login (a tenant's), planted with its cookie, pass for the admin
        tenant_user.get("/", params={"token": "acme-secret", "tenant": "acme"})
        planted = csrf_token(tenant_user)
        admin.cookies.set("sutram_csrf", tenant_user.cookies["sutram_csrf"])
        replayed = admin.post(f"/runs/{data.paused_run}/resume", params={"tenant": "acme"}, headers={"Origin": BASE},
                              data={"max_tokens": "99999", "confirm": "yes", "csrf_token": planted})
        assert replayed.status_code == 403 and ledger_state(admin, data.paused_run) == before
        # the admin's own form works
        done = admin.post(f"/runs/{data.paused_run}/resume", params={"tenant": "acme"}, headers={"Origin": BASE},
                          data={"max_tokens": "99999", "confirm": "yes", "csrf_token": csrf_token(admin)})
        assert done.status_code == 200 and ledger_state(admin, data.paused_run)[0] == "completed"


def test_the_csrf_cookie_is_httponly_and_strict_and_pages_refuse_framing(client: TestClient) -> None:
    fresh = local_client(client.app)
    page = fresh.get("/paused", params={"tenant": "acme"})
    cookie = page.headers["set-cookie"]
    assert cookie.startswith("sutram_csrf=") and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert page.headers["content-security-policy"] == "frame-ancestors 'none'"
    assert page.headers["x-frame-options"] == "DENY"


# -- DNS rebinding -------------------------------------------------------------------------

def test_an_unknown_host_header_is_refused(client: TestClient, seeded: tuple[str, Seeded]) -> None:
    _, data = seeded
    for host in ("rebind.attacker.example", "rebind.attacker.example:8787", "localhost.attacker.example",
                 "127.0.0.1.nip.io", "", "bad host"):
        refused = client.get("/memory", params={"tenant": "acme", "q": "oat milk"}, headers={"Host": host})
        assert refused.status_code == 421 and "--allow-host" in refused.text, host
        assert "oat milk" not in refused.text
    token = csrf_token(client)
    post = client.post(f"/runs/{data.paused_run}/resume", params={"tenant": "acme"}, headers={"Host": "evil.example"},
                       data={"confirm": "yes", "csrf_token": token})
    assert post.status_code == 421 and ledger_state(client, data.paused_run)[0] == "paused"
    for host in ("localhost:8787", "LOCALHOST", "127.0.0.1", "[::1]:8787", "localhost."):
        assert client.get("/", params={"tenant": "acme"}, headers={"Host": host}).status_code == 200, host


def test_allow_host_and_the_listening_address_add_host_names(seeded: tuple[str, Seeded]) -> None:
    url, _ = seeded
    app = create_app(url, token="t", host="10.1.2.3", allow_hosts=["Console.Example.com"])
    with local_client(app) as c:
        for host in ("console.example.com", "console.example.com:443", "10.1.2.3:8787", "localhost"):
            assert c.get("/", params={"token": "t"}, headers={"Host": host}).status_code == 200, host
        assert c.get("/", params={"token": "t"}, headers={"Host": "10.1.2.4"}).status_code == 421
    assert allowed_host_names("0.0.0.0") == allowed_host_names("::") == {"localhost", "127.0.0.1", "::1"}
    for bad in ("http://console.example.com", "console.example.com:8787", "a b", ""):
        with pytest.raises(ConfigurationError, match="--allow-host"):
            allowed_host_names(None, [bad])


# -- bad input -----------------------------------------------------------------------------

def test_thread_and_run_ids_with_a_slash_open_and_link(client: TestClient, seeded: tuple[str, Seeded]) -> None:
    url, _ = seeded
    with durable(build(), url=url, tenant="slash", remember_runs=False) as runner:
        runner.invoke(START, thread_id="user/42", run_id="run/42")
        runner.invoke(START, thread_id="odd ?#% thread", run_id="run-odd")
    for path in ("/threads/user/42", "/threads/user%2F42"):
        page = client.get(path, params={"tenant": "slash"})
        assert page.status_code == 200 and "echo: tea question 2" in page.text, path
    runs = client.get("/", params={"tenant": "slash"}).text
    assert 'href="/threads/user%2F42?tenant=slash"' in runs
    assert 'href="/threads/odd%20%3F%23%25%20thread?tenant=slash"' in runs
    run = client.get("/runs/run%2F42", params={"tenant": "slash"})  # the ledger's run id
    assert run.status_code == 200 and 'id="thread-link" href="/threads/user%2F42?tenant=slash"' in run.text
    assert 'id="ledger"' in run.text and "completed" in run.text
    odd = client.get("/threads/odd%20%3F%23%25%20thread", params={"tenant": "slash"})
    assert odd.status_code == 200 and "odd ?#% thread" in odd.text
    assert odd.text.count('action="/threads/odd%20%3F%23%25%20thread"') == 2  # the tenant switch and the compare form
    state_link = odd.text.split('">state</a>')[0].rsplit('href="', 1)[1].replace("&amp;", "&")
    assert state_link.startswith("/threads/odd%20%3F%23%25%20thread?") and client.get(state_link).status_code == 200


def test_bad_runs_cursor_answers_400_with_the_reason(client: TestClient) -> None:
    for before in ("9" * 40, "abc", "²", "-1"):
        page = client.get("/", params={"tenant": "acme", "before": before})
        assert page.status_code == 400 and "is not a start time in nanoseconds" in page.text, before
    assert client.get("/", params={"tenant": "acme", "before": str(2**63 - 1)}).status_code == 200


def test_bad_budget_values_answer_400_and_change_nothing(client: TestClient, seeded: tuple[str, Seeded]) -> None:
    _, data = seeded
    before = ledger_state(client, data.paused_run)
    token = csrf_token(client)
    bad = [("max_tokens", v) for v in ("abc", "1e400", "nan", "-5", "1.5", "0", "9" * 40)]
    bad += [("max_cost_usd", v) for v in ("abc", "1e400", "inf", "nan", "-1")]
    for field, value in bad:
        page = client.post(f"/runs/{data.paused_run}/resume", params={"tenant": "acme"}, headers={"Origin": BASE},
                           data={field: value, "confirm": "yes", "csrf_token": token})
        assert page.status_code == 400 and f"{field} must be" in page.text, (field, value)
        assert ledger_state(client, data.paused_run) == before


def test_an_empty_token_is_refused(seeded: tuple[str, Seeded], capsys: pytest.CaptureFixture[str]) -> None:
    from sutram_adapters.cli import main

    url, _ = seeded
    for token in ("", "  "):
        with pytest.raises(ConfigurationError, match="access token is empty"):
            create_app(url, token=token)
    assert main(["serve", "--url", url, "--token="]) == 2
    assert "access token is empty" in capsys.readouterr().err
    assert main(["serve", "--url", url, "--tenant-token", "acme="]) == 2
    assert "access token of tenant 'acme' is empty" in capsys.readouterr().err


def _write_thread(url: str, thread_id: str, count: int, value_bytes: int) -> list[str]:
    """A thread of ``count`` checkpoints, each holding its own random value of about ``value_bytes``."""
    from langgraph.checkpoint.base import empty_checkpoint

    from sutram_adapters.langgraph.saver import SutramSaver

    ids = []
    with SutramSaver.from_url(url, tenant="acme") as saver:
        config: Any = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}
        for i in range(count):
            checkpoint = empty_checkpoint()
            checkpoint["channel_values"] = {"blob": f"value {i}: " + secrets.token_hex(value_bytes // 2)}
            checkpoint["channel_versions"] = {"blob": i + 1}
            config = saver.put(config, checkpoint, {"step": i, "source": "loop"}, {"blob": i + 1})
            ids.append(config["configurable"]["checkpoint_id"])
    return ids


def test_a_thread_page_decodes_only_the_checkpoints_it_shows(client: TestClient, seeded: tuple[str, Seeded]) -> None:
    url, _ = seeded
    ids = _write_thread(url, "damaged-thread", 4, 600)  # values stored as rows (a short string is kept inline)
    db = client.app.state.console.db  # type: ignore[attr-defined]
    from sqlalchemy import update

    from sutram_core.backends.sql.schema import checkpoint_blobs as b

    def damage() -> Any:  # the oldest checkpoint's value names a serializer nobody has
        yield __import__("sutram_core.backends.sql.database", fromlist=["Step"]).Step(
            update(b).where(b.c.tenant_id == "acme", b.c.thread_id == "damaged-thread", b.c.version == "i1")
            .values(type="no-such-serializer"))

    db.run(damage(), write=True)
    page = client.get("/threads/damaged-thread", params={"tenant": "acme"})
    assert page.status_code == 200 and all(cid in page.text for cid in ids) and "value 3: " in page.text
    assert "value 0: " not in page.text
    broken = client.get("/threads/damaged-thread", params={"tenant": "acme", "at": ids[0]})
    assert broken.status_code == 400 and "cannot deserialize" in broken.text


def test_a_thread_page_of_large_checkpoints_stays_small(client: TestClient, seeded: tuple[str, Seeded]) -> None:
    url, _ = seeded
    _write_thread(url, "big-thread", 24, 512 * 1024)  # 12 MB of values
    assert client.get("/threads/big-thread", params={"tenant": "acme"}).status_code == 200  # warm (saver, imports)
    tracemalloc.start()
    try:
        page = client.get("/threads/big-thread", params={"tenant": "acme"})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert page.status_code == 200 and page.text.count('name="a"') == 24
    assert peak < 6 * 2**20, f"showing one 0.5 MB checkpoint of 24 took {peak / 2**20:.1f} MiB"
