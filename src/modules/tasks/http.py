"""The tasks REST API. Owners' and assignees' names come from identity, through ``Profiles``."""

from __future__ import annotations

import logging
from typing import Annotated, Literal
from uuid import UUID

import msgspec
from litestar import Controller, Response, delete, get, patch, post
from litestar.datastructures import ResponseHeader
from litestar.di import NamedDependency
from litestar.params import FromPath, HeaderParameter, JSONBody, QueryParameter
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT

from app.kernel.module import API_PREFIX
from app.kernel.problems import problem_responses, query_moment
from contracts import (
    NO_CONTROL_CHARACTERS,
    PAGE_LIMIT_DEFAULT,
    PAGE_LIMIT_MAX,
    DependencyUnavailable,
    FieldError,
    InvalidInput,
    Principal,
)
from contracts.identity import UserProfile
from contracts.tasks import (
    LABEL_MAX,
    TITLE_MAX,
    IdempotencyKeyReused,
    InvalidTransition,
    NotPermittedOnTask,
    Task,
    TaskNotFound,
    TaskQuery,
    TaskSort,
    TaskStatus,
    VersionMismatch,
)
from modules.tasks.domain import (
    TaskChanges,
    TaskDraft,
)
from modules.tasks.profiles import Profiles
from modules.tasks.service import TasksService

__all__ = ("TasksController",)

log = logging.getLogger("tessera.tasks")


