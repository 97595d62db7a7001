"""What modules promise each other. Pure: the standard library and msgspec only."""

from contracts._base import (
    PAGE_LIMIT_DEFAULT,
    PAGE_LIMIT_MAX,
    Contract,
    ContractError,
    DependencyUnavailable,
    FieldError,
    IntegrationEvent,
    InvalidInput,
    NotPermitted,
    PageLimit,
    Principal,
    idempotent,
    is_idempotent,
)

__all__ = (
    "PAGE_LIMIT_DEFAULT",
    "PAGE_LIMIT_MAX",
    "Contract",
    "ContractError",
    "DependencyUnavailable",
    "FieldError",
    "IntegrationEvent",
    "InvalidInput",
    "NotPermitted",
    "PageLimit",
    "Principal",
    "idempotent",
    "is_idempotent",
)
