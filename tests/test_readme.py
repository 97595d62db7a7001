"""The README's commands work as written, from the project root, after `make run`.

`make run` migrates with the dev profile and serves; a user then types the README's
`.venv/bin/tessera ...` lines in another shell, without the profile make had set.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.servers import clean_env, free_port, server_process, wait_until_ready

ROOT = Path(__file__).resolve().parents[1]
VENV = Path(sys.executable).parent.parent
_BLOCK = re.compile(r"^```(?:sh|bash)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def readme_commands() -> list[str]:
    """Every `.venv/bin/tessera` line of the README's shell blocks, but those that serve."""
    lines = [
        line.strip()
        for block in _BLOCK.findall((ROOT / "README.md").read_text())
        for line in block.splitlines()
    ]
    return [
        line
        for line in lines
        if line.startswith(".venv/bin/tessera ") and not line.startswith(".venv/bin/tessera serve")
    ]


def test_the_readme_shows_its_commands_runnable_from_the_project_root() -> None:
    text = (ROOT / "README.md").read_text()
    bare = [
        line
        for block in _BLOCK.findall(text)
        for line in block.splitlines()
        if re.match(r"\s*tessera\s", line)
    ]
    assert bare == [], "`tessera` is not on the PATH after `make run`; write .venv/bin/tessera"
    assert {c.split()[1] for c in readme_commands()} >= {"db", "events", "users"}


@pytest.mark.slow
def test_every_readme_command_works_after_make_run(tmp_path: Path) -> None:
    root = tmp_path / "checkout"
    root.mkdir()
    (root / ".venv").symlink_to(VENV)
    made = {**clean_env(), "TESSERA_PROFILE": "dev"}  # what `make run` exports to its own commands
    subprocess.run(
        [".venv/bin/tessera", "db", "upgrade"],
        cwd=root,
        env=made,
        check=True,
        capture_output=True,
        timeout=120,
    )
    port = free_port()
    with server_process(made, "--port", str(port), cwd=root) as process:
        base = f"http://127.0.0.1:{port}"
        wait_until_ready(base, process=process)
        registered = httpx.post(  # the README's first curl
            f"{base}/api/v1/users",
            json={"email": "ada@example.com", "password": "correct horse battery", "display_name": "Ada"},
            timeout=30,
        )
        assert registered.status_code == 201, registered.text
    typed = clean_env()  # another shell: no TESSERA_ variable at all
    for command in readme_commands():
        result = subprocess.run(
            ["bash", "-c", command], cwd=root, env=typed, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, f"{command}\n{result.stdout}{result.stderr}"
    assert os.listdir(root / "data")  # they all worked on the data `make run` made
