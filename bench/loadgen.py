"""The load generator: a separate process that drives one scenario and prints a JSON summary.

Run by the orchestrator as ``python -m bench.loadgen`` with a :class:`Spec` as JSON on
stdin. Each of ``concurrency`` workers holds one keep-alive connection and sends one
request at a time (a closed loop). Requests that complete during the warm-up are not
recorded; the summary covers only those completing inside the measured window.

Two clients are available: ``raw`` (asyncio protocol speaking minimal HTTP/1.1, the
default because it costs the shared CPUs least) and ``httpx`` (for comparison).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import resource
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar, cast

import msgspec

T = TypeVar("T")

__all__ = ("Spec", "Summary", "cpu_ticks_of", "machine_busy_ticks", "postgres_ticks")

REQUEST_TIMEOUT = 10.0
# How a task view names a person whose profile identity did not give (msgspec's JSON, no spaces).
NAMELESS = b'"display_name":null'
CLK_TCK = os.sysconf("SC_CLK_TCK")


class Spec(msgspec.Struct, frozen=True, kw_only=True):
    """What to run: one scenario against one server."""

    port: int
    token: str
    scenario: str  # "get" | "list" | "create"
    task_ids: list[str]
    concurrency: int
    warmup: float
    duration: float
    client: str = "raw"  # "raw" | "httpx"
    server_pid: int = 0  # whose CPU time to measure over the window (0: none)
    signal_server: bool = False  # SIGUSR1 at window start, SIGUSR2 at its end (profiling)
    # Several server processes (a split topology): measure each of these instead of server_pid.
    server_pids: list[int] = []

    def measured_pids(self) -> list[int]:
        return list(self.server_pids) or ([self.server_pid] if self.server_pid else [])


class Summary(msgspec.Struct, frozen=True, kw_only=True):
    """The measured window, as the load generator saw it."""

    completed: int
    errors: int
    statuses: dict[str, int]
    error_samples: list[str]
    window_s: float
    p50_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    client_cpu_s: float
    server_cpu_s: float  # all the server processes together
    server_cpu_each_s: list[float]  # per process, in the order of Spec.measured_pids()
    # 2xx answers naming a person without a display name: tasks served while identity was unreachable
    nameless: int
    postgres_cpu_s: float  # every process named "postgres" (0 on SQLite, or idle)
    machine_cpu_s: float  # all CPUs' busy time: the difference to the three above is other load
    client: str


# -- requests per scenario --------------------------------------------------------------


class Request(msgspec.Struct, frozen=True):
    method: str
    path: str
    body: bytes | None = None


def request_maker(spec: Spec) -> Callable[[], Request]:
    """A function that returns the next request of the scenario."""
    if spec.scenario == "get":
        paths = [f"/api/v1/tasks/{task_id}" for task_id in spec.task_ids]
        return lambda: Request("GET", random.choice(paths))
    if spec.scenario == "list":
        listing = Request("GET", "/api/v1/tasks?limit=50")
        return lambda: listing
    if spec.scenario == "create":
        counter = iter(range(1 << 62))
        priorities = ("low", "normal", "high", "urgent")

        def create() -> Request:
            n = next(counter)
            body = {"title": f"bench task {n}", "priority": priorities[n % 4], "labels": ["bench"]}
            return Request("POST", "/api/v1/tasks", msgspec.json.encode(body))

        return create
    raise ValueError(f"unknown scenario {spec.scenario!r}")


# -- the raw HTTP/1.1 client ------------------------------------------------------------


class _Response(msgspec.Struct):
    status: int
    body: bytes
    close: bool


class _HttpConnection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection; one request in flight at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._waiter: asyncio.Future[_Response] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no asyncio.Transport subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(ConnectionError("server closed the connection"))

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if self._waiter is None or self._waiter.done():
            return
        try:
            response = self._parse()
        except ValueError as exc:
            self._waiter.set_exception(exc)
            return
        if response is not None:
            self._waiter.set_result(response)

    async def send(self, raw: bytes) -> _Response:
        assert self.transport is not None
        self._waiter = asyncio.get_running_loop().create_future()
        self.transport.write(raw)
        return await self._waiter

    def _parse(self) -> _Response | None:
        """The complete response at the front of the buffer (removed from it), or None."""
        buffer = self._buffer
        head_end = buffer.find(b"\r\n\r\n")
        if head_end < 0:
            return None
        lines = bytes(buffer[:head_end]).split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip().lower()
        start = head_end + 4
        if b"content-length" in headers:
            end = start + int(headers[b"content-length"])
            if len(buffer) < end:
                return None
            body = bytes(buffer[start:end])
        elif headers.get(b"transfer-encoding") == b"chunked":
            parsed = _dechunk(buffer, start)
            if parsed is None:
                return None
            body, end = parsed
        else:
            raise ValueError("response without Content-Length or chunked encoding")
        del buffer[:end]
        return _Response(status, body, headers.get(b"connection") == b"close")


def _dechunk(buffer: bytearray, position: int) -> tuple[bytes, int] | None:
    body = bytearray()
    while True:
        line_end = buffer.find(b"\r\n", position)
        if line_end < 0:
            return None
        size = int(bytes(buffer[position:line_end]).split(b";")[0], 16)
        chunk_start = line_end + 2
        if size == 0:
            trailer_end = buffer.find(b"\r\n\r\n", line_end)
            return (bytes(body), trailer_end + 4) if trailer_end >= 0 else None
        if len(buffer) < chunk_start + size + 2:
            return None
        body += buffer[chunk_start : chunk_start + size]
        position = chunk_start + size + 2


class RawClient:
    """A worker's connection: reconnects when the server closes or a request times out."""

    def __init__(self, port: int, token: str) -> None:
        self._port = port
        self._prefix = f"Host: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\nAccept: */*\r\n"
        self._connection: _HttpConnection | None = None

    async def request(self, request: Request) -> tuple[int, bytes]:
        connection = self._connection
        if connection is None or connection.closed:
            _, connection = await asyncio.get_running_loop().create_connection(
                _HttpConnection, "127.0.0.1", self._port
            )
            self._connection = connection
        head = f"{request.method} {request.path} HTTP/1.1\r\n{self._prefix}"
        if request.body is None:
            raw = f"{head}\r\n".encode()
        else:
            length = len(request.body)
            raw = f"{head}Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n".encode()
            raw += request.body
        try:
            response = await asyncio.wait_for(connection.send(raw), REQUEST_TIMEOUT)
        except BaseException:
            self.close()
            raise
        if response.close:
            self.close()
        return response.status, response.body

    def close(self) -> None:
        if self._connection is not None and self._connection.transport is not None:
            self._connection.transport.close()
        self._connection = None


