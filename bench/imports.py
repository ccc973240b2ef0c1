"""Import-cost benchmark: what ``import sutram_adapters.langgraph`` costs a process, against
LangGraph's own ``from langgraph.checkpoint.sqlite import SqliteSaver`` (the goal: at most
1.1x), and what a process pays up to its first ready saver (the import, a saver on a new
SQLite file and its schema): Sutram imports SQLAlchemy and its storage modules when the
first saver is made, so the second figure is where that cost shows.

    python bench/imports.py            # 15 rounds
    python bench/imports.py --rounds 5

Each round starts a fresh interpreter per import (interleaved, so both see the same machine
load) and reads the wall time of the import alone; the median and the spread are printed,
and the modules each side loads that the other does not, by cumulative ``-X importtime``
cost, say where the difference goes.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SIDES = {"sutram": "import sutram_adapters.langgraph",
         "langgraph sqlite": "from langgraph.checkpoint.sqlite import SqliteSaver"}
_FIRST_SAVER = {
    "sutram": "from sutram_adapters.langgraph import SutramSaver; "
              "SutramSaver(f'sqlite:///{d}/s.db').setup()",
    "langgraph sqlite": "import sqlite3; from langgraph.checkpoint.sqlite import SqliteSaver; "
                        "SqliteSaver(sqlite3.connect(f'{d}/s.db', check_same_thread=False)).setup()",
}
FIRST_SAVER = {name: "import tempfile; d = tempfile.mkdtemp(); t = time.perf_counter(); " + stmt
               for name, stmt in _FIRST_SAVER.items()}
_TIMED = "import time; t = time.perf_counter(); {stmt}; print(time.perf_counter() - t)"
# both sides read bytecode, as from an installed wheel (pip compiles it; the first, warming
# run writes Sutram's source tree's __pycache__ even where PYTHONDONTWRITEBYTECODE is set)
_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def timed(stmt: str) -> float:
    out = subprocess.run([sys.executable, "-c", _TIMED.format(stmt=stmt)], cwd=ROOT, capture_output=True,
                         text=True, check=True, env=_ENV)
    return float(out.stdout.strip())


def modules(stmt: str) -> dict[str, int]:
    """Top-level packages loaded by ``stmt`` and their self time in microseconds."""
    err = subprocess.run([sys.executable, "-X", "importtime", "-c", stmt], cwd=ROOT, capture_output=True,
                         text=True, check=True, env=_ENV).stderr
    cost: dict[str, int] = {}
    for line in err.splitlines():
        found = re.match(r"import time:\s+(\d+) \|\s+\d+ \|\s*(\S+)", line)
        if found:
            top = found.group(2).split(".")[0]
            cost[top] = cost.get(top, 0) + int(found.group(1))
    return cost


def _race(sides: dict[str, str], rounds: int) -> dict[str, float]:
    """Median wall time of each side's statement, rounds interleaved; one line per side."""
    for stmt in sides.values():
        timed(stmt)  # warm the file cache and the bytecode
    times: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(rounds):
        for name, stmt in sides.items():
            times[name].append(timed(stmt))
    med = {name: statistics.median(v) for name, v in times.items()}
    for name, v in times.items():
        print(f"  {name:18} median {med[name] * 1e3:7.1f} ms   (min {min(v) * 1e3:.1f}, max {max(v) * 1e3:.1f})")
    return med


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    print("import")
    med = _race(SIDES, args.rounds)
    ratio = med["sutram"] / med["langgraph sqlite"]
    print(f"Sutram/peer import time: {ratio:.2f}x (goal: <= 1.1x)")
    ours, theirs = modules(SIDES["sutram"]), modules(SIDES["langgraph sqlite"])
    extra = sorted(((k, v) for k, v in ours.items() if k not in theirs), key=lambda kv: -kv[1])[:8]
    print("loaded by Sutram only (self time): " + ", ".join(f"{k} {v / 1e3:.1f} ms" for k, v in extra))
    print("import, then a saver on a new SQLite file with its schema")
    first = _race(FIRST_SAVER, args.rounds)
    first_ratio = first["sutram"] / first["langgraph sqlite"]
    print(f"Sutram/peer time to the first ready saver: {first_ratio:.2f}x (SQLAlchemy loads here)")
    if args.json:
        args.json.write_text(json.dumps({"median_s": med, "ratio": ratio, "sutram_only_ms": dict(extra),
                                         "first_saver_median_s": first, "first_saver_ratio": first_ratio},
                                        indent=2))


if __name__ == "__main__":
    main()
