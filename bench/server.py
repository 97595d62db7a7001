"""The server under test: a real ``tessera serve`` subprocess on loopback, and its database."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx

__all__ = (
    "POSTGRES_ADMIN_DSN",
    "POSTGRES_BENCH_URL",
    "REPO_ROOT",
    "Backend",
    "ServerError",
    "ServerProcess",
    "SplitCluster",
    "prepare_postgres",
)

REPO_ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
TESSERA = str(VENV_BIN / "tessera")
READY_DEADLINE = 30.0
UPGRADE_DEADLINE = 60.0
STOP_GRACE = 10.0

POSTGRES_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
POSTGRES_BENCH_DB = "tessera_bench"
POSTGRES_BENCH_URL = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{POSTGRES_BENCH_DB}"
MODULE_SCHEMAS = ("identity", "tasks", "notifications", "activity", "accounts")
# The split topology: one process per group, started in this order (the gateway is public).
GROUPS = ("identity", "tasks", "notifications", "activity", "gateway")
GROUP_MODULES = {
    "identity": ("identity", "accounts"),
    "tasks": ("tasks",),
    "notifications": ("notifications",),
    "activity": ("activity",),
    "gateway": (),
}
NATS_URL = "nats://127.0.0.1:4222"
RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672/"
CLEANUP_DEADLINE = 10.0  # removing the run's stream, or exchange and queues, from the broker
SPLIT_BUS = "nats"  # a split needs a broker; NATS JetStream on loopback, a namespace per run


class ServerError(Exception):
    """The server could not be migrated or started; the message says why."""


@dataclass(frozen=True)
class Backend:
    name: str  # "sqlite" | "postgres"
    database_url: str | None = None  # None: the default, one SQLite file per module


async def prepare_postgres() -> str | None:
    """Make an empty ``tessera_bench`` database; None when ready, else why PostgreSQL is skipped."""
    try:
        import asyncpg
    except ImportError:
        return "asyncpg is not installed"
    try:
        admin = await asyncpg.connect(POSTGRES_ADMIN_DSN, timeout=3)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        return f"PostgreSQL not reachable at 127.0.0.1:5432 as postgres ({type(exc).__name__}: {exc})"
    try:
        exists = await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", POSTGRES_BENCH_DB)
        if not exists:
            await admin.execute(f'CREATE DATABASE "{POSTGRES_BENCH_DB}"')
    finally:
        await admin.close()
    bench = await asyncpg.connect(POSTGRES_ADMIN_DSN.rsplit("/", 1)[0] + f"/{POSTGRES_BENCH_DB}", timeout=3)
    try:
        for schema in MODULE_SCHEMAS:
            await bench.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await bench.close()
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def server_environment(backend: Backend, data_dir: Path, config: Path | None = None) -> dict[str, str]:
    """The inherited environment without any TESSERA_* variable, plus the bench's own.

    Without ``config`` the ``dev`` profile (a generated signing key); with it, that file
    (a split topology, which generates its keys itself) and no profile.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("TESSERA_")}
    if config is None:
        env["TESSERA_PROFILE"] = "dev"
    else:
        env["TESSERA_CONFIG"] = str(config)
    env["TESSERA_DATA_DIR"] = str(data_dir)
    # Seeding signs many users up and in from one address; the limits stay in place, raised.
    env["TESSERA_THROTTLE__LOGINS_PER_ADDRESS_PER_MINUTE"] = "1000000"
    env["TESSERA_THROTTLE__REGISTRATIONS_PER_ADDRESS_PER_MINUTE"] = "1000000"
    if backend.database_url:
        env["TESSERA_DATABASE__URL"] = backend.database_url
    env["PYTHONUNBUFFERED"] = "1"
    return env


