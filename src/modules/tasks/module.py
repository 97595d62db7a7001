"""The tasks module's manifest."""

from __future__ import annotations

from app.kernel.module import Module
from contracts.identity import IDENTITY, AccountClosed, UserDeactivated, UserProfileChanged, UserReactivated
from contracts.tasks import (
    TASKS,
    TaskAssigned,
    TaskCreated,
    TaskDeleted,
    TaskEdited,
    TaskOwnerChanged,
    TaskStatusChanged,
)
from modules.tasks.container import TasksContainer
from modules.tasks.handlers import TasksHandlers
from modules.tasks.http import TasksController

__all__ = ("module",)

module = Module(
    name="tasks",
    summary="Tasks: create, assign, list, update, complete",
    provides=TASKS,
    container=TasksContainer,
    api=TasksContainer.service,
    requires={IDENTITY: TasksContainer.identity},
    routes=(TasksController,),
    route_dependencies={"tasks": TasksContainer.service, "profiles": TasksContainer.profiles},
    units=TasksContainer.units,
    publishes=(TaskCreated, TaskAssigned, TaskStatusChanged, TaskEdited, TaskDeleted, TaskOwnerChanged),
    handlers=TasksContainer.handlers,
    consumes={
        UserDeactivated: TasksHandlers.on_user_deactivated,
        UserProfileChanged: TasksHandlers.on_user_changed,
        UserReactivated: TasksHandlers.on_user_changed,
        AccountClosed: TasksHandlers.on_user_changed,
    },
)
