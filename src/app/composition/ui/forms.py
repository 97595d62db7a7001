"""What the UI's forms send, read into the contracts' own types, or the reasons they cannot be."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Any, TypeVar
from uuid import UUID

import msgspec

from contracts import ContractError, InvalidInput
from contracts.tasks import Priority, TaskChanges, TaskDraft, TaskStatus

__all__ = (
    "COLUMNS",
    "PRIORITIES",
    "FormProblem",
    "changes_of",
    "draft_of",
    "expected_version",
    "field_errors",
    "message_of",
    "uuid_or_none",
)

T = TypeVar("T")


class FormProblem(Exception):
    """A form that cannot become a call: ``errors`` maps each field to what is wrong with it."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


def draft_of(form: dict[str, str]) -> TaskDraft:
    """A new task from the board's form: title, description, priority, labels, due date, assignee."""
    fields: dict[str, Any] = {"title": form.get("title", "").strip()}
    fields.update(_optional_fields(form))
    return _convert(fields, TaskDraft)


def changes_of(form: dict[str, str], *, status_only: bool = False) -> TaskChanges:
    """The changes a task page's form (or a card's move button) asks for."""
    fields: dict[str, Any] = {}
    if status := form.get("status"):
        fields["status"] = status
    if not status_only:
        fields["title"] = form.get("title", "").strip()
        fields.update(_optional_fields(form, clearing=True))
    return _convert(fields, TaskChanges)


def expected_version(form: dict[str, str]) -> int | None:
    value = form.get("version", "")
    return int(value) if value.isdigit() else None


def uuid_or_none(value: str) -> UUID | None:
    try:
        return UUID(value)
    except ValueError:
        return None


def field_errors(error: InvalidInput) -> dict[str, str]:
    return {e.field: e.message for e in error.errors}


def message_of(error: ContractError) -> str:
    return error.detail or error.title


def _optional_fields(form: dict[str, str], *, clearing: bool = False) -> dict[str, Any]:
    fields: dict[str, Any] = {"description": form.get("description", "")}
    if priority := form.get("priority"):
        fields["priority"] = priority
    fields["labels"] = [label.strip() for label in form.get("labels", "").split(",") if label.strip()]
    due = form.get("due", "").strip()
    if due:
        try:
            fields["due_at"] = datetime.combine(date.fromisoformat(due), time(23, 59), tzinfo=UTC)
        except ValueError:
            raise FormProblem({"due": "is not a date (YYYY-MM-DD)"}) from None
    elif clearing:
        fields["due_at"] = None
    assignee = form.get("assignee_id", "").strip()
    if assignee and assignee != "keep":
        try:
            fields["assignee_id"] = UUID(assignee) if assignee != "none" else None
        except ValueError:
            raise FormProblem({"assignee_id": "is not a person found by the search"}) from None
    return fields


def _convert(fields: dict[str, Any], into: type[T]) -> T:
    try:
        return msgspec.convert(fields, into)
    except msgspec.ValidationError as exc:
        # "Expected `str` of length >= 1 - at `$.title`": the field, then what is wrong with it
        text = str(exc)
        what, _, where = text.rpartition(" - at `$.")
        field = where.rstrip("`").split("[", 1)[0] or "form"
        raise FormProblem({field: what or text}) from None


PRIORITIES = [p.value for p in Priority]
COLUMNS = [TaskStatus.TODO, TaskStatus.IN_PROGRESS, TaskStatus.DONE]
