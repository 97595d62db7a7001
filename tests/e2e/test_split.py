"""Five processes — identity, tasks, notifications, activity, gateway — pass the monolith's public flow."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from app.composition.catalog import MODULES
from app.composition.openapi import document
from app.kernel.signing_keys import SigningKeys, service_tokens_of
from contracts.identity import IDENTITY
from tests.e2e.cluster import GROUPS, Cluster, monolith, split_cluster
from tests.e2e.flow import register_and_log_in, run_closure_flow, run_history_flow, run_public_flow

pytestmark = pytest.mark.slow


def test_the_monolith_passes_the_public_flow(tmp_path: Path) -> None:
    with monolith(tmp_path) as base:
        run_public_flow(base)
        run_history_flow(base)
        run_closure_flow(base)


def test_the_split_passes_the_same_flow_through_the_gateway(tmp_path: Path) -> None:
    with split_cluster(tmp_path) as cluster:
        run_public_flow(cluster.gateway)
        run_history_flow(cluster.gateway)
        run_closure_flow(cluster.gateway)  # accounts, in identity's group, calls the others remotely
        # The gateway documents every route it serves or proxies: the same document as the monolith.
        served = httpx.get(f"{cluster.gateway}/schema/openapi.json", timeout=15).json()
        assert served["paths"] == document(MODULES)["paths"]
        # Users' tokens are signed by identity alone (EdDSA); its public keys are published at
        # the gateway, and the other groups verify with them.
        with httpx.Client(base_url=cluster.gateway, timeout=15) as http:
            _, auth = register_and_log_in(http, "Keys")
            header = jwt.get_unverified_header(auth["Authorization"].removeprefix("Bearer "))
            published = http.get("/.well-known/jwks.json").json()["keys"]
            assert header["alg"] == "EdDSA"
            assert header["kid"] in {key["kid"] for key in published}
            assert http.get("/api/v1/tasks", headers=auth).status_code == 200  # verified by tasks
        assert sorted(p.name for p in (tmp_path / "data").glob("*.db")) == [
            "accounts.db",
            "activity.db",
            "identity.db",
            "notifications.db",
            "tasks.db",
        ]
        _each_group_signs_its_own_calls(cluster, tmp_path / "data")


def _each_group_signs_its_own_calls(cluster: Cluster, data_dir: Path) -> None:
    """A callee knows which group called: each has its own key pair, and one cannot pose as another."""
    published = {
        group: {
            key["kid"] for key in httpx.get(f"{cluster.url(group)}/internal/keys", timeout=15).json()["keys"]
        }
        for group in GROUPS
    }
    assert len(set().union(*published.values())) == len(GROUPS)  # a key pair per group
    # What a compromised gateway holds: its own secret (each group made its own in development).
    secret = (data_dir / "secrets" / "service-gateway.key").read_text().strip()
    gateway_keys = SigningKeys(secret, derivation=service_tokens_of("gateway"))

    def call_identity_as(issuer: str) -> httpx.Response:
        now = int(time.time())
        claims = {"iss": issuer, "sub": f"group:{issuer}", "aud": "identity", "iat": now, "exp": now + 60}
        return httpx.post(
            f"{cluster.url('identity')}/internal/identity/session_revocations",
            json={"since": "2026-01-01T00:00:00Z"},
            headers={
                "authorization": f"Bearer {gateway_keys.sign(claims)}",
                "x-contract-version": IDENTITY.version,
            },
            timeout=15,
        )

    assert call_identity_as("gateway").status_code == 200  # as itself: served
    posing = call_identity_as("tasks")  # in the tasks group's name: refused
    assert posing.status_code == 401
    assert posing.json()["code"] == "auth.unauthorized"


@pytest.mark.postgres
def test_the_split_passes_the_same_flow_on_postgres(tmp_path: Path, postgres_url: str) -> None:
    with split_cluster(tmp_path, database_url=postgres_url) as cluster:
        run_public_flow(cluster.gateway)
        run_closure_flow(cluster.gateway)  # the saga's happy path and its compensation, on PostgreSQL


def test_a_body_over_the_limit_is_refused_at_the_gateway_and_logs_no_server_error(tmp_path: Path) -> None:
    huge = b'{"title": "' + b"x" * (1024 * 1024 + 1) + b'"}'
    with split_cluster(tmp_path) as cluster:
        with httpx.Client(base_url=cluster.gateway, timeout=15) as http:
            _, auth = register_and_log_in(http, "Ada")
            for chunked in (False, True):
                body = iter([huge]) if chunked else huge  # an iterator goes out without Content-Length
                response = http.post(
                    "/api/v1/tasks", content=body, headers={**auth, "Content-Type": "application/json"}
                )
                assert response.status_code == 413, response.text
                assert response.json()["code"] == "http.payload_too_large"
            assert http.get("/api/v1/tasks", headers=auth).json()["items"] == []
        errors = {
            group: [
                line
                for line in _log_records(cluster.log_file(group))
                if line.get("level") in {"error", "critical"}
            ]
            for group in GROUPS
        }
    assert errors == {group: [] for group in GROUPS}


def _log_records(path: Path) -> list[dict[str, Any]]:
    records = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            records.append({"level": "error", "message": line})  # not ours: a traceback, say
    return records


def test_credentials_are_throttled_through_the_gateway_per_account_and_per_client_address(
    tmp_path: Path,
) -> None:
    """The identity group counts; the gateway tells it which client it proxies for."""
    limit = {"TESSERA_THROTTLE__LOGINS_PER_ADDRESS_PER_MINUTE": "6"}
    with (
        split_cluster(tmp_path, environment=limit) as cluster,
        httpx.Client(base_url=cluster.gateway, timeout=15) as http,
    ):
        first, second = ({"X-Forwarded-For": address} for address in ("203.0.113.9", "198.51.100.7"))
        email = "locked@example.com"
        http.post(
            "/api/v1/users",
            json={"email": email, "password": "correct horse battery", "display_name": "L"},
            headers=first,
        ).raise_for_status()

        def log_in(password: str, client: dict[str, str]) -> httpx.Response:
            return http.post(
                "/api/v1/auth/token", json={"email": email, "password": password}, headers=client
            )

        for _ in range(5):
            assert log_in("wrong password", first).status_code == 401
        locked = log_in("correct horse battery", second)  # another address: the account is locked
        assert locked.status_code == 429, locked.text
        assert locked.json()["code"] == "request.throttled"
        assert int(locked.headers["retry-after"]) > 60

        assert log_in("wrong password", first).status_code == 429  # the account, 6th from here
        per_address = log_in("wrong password", first)  # the 7th from this address: the address
        assert per_address.headers["ratelimit-limit"] == "6"
        assert per_address.headers["ratelimit-remaining"] == "0"
        assert log_in("wrong password", second).headers["ratelimit-remaining"] == "4"

        # A path no URL can carry once decoded (a control character) reaches its owner as sent.
        odd = http.post("/api/v1/users/%C3%97%04/reactivate")
        assert (odd.status_code, odd.json()["code"]) == (404, "http.not_found")
