"""Calls across a contract, derived from the contract's Protocol: nothing is hand-written.

- :func:`strict` makes an in-process call behave as if it crossed the network: every
  argument, result and contract error is encoded with msgspec and decoded again;
- :func:`internal_router` serves a contract's implementation at
  ``POST /internal/<contract>/<method>`` for other groups, behind service tokens;
- :func:`remote` implements a contract by calling those routes, with a timeout per call,
  retries with backoff and jitter for idempotent methods, and a circuit breaker per group.

On the wire: arguments are a JSON object of the method's parameters; the answer is the
JSON of the result, or problem details whose ``code`` rebuilds the same contract error.
The caller's context travels as headers: ``X-Request-ID``, ``traceparent``,
``X-Deadline-Ms`` (the budget left), ``X-Contract-Version``, and the service token, which
also carries the end user.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import random as _random
import time
import typing
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

import httpx
import msgspec
import stamina
from litestar import Request, Response, Router, get, post
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers import BaseRouteHandler, HTTPRouteHandler

from app.kernel.config import RpcSettings
from app.kernel.context import CallContext, call_context, current_context
from app.kernel.db import open_units
from app.kernel.resilience import CircuitBreaker
from app.kernel.security import KEYS_NOT_LEARNT, ServiceClaims, ServiceTokens, public
from app.kernel.telemetry.metrics import RPC_CALL_DURATION, RPC_CALLS, RPC_ERRORS, count_contract_call
from app.kernel.telemetry.tracing import current_trace_headers
from contracts import Contract, ContractError, DependencyUnavailable, FieldError, InvalidInput, Principal

__all__ = (
    "ContractMethod",
    "ContractViolation",
    "DeadlineExceeded",
    "IncompatibleContract",
    "RemoteCallRefused",
    "RemoteGroup",
    "SERVICE_KEYS_PATH",
    "SimulatedNetwork",
    "WireError",
    "contract_methods",
    "counted",
    "error_from_wire",
    "error_to_wire",
    "internal_router",
    "fetch_service_keys",
    "remote",
    "service_keys_route",
    "simulated",
    "strict",
)

log = logging.getLogger("tessera.rpc")

ApiT = TypeVar("ApiT")


class ContractViolation(Exception):
    """An implementation did something its contract does not allow."""


class WireError(msgspec.Struct, frozen=True, kw_only=True):
    """A contract error as it travels: its stable code, detail and field errors."""

    code: str
    detail: str
    errors: list[FieldError] | None = None


@dataclass(frozen=True, slots=True)
class ContractMethod:
    name: str
    signature: inspect.Signature
    parameters: dict[str, Any]  # name -> type hint, ``self`` excluded
    returns: Any
    idempotent: bool


@functools.cache
def contract_methods(contract: Contract[Any]) -> dict[str, ContractMethod]:
    """The async methods a contract's Protocol declares, with their resolved type hints."""
    from contracts import is_idempotent

    methods: dict[str, ContractMethod] = {}
    for name, function in vars(contract.api).items():
        if name.startswith("_") or not inspect.iscoroutinefunction(function):
            continue
        hints = typing.get_type_hints(function)
        signature = inspect.signature(function)
        methods[name] = ContractMethod(
            name=name,
            signature=signature,
            parameters={p: hints[p] for p in signature.parameters if p != "self"},
            returns=hints["return"],
            idempotent=is_idempotent(function),
        )
    return methods


def error_to_wire(error: ContractError) -> WireError:
    errors = error.errors if isinstance(error, InvalidInput) else None
    return WireError(code=error.code, detail=error.detail, errors=errors)


def error_from_wire(contract: Contract[Any], wire: WireError) -> ContractError:
    """The same exception class the callee raised, rebuilt from its code."""
    if wire.code == InvalidInput.code:
        return InvalidInput(wire.errors or [], detail=wire.detail)
    for error_class in contract.errors:
        if error_class.code == wire.code:
            return error_class(wire.detail)
    raise ContractViolation(f"{contract.name} raised {wire.code!r}, which its contract does not declare")


def _round_trip(value: Any, hint: Any) -> Any:
    return msgspec.json.decode(msgspec.json.encode(value), type=hint)


def strict(contract: Contract[ApiT], implementation: ApiT) -> ApiT:
    """``implementation`` behind a boundary that only msgspec-encodable values cross."""
    return _proxy(contract, lambda m: _strict_method(contract, m, getattr(implementation, m.name)))


