"""The split predicted in one process (``tessera simulate``), against the split measured.

    .venv/bin/python -m bench.simulate            # SQLite, ~2 min; bench/results/simulate.md

Three targets, up side by side and measured in turn, round after round, with the same requests
one at a time (latency, not throughput: the simulation adds the network's latency, not the
split's CPU):

- the monolith;
- the monolith under ``tessera simulate``, grouped as the split is (identity with accounts,
  tasks, notifications, activity, a pure gateway), each call's crossing drawn from one remote
  call and each request's from one gateway hop, both measured on the spot, and its events
  through the split's broker — the *prediction*;
- the split itself: five processes, through its gateway — the *measurement*.

Per route: p50 / p99 and the error rate of each; the prediction's p50 against the
measurement's (issue 18: within 25 %).
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from app.composition.extraction import RemoteCallCost, measure_gateway_hop, measure_remote_call
from app.kernel.config import SimulateSettings
from bench.cli import SCENARIOS, drive, seed_over_api
from bench.loadgen import Summary
from bench.seed import Seeded
from bench.server import GROUP_MODULES as SPLIT_GROUPS
from bench.server import SPLIT_BUS, Backend, ServerProcess, SplitCluster, remove_broker_state

RESULTS = Path(__file__).parent / "results" / "simulate.md"
TARGET = 0.25  # |predicted - measured| / measured, p50 per route


def _simulation(calls: RemoteCallCost, hops: RemoteCallCost, namespace: str) -> str:
    """As the split runs: its groups apart, and its events through the split's broker."""
    simulate = SimulateSettings(
        remote=["+".join(modules) for modules in SPLIT_GROUPS.values() if modules],
        latencies_ms=list(calls.latencies_ms),
        gateway_latencies_ms=list(hops.latencies_ms),
    )
    return f'[events]\nbus = "{SPLIT_BUS}"\nnamespace = "{namespace}"\n' + simulate.as_layer()


@dataclass
class _Target:
    name: str
    front: ServerProcess  # where the requests go
    seeded: Seeded | None = None
    rounds: dict[str, list[Summary]] = field(default_factory=dict)


async def _measure(targets: list[_Target], args: argparse.Namespace) -> None:
    """Round after round, each route on each target in turn: drift (the shared machine's other
    load, a warmer cache) falls on all three alike, and each figure is the median of its rounds."""
    for target in targets:
        target.seeded = await seed_over_api(target.name, target.front.base_url, args)
    for round_ in range(args.rounds):
        for scenario in args.scenarios:
            for target in targets:
                assert target.seeded is not None
                summary = await drive(
                    target.front,
                    target.seeded,
                    scenario,
                    args,
                    concurrency=1,
                    duration=args.duration,
                    warmup=0.5,
                )
                target.rounds.setdefault(scenario, []).append(summary)
        print(f"round {round_ + 1} of {args.rounds} done", flush=True)


def _median(summaries: list[Summary]) -> tuple[float, float, int, int]:
    """p50 and p99 (each the median of the rounds'), errors and requests (all rounds')."""
    return (
        statistics.median(s.p50_ms for s in summaries),
        statistics.median(s.p99_ms for s in summaries),
        sum(s.errors for s in summaries),
        sum(s.completed + s.errors for s in summaries),
    )


def _error_rate(errors: int, total: int) -> str:
    return f"{errors / total:.1%}" if total else "-"


def render(
    results: dict[str, dict[str, list[Summary]]],
    calls: RemoteCallCost,
    hops: RemoteCallCost,
    args: argparse.Namespace,
) -> tuple[str, bool]:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"**The split predicted in one process against the split measured** — {when} — "
        f"{platform.processor() or platform.machine()}, Python {platform.python_version()} — SQLite, "
        f"one request at a time, {args.rounds} rounds of {args.duration:g} s per route and target (medians); "
        f"measured here: one remote call {calls}, "
        f"a gateway's hop {hops}",
        "",
        "| route | monolith p50 / p99 ms | predicted (`tessera simulate`) p50 / p99 ms | split measured "
        "p50 / p99 ms | errors mono / predicted / split | predicted p50 vs measured (target within 25 %) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    met = True
    for scenario in args.scenarios:
        mono, predicted, split = (_median(results[t][scenario]) for t in ("monolith", "simulated", "split"))
        off = (predicted[0] - split[0]) / split[0]
        within = abs(off) <= TARGET
        met &= within
        lines.append(
            f"| `{SCENARIOS[scenario]}` | {mono[0]:.2f} / {mono[1]:.2f} | "
            f"{predicted[0]:.2f} / {predicted[1]:.2f} | {split[0]:.2f} / {split[1]:.2f} | "
            f"{_error_rate(*mono[2:])} / {_error_rate(*predicted[2:])} / {_error_rate(*split[2:])} | "
            f"{off:+.0%} ({'met' if within else 'missed'}) |"
        )
    return "\n".join(lines) + "\n", met


async def run(args: argparse.Namespace) -> bool:
    began = time.monotonic()
    calls = await asyncio.to_thread(measure_remote_call)  # (each runs an event loop of its own)
    hops = await asyncio.to_thread(measure_gateway_hop)
    print(f"one remote call: {calls}; a gateway's hop: {hops}", flush=True)
    with tempfile.TemporaryDirectory(prefix="tessera-bench-simulate-") as scratch:
        root = Path(scratch)
        config = root / "simulate.toml"
        namespace = f"bench_simulate_{uuid.uuid4().hex[:10]}"
        config.write_text(_simulation(calls, hops, namespace))
        for directory in ("monolith", "simulated", "split"):
            (root / directory).mkdir()
        sqlite = Backend("sqlite")
        monolith = ServerProcess(sqlite, root / "monolith")
        simulating = ServerProcess(
            sqlite, root / "simulated", extra_environment={"TESSERA_CONFIG": str(config)}
        )
        cluster = SplitCluster(sqlite, root / "split")
        targets = [
            _Target("monolith", monolith),
            _Target("simulated", simulating),
            _Target("split", cluster.gateway),
        ]
        try:
            for server in (monolith, simulating):
                await server.upgrade()
                await server.start()
            await cluster.upgrade()
            await cluster.start()
            await _measure(targets, args)
        finally:
            await asyncio.gather(monolith.stop(), simulating.stop(), cluster.stop())
            if problem := await remove_broker_state(SPLIT_BUS, namespace):
                print(problem, flush=True)
        results = {target.name: target.rounds for target in targets}
    text, met = render(results, calls, hops, args)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)
    print(text, flush=True)
    print(f"written: {RESULTS} ({time.monotonic() - began:.0f} s)", flush=True)
    return met


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.simulate", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--duration", type=float, default=3.0, help="measured seconds per route, target and round"
    )
    parser.add_argument("--rounds", type=int, default=5, help="rounds, each route on each target in turn")
    parser.add_argument("--tasks", type=int, default=200, help="tasks to seed")
    parser.add_argument(
        "--scenarios", nargs="+", choices=sorted(SCENARIOS), default=["get", "list", "create"]
    )
    parser.add_argument("--client", default="raw", choices=("raw", "httpx"))
    parser.add_argument("--concurrency", type=int, default=1)
    args = parser.parse_args(argv)
    return 0 if asyncio.run(run(args)) else 1


if __name__ == "__main__":
    raise SystemExit(main())
