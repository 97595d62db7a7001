"""schemathesis drives the API from its own document, every check on, stateful links included:
against the monolith and against a split's gateway, it finds no failure.

Each run is bounded in time (``MAX_SECONDS``) and its seed is random, so that runs explore
different inputs; a failure prints the seed and a curl command that reproduces it. The
configuration (tests/e2e/schemathesis.toml) gives the fuzzer a user of its own, and names
the few rules no schema can state. Throttles are off for the run (they would lock that
user out after five wrong current passwords); they are tested on their own.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from app.composition.catalog import MODULES
from app.composition.openapi import document
from tests.e2e.cluster import monolith, split_cluster

pytestmark = pytest.mark.slow

CONFIG = Path(__file__).with_name("schemathesis.toml")
ST = str(Path(sys.executable).with_name("st"))
MAX_SECONDS = 45
_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
NO_THROTTLES = {"TESSERA_THROTTLE__ENABLED": "false"}


def _fuzz(base: str) -> None:
    email, password = f"fuzzer-{uuid.uuid4().hex[:8]}@example.com", "correct horse battery"
    httpx.post(
        f"{base}/api/v1/users",
        json={"email": email, "password": password, "display_name": "Fuzzer"},
        timeout=15,
    ).raise_for_status()
    result = subprocess.run(
        [
            ST,
            "--config-file",
            str(CONFIG),
            "run",
            f"{base}/schema/openapi.json",
            "--checks",
            "all",
            "--max-time",
            str(MAX_SECONDS),
            "--workers",
            "1",  # two threads parse Python source at once in hypothesis; CPython 3.11's ast can fail then
            "--request-timeout",
            "10",
        ],
        env={**os.environ, "ST_EMAIL": email, "ST_PASSWORD": password, "NO_COLOR": "1"},
        capture_output=True,
        text=True,
        timeout=MAX_SECONDS + 120,
        check=False,
    )
    report = result.stdout + result.stderr
    failures = report[report.find("= FAILURES =") :] if "= FAILURES =" in report else report
    assert result.returncode == 0, failures[:12000]
    operations = sum(len(set(item) & _METHODS) for item in document(MODULES)["paths"].values())
    assert f"{operations} selected / {operations} total" in report, report[-3000:]  # every operation ran


def test_schemathesis_finds_nothing_against_the_monolith(tmp_path: Path) -> None:
    with monolith(tmp_path, environment=NO_THROTTLES) as base:
        _fuzz(base)


def test_schemathesis_finds_nothing_against_the_split_gateway(tmp_path: Path) -> None:
    with split_cluster(tmp_path, environment=NO_THROTTLES) as cluster:
        _fuzz(cluster.gateway)
