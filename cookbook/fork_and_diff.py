"""Fork a finished thread from any checkpoint, change something, and see what it changed.

    python cookbook/fork_and_diff.py

``runner.fork(thread_id, checkpoint_id, values=...)`` starts a new thread from a
checkpoint (with ``values`` applied as an update). When the fork runs, every call it
makes that the original thread made at the same place with the same inputs is answered
from the journal, at no cost; from the first call whose inputs differ, the calls of that
task are made anew. ``sutram diff THREAD_A THREAD_B`` shows how the state, the calls and the cost
diverged.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _research import graph

from sutram_adapters.cli import main as sutram
from sutram_adapters.langgraph import durable


def main() -> None:
    with durable(graph, tenant="acme") as runner:
        print("original thread:")
        runner.invoke({"question": "Should we open an office in Porto?"}, thread_id="office")
        history = runner.graph.get_state_history({"configurable": {"thread_id": "office"}})
        before_write = next(s for s in history if s.next == ("write",))
        print(f"fork at the checkpoint before 'write' ({before_write.config['configurable']['checkpoint_id']}), "
              "same state: everything replays")
        same = runner.fork("office", before_write.config["configurable"]["checkpoint_id"], new_thread_id="office-copy")
        runner.invoke(None, thread_id=same)
        before_research = next(s for s in runner.graph.get_state_history({"configurable": {"thread_id": "office"}})
                               if s.next == ("research",))
        print("fork at the checkpoint before 'research', written for another audience: the research calls "
              "replay, the write call is made anew")
        other = runner.fork("office", before_research.config["configurable"]["checkpoint_id"],
                            values={"audience": "the investors"}, new_thread_id="office-investors")
        runner.invoke(None, thread_id=other)
    for fork in (same, other):
        print(f"\n$ sutram diff office {fork} --tenant acme")
        sutram(["diff", "office", fork, "--tenant", "acme"])


if __name__ == "__main__":
    main()
