"""The tasks module's tests stand alone: no identity code is imported to run them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_the_tasks_module_and_its_tests_import_no_identity_code() -> None:
    probe = (
        "import sys\n"
        "import tests.modules.tasks.conftest, tests.modules.tasks.test_api\n"
        "import tests.modules.tasks.test_listing, tests.contracts.test_tasks_contract\n"
        "import app.composition.web, app.composition.container, modules.tasks\n"
        "leaked = sorted(m for m in sys.modules if m.startswith('modules.identity'))\n"
        "print(leaked)\n"
        "sys.exit(1 if leaked else 0)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
