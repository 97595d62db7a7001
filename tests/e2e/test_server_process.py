"""The real thing: `tessera db upgrade` and `tessera serve` as processes, driven over HTTP."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

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
