"""Tessera as a user installs it: the built wheel and the runtime lock in a fresh venv.

The same steps as the Dockerfile: no source tree, no development tool; `tessera db upgrade`
and `tessera serve` work from an empty directory.
"""

from __future__ import annotations

import re
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import httpx
import pytest

from app.composition.openapi import SWAGGER_UI
from tests.servers import clean_env, free_port, wait_until_ready

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
DOCS_ASSET = f"app/composition/docs_assets/{SWAGGER_UI}/swagger-ui-bundle.js"
PAGE_FILES = {"app/composition/ui/templates/board.html.j2", "app/composition/ui/static/tessera.css"}
DEV_TOOLS = {"pytest", "pytest-asyncio", "mypy", "ruff", "import-linter", "hatchling"}


def _locked(lock: str) -> set[str]:
    return set(re.findall(r"^([A-Za-z0-9_.-]+)==", (ROOT / lock).read_text(), re.MULTILINE))


def test_the_runtime_lock_holds_no_development_tool() -> None:
    assert _locked("requirements.lock") & DEV_TOOLS == set()
    assert _locked("requirements-dev.lock") >= _locked("requirements.lock") | {"pytest", "mypy", "ruff"}


def _run(*command: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, f"{' '.join(command)}\n{done.stdout}{done.stderr}"
    return done.stdout


def test_the_wheel_installs_and_serves_from_any_directory(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    _run(
        sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(dist), str(ROOT)
    )
    (wheel,) = dist.glob("tessera-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        shipped = set(archive.namelist())  # files beside the code ship too, not only .py
    assert {DOCS_ASSET, *PAGE_FILES} <= shipped
    target = tmp_path / "venv"
    venv.create(target, with_pip=True)
    python = str(target / "bin" / "python")
    pip = (python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check")
    _run(*pip, "--require-hashes", "-r", str(ROOT / "requirements.lock"))
    _run(*pip, "--no-deps", str(wheel))
    installed = _run(python, "-m", "pip", "list", "--format=freeze")
    assert not {line.split("==")[0].lower() for line in installed.splitlines()} & DEV_TOOLS

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    tessera = str(target / "bin" / "tessera")
    env = clean_env(TESSERA_PROFILE="dev", TESSERA_SECURITY__PASSWORD_HASH__MEMORY_KIB="8192")
    _run(tessera, "db", "upgrade", cwd=elsewhere, env=env)
    _run(tessera, "contracts", "check", cwd=elsewhere, env=env)  # the snapshots ship with the contracts
    port = free_port()
    server = subprocess.Popen(
        [tessera, "serve", "--port", str(port)],
        cwd=elsewhere,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until_ready(base, process=server)
        assert httpx.get(f"{base}/health/ready", timeout=5).status_code == 200
        bundle = f"{base}/schema/assets/{SWAGGER_UI}/swagger-ui-bundle.js"  # read from the installed wheel
        assert httpx.get(bundle, timeout=5).status_code == 200
        sign_in = httpx.get(f"{base}/sign-in", timeout=5)  # a template and an asset of the web UI
        assert (sign_in.status_code, "<h1>Sign in</h1>" in sign_in.text) == (200, True)
        assert httpx.get(f"{base}/static/tessera.css", timeout=5).status_code == 200
    finally:
        server.terminate()
        server.wait(timeout=10)
    assert sorted(p.name for p in (elsewhere / "data").glob("*.db")) == [
        "accounts.db",
        "activity.db",
        "identity.db",
        "notifications.db",
        "tasks.db",
    ]
