"""The server's limits on what a client sends, against a real `tessera serve` on loopback.

A 200 KB header was accepted and a slow client was never timed out; now the head has a size
limit (431) and a time limit (408), and a stalled body closes the connection.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.cluster import monolith
from tests.servers import TEST_SERVER_CONFIG

pytestmark = pytest.mark.slow

LIMITS = "[server]\nmax_header_bytes = 8192\nheader_timeout_seconds = 1.0\nbody_timeout_seconds = 1.0\n"
PATIENCE = 5.0  # the most any test here waits on the server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    with monolith(tmp_path_factory.mktemp("limits"), config=TEST_SERVER_CONFIG + LIMITS) as base:
        yield int(base.rsplit(":", 1)[1])


def _answer(connection: socket.socket) -> tuple[int, dict[str, object], float]:
    """The status and problem the server sends before closing, and how long it took."""
    started = time.monotonic()
    received = b""
    while chunk := connection.recv(65536):
        received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body), time.monotonic() - started


def _connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=PATIENCE)


def test_a_header_over_the_limit_is_431_and_the_server_goes_on(server: int) -> None:
    response = httpx.get(f"http://127.0.0.1:{server}/health/live", headers={"X-Big": "x" * 200_000})
    assert response.status_code == 431
    assert response.json()["code"] == "http.header_too_large"
    assert (
        httpx.get(f"http://127.0.0.1:{server}/health/live", headers={"X-Fine": "x" * 4000}).status_code == 200
    )


def test_a_head_sent_too_slowly_is_408_within_the_timeout(server: int) -> None:
    with _connect(server) as connection:
        connection.sendall(b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")  # and then nothing
        status, problem, took = _answer(connection)
    assert (status, problem["code"]) == (408, "http.request_timeout")
    assert took < 3.0


def test_a_client_that_connects_and_says_nothing_is_let_go(server: int) -> None:
    with _connect(server) as connection:
        status, problem, took = _answer(connection)
    assert (status, problem["code"]) == (408, "http.request_timeout")
    assert took < 3.0


def test_a_body_that_stalls_closes_the_connection(server: int) -> None:
    with _connect(server) as connection:
        connection.sendall(
            b"POST /api/v1/users HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b'Content-Length: 100\r\n\r\n{"email": '  # 10 of the 100 bytes, then nothing
        )
        started = time.monotonic()
        leftover = b""
        while chunk := connection.recv(65536):  # the server closes; anything it says first is a 4xx
            leftover += chunk
        took = time.monotonic() - started
    assert took < 3.0
    assert not leftover or leftover.split(b" ", 2)[1].startswith(b"4"), leftover[:200]


def test_a_kept_alive_connection_serves_request_after_request(server: int) -> None:
    with httpx.Client(base_url=f"http://127.0.0.1:{server}") as http:
        for _ in range(3):
            assert http.get("/health/live").status_code == 200
            time.sleep(0.4)  # idle between requests, well within keep-alive, across a head timeout
        assert http.get("/health/live").status_code == 200
