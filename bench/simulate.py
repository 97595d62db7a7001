"""The split predicted in one process (``tessera simulate``), against the split measured.

    .venv/bin/python -m bench.simulate            # SQLite, ~2 min; bench/results/simulate.md

Three targets, one after another, the same seeded data and the same requests, one at a time
(latency, not throughput: the simulation adds the network's latency, not the split's CPU):

- the monolith;
- the monolith under ``tessera simulate``, grouped as the split is (identity with accounts,
  tasks, notifications, activity, a pure gateway), each call's crossing drawn from one remote
  call and each request's from one gateway hop, both measured on the spot — the *prediction*;
- the split itself: five processes, through its gateway — the *measurement*.

Per route: p50 / p99 and the error rate of each; the prediction's p50 against the
measurement's (issue 18: within 25 %).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from app.composition.extraction import RemoteCallCost, measure_gateway_hop, measure_remote_call
from bench.cli import SCENARIOS, drive, seed_over_api
from bench.loadgen import Summary
from bench.server import GROUP_MODULES as SPLIT_GROUPS
from bench.server import Backend, ServerProcess, SplitCluster

RESULTS = Path(__file__).parent / "results" / "simulate.md"
TARGET = 0.25  # |predicted - measured| / measured, p50 per route


def _simulation(calls: RemoteCallCost, hops: RemoteCallCost) -> str:
    remote = ["+".join(modules) for modules in SPLIT_GROUPS.values() if modules]
    return (
        "[simulate]\n"
        f"remote = {json.dumps(remote)}\n"
        "gateway = true\n"
        f"latencies_ms = {json.dumps(list(calls.latencies_ms))}\n"
        f"gateway_latencies_ms = {json.dumps(list(hops.latencies_ms))}\n"
    )


async def _monolith(
    label: str, data_dir: Path, args: argparse.Namespace, config: Path | None = None
) -> dict[str, Summary]:
    server = ServerProcess(
        Backend("sqlite"), data_dir, extra_environment={"TESSERA_CONFIG": str(config)} if config else {}
    )
    await server.upgrade()
    try:
        await server.start()
        seeded = await seed_over_api(label, server.base_url, args)
        return {s: await drive(server, seeded, s, args, concurrency=1) for s in args.scenarios}
    finally:
        await server.stop()


async def _split(data_dir: Path, args: argparse.Namespace) -> dict[str, Summary]:
    cluster = SplitCluster(Backend("sqlite"), data_dir)
    await cluster.upgrade()
    try:
        await cluster.start()
        seeded = await seed_over_api("split", cluster.gateway.base_url, args)
        return {s: await drive(cluster.gateway, seeded, s, args, concurrency=1) for s in args.scenarios}
    finally:
        await cluster.stop()


def _error_rate(summary: Summary) -> str:
    total = summary.completed + summary.errors
    return f"{summary.errors / total:.1%}" if total else "-"


def render(
    results: dict[str, dict[str, Summary]],
    calls: RemoteCallCost,
    hops: RemoteCallCost,
    args: argparse.Namespace,
) -> tuple[str, bool]:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"**The split predicted in one process against the split measured** — {when} — "
        f"{platform.processor() or platform.machine()}, Python {platform.python_version()} — SQLite, "
        f"one request at a time, {args.duration:g} s per route; measured here: one remote call {calls}, "
        f"a gateway's hop {hops}",
        "",
        "| route | monolith p50 / p99 ms | predicted (`tessera simulate`) p50 / p99 ms | split measured "
        "p50 / p99 ms | errors mono / predicted / split | predicted p50 vs measured (target within 25 %) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    met = True
    for scenario in args.scenarios:
        mono, predicted, split = (results[t][scenario] for t in ("monolith", "simulated", "split"))
        off = (predicted.p50_ms - split.p50_ms) / split.p50_ms
        within = abs(off) <= TARGET
        met &= within
        lines.append(
            f"| `{SCENARIOS[scenario]}` | {mono.p50_ms:.2f} / {mono.p99_ms:.2f} | "
            f"{predicted.p50_ms:.2f} / {predicted.p99_ms:.2f} | {split.p50_ms:.2f} / {split.p99_ms:.2f} | "
            f"{_error_rate(mono)} / {_error_rate(predicted)} / {_error_rate(split)} | "
            f"{off:+.0%} ({'met' if within else 'missed'}) |"
        )
    return "\n".join(lines) + "\n", met


async def run(args: argparse.Namespace) -> bool:
    began = time.monotonic()
    calls, hops = measure_remote_call(), measure_gateway_hop()
    print(f"one remote call: {calls}; a gateway's hop: {hops}", flush=True)
    with tempfile.TemporaryDirectory(prefix="tessera-bench-simulate-") as scratch:
        root = Path(scratch)
        config = root / "simulate.toml"
        config.write_text(_simulation(calls, hops))
        results = {
            "monolith": await _monolith("monolith", root / "monolith", args),
            "simulated": await _monolith("simulated", root / "simulated", args, config),
            "split": await _split(root / "split", args),
        }
    text, met = render(results, calls, hops, args)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)
    print(text, flush=True)
    print(f"written: {RESULTS} ({time.monotonic() - began:.0f} s)", flush=True)
    return met


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.simulate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=8.0, help="measured seconds per route and target")
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
