"""The README, read as a new user would: its Python sections pasted in order into one script
run as written against one database (``sqlite:///app.db``), the only thing added being the
user's own LlamaIndex model; then its shell lines run against the same file. Everything
lands in that one file: no ``./.sutram`` database appears on the side."""

from __future__ import annotations

import os
import re
import shlex
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()

# what a reader brings: their model (here LlamaIndex's mock, reporting usage)
PREAMBLE = "from sutram_adapters.demo.fake_llama_index import UsageFunctionCallingLLM\nllm = UsageFunctionCallingLLM()\n"

RUNNER = """
import ast, asyncio, sys
source = open(sys.argv[1]).read()
code = compile(source, sys.argv[1], "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
namespace = {"__name__": "__main__"}
result = eval(code, namespace)
if asyncio.iscoroutine(result):
    asyncio.run(result)
"""


def blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", README, flags=re.S | re.M)


def _env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUTRAM_") or k == "SUTRAM_SPOOL_DIR"}
    env["PYTHONPATH"] = str(ROOT)
    return env


def test_the_readmes_python_sections_run_as_one_script_on_one_database(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    sections = blocks("python")
    assert len(sections) >= 8
    script = tmp_path / "readme_app.py"
    script.write_text(PREAMBLE + "\n".join(sections))
    done = subprocess.run([sys.executable, "-c", RUNNER, str(script)], cwd=tmp_path, env=_env(tmp_path),
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert not (tmp_path / ".sutram").exists(), "a second database was made"
    db = sqlite3.connect(tmp_path / "app.db")

    def count(sql: str, *args: object) -> int:
        return int(db.execute(sql, args).fetchone()[0])

    # the quick start's and the memory section's threads, each in its tenant
    assert count("SELECT count(*) FROM sutram_checkpoints WHERE tenant_id='default' AND thread_id='t1'") >= 2
    assert count("SELECT count(*) FROM sutram_checkpoints WHERE tenant_id='acme' AND thread_id='m1'") >= 2
    # traces: the callback handler's (default tenant), LlamaIndex's and the durable runs' (acme)
    assert count("SELECT count(*) FROM sutram_spans WHERE tenant_id='default' AND parent_id IS NULL") >= 1
    assert count("SELECT count(*) FROM sutram_spans WHERE tenant_id='acme' AND thread_id='user-42'") >= 1
    assert count("SELECT count(*) FROM sutram_spans WHERE tenant_id='acme' AND "
                 "attributes LIKE '%order-42%'") >= 1
    # the run ledger: the README's run completed, and its fork ran
    assert db.execute("SELECT status FROM sutram_runs WHERE tenant_id='acme' AND run_id='order-42'").fetchone() == (
        "completed",)
    assert count("SELECT count(*) FROM sutram_runs WHERE tenant_id='acme' AND thread_id LIKE 't1-fork-%'") == 1
    # memories: the node's, MemoryStore's and the LlamaIndex chat's, all in tenant acme
    assert count("SELECT count(*) FROM sutram_memories WHERE tenant_id='acme' AND namespace LIKE 'users%'") >= 2
    assert count("SELECT count(*) FROM sutram_memories WHERE tenant_id='acme' AND kind='procedural'") >= 1
    assert count("SELECT count(*) FROM sutram_memories WHERE tenant_id='acme' AND value LIKE '%oat milk%'") >= 1
    assert count("SELECT count(*) FROM sutram_memories WHERE tenant_id<>'acme'") == 0
    db.close()

    # the shell lines, on the same file through SUTRAM_URL (placeholders filled in, optional
    # parts left out; lines that need a server, an OTLP collector or an app module skipped),
    # run by the CLI's own entry point in this process (an interpreter each took 10 s)
    from sutram_adapters.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SUTRAM_URL", "sqlite:///app.db")
    fill = {"RUN_ID": "order-42", "THREAD_A": "t1", "THREAD_B": "t1", "THREAD": "t1"}
    ran = []
    for block in blocks("bash"):
        for line in block.splitlines():
            command = re.sub(r"\s\[[^\]]*\]", "", line.split("  #", 1)[0]).strip()
            if not command.startswith("sutram ") or command.endswith("\\"):
                continue
            words = [fill.get(w, w) for w in shlex.split(command)]
            if words[1] in ("serve", "export") or "--graph" in words or any(w.isupper() for w in words):
                continue
            if words[1] in ("runs", "trace", "history", "fork", "diff") and "--tenant" not in words and \
                    words[1:3] != ["runs"]:
                words += ["--tenant", "acme"]
            code = main(words[1:])
            out = capsys.readouterr()
            assert code == 0 and (out.out + out.err).strip(), (words, out.out, out.err)
            ran.append(words[1:3])
    assert ["runs", "show"] in ran and ["memory", "search"] in ran and ["history", "t1"] in ran, ran
    assert not (tmp_path / ".sutram").exists()


def test_a_graph_whose_node_source_cannot_be_read_still_runs_durably(tmp_path: Path) -> None:
    """A node defined in a REPL, a notebook or exec'd code, or in a file edited since it was
    imported: its version falls back to the function's name, never an error."""
    from langgraph.graph import END, START, StateGraph
    from typing_extensions import TypedDict

    from sutram_adapters.langgraph.durable import durable, graph_version

    class S(TypedDict):
        n: int

    edited = tmp_path / "edited.py"
    edited.write_text("def step(state):\n    return {'n': state['n'] + 1}\n")
    namespace: dict[str, object] = {}
    exec(compile(edited.read_text(), str(edited), "exec"), namespace)
    edited.write_text("x = (\n")  # the file changed since: its source no longer parses
    builder = StateGraph(S)
    builder.add_node("step", namespace["step"])  # type: ignore[call-overload]
    builder.add_edge(START, "step")
    builder.add_edge("step", END)
    graph = builder.compile()
    assert len(graph_version(graph)) == 16
    with durable(graph, url=f"sqlite:///{tmp_path / 'a.db'}") as runner:
        assert runner.invoke({"n": 1}, thread_id="t", run_id="r") == {"n": 2}