class Person(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    display_name: str | None  # None when identity no longer knows the user


class TaskView(Task, frozen=True, kw_only=True):
    owner: Person
    assignee: Person | None


class TaskList(msgspec.Struct, frozen=True, kw_only=True):
    items: list[TaskView]
    next_cursor: str | None


_ETAG = ResponseHeader(
    name="ETag", documentation_only=True, description="The task's version: send it as If-Match to change it"
)
_LOCATION = ResponseHeader(name="Location", documentation_only=True, description="Where the new task lives")
_REPLAYED = ResponseHeader(
    name="Idempotent-Replayed",
    documentation_only=True,
    required=False,
    description="`true` when this is the answer to an earlier request with the same Idempotency-Key",
)


class TasksController(Controller):
    path = "/tasks"
    tags = ("tasks",)

    @post(
        "/",
        status_code=HTTP_201_CREATED,
        responses=problem_responses(401, 422, IdempotencyKeyReused, TaskNotFound),
        response_headers=[_LOCATION, _ETAG, _REPLAYED],
        summary="Create a task (send Idempotency-Key to make retries safe)",
    )
    async def create(
        self,
        data: JSONBody[TaskDraft],
        principal: NamedDependency[Principal],
        tasks: NamedDependency[TasksService],
        profiles: NamedDependency[Profiles],
        idempotency_key: Annotated[
            str | None, HeaderParameter(name="Idempotency-Key", max_length=200, required=False)
        ] = None,
    ) -> Response[TaskView]:
        created = await tasks.create_task(principal, data, idempotency_key=idempotency_key)
        (view,) = await _views([created.task], profiles)
        return Response(
            view,
            status_code=HTTP_201_CREATED,
            headers={"Location": f"{API_PREFIX}/tasks/{view.id}", "ETag": _etag(view)}
            | ({"Idempotent-Replayed": "true"} if created.replayed else {}),
        )

    @get("/", responses=problem_responses(401, 422), summary="List the tasks you own or are assigned")
    async def list_tasks(
        self,
        principal: NamedDependency[Principal],
        tasks: NamedDependency[TasksService],
        profiles: NamedDependency[Profiles],
        status: Annotated[list[TaskStatus] | None, QueryParameter(required=False)] = None,
        assignee_id: Annotated[UUID | None, QueryParameter(required=False)] = None,
        label: Annotated[str | None, QueryParameter(max_length=LABEL_MAX, required=False)] = None,
        q: Annotated[
            str | None,
            QueryParameter(
                max_length=TITLE_MAX,
                pattern=NO_CONTROL_CHARACTERS,  # a NUL once matched every task
                required=False,
                description="text the title contains, without control characters",
            ),
        ] = None,
        due_before: Annotated[
            str | None,
            QueryParameter(
                required=False,
                max_length=64,
                description="an RFC 3339 date-time with its UTC offset",
                schema_extra={"format": "date-time"},
            ),
        ] = None,
        sort: Annotated[TaskSort, QueryParameter()] = TaskSort.CREATED_AT,
        order: Annotated[Literal["asc", "desc"], QueryParameter()] = "desc",
        limit: Annotated[int, QueryParameter(ge=1, le=PAGE_LIMIT_MAX)] = PAGE_LIMIT_DEFAULT,
        cursor: Annotated[str | None, QueryParameter(max_length=512, required=False)] = None,
    ) -> TaskList:
        due = query_moment(due_before, field="due_before") if due_before is not None else None
        page = await tasks.list_tasks(
            principal,
            TaskQuery(
                status=status,
                assignee_id=assignee_id,
                label=label,
                title_contains=q,
                due_before=due,
                sort=sort,
                descending=order == "desc",
                limit=limit,
                cursor=cursor,
            ),
        )
        return TaskList(items=await _views(page.items, profiles), next_cursor=page.next_cursor)

    @get(
        "/{task_id:uuid}",
        responses=problem_responses(401, TaskNotFound),
        response_headers=[_ETAG],
        summary="One task",
    )
    async def get_task(
        self,
        task_id: FromPath[UUID],
        principal: NamedDependency[Principal],
        tasks: NamedDependency[TasksService],
        profiles: NamedDependency[Profiles],
    ) -> Response[TaskView]:
        (view,) = await _views([await tasks.get_task(principal, task_id)], profiles)
        return Response(view, headers={"ETag": _etag(view)})

    @patch(
        "/{task_id:uuid}",
        responses=problem_responses(
            401, 422, TaskNotFound, NotPermittedOnTask, InvalidTransition, VersionMismatch
        ),
        response_headers=[_ETAG],
        summary="Change a task (If-Match: its ETag, to refuse lost updates)",
    )
    async def update(
        self,
        task_id: FromPath[UUID],
        data: JSONBody[TaskChanges],
        principal: NamedDependency[Principal],
        tasks: NamedDependency[TasksService],
        profiles: NamedDependency[Profiles],
        if_match: Annotated[str | None, HeaderParameter(name="If-Match", required=False)] = None,
    ) -> Response[TaskView]:
        task = await tasks.update_task(principal, task_id, data, expected_version=_version_of(if_match))
        (view,) = await _views([task], profiles)
        return Response(view, headers={"ETag": _etag(view)})

    @delete(
        "/{task_id:uuid}",
        status_code=HTTP_204_NO_CONTENT,
        responses=problem_responses(401, TaskNotFound, NotPermittedOnTask),
        summary="Delete a task (owner only)",
    )
    async def remove(
        self,
        task_id: FromPath[UUID],
        principal: NamedDependency[Principal],
        tasks: NamedDependency[TasksService],
    ) -> None:
        await tasks.delete_task(principal, task_id)


async def _views(found: list[Task], profiles: Profiles) -> list[TaskView]:
    """Tasks with their owners' and assignees' names: at most one call to identity.

    Names are a nicety: while identity is unreachable, tasks are still served, nameless.
    """
    wanted = list(dict.fromkeys(u for t in found for u in (t.owner_id, t.assignee_id) if u is not None))
    known: dict[UUID, UserProfile] = {}
    if wanted:
        try:
            known = await profiles.of(wanted)
        except DependencyUnavailable as exc:
            log.warning("serving tasks without names: %s", exc.detail)

    def person(user_id: UUID) -> Person:
        profile = known.get(user_id)
        return Person(id=user_id, display_name=profile.display_name if profile else None)

    return [
        TaskView(
            **{f: getattr(task, f) for f in task.__struct_fields__},
            owner=person(task.owner_id),
            assignee=person(task.assignee_id) if task.assignee_id else None,
        )
        for task in found
    ]


def _etag(task: Task) -> str:
    return f'"{task.version}"'


def _version_of(if_match: str | None) -> int | None:
    """The version an If-Match header names; ``*`` or no header means any."""
    if if_match is None or if_match.strip() == "*":
        return None
    tag = if_match.strip().removeprefix("W/").strip('"')
    if not tag.isdigit():
        raise InvalidInput([FieldError(field="If-Match", message="not an ETag this API issued")])
    return int(tag)
