"""A Weaviate that is down, restarting or unreachable: fail fast, typed, and say what to do.

The Weaviate client waits out an unreachable server by itself, retrying every gRPC read
for 1 + 2 + 4 + 8 + 16 + 32 s: over a minute per call, then a driver error. Sutram follows
the one policy its SQL stores follow instead (:mod:`sutram_core.backends.sql.transient`):
wait up to ``SUTRAM_DB_RETRY_SECONDS`` (5 s by default) for the server, then raise
:class:`~sutram_core.errors.DatabaseUnavailableError`, which the durable runner retries from
its checkpoint and pauses on. Before each backend call :func:`wait_until_reachable` looks
at the gRPC channel (a local check, no round trip, when it is connected), so a call made
while the server is away fails before it has written anything. The channel is opened with
a short reconnect backoff (:data:`CHANNEL_OPTIONS`), so it finds a restarted server within
a second, not after gRPC's default backoff of up to two minutes. A server that goes away
during a call (the check said connected) is caught by :func:`fail_fast` on the gRPC stub of
a client Sutram opened itself, before the client's minute of retries.

>>> classify(ConnectionRefusedError(111, "Connection refused")).__name__
'DatabaseUnavailableError'
>>> classify(KeyError("valid_to")).__name__
'StorageError'
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any, Concatenate, ParamSpec, TypeVar

from sutram_core.errors import DatabaseUnavailableError, StorageError, SutramError

__all__ = ["CHANNEL_OPTIONS", "classify", "fail_fast", "guarded", "retry_seconds", "wait_until_reachable"]

P = ParamSpec("P")
T = TypeVar("T")

# gRPC retries a lost connection after 1 s, backing off to 120 s; a server back after a
# restart would then wait that long to be used
CHANNEL_OPTIONS = [("grpc.initial_reconnect_backoff_ms", 100), ("grpc.min_reconnect_backoff_ms", 100),
                   ("grpc.max_reconnect_backoff_ms", 1000)]
_READY = 2  # grpc.ChannelConnectivity.READY's number in the channel's own state query
# what a server that is away, restarting or overloaded looks like through the client
_UNAVAILABLE_MARKS = ("unavailable", "failed to connect", "connection refused", "connect error", "connection reset",
                      "deadline exceeded", "timed out", "timeout", "retries", "503", "502", "504", "shutting down",
                      "not ready", "eof", "broken pipe")


def _grpc() -> Any:
    import grpc  # type: ignore[import-untyped]  # the client's own dependency, without stubs

    return grpc


def retry_seconds() -> float:
    """How long a call waits for an unreachable server (``SUTRAM_DB_RETRY_SECONDS``, as for SQL)."""
    return float(os.environ.get("SUTRAM_DB_RETRY_SECONDS", "5"))


def classify(error: BaseException) -> type[StorageError]:
    """:class:`DatabaseUnavailableError` for an error a later attempt can get past (the
    server away, restarting, overloaded, the connection dropped); else :class:`StorageError`."""
    grpc = _grpc()
    if isinstance(error, (ConnectionError, TimeoutError)):
        return DatabaseUnavailableError
    if isinstance(error, grpc.RpcError) and getattr(error, "code", None) is not None:
        code = error.code()
        if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
            return DatabaseUnavailableError
    module = type(error).__module__
    if module.startswith("httpx") or module.startswith("httpcore"):
        return DatabaseUnavailableError if "Status" not in type(error).__name__ else StorageError
    if module.startswith("weaviate"):
        name = type(error).__name__
        if name in ("WeaviateConnectionError", "WeaviateRetryError", "WeaviateTimeoutError",
                    "WeaviateGRPCUnavailableError", "WeaviateStartUpError", "WeaviateClosedClientError"):
            return DatabaseUnavailableError
        text = str(error).lower()
        if any(mark in text for mark in _UNAVAILABLE_MARKS):
            return DatabaseUnavailableError
    cause = error.__cause__ or error.__context__
    return classify(cause) if cause is not None and cause is not error else StorageError


def _unavailable(where: str, detail: str) -> DatabaseUnavailableError:
    return DatabaseUnavailableError(
        f"Weaviate at {where} is unreachable or restarting ({detail}). If this was a write and the server was "
        "away when it began, nothing of it was applied; one that failed part-way is completed, never duplicated, "
        "by repeating it. Start the server or check its URL and network, then try again (the durable runner "
        "retries from its checkpoint and pauses the run while this persists)")


def wait_until_reachable(client: Any, where: str, seconds: float | None = None) -> None:
    """Return once the client's gRPC channel is connected, waiting up to ``seconds``
    (default :func:`retry_seconds`); raise :class:`DatabaseUnavailableError` if it is not."""
    channel = getattr(getattr(client, "_connection", None), "_grpc_channel", None)
    if channel is None:
        return  # a client of another shape: its calls' own errors are classified
    state = getattr(getattr(channel, "_channel", None), "check_connectivity_state", None)
    if state is not None and state(False) == _READY:
        return
    grpc = _grpc()
    limit = retry_seconds() if seconds is None else seconds
    try:
        grpc.channel_ready_future(channel).result(timeout=limit)
    except grpc.FutureTimeoutError:
        raise _unavailable(where, f"no connection within {limit:g} s") from None


class _FailFastStub:
    """The client's gRPC stub, each call of which, when the server is unavailable, waits for
    it as :func:`wait_until_reachable` does and tries once more, instead of the client's
    minute of retries (which only retry ``UNAVAILABLE``, so the error raised here passes
    through them). Sutram's writes are safe to repeat (deterministic object ids)."""

    def __init__(self, stub: Any, client: Any, where: str) -> None:
        self._stub, self._client, self._where = stub, client, where

    def __getattr__(self, name: str) -> Any:
        call = getattr(self._stub, name)
        if not callable(call):
            return call
        grpc = _grpc()

        def once_more(*args: Any, **kwargs: Any) -> Any:
            try:
                return call(*args, **kwargs)
            except grpc.RpcError as exc:
                if getattr(exc, "code", None) is None or exc.code() != grpc.StatusCode.UNAVAILABLE:
                    raise
                wait_until_reachable(self._client, self._where)
                return call(*args, **kwargs)

        return once_more


def fail_fast(client: Any, where: str) -> None:
    """Make a client Sutram opened give up on an unreachable server within
    :func:`retry_seconds`, also when it goes away during a call (see :class:`_FailFastStub`)."""
    connection = getattr(client, "_connection", None)
    stub = getattr(connection, "_grpc_stub", None)
    if stub is not None and not isinstance(stub, _FailFastStub):
        connection._grpc_stub = _FailFastStub(stub, client, where)  # type: ignore[union-attr]


def guarded(method: Callable[Concatenate[Any, P], T]) -> Callable[Concatenate[Any, P], T]:
    """Run a backend method once the server is reachable; its driver errors become
    :class:`DatabaseUnavailableError` or :class:`StorageError` (Sutram's own pass through)."""

    @functools.wraps(method)
    def run(self: Any, /, *args: P.args, **kwargs: P.kwargs) -> T:
        wait_until_reachable(self.client, self.where)
        try:
            return method(self, *args, **kwargs)
        except SutramError:
            raise
        except Exception as exc:
            kind = classify(exc)
            if kind is DatabaseUnavailableError:
                raise _unavailable(self.where, str(exc).splitlines()[0][:300]) from exc
            raise StorageError(f"Weaviate at {self.where} failed: {exc}") from exc

    return run
