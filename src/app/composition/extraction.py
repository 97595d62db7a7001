"""``tessera extract MODULE``: the plan for moving one module into a process of its own.

From the manifests, the contracts, the event catalog, the topology and the module's own
database: what will cross the new boundary (the callers of its contract and the methods
they may call, its public routes, which the rest will proxy, the events it publishes and
consumes), what one remote call costs on this machine (measured on the spot over loopback,
the callee in a thread of its own), the tables and rows that move, what must run where,
and the steps in order. With an output directory it also writes the plan as Markdown and
the artefacts of the move: the topology file, a compose file and a kustomize overlay.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import secrets
import statistics
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx
from litestar import Litestar, get
from sqlalchemy import func, inspect, select, table

from app.composition.gateway import proxy_route, public_routes
from app.kernel.config import RpcSettings, Settings
from app.kernel.context import RequestContextMiddleware
from app.kernel.db import Database
from app.kernel.module import Module
from app.kernel.resilience import CircuitBreaker
from app.kernel.rpc import RemoteGroup, contract_methods, internal_router, remote
from app.kernel.security import ServiceTokens
from app.kernel.signing_keys import PublishedKeys, SigningKeys, service_tokens_of
from app.kernel.telemetry.metrics import NO_ROUTE
from contracts import Contract, idempotent

__all__ = (
    "ExtractionPlan",
    "Refused",
    "RemoteCallCost",
    "RouteCalls",
    "measure_gateway_hop",
    "measure_remote_call",
    "measured_calls",
    "plan_extraction",
)

MAIN = "main"  # the group the other modules stay in, when the monolith splits
GATEWAY = "gateway"  # the public address, when the monolith splits


class Refused(Exception):
    """The module cannot be extracted as asked: the reason says why."""


@dataclass(frozen=True, slots=True)
class RemoteCallCost:
    """One remote contract call over loopback, as measured here: milliseconds."""

    samples: int
    p50_ms: float
    p99_ms: float
    latencies_ms: tuple[float, ...] = ()  # each call's, sorted

    def __str__(self) -> str:
        return f"{self.p50_ms:.2f} ms p50 / {self.p99_ms:.2f} ms p99"


@dataclass(frozen=True, slots=True)
class RouteCalls:
    """What a running instance counted for one route: its requests, and the calls they made
    into the module's contract (route ``-``: calls no request made, from handlers or background)."""

    route: str
    requests: int
    calls: int

    @property
    def per_request(self) -> float:
        return self.calls / self.requests if self.requests else 0.0


def measured_calls(metrics: str, contract: str) -> list[RouteCalls]:
    """Calls into ``contract`` per route, from an instance's ``/metrics`` (the Prometheus text)."""
    from prometheus_client.parser import text_string_to_metric_families

    requests: dict[str, float] = {}
    calls: dict[str, float] = {}
    for family in text_string_to_metric_families(metrics):
        for sample in family.samples:
            if sample.name == "tessera_http_requests_total":
                route = sample.labels["route"]
                requests[route] = requests.get(route, 0.0) + sample.value
            elif sample.name == "tessera_contract_calls_total" and sample.labels["call"].startswith(
                f"{contract}."
            ):
                route = sample.labels["route"]
                calls[route] = calls.get(route, 0.0) + sample.value
    found = [RouteCalls(route, int(requests.get(route, 0)), int(n)) for route, n in calls.items() if n]
    return sorted(found, key=lambda r: (-r.calls, r.route))


