"""The fake LlamaIndex LLM the tests use (shared with the demo and the cookbook)."""

from sutram_adapters.demo.fake_llama_index import UsageFunctionCallingLLM

__all__ = ["UsageFunctionCallingLLM"]
