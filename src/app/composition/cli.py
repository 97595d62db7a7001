"""The ``tessera`` command: serve, migrate, and describe the application."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import httpx
import msgspec
import rich_click as click
from rich.console import Console, RenderableType
from rich.progress import Progress, TaskID
from rich.table import Table

from app.composition.container import Composition, CompositionError, compose
from app.kernel import surface
from app.kernel.backups import BackupError, back_up
from app.kernel.backups import restore as restore_backup
from app.kernel.config import ConfigError, GroupSettings, Settings, SimulateSettings, load_settings
from app.kernel.db import Database
from app.kernel.deployment import events_namespace
from app.kernel.events import OutboxStatus
from app.kernel.events.projections import ProjectionStatus
from app.kernel.sagas import Orchestrator, SagaRun
from app.kernel.security import resolve_signing_key, service_keys
from app.kernel.telemetry.metrics import prepare_multiprocess, serve_on_port

__all__ = ("main",)

P = ParamSpec("P")
R = TypeVar("R")


def _reports_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Turn configuration and composition errors into a plain message and exit status 1.

    Plain, not a rich panel: these messages name configuration keys and commands an
    operator copies, and land in container logs; a panel would wrap and frame them.
    Usage errors (an unknown option) still get rich-click's panel.
    """

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except (ConfigError, CompositionError, BackupError, click.ClickException) as exc:
            message = exc.format_message() if isinstance(exc, click.ClickException) else str(exc)
            click.echo(f"Error: {message}", err=True)
            raise SystemExit(1) from None

    return wrapper


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> Table:
    """Rows under a header, no rules: a reader's table that ``awk`` and ``split()`` read too."""
    table = Table(*headers, box=None, pad_edge=False, header_style="bold")
    for row in rows:
        table.add_row(*row)
    return table


def _print(renderable: RenderableType) -> None:
    console = Console()
    if console.is_terminal:
        console.print(renderable)
        return
    console.width = 10_000  # a pipe or a file: one line per row, never wrapped, no trailing blanks
    with console.capture() as captured:
        console.print(renderable, crop=False)
    for line in captured.get().splitlines():
        click.echo(line.rstrip())


def _with_composition(
    settings: Settings, work: Callable[[Composition], Awaitable[R]], group: str | None = None
) -> R:
    async def run() -> R:
        composition = compose(settings, group=group)
        try:
            return await work(composition)
        finally:
            await composition.aclose()

    return asyncio.run(run())


@click.group()
@click.version_option(package_name="tessera")
@click.pass_context
def main(context: click.Context) -> None:
    """Tessera: task management as a modular monolith with extractable services."""
    context.obj = _ModuleCommands()


class _ModuleCommands:
    """What a module's own commands get (``click.pass_obj``): the composed application, per call."""

    def run(self, provider: Any, work: Callable[[Any], Awaitable[R]]) -> R:
        async def call(composition: Composition) -> R:
            for composed in composition.modules:
                if any(p is provider for p in composed.module.container.providers.values()):
                    return await work(composed.provider(provider, "command's provider")())
            raise CompositionError(f"no module of this process has the provider {provider!r}")

        return _reports_errors(_with_composition)(load_settings(), call)


def _collect_module_commands() -> None:
    """Each module's own commands (``tessera users make-admin``) join ``tessera``."""
    from app.composition.catalog import MODULES

    for module in MODULES:
        for command in module.commands:
            main.add_command(command)


