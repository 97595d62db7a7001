"""Calls across a contract, derived from the contract's Protocol.

Today: the *strict* adapter, which makes an in-process call behave as if it crossed the
network — every argument, result and contract error is encoded with msgspec and decoded
again against the Protocol's type hints — so that anything that would not survive the
wire fails in tests, not in production.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import msgspec

from contracts import Contract, ContractError, FieldError, InvalidInput

__all__ = (
    "ContractMethod",
    "ContractViolation",
    "WireError",
    "contract_methods",
    "error_from_wire",
    "error_to_wire",
    "strict",
)

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
    proxy = _StrictProxy()
    for method in contract_methods(contract).values():
        setattr(proxy, method.name, _strict_method(contract, method, getattr(implementation, method.name)))
    return cast(ApiT, proxy)


class _StrictProxy:
    """Holds one strict wrapper per contract method."""


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
