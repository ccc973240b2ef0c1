"""The main job: ``sutram demo`` kills a durable agent mid-node, recovers it without repeating
a completed model call, pauses a run on its budget and resumes it, and shows the trace."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sutram_adapters._term import Terminal
from sutram_adapters.demo import run_demo
from sutram_adapters.demo.run import LEASE_SECONDS


def test_demo_recovers_without_repeating_a_call_and_pauses_on_budget(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUTRAM_DEMO_STEP_SECONDS", "0.25")
    out = io.StringIO()
    figures = run_demo(f"sqlite:///{tmp_path / 'demo.db'}", Terminal(file=out, width=120))
    # killed during the third model call of the brief node: two had completed, none is repeated
    assert (figures["completed_before"], figures["in_flight"], figures["repeated"]) == (2, 1, 0)
    assert figures["status"] == "completed" and figures["attempts"] == 2
    assert 0 < figures["resumed_after_s"] <= LEASE_SECONDS + 1
    assert figures["answer"].startswith("Your espresso grinder")
    assert figures["budget_paused"] == "paused" and "max_tokens reached" in figures["budget_reason"]
    assert figures["budget_final"] == "completed" and figures["budget_paid_twice"] == 0
    text = " ".join(out.getvalue().split())
    assert "SIGKILL" in text and "answered from the journal" in text and "made again: 0" in text
    resumed = figures["resumed_spans"]
    assert resumed[0][:2] == ("order-agent", "workflow")  # the durable run's name, not "LangGraph"
    nodes = [s for s in resumed if s[1] == "node"]
    assert [n for n, _, _ in nodes] == ["brief", "agent", "tools", "agent", "tools", "agent"]
    assert all(linked for _, _, linked in nodes)  # every node links to its checkpoint
    # the recovery's brief node replayed two calls and made the lost one: three llm spans
    assert sum(kind == "llm" for _, kind, _ in resumed) == 6
    assert text.count("from the journal (") == 2  # the two replays, shown as not paid again
    assert "tokens" in text and "-> checkpoint" in text


def test_sutram_demo_command_on_the_default_sqlite_file(tmp_path: Path) -> None:
    env = {**os.environ, "SUTRAM_DEMO_STEP_SECONDS": "0.25", "PYTHONPATH": os.getcwd()}
    env.pop("SUTRAM_URL", None)
    proc = subprocess.run([sys.executable, "-m", "sutram_adapters.cli", "demo"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / ".sutram" / "sutram.db").exists()
    assert "made again: 0" in " ".join(proc.stdout.split())