class _ContractProxy:
    """Implements a contract with one attribute per method (strict, counting, simulated or remote calls)."""


def _proxy(contract: Contract[ApiT], method_for: Callable[[ContractMethod], Callable[..., Any]]) -> ApiT:
    """An implementation of ``contract`` whose every method is ``method_for`` that method."""
    proxy = _ContractProxy()
    for method in contract_methods(contract).values():
        setattr(proxy, method.name, method_for(method))
    return cast(ApiT, proxy)


def counted(contract: Contract[ApiT], implementation: ApiT) -> ApiT:
    """``implementation``, each call of it counted under the route of the request that made it
    (``tessera_contract_calls``): how often a boundary is crossed, before it is a network."""
    return _proxy(contract, lambda m: _counting(f"{contract.name}.{m.name}", getattr(implementation, m.name)))


def _counting(call: str, method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    def counting(*args: Any, **kwargs: Any) -> Awaitable[Any]:
        count_contract_call(call)
        return method(*args, **kwargs)

    counting.__name__ = call.rsplit(".", 1)[-1]
    return counting


@dataclass(slots=True)
class SimulatedNetwork:
    """What crossing a network costs, for a process that pretends to be a split (``tessera simulate``):
    each crossing waits a latency drawn from ``latencies_ms`` (one remote call's measured added
    latency, say) and fails with ``dependency.unavailable`` at ``failure_rate``."""

    latencies_ms: Sequence[float]
    failure_rate: float = 0.0
    record: Path | None = None  # where to note each call made inside a caller's open unit of work
    random: _random.Random = field(default_factory=_random.Random)
    held: set[tuple[str, tuple[str, ...]]] = field(default_factory=set)

    def note_units_held(self, callee: str, what: str) -> None:
        """A call about to cross while the caller's unit of work is open: across a real network
        it would hold that transaction (and, on SQLite, the file's one writer) for the round trip.
        Logged once per call and holder, and noted in ``record`` for `tessera extract`."""
        held = tuple(m for m in open_units() if m != callee)
        if not held or (what, held) in self.held:
            return
        self.held.add((what, held))
        log.warning("%s called inside the open unit of work of %s: it cannot cross a network", what, held)
        if self.record is not None:
            with self.record.open("a", encoding="utf-8") as noted:
                noted.write(msgspec.json.encode({"call": what, "held": held}).decode() + "\n")

    async def cross(self, what: str) -> None:
        if self.failure_rate and self.random.random() < self.failure_rate:
            raise DependencyUnavailable(f"{what}: the simulated network failed the call")
        if self.latencies_ms:
            await _wait(self.random.choice(self.latencies_ms) / 1000)


async def _wait(seconds: float) -> None:
    """``asyncio.sleep`` to within a tenth of a millisecond: the event loop's own sleeps end up to
    a millisecond late (epoll counts whole milliseconds), as much as the latency simulated. The
    last ``_PRECISE`` seconds are waited yielding to the loop, which spends them on other tasks."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    if seconds > _PRECISE:
        await asyncio.sleep(seconds - _PRECISE)
    while loop.time() < deadline:  # noqa: ASYNC110 (no event to wait on: the time itself)
        await asyncio.sleep(0)


_PRECISE = 0.002


def simulated(contract: Contract[ApiT], implementation: ApiT, network: SimulatedNetwork) -> ApiT:
    """``implementation`` as a remote caller would meet it: behind the strict boundary, across ``network``."""
    crossing = strict(contract, implementation)
    return _proxy(contract, lambda m: _across(network, contract.name, m.name, getattr(crossing, m.name)))


def _across(
    network: SimulatedNetwork, callee: str, method: str, call: Callable[..., Awaitable[Any]]
) -> Callable[..., Awaitable[Any]]:
    what = f"{callee}.{method}"

    async def remote_call(*args: Any, **kwargs: Any) -> Any:
        network.note_units_held(callee, what)
        await network.cross(what)
        return await call(*args, **kwargs)

    remote_call.__name__ = method
    return remote_call


def _strict_method(
    contract: Contract[Any], method: ContractMethod, call: Callable[..., Awaitable[Any]]
) -> Callable[..., Awaitable[Any]]:
    async def crossing(*args: Any, **kwargs: Any) -> Any:
        bound = method.signature.bind(None, *args, **kwargs)
        arguments = {
            name: _round_trip(value, method.parameters[name])
            for name, value in bound.arguments.items()
            if name != "self"
        }
        try:
            result = await call(**arguments)
        except ContractError as error:
            wire = _round_trip(error_to_wire(error), WireError)
            raise error_from_wire(contract, wire) from None
        try:
            return _round_trip(result, method.returns)
        except (msgspec.ValidationError, TypeError) as exc:
            raise ContractViolation(f"{contract.name}.{method.name} returned {result!r}: {exc}") from exc

    crossing.__name__ = method.name
    return crossing


# -- the wire ---------------------------------------------------------------------------

CONTRACT_VERSION_HEADER = "x-contract-version"
DEADLINE_HEADER = "x-deadline-ms"
INTERNAL_PREFIX = "/internal"
SERVICE_KEYS_PATH = f"{INTERNAL_PREFIX}/keys"  # a group's public service keys, which its callees fetch


def _arguments_type(contract: Contract[Any], method: ContractMethod) -> type[msgspec.Struct]:
    return msgspec.defstruct(
        f"{contract.name}_{method.name}_arguments",
        list(method.parameters.items()),
        kw_only=True,
        forbid_unknown_fields=True,
    )


# -- serving a contract -----------------------------------------------------------------


class RemoteCallRefused(ContractError):
    """The callee refused the call itself (version, arguments, deadline), not its content."""

    code = "rpc.refused"
    status = 400
    title = "The remote call was refused"


class IncompatibleContract(RemoteCallRefused):
    code = "rpc.incompatible_contract"
    status = 400
    title = "The caller speaks an incompatible major version of the contract"


class DeadlineExceeded(RemoteCallRefused):
    code = "rpc.deadline_exceeded"
    status = 504
    title = "The caller's time budget ran out"


def internal_router(
    contract: Contract[Any],
    implementation: Callable[[], Any],
    *,
    tokens: ServiceTokens,
) -> Router:
    """``POST /internal/<contract>/<method>`` for every method of the contract."""

    async def require_service_token(
        connection: ASGIConnection[Any, Any, Any, Any], _handler: BaseRouteHandler
    ) -> None:
        scheme, _, token = connection.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise NotAuthorizedException("a service token is required")
        claims = await tokens.verify(token)
        connection.scope["state"]["service_claims"] = claims

    handlers = [
        _serving_handler(contract, method, implementation) for method in contract_methods(contract).values()
    ]
    return Router(
        path=f"{INTERNAL_PREFIX}/{contract.name}",
        route_handlers=handlers,
        guards=[require_service_token],
        include_in_schema=False,
        opt=public("internal routes authenticate calling services by service token, not users"),
    )


def service_keys_route(tokens: ServiceTokens) -> HTTPRouteHandler:
    """``GET /internal/keys``: this group's public service keys, for the groups it calls."""

    @get(
        SERVICE_KEYS_PATH,
        opt=public("callees fetch a caller's public keys before they can check its service token"),
        include_in_schema=False,
        sync_to_thread=False,
    )
    def service_keys() -> dict[str, Any]:
        return tokens.jwks()

    return service_keys


async def fetch_service_keys(http: httpx.AsyncClient, group: RemoteGroup) -> dict[str, Any]:
    """What ``group`` serves at ``/internal/keys``."""
    answer = await http.get(f"{group.url.rstrip('/')}{SERVICE_KEYS_PATH}")
    answer.raise_for_status()
    published: dict[str, Any] = answer.json()
    return published


def _serving_handler(
    contract: Contract[Any], method: ContractMethod, implementation: Callable[[], Any]
) -> HTTPRouteHandler:
    decoder = msgspec.json.Decoder(_arguments_type(contract, method))
    encoder = msgspec.json.Encoder()
    principal_parameters = [name for name, hint in method.parameters.items() if hint is Principal]

    async def serve(request: Request[Any, Any, Any]) -> Response[bytes]:
        _require_compatible(contract, request.headers.get(CONTRACT_VERSION_HEADER))
        claims: ServiceClaims = request.scope["state"]["service_claims"]
        try:
            arguments = decoder.decode(await request.body())
        except msgspec.ValidationError as exc:
            raise RemoteCallRefused(f"arguments of {contract.name}.{method.name}: {exc}") from None
        values = {name: getattr(arguments, name) for name in method.parameters}
        for name in principal_parameters:
            if values[name] != claims.principal:
                raise PermissionDeniedException(
                    "the principal argument is not the user the token vouches for"
                )
        context = _served_context(request, claims)
        with call_context(context):
            try:
                async with asyncio.timeout(context.remaining()):
                    result = await getattr(implementation(), method.name)(**values)
            except TimeoutError:
                raise DeadlineExceeded from None
        return Response(content=encoder.encode(result), media_type="application/json")

    return post(
        f"/{method.name}",
        name=f"internal:{contract.name}.{method.name}",
        status_code=200,
        include_in_schema=False,
    )(serve)


def _require_compatible(contract: Contract[Any], offered: str | None) -> None:
    try:
        major = int((offered or "").split(".", 1)[0])
    except ValueError:
        raise IncompatibleContract(f"send {CONTRACT_VERSION_HEADER}: {contract.version}") from None
    if major != contract.major:
        raise IncompatibleContract(
            f"{contract.name} {contract.version} is served here; the caller speaks {offered}"
        )


def _served_context(request: Request[Any, Any, Any], claims: ServiceClaims) -> CallContext:
    """The caller's context, rebuilt: its request id and trace, its user, its time budget."""
    current = current_context()
    deadline = None
    if (budget := request.headers.get(DEADLINE_HEADER)) is not None and budget.isdigit():
        deadline = time.monotonic() + int(budget) / 1000
    return msgspec.structs.replace(current, principal=claims.principal, deadline=deadline)


# -- calling a contract in another group ------------------------------------------------


class _Transient(Exception):
    """A failure of the connection, not an answer: worth another attempt if the call is safe."""


@dataclass(frozen=True, slots=True)
class RemoteGroup:
    """Another group as a caller sees it: where it is, and the breaker guarding calls to it."""

    name: str
    url: str
    breaker: CircuitBreaker


def remote(
    contract: Contract[ApiT],
    *,
    group: RemoteGroup,
    http: httpx.AsyncClient,
    tokens: ServiceTokens,
    settings: RpcSettings,
) -> ApiT:
    """An implementation of ``contract`` that calls ``group`` over HTTP."""
    return _proxy(
        contract, lambda m: _RemoteCall(contract, m, group=group, http=http, tokens=tokens, settings=settings)
    )


class _RemoteCall:
    __slots__ = ("_arguments", "_contract", "_group", "_http", "_method", "_settings", "_tokens", "_url")

    def __init__(
        self,
        contract: Contract[Any],
        method: ContractMethod,
        *,
        group: RemoteGroup,
        http: httpx.AsyncClient,
        tokens: ServiceTokens,
        settings: RpcSettings,
    ) -> None:
        self._contract = contract
        self._method = method
        self._group = group
        self._http = http
        self._tokens = tokens
        self._settings = settings
        self._arguments = _arguments_type(contract, method)
        self._url = f"{group.url.rstrip('/')}{INTERNAL_PREFIX}/{contract.name}/{method.name}"

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        contract, method = self._contract.name, self._method.name
        RPC_CALLS.labels(contract, method).inc()
        began = time.perf_counter()
        try:
            return await self._call(*args, **kwargs)
        except ContractError as error:
            RPC_ERRORS.labels(contract, method, error.code).inc()
            raise
        finally:
            RPC_CALL_DURATION.labels(contract, method).observe(time.perf_counter() - began)

    async def _call(self, *args: Any, **kwargs: Any) -> Any:
        bound = self._method.signature.bind(None, *args, **kwargs)
        bound.apply_defaults()
        body = msgspec.json.encode(
            self._arguments(**{k: v for k, v in bound.arguments.items() if k != "self"})
        )
        attempts = self._settings.attempts if self._method.idempotent else 1
        # One budget for the whole call, retries included: the caller's, if it is tighter.
        budget = self._settings.timeout_seconds
        if (remaining := current_context().remaining()) is not None:
            budget = min(budget, remaining)
        deadline = time.monotonic() + budget
        try:
            async for attempt in stamina.retry_context(
                on=_Transient,
                attempts=attempts,
                timeout=budget,
                wait_initial=self._settings.backoff_initial_seconds,
                wait_max=self._settings.backoff_max_seconds,
                wait_jitter=self._settings.backoff_initial_seconds,
            ):
                with attempt:
                    return await self._attempt(body, deadline)
        except _Transient as failure:
            # The caller learns what is unavailable, in words; how it failed goes to the log.
            log.warning(
                "%s.%s (%s) did not answer: %s",
                self._contract.name,
                self._method.name,
                self._group.name,
                failure,
            )
            raise DependencyUnavailable(
                f"The {self._contract.name} service did not answer in time; try again shortly.",
                retry_after=self._settings.breaker_open_seconds,
            ) from None
        raise AssertionError("unreachable: stamina yields at least one attempt")

    async def _attempt(self, body: bytes, deadline: float) -> Any:
        breaker = self._group.breaker
        breaker.admit(f"{self._contract.name} ({self._group.name})")
        context = current_context()
        timeout = deadline - time.monotonic()
        if timeout <= 0:
            breaker.record_failure()
            raise _Transient("the time budget was spent")
        try:
            response = await self._http.post(
                self._url, content=body, headers=self._headers(context, timeout), timeout=timeout
            )
        except httpx.HTTPError as exc:
            breaker.record_failure()
            raise _Transient(type(exc).__name__) from None
        if breaker.record_status(response.status_code):
            raise _Transient(f"HTTP {response.status_code}")
        if response.status_code == 200:
            return _read_result(response.content, self._method.returns)
        if response.status_code == 401 and KEYS_NOT_LEARNT in response.text:
            # Refused before it ran: the callee has not fetched this group's keys yet (this
            # process called while it was still starting, before it could serve them).
            raise _Transient("the callee has not learnt this group's service keys yet")
        raise self._error_from(response)

    def _headers(self, context: CallContext, timeout: float) -> dict[str, str]:
        token = self._tokens.issue(audience=self._group.name, principal=context.principal)
        return {
            "authorization": f"Bearer {token}",
            "content-type": "application/json",
            "x-request-id": context.correlation_id,
            **current_trace_headers(),  # traceparent, tracestate (OpenTelemetry's propagators)
            CONTRACT_VERSION_HEADER: self._contract.version,
            DEADLINE_HEADER: str(int(timeout * 1000)),
        }

    def _error_from(self, response: httpx.Response) -> ContractError:
        try:
            wire = msgspec.json.decode(response.content, type=WireError)
        except msgspec.DecodeError:
            wire = WireError(code="", detail=response.text[:200])
        if wire.code == DependencyUnavailable.code:
            return DependencyUnavailable(wire.detail, retry_after=_retry_after(response))
        if wire.code == IncompatibleContract.code:
            return IncompatibleContract(wire.detail)
        try:
            return error_from_wire(self._contract, wire)
        except ContractViolation:
            # Not an error of the contract: the call itself was refused (token, version, ...).
            log.error(
                "%s (%s) refused the call: HTTP %d %s %s",
                self._contract.name,
                self._group.name,
                response.status_code,
                wire.code,
                wire.detail,
            )
            return DependencyUnavailable(f"The {self._contract.name} service cannot take this call now.")


def _read_result(content: bytes, hint: Any) -> Any:
    """The callee's answer as this caller's contract describes it.

    A callee at a newer minor version may answer with fields this caller does not know yet
    (a compatible change, ``tessera contracts check``): they are left out, as an event's
    consumer leaves them out, instead of failing on the records' refusal of unknown fields.
    """
    try:
        return msgspec.json.decode(content, type=hint)
    except msgspec.ValidationError as exc:
        if "unknown field" not in str(exc):
            raise
    return msgspec.convert(_known(msgspec.json.decode(content), msgspec.inspect.type_info(hint)), hint)


def _known(value: Any, info: msgspec.inspect.Type) -> Any:
    """``value`` (JSON as builtins) without the object fields ``info`` does not declare, at any depth."""
    if isinstance(info, msgspec.inspect.StructType) and isinstance(value, dict):
        fields = {f.encode_name: f.type for f in info.fields}
        return {k: _known(v, fields[k]) for k, v in value.items() if k in fields or k == info.tag_field}
    if isinstance(info, msgspec.inspect.UnionType) and isinstance(value, dict):
        structs = [t for t in info.types if isinstance(t, msgspec.inspect.StructType)]
        tagged = [t for t in structs if t.tag_field is not None and value.get(t.tag_field) == t.tag]
        return _known(value, (tagged or structs)[0]) if len(tagged or structs) == 1 else value
    if isinstance(info, msgspec.inspect.DictType) and isinstance(value, dict):
        return {k: _known(v, info.value_type) for k, v in value.items()}
    if isinstance(info, msgspec.inspect.TupleType) and isinstance(value, list):
        return [_known(v, t) for v, t in zip(value, info.item_types, strict=False)]
    if isinstance(value, list) and hasattr(info, "item_type"):
        return [_known(v, info.item_type) for v in value]
    return value


def _retry_after(response: httpx.Response) -> float:
    value = response.headers.get("retry-after", "1")
    return float(value) if value.isdigit() else 1.0
