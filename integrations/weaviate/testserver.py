"""Build (once), start and stop a throwaway Weaviate server for the test suite.

`make test` runs ``python integrations/weaviate/testserver.py start STATE_DIR``, exports
the URL it prints as ``SUTRAM_WEAVIATE_URL`` (nothing printed: the Weaviate tests skip and
say why), runs the tests, and always runs ``... stop STATE_DIR``.

Weaviate is a Go program published as a Go module; no package registry here ships its
binary. The first run builds ``cmd/weaviate-server`` at the pinned :data:`VERSION`
(:func:`integrations.goserver.build`) into ``$SUTRAM_CACHE`` (default ``~/.cache/sutram``),
outside the repo; later runs reuse that binary. The server listens on 127.0.0.1 only, on free ports
(HTTP, gRPC, and the cluster and Raft ports a single node still opens), with anonymous
access, no vectorizer module (Sutram sends its own vectors) and its data in the state
folder.
"""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import goserver

VERSION = "v1.38.0"
MODULE = "github.com/weaviate/weaviate"


def binary() -> Path | None:
    """The server binary, built on first use; None (with the reason on stderr) when it cannot be."""
    return goserver.build("weaviate", MODULE, VERSION, "cmd/weaviate-server")


def start(state: Path) -> str:
    """Start a server with its data in ``state``; return its URL ("" when none can run).

    A state folder that held a server (see :func:`kill`) is started again on the same
    ports and data, as a restarted server would be."""
    exe = binary()
    if exe is None:
        return ""
    state.mkdir(parents=True, exist_ok=True)
    known = state / "ports.json"
    ports: dict[str, int] = (json.loads(known.read_text()) if known.exists()
                             else {name: goserver.free_port() for name in ("http", "grpc", "gossip", "data", "raft", "raft_rpc")})
    known.write_text(json.dumps(ports))
    env = {
        "PERSISTENCE_DATA_PATH": str(state / "data"),
        "AUTHENTICATION_ANONYMOUS_ACCESS_ENABLED": "true",
        "DEFAULT_VECTORIZER_MODULE": "none",
        "ENABLE_MODULES": "",
        "DISABLE_TELEMETRY": "true",
        "CLUSTER_HOSTNAME": "node1",
        "CLUSTER_GOSSIP_BIND_PORT": str(ports["gossip"]),
        "CLUSTER_DATA_BIND_PORT": str(ports["data"]),
        "RAFT_PORT": str(ports["raft"]),
        "RAFT_INTERNAL_RPC_PORT": str(ports["raft_rpc"]),
        "RAFT_BOOTSTRAP_EXPECT": "1",
        "RAFT_JOIN": f"node1:{ports['raft']}",
        "GRPC_PORT": str(ports["grpc"]),
        "QUERY_DEFAULTS_LIMIT": "25",
        "LOG_LEVEL": "warning",
        "GOMAXPROCS": "2",
    }
    argv = [str(exe), "--host", "127.0.0.1", "--port", str(ports["http"]), "--scheme", "http"]
    if not goserver.launch("weaviate", argv, state, f"http://127.0.0.1:{ports['http']}/v1/.well-known/ready", env=env):
        return ""
    return f"http://127.0.0.1:{ports['http']}?grpc_port={ports['grpc']}"


def kill(state: Path, sig: int = signal.SIGTERM) -> None:
    """End the server of ``state`` (``sig`` first, SIGKILL after 10 s) and keep its data and
    ports, so :func:`start` can bring it back as it was."""
    goserver.halt(state, sig=sig)


def stop(state: Path) -> None:
    """End the server of ``state`` and delete its data."""
    goserver.stop(state)


if __name__ == "__main__":
    goserver.main(binary, start, stop)
