"""Build (once) and run the Go servers the test suite talks to: Weaviate and Jaeger.

Neither ships in a package registry here, but both are Go programs published as Go
modules. :func:`build` fetches the pinned module version through the Go module proxy and
builds one program of it as the main module (so the module's own ``replace`` directives
apply, which ``go install pkg@version`` refuses) into ``$SUTRAM_CACHE`` (default
``~/.cache/sutram``), outside the repo; later runs reuse the binary. :func:`launch` starts
it on loopback with its files in a state folder and waits until it answers;
:func:`stop` stops it and removes the folder.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path


def cache_dir(name: str, version: str) -> Path:
    """The folder that holds ``name`` built at ``version``."""
    return Path(os.environ.get("SUTRAM_CACHE") or Path.home() / ".cache" / "sutram") / f"{name}-{version}"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def build(name: str, module: str, version: str, program: str) -> Path | None:
    """The binary of ``module/program`` at ``version``, built on first use; None (with the
    reason on stderr) when it cannot be."""
    target = cache_dir(name, version) / Path(program).name
    if target.exists():
        return target
    go = shutil.which("go") or next((p for p in ("/usr/local/go/bin/go",) if Path(p).exists()), None)
    if go is None:
        print(f"{name}: no Go toolchain to build {module}/{program}@{version}: the {name} tests skip", file=sys.stderr)
        return None
    target.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    print(f"{name}: building {module}/{program}@{version} into {target.parent} (once; several minutes)",
          file=sys.stderr)
    env = {**os.environ, "GOFLAGS": "-buildvcs=false -mod=mod", "CGO_ENABLED": "0"}
    fetched = subprocess.run([go, "mod", "download", "-json", f"{module}@{version}"], env=env,
                             capture_output=True, text=True)
    if fetched.returncode != 0:
        print(f"{name}: the Go module proxy did not serve {module}@{version}, the {name} tests skip:\n"
              f"{fetched.stdout[-2000:]}{fetched.stderr[-2000:]}", file=sys.stderr)
        return None
    with tempfile.TemporaryDirectory(prefix=f"sutram-{name}-src-") as work:
        source = Path(work) / "src"
        shutil.copytree(json.loads(fetched.stdout)["Dir"], source)
        for folder, _, files in os.walk(source):  # the module cache is read-only
            os.chmod(folder, 0o755)
            for f in files:
                os.chmod(os.path.join(folder, f), 0o644)
        partial = target.with_suffix(".partial")
        done = subprocess.run([go, "build", "-trimpath", "-o", str(partial), f"./{program}"], cwd=source, env=env,
                              capture_output=True, text=True)
    if done.returncode != 0 or not partial.exists():
        print(f"{name}: the build failed, the {name} tests skip:\n{done.stderr[-2000:]}", file=sys.stderr)
        return None
    partial.rename(target)
    print(f"{name}: built in {time.monotonic() - started:.0f} s", file=sys.stderr)
    return target


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as r:
            return bool(r.status == 200)
    except OSError:
        return False


def launch(name: str, argv: Sequence[str], state: Path, ready_url: str, *, env: Mapping[str, str] | None = None,
           wait: float = 120.0) -> bool:
    """Start ``argv`` in its own process group, logging to ``state/server.log``; True once
    ``ready_url`` answers 200, False (and stopped) if it exits or stays silent."""
    log = open(state / "server.log", "ab")  # the server keeps writing to it after this returns
    proc = subprocess.Popen(list(argv), env={**os.environ, **(env or {})}, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True, cwd=state)
    (state / "pid").write_text(str(proc.pid))
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            print(f"{name}: the server exited ({proc.returncode}); see {state / 'server.log'}", file=sys.stderr)
            return False
        if answers(ready_url):
            return True
        time.sleep(0.3)
    print(f"{name}: the server did not answer within {wait:.0f} s", file=sys.stderr)
    stop(state)
    return False


def halt(state: Path, grace: float = 10.0, sig: int = signal.SIGTERM) -> None:
    """End the server running from ``state`` (``sig``, then SIGKILL after ``grace`` seconds)
    and keep its files, so that it can be started again on the same data and ports."""
    pid_file = state / "pid"
    if not pid_file.exists():
        return
    pid = int(pid_file.read_text())
    try:
        os.killpg(pid, sig)
        for _ in range(int(grace * 10)):
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
    pid_file.unlink(missing_ok=True)


def _reap(pid: int) -> None:
    """Collect the exit of ``pid`` when this process started it (a zombie still "exists")."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def stop(state: Path, grace: float = 10.0) -> None:
    """Stop the server running from ``state`` and remove its files."""
    halt(state, grace)
    shutil.rmtree(state, ignore_errors=True)


def main(binary: Callable[[], Path | None], start: Callable[[Path], str], stop: Callable[[Path], None]) -> None:
    """The command line of a server's ``testserver.py``: ``start|stop|build STATE_DIR``."""
    if len(sys.argv) != 3 or sys.argv[1] not in ("start", "stop", "build"):
        sys.exit("usage: testserver.py start|stop|build STATE_DIR")
    if sys.argv[1] == "build":
        sys.exit(0 if binary() else 1)
    if sys.argv[1] == "start":
        print(start(Path(sys.argv[2]).resolve()))
    else:
        stop(Path(sys.argv[2]).resolve())
