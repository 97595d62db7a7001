"""An operator's safety nets, on real data: back up and restore, and a release rolled back.

Data is made through the API of a real server; the commands are the ones the README gives.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from app.composition.catalog import MODULES
from app.kernel.backups import BackupError, back_up
from app.kernel.db import Database
from tests.e2e.flow import register_and_log_in
from tests.servers import TESSERA, clean_env, free_port, server_process, wait_until_ready


def _tessera(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([TESSERA, *args], env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _env(data: Path) -> dict[str, str]:
    return clean_env(
        TESSERA_PROFILE="dev",
        TESSERA_DATA_DIR=str(data),
        TESSERA_SECURITY__PASSWORD_HASH__MEMORY_KIB="8192",
    )


@contextmanager
def _serving(env: dict[str, str], log: Path) -> Iterator[str]:
    """`tessera serve` on the data dir ``env`` names, ready; its base URL."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with server_process(env, "--port", str(port), log=log) as process:
        wait_until_ready(base, process=process, log=log)
        yield base


def _titles(base: str, auth: dict[str, str]) -> list[str]:
    page = httpx.get(f"{base}/api/v1/tasks", params={"limit": 100}, headers=auth, timeout=10).json()
    return sorted(task["title"] for task in page["items"])


@pytest.mark.slow
def test_a_backup_taken_while_serving_restores_that_moment(tmp_path: Path) -> None:
    env = _env(tmp_path / "data")
    _tessera(env, "db", "upgrade")
    with _serving(env, tmp_path / "serve.log") as base, httpx.Client(base_url=base, timeout=10) as http:
        _, ada = register_and_log_in(http, "Ada")
        for title in ("kept 1", "kept 2"):
            assert http.post("/api/v1/tasks", json={"title": title}, headers=ada).status_code == 201
        backed_up = _tessera(env, "db", "backup", str(tmp_path / "backup"))  # online
        assert http.post("/api/v1/tasks", json={"title": "after"}, headers=ada).status_code == 201
        assert _titles(base, ada) == ["after", "kept 1", "kept 2"]
    assert sorted(p.name for p in (tmp_path / "backup").iterdir()) == sorted(f"{m.name}.db" for m in MODULES)
    assert "tasks: " in backed_up

    _tessera(env, "db", "restore", str(tmp_path / "backup"))
    with _serving(env, tmp_path / "restored.log") as base:
        assert _titles(base, ada) == ["kept 1", "kept 2"]


def test_postgresql_is_backed_up_with_its_own_tools(tmp_path: Path) -> None:
    from sqlalchemy.engine import make_url

    database = Database(module="tasks", url=make_url("postgresql+asyncpg://tessera@127.0.0.1/tessera"))
    with pytest.raises(BackupError, match=r"pg_dump --format=custom --schema=tasks"):
        back_up(database, tmp_path)


@pytest.mark.slow
def test_a_release_rolled_back_and_forward_keeps_the_data(tmp_path: Path) -> None:
    """Each module one revision back and up again, on a copy of data a server wrote."""
    env = _env(tmp_path / "data")
    _tessera(env, "db", "upgrade")
    with _serving(env, tmp_path / "serve.log") as base, httpx.Client(base_url=base, timeout=10) as http:
        bob_id, _ = register_and_log_in(http, "Bob")
        _, ada = register_and_log_in(http, "Ada")
        created = http.post("/api/v1/tasks", json={"title": "survives", "assignee_id": bob_id}, headers=ada)
        assert created.status_code == 201
    copy = tmp_path / "copy"
    shutil.copytree(tmp_path / "data", copy)  # the rehearsal runs on a copy, as the README says
    env = _env(copy)
    heads = _tessera(env, "db", "current")
    for module in MODULES:
        moved = _tessera(env, "db", "downgrade", module.name, "--", "-1")
        assert f"{module.name}: at " in moved
    assert _tessera(env, "db", "current") != heads
    _tessera(env, "db", "upgrade")
    assert _tessera(env, "db", "current") == heads

    with _serving(env, tmp_path / "copy.log") as base:
        (task,) = httpx.get(f"{base}/api/v1/tasks", headers=ada, timeout=10).json()["items"]
        assert (task["title"], task["assignee"]["display_name"]) == ("survives", "Bob")
