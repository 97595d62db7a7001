"""``--profile``: the server under pyinstrument for exactly the measured window, and a summary.

``python -m bench.profiling OUT serve --port P --workers 1`` runs ``tessera serve`` in this
process with a pyinstrument profiler that the load generator starts with SIGUSR1 (end of
warm-up) and stops with SIGUSR2 (end of the window); the session is then saved to
``OUT.pyisession``. :func:`summarize` turns a session into hot spots: the functions with
the most self time, and the share of the window spent under each of a few named areas
(SQLAlchemy compile, Litestar DI, JSON, logging, ...).

pyinstrument samples the main thread only, where uvicorn's event loop runs; aiosqlite's
worker thread (SQLite's own C work) is not in the samples, though its GIL time shows up
as waiting in whichever main-thread frame was blocked on it.
"""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

__all__ = ("HotSpots", "available", "install_hint", "render_html", "summarize")

SESSION_SUFFIX = ".pyisession"

# Named areas: a sample counts toward an area when any frame of its stack, written as
# "function@path", matches the area's pattern.
AREAS: tuple[tuple[str, str], ...] = (
    ("argon2 password hashing", r"/argon2/"),
    ("JWT auth middleware (decode + verify)", r"litestar/security/jwt/|/jwt/"),
    ("Litestar kwargs/DI resolution", r"litestar/_kwargs/|litestar/di\.py"),
    ("Litestar signature model (param validation)", r"litestar/_signature/"),
    ("Litestar response build + JSON encode", r"litestar/response/|litestar/serialization/"),
    ("dependency-injector providers", r"dependency_injector/"),
    ("SQLAlchemy, all of it", r"/sqlalchemy/"),
    ("SQLAlchemy statement build, compile, cache key", r"sqlalchemy/sql/"),
    ("SQLAlchemy ORM Session begin/commit/close", r"sqlalchemy/orm/"),
    ("SQLAlchemy connection pool (checkout, pre-ping, reset)", r"sqlalchemy/pool/"),
    ("SQLAlchemy result rows + type processing", r"sqlalchemy/engine/(result|cursor)\.py|sqltypes\.py"),
    ("DB driver (aiosqlite thread hand-off / asyncpg)", r"/aiosqlite/|/asyncpg/|sqlalchemy/dialects/"),
    ("new DB connections (connect, thread start)", r"^__connect@.*sqlalchemy/pool/|^start@.*/threading\.py$"),
    ("identity lookup (IdentityService.get_users)", r"modules/identity/"),
    ("tasks module code (http/service/repository)", r"modules/tasks/"),
    ("uuid (uuid4 correlation ids, UUID parsing)", r"/uuid\.py$"),
    ("logging", r"/logging/|app/kernel/telemetry\.py"),
)
# Self time of the frame that runs the event loop: uvloop's C code (socket I/O, callbacks)
# and idle waiting, which a main-thread sampler cannot tell apart.
EVENT_LOOP_AREA = "event loop's own C code (uvloop I/O) + idle"


_AREA_PATTERNS = tuple((name, re.compile(pattern)) for name, pattern in AREAS)


def available() -> bool:
    return importlib.util.find_spec("pyinstrument") is not None


def install_hint() -> str:
    return f"--profile needs pyinstrument: {Path(sys.executable).parent / 'pip'} install pyinstrument"


# -- the summary -------------------------------------------------------------------------


@dataclass(frozen=True)
class HotSpots:
    total_s: float
    samples: int
    process_cpu: float  # the whole server process's CPU time over the window, in cores
    self_time: list[tuple[str, float]]  # (function, share of the window), largest first
    areas: list[tuple[str, float]]  # (area, share of the window), largest first
    libraries: list[tuple[str, float]]  # (library, self-time share), largest first

    def markdown(self, title: str, top: int = 12) -> str:
        lines = [
            f"#### {title}",
            "",
            f"{self.samples} samples over {self.total_s:.1f} s of the server's main thread; the server "
            f"process used {self.process_cpu:.2f} cores. Shares are of the main thread's wall time. "
            "SQLAlchemy's work inside greenlets shows as stacks of their own, so it counts under "
            "the SQLAlchemy areas but not under the request code that awaited it.",
            "",
            "| self time: function | % |",
            "| --- | ---: |",
            *(f"| `{name}` | {share:.1%} |" for name, share in self.self_time[:top]),
            "",
            "| inclusive time: area | % |",
            "| --- | ---: |",
            *(f"| {name} | {share:.1%} |" for name, share in self.areas if share >= 0.005),
            "",
            "| self time by library | % |",
            "| --- | ---: |",
            *(f"| {name} | {share:.1%} |" for name, share in self.libraries[:10]),
        ]
        return "\n".join(lines) + "\n"


