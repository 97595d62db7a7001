"""What modules promise each other. Pure: the standard library and msgspec only."""

from contracts._base import (
    Contract,
    ContractError,
    DependencyUnavailable,
    FieldError,
    IntegrationEvent,
    InvalidInput,
    NotPermitted,
    Principal,
    idempotent,
    is_idempotent,
)

__all__ = (
    "Contract",
    "ContractError",
    "DependencyUnavailable",
    "FieldError",
    "IntegrationEvent",
    "InvalidInput",
    "NotPermitted",
    "Principal",
    "idempotent",
    "is_idempotent",
)
