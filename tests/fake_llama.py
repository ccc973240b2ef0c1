"""Fake LlamaIndex LLMs for the tests (shared with the demo and the cookbook)."""

from sutram_adapters.demo.fake_llama_index import RecallLLM, UsageFunctionCallingLLM

__all__ = ["RecallLLM", "UsageFunctionCallingLLM"]
