"""The tessera command: migrations, module map, OpenAPI, and a serve that refuses stale schemas."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sqlite3
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from app.composition.catalog import MODULES
from app.composition.cli import main
from app.composition.container import compose
from contracts.accounts import ACCOUNTS
from contracts.activity import ACTIVITY
from contracts.identity import IDENTITY
from contracts.notifications import NOTIFICATIONS
from contracts.tasks import TASKS
from tests.conftest import SIGNING_KEY
from tests.servers import TESSERA


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    data_dir = tmp_path / "data"
    monkeypatch.setenv("TESSERA_PROFILE", "test")
    monkeypatch.setenv("TESSERA_DATA_DIR", str(data_dir))
    monkeypatch.setenv("TESSERA_SECURITY__SIGNING_KEY", SIGNING_KEY)
    # `serve --group` names its group in this process's environment for its workers (and
    # reads TESSERA_GROUP): recorded here, so that each test starts and ends without one.
    monkeypatch.setenv("TESSERA_GROUP", "")
    monkeypatch.delenv("TESSERA_GROUP")
    return data_dir


def test_db_wait_gives_up_naming_what_is_behind(env: Path) -> None:
    result = CliRunner().invoke(main, ["db", "wait", "--timeout", "0.5"])
    assert result.exit_code == 1
    assert "not migrated after 0.5 s" in result.output
    assert "tasks: at nothing, code expects tasks_" in result.output


def test_db_wait_returns_once_a_release_s_migration_ran(env: Path) -> None:
    waiting = subprocess.Popen(
        [TESSERA, "db", "wait", "--timeout", "60"], env=dict(os.environ), stdout=subprocess.PIPE
    )
    try:
        assert CliRunner().invoke(main, ["db", "upgrade"]).exit_code == 0
        assert waiting.wait(timeout=60) == 0
    finally:
        waiting.kill()
    assert waiting.stdout is not None
    assert b"at the newest revision" in waiting.stdout.read()


def test_db_upgrade_is_idempotent_and_current_reports_it(env: Path) -> None:
    runner = CliRunner()
    first = runner.invoke(main, ["db", "upgrade"])
    assert first.exit_code == 0, first.output
    assert "identity: at identity_0006" in first.output
    assert "tasks: at tasks_0005" in first.output
    assert "notifications: at notifications_0002" in first.output
    assert "activity: at activity_0001" in first.output
    assert "accounts: at accounts_0001" in first.output
    assert runner.invoke(main, ["db", "upgrade", "--module", "identity"]).exit_code == 0
    current = runner.invoke(main, ["db", "current"])
    assert current.exit_code == 0
    assert "identity: identity_0006  up to date" in current.output
    assert sorted(p.name for p in env.glob("*.db")) == [
        "accounts.db",
        "activity.db",
        "identity.db",
        "notifications.db",
        "tasks.db",
    ]


def test_db_current_shows_an_empty_database_as_behind(env: Path) -> None:
    result = CliRunner().invoke(main, ["db", "current"])
    assert "identity: empty  behind" in result.output


def test_db_upgrade_of_an_unknown_module_is_refused(env: Path) -> None:
    result = CliRunner().invoke(main, ["db", "upgrade", "--module", "billing"])
    assert result.exit_code == 1
    assert "no module named 'billing'" in result.output


def test_serve_refuses_to_start_while_a_database_is_behind(env: Path) -> None:
    result = CliRunner().invoke(main, ["serve", "--port", "1"])
    assert result.exit_code == 1
    assert "identity: at nothing, code expects identity_0006" in result.output
    assert "tessera db upgrade" in result.output


def test_a_bad_configuration_stops_start_up_naming_the_key(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TESSERA_SERVER__PORT", "eighty")
    result = CliRunner().invoke(main, ["db", "current"])
    assert result.exit_code == 1
    assert "server.port" in result.output


def test_serve_without_a_signing_key_says_how_to_give_one(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TESSERA_PROFILE", "production")
    monkeypatch.delenv("TESSERA_SECURITY__SIGNING_KEY")
    result = CliRunner().invoke(main, ["serve"])
    assert result.exit_code == 1
    assert "TESSERA_SECURITY__SIGNING_KEY_FILE" in result.output


def test_a_piped_table_keeps_each_row_on_one_line_however_narrow_the_terminal_says_it_is(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "40")
    result = CliRunner().invoke(main, ["modules"])
    assert result.exit_code == 0, result.output
    rows = result.output.split("\n\n")[0].splitlines()
    summaries = [module.summary for module in MODULES]
    assert len(rows) == 1 + len(summaries)
    assert all(row.endswith(summary) for row, summary in zip(rows[1:], summaries, strict=True))


def test_help_lists_every_command_with_what_it_does(env: Path) -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0, result.output
    for command, summary in {
        "db": "Each module's database",
        "events": "Each module's outbox",
        "modules": "Each module, its contracts",
        "serve": "Serve the web application",
        "users": "Administer user accounts",  # a module's own command, collected
    }.items():
        assert re.search(rf"\b{command}\s+{summary}", result.output), command


def test_modules_prints_a_table_and_a_mermaid_graph(env: Path) -> None:
    result = CliRunner().invoke(main, ["modules"])
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0].split() == ["module", "provides", "requires", "runs", "in", "summary"]
    assert lines[1].split()[:6] == ["identity", "identity", IDENTITY.version, "-", "this", "process"]
    assert lines[2].split()[:6] == ["tasks", "tasks", TASKS.version, "identity", "this", "process"]
    assert lines[3].split()[:6] == [
        "notifications",
        "notifications",
        NOTIFICATIONS.version,
        "-",
        "this",
        "process",
    ]
    assert lines[4].split()[:5] == ["activity", "activity", ACTIVITY.version, "tasks,", "identity"]
    assert lines[5].split()[:7] == [
        "accounts",
        "accounts",
        ACCOUNTS.version,
        "identity,",
        "tasks,",
        "notifications,",
        "activity",
    ]
    assert f"tasks -->|identity {IDENTITY.version}| identity" in result.output
    # event edges: publisher -. event .-> consumer
    assert "identity -.->|UserDeactivated| tasks" in result.output
    assert "tasks -.->|TaskAssigned| notifications" in result.output
    assert "tasks -.->|TaskEdited| activity" in result.output
    assert "```mermaid" in result.output
    assert "graph LR" in result.output


def test_openapi_prints_the_public_api(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TESSERA_SECURITY__SIGNING_KEY")
    monkeypatch.setenv("TESSERA_PROFILE", "production")
    result = CliRunner().invoke(main, ["openapi"])
    assert result.exit_code == 0, result.output
    spec = json.loads(result.output)
    assert spec["info"]["title"] == "Tessera"
    assert "/api/v1/auth/token" in spec["paths"]


def test_modules_shows_where_each_module_runs_in_the_split_topology(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TESSERA_PROFILE", "split")
    result = CliRunner().invoke(main, ["modules"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "identity http://127.0.0.1:8001" in lines[1]
    assert "tasks http://127.0.0.1:8002" in lines[2]


def test_serve_refuses_an_unknown_group(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TESSERA_PROFILE", "split")
    result = CliRunner().invoke(main, ["serve", "--group", "billing"])
    assert result.exit_code == 1
    assert "topology.groups.billing: no such group" in result.output


def test_serve_refuses_a_group_the_others_cannot_reach(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Even a pure gateway needs its URL: the groups it calls fetch its public keys from there.
    monkeypatch.setenv("TESSERA_PROFILE", "split")
    monkeypatch.setenv("TESSERA_TOPOLOGY__GROUPS__GATEWAY__URL", "")
    result = CliRunner().invoke(main, ["serve", "--group", "tasks"])
    assert result.exit_code == 1
    assert "topology.groups.gateway.url: needed to check its calls" in result.output


def _register(email: str) -> None:
    """A user registered straight through identity's service (its UserRegistered stays pending)."""
    from app.kernel.config import load_settings

    async def work() -> None:
        composition = compose(load_settings())
        try:
            service = composition.module("identity").container.service()
            await service.register(email=email, password="correct horse battery", display_name="Ada")
        finally:
            await composition.aclose()

    asyncio.run(work())