@main.command()
@click.option("--host", default=None, help="Interface to bind [config: server.host].")
@click.option(
    "--port", type=int, default=None, help="Port to bind [default: the group's URL, else server.port]."
)
@click.option("--workers", type=int, default=None, help="Worker processes [config: server.workers].")
@click.option(
    "--group",
    default=None,
    envvar="TESSERA_GROUP",
    help="Run one topology group; other modules are reached over HTTP [env: TESSERA_GROUP].",
)
@_reports_errors
def serve(host: str | None, port: int | None, workers: int | None, group: str | None) -> None:
    """Serve the web application; refuses to start if any local module's database is behind."""
    settings = load_settings()
    # Read again by every worker's app factory: the group it runs, its share of the connection budget.
    if workers is not None:
        settings = msgspec.structs.replace(
            settings, server=msgspec.structs.replace(settings.server, workers=workers)
        )
        os.environ["TESSERA_SERVER__WORKERS"] = str(workers)
    if group is not None:
        port = port or settings.topology.port_of(group)
        os.environ["TESSERA_GROUP"] = group
    # The users' token key only where identity runs: every other group verifies with its public keys.
    identity_here = (
        group is None or "identity" in settings.topology.groups.get(group, GroupSettings()).modules
    )
    keys: list[Callable[[Settings], object]] = [
        *([resolve_signing_key] if identity_here else []),
        *([functools.partial(service_keys, group=group)] if group is not None else []),
    ]
    if not settings.security.generate_signing_key:
        for key in keys:
            key(settings)  # configured keys: the first thing checked
    # Everything is checked before anything is made: no database file, no generated key.
    if namespace := _with_composition(settings, _ready_to_serve, group):
        os.environ["TESSERA_EVENTS__NAMESPACE"] = namespace
    for key in keys:
        key(settings)  # development keys are made now, before workers fork
    metrics_dir = _expose_metrics(settings, host or settings.server.host)
    try:
        _run_uvicorn(settings, host, port)
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def _run_uvicorn(settings: Settings, host: str | None, port: int | None) -> None:
    import uvicorn

    from app.kernel.server import GuardedHttpToolsProtocol

    server = settings.server
    uvicorn.run(
        "app.composition.web:serve_app",
        factory=True,
        host=host or server.host,
        port=port or server.port,
        workers=server.workers,
        log_level=server.log_level,
        log_config=None,  # uvicorn's loggers propagate to the JSON root handler
        access_log=False,
        server_header=False,
        proxy_headers=True,
        forwarded_allow_ips=server.forwarded_allow_ips,
        http=GuardedHttpToolsProtocol,  # limits on head size and read times (server.*)
        timeout_keep_alive=int(server.keep_alive_seconds),
        timeout_graceful_shutdown=max(1, round(server.shutdown_grace_seconds)),  # after the drain
    )


def _expose_metrics(settings: Settings, host: str) -> Path | None:
    """Samples of several workers go to a directory of this server's own; the metrics port, if any.

    Returns that directory, removed when the server stops.
    """
    metrics = settings.metrics
    if not metrics.enabled:
        return None
    directory = None
    if settings.server.workers > 1:
        directory = Path(tempfile.mkdtemp(prefix="tessera-metrics-"))
        prepare_multiprocess(directory)
    if metrics.port:
        serve_on_port(metrics.port, host)
    return directory


async def _ready_to_serve(composition: Composition) -> str | None:
    """Refuse what cannot serve; the events namespace this deployment derives, if it configures none."""
    behind = [s for s in await composition.migration_states() if not s.is_current]
    if behind:
        lines = [f"  {s.module}: at {s.current or 'nothing'}, code expects {s.head}" for s in behind]
        raise click.ClickException(
            "a module's database is not at the revision this code expects:\n"
            + "\n".join(lines)
            + "\nrun `tessera db upgrade` first"
        )
    await composition.check_connection_budget()
    if composition.settings.events.namespace or not composition.modules:
        return None
    deployment = await composition.deployment()
    if deployment is None:
        raise click.ClickException("no deployment id is recorded yet: run `tessera db upgrade` first")
    return events_namespace(deployment)


@main.group()
def db() -> None:
    """Each module's database: migrate, inspect."""