def _parts(frame_info: str) -> tuple[str, str, str]:
    identifier = frame_info.split("\x01", 1)[0]
    function, path, line = ([*identifier.split("\x00"), "", ""])[:3]
    return function, path, line


def _short(path: str) -> str:
    for marker in ("site-packages/", "/src/", "/lib/python3"):
        if marker in path:
            tail = path.split(marker, 1)[1]
            return tail.split("/", 1)[1] if marker == "/lib/python3" else tail
    return path


def _library(path: str) -> str:
    short = _short(path)
    if path.startswith("<") or not short:
        return "(builtins)"
    if "/src/" in path:
        return "tessera: " + short.split("/", 1)[0]
    if "site-packages/" in path:
        return short.split("/", 1)[0]
    head = short.split("/", 1)[0]
    return "stdlib: " + (head.removesuffix(".py"))


def summarize(session_path: Path) -> HotSpots:
    """Hot spots of a saved session: self time per function, time per named area and library."""
    from pyinstrument.session import Session

    session = Session.load(session_path)
    self_time: Counter[str] = Counter()
    libraries: Counter[str] = Counter()
    areas: Counter[str] = Counter()
    total = 0.0
    for stack, seconds in session.frame_records:
        if not stack:
            continue
        total += seconds
        function, path, line = _parts(stack[-1])
        if function == "[self]" and len(stack) > 1:  # synthetic leaf: time in the parent itself
            function, path, line = _parts(stack[-2])
        self_time[f"{function} ({_short(path)}:{line})"] += seconds
        if function == "run" and path.endswith("asyncio/runners.py"):
            areas[EVENT_LOOP_AREA] += seconds
        libraries[_library(path)] += seconds
        frames = {f"{fn}@{path}" for fn, path, _ in map(_parts, stack)}
        for name, pattern in _AREA_PATTERNS:
            if any(pattern.search(frame) for frame in frames):
                areas[name] += seconds
    total = total or 1.0

    def shares(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(name, seconds / total) for name, seconds in counter.most_common()]

    return HotSpots(
        total_s=total,
        samples=session.sample_count,
        process_cpu=session.cpu_time / session.duration if session.duration else 0.0,
        self_time=shares(self_time),
        areas=shares(areas),
        libraries=shares(libraries),
    )


def render_html(session_path: Path, html_path: Path) -> None:
    from pyinstrument.renderers.html import HTMLRenderer
    from pyinstrument.session import Session

    html_path.write_text(HTMLRenderer().render(Session.load(session_path)), encoding="utf-8")


# -- the profiled server ---------------------------------------------------------------


def _serve_profiled(out: Path, tessera_args: list[str]) -> None:
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.001, async_mode="disabled")

    def start(_signum: int, _frame: FrameType | None) -> None:
        if not profiler.is_running:
            profiler.start()

    def stop(_signum: int, _frame: FrameType | None) -> None:
        if profiler.is_running:
            session = profiler.stop()
            partial = out.with_suffix(".partial")
            session.save(partial)
            os.replace(partial, out.with_suffix(SESSION_SUFFIX))

    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)
    from app.composition.cli import main as tessera

    tessera(tessera_args, prog_name="tessera")


def main(argv: list[str] | None = None) -> Any:
    args = sys.argv[1:] if argv is None else argv
    if len(args) < 2:
        raise SystemExit("usage: python -m bench.profiling OUT serve [tessera serve options]")
    _serve_profiled(Path(args[0]), args[1:])


if __name__ == "__main__":
    main()
