"""The orchestrator: per backend, start a real server, seed it, drive each scenario, report."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import msgspec
from rich.console import Console
from rich.progress import Progress

from bench import profiling, rpc_latency
from bench.loadgen import Spec, Summary
from bench.report import RESULTS_DIR, Row, render, write_results
from bench.seed import Seeded, SeedError, seed
from bench.server import (
    POSTGRES_BENCH_URL,
    REPO_ROOT,
    Backend,
    ServerError,
    ServerProcess,
    SplitCluster,
    prepare_postgres,
)

__all__ = ("main",)

SCENARIOS = {
    "get": "GET /api/v1/tasks/{id}",
    "list": "GET /api/v1/tasks?limit=50",
    "create": "POST /api/v1/tasks",
}
PROFILED_SCENARIOS = ("get", "list")
BACKENDS = {"sqlite": Backend("sqlite"), "postgres": Backend("postgres", POSTGRES_BENCH_URL)}
TOPOLOGIES = ("monolith", "split")
# The split's processes in the order a public request passes them (per-process CPU columns).
SPLIT_PATH = ("gateway", "tasks", "identity")
WARMUP = 2.0
SEQUENTIAL_WARMUP = 1.0
SEED_DEADLINE = 180.0
SESSION_DEADLINE = 60.0
RPC_LATENCY_DEADLINE = 240.0
PROFILES_DIR = RESULTS_DIR / "profiles"


class Skipped(Exception):
    """A backend cannot be measured here (PostgreSQL not reachable); the message says why."""


@dataclass
class LatencyRun:
    """The per-call latency section, measured on one backend beside the load scenarios."""

    backend: str
    calls: int
    sequential_s: float  # the measured window of each concurrency-1 GET run
    get_rows: list[tuple[str, Summary]] = field(default_factory=list)
    timings: list[rpc_latency.Timing] = field(default_factory=list)

    def section(self) -> str | None:
        if not self.timings and not self.get_rows:
            return None
        return rpc_latency.render(self.timings, self.get_rows, backend=self.backend, calls=self.calls)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Load-test Tessera over loopback: a real server per backend, seeded over the API.",
    )
    parser.add_argument(
        "--suite",
        choices=("load", "events"),
        default="load",
        help="load: this harness (default); events: outbox -> bus -> inbox per bus backend, with the "
        "flags of `python -m bench.events` (see its --help)",
    )
    parser.add_argument("--backend", choices=("sqlite", "postgres", "all"), default="all")
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds per scenario")
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent clients")
    parser.add_argument(
        "--scenario",
        action="append",
        choices=tuple(SCENARIOS),
        help="repeatable; default: all (" + ", ".join(f"{k} = {v}" for k, v in SCENARIOS.items()) + ")",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also run the get and list scenarios against a server under pyinstrument",
    )
    parser.add_argument(
        "--client", choices=("raw", "httpx"), default="raw", help="load client (default: raw, cheapest)"
    )
    parser.add_argument("--tasks", type=int, default=500, help="tasks to seed for the main user")
    parser.add_argument(
        "--topology",
        choices=(*TOPOLOGIES, "all"),
        default="all",
        help="monolith: one `tessera serve`; split: a process per module and a gateway, "
        "driven through the gateway (default: all, side by side)",
    )
    parser.add_argument(
        "--latency-calls",
        type=int,
        default=2000,
        help="sequential identity.get_users calls, in-process and remote, for the added latency per "
        "remote call (measured on the first backend, with the split up; 0: skip that section)",
    )
    parser.add_argument(
        "--latency-duration",
        type=float,
        default=5.0,
        help="measured seconds of each concurrency-1 GET /api/v1/tasks/{id} run in that section",
    )
    parser.add_argument(
        "--keep-logs",
        type=Path,
        metavar="DIR",
        help="copy every server's log into DIR before its temporary data dir is removed",
    )
    args = parser.parse_args(argv)
    if args.duration <= 0 or args.concurrency <= 0 or args.tasks <= 0:
        parser.error("--duration, --concurrency and --tasks must be positive")
    if args.latency_calls < 0 or args.latency_duration <= 0:
        parser.error("--latency-calls must not be negative, --latency-duration must be positive")
    args.scenarios = [s for s in SCENARIOS if s in (args.scenario or SCENARIOS)]
    args.topologies = list(TOPOLOGIES) if args.topology == "all" else [args.topology]
    return args


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


async def drive(
    server: ServerProcess,
    seeded: Seeded,
    scenario: str,
    args: argparse.Namespace,
    *,
    profiled: bool = False,
    measured: list[ServerProcess] | None = None,
    concurrency: int | None = None,
    duration: float | None = None,
    warmup: float = WARMUP,
) -> Summary:
    """One scenario against ``server``, by the load generator in a process of its own.

    ``measured``: the processes whose CPU time to take (default: ``server``); a split's three.
    """
    duration = duration or args.duration
    spec = Spec(
        port=server.port,
        token=seeded.token,
        scenario=scenario,
        task_ids=seeded.task_ids,
        concurrency=concurrency or args.concurrency,
        warmup=warmup,
        duration=duration,
        client=args.client,
        server_pid=server.pid,
        signal_server=profiled,
        server_pids=[s.pid for s in measured] if measured else [],
    )
    loadgen = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.loadgen",
        cwd=REPO_ROOT,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(
            loadgen.communicate(msgspec.json.encode(spec)), warmup + duration + 60
        )
    except BaseException as exc:  # timed out, or the harness was interrupted
        with contextlib.suppress(ProcessLookupError):
            loadgen.kill()
        await loadgen.wait()
        if isinstance(exc, TimeoutError):
            raise ServerError(f"the load generator for {scenario} did not finish in time") from None
        raise
    if loadgen.returncode != 0:
        raise ServerError(f"the load generator failed:\n{err.decode(errors='replace')[-2000:]}")
    return msgspec.json.decode(out, type=Summary)


def progress(label: str, scenario: str, summary: Summary, suffix: str = "") -> None:
    rate = summary.completed / summary.window_s if summary.window_s else 0.0
    say(
        f"  {label:17} {SCENARIOS[scenario]:28} {rate:8,.0f} req/s  p50 {summary.p50_ms:6.1f} ms  "
        f"p99 {summary.p99_ms:6.1f} ms  errors {summary.errors}{suffix}"
    )


async def run_phase(
    backend: Backend,
    topology: str,
    args: argparse.Namespace,
    notes: list[str],
    sections: list[str],
    latency: LatencyRun | None,
) -> list[Row]:
    """One topology on one backend, in a fresh data dir (PostgreSQL: emptied schemas)."""
    if backend.name == "postgres" and (reason := await prepare_postgres()):
        raise Skipped(reason)
    label = f"{backend.name} {topology}"
    data_dir = Path(tempfile.mkdtemp(prefix=f"tessera-bench-{backend.name}-{topology}-"))
    try:
        if topology == "split":
            return await run_split(backend, data_dir, args, notes, latency)
        return await run_monolith(backend, data_dir, args, notes, sections, latency)
    except (ServerError, SeedError, TimeoutError) as exc:
        message = str(exc) or type(exc).__name__
        say(f"{label}: FAILED: {message}")
        notes.append(f"{label} FAILED: {message.splitlines()[0] if message else ''}")
        raise
    finally:
        if args.keep_logs:
            keep_logs(data_dir, args.keep_logs, f"{backend.name}-{topology}")
        shutil.rmtree(data_dir, ignore_errors=True)


def keep_logs(data_dir: Path, into: Path, prefix: str) -> None:
    into.mkdir(parents=True, exist_ok=True)
    for log in data_dir.glob("*.log"):
        shutil.copyfile(log, into / f"{prefix}-{log.name}")


async def run_monolith(
    backend: Backend,
    data_dir: Path,
    args: argparse.Namespace,
    notes: list[str],
    sections: list[str],
    latency: LatencyRun | None,
) -> list[Row]:
    """Every selected scenario against one ``tessera serve`` (and the profiled runs, if asked)."""
    label = f"{backend.name} monolith"
    rows: list[Row] = []
    server = ServerProcess(backend, data_dir)
    say(f"{label}: migrating, starting the server on 127.0.0.1:{server.port} ...")
    await server.upgrade()
    try:
        await server.start()
        seeded = await seed_over_api(label, server.base_url, args)
        for scenario in args.scenarios:
            summary = await drive(server, seeded, scenario, args)
            progress(label, scenario, summary)
            rows.append(Row(backend.name, SCENARIOS[scenario], summary))
            notes.extend(_error_notes(label, scenario, summary))
        if latency is not None and latency.backend == backend.name:
            summary = await drive_sequential(server, seeded, args, latency)
            progress(label, "get", summary, "  (concurrency 1)")
            latency.get_rows.append(("monolith", summary))
            notes.extend(_error_notes(f"{label} (concurrency 1)", "get", summary))
    finally:
        await server.stop()
    if args.profile:
        for scenario in (s for s in args.scenarios if s in PROFILED_SCENARIOS):
            sections.append(await profile_scenario(backend, data_dir, seeded, scenario, args))
    if problems := server.log_problems():
        notes.append(f"{label} server log warnings/errors: " + "; ".join(problems))
    return rows


async def run_split(
    backend: Backend,
    data_dir: Path,
    args: argparse.Namespace,
    notes: list[str],
    latency: LatencyRun | None,
) -> list[Row]:
    """Every selected scenario through the gateway of the split (a process per module + gateway)."""
    label = f"{backend.name} split"
    rows: list[Row] = []
    cluster = SplitCluster(backend, data_dir)
    ports = ", ".join(f"{group} :{server.port}" for group, server in cluster.servers.items())
    say(f"{label}: migrating, starting {len(cluster.servers)} processes ({ports}) ...")
    await cluster.upgrade()
    measured = [cluster.servers[group] for group in SPLIT_PATH]
    try:
        await cluster.start()
        gateway = cluster.gateway
        seeded = await seed_over_api(label, gateway.base_url, args)
        for scenario in args.scenarios:
            summary = await drive(gateway, seeded, scenario, args, measured=measured)
            progress(label, scenario, summary)
            rows.append(Row(backend.name, SCENARIOS[scenario], summary, "split", SPLIT_PATH))
            notes.extend(_error_notes(label, scenario, summary))
        if latency is not None and latency.backend == backend.name:
            await measure_latency(cluster, seeded, args, latency, notes)
    finally:
        await cluster.stop()
    if problems := cluster.log_problems():
        notes.append(f"{label} server log warnings/errors: " + "; ".join(problems))
    return rows


async def seed_over_api(label: str, base_url: str, args: argparse.Namespace) -> Seeded:
    began = time.monotonic()
    with Progress(console=Console(stderr=True), transient=True) as bar:
        seeding = bar.add_task(f"{label}: seeding", total=args.tasks)
        created = functools.partial(bar.advance, seeding)
        seeded = await asyncio.wait_for(seed(base_url, tasks=args.tasks, on_created=created), SEED_DEADLINE)
    say(
        f"{label}: seeded 2 users, {len(seeded.task_ids)} tasks "
        f"({seeded.assigned} assigned to the second user) in {time.monotonic() - began:.1f} s"
    )
    return seeded


async def drive_sequential(
    server: ServerProcess,
    seeded: Seeded,
    args: argparse.Namespace,
    latency: LatencyRun,
    measured: list[ServerProcess] | None = None,
) -> Summary:
    """GET /api/v1/tasks/{id}, one request at a time."""
    return await drive(
        server,
        seeded,
        "get",
        args,
        measured=measured,
        concurrency=1,
        duration=latency.sequential_s,
        warmup=SEQUENTIAL_WARMUP,
    )


async def measure_latency(
    cluster: SplitCluster, seeded: Seeded, args: argparse.Namespace, latency: LatencyRun, notes: list[str]
) -> None:
    """With the split up: sequential GETs by route, then the per-call timings of bench.rpc_latency."""
    label = f"{latency.backend} split"
    measured = [cluster.servers[group] for group in SPLIT_PATH]
    routes = (
        ("tasks process directly (+ RPC hop)", cluster.servers["tasks"]),
        ("through the gateway (+ proxy hop + RPC hop)", cluster.gateway),
    )
    for name, server in routes:
        summary = await drive_sequential(server, seeded, args, latency, measured)
        progress(label, "get", summary, f"  (concurrency 1, {name})")
        latency.get_rows.append((name, summary))
        notes.extend(_error_notes(f"{label} (concurrency 1, {name})", "get", summary))
    if not latency.calls:
        return
    say(f"{label}: timing {latency.calls} sequential get_users calls of each kind ...")
    spec = rpc_latency.Spec(
        user_ids=[seeded.user_id, seeded.other_user_id],
        calls=latency.calls,
        warmup=min(200, latency.calls),
        identity_url=cluster.servers["identity"].base_url,
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.rpc_latency",
        cwd=REPO_ROOT,
        env=cluster.environment,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(
            process.communicate(msgspec.json.encode(spec)), RPC_LATENCY_DEADLINE
        )
    except BaseException as exc:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        if isinstance(exc, TimeoutError):
            raise ServerError("bench.rpc_latency did not finish in time") from None
        raise
    if process.returncode != 0:
        raise ServerError(f"bench.rpc_latency failed:\n{err.decode(errors='replace')[-2000:]}")
    latency.timings = msgspec.json.decode(out, type=list[rpc_latency.Timing])
    for timing in latency.timings:
        say(f"  {timing.name:62} p50 {timing.p50_ms:7.3f} ms  p99 {timing.p99_ms:7.3f} ms")


async def profile_scenario(
    backend: Backend, data_dir: Path, seeded: Seeded, scenario: str, args: argparse.Namespace
) -> str:
    """One scenario against a fresh server process on the same data, under pyinstrument."""
    PROFILES_DIR.mkdir(parents=True, exist_ok=True)
    base = PROFILES_DIR / f"{backend.name}-{scenario}"
    session_path = base.with_suffix(profiling.SESSION_SUFFIX)
    session_path.unlink(missing_ok=True)
    server = ServerProcess(backend, data_dir)
    try:
        await server.start([sys.executable, "-m", "bench.profiling", str(base), "serve"])
        summary = await drive(server, seeded, scenario, args, profiled=True)
        progress(backend.name, scenario, summary, "  (under pyinstrument)")
        deadline = time.monotonic() + SESSION_DEADLINE
        while not session_path.exists():
            if time.monotonic() > deadline:
                raise ServerError(f"the profiled server wrote no {session_path.name}:\n{server.log_tail()}")
            await asyncio.sleep(0.2)
    finally:
        await server.stop()
    html_path = base.with_suffix(".html")
    profiling.render_html(session_path, html_path)
    hot = profiling.summarize(session_path)
    rate = summary.completed / summary.window_s if summary.window_s else 0.0
    title = (
        f"Profile: {backend.name}, {SCENARIOS[scenario]} — {rate:,.0f} req/s under the profiler; "
        f"{html_path.relative_to(REPO_ROOT)}"
    )
    say(f"  profile written: {html_path.relative_to(REPO_ROOT)}")
    return hot.markdown(title)


def _error_notes(label: str, scenario: str, summary: Summary) -> list[str]:
    notes = []
    if summary.errors:
        statuses = ", ".join(f"{status}x{n}" for status, n in sorted(summary.statuses.items()))
        samples = " | ".join(summary.error_samples)
        notes.append(f"{label} {SCENARIOS[scenario]}: {summary.errors} errors ({statuses}); e.g. {samples}")
    if summary.nameless:
        notes.append(
            f"{label} {SCENARIOS[scenario]}: {summary.nameless} answers were 2xx but named a person "
            "without a display name (tasks served while identity did not answer)"
        )
    return notes


def _row_order(row: Row) -> tuple[int, int, int]:
    scenarios = list(SCENARIOS.values())
    return (list(BACKENDS).index(row.backend), scenarios.index(row.scenario), TOPOLOGIES.index(row.topology))


async def run(args: argparse.Namespace) -> int:
    started = datetime.now(UTC)
    if (main_task := asyncio.current_task()) is not None:
        # SIGTERM, like Ctrl-C, cancels the run, so every `finally` stops what it started.
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
    notes: list[str] = []
    sections: list[str] = []
    rows: list[Row] = []
    failed = False
    names = ("sqlite", "postgres") if args.backend == "all" else (args.backend,)
    latency = None
    if "split" in args.topologies:
        latency = LatencyRun(names[0], args.latency_calls, args.latency_duration)
    for name in names:
        for topology in args.topologies:
            try:
                rows += await run_phase(BACKENDS[name], topology, args, notes, sections, latency)
            except Skipped as skipped:
                say(f"{name}: skipped: {skipped}")
                notes.append(f"{name} skipped: {skipped}")
                break
            except (ServerError, SeedError, TimeoutError):
                failed = True
    rows.sort(key=_row_order)
    if latency is not None and (section := latency.section()):
        sections.insert(0, section)
    if args.profile:
        notes.append(
            "Profiles (monolith only): pyinstrument samples the server's main thread for exactly the "
            "measured window (the profiled runs' req/s are lower because of the profiler and are not "
            "in the table); aiosqlite's worker thread is not sampled."
        )
    report = render(
        rows,
        started=started,
        concurrency=args.concurrency,
        duration=args.duration,
        warmup=WARMUP,
        client=args.client,
        notes=notes,
        extra_sections=sections,
    )
    print("\n" + report, end="", flush=True)
    latest, history = write_results(report, started)
    say(f"written: {latest.relative_to(REPO_ROOT)}, appended to {history.relative_to(REPO_ROOT)}")
    return 1 if failed else 0


def _suite(argv: list[str]) -> tuple[str, list[str]]:
    """``--suite NAME`` (or ``--suite=NAME``) taken out of ``argv``: the suite and the other arguments."""
    for i, arg in enumerate(argv):
        if arg == "--suite" and i + 1 < len(argv):
            return argv[i + 1], argv[:i] + argv[i + 2 :]
        if arg.startswith("--suite="):
            return arg.partition("=")[2], argv[:i] + argv[i + 1 :]
    return "load", argv


def main(argv: list[str] | None = None) -> int:
    suite, rest = _suite(sys.argv[1:] if argv is None else argv)
    if suite == "events":  # its own flags: python -m bench.events --help
        from bench import events

        return events.main(rest)
    args = parse_args(argv)
    if args.profile and not profiling.available():
        say(profiling.install_hint())
        return 2
    try:
        return asyncio.run(run(args))
    except (KeyboardInterrupt, asyncio.CancelledError):
        say("interrupted: servers stopped, nothing written")
        return 130
