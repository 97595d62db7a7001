"""Four processes — identity, tasks, notifications, gateway — pass the same public flow as the monolith."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.cluster import monolith, split_cluster
from tests.e2e.flow import run_public_flow

pytestmark = pytest.mark.slow


def test_the_monolith_passes_the_public_flow(tmp_path: Path) -> None:
    with monolith(tmp_path) as base:
        run_public_flow(base)


def test_the_split_passes_the_same_flow_through_the_gateway(tmp_path: Path) -> None:
    with split_cluster(tmp_path) as cluster:
        run_public_flow(cluster.gateway)
        assert sorted(p.name for p in (tmp_path / "data").glob("*.db")) == [
            "identity.db",
            "notifications.db",
            "tasks.db",
        ]


@pytest.mark.postgres
def test_the_split_passes_the_same_flow_on_postgres(tmp_path: Path, postgres_url: str) -> None:
    with split_cluster(tmp_path, database_url=postgres_url) as cluster:
        run_public_flow(cluster.gateway)
