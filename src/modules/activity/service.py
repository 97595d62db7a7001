"""The activity service: records other modules' events as history and answers ActivityApi.

Writing: each integration event activity consumes is appended, exactly once (the inbox),
to its task's or its user's stream, with the stream's version checked (optimistic
concurrency) and its personal values sealed under their owner's data key. Reading: the
read models the projections keep, opened for the reader with the keys that still exist.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from uuid import UUID

import msgspec

from app.kernel.clock import Clock, utcnow
from app.kernel.events.shredding import Keyring
from app.kernel.events.store import NewEvent
from contracts import FieldError, IntegrationEvent, InvalidInput, Principal
from contracts.activity import (
    ActivityApi,
    ActivityEntry,
    ActivityPage,
    ActivityQuery,
    Erasure,
    NotPermittedOnActivity,
    StatsQuery,
    TaskActivity,
    TaskActivityNotFound,
    UserStats,
)
from contracts.identity import IdentityApi, NotPermittedOnUser
from contracts.tasks import TaskNotFound, TasksApi
from modules.activity.domain import fold_task, personal_data, stream_of, week_stats, weeks_between
from modules.activity.repository import ActivityUnit, EntryRow, Page

if TYPE_CHECKING:
    from app.kernel.unit_of_work import UnitsOfWork

__all__ = ("ActivityService",)

STATS_WEEKS_DEFAULT = 12
STATS_WEEKS_MAX = 106  # two years and a bit: one request's worth of weeks

_to_builtins = msgspec.to_builtins


class ActivityService(ActivityApi):
    def __init__(
        self,
        *,
        units: UnitsOfWork[ActivityUnit],
        tasks: TasksApi,
        identity: IdentityApi,
        clock: Clock = utcnow,
    ) -> None:
        self._units = units
        self._tasks = tasks
        self._identity = identity
        self._clock = clock

    # -- ActivityApi ------------------------------------------------------------------

    async def task_activity(self, principal: Principal, task_id: UUID, query: ActivityQuery) -> TaskActivity:
        try:
            await self._tasks.get_task(principal, task_id)  # its owner and assignee now, nobody else
        except TaskNotFound:
            raise TaskActivityNotFound(f"no task {task_id}") from None
        async with self._units.read() as unit:
            page = await unit.activity.timeline(
                task_id, limit=query.limit, cursor=query.cursor, as_of=query.as_of
            )
            history = (
                await unit.history.stream(f"task-{task_id}", occurred_until=query.as_of)
                if query.as_of is not None
                else []
            )
            keyring = await unit.history.keyring([r.data for r in page.rows] + [e.data for e in history])
        state = (
            fold_task(task_id, ((e.event_type, e.occurred_at, keyring.open(e.data)) for e in history))
            if query.as_of is not None
            else None
        )
        return TaskActivity(items=_entries(page, keyring), next_cursor=page.next_cursor, state=state)

    async def user_feed(self, principal: Principal, query: ActivityQuery) -> ActivityPage:
        async with self._units.read() as unit:
            page = await unit.activity.feed(principal.user_id, limit=query.limit, cursor=query.cursor)
            keyring = await unit.history.keyring(r.data for r in page.rows)
        return ActivityPage(items=_entries(page, keyring), next_cursor=page.next_cursor)

    async def user_stats(self, principal: Principal, query: StatsQuery) -> UserStats:
        user_id = query.user_id or principal.user_id
        if user_id != principal.user_id:
            await self._administrator(principal)
        end = query.to or self._clock()
        try:
            start = query.from_ or end - timedelta(weeks=STATS_WEEKS_DEFAULT - 1)
        except OverflowError:  # the weeks before `to` would begin before the year 1
            raise InvalidInput(
                [FieldError(field="to", message="is too early for a week's figures")]
            ) from None
        if start > end:
            raise InvalidInput([FieldError(field="from", message="must not be after `to`")])
        too_many = [FieldError(field="from", message=f"at most {STATS_WEEKS_MAX} weeks at a time")]
        if end - start > timedelta(weeks=STATS_WEEKS_MAX):  # before counting them, however many
            raise InvalidInput(too_many)
        try:
            weeks = weeks_between(start, end)
        except OverflowError:  # the week holding `to` would end after the year 9999
            raise InvalidInput([FieldError(field="to", message="is too late for a week's figures")]) from None
        if len(weeks) > STATS_WEEKS_MAX:
            raise InvalidInput(too_many)
        async with self._units.read() as unit:
            marks = await unit.activity.marks(user_id, weeks)
        return UserStats(user_id=user_id, weeks=week_stats(weeks, marks))

    async def audit(self, principal: Principal, query: ActivityQuery) -> ActivityPage:
        await self._administrator(principal)
        async with self._units.read() as unit:
            page = await unit.activity.audit(limit=query.limit, cursor=query.cursor)
            keyring = await unit.history.keyring(r.data for r in page.rows)
        return ActivityPage(items=_entries(page, keyring), next_cursor=page.next_cursor)

    async def erase_user(self, user_id: UUID, step_key: str | None = None) -> Erasure:
        async with self._units.write() as unit:
            erased = await unit.history.erase(user_id)
        await self._units.expunge("subject_keys")  # no older copy of the key left in the files
        return Erasure(user_id=user_id, erased=erased)

    # -- the module's own operations --------------------------------------------------

    async def record(self, events: Sequence[IntegrationEvent], *, unit: ActivityUnit) -> None:
        """Append events to their streams, in order, in the unit of work their delivery opened."""
        found: list[tuple[str, str, dict[str, Any], IntegrationEvent]] = []
        for event in events:
            data = _to_builtins(event)
            event_type = data.pop("type")
            found.append((stream_of(event_type, data), event_type, data, event))
        personal = [(p, data) for _, event_type, data, _ in found if (p := personal_data(event_type, data))]
        keyring = await unit.history.keyring_of(p.subject for p, _ in personal)
        for p, data in personal:
            _seal(keyring, p.subject, p.fields, data, p.erased_as)
        await unit.history.keep(keyring)
        by_stream: dict[str, list[NewEvent]] = {}
        for stream, event_type, data, event in found:
            by_stream.setdefault(stream, []).append(
                NewEvent(
                    event_id=event.event_id, event_type=event_type, occurred_at=event.occurred_at, data=data
                )
            )
        versions = await unit.history.versions(list(by_stream))
        await unit.history.append({stream: (versions[stream], new) for stream, new in by_stream.items()})

    async def _administrator(self, principal: Principal) -> None:
        try:
            await self._identity.require_administrator(principal.user_id)
        except NotPermittedOnUser:
            raise NotPermittedOnActivity("only an administrator may see that") from None


def _seal(
    keyring: Keyring, subject: UUID, fields: Sequence[str], data: dict[str, Any], erased_as: str
) -> None:
    """Seal ``fields`` of ``data`` in place, and the same fields of its ``before``/``after``."""
    for holder in (data, data.get("before"), data.get("after")):
        if isinstance(holder, dict):
            for name in fields:
                if name in holder:
                    holder[name] = keyring.seal(subject, holder[name], erased_as=erased_as)


def _entries(page: Page, keyring: Keyring) -> list[ActivityEntry]:
    return [_entry(row, keyring) for row in page.rows]


def _entry(row: EntryRow, keyring: Keyring) -> ActivityEntry:
    return ActivityEntry(
        id=row.event_id,
        kind=row.kind,
        actor_id=row.actor_id,
        occurred_at=row.occurred_at,
        task_id=row.task_id,
        user_id=row.user_id,
        data=keyring.open(row.data),
    )
