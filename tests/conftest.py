"""Shared fixtures: one real database per backend, fresh for each test.

SQLite: a file in the test's temporary folder. PostgreSQL: the server that ``make test``
starts (its URL in ``SUTRAM_TEST_PG_URL``), with a fresh schema per test. Without that
variable the PostgreSQL cases are skipped with the reason, which ``make test`` never does.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

PG_URL = os.environ.get("SUTRAM_TEST_PG_URL")
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
WEAVIATE_URL = os.environ.get("SUTRAM_WEAVIATE_URL")
NO_WEAVIATE = ("SUTRAM_WEAVIATE_URL is not set: `make test` starts a Weaviate built from its Go module (Go is "
               "needed); see integrations/weaviate/README.md to run these tests against one")
# memory lives in SQL or in Weaviate: the memory tests run on all three
MEMORY_BACKENDS = [*BACKENDS, pytest.param("weaviate", marks=pytest.mark.skipif(not WEAVIATE_URL, reason=NO_WEAVIATE))]


def _pg_schema_url(base: str, schema: str) -> str:
    sep = "&" if "?" in base else "?"
    # public stays on the path: pgvector's type lives there (the test server installs it once)
    return f"{base}{sep}options={quote(f'-csearch_path={schema},public')}"


def make_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """Yield a URL to an empty database of ``backend``; clean it up afterwards."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'sutram.db'}"
        return
    if not PG_URL:
        pytest.skip("SUTRAM_TEST_PG_URL is not set: run the suite with `make test`")
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield _pg_schema_url(PG_URL, schema)
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def db_url(backend: str, tmp_path: Path) -> Iterator[str]:
    yield from make_url(backend, tmp_path)


@pytest.fixture(params=MEMORY_BACKENDS)
def mem_backend(request: pytest.FixtureRequest) -> str:
    """A memory backend: sqlite, postgres and weaviate (``tests.memory_support``)."""
    return str(request.param)


@pytest.fixture
def mem_url(mem_backend: str, tmp_path: Path) -> Iterator[str]:
    """A URL to an empty memory database of ``mem_backend`` (a Weaviate collection of its own)."""
    from tests.memory_support import memory_url

    yield from memory_url(mem_backend, tmp_path)


@pytest.fixture
def sql_url(mem_backend: str, mem_url: str, tmp_path: Path) -> str:
    """The SQL database checkpoints and traces go to beside ``mem_url``'s memory: the same
    one for SQLite and PostgreSQL, a SQLite file beside Weaviate (memory in Weaviate, the
    rest in SQL, as deployed)."""
    return f"sqlite:///{tmp_path / 'beside-weaviate.db'}" if mem_backend == "weaviate" else mem_url


@pytest.fixture
def calls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The file every provider call of ``tests.durable_graph``'s models is appended to (a
    test counts calls across processes); no kill marker; spans spool under tmp_path."""
    log = tmp_path / "calls.log"
    monkeypatch.setenv("SUTRAM_TEST_CALL_LOG", str(log))
    monkeypatch.setenv("SUTRAM_TEST_KILL_MARKER", str(tmp_path / "no-kill"))
    monkeypatch.setenv("SUTRAM_SPOOL_DIR", str(tmp_path / "spool"))
    return log


# `make test` runs two pytest-xdist workers, one test file at a time each (--dist loadfile).
# The longest files start first, so that no worker is left alone with one at the end
# (the kill harness alone takes about four minutes).
_LONGEST_FIRST = ("test_kill_harness.py", "test_public_api.py", "test_bench_smoke.py", "test_llama_index_memory.py",
                  "test_weaviate_server.py", "test_memory_contract.py", "test_demo.py",
                  "test_cookbook.py", "test_differential.py",
                  "test_memory_quality.py", "test_faults.py", "test_multi_worker_recovery.py")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(_LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep their order
