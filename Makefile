# Sutram: `make demo` runs the main job on the embedded SQLite default;
# `make test` starts a throwaway PostgreSQL (with pgvector) on 127.0.0.1, runs every
# test, and stops the server even when tests fail.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.sutram-installed
# pytest-xdist workers for `make test` (a file per worker at a time; 0 runs in one process)
TEST_WORKERS ?= 2

.PHONY: setup demo test test-lowest lint bench clean browser

# uv (from PyPI) installs the versions pip would in half the time (about 30 s against 63 s
# for a new .venv here); pip does it where uv cannot be installed or fails
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@{ $(PY) -m pip install -q uv && \
	   $(VENV)/bin/uv pip install -q --python $(PY) --compile-bytecode -e ".[dev]"; } || \
	 { $(PY) -m pip install -q --upgrade pip && $(PY) -m pip install -q -e ".[dev]"; }
	@touch $(STAMP)

setup: $(STAMP)

# the demo needs the memory extra (its runs are remembered), not the test tools
DEMO_STAMP := $(VENV)/.sutram-demo-installed
$(DEMO_STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@test -f $(STAMP) || $(PY) -m pip install -q -e ".[memory]"
	@touch $(DEMO_STAMP)

demo: $(DEMO_STAMP)
	$(VENV)/bin/sutram demo

lint: $(STAMP)
	$(VENV)/bin/ruff check sutram_core sutram_adapters tests bench integrations cookbook
	$(VENV)/bin/mypy --strict sutram_core

# the console's browser tests drive Debian's Chromium (Playwright's own browser download
# cannot work here) and check every page with axe-core from the npm registry, installed once
# into ~/.cache/sutram; where either cannot be installed those tests skip and say why
AXE_VERSION := 4.14.1
AXE_DIR := $(HOME)/.cache/sutram/axe-core-$(AXE_VERSION)
browser:
	@command -v chromium >/dev/null 2>&1 || [ ! -w /var/lib/dpkg ] || \
	{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
	echo "Debian's chromium could not be installed: the browser tests will skip"
	@test -f $(AXE_DIR)/node_modules/axe-core/axe.min.js || \
	{ mkdir -p $(AXE_DIR) && cd $(AXE_DIR) && npm install --no-audit --no-fund --silent axe-core@$(AXE_VERSION); } || \
	echo "axe-core could not be installed from npm: the accessibility test will skip"

# Weaviate and Jaeger are built once from their Go modules into ~/.cache/sutram
# (integrations/goserver.py); without Go their tests skip and say why
test: lint browser
	@state=$$(mktemp -d); wstate=$$(mktemp -d); jstate=$$(mktemp -d); \
	trap '$(PY) integrations/postgres/testserver.py stop "$$state"; $(PY) integrations/weaviate/testserver.py stop "$$wstate"; $(PY) integrations/jaeger/testserver.py stop "$$jstate"' EXIT INT TERM; \
	url=$$($(PY) integrations/postgres/testserver.py start "$$state") || exit 1; \
	echo "PostgreSQL for the tests: $$url"; \
	wurl=$$($(PY) integrations/weaviate/testserver.py start "$$wstate"); \
	echo "Weaviate for the tests: $${wurl:-none (its tests skip)}"; \
	jurl=$$($(PY) integrations/jaeger/testserver.py start "$$jstate"); \
	echo "Jaeger for the tests: $${jurl:-none (its tests skip)}"; \
	SUTRAM_TEST_PG_URL="$$url" SUTRAM_WEAVIATE_URL="$$wurl" SUTRAM_JAEGER="$$jurl" \
	SUTRAM_AXE_JS="$(AXE_DIR)/node_modules/axe-core/axe.min.js" $(PY) -m pytest -p no:cacheprovider \
		-n $(TEST_WORKERS) --dist loadfile --durations=30 $(PYTEST_ARGS)

# the declared dependency floors, proved: Sutram with each dependency (and the postgres
# extra's) at its lowest allowed version, in a fresh virtualenv, runs the LangGraph
# conformance suite and the adapter tests on SQLite and on a throwaway PostgreSQL
# (integrations/lowest/constraints.py; .ci/run runs it after make test)
LOWEST_VENV ?= .venv-lowest
LOWEST_TESTS := tests/test_conformance.py tests/test_langgraph_graphs.py tests/test_durable_runner.py \
	tests/test_tracing_langchain.py tests/test_call_journal.py tests/test_llm_journal.py
test-lowest: $(STAMP)
	rm -rf $(LOWEST_VENV) && $(PYTHON) -m venv $(LOWEST_VENV)
	$(PYTHON) integrations/lowest/constraints.py postgres > $(LOWEST_VENV)/floors.txt
	$(LOWEST_VENV)/bin/python -m pip install -q -c $(LOWEST_VENV)/floors.txt -e ".[postgres]" \
		pytest pytest-asyncio hypothesis "langgraph-checkpoint-conformance==0.0.2"
	$(LOWEST_VENV)/bin/python -m pip check
	@$(LOWEST_VENV)/bin/python -m pip freeze | grep -iE "^(sqlalchemy|langgraph|langgraph-checkpoint|langchain-core|ormsgpack|orjson|xxhash|psycopg)=="
	@state=$$(mktemp -d); trap '$(PY) integrations/postgres/testserver.py stop "$$state"' EXIT INT TERM; \
	url=$$($(PY) integrations/postgres/testserver.py start "$$state") || exit 1; \
	SUTRAM_TEST_PG_URL="$$url" $(LOWEST_VENV)/bin/python -m pytest -p no:cacheprovider -q $(LOWEST_TESTS)

# bench/durable.py runs DBOS beside the durable runner: installed here, not with the dev tools
DBOS_VERSION := 3.4.0
# llama-agents-dbos 0.7 (DBOS's runtime for LlamaIndex workflows) refuses DBOS 3: bench/durable_llama.py
# runs it beside durable_workflow in a virtualenv of its own with the DBOS it supports
LLAMA_DBOS_VENV := .venv-bench-llama
$(LLAMA_DBOS_VENV)/bin/python: pyproject.toml | $(STAMP)
	rm -rf $(LLAMA_DBOS_VENV) && $(PYTHON) -m venv $(LLAMA_DBOS_VENV)
	$(VENV)/bin/uv pip install -q --python $(LLAMA_DBOS_VENV)/bin/python -e ".[llama-index,postgres]" \
		"dbos==2.31.1" "llama-agents-dbos==0.7.0" || \
	$(LLAMA_DBOS_VENV)/bin/python -m pip install -q -e ".[llama-index,postgres]" "dbos==2.31.1" "llama-agents-dbos==0.7.0"
bench: $(STAMP)
	@$(PY) -m pip install -q "dbos==$(DBOS_VERSION)"
	@state=$$(mktemp -d); wstate=$$(mktemp -d); \
	trap '$(PY) integrations/postgres/testserver.py stop "$$state"; $(PY) integrations/weaviate/testserver.py stop "$$wstate"' EXIT INT TERM; \
	url=$$($(PY) integrations/postgres/testserver.py start "$$state") || exit 1; \
	SUTRAM_BENCH_PG_URL="$$url" $(PY) bench/checkpointer.py $(BENCH_ARGS); \
	$(PY) bench/tracing.py $(BENCH_ARGS); \
	wurl=$$($(PY) integrations/weaviate/testserver.py start "$$wstate"); \
	SUTRAM_BENCH_PG_URL="$$url" SUTRAM_BENCH_WEAVIATE_URL="$$wurl" $(PY) bench/memory.py; \
	SUTRAM_BENCH_PG_URL="$$url" $(PY) bench/durable.py; \
	$(MAKE) -s $(LLAMA_DBOS_VENV)/bin/python && SUTRAM_BENCH_PG_URL="$$url" $(LLAMA_DBOS_VENV)/bin/python bench/durable_llama.py; \
	SUTRAM_BENCH_PG_URL="$$url" $(PY) bench/console.py; \
	SUTRAM_BENCH_PG_URL="$$url" $(PY) bench/scale.py

clean:
	rm -rf $(VENV) $(LOWEST_VENV) $(LLAMA_DBOS_VENV) .sutram .pytest_cache .mypy_cache .ruff_cache .hypothesis
