"""``simulate``: one process that meets the network a split would — calls between its would-be
groups cross the strict boundary, wait the configured latency and fail at the configured rate;
with a gateway, so does every public API request before it is served."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import msgspec
import pytest
from litestar.testing import TestClient

from app.composition.container import compose
from app.composition.web import create_app
from app.kernel.config import Settings, SimulateSettings
from app.kernel.rpc import SimulatedNetwork, simulated
from contracts import DependencyUnavailable, Principal
from contracts.identity import IDENTITY
from contracts.tasks import TASKS, TaskNotFound
from tests.conftest import bearer, log_in, register, run_async
from tests.servers import TESSERA, clean_env


def _tessera(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([TESSERA, *args], env=env, capture_output=True, text=True, timeout=60, check=False)


def _simulating(migrated: Settings, **simulate: Any) -> Settings:
    return msgspec.structs.replace(migrated, simulate=SimulateSettings(**simulate))


def test_a_call_across_the_simulated_network_waits_its_latency_and_fails_at_its_rate(
    migrated: Settings,
) -> None:
    composition = compose(migrated)
    identity = composition.client(IDENTITY)
    slow = simulated(IDENTITY, identity, SimulatedNetwork([60.0]))
    failing = simulated(IDENTITY, identity, SimulatedNetwork([], failure_rate=1.0))

    async def calls() -> float:
        started = time.monotonic()
        assert await slow.get_users([]) == []
        took = time.monotonic() - started
        with pytest.raises(DependencyUnavailable, match="the simulated network failed the call"):
            await failing.get_users([])
        await composition.aclose()
        return took

    assert run_async(calls()) >= 0.06


def test_only_calls_between_groups_meet_the_network(migrated: Settings) -> None:
    settings = _simulating(migrated, remote=["identity+accounts"], gateway=False, failure_rate=1.0)
    composition = compose(settings)  # without a gateway the pages run beside tasks, apart from identity

    async def calls() -> None:
        with pytest.raises(DependencyUnavailable):
            await composition.client(IDENTITY).get_users([])
        with pytest.raises(TaskNotFound):  # tasks answers itself: nothing crossed
            await composition.client(TASKS).get_task(Principal(user_id=uuid.uuid4()), uuid.uuid4())
        await composition.aclose()

    run_async(calls())


def test_a_failing_network_fails_the_calls_that_cross_it_and_only_those(migrated: Settings) -> None:
    settings = _simulating(migrated, remote=["identity+accounts"], gateway=False, failure_rate=1.0)
    with TestClient(app=create_app(compose(settings))) as client:
        ada, bob = register(client), register(client, display_name="Bob")  # identity's own routes: local
        token = log_in(client, ada["email"])["access_token"]
        alone = client.post("/api/v1/tasks", json={"title": "Mine"}, headers=bearer(token))
        assert alone.status_code == 201, alone.text  # tasks alone: nothing crosses
        assigned = client.post(
            "/api/v1/tasks", json={"title": "Bob's", "assignee_id": bob["id"]}, headers=bearer(token)
        )  # tasks asks identity whether Bob may be assigned: across the network, which fails
        assert assigned.status_code == 503, assigned.text
        assert assigned.json()["code"] == "dependency.unavailable"


def test_with_a_gateway_every_public_request_crosses_first(migrated: Settings) -> None:
    settings = _simulating(migrated, remote=["notifications"], failure_rate=1.0)
    with TestClient(app=create_app(compose(settings))) as client:
        refused = client.get("/api/v1/tasks")
        assert refused.status_code == 503
        assert refused.json()["code"] == "dependency.unavailable"
        assert refused.headers["retry-after"] == "1"
        assert client.get("/health/live").status_code == 200  # not a public API request


def test_the_command_runs_with_the_simulation_in_its_configuration(tmp_path: Path) -> None:
    probe = (
        "from app.kernel.config import load_settings; s = load_settings().simulate; "
        "print(s.remote, s.gateway, s.failure_rate, len(s.latencies_ms))"
    )
    simulate = ["simulate", "--remote", "identity+accounts,tasks", "--failure-rate", "0.1", "--no-gateway"]
    done = _tessera(clean_env(TESSERA_DATA_DIR=str(tmp_path)), *simulate, "--", sys.executable, "-c", probe)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["['identity+accounts',", "'tasks']", "False", "0.1", "300"]
    assert "measured here: one remote call " in done.stderr


def test_an_unknown_module_is_refused_naming_the_modules() -> None:
    done = _tessera(clean_env(), "simulate", "--remote", "tasks,billing", "--latency-ms", "1", "--", "true")
    assert done.returncode == 1
    assert "--remote: no module billing (modules: accounts, activity, identity, notifications, tasks)" in (
        done.stderr
    )


def test_a_call_inside_an_open_unit_of_work_is_noted_and_extracting_its_callee_is_refused(
    migrated: Settings, tmp_path: Path
) -> None:
    record = tmp_path / "held.jsonl"
    composition = compose(_simulating(migrated, remote=["identity+accounts"], record_file=str(record)))
    tasks = next(m.database for m in composition.modules if m.name == "tasks")
    identity = composition.client(IDENTITY)  # the pages', across the network

    async def calls() -> None:
        async with tasks.transaction():  # as a handler or service of tasks with its unit open would
            await identity.get_users([])
            await identity.get_users([])  # (noted once)
        await identity.get_users([])  # outside any unit: nothing to note
        await composition.aclose()

    run_async(calls())
    assert [json.loads(line) for line in record.read_text().splitlines()] == [
        {"call": "identity.get_users", "held": ["tasks"]}
    ]
    env = clean_env(TESSERA_DATA_DIR=str(tmp_path / "data"))
    refused = _tessera(env, "extract", "identity", "--recorded", str(record))
    assert refused.returncode == 2, refused.stderr
    assert "identity.get_users was called inside the open unit of work of tasks" in refused.stderr
    # The record names identity only: tasks may go.
    elsewhere = _tessera(env, "extract", "tasks", "--recorded", str(record), "--samples", "10")
    assert elsewhere.returncode == 0, elsewhere.stderr