@db.command()
@click.option("--module", "module_name", default=None, help="Only this module.")
@_reports_errors
def upgrade(module_name: str | None) -> None:
    """Migrate every module's database (or one) to the newest revision. Safe to repeat."""
    settings = load_settings()

    async def work(composition: Composition) -> None:
        if module_name is not None:
            composition.module(module_name)  # KeyError → unknown module
        chosen = [m.name for m in composition.modules if module_name in (None, m.name)]
        with Progress(console=Console(stderr=True), transient=True) as progress:
            task = progress.add_task("migrating", total=len(chosen))

            def migrated(name: str) -> None:
                progress.update(task, advance=1, description=f"migrated {name}")

            deployment = await composition.upgrade(module_name, on_migrated=migrated)
        for state in await composition.migration_states():
            if module_name is None or state.module == module_name:
                click.echo(f"{state.module}: at {state.current}")
        namespace = composition.settings.events.namespace or events_namespace(deployment)
        click.echo(f"deployment {deployment}; events namespace {namespace}")

    try:
        _with_composition(settings, work)
    except KeyError:
        raise click.ClickException(f"no module named {module_name!r}") from None


@db.command()
@click.option(
    "--timeout",
    "timeout_seconds",
    type=float,
    default=300.0,
    show_default=True,
    help="Give up after this many seconds (exit 1).",
)
@_reports_errors
def wait(timeout_seconds: float) -> None:
    """Wait until the databases of the modules this process runs are at the newest revision.

    A pod's init container, while the release's migration Job runs: every module of
    TESSERA_GROUP's group (or every module), polled once a second, an unreachable database
    taken for one not migrated yet.
    """
    from sqlalchemy.exc import SQLAlchemyError

    group = os.environ.get("TESSERA_GROUP") or None

    async def work(composition: Composition) -> list[str]:
        deadline = asyncio.get_running_loop().time() + timeout_seconds
        while True:
            try:
                behind = [
                    f"{s.module}: at {s.current or 'nothing'}, code expects {s.head}"
                    for s in await composition.migration_states()
                    if not s.is_current
                ]
            except (OSError, SQLAlchemyError) as error:
                behind = [f"database not reachable: {type(error).__name__}"]
            if not behind or asyncio.get_running_loop().time() >= deadline:
                return behind
            await asyncio.sleep(1.0)

    behind = _with_composition(load_settings(), work, group)
    if behind:
        raise click.ClickException(f"not migrated after {timeout_seconds:g} s:\n  " + "\n  ".join(behind))
    click.echo("every module's database is at the newest revision")


@db.command()
@click.argument("module_name", metavar="MODULE")
@click.argument("revision")
@_reports_errors
def downgrade(module_name: str, revision: str) -> None:
    """Take MODULE's database back to REVISION (a rollback: README, "Rolling back").

    Run it with the newer release's image, which holds the steps back, before the older
    release starts. What the newer revisions added (a column, a table) is dropped with them.
    """

    async def work(composition: Composition) -> str | None:
        migrations = composition.module(module_name).migrations
        await migrations.downgrade(revision)
        return await migrations.current()

    try:
        now = _with_composition(load_settings(), work)
    except KeyError:
        raise click.ClickException(f"no module named {module_name!r}") from None
    click.echo(f"{module_name}: at {now or 'nothing'}")


@db.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--module", "module_name", default=None, help="Only this module.")
@_reports_errors
def backup(directory: Path, module_name: str | None) -> None:
    """Copy each module's SQLite database into DIRECTORY, consistent while servers run."""
    for database in _databases(module_name):
        click.echo(f"{database.module}: {back_up(database, directory)}")


@db.command()
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--module", "module_name", default=None, help="Only this module.")
@_reports_errors
def restore(directory: Path, module_name: str | None) -> None:
    """Write each module's copy in DIRECTORY back over its database. Stop every server first."""
    for database in _databases(module_name):
        click.echo(f"{database.module}: restored from {restore_backup(database, directory)}")


