"""Sutram's adapters: translations from a framework (or a person) to ``sutram_core``."""

__all__: list[str] = []
