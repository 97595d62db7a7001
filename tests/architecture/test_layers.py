"""The layers hold: checked by import-linter, and shown to bite on a deliberate violation."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint(project: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=project,
        env={"PYTHONPATH": str(project / "src"), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def project_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "project"
    shutil.copytree(ROOT / "src", copy / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    shutil.copy(ROOT / "pyproject.toml", copy / "pyproject.toml")
    return copy


def _append(path: Path, line: str) -> None:
    path.write_text(path.read_text() + f"\n{line}\n")


def test_the_code_keeps_every_layer_contract(project_copy: Path) -> None:
    result = _lint(project_copy)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


LAYERS = "layers: the composition, the modules, the kernel, the contracts BROKEN"
ROOMS = "the rooms of every module BROKEN"
PURE = "a module's domain is pure: no platform, no I/O, no framework BROKEN"


@pytest.mark.parametrize(
    ("importer", "imported", "broken"),
    [
        ("contracts/identity.py", "import app.kernel.config", LAYERS),
        ("contracts/tasks.py", "import modules.tasks", LAYERS),
        ("app/kernel/db.py", "import modules.identity", LAYERS),
        ("app/kernel/db.py", "import app.composition.container", LAYERS),
        ("modules/identity/service.py", "import app.composition.web", LAYERS),
        ("modules/tasks/domain.py", "import modules.tasks.repository", ROOMS),
        ("modules/tasks/repository.py", "import modules.tasks.service", ROOMS),
        ("modules/tasks/service.py", "import modules.tasks.http", ROOMS),
        ("modules/notifications/http.py", "import modules.notifications.container", ROOMS),
        ("modules/identity/container.py", "import modules.identity.module", ROOMS),
        ("modules/identity/container.py", "import modules.identity.cli", ROOMS),
        ("modules/tasks/http.py", "import modules.tasks.handlers", ROOMS),  # siblings stay apart
        ("modules/identity/tables.py", "import modules.identity.domain", ROOMS),
        ("modules/identity/domain.py", "import app.kernel.config", PURE),
        ("modules/tasks/domain.py", "import sqlalchemy", PURE),
    ],
)
def test_an_import_across_a_boundary_breaks_the_build(
    project_copy: Path, importer: str, imported: str, broken: str
) -> None:
    _append(project_copy / "src" / importer, f"{imported}  # noqa")
    result = _lint(project_copy)
    assert result.returncode != 0
    assert broken in result.stdout


def test_one_module_importing_another_breaks_the_build(project_copy: Path) -> None:
    other = project_copy / "src" / "modules" / "other"
    other.mkdir()
    (other / "__init__.py").write_text("import modules.identity.service\n")
    result = _lint(project_copy)
    assert result.returncode != 0
    assert "no module imports another BROKEN" in result.stdout