@dataclass(frozen=True, slots=True)
class ExtractionPlan:
    module: str
    contract: str  # the contract it provides: its name
    version: str  # and version
    stays: dict[str, list[str]]  # group -> modules, after the move
    group_url: str  # where the new group answers
    urls: dict[str, str]  # where the other groups answer
    gateway_added: bool  # the monolith splits: a pure gateway takes its address
    callers: dict[str, list[str]]  # calling module -> the methods its contract offers it
    calls: list[str]  # contracts the module calls, which become remote calls of its own
    routes: list[str]  # its public routes, proxied by the gateway after the move
    publishes: dict[str, list[str]]  # event -> consumers in other groups
    consumes: dict[str, str]  # event -> its publisher
    tables: dict[str, int | None]  # table -> rows (None: not counted)
    bus: str  # the bus now
    cost: RemoteCallCost | None  # one remote call (None: not measured yet)
    hop: RemoteCallCost | None = None  # one gateway's proxy hop
    measured: tuple[RouteCalls, ...] | None = None  # calls into its contract, counted by a running instance
    measured_at: str = ""
    warnings: list[str] = field(default_factory=list)

    @property
    def bus_after(self) -> str:
        return "nats" if self.bus == "inprocess" else self.bus


def plan_extraction(
    settings: Settings,
    catalog: Sequence[Module],
    module_name: str,
    *,
    recorded: Sequence[Mapping[str, Any]] = (),
) -> ExtractionPlan:
    """The plan for moving ``module_name`` into a group of its own; :class:`Refused` if it cannot.

    ``recorded``: the calls `tessera simulate` saw made inside a caller's open unit of work
    (its ``record_file``); one into this module's contract cannot cross a network as it is.
    """
    modules = {m.name: m for m in catalog}
    if module_name not in modules:
        raise Refused(f"no module {module_name!r} (modules: {', '.join(sorted(modules))})")
    module = modules[module_name]
    groups = {name: list(spec.modules) for name, spec in settings.topology.groups.items()}
    urls = {name: spec.url for name, spec in settings.topology.groups.items() if spec.url}
    if not groups:  # the monolith: a pure gateway keeps its address (and /internal from outside)
        address = f"http://{_loopback(settings.server.host)}:{settings.server.port}"
        groups = {GATEWAY: [], MAIN: [m.name for m in catalog]}
        urls = {
            GATEWAY: address,
            MAIN: f"http://{_loopback(settings.server.host)}:{settings.server.port + 1}",
        }
    home = next(name for name, members in groups.items() if module_name in members)
    if groups[home] == [module_name]:
        raise Refused(f"{module_name} already runs alone, in the group {home!r}")
    contract = module.provides.name
    if held := [r for r in recorded if str(r.get("call", "")).startswith(f"{contract}.")]:
        first = held[0]
        raise Refused(
            f"{first['call']} was called inside the open unit of work of {', '.join(first['held'])} "
            f"(recorded by tessera simulate; {len(held)} such call(s) in all): across a network it would "
            "hold that transaction open for the round trip; move the call out of the unit of work first."
        )
    stays = {name: [m for m in members if m != module_name] for name, members in groups.items()}
    stays[module_name] = [module_name]
    group_of = {m: g for g, members in stays.items() for m in members}
    methods = sorted(contract_methods(module.provides))
    callers = {
        m.name: methods for m in catalog if module.provides in m.requires and group_of[m.name] != module_name
    }
    publishes = {
        event.type_name(): sorted(m.name for m in catalog if event in m.consumes and m.name != module_name)
        for event in module.publishes
    }
    consumes = {
        event.type_name(): next((m.name for m in catalog if event in m.publishes), "?")
        for event in module.consumes
    }
    return ExtractionPlan(
        module=module_name,
        contract=module.provides.name,
        version=module.provides.version,
        stays=stays,
        group_url=_url_beside(urls),
        urls=urls,
        gateway_added=not settings.topology.groups,
        callers=callers,
        calls=sorted(f"{c.name} {c.version}" for c in module.requires),
        routes=public_routes(module),
        publishes=publishes,
        consumes=consumes,
        tables=asyncio.run(_tables(settings, module_name)),
        bus=settings.events.bus,
        cost=None,
    )


def _loopback(host: str) -> str:
    """Where this machine reaches a server bound to ``host`` (every interface: loopback)."""
    try:
        return "127.0.0.1" if ipaddress.ip_address(host).is_unspecified else host
    except ValueError:  # a name
        return host


