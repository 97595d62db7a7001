"""The results: a Markdown report, printed and written to ``bench/results/``."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench.loadgen import Summary

__all__ = ("RESULTS_DIR", "Row", "machine_line", "render", "write_results")

RESULTS_DIR = Path(__file__).resolve().parent / "results"

OTHER_LOAD_WARNING = 0.2  # cores

CLIENT_NAMES = {
    "raw": (
        "raw asyncio HTTP/1.1 on uvloop, one keep-alive connection per client (chosen over "
        "httpx.AsyncClient, which measured about 8x the client CPU per request here; "
        "`--client httpx` compares)"
    ),
    "httpx": "httpx.AsyncClient with a keep-alive pool",
}


@dataclass(frozen=True)
class Row:
    backend: str
    scenario: str  # its display name, e.g. "GET /api/v1/tasks?limit=50"
    summary: Summary
    topology: str = "monolith"  # "monolith" | "split"
    processes: tuple[str, ...] = ()  # the server processes' names, as in summary.server_cpu_each_s

    @property
    def other_cpu_s(self) -> float:
        """CPU time of everything but the server, PostgreSQL and the load client."""
        s = self.summary
        return max(0.0, s.machine_cpu_s - s.server_cpu_s - s.postgres_cpu_s - s.client_cpu_s)

    @property
    def rate(self) -> float:
        return self.summary.completed / self.summary.window_s if self.summary.window_s else 0.0


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def cpu_count() -> int:
    """What ``nproc`` prints: the CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def machine_line() -> str:
    return f"nproc {cpu_count()}, {cpu_model()}, Python {platform.python_version()}"


def render(
    rows: list[Row],
    *,
    started: datetime,
    concurrency: int,
    duration: float,
    warmup: float,
    client: str,
    notes: list[str],
    extra_sections: list[str],
) -> str:
    """The whole report: header line, the results table, the CPU table and notes."""
    header = (
        f"**Tessera load test** — {started.astimezone(UTC):%Y-%m-%d %H:%M UTC} — machine: {machine_line()} — "
        f"concurrency {concurrency}, duration {duration:g} s per scenario (after {warmup:g} s warm-up)"
    )
    table = [
        "| backend | topology | scenario | req/s | p50 ms | p99 ms | errors |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: |",
        *(
            f"| {r.backend} | {r.topology} | {r.scenario} | {r.rate:,.0f} | {r.summary.p50_ms:.1f} | "
            f"{r.summary.p99_ms:.1f} | {r.summary.errors} |"
            for r in rows
        ),
    ]
    cpu = [
        "| backend | topology | scenario | server ms/req | per process ms/req | postgres ms/req "
        "| client ms/req | cores busy | other load |",
        "| --- | --- | --- | ---: | --- | ---: | ---: | ---: | ---: |",
        *(
            f"| {r.backend} | {r.topology} | {r.scenario} | {_per_request(r.summary.server_cpu_s, r)} | "
            f"{_per_process(r)} | {_per_request(r.summary.postgres_cpu_s, r)} | "
            f"{_per_request(r.summary.client_cpu_s, r)} | "
            f"{_cores(r.summary.machine_cpu_s, r)} | {_cores(r.other_cpu_s, r)} |"
            for r in rows
        ),
    ]
    parts = [
        header,
        "",
        f"Load client: {CLIENT_NAMES.get(client, client)}, in its own process. "
        f"Client and server (and PostgreSQL) share the same {cpu_count()} cores, so these numbers "
        "are lower than a server with cores of its own would reach.",
        "",
        *table,
        "",
        "CPU time per request over the measured window, from /proc (server: the one process of the "
        "monolith, the sum of the three of the split; PostgreSQL: all its processes), and the machine's "
        "busy cores; other load is whatever else ran (it should be near 0):",
        "",
        *cpu,
    ]
    if comparison := _comparison(rows):
        parts += [
            "",
            "Split against monolith, per backend and scenario (throughput ratio; latency and "
            "server CPU added per request):",
            "",
            *comparison,
        ]
    if busiest := max(rows, key=lambda r: r.other_cpu_s / r.summary.window_s, default=None):
        other = busiest.other_cpu_s / busiest.summary.window_s
        if other > OTHER_LOAD_WARNING:
            notes = [
                f"other processes used up to {other:.2f} cores during a measured window "
                f"({busiest.backend} {busiest.topology}, {busiest.scenario}): "
                "numbers from a busy machine are low and noisy",
                *notes,
            ]
    if notes:
        parts += ["", "Notes:", "", *(f"- {note}" for note in notes)]
    for section in extra_sections:
        parts += ["", section.rstrip()]
    return "\n".join(parts) + "\n"


def _comparison(rows: list[Row]) -> list[str]:
    by_key = {(r.backend, r.topology, r.scenario): r for r in rows}
    lines = []
    for r in rows:
        if r.topology != "split" or (mono := by_key.get((r.backend, "monolith", r.scenario))) is None:
            continue
        if not (r.summary.completed and mono.summary.completed and mono.rate):
            continue
        cpu_added = (
            r.summary.server_cpu_s / r.summary.completed - mono.summary.server_cpu_s / mono.summary.completed
        ) * 1000
        p50_added = r.summary.p50_ms - mono.summary.p50_ms
        p99_added = r.summary.p99_ms - mono.summary.p99_ms
        lines.append(
            f"| {r.backend} | {r.scenario} | {r.rate / mono.rate:.2f}x | {p50_added:+.1f} | "
            f"{p99_added:+.1f} | {cpu_added:+.2f} |"
        )
    if not lines:
        return []
    return [
        "| backend | scenario | req/s split ÷ monolith | p50 added ms | p99 added ms "
        "| server CPU added ms/req |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
        *lines,
    ]


def _per_process(row: Row) -> str:
    each = row.summary.server_cpu_each_s
    if len(each) < 2 or len(row.processes) != len(each) or not row.summary.completed:
        return "-"
    return " / ".join(
        f"{name} {seconds * 1000 / row.summary.completed:.2f}"
        for name, seconds in zip(row.processes, each, strict=True)
    )


def _cores(seconds: float, row: Row) -> str:
    return f"{seconds / row.summary.window_s:.2f}" if row.summary.window_s else "-"


def _per_request(seconds: float, row: Row) -> str:
    if not row.summary.completed:
        return "-"
    return f"{seconds * 1000 / row.summary.completed:.2f}"


def write_results(report: str, started: datetime) -> tuple[Path, Path]:
    """``latest.md`` replaced, ``history.md`` appended with a dated copy."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    latest = RESULTS_DIR / "latest.md"
    history = RESULTS_DIR / "history.md"
    latest.write_text(report, encoding="utf-8")
    with history.open("a", encoding="utf-8") as handle:
        handle.write(f"\n## {started.astimezone(UTC):%Y-%m-%d %H:%M:%S UTC}\n\n{report}")
    return latest, history
