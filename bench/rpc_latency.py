"""The added latency of one remote call: a contract method in-process against over the network.

Run by the orchestrator as ``python -m bench.rpc_latency`` while a split topology is up,
in the environment of its processes (same topology file, same data dir), with a
:class:`Spec` as JSON on stdin; prints a list of :class:`Timing` as JSON. In one asyncio
process (on uvloop, like the servers) it composes the application twice over the same data:

- ``compose(settings)``: every module local, as in the monolith; identity's
  ``IdentityService`` is called directly;
- ``compose(settings, group="tasks")``: what the tasks process holds; identity is the
  remote adapter that POSTs to ``/internal/identity/<method>`` of the running identity
  process (service token, timeout, retries and circuit breaker included).

It then calls ``get_users([id1, id2])`` sequentially (concurrency 1) through each, and
for scale the same method behind :func:`app.kernel.rpc.strict` (the msgspec round trip of a
crossing without the network), a bare ``GET /health/live`` of the identity process with
the remote adapter's own HTTP client, and the service-token signing each remote call does.
The kinds are timed in interleaved blocks, so a drift in the machine's load touches all.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID

import msgspec

from bench.loadgen import run_fast

__all__ = ("Spec", "Timing", "render")

BLOCK = 100  # calls per kind before moving to the next kind


class Spec(msgspec.Struct, frozen=True, kw_only=True):
    user_ids: list[str]
    calls: int
    warmup: int
    identity_url: str


class Timing(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    calls: int
    p50_ms: float
    p99_ms: float
    mean_ms: float


def _timing(name: str, samples_ns: list[int]) -> Timing:
    ordered = sorted(samples_ns)

    def percentile(p: float) -> float:
        return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))] / 1e6

    return Timing(
        name=name,
        calls=len(ordered),
        p50_ms=percentile(50),
        p99_ms=percentile(99),
        mean_ms=sum(ordered) / len(ordered) / 1e6,
    )


async def measure(spec: Spec) -> list[Timing]:
    from app.composition.container import compose
    from app.kernel.config import load_settings
    from app.kernel.rpc import strict
    from contracts.identity import IDENTITY, IdentityApi

    settings = load_settings()
    monolith = compose(settings)
    tasks_group = compose(settings, group="tasks")
    try:
        local: IdentityApi = monolith.module("identity").api()
        remote: IdentityApi = tasks_group.remotes.implementations["identity"]  # type: ignore[assignment]
        crossing = strict(IDENTITY, local)
        http, tokens = tasks_group.remotes.http, tasks_group.remotes.tokens
        assert http is not None
        assert tokens is not None
        ids = [UUID(u) for u in spec.user_ids]

        expected = await local.get_users(ids)
        if len(expected) != len(ids) or await remote.get_users(ids) != expected:
            raise SystemExit("get_users answered differently in-process and remotely")
        live_url = f"{spec.identity_url.rstrip('/')}/health/live"

        async def live() -> None:
            (await http.get(live_url)).raise_for_status()

        async def sign() -> None:
            tokens.issue(audience="identity", principal=None)

        kinds: dict[str, Callable[[], Awaitable[Any]]] = {
            "in-process: IdentityService.get_users": lambda: local.get_users(ids),
            "in-process behind strict() (msgspec round trip, no network)": lambda: crossing.get_users(ids),
            "remote adapter: POST /internal/identity/get_users": lambda: remote.get_users(ids),
            "bare HTTP: GET /health/live of identity (same httpx client)": live,
            "service token signing (part of each remote call)": sign,
        }
        samples: dict[str, list[int]] = {name: [] for name in kinds}
        for call in kinds.values():
            for _ in range(spec.warmup):
                await call()
        done = 0
        while done < spec.calls:
            block = min(BLOCK, spec.calls - done)
            for name, call in kinds.items():
                into = samples[name]
                for _ in range(block):
                    started = time.perf_counter_ns()
                    await call()
                    into.append(time.perf_counter_ns() - started)
            done += block
        return [_timing(name, values) for name, values in samples.items()]
    finally:
        await asyncio.gather(monolith.aclose(), tasks_group.aclose())


def render(
    timings: list[Timing],
    get_rows: list[tuple[str, Any]],
    *,
    backend: str,
    calls: int,
) -> str:
    """The Markdown section: per-call timings, the added latency, and sequential GETs by route.

    ``get_rows`` are (label, loadgen Summary) of GET /api/v1/tasks/{id} at concurrency 1.
    """
    lines: list[str] = []
    if timings:  # none with --latency-calls 0
        by_name = {t.name: t for t in timings}
        local = next(t for t in timings if t.name.startswith("in-process:"))
        remote = next(t for t in timings if t.name.startswith("remote adapter"))
        lines += [
            f"#### Added latency per remote call ({backend}, split topology running, concurrency 1)",
            "",
            f"`identity.get_users([two ids])`, {calls} sequential calls of each kind from one asyncio "
            "process (uvloop) over the split's data; blocks of 100 calls of each kind interleaved. "
            "`python -m bench.rpc_latency` composes the app as the monolith does (identity local) and "
            "as the tasks group does (identity through its remote adapter).",
            "",
            "| call | p50 ms | p99 ms | mean ms |",
            "| --- | ---: | ---: | ---: |",
            *(f"| {t.name} | {t.p50_ms:.3f} | {t.p99_ms:.3f} | {t.mean_ms:.3f} |" for t in by_name.values()),
            f"| **added by the remote hop** (remote - in-process) | **{remote.p50_ms - local.p50_ms:.3f}** | "
            f"**{remote.p99_ms - local.p99_ms:.3f}** | **{remote.mean_ms - local.mean_ms:.3f}** |",
        ]
    if get_rows:
        base = next((summary for label, summary in get_rows if label == "monolith"), None)
        lines += [
            "",
            "GET /api/v1/tasks/{id}, one client, one request at a time (the same scenario as in the "
            "table above, at concurrency 1; each task view costs one `get_users` call):",
            "",
            "| route | requests | p50 ms | p99 ms | mean ms | p50 added ms | server CPU ms/req |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for label, summary in get_rows:
            cpu = summary.server_cpu_s * 1000 / summary.completed if summary.completed else 0.0
            added = f"{summary.p50_ms - base.p50_ms:+.2f}" if base is not None else "-"
            lines.append(
                f"| {label} | {summary.completed} | {summary.p50_ms:.2f} | {summary.p99_ms:.2f} | "
                f"{summary.mean_ms:.2f} | {added} | {cpu:.2f} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    spec = msgspec.json.decode(sys.stdin.buffer.read(), type=Spec)
    timings = run_fast(measure(spec))
    sys.stdout.buffer.write(msgspec.json.encode(timings) + b"\n")


if __name__ == "__main__":
    main()