def _url_beside(urls: dict[str, str]) -> str:
    """A URL for the new group: the others' host, the port after their highest."""
    parsed = [urlsplit(url) for url in urls.values()]
    ports = [u.port for u in parsed if u.port] or [8000]
    return f"http://{parsed[0].hostname if parsed else '127.0.0.1'}:{max(ports) + 1}"


async def _tables(settings: Settings, module_name: str) -> dict[str, int | None]:
    database = Database.for_module(settings, module_name, pool_size=1)
    try:
        if not database.exists():
            return {}
        async with database.read() as connection:
            names = await connection.run_sync(lambda sync: inspect(sync).get_table_names())
            return {
                name: int(
                    (await connection.execute(select(func.count()).select_from(table(name)))).scalar_one()
                )
                for name in sorted(names)
            }
    except Exception:  # unreachable or not migrated: the plan says so rather than failing
        return {}
    finally:
        await database.dispose()


# -- the cost of one remote call, measured here ------------------------------------------------


class _PingApi(Protocol):
    @idempotent
    async def ping(self, text: str) -> str: ...


_PING: Contract[_PingApi] = Contract(name="ping", version="1.0", api=_PingApi)


class _Ping:
    async def ping(self, text: str) -> str:
        return text


def measure_remote_call(samples: int = 300) -> RemoteCallCost:
    """The latency one remote contract call adds, as this machine gives it: a trivial call
    made ``samples`` times through the same adapter, service tokens and HTTP a split uses,
    to a callee in a thread (and event loop) of its own, over loopback."""
    key = secrets.token_urlsafe(48)

    def tokens(group: str, callers: dict[str, PublishedKeys] | None = None) -> ServiceTokens:
        derivation = service_tokens_of(group)
        return ServiceTokens(
            keys=lambda: SigningKeys(key, derivation=derivation),
            group=group,
            ttl_seconds=60,
            callers=callers or {},
        )

    caller = tokens("caller")

    async def caller_keys() -> dict[str, Any]:
        return caller.jwks()

    callee = tokens("callee", {"caller": PublishedKeys(caller_keys, refresh_seconds=3600)})
    app = Litestar(
        route_handlers=[internal_router(_PING, lambda: _Ping(), tokens=callee)], openapi_config=None
    )

    async def measure(port: int) -> list[float]:
        async with httpx.AsyncClient() as http:
            api = remote(
                _PING,
                group=RemoteGroup(
                    name="callee", url=f"http://127.0.0.1:{port}", breaker=CircuitBreaker("callee")
                ),
                http=http,
                tokens=caller,
                settings=RpcSettings(),
            )
            return await _timed(lambda: api.ping("x"), samples)

    with _serving(app) as port:
        return _cost(asyncio.run(measure(port)))


@get("/api/v1/ping", sync_to_thread=False)
def _pong() -> dict[str, bool]:
    return {"pong": True}


def measure_gateway_hop(samples: int = 300) -> RemoteCallCost:
    """The latency a pure gateway adds to a public request, as this machine gives it: a small
    GET through the gateway's own proxy, less the same GET sent straight to the group behind it
    (its median), ``samples`` times each, over loopback."""
    with _serving(Litestar(route_handlers=[_pong], openapi_config=None)) as behind:
        owner = RemoteGroup(name="behind", url=f"http://127.0.0.1:{behind}", breaker=CircuitBreaker("behind"))
        forwarding = httpx.AsyncClient()  # used on the gateway's own loop only
        gateway = Litestar(
            route_handlers=[proxy_route("/api/v1/ping", owner, forwarding, timeout=5.0)], openapi_config=None
        )
        gateway.asgi_handler = RequestContextMiddleware(gateway.asgi_handler)
        with _serving(gateway) as front:

            async def measure() -> tuple[list[float], list[float]]:
                async with httpx.AsyncClient() as http:
                    direct = await _timed(lambda: http.get(f"http://127.0.0.1:{behind}/api/v1/ping"), samples)
                    proxied = await _timed(lambda: http.get(f"http://127.0.0.1:{front}/api/v1/ping"), samples)
                    return direct, proxied

            direct, proxied = asyncio.run(measure())
    floor = statistics.median(direct)
    return _cost([max(0.0, t - floor) for t in proxied])


