"""The console's pages over HTTP (Starlette's test client), on SQLite and PostgreSQL: every
page renders what the database holds; tokens scope what a caller sees."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from sutram_adapters.console.app import ConsoleAccess, check_bind, create_app
from sutram_adapters.langgraph.durable import durable
from sutram_core.errors import ConfigurationError
from tests.console_seed import Seeded, seed
from tests.durable_graph import build


@pytest.fixture
def seeded(db_url: str) -> tuple[str, Seeded]:
    return db_url, seed(db_url)


@pytest.fixture
def client(seeded: tuple[str, Seeded]) -> Iterator[TestClient]:
    url, _ = seeded
    with TestClient(create_app(url, runner_factory=lambda t: durable(build(), url=url, tenant=t))) as c:
        yield c


def test_runs_list_filters_and_totals(client: TestClient) -> None:
    page = client.get("/", params={"tenant": "acme"}).text
    assert page.count('class="run-link"') == 3  # the tea, coffee (paused) and matcha (fork) executions
    assert "secret-globex-topic" not in page
    assert "runs ·" in page and "tokens" in page
    only_ok = client.get("/", params={"tenant": "acme", "status": "error"}).text
    assert "No runs match." in only_ok
    future = client.get("/", params={"tenant": "acme", "since": "2999-01-01T00:00"}).text
    assert "No runs match." in future and "0 runs" in future


def test_run_page_shows_tree_waterfall_and_journal(client: TestClient, seeded: tuple[str, Seeded]) -> None:
    runs = client.get("/", params={"tenant": "acme"}).text
    first = runs.split('class="run-link" href="')[1].split('"')[0]
    page = client.get(first).text
    assert 'id="tree"' in page and 'id="waterfall"' in page and "research" in page and "llm" in page
    ledger_page = client.get("/runs/run-tea", params={"tenant": "acme"}).text
    assert 'id="journal"' in ledger_page and ledger_page.count("<td>llm</td>") == 3
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
    refused = client.post(f"/runs/{data.paused_run}/resume", params={"tenant": "acme"}, data={"max_tokens": "5000"})
    assert refused.status_code == 400 and "needs confirmation" in refused.text
    done = client.post(f"/runs/{data.paused_run}/resume", params={"tenant": "acme"},
                       data={"max_tokens": "5000", "confirm": "yes"})
    assert done.status_code == 200 and "completed" in done.text
    assert data.paused_run not in client.get("/paused", params={"tenant": "acme"}).text


def test_memory_search_browse_and_provenance(client: TestClient) -> None:
    found = client.get("/memory", params={"tenant": "acme", "q": "what milk does Ana take?"}).text
    assert "oat milk" in found and "Globex secret" not in found
    assert 'class="provenance" href="/runs/run-tea?tenant=acme"' in found
    browse = client.get("/memory", params={"tenant": "acme", "namespace": "users/u1"}).text
    assert "Lisbon" in browse


def test_audit_page(client: TestClient) -> None:
    page = client.get("/audit").text
    assert page.count("intact") >= 2 and "broken" not in page


def test_tokens_scope_tenants(seeded: tuple[str, Seeded]) -> None:
    url, _ = seeded
    with TestClient(create_app(url, token="admin-secret", tenant_tokens={"acme": "acme-secret"})) as c:
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
    import urllib.request

    url, _ = seeded
    refused = subprocess.run([sys.executable, "-m", "sutram_adapters.cli", "serve", "--url", url, "--host", "0.0.0.0"],
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "without an access token" in refused.stderr
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "sutram_adapters.cli", "serve", "--url", url, "--port", str(port)],
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
    finally:
        server.terminate()
        server.wait(30)
