"""Fixtures shared by every test: settings, composed apps, clients, PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import pytest
from litestar.testing import TestClient

from app.composition.container import Composition, compose
from app.composition.web import create_app
from app.kernel.config import PasswordHashSettings, Secret, Settings, ThrottleSettings, load_settings

POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
T = TypeVar("T")
UNDER_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
SIGNING_KEY = secrets.token_urlsafe(48)
SERVICE_KEY = secrets.token_urlsafe(48)
CHEAP_HASHING = PasswordHashSettings(time_cost=1, memory_kib=8192, parallelism=1)
# The suite signs many users up and in from one address; per-account limits stay as shipped.
GENEROUS_THROTTLES = ThrottleSettings(
    logins_per_address_per_minute=100_000,
    registrations_per_address_per_minute=100_000,
    user_searches_per_user_per_minute=100_000,
)


def make_settings(data_dir: Path, **sections: Any) -> Settings:
    """Settings for a test: a private data dir, known keys, cheap password hashing."""
    base = Settings(data_dir=str(data_dir))
    security = msgspec.structs.replace(
        base.security,
        signing_key=Secret(SIGNING_KEY),
        service_signing_key=Secret(SERVICE_KEY),
        password_hash=CHEAP_HASHING,
    )
    sections.setdefault("throttle", GENEROUS_THROTTLES)
    if "TESSERA_CONFIG" in os.environ:  # under `tessera simulate -- pytest ...`: the tests meet its network
        sections.setdefault("simulate", load_settings().simulate)
    return msgspec.structs.replace(base, security=security, **sections)


def run_async(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from sync code, even when an event loop is running."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def service_unavailable(reason: str) -> None:
    """Skip a test whose service is missing; under CI, fail it instead."""
    if UNDER_CI:
        pytest.fail(f"{reason} (CI requires every service)")
    pytest.skip(reason)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "data")


@pytest.fixture
def migrated(settings: Settings) -> Settings:
    """Settings whose module databases have been migrated to the newest revision."""

    async def upgrade() -> None:
        composition = compose(settings)
        await composition.upgrade()
        await composition.aclose()

    run_async(upgrade())
    return settings


@pytest.fixture
def client(migrated: Settings) -> Iterator[TestClient[Any]]:
    with TestClient(app=create_app(compose(migrated))) as test_client:
        yield test_client


@pytest.fixture
async def composition(migrated: Settings) -> AsyncIterator[Composition]:
    composed = compose(migrated)
    yield composed
    await composed.aclose()


async def _postgres_reachable() -> str | None:
    import asyncpg

    dsn = POSTGRES_URL.replace("postgresql+asyncpg://", "postgresql://")
    try:
        connection = await asyncio.wait_for(asyncpg.connect(dsn), timeout=3)
    except Exception as exc:
        return f"PostgreSQL at {POSTGRES_URL} is not reachable: {exc!r}"
    await connection.close()
    return None


async def drop_schemas(*schemas: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(POSTGRES_URL.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        for schema in schemas:
            await connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await connection.close()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """The test PostgreSQL URL, with every module schema dropped before and after."""
    from app.composition.catalog import MODULES

    if problem := run_async(_postgres_reachable()):
        service_unavailable(problem)
    schemas = [m.name for m in MODULES]
    run_async(drop_schemas(*schemas))
    yield POSTGRES_URL
    run_async(drop_schemas(*schemas))


async def drop_roles(*roles: str) -> None:
    """Drop roles and everything they own in the test database (a module role owns its schema)."""
    import asyncpg

    connection = await asyncpg.connect(POSTGRES_URL.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        for role in roles:
            if await connection.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role):
                await connection.execute(f'DROP OWNED BY "{role}" CASCADE')
                await connection.execute(f'DROP ROLE "{role}"')
    finally:
        await connection.close()


@pytest.fixture
def role_prefix(postgres_url: str) -> Iterator[str]:
    """A prefix for this test's module roles (``database.role_prefix``): roles are cluster-wide
    and the server is shared, so each test's are its own, dropped when it ends."""
    from app.composition.catalog import MODULES

    prefix = f"t{secrets.token_hex(4)}_"
    yield prefix
    run_async(drop_roles(*(prefix + m.name for m in MODULES)))


@pytest.fixture
def postgres_settings(tmp_path: Path, postgres_url: str) -> Settings:
    settings = make_settings(tmp_path / "data")
    database = msgspec.structs.replace(settings.database, url=Secret(postgres_url))
    return msgspec.structs.replace(settings, database=database)


# -- API helpers ------------------------------------------------------------------------


def register(
    client: TestClient[Any],
    *,
    email: str | None = None,
    password: str = "correct horse battery",
    display_name: str = "Ada Lovelace",
) -> dict[str, Any]:
    email = email or f"user-{secrets.token_hex(4)}@example.com"
    response = client.post(
        "/api/v1/users", json={"email": email, "password": password, "display_name": display_name}
    )
    assert response.status_code == 201, response.text
    return {**response.json(), "password": password}


def log_in(client: TestClient[Any], email: str, password: str = "correct horse battery") -> dict[str, Any]:
    response = client.post("/api/v1/auth/token", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