class HttpxClient:
    """The same interface over one shared ``httpx.AsyncClient`` (keep-alive pool)."""

    def __init__(self, client: Any) -> None:
        self._client = client

    async def request(self, request: Request) -> tuple[int, bytes]:
        headers = {"Content-Type": "application/json"} if request.body is not None else None
        response = await self._client.request(
            request.method, request.path, content=request.body, headers=headers
        )
        return response.status_code, response.content

    def close(self) -> None:
        """The shared client is closed by its owner."""


# -- the run ----------------------------------------------------------------------------


def cpu_ticks_of(pid: int) -> int:
    """User plus system CPU time of a process, in clock ticks (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])


def postgres_ticks() -> int:
    """CPU ticks of every PostgreSQL process (the server's backends do the SQL work)."""
    total = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/stat", encoding="ascii", errors="replace") as handle:
                    head, _, rest = handle.read().rpartition(")")
            except OSError:
                continue
            if head.endswith("(postgres"):
                # With cutime and cstime: a backend that exits (pool churn) passes its CPU
                # time to the postmaster that reaps it, instead of taking it along.
                total += sum(int(v) for v in rest.split()[11:15])
    return total


def machine_busy_ticks() -> int:
    """Busy CPU ticks of the whole machine (all CPUs) since boot."""
    with open("/proc/stat", encoding="ascii") as handle:
        values = [int(v) for v in handle.readline().split()[1:]]
    return sum(values[:8]) - values[3] - values[4]  # less idle and iowait; guest is in user


class _Window:
    """Resource readings at one edge of the measured window."""

    def __init__(self, server_pids: list[int]) -> None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        self.at = time.perf_counter()
        self.client_cpu = usage.ru_utime + usage.ru_stime
        self.server_ticks = [cpu_ticks_of(pid) for pid in server_pids]
        self.postgres_ticks = postgres_ticks()
        self.busy_ticks = machine_busy_ticks()


async def run(spec: Spec) -> Summary:
    next_request = request_maker(spec)
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    samples: dict[str, str] = {}
    nameless = 0
    loop_start = time.perf_counter()
    measure_from = loop_start + spec.warmup
    stop_at = measure_from + spec.duration

    async def worker(client: RawClient | HttpxClient) -> None:
        nonlocal nameless
        while (started := time.perf_counter()) < stop_at:
            try:
                status, body = await client.request(next_request())
                outcome = str(status)
            except Exception as exc:  # a failed request is an error to count, not a crash
                outcome, body = type(exc).__name__, str(exc).encode()
                await asyncio.sleep(0.01)  # no hot loop against a server that is gone
            finished = time.perf_counter()
            if measure_from <= finished <= stop_at:
                latencies.append(finished - started)
                statuses[outcome] += 1
                if outcome.startswith("2") and NAMELESS in body:
                    nameless += 1
                if not outcome.startswith("2") and len(samples) < 5 and outcome not in samples:
                    samples[outcome] = body[:300].decode("utf-8", "replace")
        client.close()

    async def timekeeper() -> tuple[_Window, _Window]:
        await asyncio.sleep(max(0.0, measure_from - time.perf_counter()))
        if spec.signal_server:
            os.kill(spec.server_pid, signal.SIGUSR1)
        first = _Window(spec.measured_pids())
        await asyncio.sleep(max(0.0, stop_at - time.perf_counter()))
        last = _Window(spec.measured_pids())
        if spec.signal_server:
            os.kill(spec.server_pid, signal.SIGUSR2)
        return first, last

    async def drive(clients: list[RawClient | HttpxClient]) -> tuple[_Window, _Window]:
        keeper = asyncio.create_task(timekeeper())
        await asyncio.gather(*(worker(c) for c in clients))
        return await keeper

    if spec.client == "httpx":
        import httpx

        limits = httpx.Limits(max_connections=spec.concurrency, max_keepalive_connections=spec.concurrency)
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{spec.port}",
            headers={"Authorization": f"Bearer {spec.token}"},
            limits=limits,
            timeout=REQUEST_TIMEOUT,
        ) as shared:
            first, last = await drive([HttpxClient(shared) for _ in range(spec.concurrency)])
    else:
        first, last = await drive([RawClient(spec.port, spec.token) for _ in range(spec.concurrency)])
    return _summarize(spec, latencies, statuses, samples, nameless, first, last)


