"""Configuration by URL and tenant ids: bad input gets a typed error that says what to do."""

from __future__ import annotations

import pytest

from sutram_core.config import DEFAULT_URL, parse_url
from sutram_core.errors import ConfigurationError, InvalidCheckpointError, TenantError
from sutram_core.tenancy import resolve_tenant, validate_tenant


def test_default_url_is_a_sqlite_file_under_dot_sutram(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SUTRAM_URL", raising=False)
    parsed = parse_url()
    assert DEFAULT_URL == "sqlite:///.sutram/sutram.db"
    assert parsed.backend == "sqlite" and str(parsed.path) == ".sutram/sutram.db"
    assert parsed.options["synchronous"] == "NORMAL"


def test_sutram_url_environment_variable_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUTRAM_URL", "postgresql://u@h:5432/db")
    parsed = parse_url()
    assert parsed.backend == "postgresql"
    assert parsed.sqlalchemy_url == "postgresql+psycopg://u@h:5432/db"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://x/y", "unsupported database URL"),
        ("sqlite://relative.db", "three slashes"),
        ("sqlite:///:memory:", "needs a SQLite file"),
        ("sqlite:///a.db?synchronous=SOMETIMES", "not a SQLite setting"),
        ("sqlite:///a.db?cache=shared", "unknown SQLite URL options"),
    ],
)
def test_bad_urls_raise_configuration_error(url: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        parse_url(url)


def test_absolute_sqlite_path_and_full_sync() -> None:
    parsed = parse_url("sqlite:////var/data/app.db?synchronous=full")
    assert str(parsed.path) == "/var/data/app.db" and parsed.options["synchronous"] == "FULL"


@pytest.mark.parametrize("bad", ["", " acme", "a" * 129, "acme\n", 42, None, "tenant/one"])
def test_invalid_tenant_ids_are_refused(bad: object) -> None:
    with pytest.raises(TenantError):
        validate_tenant(bad)


def test_bound_tenant_refuses_another() -> None:
    assert resolve_tenant(None, None) == "default"
    assert resolve_tenant("acme", None) == "acme"
    assert resolve_tenant("acme", "acme") == "acme"
    with pytest.raises(TenantError, match="bound to tenant 'acme'"):
        resolve_tenant("acme", "globex")


def test_missing_thread_id_is_a_typed_error(tmp_path: object) -> None:
    from sutram_adapters.langgraph import SutramSaver

    with SutramSaver.from_url(f"sqlite:///{tmp_path}/c.db") as saver:
        with pytest.raises(InvalidCheckpointError, match="thread_id"):
            saver.get_tuple({"configurable": {}})
        with pytest.raises(InvalidCheckpointError, match="checkpoint_id"):
            saver.put_writes({"configurable": {"thread_id": "t"}}, [("a", 1)], "task")
        with pytest.raises(InvalidCheckpointError, match="prune strategy"):
            saver.prune(["t"], strategy="keep_some")


def test_non_json_metadata_is_refused_and_nothing_is_written(tmp_path: object) -> None:
    from sutram_adapters.langgraph import SutramSaver
    from tests.helpers import checkpoint, config

    with SutramSaver.from_url(f"sqlite:///{tmp_path}/m.db") as saver:
        with pytest.raises(InvalidCheckpointError, match="metadata must be JSON"):
            saver.put(config("t"), checkpoint({"x": 1}), {"step": 0, "odd": object()}, {"x": 1})
        assert saver.get_tuple(config("t")) is None
