"""The activity module's manifest."""

from __future__ import annotations

from app.kernel.module import Module
from contracts.activity import ACTIVITY
from contracts.identity import (
    IDENTITY,
    AccountClosed,
    AdministratorGranted,
    UserDeactivated,
    UserProfileChanged,
    UserReactivated,
    UserRegistered,
)
from contracts.tasks import (
    TASKS,
    TaskAssigned,
    TaskCreated,
    TaskDeleted,
    TaskEdited,
    TaskOwnerChanged,
    TaskStatusChanged,
)
from modules.activity.container import ActivityContainer
from modules.activity.handlers import ActivityHandlers
from modules.activity.http import AuditController, FeedController, TaskActivityController

__all__ = ("module",)

# Everything activity hears of is history, recorded alike.
_HISTORY = (
    TaskCreated,
    TaskEdited,
    TaskAssigned,
    TaskStatusChanged,
    TaskDeleted,
    TaskOwnerChanged,
    UserRegistered,
    UserProfileChanged,
    UserDeactivated,
    UserReactivated,
    AdministratorGranted,
    AccountClosed,
)

module = Module(
    name="activity",
    summary="The history of every task and of what each user did (event-sourced)",
    provides=ACTIVITY,
    container=ActivityContainer,
    api=ActivityContainer.service,
    requires={TASKS: ActivityContainer.tasks, IDENTITY: ActivityContainer.identity},
    routes=(TaskActivityController, FeedController, AuditController),
    route_dependencies={"activity": ActivityContainer.service},
    units=ActivityContainer.units,
    handlers=ActivityContainer.handlers,
    consumes=dict.fromkeys(_HISTORY, ActivityHandlers.record),
    projector=ActivityContainer.projector,
)