def test_events_status_shows_each_publishers_backlog(env: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(main, ["db", "upgrade"]).exit_code == 0
    _register("ada@example.com")
    result = runner.invoke(main, ["events", "status"])
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line.split()[1:] for line in result.output.splitlines()[1:]}
    assert rows["identity"][:3] == ["1", "0", "0"]  # pending, failed, published
    assert rows["tasks"][:3] == ["0", "0", "0"]
    assert "notifications" not in rows  # publishes nothing


def test_events_retry_resubmits_failed_events(env: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(main, ["db", "upgrade"]).exit_code == 0
    _register("ada@example.com")
    database = env / "identity.db"
    with sqlite3.connect(database) as connection:
        connection.execute("UPDATE outbox SET status = 'failed', attempts = 10")
    result = runner.invoke(main, ["events", "retry", "--module", "identity"])
    assert result.exit_code == 0, result.output
    assert "identity: 1 resubmitted" in result.output
    with sqlite3.connect(database) as connection:
        assert connection.execute("SELECT status, attempts FROM outbox").fetchall() == [("pending", 0)]
    assert runner.invoke(main, ["events", "retry", "--module", "billing"]).exit_code == 1


def test_users_make_admin_grants_the_role(env: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(main, ["db", "upgrade"]).exit_code == 0
    _register("ada@example.com")
    result = runner.invoke(main, ["users", "make-admin", "ada@example.com"])
    assert result.exit_code == 0, result.output
    assert "is now an administrator" in result.output
    with sqlite3.connect(env / "identity.db") as connection:
        assert connection.execute("SELECT is_admin FROM users").fetchall() == [(1,)]
    unknown = runner.invoke(main, ["users", "make-admin", "nobody@example.com"])
    assert unknown.exit_code == 1
    assert "no user with e-mail" in unknown.output


@pytest.mark.parametrize("group", [None, "tasks"])
def test_serve_on_an_unmigrated_data_dir_refuses_before_touching_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, group: str | None
) -> None:
    data_dir = tmp_path / "fresh"
    monkeypatch.setenv("TESSERA_PROFILE", "split" if group else "dev")  # both would make keys
    monkeypatch.setenv("TESSERA_DATA_DIR", str(data_dir))
    result = CliRunner().invoke(main, ["serve", "--port", "1", *(["--group", group] if group else [])])
    assert result.exit_code == 1, result.output
    assert "tessera db upgrade" in result.output
    assert not data_dir.exists()


@pytest.mark.postgres
def test_serve_refuses_a_connection_budget_the_server_cannot_give(
    env: Path, monkeypatch: pytest.MonkeyPatch, postgres_url: str
) -> None:
    monkeypatch.setenv("TESSERA_DATABASE__URL", postgres_url)
    assert CliRunner().invoke(main, ["db", "upgrade"]).exit_code == 0
    monkeypatch.setenv("TESSERA_DATABASE__MAX_CONNECTIONS", "5000")
    result = CliRunner().invoke(main, ["serve", "--port", "1"])
    assert result.exit_code == 1
    assert "database.max_connections: 5000, but the server at" in result.output
    assert re.search(r"accepts \d+ connections", result.output)  # its max_connections less the reserved


def test_a_budget_too_small_for_the_workers_is_refused_naming_the_key(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TESSERA_DATABASE__URL", "postgresql+asyncpg://db.invalid/tessera")
    monkeypatch.setenv("TESSERA_DATABASE__MAX_CONNECTIONS", "4")
    result = CliRunner().invoke(main, ["serve", "--workers", "2"])
    assert result.exit_code == 1
    assert (
        "database.max_connections: 4 cannot give a connection to each of 5 modules in 2 processes"
        in result.output
    )


def _closure_of_a_new_user(successor_active: bool) -> str:
    """Ada registers and closes her account naming Bob (deactivated, or not); the saga is driven."""
    from app.kernel.config import load_settings
    from contracts import Principal
    from contracts.accounts import ClosureRequest

    async def work() -> str:
        composition = compose(load_settings())
        try:
            identity = composition.module("identity").container.service()
            ada, bob = [
                await identity.register(
                    email=f"{n}@example.com", password="correct horse battery", display_name=n
                )
                for n in ("ada", "bob")
            ]
            if not successor_active:
                await identity.deactivate(Principal(user_id=bob.id), bob.id)
            accounts = composition.module("accounts").container.service()
            closure = await accounts.close_account(
                Principal(user_id=ada.id), ClosureRequest(successor_id=bob.id)
            )
            await composition.orchestrators[0].drive(closure.id)
            return str(closure.id)
        finally:
            await composition.aclose()

    return asyncio.run(work())


def test_sagas_list_show_and_retry(env: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(main, ["db", "upgrade"]).exit_code == 0
    closure_id = _closure_of_a_new_user(successor_active=False)

    listed = runner.invoke(main, ["sagas", "list"])
    assert listed.exit_code == 0, listed.output
    (row,) = [line for line in listed.output.splitlines() if line.startswith(closure_id)]
    assert row.split()[1:4] == ["account-closure", row.split()[2], "compensated"]
    assert "tasks.successor_unavailable" in row
    assert runner.invoke(main, ["sagas", "list", "--state", "stuck"]).output.count(closure_id) == 0

    shown = runner.invoke(main, ["sagas", "show", closure_id])
    assert shown.exit_code == 0, shown.output
    assert f"account-closure {closure_id}" in shown.output
    steps = {line.split()[0]: line.split()[1:3] for line in shown.output.splitlines()[2:] if line.strip()}
    assert steps["close_account"] == ["compensated", "2"]
    assert steps["hand_over_tasks"] == ["failed", "1"]
    assert steps["erase_account"] == ["pending", "0"]

    retried = runner.invoke(main, ["sagas", "retry", closure_id])  # ended: nothing to retry
    assert retried.exit_code == 0, retried.output
    assert "compensated; nothing is due now" in retried.output
    unknown = runner.invoke(main, ["sagas", "show", "00000000-0000-0000-0000-000000000000"])
    assert unknown.exit_code == 1
    assert "no saga run" in unknown.output
