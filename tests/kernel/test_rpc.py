"""Contract-derived RPC over real HTTP on loopback: trust, versions, context, deadlines, retries."""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, runtime_checkable

import httpx
import jwt
import msgspec
import pytest
from litestar import Litestar

from app.kernel.config import RpcSettings
from app.kernel.context import CallContext, RequestContextMiddleware, call_context, current_context
from app.kernel.problems import exception_handlers
from app.kernel.resilience import BreakerState, CircuitBreaker
from app.kernel.rpc import (
    IncompatibleContract,
    RemoteGroup,
    fetch_service_keys,
    internal_router,
    remote,
    service_keys_route,
)
from app.kernel.security import ServiceTokens
from app.kernel.signing_keys import PublishedKeys, SigningKeys, service_tokens_of
from app.kernel.telemetry.logs import trace_ids
from app.kernel.telemetry.tracing import continue_trace
from contracts import Contract, ContractError, DependencyUnavailable, Principal, idempotent
from tests.conftest import SERVICE_KEY, SIGNING_KEY
from tests.servers import free_port, server_thread


class Unlucky(ContractError):
    code = "echo.unlucky"
    status = 409
    title = "Unlucky"


class Tag(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: str


class Card(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    text: str
    tags: list[Tag]


class NewerTag(msgspec.Struct, frozen=True, kw_only=True):  # as a callee at echo 2.2 has them
    name: str
    colour: str


class NewerCard(msgspec.Struct, frozen=True, kw_only=True):
    text: str
    tags: list[NewerTag]
    pinned: bool


@runtime_checkable
class EchoApi(Protocol):
    @idempotent
    async def read(self, text: str) -> str: ...

    async def write(self, text: str) -> str: ...

    @idempotent
    async def whoami(self, principal: Principal) -> str: ...

    @idempotent
    async def context(self) -> list[str]: ...

    @idempotent
    async def card(self, text: str) -> Card: ...


ECHO: Contract[EchoApi] = Contract(name="echo", version="2.1", api=EchoApi, errors=(Unlucky,))


class Echo(EchoApi):
    """Answers, fails on demand, or dawdles; counts every call it receives."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.failures_left = 0
        self.delay = 0.0
        self.cancelled = 0

    async def _enter(self, name: str) -> None:
        self.calls.append(name)
        if self.failures_left:
            self.failures_left -= 1
            raise RuntimeError("simulated crash")
        if self.delay:
            try:
                await asyncio.sleep(self.delay)
            except asyncio.CancelledError:
                self.cancelled += 1
                raise

    async def read(self, text: str) -> str:
        await self._enter("read")
        if text == "13":
            raise Unlucky("thirteen")
        return text

    async def write(self, text: str) -> str:
        await self._enter("write")
        return text

    async def whoami(self, principal: Principal) -> str:
        await self._enter("whoami")
        return str(principal.user_id)

    async def card(self, text: str) -> Card:
        await self._enter("card")
        # What a callee at a newer minor version answers.
        return NewerCard(text=text, tags=[NewerTag(name="a", colour="red")], pinned=True)  # type: ignore[return-value]

    async def context(self) -> list[str]:
        await self._enter("context")
        context = current_context()
        return [context.correlation_id, trace_ids().get("trace_id", ""), str(context.principal)]


SERVER_GROUP, CALLER_GROUP, OTHER_GROUP = "echo-group", "caller-group", "other-group"
OTHER_KEY = secrets.token_urlsafe(48)  # the other group's own secret


def _tokens(
    group: str, key: str = SERVICE_KEY, callers: dict[str, PublishedKeys] | None = None
) -> ServiceTokens:
    return ServiceTokens(
        keys=lambda: SigningKeys(key, derivation=service_tokens_of(group)),
        group=group,
        ttl_seconds=60,
        callers=callers or {},
    )


def _fetched_from(base: str) -> PublishedKeys:
    """A caller's keys as the callee learns them: fetched from the caller's /internal/keys."""

    async def fetch() -> dict[str, Any]:
        async with httpx.AsyncClient() as http:
            return await fetch_service_keys(
                http, RemoteGroup(name="caller", url=base, breaker=CircuitBreaker("x"))
            )

    return PublishedKeys(fetch, refresh_seconds=60)


@pytest.fixture(scope="module")
def callers() -> Iterator[dict[str, str]]:
    """The calling groups' processes, as far as the callee sees them: each serves its public keys."""
    with (
        server_thread(Litestar([service_keys_route(_tokens(CALLER_GROUP))]), free_port()) as caller,
        server_thread(Litestar([service_keys_route(_tokens(OTHER_GROUP, OTHER_KEY))]), free_port()) as other,
    ):
        yield {CALLER_GROUP: caller, OTHER_GROUP: other}


@pytest.fixture(scope="module")
def echo() -> Echo:
    return Echo()


@pytest.fixture(scope="module")
def echo_server(echo: Echo, callers: dict[str, str]) -> Iterator[str]:
    tokens = _tokens(SERVER_GROUP, callers={group: _fetched_from(base) for group, base in callers.items()})
    app = Litestar(
        route_handlers=[internal_router(ECHO, lambda: echo, tokens=tokens)],
        exception_handlers=exception_handlers(),
    )
    app.asgi_handler = RequestContextMiddleware(app.asgi_handler)
    with server_thread(app, free_port()) as base:
        yield base


@pytest.fixture(autouse=True)
def reset(echo: Echo) -> None:
    echo.calls.clear()
    echo.failures_left = 0
    echo.delay = 0.0
    echo.cancelled = 0


@pytest.fixture
def breaker() -> CircuitBreaker:
    return CircuitBreaker(SERVER_GROUP, minimum_calls=4, window_size=4, open_seconds=30)


@pytest.fixture
async def client(echo_server: str, breaker: CircuitBreaker) -> AsyncIterator[EchoApi]:
    settings = RpcSettings(
        timeout_seconds=0.5, attempts=3, backoff_initial_seconds=0.01, backoff_max_seconds=0.02
    )
    async with httpx.AsyncClient() as http:
        yield remote(
            ECHO,
            group=RemoteGroup(name=SERVER_GROUP, url=echo_server, breaker=breaker),
            http=http,
            tokens=_tokens(CALLER_GROUP),
            settings=settings,
        )


def _token(*, signer: SigningKeys | None = None, **claims: Any) -> str:
    """A service token from the calling group (signed with its key pair unless ``signer`` says)."""
    now = datetime.now(UTC)
    body = {
        "iss": CALLER_GROUP,
        "sub": "group:x",
        "aud": SERVER_GROUP,
        "iat": now,
        "exp": now + timedelta(minutes=1),
    }
    signer = signer or SigningKeys(SERVICE_KEY, derivation=service_tokens_of(CALLER_GROUP))
    return signer.sign({**body, **claims})


def _post(base: str, token: str | None, method: str = "read", version: str = "2.1") -> httpx.Response:
    headers = {"x-contract-version": version} | ({"authorization": f"Bearer {token}"} if token else {})
    return httpx.post(f"{base}/internal/echo/{method}", json={"text": "hi"}, headers=headers)


class TestTrust:
    def test_a_valid_service_token_is_accepted(self, echo_server: str) -> None:
        response = _post(echo_server, _token())
        assert response.status_code == 200
        assert response.json() == "hi"

    @pytest.mark.parametrize(
        "token",
        [
            pytest.param(None, id="no token"),
            pytest.param(_token(signer=SigningKeys(SIGNING_KEY)), id="a user's key"),
            pytest.param(_token(aud="another-group"), id="another audience"),
            pytest.param(_token(iss="stranger"), id="an unknown issuer"),
            pytest.param(_token(exp=datetime.now(UTC) - timedelta(seconds=5)), id="expired"),
            pytest.param(
                jwt.encode({"iss": CALLER_GROUP, "aud": SERVER_GROUP}, "", algorithm="none"), id="unsigned"
            ),
            pytest.param(
                jwt.encode({"iss": CALLER_GROUP, "aud": SERVER_GROUP}, SERVICE_KEY, algorithm="HS256"),
                id="the shared secret as an HMAC key",
            ),
        ],
    )
    def test_anything_but_a_valid_service_token_is_401(self, echo_server: str, token: str | None) -> None:
        response = _post(echo_server, token)
        assert response.status_code == 401
        assert response.json()["code"] == "auth.unauthorized"

    def test_a_group_cannot_speak_for_another(self, echo_server: str) -> None:
        other = SigningKeys(OTHER_KEY, derivation=service_tokens_of(OTHER_GROUP))
        assert _post(echo_server, _token(signer=other, iss=OTHER_GROUP)).status_code == 200  # as itself
        posing = _post(echo_server, _token(signer=other))  # the same key pair, in the caller's name
        assert posing.status_code == 401
        assert "not signed by a key of group 'caller-group'" in posing.json()["detail"]

    def test_one_secret_still_gives_each_group_its_own_key_pair(self, echo_server: str) -> None:
        # A deployment that gives every group the same service_signing_key: the other group
        # derives a different pair from it, which the callee does not take for the caller's.
        shared = SigningKeys(SERVICE_KEY, derivation=service_tokens_of(OTHER_GROUP))
        assert _post(echo_server, _token(signer=shared)).status_code == 401

    def test_a_users_access_token_is_401(self, echo_server: str) -> None:
        now = datetime.now(UTC)
        user_token = SigningKeys(SIGNING_KEY).sign(  # as identity signs them
            {
                "sub": str(uuid.uuid4()),
                "iss": "tessera",
                "aud": "tessera-api",
                "iat": now,
                "exp": now + timedelta(minutes=1),
            }
        )
        assert _post(echo_server, user_token).status_code == 401

    async def test_the_principal_argument_must_be_the_user_the_token_vouches_for(
        self, client: EchoApi, caplog: pytest.LogCaptureFixture
    ) -> None:
        alice, mallory = Principal(user_id=uuid.uuid4()), Principal(user_id=uuid.uuid4())
        with call_context(CallContext(correlation_id="c", principal=alice)):
            assert await client.whoami(alice) == str(alice.user_id)
            with pytest.raises(DependencyUnavailable) as refused:
                await client.whoami(mallory)
        # The caller is told in words; the operator's log says how (no transport details leak).
        assert "403" not in refused.value.detail
        assert any("HTTP 403 auth.forbidden" in r.getMessage() for r in caplog.records)


class TestContract:
    async def test_results_and_contract_errors_cross_intact(self, client: EchoApi) -> None:
        assert await client.read("hello") == "hello"
        with pytest.raises(Unlucky) as raised:
            await client.read("13")
        assert raised.value.detail == "thirteen"

    async def test_a_newer_minor_version_s_added_fields_reach_an_older_caller_left_out(
        self, client: EchoApi
    ) -> None:
        assert await client.card("hello") == Card(text="hello", tags=[Tag(name="a")])

    def test_an_incompatible_major_version_is_refused_clearly(self, echo_server: str) -> None:
        response = _post(echo_server, _token(), version="3.0")
        assert response.status_code == 400
        assert response.json()["code"] == "rpc.incompatible_contract"
        assert "echo 2.1 is served here; the caller speaks 3.0" in response.json()["detail"]

    def test_a_compatible_minor_version_is_served(self, echo_server: str) -> None:
        assert _post(echo_server, _token(), version="2.0").status_code == 200

    async def test_the_client_raises_the_refusal(self, echo_server: str, breaker: CircuitBreaker) -> None:
        old = Contract(name="echo", version="1.4", api=EchoApi, errors=(Unlucky,))
        async with httpx.AsyncClient() as http:
            caller = remote(
                old,
                group=RemoteGroup(name=SERVER_GROUP, url=echo_server, breaker=breaker),
                http=http,
                tokens=_tokens(CALLER_GROUP),
                settings=RpcSettings(),
            )
            with pytest.raises(IncompatibleContract, match=r"speaks 1\.4"):
                await caller.read("x")


class TestContext:
    async def test_correlation_id_trace_and_user_travel_to_the_callee(self, client: EchoApi) -> None:
        user = Principal(user_id=uuid.uuid4())
        trace = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
        with call_context(CallContext(correlation_id="corr-42", principal=user)), continue_trace(trace):
            correlation_id, trace_id, principal = await client.context()
        assert correlation_id == "corr-42"
        assert trace_id == "0af7651916cd43dd8448eb211c80319c"
        assert principal == str(user)

    async def test_the_callee_gives_up_when_the_budget_is_spent(self, client: EchoApi, echo: Echo) -> None:
        echo.delay = 5.0
        started = time.monotonic()
        with (
            call_context(CallContext(correlation_id="c", deadline=time.monotonic() + 0.3)),
            pytest.raises(DependencyUnavailable),
        ):
            await client.write("slow")
        assert time.monotonic() - started < 1.5
        for _ in range(100):  # the callee notices its own deadline and cancels the work
            if echo.cancelled:
                break
            await asyncio.sleep(0.02)
        assert echo.cancelled == 1


class TestResilience:
    async def test_idempotent_calls_are_retried(self, client: EchoApi, echo: Echo) -> None:
        echo.failures_left = 2
        assert await client.read("third time lucky") == "third time lucky"
        assert echo.calls == ["read", "read", "read"]

    async def test_at_most_three_attempts(self, client: EchoApi, echo: Echo) -> None:
        echo.failures_left = 5
        with pytest.raises(DependencyUnavailable):
            await client.read("never")
        assert echo.calls == ["read"] * 3

    async def test_other_calls_are_tried_once(self, client: EchoApi, echo: Echo) -> None:
        echo.failures_left = 1
        with pytest.raises(DependencyUnavailable):
            await client.write("once")
        assert echo.calls == ["write"]

    async def test_a_slow_callee_times_out(self, client: EchoApi, echo: Echo) -> None:
        echo.delay = 5.0
        started = time.monotonic()
        with pytest.raises(DependencyUnavailable):
            await client.write("slow")
        assert time.monotonic() - started < 1.5  # the 0.5 s timeout, not the 5 s delay

    async def test_the_breaker_opens_and_then_fails_fast_without_calling(
        self, client: EchoApi, echo: Echo, breaker: CircuitBreaker
    ) -> None:
        echo.failures_left = 100
        for _ in range(2):
            with pytest.raises(DependencyUnavailable):
                await client.read("x")
        assert breaker.state is BreakerState.OPEN
        calls_before = len(echo.calls)
        with pytest.raises(DependencyUnavailable) as refused:
            await client.read("x")
        assert len(echo.calls) == calls_before
        assert refused.value.retry_after > 1
