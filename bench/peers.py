"""Tessera beside its peers, measured by the peers' own wrk harness (``../shared/peers``).

    .venv/bin/python -m bench.peers                      # both backends + the Litestar floor, ~5 min
    .venv/bin/python -m bench.peers --quick              # 3 s per route, 200 tasks: a smoke run
    .venv/bin/python -m bench.peers --backend sqlite --duration 5
    .venv/bin/python -m bench.peers --setup-only         # install wrk and the peers' venv, then stop

Per backend (SQLite, then PostgreSQL), ``../shared/peers/fastapi-sqla/bench.sh`` runs twice,
one after the other, with the same settings (``wrk -t2 -c64``, 10 s per route after a 3 s
warm-up, 1000 tasks seeded over the API, one worker):

1. the ``fastapi-sqla`` peer, which the harness starts and stops itself (SQLite: a fresh
   file in the run folder; PostgreSQL: the database ``peer_bench``, dropped and created);
2. Tessera, started here like ``python -m bench`` does (``bench.server.ServerProcess``:
   ``tessera db upgrade`` + ``tessera serve``, one worker, a fresh temporary data dir, the
   ``dev`` profile, throttles raised for seeding; PostgreSQL: ``tessera_bench``, dropped and
   created) and handed to the harness as ``BASE_URL``/``NAME``/``SERVER_PID``, so its CPU
   and RSS are measured too. Metrics and request logs stay on (the defaults), tracing is off
   and argon2 is cheapened (only seeding and the harness's token refreshes hash).

Then the framework floor, bare Litestar under uvicorn (``litestar-floor/run-uvicorn.sh``),
through the generic ``../shared/peers/bench.sh`` (its own 100-task ``GET /tasks``).

It parses the harness's files (``table.md`` and the raw ``wrk`` output), prints one table
per backend with Tessera's ratio to the peer against its target, and writes
``bench/results/peers.md``. Raw files: ``bench/results/peers/<timestamp>/`` (git-ignored).

Setup, done here when missing (idempotent): ``wrk`` from Debian (``apt-get``, as root) and the
peers' venv ``.peers-venv/`` from the two ``requirements.lock.txt`` files (the Python part of
``../shared/peers/setup.sh``; the Clojure packages are not needed).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from bench.report import RESULTS_DIR, machine_line
from bench.server import (
    POSTGRES_ADMIN_DSN,
    POSTGRES_BENCH_DB,
    POSTGRES_BENCH_URL,
    REPO_ROOT,
    Backend,
    ServerError,
    ServerProcess,
    free_port,
)

__all__ = ("main",)

PEERS_DIR = (REPO_ROOT.parent / "shared" / "peers").resolve()
PEERS_VENV = REPO_ROOT / ".peers-venv"
RAW_DIR = RESULTS_DIR / "peers"  # one folder per run, git-ignored
REPORT = RESULTS_DIR / "peers.md"

PEER_DB = "peer_bench"
PEER_PG_URL = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{PEER_DB}"

# phase -> (short name, the row label in the harness's table.md, Tessera/peer target)
ROUTES: dict[str, tuple[str, str, float]] = {
    "get": ("GET one task", "GET /api/v1/tasks/{id}", 10.0),
    "list": ("GET list of 50", "GET /api/v1/tasks?limit=50", 5.0),
    "post": ("POST a task", "POST /api/v1/tasks", 4.0),
}
FLOOR_TARGET = 0.3  # Tessera's GET one task / the Litestar floor's GET
FLOOR_NAME = "litestar-floor"
FLOOR_SEED_N = 100  # the generic harness's own default: GET /tasks returns 100 strings

TESSERA_ENVIRONMENT = {
    "OTEL_TRACES_EXPORTER": "none",  # tracing off; metrics and request logs: the defaults (on)
    # Only seeding and the harness's per-phase sign-ins hash; none of the measured routes does.
    "TESSERA_SECURITY__PASSWORD_HASH__TIME_COST": "1",
    "TESSERA_SECURITY__PASSWORD_HASH__MEMORY_KIB": "8192",
    "TESSERA_SECURITY__PASSWORD_HASH__PARALLELISM": "1",
}
# Knobs the harness scripts read from their environment: never inherited from ours.
HARNESS_KNOBS = frozenset(
    {
        "BASE_PATH", "BASE_URL", "CONNS", "DATABASE_URL", "DURATION", "HOST", "JAVA_OPTS", "JWT_SECRET",
        "NAME", "ONLY", "OUT_DIR", "PEERS_FILE", "PEERS_VENV", "PHASES", "PIN", "PORT", "PYTHON",
        "READY_TIMEOUT", "SEED_FILE", "SEED_N", "SERVER_PID", "THREADS", "WARMUP", "WARMUP_JVM",
        "WARMUP_PY", "WORKERS", "WRK_TIMEOUT",
    }
)  # fmt: skip

SETUP_TIMEOUT = 900.0  # apt-get or pip
PG_TIMEOUT = 30.0
CHECK_API_TIMEOUT = 120.0
HARNESS_STOP_GRACE = 40.0  # wrk runs under `timeout d+30`; the harness's trap stops its peer after it
QUICK = {"duration": 3.0, "seed_n": 200, "warmup": 1.0}


def say(message: str) -> None:
    print(f"[peers] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------- setup


def _run(argv: list[str], timeout: float, env: Mapping[str, str] | None = None) -> None:
    say("$ " + " ".join(argv))
    subprocess.run(argv, check=True, timeout=timeout, env=env, stdin=subprocess.DEVNULL)


def ensure_wrk() -> None:
    if shutil.which("wrk"):
        return
    if os.geteuid() != 0:
        raise SystemExit("wrk is not installed: apt-get install wrk (as root), then run again")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "wrk"]
    try:
        _run(install, SETUP_TIMEOUT, env)
    except subprocess.CalledProcessError:  # a stale package index: update once, then retry
        _run(["apt-get", "update", "-qq"], SETUP_TIMEOUT, env)
        _run(install, SETUP_TIMEOUT, env)
    if not shutil.which("wrk"):
        raise SystemExit("apt-get ran but wrk is still not on PATH")


def ensure_peers_venv() -> Path:
    """The peers' venv with exactly the locked versions; reinstalled when a lock file changes."""
    locks = [PEERS_DIR / "requirements.lock.txt", PEERS_DIR / "fastapi-sqla" / "requirements.lock.txt"]
    for lock in locks:
        if not lock.is_file():
            raise SystemExit(f"missing {lock}: is ../shared/peers laid beside the project?")
    digest = hashlib.sha256(b"".join(lock.read_bytes() for lock in locks)).hexdigest()
    python = PEERS_VENV / "bin" / "python"
    stamp = PEERS_VENV / ".tessera-bench-locks"
    if python.exists() and stamp.exists() and stamp.read_text(encoding="utf-8").strip() == digest:
        return python
    if not python.exists():
        # The interpreter this project runs on (the peers' locks are for the same Python 3.11).
        base = getattr(sys, "_base_executable", None) or shutil.which("python3") or "python3"
        _run([base, "-m", "venv", str(PEERS_VENV)], SETUP_TIMEOUT)
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    _run([*pip, *(arg for lock in locks for arg in ("-r", str(lock)))], SETUP_TIMEOUT)
    _run(
        [str(python), "-c", "import argon2, asyncpg, aiosqlite, fastapi, jwt, litestar, sqlalchemy, uvicorn"],
        60.0,
    )
    stamp.write_text(digest + "\n", encoding="utf-8")
    return python


