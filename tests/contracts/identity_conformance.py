"""What every implementation of IdentityApi must do: one suite for every target.

A target supplies the implementation under test and a way to make users exist in it.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Protocol
from uuid import UUID

import msgspec
import pytest

from app.kernel.clock import utcnow
from contracts import InvalidInput, Principal
from contracts.identity import (
    ERASED_DISPLAY_NAME,
    AccountNotClosing,
    EmailAlreadyRegistered,
    IdentityApi,
    InvalidCredentials,
    InvalidRefreshToken,
    NotPermittedOnUser,
    UserInactive,
    UserNotFound,
    UserProfile,
)


class IdentityTarget(Protocol):
    api: IdentityApi

    async def given_user(self, display_name: str, *, active: bool = True) -> UUID: ...

    async def deactivate(self, user_id: UUID) -> None: ...

    async def make_admin(self, user_id: UUID) -> None: ...


class IdentityApiConformance:
    """Subclass in a test module that provides a ``target`` fixture."""

    async def test_a_registered_user_signs_in_and_sees_their_account(self, target: IdentityTarget) -> None:
        email = f"{uuid.uuid4().hex}@example.com"
        record = await target.api.register(email=email, password="correct horse", display_name=" Ada ")
        pair = await target.api.log_in(email=email, password="correct horse")
        assert (record.email, record.display_name, record.active) == (email, "Ada", True)
        assert pair.access_token
        assert (await target.api.account_record(record.id)).email == email

    async def test_an_email_registers_once(self, target: IdentityTarget) -> None:
        email = f"{uuid.uuid4().hex}@example.com"
        await target.api.register(email=email, password="correct horse", display_name="Ada")
        with pytest.raises(EmailAlreadyRegistered):
            await target.api.register(email=email, password="another horse", display_name="Eve")

    async def test_a_wrong_password_is_invalid_credentials(self, target: IdentityTarget) -> None:
        email = f"{uuid.uuid4().hex}@example.com"
        await target.api.register(email=email, password="correct horse", display_name="Ada")
        with pytest.raises(InvalidCredentials):
            await target.api.log_in(email=email, password="wrong horse")

    async def test_a_refresh_token_renews_once_and_log_out_ends_it(self, target: IdentityTarget) -> None:
        email = f"{uuid.uuid4().hex}@example.com"
        await target.api.register(email=email, password="correct horse", display_name="Ada")
        first = await target.api.log_in(email=email, password="correct horse")
        renewed = await target.api.refresh(refresh_token=first.refresh_token)
        await target.api.log_out(refresh_token=renewed.refresh_token)
        with pytest.raises(InvalidRefreshToken):
            await target.api.refresh(refresh_token=renewed.refresh_token)

    async def test_find_people_finds_active_users_by_part_of_their_name(self, target: IdentityTarget) -> None:
        tag = uuid.uuid4().hex[:8]
        wanted = await target.given_user(f"Grace {tag}")
        await target.given_user(f"Gone {tag}", active=False)
        found = await target.api.find_people(tag.upper())
        assert [p.id for p in found.items] == [wanted]

    async def test_change_profile_renames_the_principal(self, target: IdentityTarget) -> None:
        record = await target.api.register(
            email=f"{uuid.uuid4().hex}@example.com", password="correct horse", display_name="Ada"
        )
        changed = await target.api.change_profile(Principal(user_id=record.id), display_name="Ada L.")
        assert changed.display_name == (await target.api.get_user(record.id)).display_name == "Ada L."

    async def test_change_password_needs_the_current_one(self, target: IdentityTarget) -> None:
        email = f"{uuid.uuid4().hex}@example.com"
        record = await target.api.register(email=email, password="correct horse", display_name="Ada")
        me = Principal(user_id=record.id)
        with pytest.raises(InvalidInput):
            await target.api.change_password(me, current="wrong horse", new="battery staple")
        await target.api.change_password(me, current="correct horse", new="battery staple")
        assert (await target.api.log_in(email=email, password="battery staple")).access_token

    async def test_log_out_everywhere_ends_every_session(self, target: IdentityTarget) -> None:
        email = f"{uuid.uuid4().hex}@example.com"
        record = await target.api.register(email=email, password="correct horse", display_name="Ada")
        pair = await target.api.log_in(email=email, password="correct horse")
        await target.api.log_out_everywhere(Principal(user_id=record.id))
        with pytest.raises(InvalidRefreshToken):
            await target.api.refresh(refresh_token=pair.refresh_token)

    async def test_get_user_returns_the_public_profile(self, target: IdentityTarget) -> None:
        user_id = await target.given_user("Ada")
        assert await target.api.get_user(user_id) == UserProfile(id=user_id, display_name="Ada", active=True)

    async def test_get_user_of_an_unknown_id_raises_user_not_found(self, target: IdentityTarget) -> None:
        with pytest.raises(UserNotFound) as raised:
            await target.api.get_user(uuid.uuid4())
        assert raised.value.code == "identity.user_not_found"
        assert raised.value.status == 404

    async def test_get_users_returns_known_ids_in_the_order_asked(self, target: IdentityTarget) -> None:
        ada = await target.given_user("Ada")
        grace = await target.given_user("Grace")
        profiles = await target.api.get_users([grace, uuid.uuid4(), ada, grace])
        assert [p.id for p in profiles] == [grace, ada]
        assert [p.display_name for p in profiles] == ["Grace", "Ada"]

    async def test_get_users_of_nothing_is_nothing(self, target: IdentityTarget) -> None:
        assert await target.api.get_users([]) == []

    async def test_require_administrator_returns_an_administrator(self, target: IdentityTarget) -> None:
        admin = await target.given_user("Root")
        await target.make_admin(admin)
        assert (await target.api.require_administrator(admin)).id == admin

    @pytest.mark.parametrize("who", ["a user", "a deactivated administrator", "nobody"])
    async def test_require_administrator_refuses_everyone_else(
        self, target: IdentityTarget, who: str
    ) -> None:
        user_id = uuid.uuid4() if who == "nobody" else await target.given_user("Someone")
        if who == "a deactivated administrator":
            await target.make_admin(user_id)
            await target.deactivate(user_id)
        with pytest.raises(NotPermittedOnUser) as raised:
            await target.api.require_administrator(user_id)
        assert raised.value.status == 403

    async def test_require_active_user_returns_an_active_user(self, target: IdentityTarget) -> None:
        user_id = await target.given_user("Ada")
        assert (await target.api.require_active_user(user_id)).id == user_id

    async def test_require_active_user_refuses_a_deactivated_user(self, target: IdentityTarget) -> None:
        user_id = await target.given_user("Gone", active=False)
        with pytest.raises(UserInactive) as raised:
            await target.api.require_active_user(user_id)
        assert raised.value.code == "identity.user_inactive"

    async def test_require_active_user_refuses_an_unknown_user(self, target: IdentityTarget) -> None:
        with pytest.raises(UserNotFound):
            await target.api.require_active_user(uuid.uuid4())

    async def test_a_deactivated_user_is_still_found(self, target: IdentityTarget) -> None:
        user_id = await target.given_user("Gone", active=False)
        assert (await target.api.get_user(user_id)).active is False

    async def test_results_survive_the_wire(self, target: IdentityTarget) -> None:
        user_id = await target.given_user("Ada")
        profile = await target.api.get_user(user_id)
        assert msgspec.json.decode(msgspec.json.encode(profile), type=UserProfile) == profile

    async def test_a_deactivation_voids_the_users_earlier_sessions(self, target: IdentityTarget) -> None:
        before = utcnow() - timedelta(seconds=1)
        kept = await target.given_user("Kept")
        gone = await target.given_user("Gone")
        await target.deactivate(gone)
        revocations = await target.api.session_revocations(before)
        by_user = {r.user_id: r for r in revocations}
        assert gone in by_user
        assert kept not in by_user
        assert by_user[gone].epoch >= 1
        assert by_user[gone].revoked_at > before
        assert [r.revoked_at for r in revocations] == sorted(r.revoked_at for r in revocations)
        assert await target.api.session_revocations(utcnow() + timedelta(seconds=1)) == []

    # -- account closure (contract 1.5): each step idempotent under its step key ----------

    async def test_a_closing_account_is_inactive_to_others_and_its_sessions_void(
        self, target: IdentityTarget
    ) -> None:
        before = utcnow() - timedelta(seconds=1)
        ada = await target.given_user("Ada")
        first = await target.api.close_account(ada, "saga-1:close")
        again = await target.api.close_account(ada, "saga-1:close")
        assert first.closing_since is not None
        assert again.closing_since == first.closing_since
        assert not first.erased
        assert (await target.api.get_user(ada)).active is False
        with pytest.raises(UserInactive):
            await target.api.require_active_user(ada)
        assert ada in {r.user_id for r in await target.api.session_revocations(before)}

    async def test_a_reopened_account_is_active_again(self, target: IdentityTarget) -> None:
        ada = await target.given_user("Ada")
        await target.api.close_account(ada, "saga-2:close")
        reopened = await target.api.reopen_account(ada, "saga-2:close")
        assert reopened.closing_since is None
        assert await target.api.reopen_account(ada, "saga-2:close") == reopened
        assert (await target.api.require_active_user(ada)).display_name == "Ada"

    async def test_an_erased_account_keeps_no_name_and_stays_closed(self, target: IdentityTarget) -> None:
        ada, admin = await target.given_user("Ada Lovelace"), await target.given_user("Admin")
        await target.api.close_account(ada, "saga-3:close")
        erased = await target.api.erase_account(ada, admin, "saga-3:erase")
        assert (await target.api.erase_account(ada, admin, "saga-3:erase")).erased_at == erased.erased_at
        profile = await target.api.get_user(ada)
        assert (profile.display_name, profile.active) == (ERASED_DISPLAY_NAME, False)
        assert (await target.api.reopen_account(ada, "saga-3:close")).erased is True
        assert (await target.api.get_user(ada)).active is False

    async def test_account_record_holds_what_the_user_may_take_home(self, target: IdentityTarget) -> None:
        ada = await target.given_user("Ada")
        record = await target.api.account_record(ada)
        assert (record.id, record.display_name, record.active, record.is_admin) == (ada, "Ada", True, False)
        assert "@" in record.email
        with pytest.raises(UserNotFound):
            await target.api.account_record(uuid.uuid4())

    async def test_an_account_not_marked_closing_is_not_erased(self, target: IdentityTarget) -> None:
        ada, admin = await target.given_user("Ada"), await target.given_user("Admin")
        with pytest.raises(AccountNotClosing) as refused:
            await target.api.erase_account(ada, admin, "saga-5:erase")
        assert refused.value.code == "identity.account_not_closing"
        await target.api.close_account(ada, "saga-5:close")
        await target.api.reopen_account(ada, "saga-5:close")  # reopened meanwhile: kept
        with pytest.raises(AccountNotClosing):
            await target.api.erase_account(ada, admin, "saga-5:erase")
        assert (await target.api.get_user(ada)).display_name == "Ada"

    async def test_closing_an_unknown_account_is_user_not_found(self, target: IdentityTarget) -> None:
        with pytest.raises(UserNotFound):
            await target.api.close_account(uuid.uuid4(), "saga-4:close")
