"""A LlamaIndex FunctionAgent that remembers a user's preference across two processes.

    python cookbook/llamaindex_agent_memory.py

``SutramMemory.from_defaults(session_id=..., user_id=..., tenant=...)`` is LlamaIndex's
``Memory`` with its chat history, facts and episodes in Sutram's database (SUTRAM_URL,
default ./.sutram/sutram.db). This recipe runs the agent twice, each time in a fresh Python
process: on Monday the user states a preference; on Friday, in a new session, the agent
recalls it. Offline it uses a fake LLM that answers from the facts memory hands it; set
OPENAI_API_KEY (and install llama-index-llms-openai) for a real one.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def llm() -> object:
    if os.environ.get("OPENAI_API_KEY"):
        try:
            from llama_index.llms.openai import OpenAI

            return OpenAI(model="gpt-4o-mini")
        except ImportError:
            print("OPENAI_API_KEY is set but llama-index-llms-openai is not installed; using the fake LLM")
    from sutram_adapters.demo.fake_llama_index import RecallLLM

    return RecallLLM()


async def session(session_id: str, text: str) -> None:
    from llama_index.core.agent.workflow import FunctionAgent

    from sutram_adapters.llama_index import SutramMemory

    memory = SutramMemory.from_defaults(session_id=session_id, user_id="alice", tenant="acme")
    agent = FunctionAgent(tools=[], llm=llm(), system_prompt="You are a helpful barista.")
    reply = await agent.run(text, memory=memory)
    print(f"[{session_id}, pid {os.getpid()}] user: {text}")
    print(f"[{session_id}, pid {os.getpid()}] agent: {reply}")


def main() -> None:
    if len(sys.argv) == 3:  # one session, in this process
        asyncio.run(session(sys.argv[1], sys.argv[2]))
        return
    for session_id, text in [("monday", "I take my coffee as a flat white with oat milk."),
                             ("friday", "Surprise me: what should I order today?")]:
        subprocess.run([sys.executable, __file__, session_id, text], check=True)


if __name__ == "__main__":
    main()
