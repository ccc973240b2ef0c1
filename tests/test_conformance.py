"""LangGraph's own checkpointer conformance suite, unmodified, on every backend.

It runs through the async API, and through the sync API wrapped to async by a small
adapter (the suite only calls async methods).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.report import ProgressCallbacks

from sutram_adapters.langgraph import SutramSaver
from tests.conftest import make_url


class SyncThroughAsync(SutramSaver):
    """Exposes the sync methods as the async ones, so the suite exercises the sync path."""

    async def aget_tuple(self, config: Any) -> Any:
        return self.get_tuple(config)

    async def alist(self, config: Any, **kwargs: Any) -> AsyncIterator[Any]:
        for item in self.list(config, **kwargs):
            yield item

    async def aput(self, *args: Any) -> Any:
        return self.put(*args)

    async def aput_writes(self, *args: Any, **kwargs: Any) -> None:
        self.put_writes(*args, **kwargs)

    async def adelete_thread(self, thread_id: str) -> None:
        self.delete_thread(thread_id)

    async def adelete_for_runs(self, run_ids: Any) -> None:
        self.delete_for_runs(run_ids)

    async def acopy_thread(self, source: str, target: str) -> None:
        self.copy_thread(source, target)

    async def aprune(self, thread_ids: Any, *, strategy: str = "keep_latest") -> None:
        self.prune(thread_ids, strategy=strategy)


@pytest.fixture
def conformance_url(backend: str, tmp_path: Path) -> Iterator[str]:
    yield from make_url(backend, tmp_path)


@pytest.mark.parametrize("api", ["async", "sync"])
def test_conformance_suite_passes_in_full(conformance_url: str, api: str) -> None:
    cls = SutramSaver if api == "async" else SyncThroughAsync

    @checkpointer_test(name=f"Sutram-{api}")
    async def factory() -> AsyncIterator[SutramSaver]:
        async with cls.from_url(conformance_url) as saver:
            yield saver

    failures: list[str] = []

    def on_result(cap: str, name: str, passed: bool, error: str | None) -> None:
        if not passed:
            failures.append(f"{cap}.{name}: {error}")

    report = asyncio.run(validate(factory, progress=ProgressCallbacks(on_test_result=on_result)))
    counted = sum(r.tests_passed for r in report.results.values())
    assert report.passed_all(), "\n".join(failures)
    assert counted == 81, f"expected the 81 tests of conformance 0.0.2, ran {counted}"
