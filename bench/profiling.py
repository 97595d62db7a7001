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
import signal
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

__all__ = ("HotSpots", "available", "install_hint", "render_html", "summarize")

SESSION_SUFFIX = ".pyisession"

# Named areas: a sample counts toward an area when any frame of its stack is in one of the
# area's files (given by path fragments).
AREAS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("argon2 password hashing", ("/argon2/",)),
    ("JWT auth middleware (decode + verify)", ("litestar/security/jwt/", "/jwt/")),
    ("Litestar kwargs/DI resolution", ("litestar/_kwargs/", "litestar/di.py")),
    ("Litestar signature model (param validation)", ("litestar/_signature/",)),
    ("Litestar response build + JSON encode", ("litestar/response/", "litestar/serialization/")),
    ("dependency-injector providers", ("dependency_injector/",)),
    ("SQLAlchemy, all of it", ("/sqlalchemy/",)),
    ("SQLAlchemy SQL compile / cache key", ("sqlalchemy/sql/",)),
    ("SQLAlchemy ORM session begin/commit/close", ("sqlalchemy/orm/session.py",)),
    ("SQLAlchemy connection pool (checkout, pre-ping)", ("sqlalchemy/pool/",)),
    ("SQLAlchemy result/row processing", ("sqlalchemy/engine/result.py", "sqlalchemy/engine/cursor.py")),
    ("DB driver adapter (aiosqlite/asyncpg)", ("/aiosqlite/", "/asyncpg/", "sqlalchemy/dialects/")),
    ("identity lookup (IdentityService.get_users)", ("modules/identity/",)),
    ("tasks module code (http/service/repository)", ("modules/tasks/",)),
    ("logging", ("/logging/", "app/kernel/telemetry.py")),
    ("request-context middleware + contextvars", ("app/kernel/context.py",)),
    ("uvicorn HTTP protocol (httptools)", ("uvicorn/protocols/",)),
)


def available() -> bool:
    return importlib.util.find_spec("pyinstrument") is not None


def install_hint() -> str:
    return f"--profile needs pyinstrument: {Path(sys.executable).parent / 'pip'} install pyinstrument"


# -- the summary -------------------------------------------------------------------------


@dataclass(frozen=True)
class HotSpots:
    total_s: float
    samples: int
    self_time: list[tuple[str, float]]  # (function, share of the window), largest first
    areas: list[tuple[str, float]]  # (area, share of the window), largest first
    libraries: list[tuple[str, float]]  # (library, self-time share), largest first

    def markdown(self, title: str, top: int = 12) -> str:
        lines = [
            f"#### {title}",
            "",
            f"{self.samples} samples over {self.total_s:.1f} s of the server's main thread.",
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
        libraries[_library(path)] += seconds
        paths = {_parts(frame)[1] for frame in stack}
        for name, fragments in AREAS:
            if any(fragment in p for p in paths for fragment in fragments):
                areas[name] += seconds
    total = total or 1.0

    def shares(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(name, seconds / total) for name, seconds in counter.most_common()]

    return HotSpots(
        total_s=total,
        samples=session.sample_count,
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
    from app.cli import main as tessera

    tessera(tessera_args, prog_name="tessera")


def main(argv: list[str] | None = None) -> Any:
    args = sys.argv[1:] if argv is None else argv
    if len(args) < 2:
        raise SystemExit("usage: python -m bench.profiling OUT serve [tessera serve options]")
    _serve_profiled(Path(args[0]), args[1:])


if __name__ == "__main__":
    main()