def _databases(module_name: str | None) -> list[Database]:
    """Every module's database (or one's), as the configuration places them."""

    async def work(composition: Composition) -> list[Database]:
        return [m.database for m in composition.modules if module_name in (None, m.name)]

    chosen = _with_composition(load_settings(), work)
    if not chosen:
        raise click.ClickException(f"no module named {module_name!r}")
    return chosen


@db.command()
@_reports_errors
def current() -> None:
    """Show each module's revision and whether it is the newest."""
    states = _with_composition(load_settings(), Composition.migration_states)
    for state in states:
        verdict = "up to date" if state.is_current else f"behind (newest: {state.head})"
        click.echo(f"{state.module}: {state.current or 'empty'}  {verdict}")


@main.command("modules")
@_reports_errors
def list_modules() -> None:
    """Each module, its contracts and where it runs in the active topology: table and Mermaid."""
    from app.composition.catalog import MODULES

    settings = load_settings()
    runs_in = {
        module: f"{name} {spec.url}".strip()
        for name, spec in settings.topology.groups.items()
        for module in spec.modules
    }
    rows = [
        (
            m.name,
            f"{m.provides.name} {m.provides.version}",
            ", ".join(c.name for c in m.requires) or "-",
            runs_in.get(m.name, "this process"),
            m.summary,
        )
        for m in MODULES
    ]
    _print(_table(("module", "provides", "requires", "runs in", "summary"), rows))
    click.echo("\n```mermaid\ngraph LR")
    for m in MODULES:
        click.echo(f"  {m.name}[{m.name}]")
    for m in MODULES:
        for contract in m.requires:
            click.echo(f"  {m.name} -->|{contract.name} {contract.version}| {_provider_of(contract.name)}")
    for m in MODULES:  # events, dotted: publisher -.-> consumer
        for event in m.consumes:
            publisher = next(p.name for p in MODULES if event in p.publishes)
            click.echo(f"  {publisher} -.->|{event.__name__}| {m.name}")
    click.echo("```")


def _provider_of(contract_name: str) -> str:
    from app.composition.catalog import MODULES

    return next(m.name for m in MODULES if m.provides.name == contract_name)


@main.command()
@click.argument("module_name", metavar="MODULE")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Also write the plan (PLAN.md), topology.toml, compose.yml and a kustomize overlay here.",
)
@click.option(
    "--samples",
    type=click.IntRange(10, 10_000),
    default=300,
    show_default=True,
    help="Remote calls timed to measure one's cost here.",
)
@click.option(
    "--recorded",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Calls `tessera simulate --record` saw made inside an open unit of work: such a call refuses.",
)
@click.option(
    "--from",
    "measured_at",
    default=None,
    metavar="URL|FILE",
    help="A running instance (its /metrics) or a snapshot of its metrics: the calls it counted, per route.",
)
@_reports_errors
def extract(
    module_name: str, out: Path | None, samples: int, recorded: Path | None, measured_at: str | None
) -> None:
    """Plan moving MODULE into a process of its own: what crosses, what it costs, what moves, the steps.

    Writes nothing without --out. Exit 2 when the module cannot be extracted (the reason is printed).
    """
    from app.composition import extraction
    from app.composition.catalog import MODULES

    settings = load_settings()
    held = (
        [json.loads(line) for line in recorded.read_text().splitlines() if line.strip()] if recorded else []
    )
    try:
        plan = extraction.plan_extraction(
            settings, MODULES, module_name, recorded=held
        )  # refused before timing
    except extraction.Refused as refused:
        click.echo(f"Refused: {refused}", err=True)
        raise SystemExit(2) from None
    cost, hop = extraction.measure_remote_call(samples), extraction.measure_gateway_hop(samples)
    plan = dataclasses.replace(plan, cost=cost, hop=hop)
    if measured_at is not None:
        counted = extraction.measured_calls(_metrics_of(measured_at), plan.contract)
        plan = dataclasses.replace(plan, measured=tuple(counted), measured_at=measured_at)
    click.echo(extraction.markdown(plan))
    if out is not None:
        for path, text in extraction.artefacts(plan, out).items():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            click.echo(f"wrote {path}", err=True)


