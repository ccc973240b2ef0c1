"""The main job: ``sutram demo`` kills a worker mid-run and resumes without repeating steps."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from sutram_adapters.demo import run_demo


def test_demo_resumes_without_repeating_completed_steps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUTRAM_DEMO_STEP_SECONDS", "0.25")
    out = io.StringIO()
    figures = run_demo(f"sqlite:///{tmp_path / 'demo.db'}", Console(file=out, width=120))
    assert figures["completed_before"] == 2
    assert figures["repeated"] == 0
    assert figures["answer"].startswith("Your espresso grinder")
    assert figures["checkpoints"] == 7  # input + 5 steps + the final one
    assert figures["llm_calls"] == 3 + figures["llm_calls_in_flight"]
    text = out.getvalue()
    assert "SIGKILL" in text and "killed mid-node" in text and "Checkpoint history" in text
    # both processes traced the thread: the killed run never ended, the resumed one did
    assert [status for status, _ in figures["traced_runs"]] == ["ok", "running"]
    resumed = figures["resumed_spans"]
    assert resumed[0][:2] == ("LangGraph", "workflow")
    nodes = [s for s in resumed if s[1] == "node"]
    assert nodes and all(linked for _, _, linked in nodes)  # every node links to its checkpoint
    assert any(kind == "llm" for _, kind, _ in resumed)
    assert "tokens" in text and "-> checkpoint" in text


def test_sutram_demo_command_on_the_default_sqlite_file(tmp_path: Path) -> None:
    env = {**os.environ, "SUTRAM_DEMO_STEP_SECONDS": "0.25", "PYTHONPATH": os.getcwd()}
    env.pop("SUTRAM_URL", None)
    proc = subprocess.run([sys.executable, "-m", "sutram_adapters.cli", "demo"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / ".sutram" / "sutram.db").exists()
    assert "repeated after" in proc.stdout
