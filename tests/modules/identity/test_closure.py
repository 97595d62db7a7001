"""Closing an account in identity (contract 1.5): what the closure saga's identity steps leave behind."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from litestar.testing import TestClient
from sqlalchemy import select

from app.kernel.events.tables import outbox
from contracts.identity import ERASED_DISPLAY_NAME
from tests.conftest import log_in, register
from tests.modules.identity.test_deactivation import composition_of

Client = TestClient[Any]


def test_an_erased_account_leaves_no_email_or_name_in_identitys_files(client: Client) -> None:
    name, email = "Quintessa Adams", "quintessa.adams@example.com"
    user = register(client, email=email, display_name=name)
    log_in(client, email)
    composition = composition_of(client)
    service = composition.module("identity").container.service()
    user_id = uuid.UUID(user["id"])

    client.blocking_portal.call(service.close_account, user_id, "saga-1:close_account")
    erased = client.blocking_portal.call(service.erase_account, user_id, user_id, "saga-1:erase_account")

    assert erased.redacted_events >= 1  # UserRegistered, still kept in the outbox, carried the name
    assert (
        client.post("/api/v1/auth/token", json={"email": email, "password": user["password"]}).status_code
        == 401
    )
    profile = client.blocking_portal.call(service.get_user, user_id)
    assert (profile.display_name, profile.active) == (ERASED_DISPLAY_NAME, False)

    async def payloads() -> list[str]:
        async with composition.module("identity").database.read() as connection:
            return list((await connection.scalars(select(outbox.c.payload))).all())

    assert all(name not in payload for payload in client.blocking_portal.call(payloads))
    data_dir = Path(composition.settings.data_dir)
    for file in (data_dir / "identity.db", data_dir / "identity.db-wal"):
        raw = file.read_bytes() if file.exists() else b""
        for secret in (email.encode(), name.encode(), b"Quintessa"):
            assert secret not in raw, f"{secret!r} is still in {file.name}"
