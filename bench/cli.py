"""The orchestrator: per backend, start a real server, seed it, drive each scenario, report."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import signal
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import msgspec

from bench import profiling
from bench.loadgen import Spec, Summary
from bench.report import RESULTS_DIR, Row, render, write_results
from bench.seed import Seeded, SeedError, seed
from bench.server import (
    POSTGRES_BENCH_URL,
    REPO_ROOT,
    Backend,
    ServerError,
    ServerProcess,
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
WARMUP = 2.0
SEED_DEADLINE = 180.0
SESSION_DEADLINE = 60.0
PROFILES_DIR = RESULTS_DIR / "profiles"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Load-test Tessera over loopback: a real server per backend, seeded over the API.",
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
    args = parser.parse_args(argv)
    if args.duration <= 0 or args.concurrency <= 0 or args.tasks <= 0:
        parser.error("--duration, --concurrency and --tasks must be positive")
    args.scenarios = [s for s in SCENARIOS if s in (args.scenario or SCENARIOS)]
    return args


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


async def drive(
    server: ServerProcess, seeded: Seeded, scenario: str, args: argparse.Namespace, *, profiled: bool = False
) -> Summary:
    """One scenario, by the load generator in a process of its own."""
    spec = Spec(
        port=server.port,
        token=seeded.token,
        scenario=scenario,
        task_ids=seeded.task_ids,
        concurrency=args.concurrency,
        warmup=WARMUP,
        duration=args.duration,
        client=args.client,
        server_pid=server.pid,
        signal_server=profiled,
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
            loadgen.communicate(msgspec.json.encode(spec)), WARMUP + args.duration + 60
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


def progress(backend: str, scenario: str, summary: Summary, suffix: str = "") -> None:
    rate = summary.completed / summary.window_s if summary.window_s else 0.0
    say(
        f"  {backend:8} {SCENARIOS[scenario]:28} {rate:8,.0f} req/s  p50 {summary.p50_ms:6.1f} ms  "
        f"p99 {summary.p99_ms:6.1f} ms  errors {summary.errors}{suffix}"
    )


async def run_backend(
    backend: Backend, args: argparse.Namespace, notes: list[str], sections: list[str]
) -> list[Row]:
    """Every selected scenario against one backend (and the profiled runs, if asked)."""
    if backend.name == "postgres" and (reason := await prepare_postgres()):
        say(f"postgres: skipped: {reason}")
        notes.append(f"postgres skipped: {reason}")
        return []
    rows: list[Row] = []
    data_dir = Path(tempfile.mkdtemp(prefix=f"tessera-bench-{backend.name}-"))
    server = ServerProcess(backend, data_dir)
    try:
        say(f"{backend.name}: migrating, starting the server on 127.0.0.1:{server.port} ...")
        await server.upgrade()
        try:
            await server.start()
            began = time.monotonic()
            seeded = await asyncio.wait_for(seed(server.base_url, tasks=args.tasks), SEED_DEADLINE)
            say(
                f"{backend.name}: seeded 2 users, {len(seeded.task_ids)} tasks "
                f"({seeded.assigned} assigned to the second user) in {time.monotonic() - began:.1f} s"
            )
            for scenario in args.scenarios:
                summary = await drive(server, seeded, scenario, args)
                progress(backend.name, scenario, summary)
                rows.append(Row(backend.name, SCENARIOS[scenario], summary))
                notes.extend(_error_notes(backend.name, scenario, summary))
        finally:
            await server.stop()
        if args.profile:
            for scenario in (s for s in args.scenarios if s in PROFILED_SCENARIOS):
                sections.append(await profile_scenario(backend, data_dir, seeded, scenario, args))
        problems = server.log_problems()
        if problems:
            notes.append(f"{backend.name} server log warnings/errors: " + "; ".join(problems))
    except (ServerError, SeedError, TimeoutError) as exc:
        message = str(exc) or type(exc).__name__
        say(f"{backend.name}: FAILED: {message}")
        notes.append(f"{backend.name} FAILED: {message.splitlines()[0] if message else ''}")
        raise
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    return rows


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


def _error_notes(backend: str, scenario: str, summary: Summary) -> list[str]:
    if not summary.errors:
        return []
    statuses = ", ".join(f"{status}x{n}" for status, n in sorted(summary.statuses.items()))
    samples = " | ".join(summary.error_samples)
    return [f"{backend} {SCENARIOS[scenario]}: {summary.errors} errors ({statuses}); e.g. {samples}"]


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
    for name in names:
        try:
            rows += await run_backend(BACKENDS[name], args, notes, sections)
        except (ServerError, SeedError, TimeoutError):
            failed = True
    if args.profile:
        notes.append(
            "Profiles: pyinstrument samples the server's main thread for exactly the measured window "
            "(the profiled runs' req/s are lower because of the profiler and are not in the table); "
            "aiosqlite's worker thread is not sampled."
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


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.profile and not profiling.available():
        say(profiling.install_hint())
        return 2
    try:
        return asyncio.run(run(args))
    except (KeyboardInterrupt, asyncio.CancelledError):
        say("interrupted: servers stopped, nothing written")
        return 130