def _summarize(
    spec: Spec,
    latencies: list[float],
    statuses: Counter[str],
    samples: dict[str, str],
    nameless: int,
    first: _Window,
    last: _Window,
) -> Summary:
    ordered = sorted(latencies)

    def percentile(p: float) -> float:
        if not ordered:
            return 0.0
        return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))] * 1000

    errors = sum(n for outcome, n in statuses.items() if not outcome.startswith("2"))
    each = [(b - a) / CLK_TCK for a, b in zip(first.server_ticks, last.server_ticks, strict=True)]
    return Summary(
        completed=len(ordered),
        errors=errors,
        statuses=dict(statuses),
        error_samples=[f"{outcome}: {body}" for outcome, body in samples.items()],
        window_s=last.at - first.at,
        p50_ms=percentile(50),
        p99_ms=percentile(99),
        mean_ms=sum(ordered) / len(ordered) * 1000 if ordered else 0.0,
        max_ms=ordered[-1] * 1000 if ordered else 0.0,
        client_cpu_s=last.client_cpu - first.client_cpu,
        server_cpu_s=sum(each),
        server_cpu_each_s=each,
        nameless=nameless,
        postgres_cpu_s=(last.postgres_ticks - first.postgres_ticks) / CLK_TCK,
        machine_cpu_s=(last.busy_ticks - first.busy_ticks) / CLK_TCK,
        client=spec.client,
    )


def run_fast(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` on uvloop when installed (it is: uvicorn's dependency), else asyncio's loop.

    A load client on uvloop costs the CPUs it shares with the server less.
    """
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coroutine)


def main() -> None:
    spec = msgspec.json.decode(sys.stdin.buffer.read(), type=Spec)
    summary = run_fast(run(spec))
    sys.stdout.write(json.dumps(msgspec.to_builtins(summary)) + "\n")


if __name__ == "__main__":
    main()
