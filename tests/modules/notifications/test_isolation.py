"""The notifications module's tests stand alone: no other module's code is imported to run them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_the_notifications_module_and_its_tests_import_no_other_module() -> None:
    probe = (
        "import sys\n"
        "import tests.modules.notifications.conftest, tests.modules.notifications.test_api\n"
        "import tests.modules.notifications.test_rules, tests.modules.notifications.test_migrations\n"
        "import tests.modules.notifications.test_events, tests.modules.notifications.test_domain\n"
        "import tests.modules.notifications.test_contract\n"
        "import app.composition.web, app.composition.container, modules.notifications\n"
        "leaked = sorted(m for m in sys.modules\n"
        "    if m.startswith('modules.') and not m.startswith('modules.notifications'))\n"
        "print(leaked)\n"
        "sys.exit(1 if leaked else 0)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
