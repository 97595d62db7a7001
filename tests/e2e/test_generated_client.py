"""A client generated from the API document by openapi-python-client drives the main flow.

Register two people, sign in, find the assignee by name, create a task for them, list it,
change it with If-Match (a stale copy is refused with 412), and read the assignee's
notification: all through the generated code, against a real server.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from app.composition.catalog import MODULES
from app.composition.openapi import document
from tests.e2e.cluster import monolith
from tests.e2e.flow import eventually

pytestmark = pytest.mark.slow

GENERATOR = str(Path(sys.executable).with_name("openapi-python-client"))
PACKAGE = "tessera_client"


@pytest.fixture(scope="module")
def client_package(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The generated package, importable for this module's tests."""
    root = tmp_path_factory.mktemp("generated")
    spec = root / "openapi.json"
    spec.write_text(json.dumps(document(MODULES)))
    environment = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    generated = subprocess.run(
        [GENERATOR, "generate", "--path", str(spec), "--output-path", str(root / PACKAGE), "--meta", "none"],
        capture_output=True,
        text=True,
        timeout=180,
        env=environment,
        check=False,
    )
    assert generated.returncode == 0, generated.stdout + generated.stderr
    assert "Warning" not in generated.stdout, generated.stdout  # every operation and model generated
    sys.path.insert(0, str(root))
    try:
        yield PACKAGE
    finally:
        sys.path.remove(str(root))
        for name in [n for n in sys.modules if n == PACKAGE or n.startswith(f"{PACKAGE}.")]:
            del sys.modules[name]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with monolith(tmp_path_factory.mktemp("server")) as base:
        yield base


def _module(package: str, name: str) -> ModuleType:
    return importlib.import_module(f"{package}.{name}")


def test_a_generated_client_drives_the_main_flow(client_package: str, server: str) -> None:
    api = _module(client_package, "client")
    models = _module(client_package, "models")
    register = _module(client_package, "api.users.users_register")
    token = _module(client_package, "api.auth.auth_token")
    find_people = _module(client_package, "api.users.users_find_people")
    create = _module(client_package, "api.tasks.tasks_create")
    list_tasks = _module(client_package, "api.tasks.tasks_list_tasks")
    update = _module(client_package, "api.tasks.tasks_update")
    notifications = _module(client_package, "api.notifications.notifications_list_notifications")

    anonymous = api.Client(base_url=server)
    suffix = uuid.uuid4().hex[:6]

    def sign_up_and_in(name: str) -> Any:
        email = f"{name.lower()}-{suffix}@example.com"
        account = register.sync(
            client=anonymous,
            body=models.Registration(email=email, password="correct horse battery", display_name=name),
        )
        assert isinstance(account, models.Account), account
        pair = token.sync(
            client=anonymous, body=models.Credentials(email=email, password="correct horse battery")
        )
        assert isinstance(pair, models.TokenPair), pair
        return api.AuthenticatedClient(base_url=server, token=pair.access_token)

    ada = sign_up_and_in("Ada")
    bob = sign_up_and_in(f"Bob{suffix}")

    people = find_people.sync(client=ada, q=f"bob{suffix}")
    assert isinstance(people, models.PeoplePage), people
    (bob_profile,) = people.items

    created = create.sync_detailed(
        client=ada,
        body=models.TaskDraft(title="Write the client test", assignee_id=bob_profile.id, labels=["api"]),
        idempotency_key=f"create-{suffix}",
    )
    assert created.status_code == 201, created.content
    task = created.parsed
    assert isinstance(task, models.TaskView)
    assert task.assignee is not None
    assert task.assignee.display_name == f"Bob{suffix}"
    etag = created.headers["etag"]

    listed = list_tasks.sync(client=ada, label="api")
    assert isinstance(listed, models.TaskList)
    assert [t.id for t in listed.items] == [task.id]

    started = update.sync_detailed(
        client=bob,
        task_id=task.id,
        body=models.TaskChanges(status=models.TaskStatus.IN_PROGRESS),
        if_match=etag,
    )
    assert started.status_code == 200, started.content
    assert started.parsed.status == models.TaskStatus.IN_PROGRESS
    stale = update.sync_detailed(
        client=ada, task_id=task.id, body=models.TaskChanges(title="Overwritten"), if_match=etag
    )
    assert stale.status_code == 412
    assert isinstance(stale.parsed, models.Problem)
    assert stale.parsed.code == "tasks.version_mismatch"

    def assigned() -> Any:
        page = notifications.sync(client=bob)
        assert isinstance(page, models.NotificationPage)
        return next((n for n in page.items if n.task_id == task.id), None)

    notice = eventually(assigned, within=2.0, what="Bob's notification of the assignment")
    assert notice.kind == models.NotificationKind.TASK_ASSIGNED