async def _timed(call: Callable[[], Awaitable[Any]], samples: int) -> list[float]:
    for _ in range(20):  # warm: connections, keys fetched, caches
        await call()
    took = []
    for _ in range(samples):
        started = time.perf_counter()
        await call()
        took.append((time.perf_counter() - started) * 1000)
    return took


def _cost(took: list[float]) -> RemoteCallCost:
    took = sorted(took)
    return RemoteCallCost(
        samples=len(took),
        p50_ms=statistics.median(took),
        p99_ms=took[min(len(took) - 1, int(len(took) * 0.99))],
        latencies_ms=tuple(round(t, 3) for t in took),
    )


@contextmanager
def _serving(app: Litestar) -> Iterator[int]:
    """``app`` served on a free loopback port by uvicorn, in a thread and event loop of its own."""
    import uvicorn

    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_config=None, log_level="warning", lifespan="off", access_log=False
    )
    server = uvicorn.Server(config)
    quiet = logging.getLogger("httpx")  # a line per request otherwise
    level, quiet.level = quiet.level, logging.WARNING
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("a measuring server did not start")
            time.sleep(0.01)
        yield server.servers[0].sockets[0].getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        quiet.setLevel(level)


# -- the plan as Markdown, and the artefacts -------------------------------------------------------


def markdown(plan: ExtractionPlan) -> str:
    """The plan, for people: what crosses, what it costs, what moves, what runs where, the steps."""
    cost = plan.cost
    per_call = str(cost) if cost else "not measured"
    per_hop = str(plan.hop) if plan.hop else "not measured"
    lines = [
        f"# Extracting {plan.module} into a process of its own",
        "",
        f"`{plan.module}` provides the contract {plan.contract} {plan.version}. After the move it runs alone",
        f"in the group `{plan.module}` at {plan.group_url}; "
        + "; ".join(
            f"`{g}` keeps {', '.join(ms) or 'no module (a gateway)'}"
            for g, ms in plan.stays.items()
            if g != plan.module
        )
        + ".",
        "",
        "## What crosses the new boundary",
        "",
        f"One remote call, measured here over loopback ({cost.samples if cost else 0} calls: the adapter, a "
        f"service token each way, HTTP, JSON): **{per_call}** added per call, against a local call's "
        "microseconds.",
        "",
    ]
    if plan.callers:
        lines += ["| calling module | may call (each call becomes remote: + the cost above) |", "|---|---|"]
        lines += [f"| {c} | {', '.join(ms)} |" for c, ms in plan.callers.items()]
    else:
        lines.append("No other module calls its contract.")
    lines.append("")
    if plan.routes:
        lines += [
            f"Its public routes, proxied by another group after the move (+ one hop each, {per_hop}):",
            "",
            *(f"- `{r}`" for r in plan.routes),
            "",
        ]
    if plan.gateway_added:
        lines += [
            f"The monolith's address ({plan.urls[GATEWAY]}) becomes a pure gateway's, which proxies every",
            f"public route to the group that serves it (+ one hop each, {per_hop}) and never /internal.",
            "",
        ]
    if plan.measured is not None:
        lines += _measured(plan, cost)
    if plan.calls:
        lines += [f"It calls {', '.join(plan.calls)}: from its own process, each call remote.", ""]
    if plan.publishes or plan.consumes:
        lines += ["| event | direction | other side |", "|---|---|---|"]
        lines += [f"| {e} | published | {', '.join(cs) or '-'} |" for e, cs in plan.publishes.items()]
        lines += [f"| {e} | consumed | {p} |" for e, p in plan.consumes.items()]
        lines.append("")
    lines += ["## What moves", ""]
    if plan.tables:
        lines += ["| table | rows |", "|---|---:|"]
        lines += [f"| {t} | {'?' if n is None else f'{n:,}'} |" for t, n in plan.tables.items()]
    else:
        lines.append("No database of this module was found (not migrated yet): nothing to move.")
    lines += [
        "",
        "## What must run where",
        "",
        f"- events: {plan.bus_after}"
        + (
            " (today in-process: events must cross processes through a broker)"
            if plan.bus != plan.bus_after
            else ""
        ),
        f"- `{plan.module}`'s database: its SQLite file (`data/{plan.module}.db`) or its PostgreSQL schema "
        f"`{plan.module}` goes with it; the other groups never open it",
        f"- the new group's URL ({plan.group_url}) must be reachable from the groups that call it",
        "",
        "## Steps, in order",
        "",
        *(f"{n}. {step}" for n, step in enumerate(_steps(plan), start=1)),
        "",
    ]
    return "\n".join(lines)


