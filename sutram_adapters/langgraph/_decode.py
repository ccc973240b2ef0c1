"""Strict decoding of values written by LangGraph's JsonPlusSerializer.

LangGraph's own msgpack hook never fails: a type it cannot rebuild comes back as
``None`` or as its raw constructor arguments (langgraph 6970, 7066, 8388), and the graph
resumes on state that only looks loaded. This decoder understands the same encoding but
raises :class:`DecodeFailure` instead, so the saver can report the thread, channel and
type. Any other serializer is used as it is.

It is also the one allowlist between a stored row and code execution. A msgpack extension
names a ``module.attr`` and arguments; a permissive decoder imports and calls it, so anyone
able to write the database could run ``os.system`` or ``subprocess.Popen`` in every worker.
The rules, whatever the serializer's own settings:

* only classes are rebuilt, never functions or other callables;
* a class is rebuilt only when it is in LangGraph's ``SAFE_MSGPACK_TYPES`` or in the
  serializer's ``allowed_msgpack_modules`` (Sutram's default serializer allows nothing
  else: LangGraph's strict mode, but raising instead of returning the raw payload; an
  explicitly permissive serializer, ``allowed_msgpack_modules=True``, is honoured);
* a method is called only when it is in LangGraph's ``SAFE_MSGPACK_METHODS``.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Iterable
from typing import Any

import ormsgpack
from langgraph.checkpoint.serde.base import SerializerProtocol
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

try:  # private names of langgraph-checkpoint; without them we fall back to the serde
    from langgraph.checkpoint.serde._msgpack import SAFE_MSGPACK_METHODS, SAFE_MSGPACK_TYPES
    from langgraph.checkpoint.serde.jsonplus import _send_from_args
    from langgraph.checkpoint.serde.types import _DeltaSnapshot

    _STRICT_AVAILABLE = True
except ImportError:  # pragma: no cover - depends on the installed langgraph
    _STRICT_AVAILABLE = False

__all__ = ["DecodeFailure", "StrictDecoder", "default_serde", "graph_allowlist"]

_CTOR_SINGLE, _CTOR_POS, _CTOR_KW, _METHOD, _PYDANTIC_V1, _PYDANTIC_V2, _NUMPY, _DELTA = range(8)
_OPT = ormsgpack.OPT_NON_STR_KEYS


def default_serde(allowed_types: Iterable[tuple[str, ...] | type] = ()) -> JsonPlusSerializer:
    """Sutram's default serializer: LangGraph's ``JsonPlusSerializer`` that rebuilds only
    LangGraph's safe types and ``allowed_types`` (classes or ``(module, name)`` pairs)."""
    return JsonPlusSerializer(allowed_msgpack_modules=tuple(allowed_types) or None)


def graph_allowlist(graph: Any) -> set[tuple[str, ...]]:
    """The types a compiled graph's state, input, output, context and node schemas name,
    gathered the way LangGraph does under ``LANGGRAPH_STRICT_MSGPACK`` (empty when this
    LangGraph cannot say)."""
    try:
        from langgraph._internal._serde import build_serde_allowlist
    except ImportError:  # pragma: no cover - depends on the installed langgraph
        return set()
    builder = getattr(graph, "builder", None)
    schemas: list[Any] = []
    if builder is not None:
        schemas += [getattr(builder, a, None) for a in ("state_schema", "input_schema", "output_schema", "context_schema")]
        schemas += [getattr(node, "input_schema", None) for node in getattr(builder, "nodes", {}).values()]
    return build_serde_allowlist(schemas=[s for s in schemas if s is not None],
                                 channels=getattr(graph, "channels", None))


class DecodeFailure(Exception):
    """A stored value cannot be rebuilt; ``type_name`` names the type that failed."""

    def __init__(self, type_name: str, reason: str) -> None:
        self.type_name = type_name
        self.reason = reason
        super().__init__(f"{type_name}: {reason}")


class _NotInModule(DecodeFailure):
    """The module imports but has no such class (defined inside a function, or renamed)."""


