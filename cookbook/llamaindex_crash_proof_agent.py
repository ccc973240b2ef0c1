"""A LlamaIndex agent's worker dies after it refunded an order; another process finishes the
run, and neither the refund nor the model call before it happens again.

    python cookbook/llamaindex_crash_proof_agent.py

The only change to the app is ``durable_workflow(agent)``. A child process runs a
``FunctionAgent`` with a ``refund_order`` tool and is SIGKILLed inside its second model
call (the model chose the tool, the refund went out, the model was asked for the answer).
This process then calls ``recover()``: once the dead worker's lease has expired, the run
is rebuilt from its journal of runtime ticks, the first model call and the refund are
answered from the call journal, and only the unfinished model call is made. LlamaIndex
alone would start the agent over: a second refund, and every call paid again.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.base.llms.types import ChatMessage

from sutram_adapters.demo.fake_llama_index import UsageFunctionCallingLLM
from sutram_adapters.llama_index import durable_workflow

LEASE = 2.0  # seconds; a dead worker's run can be taken over this long after its last heartbeat
_made = [0]


class ProviderLLM(UsageFunctionCallingLLM):
    """The fake provider: prints each call it really answers; the worker dies inside the
    call numbered SUTRAM_COOKBOOK_DIE_AT."""

    def _get_response_generator(self) -> Any:
        inner = super()._get_response_generator()

        def respond(messages: Sequence[ChatMessage], **kwargs: Any) -> Any:
            _made[0] += 1
            if str(_made[0]) == os.environ.get("SUTRAM_COOKBOOK_DIE_AT"):
                print(f"[pid {os.getpid()}] dying inside model call {_made[0]}", flush=True)
                os.kill(os.getpid(), signal.SIGKILL)
            print(f"[pid {os.getpid()}] model call made: {str(messages[-1].content)[:50]!r}", flush=True)
            return inner(messages, **kwargs)

        return respond


def refund_order(order_id: str = "A-1042") -> str:
    """Refund a customer's order."""
    print(f"[pid {os.getpid()}] refund of {order_id} made", flush=True)
    return f"refunded {order_id}"


def agent() -> FunctionAgent:
    return FunctionAgent(name="refunds", tools=[refund_order], llm=ProviderLLM(),
                         system_prompt="You handle refunds.", timeout=60)


async def worker(run_id: str) -> None:
    runner = durable_workflow(agent(), tenant="acme", lease_seconds=LEASE)
    await runner.run(run_id=run_id, user_msg="Please refund my order A-1042.")


async def main() -> None:
    run_id = f"refund-{os.getpid()}"
    print("worker: starting the agent (it will die inside its 2nd model call)")
    child = subprocess.run([sys.executable, __file__, "--worker", run_id],
                           env={**os.environ, "SUTRAM_COOKBOOK_DIE_AT": "2"})
    print(f"worker exited with {child.returncode} (-9: SIGKILL)")
    runner = durable_workflow(agent(), tenant="acme", lease_seconds=LEASE)
    print(f"recovery: run is {runner.ledger.get('acme', run_id).status.value}; waiting for its lease ...")
    started = time.monotonic()
    while not (resumed := await runner.recover()):
        await asyncio.sleep(0.2)
    run = resumed[0]
    print(f"recovery: {run.run_id} {run.status.value} after {run.attempts} attempts "
          f"({time.monotonic() - started:.1f} s of waiting); spend {run.spend.tokens} tokens, "
          f"${run.spend.cost_usd:.6f}")
    print("answer:", await runner.result(run_id))
    print(f"inspect it: sutram runs show {run_id} --tenant acme")
    runner.close()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        asyncio.run(worker(sys.argv[2]))
    else:
        asyncio.run(main())
