"""``tessera contracts check`` bites on the real contracts: a scratch copy of ``src/contracts``,
edited as a developer would, shadows the installed one in a ``tessera`` process of its own.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

import contracts
from tests.servers import TESSERA

pytestmark = pytest.mark.slow

SOURCE = Path(contracts.__file__).parent


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    shutil.copytree(SOURCE, tmp_path / "contracts", ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def _tessera(scratch: Path, *args: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "PYTHONPATH": str(scratch)}  # before the installed package's path
    return subprocess.run(
        [TESSERA, "contracts", *args], env=environment, capture_output=True, text=True, timeout=60
    )


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} is not in {path}"
    path.write_text(text.replace(old, new, 1))


def test_the_repository_s_contracts_agree_with_their_snapshots() -> None:
    checked = subprocess.run([TESSERA, "contracts", "check"], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "tasks 2." in checked.stdout


def test_a_removed_method_fails_the_check_until_the_major_version_and_snapshot_say_so(scratch: Path) -> None:
    notifications = scratch / "contracts" / "notifications.py"
    _edit(notifications, "    async def unread_count(", "    async def _no_longer_offered(")
    checked = _tessera(scratch, "check")
    assert checked.returncode == 1
    assert "breaking: unread_count: method removed" in checked.stdout
    assert "a breaking change needs a new major version: notifications 1.2 -> 2.0" in checked.stdout
    assert "tasks 2.3 (tasks.v2.json): ok" in checked.stdout  # the others are untouched
    assert _tessera(scratch, "snapshot", "notifications").returncode == 1  # refused: still 1.x
    assert not (scratch / "contracts" / "snapshots" / "notifications.v2.json").exists()
    _edit(notifications, 'version="1.2"', 'version="2.0"')
    assert _tessera(scratch, "check").returncode == 1  # no snapshot of 2.x yet
    assert _tessera(scratch, "snapshot", "notifications").returncode == 0
    assert (scratch / "contracts" / "snapshots" / "notifications.v2.json").is_file()
    assert _tessera(scratch, "check").returncode == 0


def test_an_added_result_field_needs_a_minor_version(scratch: Path) -> None:
    notifications = scratch / "contracts" / "notifications.py"
    _edit(notifications, "    unread: int\n", "    unread: int\n    urgent: int = 0\n")
    checked = _tessera(scratch, "check", "notifications")
    assert checked.returncode == 1
    assert "compatible: unread_count ->.urgent: field added" in checked.stdout
    assert "a compatible change needs a new minor version: notifications 1.2 -> 1.3" in checked.stdout
    _edit(notifications, 'version="1.2"', 'version="1.3"')
    assert _tessera(scratch, "snapshot", "notifications").returncode == 0
    assert _tessera(scratch, "check").returncode == 0