# ---------------------------------------------------------------------------------- PostgreSQL


async def fresh_database(name: str) -> None:
    """Drop the database ``name`` (closing its sessions) and create it empty."""
    import asyncpg  # type: ignore[import-untyped]

    async with asyncio.timeout(PG_TIMEOUT):
        admin = await asyncpg.connect(POSTGRES_ADMIN_DSN, timeout=5)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()


async def postgres_problem() -> str | None:
    """None when both bench databases are fresh, else why PostgreSQL is skipped."""
    try:
        for name in (PEER_DB, POSTGRES_BENCH_DB):
            await fresh_database(name)
    except ImportError:
        return "asyncpg is not installed"
    except Exception as exc:
        return f"PostgreSQL at 127.0.0.1:5432 (user postgres) not usable: {type(exc).__name__}: {exc}"
    return None


# ---------------------------------------------------------------------------------- harness runs


@dataclass
class Phase:
    rps: float | None = None
    p99_ms: float | None = None
    requests: int | None = None
    non2xx: int = 0
    sockerr: int = 0
    timeouts: int = 0
    cpu_pct: float | None = None  # the server's share of a core over the window (100 = one core)

    @property
    def errors(self) -> int:
        return self.non2xx + self.sockerr + self.timeouts

    @property
    def cpu_us(self) -> float | None:
        """Server CPU per request, µs."""
        if self.cpu_pct is None or not self.rps:
            return None
        return self.cpu_pct / 100 * 1e6 / self.rps


