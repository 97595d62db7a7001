"""Real servers on loopback for tests: in a thread of this process, or as separate processes."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

TESSERA = str(Path(sys.executable).with_name("tessera"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_until_ready(
    base: str, *, process: subprocess.Popen[bytes] | None = None, seconds: float = 30, log: Path | None = None
) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            if log is not None:
                stderr = log.read_text(errors="replace")
            else:
                stderr = process.stderr.read().decode() if process.stderr else ""
            pytest.fail(f"server exited with {process.returncode}: {stderr[-2000:]}")
        try:
            if httpx.get(f"{base}/health/live", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    pytest.fail(f"{base} not ready within {seconds}s")


@contextmanager
def server_thread(app: Any, port: int) -> Iterator[str]:
    """Serve an ASGI app with uvicorn on 127.0.0.1:port in a background thread."""
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on", loop="asyncio")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                pytest.fail(f"server on port {port} did not start")
            time.sleep(0.01)
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextmanager
def server_process(
    env: dict[str, str], *args: str, log: Path | None = None, cwd: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """`tessera serve ARGS` as a separate OS process; terminated (or killed) on exit.

    Its log lines (stderr) go to ``log`` when given, else to a pipe the caller must read.
    """
    with ExitStack() as files:
        stderr: Any = subprocess.PIPE
        if log is not None:
            log.parent.mkdir(parents=True, exist_ok=True)
            stderr = files.enter_context(log.open("ab"))
        process = subprocess.Popen(
            [TESSERA, "serve", *args], env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=stderr
        )
        try:
            yield process
        finally:
            stop_process(process)


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after 10 s; bounded either way."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


# A test server's configuration: keys made in its data dir, cheap password hashing, and
# per-address throttles raised (the suite signs many users up and in from one address).
TEST_SERVER_CONFIG = (
    "[security]\ngenerate_signing_key = true\n"
    "[security.password_hash]\ntime_cost = 1\nmemory_kib = 8192\nparallelism = 1\n"
    "[throttle]\nlogins_per_address_per_minute = 100000\n"
    "registrations_per_address_per_minute = 100000\nuser_searches_per_user_per_minute = 100000\n"
)


def clean_env(**overrides: str) -> dict[str, str]:
    """This process's environment without any TESSERA_ variable, plus ``overrides``."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith("TESSERA_")}, **overrides}
