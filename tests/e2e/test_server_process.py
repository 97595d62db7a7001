"""The real thing: `tessera db upgrade` and `tessera serve` as processes, driven over HTTP."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.composition.probe import probe_url
from tests.servers import TESSERA, clean_env, free_port, server_process, wait_until_ready


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    env = clean_env(
        TESSERA_PROFILE="dev",
        TESSERA_DATA_DIR=str(tmp_path / "data"),
        TESSERA_SECURITY__PASSWORD_HASH__MEMORY_KIB="8192",
    )
    subprocess.run([TESSERA, "db", "upgrade"], env=env, check=True, capture_output=True, timeout=60)
    port = free_port()
    with server_process(env, "--port", str(port)) as process:
        base = f"http://127.0.0.1:{port}"
        wait_until_ready(base, process=process)
        yield base


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
    assert sorted(p.name for p in data_dir.glob("*.db")) == [
        "accounts.db",
        "activity.db",
        "identity.db",
        "notifications.db",
        "tasks.db",
    ]
    # The development key was generated into the data dir, never the repository.
    assert (data_dir / "secrets" / "signing.key").stat().st_mode & 0o077 == 0


@pytest.mark.slow
def test_the_container_health_check_asks_the_configured_port(server: str, tmp_path: Path) -> None:
    port = server.rsplit(":", 1)[1]
    probe = [sys.executable, "-m", "app.composition.probe"]
    env = clean_env(TESSERA_PROFILE="dev", TESSERA_DATA_DIR=str(tmp_path / "data"))
    for which in ("live", "ready"):
        answered = subprocess.run([*probe, which], env={**env, "TESSERA_SERVER__PORT": port}, timeout=30)
        assert answered.returncode == 0
    elsewhere = subprocess.run(
        [*probe, "live"],
        env={**env, "TESSERA_SERVER__PORT": str(free_port())},
        capture_output=True,
        timeout=30,
    )
    assert elsewhere.returncode == 1
    assert b"live:" in elsewhere.stderr


def test_a_group_is_probed_on_its_own_port() -> None:
    split = clean_env(TESSERA_PROFILE="split", TESSERA_GROUP="tasks")
    assert probe_url("ready", split) == "http://127.0.0.1:8002/health/ready"
    assert probe_url("live", clean_env(TESSERA_SERVER__PORT="9100")) == "http://127.0.0.1:9100/health/live"
