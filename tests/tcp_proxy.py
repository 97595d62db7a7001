"""A TCP proxy a test can cut and restore, to play a broker (or any server) going away.

    with TcpProxy("127.0.0.1", 4222) as proxy:
        url = f"nats://127.0.0.1:{proxy.port}"
        ...
        proxy.cut()       # listener closed, every proxied connection closed: connections fail
        proxy.restore()   # listening again on the same port
        proxy.retarget(4223)  # new connections go there; those open stay where they are

The proxy runs its own event loop in a thread, so it keeps forwarding while the test's loop
is blocked, and works the same from sync and async tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine
from types import TracebackType
from typing import Any, TypeVar

__all__ = ("TcpProxy",)

T = TypeVar("T")
_CHUNK = 65_536
_CONTROL_TIMEOUT = 5.0


class TcpProxy:
    """Forwards ``127.0.0.1:<port>`` to ``target_host:target_port`` until cut."""

    def __init__(self, target_host: str, target_port: int, *, host: str = "127.0.0.1") -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.host = host
        self.port = 0  # chosen by the OS on first start, then kept across cut/restore
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._pipes: set[asyncio.Task[None]] = set()
        self.connections = 0  # accepted so far, for tests that want to know

    # -- control, from any thread -------------------------------------------------------

    def start(self) -> TcpProxy:
        if self._loop is not None:
            raise RuntimeError("the proxy is already running")
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            loop.run_forever()
            loop.close()

        self._loop = loop
        self._thread = threading.Thread(target=run, name=f"tcp-proxy->{self.target_port}", daemon=True)
        self._thread.start()
        ready.wait(_CONTROL_TIMEOUT)
        self._call(self._listen())
        return self

    def cut(self) -> None:
        """Stop listening and close every proxied connection (both sides)."""
        self._call(self._cut())

    def restore(self) -> None:
        """Listen again on the same port."""
        self._call(self._listen())

    def retarget(self, port: int) -> None:
        """Send new connections to ``port``, as a Service does once its endpoints changed;
        connections already open keep their target until either end closes them."""
        self.target_port = port

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        with contextlib.suppress(Exception):
            self._call(self._cut())
        loop.call_soon_threadsafe(loop.stop)
        thread.join(_CONTROL_TIMEOUT)
        self._loop = self._thread = None

    @property
    def listening(self) -> bool:
        return self._server is not None

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        if self._loop is None:
            coroutine.close()
            raise RuntimeError("the proxy is not running")
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(_CONTROL_TIMEOUT)

    # -- inside the proxy's loop --------------------------------------------------------

    async def _listen(self) -> None:
        if self._server is not None:
            return
        self._server = await asyncio.start_server(self._accept, self.host, self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _cut(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._writers):
            _abort(writer)
        self._writers.clear()
        pipes = list(self._pipes)
        for pipe in pipes:
            pipe.cancel()
        if pipes:
            await asyncio.wait(pipes, timeout=_CONTROL_TIMEOUT)
        if server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), _CONTROL_TIMEOUT)

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        if self._server is None:  # accepted just as the proxy was cut
            _abort(client_writer)
            return
        try:
            target_reader, target_writer = await asyncio.open_connection(self.target_host, self.target_port)
        except OSError:
            _abort(client_writer)
            return
        self._writers.update((client_writer, target_writer))
        pipes = (
            asyncio.create_task(self._pipe(client_reader, target_writer)),
            asyncio.create_task(self._pipe(target_reader, client_writer)),
        )
        self._pipes.update(pipes)
        try:
            # When either direction ends, the whole connection ends, as a real peer's would.
            await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pipe in pipes:
                pipe.cancel()
                self._pipes.discard(pipe)
            for writer in (client_writer, target_writer):
                self._writers.discard(writer)
                _abort(writer)

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await reader.read(_CHUNK):
                writer.write(data)
                await writer.drain()


def _abort(writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(Exception):
        writer.transport.abort()