class StrictDecoder:
    """Decode ``(type, bytes)`` pairs, raising :class:`DecodeFailure` on anything lossy."""

    def __init__(self, serde: SerializerProtocol) -> None:
        self.serde = serde
        self._strict = (
            _STRICT_AVAILABLE
            and isinstance(serde, JsonPlusSerializer)
            and not getattr(serde, "_custom_unpack_ext_hook", False)
        )
        self._allowed: Any = getattr(serde, "_allowed_msgpack_modules", True)
        self._classes: dict[tuple[str, str], Any] = {}
        # ormsgpack replaces an exception raised in an ext hook by a bare ValueError, so
        # the hook records the first failure here for loads() to re-raise.
        self._failure = threading.local()

    def loads(self, type_: str, data: bytes) -> Any:
        """Deserialize one stored value, raising :class:`DecodeFailure` rather than losing it."""
        if self._strict and type_ == "msgpack":
            self._failure.first = None
            try:
                return ormsgpack.unpackb(data, ext_hook=self._hook, option=_OPT)
            except Exception as exc:
                first = self._failure.first
                self._failure.first = None
                if first is not None:
                    raise first from None
                raise DecodeFailure("msgpack", f"{type(exc).__name__}: {exc}") from exc
        try:
            return self.serde.loads_typed((type_, data))
        except Exception as exc:
            raise DecodeFailure(type_, f"{type(exc).__name__}: {exc}") from exc

    def _class(self, module: str, name: str) -> Any:
        key = (module, name)
        cls = self._classes.get(key)
        if cls is None:
            allowed = self._allowed
            if not (key in SAFE_MSGPACK_TYPES or allowed is True or (allowed and key in allowed)):
                raise DecodeFailure(
                    f"{module}.{name}",
                    "the type is not allowed; allow it with "
                    f"SutramSaver(allowed_types=[({module!r}, {name!r})]) or the serializer's "
                    "allowed_msgpack_modules",
                )
            try:
                found = importlib.import_module(module)
            except Exception as exc:
                raise DecodeFailure(f"{module}.{name}", f"cannot import it ({type(exc).__name__}: {exc})") from exc
            if not hasattr(found, name):
                raise _NotInModule(f"{module}.{name}", f"module {module!r} has no {name!r} (a class defined inside "
                                   "a function cannot be imported: define it at module level)")
            cls = getattr(found, name)
            if not isinstance(cls, type) and key not in SAFE_MSGPACK_TYPES:  # re.compile is
                # a stored row must never name a function to call (os.system, eval, ...)
                raise DecodeFailure(f"{module}.{name}", "it is not a class; only classes are rebuilt")
            self._classes[key] = cls
        return cls

    def _hook(self, code: int, data: bytes) -> Any:
        try:
            return self._rebuild(code, data)
        except DecodeFailure as failure:
            if getattr(self._failure, "first", None) is None:
                self._failure.first = failure
            raise

    def _rebuild(self, code: int, data: bytes) -> Any:
        if code == _DELTA:
            return _DeltaSnapshot(ormsgpack.unpackb(data, ext_hook=self._hook, option=_OPT))
        if code == _NUMPY:
            value = self.serde._unpack_ext_hook(code, data)  # type: ignore[attr-defined]
            if value is None:
                raise DecodeFailure("numpy.ndarray", "the array cannot be rebuilt")
            return value
        tup = ormsgpack.unpackb(data, ext_hook=self._hook, option=_OPT)
        module, name = tup[0], tup[1]
        type_name = f"{module}.{name}"
        if code == _METHOD and (module, name, tup[3]) not in SAFE_MSGPACK_METHODS:
            raise DecodeFailure(f"{type_name}.{tup[3]}", "the method call is not allowed")
        try:
            cls = self._class(module, name)
        except _NotInModule:
            if code in (_PYDANTIC_V1, _PYDANTIC_V2) and isinstance(tup[2], dict):
                # an allowed pydantic model whose class no process can import (defined inside
                # a function): its fields, as LangGraph gives them, which the graph's state
                # schema validates back into the model; nothing is imported or called
                return tup[2]
            raise

        try:
            if code == _CTOR_SINGLE:
                return cls(tup[2])
            if code == _CTOR_POS:
                if module == "langgraph.types" and name == "Send":
                    return _send_from_args(tup[2])
                return cls(*tup[2])
            if code == _CTOR_KW:
                return cls(**tup[2])
            if code == _METHOD:
                return getattr(cls, tup[3])(tup[2])
            if code == _PYDANTIC_V1:
                try:
                    return cls(**tup[2])
                except Exception:
                    return cls.construct(**tup[2])
            if code == _PYDANTIC_V2:
                try:
                    return cls(**tup[2])
                except Exception:
                    return cls.model_construct(**tup[2])
        except Exception as exc:
            raise DecodeFailure(type_name, f"{type(exc).__name__}: {exc}") from exc
        raise DecodeFailure(type_name, f"unknown msgpack extension code {code}")
