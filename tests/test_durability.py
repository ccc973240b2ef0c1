"""Durability: once put / put_writes returns, the data survives a SIGKILL of the process."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from sutram_adapters.langgraph import SutramSaver
from tests.helpers import config

WRITER = textwrap.dedent("""
    import sys
    from langgraph.checkpoint.base.id import uuid6
    from sutram_adapters.langgraph import SutramSaver

    saver = SutramSaver(sys.argv[1])
    parent = None
    versions = {}
    messages = []
    for step in range(100000):
        messages = messages + [f"message {step} " + "x" * (step % 50)]
        versions["messages"] = saver.get_next_version(versions.get("messages"), None)
        cp = {"v": 4, "id": str(uuid6(clock_seq=step)), "ts": "", "channel_values": {"messages": messages},
              "channel_versions": dict(versions), "versions_seen": {}, "updated_channels": None}
        conf = {"configurable": {"thread_id": "t", "checkpoint_ns": ""}}
        if parent:
            conf["configurable"]["checkpoint_id"] = parent
        saved = saver.put(conf, cp, {"step": step}, {"messages": versions["messages"]})
        parent = saved["configurable"]["checkpoint_id"]
        saver.put_writes(saved, [("messages", f"write {step}")], "task")
        print(f"ACK {step} {parent}", flush=True)
""")


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_acknowledged_checkpoints_survive_sigkill(db_url: str, seed: int) -> None:
    rng = random.Random(seed)
    with SutramSaver.from_url(db_url):
        pass  # schema ready before the race starts
    proc = subprocess.Popen([sys.executable, "-c", WRITER, db_url], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": os.getcwd()})
    acked: list[tuple[int, str]] = []
    target = rng.randint(20, 120)
    deadline = time.monotonic() + 60
    assert proc.stdout is not None
    while len(acked) < target and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        _, step, cid = line.split()
        acked.append((int(step), cid))
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert len(acked) == target, "the writer died before it was killed"
    with SutramSaver.from_url(db_url) as saver:
        latest = saver.get_tuple(config("t"))
        assert latest is not None
        assert latest.metadata["step"] >= acked[-1][0]
        for step, cid in [*rng.sample(acked, min(15, len(acked))), acked[-1]]:
            t = saver.get_tuple(config("t", "", cid))
            assert t is not None, f"acknowledged checkpoint {step} lost"
            assert len(t.checkpoint["channel_values"]["messages"]) == step + 1
            assert t.checkpoint["channel_values"]["messages"][-1].startswith(f"message {step} ")
            assert [w[2] for w in t.pending_writes or []] == [f"write {step}"]
