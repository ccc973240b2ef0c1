"""The ``sutram`` command as a new user meets it: every command and bad argument ends in a
clear message and an exit status, never a traceback; reading never creates a database;
runs can be resumed, cancelled and forked from the command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sutram_adapters.cli import _parser, main
from sutram_adapters.langgraph import durable
from sutram_core.runs import Budget, RunStatus
from tests.durable_graph import build

START_STATE = {"topic": "tea", "answers": [], "done": False}

COMMANDS = sorted(_parser()._subparsers._group_actions[0].choices)  # type: ignore[union-attr]


def _run(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:  # argparse's own usage errors
        return int(exc.code or 0)


def test_help_and_version_show_only_commands_for_people(capsys: Any) -> None:
    from sutram_core import __version__

    assert _run(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"sutram {__version__}"
    assert _run(["--help"]) == 0
    out = capsys.readouterr().out
    assert "_demo-worker" not in out and "SUPPRESS" not in out
    assert set(COMMANDS) == {"demo", "history", "runs", "trace", "fork", "export", "audit", "recover", "serve", "diff",
                             "memory", "stats"}
    assert _run(["nope"]) == 2
    assert "_demo-worker" not in capsys.readouterr().err
    for name in COMMANDS:
        assert _run([name, "--help"]) == 0
        text = capsys.readouterr().out
        for option in ("--tenant", "--limit", "--port"):
            if option in text:  # every option says what it is, with its default
                line = text[text.index(option):].split("\n")[0] + text[text.index(option):].split("\n")[1]
                assert len(line.split()) > 2, f"{name} {option} has no help"


@pytest.mark.parametrize("command", [c for c in COMMANDS if c != "demo"])
def test_a_command_on_a_missing_database_says_so_and_creates_nothing(command: str, tmp_path: Path,
                                                                    capsys: Any) -> None:
    argv = {"history": ["history", "t1"], "runs": ["runs"], "trace": ["trace", "r1"], "fork": ["fork", "t1"],
            "export": ["export", "--otlp", "http://127.0.0.1:9"], "audit": ["audit", "verify"],
            "recover": ["recover", "--graph", "tests.durable_graph:GRAPH"], "serve": ["serve"],
            "diff": ["diff", "a", "b"], "memory": ["memory", "list"], "stats": ["stats"]}[command]
    for url in (f"sqlite:///{tmp_path / 'missing.db'}", f"sqlite:///{tmp_path / 'no' / 'dir' / 'x.db'}"):
        assert _run([*argv, "--url", url]) == 1
        err = capsys.readouterr().err
        assert "no database at" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


BAD_ARGUMENTS = [
    ["runs", "--limit", "many"], ["runs", "show"], ["runs", "resume", "r1"], ["runs", "frobnicate"],
    ["trace"], ["history"], ["fork"], ["export"], ["export", "--otlp", "localhost:4318"],
    ["export", "--otlp", "http://127.0.0.1:9", "--header", "x"], ["audit", "explode"], ["recover"],
    ["recover", "--graph", "nocolon"], ["recover", "--graph", "no_such_module_here:graph"],
    ["recover", "--graph", "tests.durable_graph:nothing"], ["recover", "--graph", "tests.durable_graph:State"],
    ["serve", "--port", "http"], ["serve", "--tenant-token", "x"], ["diff", "a"], ["memory", "search"],
    ["memory", "list", "--kind", "dreams"], ["fork", "t-none"], ["runs", "cancel", "r-none", "--graph",
                                                                 "tests.durable_graph:GRAPH"],
    ["history", "t1", "--url", "postgresql://"], ["runs", "--url", "sqlite://relative.db"],
    ["runs", "--url", "mysql://x/y"],
]


@pytest.mark.parametrize("argv", BAD_ARGUMENTS, ids=lambda a: " ".join(a))
def test_a_bad_argument_is_a_message_not_a_traceback(argv: list[str], tmp_path: Path, capsys: Any) -> None:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    with durable(build(), url=url):
        pass  # the database exists
    full = argv if "--url" in argv else [*argv, "--url", url]
    assert _run(full) != 0
    err = capsys.readouterr().err
    assert err.strip() and "Traceback" not in err


def test_recover_imports_the_graph_from_the_current_folder(tmp_path: Path) -> None:
    (tmp_path / "agent.py").write_text(
        "from langgraph.graph import StateGraph, START, END\n"
        "from typing_extensions import TypedDict\n"
        "class S(TypedDict):\n    x: int\n"
        "builder = StateGraph(S)\nbuilder.add_node('a', lambda s: {'x': s['x'] + 1})\n"
        "builder.add_edge(START, 'a')\nbuilder.add_edge('a', END)\ngraph = builder.compile()\n")
    env = {**os.environ, "PYTHONPATH": ""}
    cli = [sys.executable, "-m", "sutram_adapters.cli"]
    subprocess.run([*cli, "demo", "--help"], cwd=tmp_path, env=env, check=True, capture_output=True)
    made = subprocess.run([sys.executable, "-c", "import agent\nfrom sutram_adapters.langgraph import durable\n"
                           "with durable(agent.graph, url='sqlite:///app.db') as r: r.invoke({'x': 1}, thread_id='t')"],
                          cwd=tmp_path, env={**env, "PYTHONPATH": str(tmp_path)}, capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    done = subprocess.run([*cli, "recover", "--graph", "agent:graph", "--url", "sqlite:///app.db"], cwd=tmp_path,
                          env=env, capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "no run to recover", done.stderr
    raw = subprocess.run([*cli, "recover", "--graph", "agent:builder", "--url", "sqlite:///app.db"], cwd=tmp_path,
                         env=env, capture_output=True, text=True)
    assert raw.returncode == 2 and "StateGraph that is not compiled" in raw.stderr and "Traceback" not in raw.stderr


def test_history_keeps_whole_ids_and_fork_resume_cancel_work_from_the_cli(db_url: str, calls: Path,
                                                                           capsys: Any) -> None:
    with durable(build(), url=db_url, tenant="acme") as runner:
        runner.invoke(START_STATE, thread_id="b1", run_id="rb1", budget=Budget(max_steps=1))
        runner.invoke(START_STATE, thread_id="b2", run_id="rb2", budget=Budget(max_steps=1))
        ids = [t.config["configurable"]["checkpoint_id"] for t in runner.saver.list(
            {"configurable": {"thread_id": "b1"}})]
    os.environ["COLUMNS"] = "60"  # a narrow terminal must not cut the ids
    try:
        assert main(["history", "b1", "--tenant", "acme", "--url", db_url]) == 0
    finally:
        del os.environ["COLUMNS"]
    table = capsys.readouterr().out
    assert all(i in table for i in ids)
    assert main(["history", "b1", "--tenant", "acme", "--url", db_url, "--json"]) == 0
    assert [r["checkpoint_id"] for r in json.loads(capsys.readouterr().out)] == ids

    assert main(["fork", "b1", "--checkpoint", ids[-1], "--new-thread", "b1-retry", "--tenant", "acme",
                 "--url", db_url, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"thread_id": "b1-retry", "forked_from": "b1",
                                                   "checkpoint_id": ids[-1]}
    graph = "tests.durable_graph:GRAPH"
    assert main(["runs", "resume", "rb1", "--graph", graph, "--max-steps", "5", "--url", db_url, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "completed"
    assert main(["runs", "cancel", "rb2", "--graph", graph, "--url", db_url]) == 0
    assert capsys.readouterr().out.startswith("rb2  cancelled")
    with durable(build(), url=db_url, tenant="acme") as runner:
        assert runner.ledger.get("acme", "rb1").status is RunStatus.COMPLETED
        assert runner.ledger.get("acme", "rb2").status is RunStatus.CANCELLED
    assert main(["runs", "resume", "rb2", "--graph", graph, "--url", db_url]) == 2  # a cancelled run stays so
    assert "cannot be resumed" in capsys.readouterr().err
