"""What telemetry costs: server CPU per GET with metrics, request logs and tracing off and on.

    .venv/bin/python -m bench.telemetry                 # 10 s per variant, twice each, interleaved
    .venv/bin/python -m bench.telemetry --duration 5 --rounds 1

One ``tessera serve`` (SQLite, one worker) per variant, seeded over the API, driven with
``GET /api/v1/tasks/{id}`` by the same load generator as ``python -m bench``. Variants:

- ``off``: ``metrics.enabled = false``, ``server.request_log = false``, no tracing;
- ``metrics``: metrics on (the default), request logs off;
- ``metrics+logs``: the default configuration (JSON request lines to a file);
- ``metrics+logs+tracing``: also ``OTEL_TRACES_EXPORTER=otlp`` with the default sampler
  (every request recorded), exporting over OTLP/HTTP to a local receiver that accepts and
  discards;
- ``... no SQL spans``: the same with ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=sqlalchemy``;
- ``... 1 in 10 sampled``: the same with every span, under ``parentbased_traceidratio`` at 0.1.

It reports server CPU per request (µs), the cost of each variant over ``off`` and its own
cost over the variant it adds to (tracing: over ``metrics+logs``), in µs and in % of the
GET's CPU with everything off, and writes ``bench/results/telemetry.md``. It also measures,
in this process, what the OpenTelemetry SDK alone spends on one span (record it, encode it
for OTLP): the floor under any traced request.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from bench.cli import drive
from bench.loadgen import Summary
from bench.report import RESULTS_DIR, machine_line
from bench.seed import seed
from bench.server import Backend, ServerProcess, free_port

__all__ = ("main",)

VARIANTS: dict[str, dict[str, str]] = {
    "off": {"TESSERA_METRICS__ENABLED": "false", "TESSERA_SERVER__REQUEST_LOG": "false"},
    "metrics": {"TESSERA_SERVER__REQUEST_LOG": "false"},
    "metrics+logs": {"TESSERA_SERVER__LOG_FORMAT": "json"},
    "metrics+logs+tracing": {
        "TESSERA_SERVER__LOG_FORMAT": "json",
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
    },
    "metrics+logs+tracing, no SQL spans": {
        "TESSERA_SERVER__LOG_FORMAT": "json",
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "sqlalchemy",
    },
    "metrics+logs+tracing, 1 in 10 sampled": {
        "TESSERA_SERVER__LOG_FORMAT": "json",
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": "0.1",
    },
}
TARGETS = {  # a variant's own cost, % of the GET's CPU with everything off (issue 11)
    "metrics": 5.0,
    "metrics+logs+tracing": 15.0,
    "metrics+logs+tracing, no SQL spans": 15.0,
}
ADDS_TO = {  # the variant each one adds to: its own cost is the difference
    "metrics": "off",
    "metrics+logs": "metrics",
    "metrics+logs+tracing": "metrics+logs",
    "metrics+logs+tracing, no SQL spans": "metrics+logs",
    "metrics+logs+tracing, 1 in 10 sampled": "metrics+logs",
}
CONCURRENCY = 16
TASKS = 200
WARMUP = 2.0


@dataclass
class Measured:
    variant: str
    cpu_us: list[float] = field(default_factory=list)  # server CPU per request, per round
    rates: list[float] = field(default_factory=list)

    @property
    def cpu(self) -> float:
        return statistics.median(self.cpu_us)

    @property
    def rate(self) -> float:
        return statistics.median(self.rates)


@contextmanager
def otlp_sink() -> Iterator[str]:
    """An OTLP/HTTP endpoint on loopback that accepts every export and keeps nothing."""

    class Sink(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", "0")))
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *_: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Sink)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


async def measure(variant: str, environment: dict[str, str], duration: float) -> Summary:
    slug = "".join(c if c.isalnum() else "-" for c in variant)
    data_dir = Path(tempfile.mkdtemp(prefix=f"tessera-bench-telemetry-{slug}-"))
    server = ServerProcess(Backend("sqlite"), data_dir, extra_environment=environment)
    try:
        await server.upgrade()
        await server.start()
        seeded = await seed(server.base_url, tasks=TASKS)
        load = argparse.Namespace(duration=duration, concurrency=CONCURRENCY, client="raw")
        return await drive(server, seeded, "get", load, warmup=WARMUP)
    finally:
        await server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def span_floor(spans: int = 20_000) -> dict[str, tuple[float, float]]:
    """µs the OpenTelemetry SDK spends on one span, by shape: (record it, encode it for OTLP).

    A server span with the attributes the ASGI instrumentation sets, and a query span with
    the SQLAlchemy instrumentation's; no HTTP and no instrumentation code around them.
    """
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
    from opentelemetry.trace import SpanKind

    ended: list[ReadableSpan] = []

    class Keep(SpanExporter):
        def export(self, batch: Any) -> SpanExportResult:
            ended.extend(batch)
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(Keep()))
    tracer = provider.get_tracer("bench")
    path = "/api/v1/tasks/0b1e2c3d-0000-4000-8000-000000000000"
    shapes = {
        "server span (13 attributes)": {
            "http.method": "GET",
            "http.scheme": "http",
            "http.flavor": "1.1",
            "http.target": path,
            "http.host": "127.0.0.1:8000",
            "http.server_name": "127.0.0.1:8000",
            "net.host.port": 8000,
            "http.url": f"http://127.0.0.1:8000{path}",
            "http.user_agent": "bench",
            "net.peer.ip": "127.0.0.1",
            "net.peer.port": 51234,
            "http.status_code": 200,
            "http.route": "/api/v1/tasks/{task_id}",
        },
        "query span (3 attributes)": {
            "db.statement": "SELECT tasks.id, tasks.title, task_labels.label FROM tasks "
            "LEFT OUTER JOIN task_labels ON tasks.id = task_labels.task_id WHERE tasks.id = ?",
            "db.system": "sqlite",
            "db.name": "tasks.db",
        },
    }
    floor: dict[str, tuple[float, float]] = {}
    for shape, attributes in shapes.items():
        began = time.perf_counter()
        for _ in range(spans):
            with tracer.start_as_current_span("span", kind=SpanKind.SERVER, attributes=attributes):
                pass
        record = (time.perf_counter() - began) / spans * 1e6
        batch = ended[-512:]
        began = time.perf_counter()
        for _ in range(10):
            encode_spans(batch).SerializeToString()
        encode = (time.perf_counter() - began) / (10 * len(batch)) * 1e6
        floor[shape] = (record, encode)
        ended.clear()
    provider.shutdown()
    return floor


def render(
    results: dict[str, Measured], floor: dict[str, tuple[float, float]], duration: float, rounds: int
) -> str:
    base = results["off"].cpu
    lines = [
        "### Telemetry: server CPU per request, off and on",
        "",
        f"{machine_line()}. `GET /api/v1/tasks/{{id}}`, SQLite, one worker, {CONCURRENCY} clients, "
        f"{duration:.0f} s per variant after {WARMUP:.0f} s warm-up, {rounds} interleaved round(s), "
        "median of rounds. Tracing exports every request (the default sampler; one variant samples "
        "1 in 10) over OTLP/HTTP to a local receiver.",
        "",
        "| variant | req/s | server CPU µs/req | added over off | its own cost (over) | own, % of off "
        "| target |",
        "|---|---:|---:|---:|---|---:|---|",
    ]
    for name, measured in results.items():
        added = measured.cpu - base
        own, over = (measured.cpu - results[ADDS_TO[name]].cpu, ADDS_TO[name]) if name in ADDS_TO else (0, "")
        target = TARGETS.get(name)
        verdict = (
            "-"
            if target is None
            else f"≤ {target:.0f} %: {'met' if own / base * 100 <= target else 'MISSED'}"
        )
        lines.append(
            f"| {name} | {measured.rate:,.0f} | {measured.cpu:,.0f} | {added:+,.0f} µs | "
            f"{f'{own:+,.0f} µs ({over})' if over else '-'} | {own / base * 100:+.1f} % | {verdict} |"
        )
    lines += [
        "",
        "What the OpenTelemetry SDK alone spends on one span, in this process (no HTTP, no instrumentation):",
        "",
        "| span | record µs | OTLP encode µs | together µs | % of off's GET |",
        "|---|---:|---:|---:|---:|",
    ]
    for shape, (record, encode) in floor.items():
        together = record + encode
        lines.append(
            f"| {shape} | {record:.1f} | {encode:.1f} | {together:.1f} | {together / base * 100:.1f} % |"
        )
    return "\n".join(lines) + "\n"


async def run(duration: float, rounds: int) -> str:
    results = {name: Measured(name) for name in VARIANTS}
    with otlp_sink() as endpoint:
        for round_ in range(rounds):
            for name, environment in VARIANTS.items():
                env = dict(environment)
                if "OTEL_TRACES_EXPORTER" in env:
                    env["OTEL_EXPORTER_OTLP_ENDPOINT"] = endpoint
                summary = await measure(name, env, duration)
                if summary.errors:
                    raise SystemExit(f"{name}: {summary.errors} errors: {summary.error_samples[:3]}")
                per_request = summary.server_cpu_s / summary.completed * 1e6
                results[name].cpu_us.append(per_request)
                results[name].rates.append(summary.completed / summary.window_s)
                print(
                    f"round {round_ + 1} {name:22} {summary.completed / summary.window_s:7,.0f} req/s "
                    f"{per_request:7,.0f} µs CPU/req",
                    file=sys.stderr,
                    flush=True,
                )
    return render(results, span_floor(), duration, rounds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.telemetry", description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds per variant")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds of every variant")
    args = parser.parse_args(argv)
    report = asyncio.run(run(args.duration, args.rounds))
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / "telemetry.md").write_text(report, encoding="utf-8")
    print(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
