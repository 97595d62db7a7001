"""The real thing: `tessera db upgrade` and `tessera serve` as processes, driven over HTTP."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

TESSERA = str(Path(sys.executable).with_name("tessera"))
STARTUP_SECONDS = 30


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TESSERA_")},
        "TESSERA_PROFILE": "dev",
        "TESSERA_DATA_DIR": str(tmp_path / "data"),
        "TESSERA_SECURITY__PASSWORD_HASH__MEMORY_KIB": "8192",
    }
    subprocess.run([TESSERA, "db", "upgrade"], env=env, check=True, capture_output=True, timeout=60)
    port = _free_port()
    process = subprocess.Popen(
        [TESSERA, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until_ready(base, process)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=10)


def _wait_until_ready(base: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            stderr = process.stderr.read().decode() if process.stderr else ""
            pytest.fail(f"server exited with {process.returncode}: {stderr}")
        try:
            if httpx.get(f"{base}/health/ready", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    pytest.fail(f"server not ready within {STARTUP_SECONDS}s")


@pytest.mark.slow
def test_register_log_in_and_read_me_over_real_http(server: str, tmp_path: Path) -> None:
    with httpx.Client(base_url=server, timeout=10) as http:
        created = http.post(
            "/api/v1/users",
            json={"email": "ada@example.com", "password": "correct horse battery", "display_name": "Ada"},
        )
        assert created.status_code == 201
        tokens = http.post(
            "/api/v1/auth/token", json={"email": "ada@example.com", "password": "correct horse battery"}
        ).json()
        me = http.get("/api/v1/users/me", headers={"Authorization": f"Bearer {tokens['access_token']}"})
        assert me.status_code == 200
        assert me.json()["email"] == "ada@example.com"
        assert me.headers["x-request-id"]
    data_dir = tmp_path / "data"
    assert sorted(p.name for p in data_dir.glob("*.db")) == ["identity.db", "tasks.db"]
    # The development key was generated into the data dir, never the repository.
    assert (data_dir / "secrets" / "signing.key").stat().st_mode & 0o077 == 0
