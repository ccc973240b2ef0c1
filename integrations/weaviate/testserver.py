"""Build (once), start and stop a throwaway Weaviate server for the test suite.

`make test` runs ``python integrations/weaviate/testserver.py start STATE_DIR``, exports
the URL it prints as ``SUTRAM_WEAVIATE_URL`` (nothing printed: the Weaviate tests skip and
say why), runs the tests, and always runs ``... stop STATE_DIR``.

Weaviate is a Go program published as a Go module; no package registry here ships its
binary. The first run builds ``cmd/weaviate-server`` at the pinned :data:`VERSION` with
``go install`` into ``$SUTRAM_CACHE`` (default ``~/.cache/sutram``), outside the repo;
later runs reuse that binary. The server listens on 127.0.0.1 only, on free ports
(HTTP, gRPC, and the cluster and Raft ports a single node still opens), with anonymous
access, no vectorizer module (Sutram sends its own vectors) and its data in the state
folder.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

VERSION = "v1.38.0"
MODULE = "github.com/weaviate/weaviate/cmd/weaviate-server"


def cache_dir() -> Path:
    return Path(os.environ.get("SUTRAM_CACHE") or Path.home() / ".cache" / "sutram") / f"weaviate-{VERSION}"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def binary() -> Path | None:
    """The server binary, built on first use; None (with the reason on stderr) when it cannot be."""
    target = cache_dir() / "weaviate-server"
    if target.exists():
        return target
    go = shutil.which("go")
    if go is None:
        print(f"weaviate: no Go toolchain to build {MODULE}@{VERSION}: the Weaviate tests skip", file=sys.stderr)
        return None
    target.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    print(f"weaviate: building {MODULE}@{VERSION} into {target.parent} (once; several minutes)", file=sys.stderr)
    env = {**os.environ, "GOBIN": str(target.parent), "GOFLAGS": "-buildvcs=false", "CGO_ENABLED": "0"}
    done = subprocess.run([go, "install", f"{MODULE}@{VERSION}"], env=env, capture_output=True, text=True)
    if done.returncode != 0 or not target.exists():
        print(f"weaviate: the build failed, the Weaviate tests skip:\n{done.stderr[-2000:]}", file=sys.stderr)
        return None
    print(f"weaviate: built in {time.monotonic() - started:.0f} s", file=sys.stderr)
    return target


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/.well-known/ready", timeout=1) as r:
            return bool(r.status == 200)
    except OSError:
        return False


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
                             else {name: _free_port() for name in ("http", "grpc", "gossip", "data", "raft", "raft_rpc")})
    env = {
        **os.environ,
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
    log = open(state / "server.log", "ab")  # the server keeps writing to it after this returns
    proc = subprocess.Popen([str(exe), "--host", "127.0.0.1", "--port", str(ports["http"]), "--scheme", "http"],
                            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    (state / "pid").write_text(str(proc.pid))
    known.write_text(json.dumps(ports))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            print(f"weaviate: the server exited ({proc.returncode}); see {state / 'server.log'}", file=sys.stderr)
            return ""
        if _ready(ports["http"]):
            return f"http://127.0.0.1:{ports['http']}?grpc_port={ports['grpc']}"
        time.sleep(0.3)
    print("weaviate: the server did not answer within 120 s", file=sys.stderr)
    stop(state)
    return ""


def kill(state: Path, sig: int = signal.SIGTERM) -> None:
    """End the server of ``state`` (``sig`` first, SIGKILL after 10 s) and keep its data and
    ports, so :func:`start` can bring it back as it was."""
    pid_file = state / "pid"
    if not pid_file.exists():
        return
    pid = int(pid_file.read_text())
    try:
        os.killpg(pid, sig)
        for _ in range(100):
            _reap(pid)
            os.killpg(pid, 0)
            time.sleep(0.1)
        os.killpg(pid, signal.SIGKILL)
        for _ in range(50):
            _reap(pid)
            os.killpg(pid, 0)
            time.sleep(0.1)
    except ProcessLookupError:
        pass
    pid_file.unlink()


def _reap(pid: int) -> None:
    # a server started by this process stays a zombie (still signalable) until waited for
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def stop(state: Path) -> None:
    """End the server of ``state`` and delete its data."""
    kill(state)
    shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("start", "stop", "build"):
        sys.exit("usage: testserver.py start|stop|build STATE_DIR")
    if sys.argv[1] == "build":
        sys.exit(0 if binary() else 1)
    if sys.argv[1] == "start":
        print(start(Path(sys.argv[2]).resolve()))
    else:
        stop(Path(sys.argv[2]).resolve())
