"""deploy/observability: the scrape configs and alert rules pass promtool, the rules fire as their
unit tests say, and the dashboard and rules speak only of metrics Tessera exports — all of them.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

import app.kernel.telemetry.metrics  # noqa: F401  (registers every metric)
from tests.conftest import service_unavailable

HERE = Path(__file__).resolve().parents[1] / "deploy" / "observability"
_METRIC = re.compile(r"\b(tessera_[a-z_]+)")
_SUFFIXES = ("_total", "_bucket", "_count", "_sum", "_created")


def _promtool(*args: str) -> str:
    promtool = shutil.which("promtool")
    if promtool is None:
        service_unavailable("promtool is not installed (Debian package prometheus)")
    done = subprocess.run(
        [str(promtool), *args], cwd=HERE, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.mark.parametrize("config", ["prometheus-monolith.yml", "prometheus-split.yml"])
def test_the_scrape_configs_are_valid_and_load_the_rules(config: str) -> None:
    assert "SUCCESS: 1 rule files found" in _promtool("check", "config", config)


def test_the_alert_rules_are_valid_and_fire_as_their_tests_say() -> None:
    assert "SUCCESS" in _promtool("check", "rules", "alerts.yml")
    assert "SUCCESS" in _promtool("test", "rules", "alerts.test.yml")


def _exported() -> set[str]:
    """Every tessera_ metric name this process can export, without the sample suffixes."""
    return {family.name for family in REGISTRY.collect() if family.name.startswith("tessera_")}


def _referenced(text: str) -> set[str]:
    names = set()
    for name in _METRIC.findall(text):
        for suffix in _SUFFIXES:
            if name.endswith(suffix):
                name = name.removesuffix(suffix)
                break
        names.add(name)
    return names


def test_the_dashboard_shows_every_metric_and_nothing_else() -> None:
    dashboard = json.loads((HERE / "grafana-dashboard.json").read_text())
    expressions = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    shown = _referenced("\n".join(expressions))
    assert shown == _exported()


def test_the_alerts_speak_only_of_exported_metrics() -> None:
    assert _referenced((HERE / "alerts.yml").read_text()) <= _exported()
