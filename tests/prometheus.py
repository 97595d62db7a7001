"""A real Prometheus server for tests: Debian's ``prometheus``, on a free loopback port, bounded.

It scrapes the given targets every second; tests ask its HTTP API, as an operator's
dashboard would, and wait on conditions, never on time.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx

from tests.conftest import service_unavailable
from tests.servers import free_port, stop_process

T = TypeVar("T")
READY_SECONDS = 30.0


class Prometheus:
    def __init__(self, base: str) -> None:
        self.base = base

    def targets(self) -> dict[str, str]:
        """Each scraped target's ``job`` label → its health (``up``, ``down``, ``unknown``)."""
        active = httpx.get(f"{self.base}/api/v1/targets", timeout=5).json()["data"]["activeTargets"]
        return {target["labels"]["job"]: target["health"] for target in active}

    def query(self, promql: str) -> list[dict[str, Any]]:
        """An instant query's result vector: ``[{"metric": {...}, "value": [time, "1.0"]}, ...]``."""
        answer = httpx.get(f"{self.base}/api/v1/query", params={"query": promql}, timeout=5).json()
        assert answer["status"] == "success", answer
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result

    def scalar(self, promql: str) -> float | None:
        """The single value of a query that yields one series, or None while it yields none."""
        result = self.query(promql)
        return float(result[0]["value"][1]) if result else None

    def eventually(self, probe: Callable[[], T | None], *, within: float, what: str) -> T:
        deadline = time.monotonic() + within
        last: T | None = None
        while time.monotonic() < deadline:
            if (last := probe()) is not None:
                return last
            time.sleep(0.2)
        raise AssertionError(f"Prometheus: not within {within}s: {what}")


@contextmanager
def prometheus(tmp_path: Path, jobs: Mapping[str, str]) -> Iterator[Prometheus]:
    """Prometheus scraping each ``job → host:port`` every second, until the block ends."""
    binary = shutil.which("prometheus")
    if binary is None:
        service_unavailable("Prometheus is not installed (Debian package prometheus)")
        raise AssertionError("unreachable")
    config = tmp_path / "prometheus.yml"
    scrape_configs = "".join(
        f"  - job_name: {job}\n    static_configs:\n      - targets: ['{target}']\n"
        for job, target in jobs.items()
    )
    config.write_text(
        f"global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n{scrape_configs}"
    )
    port = free_port()
    log = tmp_path / "prometheus.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'prometheus-data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--storage.tsdb.retention.time=1h",
            ],
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + READY_SECONDS
            while True:
                if process.poll() is not None:
                    raise AssertionError(f"prometheus exited: {log.read_text(errors='replace')[-2000:]}")
                try:
                    if httpx.get(f"{base}/-/ready", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise AssertionError("prometheus was not ready in time")
                time.sleep(0.1)
            yield Prometheus(base)
        finally:
            stop_process(process)
