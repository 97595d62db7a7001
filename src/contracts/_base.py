"""The vocabulary every contract is written in: errors, principals, the contract record."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Generic, TypeVar
from uuid import UUID

import msgspec

__all__ = (
    "PAGE_LIMIT_DEFAULT",
    "NOT_BLANK",
    "NO_CONTROL_CHARACTERS",
    "AwareDateTime",
    "PAGE_LIMIT_MAX",
    "Contract",
    "IntegrationEvent",
    "ContractError",
    "DependencyUnavailable",
    "FieldError",
    "InvalidInput",
    "NotPermitted",
    "PageLimit",
    "Principal",
    "Throttled",
    "idempotent",
    "in_utc",
    "is_idempotent",
    "refuse_control_characters",
)

ApiT = TypeVar("ApiT")

# One page of any listing: 1 to PAGE_LIMIT_MAX items, PAGE_LIMIT_DEFAULT when the caller says nothing.
PAGE_LIMIT_MAX = 100
PAGE_LIMIT_DEFAULT = 50
PageLimit = Annotated[int, msgspec.Meta(ge=1, le=PAGE_LIMIT_MAX)]
# A moment in time, given with its UTC offset: one without ("2030-01-01T00:00:00") is refused,
# naming the field (422 request.validation_failed at the edge). One rule for every input.
AwareDateTime = Annotated[datetime, msgspec.Meta(tz=True)]
F = TypeVar("F", bound=Callable[..., Any])

_IDEMPOTENT_MARK = "__tessera_idempotent__"


_CONTROL = frozenset(map(chr, [*range(0x20), 0x7F]))
# The same rule as a pattern, so that the API document says it: text without control characters.
# It ends in (?![\s\S]), not $: Python's $ also matches before a final newline, so "ab\n" passed
# (schemathesis found it); the lookahead means the end of the text in Python and in ECMA alike.
NO_CONTROL_CHARACTERS = r"^[^\x00-\x1f\x7f]*(?![\s\S])"
# ... and holding at least one character that is not a space: a name.
NOT_BLANK = r"^[^\x00-\x1f\x7f]*[^\s\x00-\x1f\x7f][^\x00-\x1f\x7f]*(?![\s\S])"


def refuse_control_characters(text: str, *, field: str) -> str:
    """``text``, or ValueError naming ``field`` if it holds a control character (NUL, BEL, ...)."""
    if not _CONTROL.isdisjoint(text):
        raise ValueError(f"{field}: must not contain control characters")
    return text


def in_utc(value: datetime, *, field: str) -> datetime:
    """``value`` in UTC; ValueError naming ``field`` when UTC cannot hold it (year 1 at +05:00)."""
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{field}: not a moment UTC can represent") from None


class ContractError(Exception):
    """Base of every error a contract promises.

    A subclass names one failure with a stable ``code`` and the HTTP ``status`` it maps to.
    A caller catches the same class whether the callee runs in this process or another.
    """

    code: ClassVar[str] = "contract.error"
    status: ClassVar[int] = 400
    title: ClassVar[str] = "The request could not be completed"

    def __init__(self, detail: str | None = None) -> None:
        self.detail = detail or self.title
        super().__init__(self.detail)


class FieldError(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One invalid input field: where it is and what is wrong with it."""

    field: str
    message: str


class InvalidInput(ContractError):
    """Input that is well-formed but breaks a rule; names every offending field."""

    code = "request.invalid_input"
    status = 422
    title = "The input is not valid"

    def __init__(self, errors: list[FieldError], detail: str | None = None) -> None:
        self.errors = errors
        super().__init__(detail or "; ".join(f"{e.field}: {e.message}" for e in errors))


class NotPermitted(ContractError):
    """The principal may not do this. Each contract names who may, under a code of its own."""

    code = "contract.not_permitted"
    status = 403
    title = "Not permitted"


class DependencyUnavailable(ContractError):
    """A module this call needs could not be reached in time. Try again later.

    Raised by remote adapters (timeouts, refused connections, an open circuit), never by
    a module's own code, so that a caller can degrade gracefully where it can.
    """

    code = "dependency.unavailable"
    status = 503
    title = "A service this request needs is unavailable"

    def __init__(self, detail: str | None = None, *, retry_after: float = 1.0) -> None:
        self.retry_after = retry_after
        super().__init__(detail)


class Throttled(ContractError):
    """Too many attempts in too short a time: wait ``retry_after`` seconds, then try again."""

    code = "request.throttled"
    status = 429
    title = "Too many attempts; wait before trying again"

    def __init__(self, detail: str | None = None, *, retry_after: float = 1.0) -> None:
        self.retry_after = retry_after
        super().__init__(detail)


class Principal(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Who is acting: an authenticated user."""

    user_id: UUID


class IntegrationEvent(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    """A fact one module publishes for others. Subclasses set ``tag="<module>.<Name>.v<N>"``.

    The tag names the event and its schema version; a consumer decodes by it, and a
    breaking change gets a new tag rather than a changed meaning. ``key_field`` names the
    field that identifies the entity the event is about: a publisher's events of one
    entity reach every consumer in the order they were committed.
    """

    event_id: UUID
    occurred_at: datetime

    key_field: ClassVar[str] = "event_id"

    @property
    def key(self) -> str:
        return str(getattr(self, self.key_field))

    @classmethod
    def type_name(cls) -> str:
        """The tag: what the event is called on the bus and in outboxes."""
        return str(cls.__struct_config__.tag)


@dataclass(frozen=True, slots=True)
class Contract(Generic[ApiT]):
    """What one module promises the others: its API Protocol, version and errors."""

    name: str
    version: str
    api: type[Any]  # the Protocol class ApiT (a Protocol is not a concrete type[ApiT])
    errors: tuple[type[ContractError], ...] = field(default=())
    events: tuple[type[IntegrationEvent], ...] = field(default=())

    @property
    def major(self) -> int:
        return int(self.version.split(".", 1)[0])


def idempotent(method: F) -> F:
    """Mark a contract method as safe to retry (a read, or a write keyed by the caller)."""
    setattr(method, _IDEMPOTENT_MARK, True)
    return method


def is_idempotent(method: Callable[..., Any]) -> bool:
    return bool(getattr(method, _IDEMPOTENT_MARK, False))