def _metrics_of(source: str) -> str:
    """The Prometheus text of a running instance (its URL) or of a snapshot of it (a file)."""
    if Path(source).is_file():
        return Path(source).read_text()
    try:
        scraped = httpx.get(f"{source.rstrip('/')}/metrics", timeout=10)
        scraped.raise_for_status()
    except httpx.HTTPError as exc:
        raise click.ClickException(
            f"--from {source}: neither a file nor an instance's metrics ({exc})"
        ) from None
    return scraped.text


@main.command(context_settings={"ignore_unknown_options": True})
@click.option(
    "--remote",
    required=True,
    help="The groups that would run apart, comma-separated, each its modules joined by '+' "
    "(identity+accounts,tasks); the other modules stay together.",
)
@click.option(
    "--latency-ms", type=float, default=None, help="Each crossing's latency [default: measured here]."
)
@click.option(
    "--failure-rate",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="The share of crossings that fail (dependency.unavailable).",
)
@click.option(
    "--gateway/--no-gateway",
    default=True,
    show_default=True,
    help="Public API requests cross a pure gateway first.",
)
@click.option(
    "--record",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Note here each call made inside the caller's open unit of work (for `tessera extract --recorded`).",
)
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@_reports_errors
def simulate(
    remote: str,
    latency_ms: float | None,
    failure_rate: float,
    gateway: bool,
    record: Path | None,
    command: tuple[str, ...],
) -> None:
    """Run COMMAND (`tessera serve`, a benchmark, pytest) as if the modules were split: in one process,
    each call between groups crossing a simulated network (strict boundary, latency, failures).

    The latency is drawn from one remote call's, measured here on the spot, unless --latency-ms.
    """
    from app.composition import extraction
    from app.composition.catalog import MODULES

    groups = [g.strip() for g in remote.split(",") if g.strip()]
    names = {m.name for m in MODULES}
    if unknown := sorted({m for g in groups for m in g.split("+")} - names):
        raise click.ClickException(
            f"--remote: no module {', '.join(unknown)} (modules: {', '.join(sorted(names))})"
        )
    if latency_ms is not None:
        latencies, hops = [latency_ms], [latency_ms]
    else:
        cost, hop = extraction.measure_remote_call(), extraction.measure_gateway_hop()
        latencies, hops = list(cost.latencies_ms), list(hop.latencies_ms)
        click.echo(f"measured here: one remote call {cost}; a gateway's hop {hop}", err=True)
    simulation = SimulateSettings(
        remote=groups,
        gateway=gateway,
        latencies_ms=latencies,
        gateway_latencies_ms=hops,
        failure_rate=failure_rate,
        record_file=str(record.resolve()) if record else "",
    )
    with tempfile.NamedTemporaryFile("w", suffix=".toml", prefix="tessera-simulate-") as config:
        config.write(simulation.as_layer())
        config.flush()
        layers = [p for p in os.environ.get("TESSERA_CONFIG", "").split(os.pathsep) if p] + [config.name]
        environment = {**os.environ, "TESSERA_CONFIG": os.pathsep.join(layers)}
        # The operator's own command, run as they typed it (no shell).
        raise SystemExit(subprocess.run(list(command), env=environment, check=False).returncode)  # noqa: S603


@main.group()
def contracts() -> None:
    """Each contract's public surface against its snapshot: the breaking-change gate."""


def _contracts(names: Sequence[str]) -> list[Any]:
    from app.composition.catalog import MODULES

    provided = {m.provides.name: m.provides for m in MODULES}
    unknown = sorted(set(names) - provided.keys())
    if unknown:
        raise click.ClickException(
            f"no contract {', '.join(unknown)} (contracts: {', '.join(sorted(provided))})"
        )
    return [provided[n] for n in sorted(names or provided)]


