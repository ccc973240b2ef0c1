"""A value that cannot be deserialized raises an error naming where it lives (langgraph
6970) instead of turning into None or into its raw payload; nothing is ever unpickled."""

from __future__ import annotations

import pickle
import sys
import textwrap
from pathlib import Path

import pytest
import sqlalchemy as sa

from sutram_adapters.langgraph import SutramSaver
from sutram_core.backends.sql.schema import checkpoint_blobs
from sutram_core.errors import CheckpointDecodeError
from tests.helpers import config, put


@pytest.fixture
def vanishing_module(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A module defining a dataclass and a pydantic model, importable until removed."""
    name = "sutram_vanishing_types"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent("""
        from dataclasses import dataclass
        from pydantic import BaseModel

        @dataclass
        class Order:
            sku: str
            qty: int

        class Profile(BaseModel):
            name: str
    """))
    sys.path.insert(0, str(tmp_path))
    module = __import__(name)
    yield module
    sys.modules.pop(name, None)
    if str(tmp_path) in sys.path:
        sys.path.remove(str(tmp_path))


def _remove(module: object, tmp_path: Path) -> None:
    name = module.__name__  # type: ignore[attr-defined]
    sys.modules.pop(name, None)
    (tmp_path / f"{name}.py").unlink()
    sys.path.remove(str(tmp_path))


@pytest.mark.parametrize("kind", ["Order", "Profile"])
def test_unimportable_type_raises_with_thread_channel_and_type(db_url: str, tmp_path: Path, vanishing_module: object, kind: str) -> None:
    cls = getattr(vanishing_module, kind)
    value = cls(sku="A1", qty=2) if kind == "Order" else cls(name="Ada")
    with SutramSaver.from_url(db_url, allowed_types=[cls]) as saver:
        put(saver, "t-orders", {"order": value, "note": "kept"})
        assert saver.get_tuple(config("t-orders")).checkpoint["channel_values"]["order"] == value  # type: ignore[union-attr]
        _remove(vanishing_module, tmp_path)
    with SutramSaver.from_url(db_url, allowed_types=[(cls.__module__, kind)]) as fresh:  # a new process
        with pytest.raises(CheckpointDecodeError) as err:
            fresh.get_tuple(config("t-orders"))
    e = err.value
    assert (e.thread_id, e.channel, e.type_name) == ("t-orders", "order", f"sutram_vanishing_types.{kind}")
    assert "t-orders" in str(e) and "order" in str(e) and kind in str(e)


def test_nested_unrebuildable_value_is_not_silently_replaced(db_url: str, tmp_path: Path, vanishing_module: object) -> None:
    order = vanishing_module.Order(sku="B2", qty=1)  # type: ignore[attr-defined]
    with SutramSaver.from_url(db_url, allowed_types=[type(order)]) as saver:
        put(saver, "t2", {"cart": {"items": [order], "total": 3}})
        _remove(vanishing_module, tmp_path)
        saver._decoder._classes.clear()  # the class cache of this process
        with pytest.raises(CheckpointDecodeError, match="cart"):
            saver.get_tuple(config("t2"))


class _Boom:
    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (Path("/nonexistent-sutram-marker").touch, ())


def test_pickled_rows_are_refused_never_unpickled(db_url: str) -> None:
    with SutramSaver.from_url(db_url) as saver:
        put(saver, "t3", {"x": [1]})  # a list: stored as a row of its own
        with saver.database.engine.begin() as conn:
            conn.execute(sa.update(checkpoint_blobs).values(type="pickle", data=pickle.dumps(_Boom())))
        with pytest.raises(CheckpointDecodeError, match="pickle"):
            saver.get_tuple(config("t3"))
    assert not Path("/nonexistent-sutram-marker").exists()


def test_strict_allowlist_clone_decodes_what_its_allowlist_allows(db_url: str, vanishing_module: object) -> None:
    from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

    order = vanishing_module.Order(sku="C3", qty=4)  # type: ignore[attr-defined]
    strict = SutramSaver(db_url, serde=JsonPlusSerializer(allowed_msgpack_modules=None))
    allowed = strict.with_allowlist([("sutram_vanishing_types", "Order")])
    assert allowed is not strict
    put(allowed, "t-strict", {"order": order})
    t = allowed.get_tuple(config("t-strict"))
    assert t is not None and t.checkpoint["channel_values"]["order"] == order
    with pytest.raises(CheckpointDecodeError, match="allowed_msgpack_modules"):
        strict.get_tuple(config("t-strict"))
    strict.close()
