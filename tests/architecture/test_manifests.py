"""The handshake between a module and the composition is made of objects, checked at start-up."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
from dependency_injector import containers, providers

import modules.identity
import modules.notifications
import modules.tasks
from app.composition.container import CompositionError, compose
from app.kernel.config import Settings
from contracts.tasks import TaskAssigned
from modules.identity.container import IdentityContainer
from modules.tasks.handlers import TasksHandlers

SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.mark.parametrize("service", sorted(SRC.glob("modules/*/service.py")), ids=lambda p: p.parent.name)
def test_no_service_handles_a_raw_connection_or_the_outbox(service: Path) -> None:
    """Services write through their unit of work, which carries the events to the outbox."""
    code = service.read_text()
    assert not re.search(r"\b(AsyncConnection|Database|Outbox|outbox|transaction\(\))", code)


def test_a_manifest_naming_another_containers_provider_is_refused(settings: Settings) -> None:
    wrong = dataclasses.replace(modules.tasks.module, api=IdentityContainer.service)
    with pytest.raises(
        CompositionError, match="module tasks: its manifest's api is not a provider of TasksContainer"
    ):
        compose(settings, catalog=(modules.identity.module, wrong, modules.notifications.module))


def test_a_consumed_event_mapped_to_a_method_of_another_class_is_refused(settings: Settings) -> None:
    wrong = dataclasses.replace(
        modules.notifications.module, consumes={TaskAssigned: TasksHandlers.on_user_deactivated}
    )
    with pytest.raises(CompositionError, match=r"module notifications: TasksHandlers\.on_user_deactivated"):
        compose(settings, catalog=(modules.identity.module, modules.tasks.module, wrong))


def test_a_container_dependency_nobody_fills_is_named(settings: Settings) -> None:
    class Needy(containers.DeclarativeContainer):
        clock = providers.Dependency(instance_of=float)
        service = providers.Object(object())

    needy = dataclasses.replace(
        modules.notifications.module, container=Needy, api=Needy.service, route_dependencies={}, consumes={}
    )
    with pytest.raises(CompositionError, match="module notifications: its container's dependency 'clock'"):
        compose(settings, catalog=(modules.identity.module, modules.tasks.module, needy))


def test_a_required_contract_nobody_provides_is_named(settings: Settings) -> None:
    with pytest.raises(CompositionError, match="module tasks requires contract 'identity'"):
        compose(settings, catalog=(modules.tasks.module,))