def _report(verdicts: Sequence[surface.Verdict]) -> None:
    """Each contract's verdict and changes; exit 1 if any contract is not as its version says."""
    for verdict in verdicts:
        status = "ok" if verdict.ok else "FAILED"
        click.echo(f"{verdict.contract} {verdict.version} ({verdict.snapshot.name}): {status}")
        for change in verdict.changes:
            click.echo(f"  {change}")
        if verdict.problem:
            click.echo(f"  -> {verdict.problem}")
    if not all(v.ok for v in verdicts):
        raise SystemExit(1)


@contracts.command("check")
@click.argument("names", nargs=-1, metavar="[CONTRACT]...")
@_reports_errors
def contracts_check(names: tuple[str, ...]) -> None:
    """Fail (exit 1) if a contract changed without the version and snapshot its change needs."""
    _report([surface.check(contract) for contract in _contracts(names)])


@contracts.command("snapshot")
@click.argument("names", nargs=-1, metavar="[CONTRACT]...")
@_reports_errors
def contracts_snapshot(names: tuple[str, ...]) -> None:
    """Write each contract's surface beside the contracts, if its version covers its changes."""
    _report([surface.write_snapshot(contract) for contract in _contracts(names)])


@main.group()
def events() -> None:
    """Each module's outbox: backlog, failures, resubmission."""


@events.command("status")
@_reports_errors
def events_status() -> None:
    """Pending, failed and kept-published events per module, and how far behind the oldest is."""

    async def work(composition: Composition) -> list[OutboxStatus]:
        return [await m.outbox.status() for m in composition.modules if m.module.publishes]

    statuses = _with_composition(load_settings(), work)
    rows = [
        (s.module, str(s.pending), str(s.failed), str(s.published), f"{s.lag_seconds:.1f}s") for s in statuses
    ]
    _print(_table(("module", "pending", "failed", "published", "lag"), rows))


@events.command("retry")
@click.option("--module", "module_name", default=None, help="Only this module's outbox.")
@click.option("--event-id", type=click.UUID, default=None, help="Only this event.")
@_reports_errors
def events_retry(module_name: str | None, event_id: uuid.UUID | None) -> None:
    """Resubmit events marked failed: back to pending, with a fresh count of attempts."""

    async def work(composition: Composition) -> dict[str, int]:
        chosen = [composition.module(module_name)] if module_name else composition.modules
        return {m.name: await m.outbox.retry_failed(event_id) for m in chosen if m.module.publishes}

    try:
        resubmitted = _with_composition(load_settings(), work)
    except KeyError:
        raise click.ClickException(f"no module named {module_name!r}") from None
    for module, count in resubmitted.items():
        click.echo(f"{module}: {count} resubmitted")


@main.group()
def projections() -> None:
    """Read models built from event stores: how far behind each is, and rebuilding one."""


@projections.command("status")
@_reports_errors
def projections_status() -> None:
    """Each projection's checkpoint, its store's head, how many events behind it is, its rows."""

    async def work(composition: Composition) -> list[ProjectionStatus]:
        return [status for projector in composition.projectors for status in await projector.status()]

    rows = [
        (s.module, s.name, str(s.position), str(s.head), str(s.lag), str(s.rows))
        for s in _with_composition(load_settings(), work)
    ]
    _print(_table(("module", "projection", "position", "head", "behind", "rows"), rows))


