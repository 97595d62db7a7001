"""The production profile on PostgreSQL under more connections than the database accepts.

Two workers, three modules, the default connection budget: 256 clients at once get
answers, never a server error, and the deployment never holds more connections than
its budget. The load is bounded in requests and in time.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
from collections import Counter
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.conftest import POSTGRES_URL
from tests.servers import TESSERA, clean_env, free_port, server_process, wait_until_ready

pytestmark = pytest.mark.slow

CLIENTS = 256
ROUNDS = int(os.environ.get("TESSERA_TEST_LOAD_ROUNDS", "3"))  # requests per client; CI's reduced size
BUDGET = 80  # database.max_connections, the default


def production_env(tmp_path: Path, database_url: str | None, role_prefix: str = "") -> dict[str, str]:
    key = tmp_path / "signing.key"
    key.write_text(secrets.token_urlsafe(48))
    key.chmod(0o600)
    return clean_env(
        TESSERA_PROFILE="production",
        TESSERA_DATA_DIR=str(tmp_path / "data"),
        TESSERA_SERVER__HOST="127.0.0.1",  # the profile binds every interface; tests stay on loopback
        TESSERA_SECURITY__SIGNING_KEY_FILE=str(key),
        **({"TESSERA_DATABASE__URL": database_url} if database_url else {}),
        **({"TESSERA_DATABASE__ROLE_PREFIX": role_prefix} if role_prefix else {}),
    )


@pytest.mark.postgres
def test_two_workers_under_256_connections_answer_without_a_server_error(
    tmp_path: Path, postgres_url: str, role_prefix: str
) -> None:
    """... each module working as its own role, as the profile has it."""
    statuses, peak = _serve_and_load(production_env(tmp_path, postgres_url, role_prefix), tmp_path)
    assert statuses["201"] == CLIENTS * ROUNDS, statuses
    assert sorted(statuses) == ["200", "201"], statuses  # nothing else, and no status >= 500
    assert 0 < peak <= BUDGET  # it held connections, never more than its budget


def test_the_production_profile_on_sqlite_answers_256_connections_too(tmp_path: Path) -> None:
    """Two workers write the same SQLite files: they queue, and nobody gets a server error."""
    statuses, _ = _serve_and_load(production_env(tmp_path, None), tmp_path)
    assert statuses["201"] == CLIENTS * ROUNDS, statuses
    assert sorted(statuses) == ["200", "201"], statuses


def _serve_and_load(env: dict[str, str], tmp_path: Path) -> tuple[Counter[str], int]:
    subprocess.run([TESSERA, "db", "upgrade"], env=env, check=True, capture_output=True, timeout=120)
    port = free_port()
    with server_process(env, "--port", str(port), log=tmp_path / "server.log") as process:
        base = f"http://127.0.0.1:{port}"
        wait_until_ready(base, process=process, log=tmp_path / "server.log")
        return asyncio.run(_load(base))


async def _load(base: str) -> tuple[Counter[str], int]:
    # Idle connections are let go before the server's keep-alive timeout (5 s) closes them
    # under a request: a starved client must not mistake that race for the server's answer.
    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS, keepalive_expiry=2.0)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as http:
        auth = await _user(http)
        statuses: Counter[str] = Counter()
        sampling = asyncio.Event()
        watcher = asyncio.create_task(_peak_connections(sampling))

        async def client(n: int) -> None:
            for i in range(ROUNDS):
                created = await http.post("/api/v1/tasks", json={"title": f"load {n}.{i}"}, headers=auth)
                statuses[str(created.status_code)] += 1
                listed = await http.get("/api/v1/tasks", params={"limit": 10}, headers=auth)
                statuses[str(listed.status_code)] += 1

        try:
            await asyncio.wait_for(asyncio.gather(*(client(n) for n in range(CLIENTS))), timeout=240)
        finally:
            sampling.set()
        return statuses, await watcher


async def _user(http: httpx.AsyncClient) -> dict[str, str]:
    account = {"email": "load@example.com", "password": "correct horse battery"}
    assert (await http.post("/api/v1/users", json={**account, "display_name": "Load"})).status_code == 201
    token = (await http.post("/api/v1/auth/token", json=account)).json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


async def _peak_connections(done: asyncio.Event) -> int:
    """The most connections Tessera's processes held at once, as the server counts them."""
    connection = await asyncpg.connect(POSTGRES_URL.replace("postgresql+asyncpg://", "postgresql://"))
    peak = 0
    try:
        while not done.is_set():
            held = await connection.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'tessera:%'"
            )
            peak = max(peak, int(held))
            await asyncio.sleep(0.05)
    finally:
        await connection.close()
    return peak