@dataclass
class Run:
    """One harness invocation against one server, as read back from its OUT_DIR."""

    name: str
    out_dir: Path
    phases: dict[str, Phase] = field(default_factory=dict)
    rss_mib: float | None = None
    problem: str | None = None  # why the run failed or was skipped
    check_api: list[str] = field(default_factory=list)  # FAIL and note lines of check_api.py

    def phase(self, key: str) -> Phase:
        return self.phases.get(key, Phase())


def harness_environment(**settings: object) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in HARNESS_KNOBS and not k.startswith("TESSERA_")}
    env["PEERS_VENV"] = str(PEERS_VENV)
    env["PYTHON"] = str(PEERS_VENV / "bin" / "python")
    env.update({key: _knob(value) for key, value in settings.items()})
    return env


def _knob(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


async def run_harness(script: Path, env: dict[str, str], out_dir: Path, budget: float) -> str | None:
    """Run a harness script to its end; None, or why it failed.

    It runs in a session of its own: on a timeout or an interruption its whole process group
    (the script, ``timeout``, ``wrk``, a peer it started) gets SIGTERM, then SIGKILL; the
    script's own trap stops its peer by PID.
    """
    await asyncio.to_thread(out_dir.mkdir, parents=True, exist_ok=True)
    say(f"{script.relative_to(PEERS_DIR.parent)} -> {out_dir.relative_to(REPO_ROOT)}")
    with (out_dir / "harness.stdout").open("wb") as stdout:
        process = await asyncio.create_subprocess_exec(
            "bash",
            str(script),
            cwd=script.parent,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=stdout,
            stderr=None,  # the harness's progress lines go to our stderr
            start_new_session=True,
        )
        try:
            code = await asyncio.wait_for(process.wait(), budget)
        except TimeoutError:
            await _stop_group(process)
            return f"{script.name} took over {budget:.0f} s and was stopped"
        except BaseException:
            await _stop_group(process)
            raise
    return (
        None if code == 0 else f"{script.name} exited with {code} (its log lines above; files in {out_dir})"
    )


async def _stop_group(process: asyncio.subprocess.Process) -> None:
    if process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        await asyncio.wait_for(asyncio.shield(process.wait()), HARNESS_STOP_GRACE)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()


WRKSTATS = re.compile(r"^WRKSTATS (.*)$", re.MULTILINE)


def wrkstats(path: Path) -> dict[str, float]:
    """The last ``WRKSTATS key=value ...`` line a wrk script's ``done()`` printed into ``path``."""
    try:
        found = WRKSTATS.findall(path.read_text(encoding="utf-8", errors="replace"))
    except OSError:
        return {}
    if not found:
        return {}
    return {k: float(v) for k, v in (pair.split("=", 1) for pair in found[-1].split())}


def table_rows(path: Path) -> dict[str, list[str]]:
    """table.md's rows, by their first cell."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return {}
    rows = {}
    for line in text.splitlines():
        if line.startswith("| ") and not line.startswith("|---"):
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            rows[cells[0]] = cells
    return rows


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def phase_from(raw: Path, cpu_cell: str | None) -> Phase:
    stats = wrkstats(raw)
    if not stats:
        return Phase(cpu_pct=_number(cpu_cell) if cpu_cell else None)
    return Phase(
        rps=stats.get("rps"),
        p99_ms=stats["p99_us"] / 1000 if "p99_us" in stats else None,
        requests=int(stats.get("requests", 0)),
        non2xx=int(stats.get("non2xx", 0)),
        sockerr=int(stats.get("sockerr", 0)),
        timeouts=int(stats.get("timeouts", 0)),
        cpu_pct=_number(cpu_cell) if cpu_cell else None,
    )


def read_sqla_run(run: Run) -> None:
    """fastapi-sqla/bench.sh's files: ``<phase>.txt`` (raw wrk) and ``table.md`` (CPU %, RSS)."""
    rows = table_rows(run.out_dir / "table.md")
    for key, (_, label, _) in ROUTES.items():
        row = rows.get(label)
        run.phases[key] = phase_from(run.out_dir / f"{key}.txt", row[-1] if row else None)
    try:
        table = (run.out_dir / "table.md").read_text(encoding="utf-8")
    except OSError:
        return
    if match := re.search(r"server RSS after the run: (\S+) MiB", table):
        run.rss_mib = _number(match.group(1))


def read_floor_run(run: Run) -> None:
    """../bench.sh's files: ``<name>.get.txt`` and ``table.md`` (CPU % "GET / POST", RSS last)."""
    row = table_rows(run.out_dir / "table.md").get(FLOOR_NAME)
    cpu = row[-2].split("/")[0].strip() if row and len(row) >= 10 else None
    run.phases["get"] = phase_from(run.out_dir / f"{FLOOR_NAME}.get.txt", cpu)
    run.phases["post"] = phase_from(run.out_dir / f"{FLOOR_NAME}.post.txt", None)
    if row and len(row) >= 10:
        run.rss_mib = _number(row[-1])


@dataclass(frozen=True)
class Settings:
    duration: float
    seed_n: int
    warmup: float
    check_api: bool

    def sqla_knobs(self) -> dict[str, object]:
        return {"DURATION": int(self.duration), "SEED_N": self.seed_n, "WARMUP": int(self.warmup)}

    def budget(self, phases: int, seed_n: int) -> float:
        """Generous upper bound of one harness run: start, seeding, each phase's wrk runs."""
        return 180 + seed_n * 0.1 + phases * (self.warmup + self.duration + 90)


async def bench_peer(backend: str, out_dir: Path, settings: Settings) -> Run:
    run = Run("fastapi-sqla", out_dir)
    env = harness_environment(PORT=free_port(), WORKERS=1, OUT_DIR=out_dir, **settings.sqla_knobs())
    if backend == "postgres":
        env["DATABASE_URL"] = PEER_PG_URL
    run.problem = await run_harness(
        PEERS_DIR / "fastapi-sqla" / "bench.sh", env, out_dir, settings.budget(3, settings.seed_n)
    )
    read_sqla_run(run)
    return run


async def bench_tessera(backend: str, out_dir: Path, settings: Settings) -> Run:
    run = Run("Tessera", out_dir)
    chosen = Backend("postgres", POSTGRES_BENCH_URL) if backend == "postgres" else Backend("sqlite")
    data_dir = Path(tempfile.mkdtemp(prefix=f"tessera-bench-peers-{backend}-"))
    server = ServerProcess(chosen, data_dir, extra_environment=TESSERA_ENVIRONMENT)
    try:
        await server.upgrade()
        await server.start()
        say(f"Tessera ({backend}) serving on {server.base_url}, pid {server.pid}")
        env = harness_environment(
            BASE_URL=server.base_url,
            NAME=f"Tessera ({backend}, 1 worker)",
            SERVER_PID=server.pid,
            OUT_DIR=out_dir,
            **settings.sqla_knobs(),
        )
        run.problem = await run_harness(
            PEERS_DIR / "fastapi-sqla" / "bench.sh", env, out_dir, settings.budget(3, settings.seed_n)
        )
        if settings.check_api:  # after the measurement: its users and tasks do not touch A's
            run.check_api = await check_api(server.base_url, out_dir)
    except ServerError as exc:
        run.problem = f"Tessera did not start: {exc}"
    finally:
        await server.stop()
        with contextlib.suppress(OSError):
            shutil.copy2(server.log_path, out_dir / "tessera-server.log")
        shutil.rmtree(data_dir, ignore_errors=True)
    read_sqla_run(run)
    return run


async def check_api(base_url: str, out_dir: Path) -> list[str]:
    """fastapi-sqla/check_api.py against a server; its FAIL and note lines (and its verdict)."""
    process = await asyncio.create_subprocess_exec(
        str(PEERS_VENV / "bin" / "python"),
        str(PEERS_DIR / "fastapi-sqla" / "check_api.py"),
        base_url,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), CHECK_API_TIMEOUT)
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        raise
    text = output.decode(errors="replace")
    (out_dir / "check_api.txt").write_text(text, encoding="utf-8")
    lines = [line for line in text.splitlines() if line.startswith(("FAIL", "note"))]
    last = text.strip().splitlines()[-1] if text.strip() else "(no output)"
    verdict = last.split(":", 1)[0] if "FAILED" in last else last  # "N FAILED: <names>": listed above
    return [*lines, verdict, f"(exit status {process.returncode})"]