@dataclass
class ServerProcess:
    """One server process (the monolith, or one group of a split); it logs to a file in the data dir."""

    backend: Backend
    data_dir: Path
    port: int = field(default_factory=free_port)
    process: asyncio.subprocess.Process | None = None
    group: str | None = None  # None: the monolith
    config: Path | None = None  # a TESSERA_CONFIG file (the split topology)
    extra_environment: dict[str, str] = field(default_factory=dict)  # a variant's settings (bench.telemetry)
    log_path: Path = field(init=False)
    _log: IO[bytes] | None = None

    def __post_init__(self) -> None:
        self.log_path = self.data_dir / (f"server-{self.group}.log" if self.group else "server.log")

    @property
    def name(self) -> str:
        return self.group or "monolith"

    @property
    def environment(self) -> dict[str, str]:
        return {**server_environment(self.backend, self.data_dir, self.config), **self.extra_environment}

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def upgrade(self) -> None:
        """``tessera db upgrade`` in the server's environment."""
        env = self.environment
        upgrade = await asyncio.create_subprocess_exec(
            TESSERA,
            "db",
            "upgrade",
            env=env,
            cwd=REPO_ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            output, _ = await asyncio.wait_for(upgrade.communicate(), UPGRADE_DEADLINE)
        except TimeoutError:
            upgrade.kill()
            await upgrade.wait()
            raise ServerError(f"`tessera db upgrade` took over {UPGRADE_DEADLINE:.0f} s") from None
        if upgrade.returncode != 0:
            raise ServerError(f"`tessera db upgrade` failed:\n{output.decode(errors='replace')}")

    async def start(self, command: Sequence[str] | None = None) -> None:
        """Start the server (``tessera serve`` unless told otherwise) and wait until it is ready."""
        argv = list(command) if command else [TESSERA, "serve"]
        argv += ["--port", str(self.port), "--workers", "1"]
        if self.group:
            argv += ["--group", self.group]
        self._log = self.log_path.open("ab")
        self.process = await asyncio.create_subprocess_exec(
            *argv,
            env=self.environment,
            cwd=REPO_ROOT,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=self._log,
            stderr=self._log,
            start_new_session=True,  # the harness's Ctrl-C reaches it only through stop()
        )
        await self._wait_ready()

    async def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_DEADLINE
        async with httpx.AsyncClient(base_url=self.base_url, timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self.process is not None and self.process.returncode is not None:
                    raise ServerError(
                        f"the {self.name} server exited with {self.process.returncode}:\n{self.log_tail()}"
                    )
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get("/health/ready")).status_code == 200:
                        return
                await asyncio.sleep(0.2)
        raise ServerError(
            f"{self.name}: /health/ready not 200 within {READY_DEADLINE:.0f} s:\n{self.log_tail()}"
        )

    async def stop(self) -> None:
        """SIGINT (uvicorn's graceful shutdown), then SIGKILL after a grace period."""
        process, self.process = self.process, None
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(process.wait(), STOP_GRACE)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, lines: int = 25) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no server log)"
        return "\n".join(text.splitlines()[-lines:])

    def log_problems(self, limit: int = 5) -> list[str]:
        """Warnings and errors the server logged (JSON lines), most frequent first."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return []
        found: Counter[str] = Counter()
        for line in text.splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                if line.startswith(("Traceback", "ERROR", "CRITICAL")):
                    found[line[:200]] += 1
                continue
            if isinstance(entry, dict) and entry.get("level") in ("warning", "error", "critical"):
                found[f"{entry['level']}: {entry.get('logger')}: {str(entry.get('message'))[:200]}"] += 1
        return [f"{n}x {message}" for message, n in found.most_common(limit)]


@dataclass
class SplitCluster:
    """The split topology: one ``tessera serve --group`` per module and a pure gateway.

    All share one data dir (and so the generated keys; on SQLite each module keeps its own
    database file) and one topology file written there with their ports and the events bus
    (NATS, a namespace of this run's own, removed from the broker at stop).
    """

    backend: Backend
    data_dir: Path
    servers: dict[str, ServerProcess] = field(init=False)
    namespace: str = field(default_factory=lambda: f"bench_split_{uuid.uuid4().hex[:10]}")

    def __post_init__(self) -> None:
        config = self.data_dir / "topology.toml"
        self.servers = {
            group: ServerProcess(self.backend, self.data_dir, group=group, config=config) for group in GROUPS
        }
        groups = "".join(
            f"\n[topology.groups.{group}]\n"
            f"modules = {json.dumps(list(GROUP_MODULES[group]))}\n"
            f'url = "{server.base_url}"\n'
            for group, server in self.servers.items()
        )
        events = f'[events]\nbus = "{SPLIT_BUS}"\nnamespace = "{self.namespace}"\n'
        config.write_text("[security]\ngenerate_signing_key = true\n" + events + groups, encoding="utf-8")

    @property
    def gateway(self) -> ServerProcess:
        return self.servers["gateway"]

    @property
    def environment(self) -> dict[str, str]:
        """The environment every process of the cluster runs with."""
        return self.gateway.environment

    @property
    def pids(self) -> dict[str, int]:
        return {group: server.pid for group, server in self.servers.items()}

    async def upgrade(self) -> None:
        """``tessera db upgrade`` once, for every module."""
        await self.gateway.upgrade()

    async def start(self) -> None:
        """Each group in turn (identity first), each until its /health/ready answers 200."""
        for server in self.servers.values():
            await server.start()

    async def stop(self) -> None:
        await asyncio.gather(*(server.stop() for server in self.servers.values()))
        if problem := await remove_broker_state(SPLIT_BUS, self.namespace):
            print(problem, file=sys.stderr, flush=True)

    def log_problems(self, limit: int = 5) -> list[str]:
        return [
            f"{group}: {problem}"
            for group, server in self.servers.items()
            for problem in server.log_problems(limit)
        ]


async def remove_broker_state(bus: str, namespace: str) -> str | None:
    """Delete the run's stream (NATS) or exchange and queues (RabbitMQ); None, or why not."""
    try:
        async with asyncio.timeout(CLEANUP_DEADLINE):
            if bus == "nats":
                import nats

                from app.kernel.events.nats import stream_name

                client = await nats.connect(NATS_URL, connect_timeout=2, allow_reconnect=False)
                try:
                    await client.jetstream().delete_stream(stream_name(namespace))
                finally:
                    await client.close()
            elif bus == "rabbitmq":
                import aio_pika

                from app.composition.catalog import MODULES
                from app.kernel.events.rabbitmq import exchange_name, queue_name

                async with await aio_pika.connect(RABBITMQ_URL, timeout=3) as connection:
                    channel = await connection.channel()
                    for module in MODULES:
                        if module.consumes:
                            await channel.queue_delete(queue_name(namespace, module.name))
                    await channel.exchange_delete(exchange_name(namespace))
    except Exception as exc:
        return f"could not remove namespace {namespace} from the {bus} broker: {exc!r}"
    return None