@projections.command("rebuild")
@click.argument("name", required=False)
@_reports_errors
def projections_rebuild(name: str | None) -> None:
    """Rebuild projection NAME (every projection without it) from its whole event store.

    Built beside the live one and swapped in at once: readers see the old model or the new,
    never half of one. Safe while the server keeps serving.
    """

    async def work(composition: Composition) -> list[tuple[str, str, int]]:
        chosen = [
            (projector, projection)
            for projector in composition.projectors
            for projection in projector.names
            if name in (None, projection)
        ]
        if not chosen:
            known = [p for projector in composition.projectors for p in projector.names]
            raise click.ClickException(f"no projection named {name!r} (projections: {', '.join(known)})")
        done = []
        with Progress(console=Console(stderr=True), transient=True) as progress:
            for projector, projection in chosen:
                bar = progress.add_task(f"rebuilding {projection}", total=None)

                def advanced(position: int, head: int, bar: TaskID = bar) -> None:
                    progress.update(bar, completed=position, total=head)

                read = await projector.rebuild(projection, progress=advanced)
                progress.update(bar, description=f"rebuilt {projection}")
                done.append((projector.module, projection, read))
        return done

    for module, projection, read in _with_composition(load_settings(), work):
        click.echo(f"{module}: {projection} rebuilt from {read} events")


@main.group()
def sagas() -> None:
    """Work that spans modules (account closures): list the runs, show one, retry a stuck one."""


def _sagas_of(composition: Composition) -> list[Orchestrator]:
    if not composition.orchestrators:
        raise click.ClickException("no module of this process orchestrates sagas")
    return composition.orchestrators


@sagas.command("list")
@click.option("--state", "states", multiple=True, help="Only runs in this state (repeatable).")
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@_reports_errors
def sagas_list(states: tuple[str, ...], limit: int) -> None:
    """The newest saga runs first: their state, the step in hand, why they turned back or stick."""

    async def work(composition: Composition) -> list[SagaRun]:
        found = [run for o in _sagas_of(composition) for run in await o.runs(states=states, limit=limit)]
        return sorted(found, key=lambda run: run.created_at, reverse=True)[:limit]

    rows = [
        (
            str(run.id),
            run.saga,
            run.key,
            run.state,
            run.step or "-",
            f"{run.created_at:%Y-%m-%d %H:%M:%S}",
            run.reason or "",
        )
        for run in _with_composition(load_settings(), work)
    ]
    _print(_table(("id", "saga", "key", "state", "step", "started", "reason"), rows))


@sagas.command("show")
@click.argument("saga_id", type=click.UUID)
@_reports_errors
def sagas_show(saga_id: uuid.UUID) -> None:
    """One run, step by step: state, attempts, outcome, last error."""

    async def work(composition: Composition) -> SagaRun | None:
        for orchestrator in _sagas_of(composition):
            if (run := await orchestrator.get(saga_id)) is not None:
                return run
        return None

    run = _with_composition(load_settings(), work)
    if run is None:
        raise click.ClickException(f"no saga run {saga_id}")
    click.echo(
        f"{run.saga} {run.id} about {run.key}: {run.state}" + (f" ({run.reason})" if run.reason else "")
    )
    rows = [
        (
            s.name,
            s.state,
            str(s.attempts),
            msgspec.json.encode(s.outcome).decode() if s.outcome else "",
            s.error or "",
        )
        for s in run.steps
    ]
    _print(_table(("step", "state", "attempts", "outcome", "last error"), rows))


@sagas.command("retry")
@click.argument("saga_id", type=click.UUID)
@_reports_errors
def sagas_retry(saga_id: uuid.UUID) -> None:
    """Try a waiting or stuck run's step now, its failures counted afresh (the server runs it)."""

    async def work(composition: Composition) -> SagaRun:
        for orchestrator in _sagas_of(composition):
            if await orchestrator.get(saga_id) is not None:
                return await orchestrator.retry(saga_id)
        raise click.ClickException(f"no saga run {saga_id}")

    run = _with_composition(load_settings(), work)
    click.echo(f"{run.saga} {run.id}: {run.state}; {run.step or 'nothing'} is due now")


@main.command()
@_reports_errors
def openapi() -> None:
    """Print the OpenAPI document of the public API (every module's routes; needs no configuration)."""
    from app.composition.catalog import MODULES
    from app.composition.openapi import document

    click.echo(json.dumps(document(MODULES), indent=2))


_collect_module_commands()