async def bench_floor(out_dir: Path, settings: Settings) -> Run:
    """Bare Litestar under uvicorn through the generic ../bench.sh, on a free port of its own."""
    run = Run(FLOOR_NAME, out_dir)
    await asyncio.to_thread(out_dir.mkdir, parents=True, exist_ok=True)
    peers_file = out_dir / "peers.txt"
    warmup = max(1, int(settings.warmup))
    peers_file.write_text(
        f"{FLOOR_NAME}|{free_port()}|{warmup}|./litestar-floor/run-uvicorn.sh\n", encoding="utf-8"
    )
    env = harness_environment(
        ONLY=FLOOR_NAME,
        PEERS_FILE=peers_file,
        OUT_DIR=out_dir,
        DURATION=int(settings.duration),
        WARMUP_PY=warmup,
        SEED_N=FLOOR_SEED_N,
    )
    run.problem = await run_harness(PEERS_DIR / "bench.sh", env, out_dir, settings.budget(2, FLOOR_SEED_N))
    read_floor_run(run)
    return run


# ---------------------------------------------------------------------------------- report


def _int(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f}"


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.1f}"


def _verdict(ratio: float | None, target: float) -> str:
    if ratio is None:
        return "n/a"
    return "met" if ratio >= target else "MISSED"