def _measured(plan: ExtractionPlan, cost: RemoteCallCost | None) -> list[str]:
    """The calls a running instance counted into the module's contract, and what they would add."""
    assert plan.measured is not None
    if not plan.measured:
        return [f"{plan.measured_at} counted no call into {plan.contract} since it started.", ""]
    p50 = cost.p50_ms if cost else 0.0
    lines = [
        f"Counted by {plan.measured_at} since it started (`tessera_contract_calls`), and what each",
        "request of the route would wait more once they are remote (calls per request times a call's p50):",
        "",
        "| route | requests | calls into the contract | per request | added per request, p50 |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in plan.measured:
        if row.route == NO_ROUTE:
            lines.append(f"| (no request: event handlers, background work) | - | {row.calls:,} | - | - |")
        else:
            added = f"{row.per_request * p50:.2f} ms"
            lines.append(
                f"| `{row.route}` | {row.requests:,} | {row.calls:,} | {row.per_request:.2f} | {added} |"
            )
    return [*lines, ""]


def _steps(plan: ExtractionPlan) -> list[str]:
    steps = []
    if plan.bus != plan.bus_after:
        steps.append(
            'Run NATS JetStream where every group reaches it, and set `events.bus = "nats"` (`nats_url`).'
        )
    steps += [
        "Drain the outboxes (`tessera events status`: nothing pending), then stop the process(es).",
        f"Back up `{plan.module}` (`tessera db backup DIR --module {plan.module}`) and move its database "
        "where the new process reads it (same data dir, its own URL, or `pg_dump -n` of its schema).",
        "Give every process `topology.toml` (beside this plan) as its configuration (`TESSERA_CONFIG`).",
        "`tessera db upgrade` (each process checks its modules are current before it serves).",
        f"Start the other group(s), then `tessera serve --group {plan.module}` (each: `/health/ready`).",
        "Check the public flow at the public address, and the events' backlog (`tessera events status`).",
    ]
    return steps


def artefacts(plan: ExtractionPlan, out: Path) -> dict[Path, str]:
    """What the move needs besides the plan: the topology, a compose file, a kustomize overlay."""
    groups = plan.stays
    topology = [f"# Written by `tessera extract {plan.module}`: {plan.module} in a group of its own.", ""]
    if plan.bus != plan.bus_after:
        topology += ["[events]", f'bus = "{plan.bus_after}"', ""]
    k8s_topology = [f"# {plan.module} in a group of its own; each group found by Kubernetes DNS.", ""]
    for group, members in groups.items():
        listed = "[" + ", ".join(f'"{m}"' for m in members) + "]"
        url = plan.group_url if group == plan.module else plan.urls[group]
        topology += [f"[topology.groups.{group}]", f"modules = {listed}", f'url = "{url}"', ""]
        k8s_topology += [
            f"[topology.groups.{group}]",
            f"modules = {listed}",
            f'url = "http://tessera-{group}:8000"',
            "",
        ]
    k8s = Path(os.path.relpath(_repository() / "deploy" / "k8s", out / "k8s"))
    files = {
        out / "PLAN.md": markdown(plan),
        out / "topology.toml": "\n".join(topology),
        out / "compose.yml": _compose(plan, groups),
        out / "k8s" / "kustomization.yaml": _kustomization(plan, groups, k8s),
        out / "k8s" / "topology.toml": "\n".join(k8s_topology),
    }
    for group, members in groups.items():
        files[out / "k8s" / group / "kustomization.yaml"] = _group_kustomization(plan, group, members, k8s)
    return files


def _public_group(plan: ExtractionPlan) -> str:
    """The group that takes outside traffic: a pure gateway if there is one, else the rest."""
    return next((g for g, members in plan.stays.items() if not members), MAIN)  # (none: as configured)


def _repository() -> Path:
    return Path(__file__).resolve().parents[3]


def _compose(plan: ExtractionPlan, groups: dict[str, list[str]]) -> str:
    lines = [
        f"# {plan.module} in a process of its own beside the rest. The services each group needs",
        "# (PostgreSQL, NATS, the secrets) as in deploy/compose/split.yml: docker compose -f compose.yml up",
        "services:",
    ]
    for group in groups:
        lines += [
            f"  {group}:",
            "    image: tessera:latest",
            f'    command: ["tessera", "serve", "--group", "{group}"]',
            "    environment:",
            "      TESSERA_PROFILE: production",
            "      TESSERA_CONFIG: /etc/tessera/topology.toml",
            "    volumes:",
            "      - ./topology.toml:/etc/tessera/topology.toml:ro",
        ]
    return "\n".join(lines) + "\n"


def _kustomization(plan: ExtractionPlan, groups: dict[str, list[str]], k8s: Path) -> str:
    return "\n".join(
        [
            f"# {plan.module} in a Deployment of its own (secrets as in deploy/k8s/overlays/monolith):",
            "#   kubectl apply -k .",
            "apiVersion: kustomize.config.k8s.io/v1beta1",
            "kind: Kustomization",
            "namespace: tessera",
            "resources:",
            f"  - {k8s / 'base'}",
            *(f"  - {group}" for group in groups),
            "configMapGenerator:",
            "  - name: tessera-config",
            "    behavior: merge",
            "    files:",
            "      - topology.toml",
            "images:",
            "  - name: tessera",
            "    newName: registry.example.com/tessera",
            "    newTag: 0.1.0",
            "",
        ]
    )


def _group_kustomization(plan: ExtractionPlan, group: str, members: list[str], k8s: Path) -> str:
    up = Path("..") / k8s
    components = [up / "components" / f"database-{m}" for m in members]
    if "identity" in members:
        components.append(up / "components" / "token-key")  # the users' token key, where tokens are made
    if group == _public_group(plan):
        components.append(up / "components" / "public")  # it keeps the public address
    env = f"{{name: TESSERA_GROUP, value: {group}}}"
    return "\n".join(
        [
            f"# The {group} group: {', '.join(members) or 'no module'}.",
            "apiVersion: kustomize.config.k8s.io/v1beta1",
            "kind: Kustomization",
            f"nameSuffix: -{group}",
            "labels:",
            "  - pairs:",
            f"      app.kubernetes.io/component: {group}",
            "    includeSelectors: true",
            "    includeTemplates: true",
            "resources:",
            f"  - {up / 'group'}",
            "components:",
            *(f"  - {c}" for c in components),
            "patches:",
            "  - target:",
            "      kind: Deployment",
            "    patch: |-",
            "      - op: add",
            "        path: /spec/template/spec/containers/0/env/-",
            f"        value: {env}",
            "      - op: add",
            "        path: /spec/template/spec/initContainers/0/env/-",
            f"        value: {env}",
            "",
        ]
    )
