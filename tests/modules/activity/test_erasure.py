"""Erasure: an append-only history that still forgets a person (crypto-shredding)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from app.composition.container import Composition
from app.kernel.events.tables import subject_keys
from contracts import Principal
from contracts.activity import ERASED_USER, ActivityQuery
from modules.activity.domain import ERASED_TEXT
from tests.modules.activity.conftest import World, deliver, projector_of


def _files_of(composition: Composition) -> list[Path]:
    path = Path(str(composition.module("activity").database.url.database))
    return [p for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")) if p.exists()]


async def test_after_erasure_no_byte_of_the_users_data_or_key_remains_and_projections_rebuild(
    world: World, settings: object
) -> None:
    composition = world.compose(settings)  # type: ignore[arg-type]  # SQLite: its files are scanned
    await composition.upgrade()
    try:
        ada, bob = world.user("Ada"), world.user("Bob")
        name, title = "Ada Quintessence Lovelace", "Quintessential engine plans"
        created = world.created(ada, title=title)
        await deliver(
            composition,
            world.registered(ada, name),
            world.registered(bob, "Bob"),
            created,
            world.assigned(created, to=bob),
        )
        async with composition.module("activity").database.read() as connection:
            (key,) = (
                await connection.execute(select(subject_keys.c.key).where(subject_keys.c.subject == ada))
            ).scalars()
        service = composition.module("activity").api()
        bobs = Principal(user_id=bob)
        before = await service.task_activity(bobs, created.task_id, ActivityQuery())
        assert before.items[-1].data["title"] == title

        first = await service.erase_user(ada)
        again = await service.erase_user(ada)  # idempotent: a saga may repeat its step
        assert (first.erased, again.erased) == (True, False)

        for file in _files_of(composition):
            raw = file.read_bytes()
            for secret in (bytes(key), name.encode(), title.encode(), "Quintessen".encode("utf-16-le")):
                assert secret not in raw, f"{secret!r} is still in {file.name}"
        after = await service.task_activity(bobs, created.task_id, ActivityQuery())
        assert after.items[-1].data["title"] == ERASED_TEXT
        assert after.items[-1].data["labels"] == ERASED_TEXT
        assert after.items[0].data["title"] == ERASED_TEXT  # every copy, the assignment's too
        feed = await service.user_feed(bobs, ActivityQuery())
        registered = [e for e in feed.items if e.kind == "user.registered"]
        assert [e.data["display_name"] for e in registered] == ["Bob"]  # Bob's own stays
        adas = await service.user_feed(Principal(user_id=ada), ActivityQuery())
        assert [e.data.get("display_name") for e in adas.items if e.kind == "user.registered"] == [
            ERASED_USER
        ]

        projector = projector_of(composition)
        for projection in projector.names:
            await projector.rebuild(projection)
        assert await service.task_activity(bobs, created.task_id, ActivityQuery()) == after
    finally:
        await composition.aclose()
