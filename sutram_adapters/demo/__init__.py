"""The ``sutram demo`` job: an agent killed mid-run and resumed from its checkpoint."""

from sutram_adapters.demo.run import run_demo

__all__ = ["run_demo"]
