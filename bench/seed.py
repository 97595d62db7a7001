"""Seeding over the public API: two users, then the main user's tasks."""

from __future__ import annotations

import asyncio
import random
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

__all__ = ("Seeded", "SeedError", "seed")

PRIORITIES = ("low", "normal", "high", "urgent")
LABELS = ("backend", "frontend", "bug", "feature", "ops", "docs", "urgent-fix", "research")
SEED_CONCURRENCY = 8


class SeedError(Exception):
    """The API refused to be seeded; the message has the request and the answer."""


@dataclass(frozen=True)
class Seeded:
    token: str  # the main user's access token
    user_id: str
    other_user_id: str
    task_ids: list[str]
    assigned: int  # how many of the tasks are assigned to the other user


def _expect(response: httpx.Response, status: int) -> Any:
    if response.status_code != status:
        request = response.request
        raise SeedError(
            f"{request.method} {request.url.path} answered {response.status_code}, not {status}: "
            f"{response.text[:500]}"
        )
    return response.json()


async def _register(client: httpx.AsyncClient, name: str) -> tuple[str, str, str]:
    """Register a user; returns (id, email, password)."""
    email = f"{name.lower().replace(' ', '-')}-{secrets.token_hex(4)}@bench.example.com"
    password = secrets.token_urlsafe(16)
    account = _expect(
        await client.post("/api/v1/users", json={"email": email, "password": password, "display_name": name}),
        201,
    )
    return account["id"], email, password


async def seed(
    base_url: str, *, tasks: int, seed_value: int = 1, on_created: Callable[[], None] | None = None
) -> Seeded:
    """Register a main and a second user; create ``tasks`` tasks, about one in five assigned.

    ``on_created`` is called after each task is created (a progress bar).
    """
    rng = random.Random(seed_value)
    async with httpx.AsyncClient(base_url=base_url, timeout=30.0) as client:
        (user_id, email, password), (other_id, _, _) = await asyncio.gather(
            _register(client, "Bench Main"), _register(client, "Bench Other")
        )
        tokens = _expect(
            await client.post("/api/v1/auth/token", json={"email": email, "password": password}), 200
        )
        token = tokens["access_token"]
        client.headers["Authorization"] = f"Bearer {token}"

        bodies: list[dict[str, Any]] = []
        for n in range(tasks):
            body: dict[str, Any] = {
                "title": f"Seeded task {n}: {rng.choice(('fix', 'write', 'review', 'plan'))} something",
                "priority": rng.choice(PRIORITIES),
                "labels": rng.sample(LABELS, rng.randint(0, 3)),
            }
            if n % 3 == 0:
                body["description"] = "A description long enough to look like a real one. " * 3
            if n % 5 == 0:
                body["assignee_id"] = other_id
            bodies.append(body)

        gate = asyncio.Semaphore(SEED_CONCURRENCY)

        async def create(body: dict[str, Any]) -> str:
            async with gate:
                task_id: str = _expect(await client.post("/api/v1/tasks", json=body), 201)["id"]
            if on_created is not None:
                on_created()
            return task_id

        task_ids = await asyncio.gather(*(create(b) for b in bodies))
    return Seeded(
        token=token,
        user_id=user_id,
        other_user_id=other_id,
        task_ids=list(task_ids),
        assigned=sum(1 for b in bodies if "assignee_id" in b),
    )
