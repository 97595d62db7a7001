"""The tasks module's manifest."""

from __future__ import annotations

from app.kernel.module import Module
from contracts.identity import IDENTITY
from contracts.tasks import TASKS
from modules.tasks.container import TasksContainer
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
)
