"""Build (once), start and stop a throwaway Jaeger for the OTLP export tests.

`make test` runs ``python integrations/jaeger/testserver.py start STATE_DIR``, exports what
it prints (``OTLP_URL QUERY_URL``; nothing: the Jaeger tests skip and say why) as
``SUTRAM_JAEGER``, runs the tests, and always runs ``... stop STATE_DIR``.

Jaeger (v2, an OpenTelemetry Collector distribution) is built from its Go module at the
pinned :data:`VERSION` (``cmd/jaeger``) by :func:`integrations.goserver.build`. It runs with
in-memory storage, an OTLP receiver (HTTP and gRPC) and the query service (whose
``/api/v3`` answers in OTLP JSON), all on free loopback ports; its own metrics are off.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import goserver

VERSION = "v1.76.0"
MODULE = "github.com/jaegertracing/jaeger"

CONFIG = """\
service:
  extensions: [jaeger_storage, jaeger_query, healthcheckv2]
  pipelines:
    traces:
      receivers: [otlp]
      processors: []
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: warn
extensions:
  healthcheckv2:
    use_v2: true
    http:
      endpoint: 127.0.0.1:{health}
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 100000
  jaeger_query:
    storage:
      traces: memstore
    http:
      endpoint: 127.0.0.1:{query}
    grpc:
      endpoint: 127.0.0.1:{query_grpc}
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:{otlp_http}
      grpc:
        endpoint: 127.0.0.1:{otlp_grpc}
exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
"""


def binary() -> Path | None:
    return goserver.build("jaeger", MODULE, VERSION, "cmd/jaeger")


def start(state: Path) -> str:
    """Start a Jaeger with its config in ``state``; return ``"OTLP_URL QUERY_URL"`` ("" when none can run).
    Started again on the same ``state`` (after :func:`goserver.halt`), it listens on the same ports."""
    exe = binary()
    if exe is None:
        return ""
    state.mkdir(parents=True, exist_ok=True)
    saved = state / "ports.json"
    if saved.exists():
        ports = json.loads(saved.read_text())
    else:
        ports = {name: goserver.free_port() for name in ("health", "query", "query_grpc", "otlp_http", "otlp_grpc")}
        saved.write_text(json.dumps(ports))
    (state / "config.yaml").write_text(CONFIG.format(**ports))
    if not goserver.launch("jaeger", [str(exe), "--config", str(state / "config.yaml")], state,
                           f"http://127.0.0.1:{ports['health']}/status", env={"GOMAXPROCS": "2"}):
        return ""
    return f"http://127.0.0.1:{ports['otlp_http']} http://127.0.0.1:{ports['query']}"


def stop(state: Path) -> None:
    """Stop the server of ``state`` and delete its files. In-memory storage: nothing to flush
    (and once its query API has answered, Jaeger takes over 10 s to stop on SIGTERM)."""
    goserver.stop(state, grace=0.5)


if __name__ == "__main__":
    goserver.main(binary, start, stop)
