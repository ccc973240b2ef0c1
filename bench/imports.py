"""Import-cost benchmark: what ``import sutram_adapters.langgraph`` costs a process, against
LangGraph's own ``from langgraph.checkpoint.sqlite import SqliteSaver`` (the goal: at most
1.1x).

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
import re
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SIDES = {"sutram": "import sutram_adapters.langgraph",
         "langgraph sqlite": "from langgraph.checkpoint.sqlite import SqliteSaver"}
_TIMED = "import time; t = time.perf_counter(); {stmt}; print(time.perf_counter() - t)"


def timed(stmt: str) -> float:
    out = subprocess.run([sys.executable, "-c", _TIMED.format(stmt=stmt)], cwd=ROOT, capture_output=True,
                         text=True, check=True)
    return float(out.stdout.strip())


def modules(stmt: str) -> dict[str, int]:
    """Top-level packages loaded by ``stmt`` and their self time in microseconds."""
    err = subprocess.run([sys.executable, "-X", "importtime", "-c", stmt], cwd=ROOT, capture_output=True,
                         text=True, check=True).stderr
    cost: dict[str, int] = {}
    for line in err.splitlines():
        found = re.match(r"import time:\s+(\d+) \|\s+\d+ \|\s*(\S+)", line)
        if found:
            top = found.group(2).split(".")[0]
            cost[top] = cost.get(top, 0) + int(found.group(1))
    return cost


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    for stmt in SIDES.values():
        timed(stmt)  # warm the file cache and the bytecode
    times: dict[str, list[float]] = {name: [] for name in SIDES}
    for _ in range(args.rounds):
        for name, stmt in SIDES.items():
            times[name].append(timed(stmt))
    med = {name: statistics.median(v) for name, v in times.items()}
    for name, v in times.items():
        print(f"{name:18} median {med[name] * 1e3:7.1f} ms   (min {min(v) * 1e3:.1f}, max {max(v) * 1e3:.1f})")
    ratio = med["sutram"] / med["langgraph sqlite"]
    print(f"Sutram/peer import time: {ratio:.2f}x (goal: <= 1.1x)")
    ours, theirs = modules(SIDES["sutram"]), modules(SIDES["langgraph sqlite"])
    extra = sorted(((k, v) for k, v in ours.items() if k not in theirs), key=lambda kv: -kv[1])[:8]
    print("loaded by Sutram only (self time): " + ", ".join(f"{k} {v / 1e3:.1f} ms" for k, v in extra))
    if args.json:
        args.json.write_text(json.dumps({"median_s": med, "ratio": ratio, "sutram_only_ms": dict(extra)}, indent=2))


if __name__ == "__main__":
    main()
