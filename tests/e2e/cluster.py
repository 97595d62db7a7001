"""Tessera as separate OS processes on loopback: one per topology group, or one monolith."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from tests.servers import TESSERA, TEST_SERVER_CONFIG, clean_env, free_port, server_process, wait_until_ready

GROUPS = ("identity", "tasks", "notifications", "activity", "gateway")
# As the sample topology (config/split.toml) places them: accounts beside identity.
GROUP_MODULES = {
    "identity": ("identity", "accounts"),
    "tasks": ("tasks",),
    "notifications": ("notifications",),
    "activity": ("activity",),
    "gateway": (),
}


class Cluster:
    """One `tessera serve --group` process per group; the gateway is the public address."""

    def __init__(self, env: dict[str, str], ports: dict[str, int], stack: ExitStack, logs: Path) -> None:
        self.env = env
        self.ports = ports
        self._stack = stack
        self._logs = logs
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    @property
    def gateway(self) -> str:
        return self.url("gateway")

    def url(self, group: str) -> str:
        return f"http://127.0.0.1:{self.ports[group]}"

    def start(self, group: str) -> None:
        # The port is given, not read from the group's URL: others may reach it through a proxy.
        args = ("--group", group, "--port", str(self.ports[group]))
        process = self._stack.enter_context(server_process(self.env, *args, log=self.log_file(group)))
        self.processes[group] = process
        wait_until_ready(self.url(group), process=process, log=self.log_file(group))

    def log_file(self, group: str) -> Path:
        """Where the group's process writes its log lines (one JSON object each)."""
        return self._logs / f"{group}.log"

    def kill(self, group: str) -> None:
        """SIGKILL: no shutdown hooks, no goodbyes."""
        process = self.processes.pop(group)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def write_config(
    path: Path, ports: dict[str, int], *, reach: dict[str, str] | None = None, events: str = ""
) -> Path:
    """A split topology on loopback; its events go through NATS unless ``events`` says otherwise.

    ``reach``: how the others reach a group, where not at its own port (through a proxy, say).
    """
    urls = {group: f"http://127.0.0.1:{port}" for group, port in ports.items()} | (reach or {})
    modules = {g: "[" + ", ".join(f'"{m}"' for m in GROUP_MODULES[g]) + "]" for g in GROUPS}
    groups = "\n".join(f'[topology.groups.{g}]\nmodules = {modules[g]}\nurl = "{urls[g]}"\n' for g in GROUPS)
    events = events or f'[events]\nbus = "nats"\nnamespace = "t{uuid.uuid4().hex[:12]}"\n'
    path.write_text(
        TEST_SERVER_CONFIG + "[rpc]\ntimeout_seconds = 1.0\nbreaker_minimum_calls = 3\nbreaker_window = 6\n"
        "breaker_open_seconds = 1.0\nbreaker_half_open_calls = 1\n" + events + groups
    )
    return path


def migrate(env: dict[str, str]) -> None:
    subprocess.run([TESSERA, "db", "upgrade"], env=env, check=True, capture_output=True, timeout=120)


@contextmanager
def split_cluster(
    tmp_path: Path,
    *,
    database_url: str | None = None,
    identity_url: str | None = None,
    ports: dict[str, int] | None = None,
    environment: dict[str, str] | None = None,
    events: str = "",
    reach: dict[str, str] | None = None,
) -> Iterator[Cluster]:
    """Every group as its own process; ``environment`` adds variables (OTEL_*, say) to each,
    ``events`` replaces the [events] section (the broker behind a proxy, say), ``reach`` says
    how the others reach a group (through a proxy, say)."""
    ports = ports or {group: free_port() for group in GROUPS}
    reach = {**(reach or {}), **({"identity": identity_url} if identity_url else {})}
    config = write_config(tmp_path / "topology.toml", ports, reach=reach, events=events)
    env = clean_env(
        TESSERA_CONFIG=str(config), TESSERA_DATA_DIR=str(tmp_path / "data"), **(environment or {})
    )
    if database_url:
        env["TESSERA_DATABASE__URL"] = database_url
    migrate(env)
    with ExitStack() as stack:
        cluster = Cluster(env, ports, stack, logs=tmp_path / "logs")
        for group in GROUPS:
            cluster.start(group)
        yield cluster


@contextmanager
def monolith(
    tmp_path: Path, *, config: str = TEST_SERVER_CONFIG, environment: dict[str, str] | None = None
) -> Iterator[str]:
    """`tessera serve` of every module, migrated, on a free port; yields its base URL.

    Its log goes to ``tmp_path / "server.log"``.
    """
    config_file = tmp_path / "monolith.toml"
    config_file.write_text(config)
    env = clean_env(
        TESSERA_CONFIG=str(config_file), TESSERA_DATA_DIR=str(tmp_path / "data"), **(environment or {})
    )
    migrate(env)
    port, log = free_port(), tmp_path / "server.log"
    with server_process(env, "--port", str(port), log=log) as process:
        base = f"http://127.0.0.1:{port}"
        wait_until_ready(base, process=process, log=log)
        yield base


class DelayingProxy:
    """A TCP proxy on loopback that holds everything a client sends for ``delay`` seconds.

    Every chunk, on new and kept-alive connections alike: a caller that keeps a connection
    open (the revocation poll keeps one to identity) sees the delay too.
    """

    def __init__(self) -> None:
        self.upstream_port = 0  # set once the upstream's port is chosen
        self.port = 0  # known once bound
        self.delay = 0.0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def __enter__(self) -> DelayingProxy:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result(timeout=10)
        return self

    def __exit__(self, *_: object) -> None:
        asyncio.run_coroutine_threadsafe(self._cancel_connections(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    async def _cancel_connections(self) -> None:
        pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def _serve(self) -> None:
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(
            _pipe(reader, up_writer, delay=lambda: self.delay),
            _pipe(up_reader, writer),
            return_exceptions=True,
        )


async def _pipe(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: Callable[[], float] = lambda: 0.0
) -> None:
    try:
        while chunk := await reader.read(65536):
            if held := delay():
                await asyncio.sleep(held)
            writer.write(chunk)
            await writer.drain()
    finally:
        writer.close()
