"""The contract gate: every kind of breaking change fails the check, every compatible one needs a minor bump.

Each case builds the same small contract twice, as a snapshot was taken of it and as it was
then changed, and runs the check the way ``tessera contracts check`` does, against a
snapshot directory of the test's own.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Protocol
from uuid import UUID

import msgspec
import pytest

from app.kernel import surface
from app.kernel.surface import Verdict
from contracts import Contract, ContractError, IntegrationEvent, Principal, idempotent


class Note(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    id: UUID
    text: str
    pinned: bool = False


class NoteDraft(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    text: str
    tags: list[str] = msgspec.field(default_factory=list)


class NoteWritten(IntegrationEvent, frozen=True, kw_only=True, tag="notes.NoteWritten.v1"):
    key_field = "note_id"
    note_id: UUID
    text: str


class NoteNotFound(ContractError):
    code = "notes.note_not_found"
    status = 404


class NotesApi(Protocol):
    @idempotent
    async def get_note(self, principal: Principal, note_id: UUID) -> Note: ...

    async def write_note(self, principal: Principal, draft: NoteDraft) -> Note: ...


def _contract(
    api: type[Any] = NotesApi,
    version: str = "1.0",
    *,
    errors: tuple[type[ContractError], ...] = (NoteNotFound,),
    events: tuple[type[IntegrationEvent], ...] = (NoteWritten,),
) -> Contract[Any]:
    return Contract(name="notes", version=version, api=api, errors=errors, events=events)


@pytest.fixture
def snapshots(tmp_path: Path) -> Path:
    verdict = surface.write_snapshot(_contract(), tmp_path)
    assert verdict.ok, verdict.problem
    assert (tmp_path / "notes.v1.json").is_file()
    return tmp_path


def _check(snapshots: Path, contract: Contract[Any]) -> Verdict:
    return surface.check(contract, snapshots)


def test_the_code_as_snapshotted_passes(snapshots: Path) -> None:
    verdict = _check(snapshots, _contract())
    assert verdict.ok, verdict.problem
    assert verdict.changes == ()


def test_no_snapshot_of_a_contract_fails_and_says_what_to_run(tmp_path: Path) -> None:
    verdict = _check(tmp_path, _contract())
    assert verdict.problem == "no snapshot of notes 1.x yet: run `tessera contracts snapshot`"


# -- breaking changes: each fails at the same major version, and the snapshot is refused --


class NoteV2(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):  # pinned removed
    id: UUID
    text: str


class NoteMaybeText(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    id: UUID
    text: str | None
    pinned: bool = False


class NoteDraftStricter(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    text: str
    tags: list[str] = msgspec.field(default_factory=list)
    colour: str  # new and required


class NoteDraftNarrowed(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    text: str
    tags: list[UUID] = msgspec.field(default_factory=list)  # was any text


class NoteDraftShorter(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    text: Annotated[str, msgspec.Meta(max_length=100)]  # was any length
    tags: list[str] = msgspec.field(default_factory=list)


class NoteWrittenRequired(IntegrationEvent, frozen=True, kw_only=True, tag="notes.NoteWritten.v1"):
    key_field = "note_id"
    note_id: UUID
    text: str
    author_id: UUID  # events already published have none


class NoteWrittenByText(IntegrationEvent, frozen=True, kw_only=True, tag="notes.NoteWritten.v1"):
    key_field = "text"
    note_id: UUID
    text: str


class NoMoreGet(Protocol):
    async def write_note(self, principal: Principal, draft: NoteDraft) -> Note: ...


class GetNotIdempotent(Protocol):
    async def get_note(self, principal: Principal, note_id: UUID) -> Note: ...

    async def write_note(self, principal: Principal, draft: NoteDraft) -> Note: ...


class GetNeedsMore(Protocol):
    @idempotent
    async def get_note(self, principal: Principal, note_id: UUID, version: int) -> Note: ...

    async def write_note(self, principal: Principal, draft: NoteDraft) -> Note: ...


class GetTakesText(Protocol):
    @idempotent
    async def get_note(self, principal: Principal, note_id: int) -> Note: ...

    async def write_note(self, principal: Principal, draft: NoteDraft) -> Note: ...


class GetReturnsLess(Protocol):
    @idempotent
    async def get_note(self, principal: Principal, note_id: UUID) -> NoteV2: ...

    async def write_note(self, principal: Principal, draft: NoteDraft) -> Note: ...


class GetMayReturnNothing(Protocol):
    @idempotent
    async def get_note(self, principal: Principal, note_id: UUID) -> Note | None: ...

    async def write_note(self, principal: Principal, draft: NoteDraft) -> Note: ...


class GetMayReturnNoText(Protocol):
    @idempotent
    async def get_note(self, principal: Principal, note_id: UUID) -> NoteMaybeText: ...

    async def write_note(self, principal: Principal, draft: NoteDraft) -> Note: ...


def _writing(draft: type[Any]) -> type[Any]:
    class Api(Protocol):
        @idempotent
        async def get_note(self, principal: Principal, note_id: UUID) -> Note: ...

    async def write_note(self: Any, principal: Principal, draft: Any) -> Note: ...

    write_note.__annotations__ = {"principal": Principal, "draft": draft, "return": Note}
    Api.write_note = write_note  # type: ignore[attr-defined]
    return Api


class NoteNotFoundGone(ContractError):
    code = "notes.note_not_found"
    status = 410


BREAKING: dict[str, tuple[Callable[[], Contract[Any]], str]] = {
    "a method removed": (lambda: _contract(NoMoreGet), "get_note: method removed"),
    "a retry made unsafe": (
        lambda: _contract(GetNotIdempotent),
        "get_note: no longer idempotent: callers retry it",
    ),
    "a required parameter added": (
        lambda: _contract(GetNeedsMore),
        "get_note(version): required parameter added",
    ),
    "a parameter's type narrowed": (
        lambda: _contract(GetTakesText),
        "get_note(note_id): no longer accepts string",
    ),
    "a field the caller sends made required": (
        lambda: _contract(_writing(NoteDraftStricter)),
        "write_note(draft).colour: required field added",
    ),
    "a list's items narrowed": (
        lambda: _contract(_writing(NoteDraftNarrowed)),
        "write_note(draft).tags[]: format None -> 'uuid'",
    ),
    "a constraint tightened on what callers send": (
        lambda: _contract(_writing(NoteDraftShorter)),
        "write_note(draft).text: maxLength None -> 100",
    ),
    "a result's field removed": (lambda: _contract(GetReturnsLess), "get_note ->.pinned: field removed"),
    "a result that may now be missing": (
        lambda: _contract(GetMayReturnNothing),
        "get_note ->: may now be null",
    ),
    "a result's field widened": (
        lambda: _contract(GetMayReturnNoText),
        "get_note ->.text: may now be null",
    ),
    "an event removed": (lambda: _contract(events=()), "event notes.NoteWritten.v1: removed"),
    "an event's required field added": (
        lambda: _contract(events=(NoteWrittenRequired,)),
        "event notes.NoteWritten.v1.author_id: required field added",
    ),
    "an event keyed otherwise": (
        lambda: _contract(events=(NoteWrittenByText,)),
        "event notes.NoteWritten.v1: keyed by text, was note_id",
    ),
    "an error's status changed": (
        lambda: _contract(errors=(NoteNotFoundGone,)),
        "error notes.note_not_found: status 404 -> 410",
    ),
}


@pytest.mark.parametrize("case", BREAKING)
def test_a_breaking_change_fails_the_check_and_cannot_be_snapshotted_without_a_new_major(
    snapshots: Path, case: str
) -> None:
    changed, expected = BREAKING[case]
    verdict = _check(snapshots, changed())
    assert f"breaking: {expected}" in [str(c) for c in verdict.changes], verdict.changes
    assert verdict.problem is not None
    assert verdict.problem.startswith("a breaking change needs a new major version: notes 1.0 -> 2.0")
    # A minor bump is not enough: the snapshot is refused and left as it was.
    before = (snapshots / "notes.v1.json").read_text()
    assert not surface.write_snapshot(_with_version(changed(), "1.1"), snapshots).ok
    assert (snapshots / "notes.v1.json").read_text() == before
    # A major bump is: a new snapshot beside the old one, which the check then passes.
    bumped = _with_version(changed(), "2.0")
    assert surface.write_snapshot(bumped, snapshots).ok
    assert _check(snapshots, bumped).ok
    assert (snapshots / "notes.v2.json").is_file()
    assert (snapshots / "notes.v1.json").read_text() == before


def _with_version(contract: Contract[Any], version: str) -> Contract[Any]:
    return Contract(
        name=contract.name, version=version, api=contract.api, errors=contract.errors, events=contract.events
    )


# -- compatible changes: each needs a minor bump and a new snapshot, then passes -----------


class NotePlus(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    id: UUID
    text: str
    pinned: bool = False
    colour: str = "yellow"


class NoteDraftLooser(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    text: str | None  # now also null
    tags: list[str] = msgspec.field(default_factory=list)
    colour: str = "yellow"  # new, optional


class NoteWrittenPlus(IntegrationEvent, frozen=True, kw_only=True, tag="notes.NoteWritten.v1"):
    key_field = "note_id"
    note_id: UUID
    text: str
    colour: str = "yellow"


class NoteErased(IntegrationEvent, frozen=True, kw_only=True, tag="notes.NoteErased.v1"):
    key_field = "note_id"
    note_id: UUID


class NoteTooLong(ContractError):
    code = "notes.note_too_long"
    status = 422


class MoreMethods(Protocol):
    @idempotent
    async def get_note(self, principal: Principal, note_id: UUID, with_history: bool = False) -> NotePlus: ...

    @idempotent
    async def write_note(self, principal: Principal, draft: NoteDraft) -> Note: ...

    @idempotent
    async def count_notes(self, principal: Principal) -> int: ...


COMPATIBLE: dict[str, tuple[Callable[[str], Contract[Any]], set[str]]] = {
    "methods, an optional parameter, a result field and a retry made safe": (
        lambda v: _contract(MoreMethods, v),
        {
            "compatible: count_notes: method added",
            "compatible: get_note(with_history): parameter added",
            "compatible: get_note ->.colour: field added",
            "compatible: write_note: now idempotent",
        },
    ),
    "an input widened and an optional field": (
        lambda v: _contract(_writing(NoteDraftLooser), v),
        {
            "compatible: write_note(draft).colour: field added",
            "compatible: write_note(draft).text: also accepts null",
        },
    ),
    "an event's optional field, an event and an error": (
        lambda v: _contract(
            version=v, events=(NoteWrittenPlus, NoteErased), errors=(NoteNotFound, NoteTooLong)
        ),
        {
            "compatible: event notes.NoteWritten.v1.colour: field added",
            "compatible: event notes.NoteErased.v1: added",
            "compatible: error notes.note_too_long: added",
        },
    ),
}


@pytest.mark.parametrize("case", COMPATIBLE)
def test_a_compatible_change_needs_a_minor_bump_and_a_snapshot_then_passes(
    snapshots: Path, case: str
) -> None:
    changed, expected = COMPATIBLE[case]
    verdict = _check(snapshots, changed("1.0"))
    assert {str(c) for c in verdict.changes} == expected
    assert verdict.problem == "a compatible change needs a new minor version: notes 1.0 -> 1.1, then run " + (
        "`tessera contracts snapshot`"
    )
    assert not surface.write_snapshot(changed("1.0"), snapshots).ok
    bumped = changed("1.1")
    stale = _check(snapshots, bumped)  # bumped, but the snapshot is not rewritten yet
    assert stale.problem == "notes 1.1 differs from its snapshot (1.0): run `tessera contracts snapshot`"
    assert surface.write_snapshot(bumped, snapshots).ok
    assert _check(snapshots, bumped).ok
    assert _check(snapshots, bumped).changes == ()


class Renamed(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Documented now."""

    id: UUID
    text: str
    pinned: bool = False


class ReturnsRenamed(Protocol):
    @idempotent
    async def get_note(self, principal: Principal, note_id: UUID) -> Renamed:
        """Documented too."""

    async def write_note(self, principal: Principal, draft: NoteDraft) -> Note: ...


def test_documentation_and_a_renamed_type_are_not_changes(snapshots: Path) -> None:
    verdict = _check(snapshots, _contract(ReturnsRenamed))
    assert verdict.ok, verdict.changes
    assert verdict.changes == ()