def backend_section(title: str, peer: Run, tessera: Run, floor: Run | None) -> list[str]:
    lines = [
        f"### {title}",
        "",
        "| route | peer req/s | Tessera req/s | ratio Tessera/peer | target | peer p99 ms | Tessera p99 ms "
        "| Tessera server CPU µs/req | Tessera RSS MiB after |",
        "|---|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    for key, (short, label, target) in ROUTES.items():
        p, t = peer.phase(key), tessera.phase(key)
        ratio = t.rps / p.rps if t.rps is not None and p.rps else None
        lines.append(
            f"| {short} `{label}` | {_int(p.rps)} | {_int(t.rps)} | "
            f"{'n/a' if ratio is None else f'{ratio:.2f}x'} | ≥ {target:g}x: {_verdict(ratio, target)} | "
            f"{_ms(p.p99_ms)} | {_ms(t.p99_ms)} | {_int(t.cpu_us)} | {_int(tessera.rss_mib)} |"
        )
    lines.append("")
    get_rps = tessera.phase("get").rps
    floor_rps = floor.phase("get").rps if floor else None
    ratio = get_rps / floor_rps if get_rps is not None and floor_rps else None
    lines.append(
        f"GET vs Litestar floor: {_int(get_rps)} req/s / {_int(floor_rps)} = "
        f"{'n/a' if ratio is None else f'{ratio:.3f}'} (target ≥ {FLOOR_TARGET:g}): "
        f"{_verdict(ratio, FLOOR_TARGET)}"
    )
    lines.append("")
    lines.append(
        "Peer server CPU µs/req (its uvicorn process): "
        + ", ".join(f"{ROUTES[k][0]} {_int(peer.phase(k).cpu_us)}" for k in ROUTES)
        + f"; peer RSS after: {_int(peer.rss_mib)} MiB."
    )
    for run in (peer, tessera):
        bad = [
            f"{ROUTES[k][0]} {ph.non2xx}/{ph.sockerr}/{ph.timeouts}"
            for k, ph in run.phases.items()
            if ph.errors
        ]
        if bad:
            lines.append(f"**{run.name} errors** (non-2xx/socket/timeouts): " + ", ".join(bad) + ".")
        if run.problem:
            lines.append(f"**{run.name}: {run.problem}**")
        if run.check_api:
            lines += ["", f"`check_api.py` against {run.name} ({title}):", "", "```", *run.check_api, "```"]
    return lines


def render(
    started: datetime,
    settings: Settings,
    sections: list[tuple[str, Run, Run]],
    skipped: list[str],
    floor: Run | None,
    raw: Path,
) -> str:
    header = (
        f"**Tessera vs peers** — {started.astimezone(UTC):%Y-%m-%d %H:%M UTC} — machine: {machine_line()} — "
        f"shared harness `../shared/peers/fastapi-sqla/bench.sh`: wrk -t2 -c64 --latency, "
        f"{settings.duration:g} s per route after {settings.warmup:g} s warm-up, "
        f"{settings.seed_n} seeded tasks, one worker each"
    )
    parts = [
        header,
        "",
        "Peer: `fastapi-sqla` (FastAPI + SQLAlchemy 2 async ORM + PyJWT + argon2, uvicorn), started by "
        "the harness. Tessera: `tessera db upgrade` + `tessera serve --workers 1` in a fresh data dir "
        "(`dev` profile; metrics and request logs on, tracing off; throttles raised and argon2 cheapened "
        "for seeding only), measured with `BASE_URL`/`SERVER_PID`. Server CPU is the server process and "
        "its children (not PostgreSQL; the same for both). wrk, the servers and PostgreSQL share the "
        "machine's cores, so compare within one run; the harness's README expects 10-20 % run-to-run "
        "movement in req/s and more in p99.",
        "",
    ]
    for title, peer, tessera in sections:
        parts += [*backend_section(title, peer, tessera, floor), ""]
    parts += skipped
    if floor is not None:
        get = floor.phase("get")
        parts += [
            "",
            f"Litestar floor: bare Litestar 2 + msgspec under uvicorn (`litestar-floor/run-uvicorn.sh`), "
            f"`GET /tasks` (a list of {FLOOR_SEED_N} strings, no DB, no auth) "
            "via `../shared/peers/bench.sh`: "
            f"{_int(get.rps)} req/s, p99 {_ms(get.p99_ms)} ms, server CPU {_int(get.cpu_us)} µs/req."
            + (f" **{floor.problem}**" if floor.problem else ""),
        ]
    parts += ["", f"Raw harness output (git-ignored): `{raw.relative_to(REPO_ROOT)}/`."]
    return "\n".join(parts).rstrip() + "\n"


# ---------------------------------------------------------------------------------- main


async def run_all(backends: list[str], settings: Settings) -> str:
    started = datetime.now(UTC)
    raw = RAW_DIR / started.strftime("%Y%m%d-%H%M%S")
    sections: list[tuple[str, Run, Run]] = []
    skipped: list[str] = []
    for backend in backends:
        title = {"sqlite": "SQLite", "postgres": "PostgreSQL"}[backend]
        if backend == "postgres" and (problem := await postgres_problem()):
            say(f"PostgreSQL skipped: {problem}")
            skipped.append(f"PostgreSQL skipped: {problem}")
            continue
        t0 = time.monotonic()
        peer = await bench_peer(backend, raw / f"{backend}-peer", settings)
        tessera = await bench_tessera(backend, raw / f"{backend}-tessera", settings)
        say(f"{title}: both measured in {time.monotonic() - t0:.0f} s")
        sections.append((title, peer, tessera))
    floor = await bench_floor(raw / "litestar-floor", settings)
    return render(started, settings, sections, skipped, floor, raw)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.peers", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    parser.add_argument("--backend", choices=("sqlite", "postgres", "all"), default="all")
    parser.add_argument("--duration", type=int, help="measured seconds per route (default 10; --quick: 3)")
    parser.add_argument("--seed-n", type=int, help="tasks seeded per server (default 1000; --quick: 200)")
    parser.add_argument("--warmup", type=int, help="seconds of wrk before each route (default 3; --quick: 1)")
    parser.add_argument(
        "--quick", action="store_true", help="a smoke run: short defaults, not for the record"
    )
    parser.add_argument(
        "--check-api",
        action="store_true",
        help="also run fastapi-sqla/check_api.py against Tessera after its measurement; report FAILs",
    )
    parser.add_argument(
        "--setup-only", action="store_true", help="install wrk and the peers' venv, then stop"
    )
    args = parser.parse_args(argv)
    defaults = QUICK if args.quick else {"duration": 10, "seed_n": 1000, "warmup": 3}
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, int(value))
    if args.duration <= 0 or args.seed_n <= 0 or args.warmup < 0:
        parser.error("--duration and --seed-n must be positive, --warmup not negative")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not (PEERS_DIR / "fastapi-sqla" / "bench.sh").is_file():
        say(f"no harness at {PEERS_DIR}/fastapi-sqla/bench.sh")
        return 2
    ensure_wrk()
    ensure_peers_venv()
    if args.setup_only:
        say(f"setup done: wrk at {shutil.which('wrk')}, peers' venv at {PEERS_VENV}")
        return 0
    settings = Settings(float(args.duration), args.seed_n, float(args.warmup), args.check_api)
    backends = ["sqlite", "postgres"] if args.backend == "all" else [args.backend]
    try:
        report = asyncio.run(run_all(backends, settings))
    except (KeyboardInterrupt, asyncio.CancelledError):
        say("interrupted: servers stopped, nothing written")
        return 130
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(report, encoding="utf-8")
    print(report)
    say(f"written to {REPORT.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
