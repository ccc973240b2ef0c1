"""Public names are exported once, documented, and importable (httpx's test_exported_members)."""

from __future__ import annotations

import importlib
import inspect

import pytest

PACKAGES = [
    "sutram_core",
    "sutram_core.errors",
    "sutram_core.config",
    "sutram_core.tenancy",
    "sutram_core.checkpoints",
    "sutram_core.backends.sql",
    "sutram_core.traces",
    "sutram_core.memory",
    "sutram_core.runs",
    "sutram_adapters.langgraph",
    "sutram_adapters.langchain",
    "sutram_adapters.llama_index",
]


@pytest.mark.parametrize("name", PACKAGES)
def test_every_exported_name_exists_and_is_documented(name: str) -> None:
    module = importlib.import_module(name)
    assert len(module.__all__) == len(set(module.__all__)), "a name is exported twice"
    for export in module.__all__:
        obj = getattr(module, export)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert obj.__doc__, f"{name}.{export} has no docstring"


def test_core_imports_no_framework() -> None:
    import subprocess
    import sys

    code = ("import sys, sutram_core, sutram_core.backends.sql, sutram_core.checkpoints, sutram_core.traces, "
            "sutram_core.backends.sql.traces, sutram_core.memory, sutram_core.backends.sql.memory, "
            "sutram_core.backends.weaviate.translate, sutram_core.runs, sutram_core.backends.sql.runs; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('langgraph', 'langchain_core', 'llama_index')]; "
            "print(bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_saver_is_the_documented_import() -> None:
    from sutram_adapters.langgraph import SutramSaver

    assert SutramSaver.__module__ == "sutram_adapters.langgraph.saver"
