"""What modules promise each other. Pure: the standard library and msgspec only."""

from contracts._base import (
    PAGE_LIMIT_DEFAULT,
    PAGE_LIMIT_MAX,
    AwareDateTime,
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
    in_utc,
    is_idempotent,
    refuse_control_characters,
)

__all__ = (
    "PAGE_LIMIT_DEFAULT",
    "AwareDateTime",
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
    "in_utc",
    "is_idempotent",
    "refuse_control_characters",
)
