"""The tasks module's manifest."""

from __future__ import annotations

from app.kernel.module import Module
from contracts.identity import IDENTITY, UserDeactivated
from contracts.tasks import TASKS, TaskAssigned, TaskCreated, TaskDeleted, TaskStatusChanged
from modules.tasks.container import TasksContainer
from modules.tasks.handlers import TasksHandlers
from modules.tasks.http import TasksController

__all__ = ("module",)

module = Module(
    name="tasks",
    summary="Tasks: create, assign, list, update, complete",
    provides=TASKS,
    requires=(IDENTITY,),
    container=TasksContainer,
    routes=(TasksController,),
    dependencies={"tasks": "service", "people": "identity"},
    publishes=(TaskCreated, TaskAssigned, TaskStatusChanged, TaskDeleted),
    consumes={UserDeactivated: TasksHandlers.on_user_deactivated},
)
