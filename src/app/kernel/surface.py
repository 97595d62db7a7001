"""A contract's public surface, its snapshots in the repository, and the breaking-change gate.

The surface is what other modules depend on: each method's parameters and result, whether
it may be retried, the error codes, and the events with their schemas (JSON Schema, as
msgspec describes the types). ``tessera contracts snapshot`` writes it beside the contracts,
one file per contract and major version; ``tessera contracts check`` compares the code with
the snapshot of its major version.

A change is *breaking* when a caller or consumer written against the snapshot can fail
against the code: a method, parameter, field, event or accepted value gone; a parameter or
field newly required; a type narrowed where the caller sends it (parameters) or widened
where it reads it (results, events); a retry no longer safe. It needs a new major version.
Any other change needs a minor version. Either way the snapshot is rewritten to match, and
the check passes only when code, version and snapshot agree.

Two things the check cannot see, on purpose: documentation (titles, descriptions) and
defaults. A default's change is a change of meaning, for the review to judge.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

import contracts
from app.kernel.rpc import contract_methods
from contracts import Contract

__all__ = (
    "Change",
    "Verdict",
    "changes_between",
    "check",
    "snapshot_path",
    "surface",
    "write_snapshot",
)

SNAPSHOTS = Path(contracts.__file__).parent / "snapshots"
_DEFINITIONS = "#/definitions/"
_UNSEEN = ("title", "description", "examples", "default")  # documentation and meaning, not shape
# Constraints by the direction in which they tighten what a value may be.
_AT_LEAST = ("minLength", "minimum", "exclusiveMinimum", "minItems", "minProperties")
_AT_MOST = ("maxLength", "maximum", "exclusiveMaximum", "maxItems", "maxProperties")
_EXACT = ("pattern", "format", "multipleOf", "const")

Schema = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Change:
    """One difference between a snapshot and the code: where, what, and whether it breaks callers."""

    where: str
    what: str
    breaking: bool

    def __str__(self) -> str:
        return f"{'breaking' if self.breaking else 'compatible'}: {self.where}: {self.what}"


@dataclass(frozen=True, slots=True)
class Verdict:
    """The check of one contract: its changes since the snapshot, and what must be done, if anything."""

    contract: str
    version: str
    snapshot: Path
    changes: tuple[Change, ...]
    problem: str | None  # None: the code, its version and the snapshot agree

    @property
    def ok(self) -> bool:
        return self.problem is None


# -- the surface --------------------------------------------------------------------------


def surface(contract: Contract[Any]) -> dict[str, Any]:
    """The contract's public surface as a JSON-ready document."""
    methods = dict(sorted(contract_methods(contract).items()))
    types: list[Any] = []
    for method in methods.values():
        types += [*method.parameters.values(), method.returns]
    types += contract.events
    schemas, definitions = msgspec.json.schema_components(types, ref_template=_DEFINITIONS + "{name}")
    shapes = iter(_shape(s) for s in schemas)
    described_methods = {}
    for name, method in methods.items():
        parameters = {}
        for parameter in method.parameters:
            default = method.signature.parameters[parameter].default
            parameters[parameter] = {"required": default is inspect.Parameter.empty, "schema": next(shapes)}
        described_methods[name] = {
            "idempotent": method.idempotent,
            "parameters": parameters,
            "returns": next(shapes),
        }
    events = {
        event.type_name(): {"key": event.key_field, "schema": next(shapes)}
        for event in contract.events  # (in the order the schemas were asked for)
    }
    return {
        "contract": contract.name,
        "version": contract.version,
        "methods": described_methods,
        "errors": {error.code: {"status": error.status} for error in sorted(contract.errors, key=_code)},
        "events": dict(sorted(events.items())),
        "definitions": {name: _shape(schema) for name, schema in sorted(definitions.items())},
    }


def _code(error: type[contracts.ContractError]) -> str:
    return error.code


def _shape(schema: Any) -> Any:
    """The schema without what the check does not judge (documentation, defaults)."""
    if isinstance(schema, list):
        return [_shape(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    shaped: Schema = {}
    for key, value in schema.items():
        if key in _UNSEEN:
            continue
        if key == "properties":  # field names, each with a schema
            shaped[key] = {name: _shape(s) for name, s in value.items()}
        else:
            shaped[key] = _shape(value)
    return shaped


# -- snapshots ------------------------------------------------------------------------------


def snapshot_path(contract: Contract[Any], directory: Path = SNAPSHOTS) -> Path:
    return directory / f"{contract.name}.v{contract.major}.json"


def _load(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.is_file() else None


def write_snapshot(contract: Contract[Any], directory: Path = SNAPSHOTS) -> Verdict:
    """Snapshot the contract, if its version says what its changes are; the verdict either way.

    Refused (nothing written): a breaking change within one major version, or any change
    without a new minor version.
    """
    verdict = check(contract, directory, writing=True)
    if verdict.ok:
        path = snapshot_path(contract, directory)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(surface(contract), indent=1, sort_keys=False) + "\n")
    return verdict


def check(contract: Contract[Any], directory: Path = SNAPSHOTS, *, writing: bool = False) -> Verdict:
    """Compare the code with its major version's snapshot (``writing``: as a new snapshot would)."""
    path = snapshot_path(contract, directory)
    now = surface(contract)
    before = _load(path)
    run = "`tessera contracts snapshot`"
    if before is None:
        earlier = _load(directory / f"{contract.name}.v{contract.major - 1}.json")
        changes = tuple(changes_between(earlier, now)) if earlier is not None else ()
        missing = None if writing else f"no snapshot of {contract.name} {contract.major}.x yet: run {run}"
        return Verdict(contract.name, contract.version, path, changes, missing)
    changes = tuple(changes_between(before, now))
    problem: str | None = None
    was, minor = before["version"], _minor(contract.version)
    if any(c.breaking for c in changes):
        problem = (
            f"a breaking change needs a new major version: {contract.name} {was} -> "
            f"{contract.major + 1}.0, then run {run} (or undo it: callers of {contract.major}.x would fail)"
        )
    elif changes and minor <= _minor(was):
        problem = (
            f"a compatible change needs a new minor version: {contract.name} {was} -> "
            f"{contract.major}.{_minor(was) + 1}, then run {run}"
        )
    elif minor < _minor(was):
        problem = f"{contract.name} is at {contract.version}, older than its snapshot's {was}"
    elif not writing and (changes or contract.version != was):
        problem = f"{contract.name} {contract.version} differs from its snapshot ({was}): run {run}"
    return Verdict(contract.name, contract.version, path, changes, problem)


def _minor(version: str) -> int:
    _, _, minor = version.partition(".")
    return int(minor or 0)


# -- what changed ---------------------------------------------------------------------------


def changes_between(before: Mapping[str, Any], now: Mapping[str, Any]) -> Iterator[Change]:
    """Every difference between two surfaces of one contract, each judged breaking or not."""
    old = _Resolver(before["definitions"])
    new = _Resolver(now["definitions"])
    yield from _methods(before["methods"], now["methods"], old, new)
    for code in before["errors"].keys() - now["errors"].keys():
        yield Change(f"error {code}", "no longer raised", breaking=False)
    for code in now["errors"].keys() - before["errors"].keys():
        yield Change(f"error {code}", "added", breaking=False)
    for code in before["errors"].keys() & now["errors"].keys():
        if before["errors"][code]["status"] != now["errors"][code]["status"]:
            was, is_ = before["errors"][code]["status"], now["errors"][code]["status"]
            yield Change(f"error {code}", f"status {was} -> {is_}", breaking=True)
    for name in sorted(before["events"].keys() - now["events"].keys()):
        yield Change(f"event {name}", "removed", breaking=True)
    for name in sorted(now["events"].keys() - before["events"].keys()):
        yield Change(f"event {name}", "added", breaking=False)
    for name in sorted(before["events"].keys() & now["events"].keys()):
        was, is_ = before["events"][name], now["events"][name]
        if was["key"] != is_["key"]:
            yield Change(f"event {name}", f"keyed by {is_['key']}, was {was['key']}", breaking=True)
        yield from _Comparison(old, new, reading=True, event=True).schemas(
            f"event {name}", was["schema"], is_["schema"]
        )


def _methods(
    before: Mapping[str, Any], now: Mapping[str, Any], old: _Resolver, new: _Resolver
) -> Iterator[Change]:
    for name in sorted(before.keys() - now.keys()):
        yield Change(name, "method removed", breaking=True)
    for name in sorted(now.keys() - before.keys()):
        yield Change(name, "method added", breaking=False)
    for name in sorted(before.keys() & now.keys()):
        was, is_ = before[name], now[name]
        if was["idempotent"] and not is_["idempotent"]:
            yield Change(name, "no longer idempotent: callers retry it", breaking=True)
        elif is_["idempotent"] and not was["idempotent"]:
            yield Change(name, "now idempotent", breaking=False)
        sent = _Comparison(old, new, reading=False)
        for parameter in sorted(was["parameters"].keys() - is_["parameters"].keys()):
            yield Change(f"{name}({parameter})", "parameter removed", breaking=True)
        for parameter in sorted(is_["parameters"].keys() - was["parameters"].keys()):
            required = is_["parameters"][parameter]["required"]
            yield Change(
                f"{name}({parameter})",
                "required parameter added" if required else "parameter added",
                breaking=required,
            )
        for parameter in sorted(was["parameters"].keys() & is_["parameters"].keys()):
            before_p, now_p = was["parameters"][parameter], is_["parameters"][parameter]
            if now_p["required"] and not before_p["required"]:
                yield Change(f"{name}({parameter})", "parameter now required", breaking=True)
            yield from sent.schemas(f"{name}({parameter})", before_p["schema"], now_p["schema"])
        yield from _Comparison(old, new, reading=True).schemas(f"{name} ->", was["returns"], is_["returns"])


class _Resolver:
    __slots__ = ("_definitions",)

    def __init__(self, definitions: Mapping[str, Schema]) -> None:
        self._definitions = definitions

    def alternatives(self, schema: Schema) -> dict[str, Schema]:
        """The schema's alternatives by kind, references resolved: a JSON type, or, where a union
        has several object types, each by its name (one object type may be renamed at will)."""
        named: list[tuple[str | None, Schema]] = []
        for alternative in schema.get("anyOf", [schema]):
            name = None
            if "$ref" in alternative:
                name = alternative["$ref"].removeprefix(_DEFINITIONS)
                alternative = self._definitions[name]
            if "anyOf" in alternative:
                named += [(None, nested) for nested in self.alternatives(alternative).values()]
            else:
                named.append((name, alternative))
        objects = sum(1 for _, alternative in named if alternative.get("type") == "object")
        found: dict[str, Schema] = {}
        for name, alternative in named:
            kind = str(alternative.get("type", "enum" if "enum" in alternative else "any"))
            if kind == "object" and objects > 1:
                kind = f"object {name or alternative.get('title', '?')}"
            found.setdefault(kind, alternative)
        return found


class _Comparison:
    """Compares two schemas of one place: values callers send (``reading`` False) or read."""

    __slots__ = ("_event", "_new", "_old", "_reading", "_seen")

    def __init__(self, old: _Resolver, new: _Resolver, *, reading: bool, event: bool = False) -> None:
        self._old, self._new, self._reading, self._event = old, new, reading, event
        self._seen: set[tuple[int, int]] = set()

    def schemas(self, where: str, before: Schema, now: Schema) -> Iterator[Change]:
        if (id(before), id(now)) in self._seen:  # a recursive type: compared already
            return
        self._seen.add((id(before), id(now)))
        was, is_ = self._old.alternatives(before), self._new.alternatives(now)
        gone, added = [k for k in was if k not in is_], [k for k in is_ if k not in was]
        for kind in gone:
            what = f"never {kind} any more" if self._reading else f"no longer accepts {kind}"
            yield Change(where, what, breaking=not self._reading)
        for kind in added:
            what = f"may now be {kind}" if self._reading else f"also accepts {kind}"
            yield Change(where, what, breaking=self._reading)
        for kind in was.keys() & is_.keys():
            yield from self._alternative(where, was[kind], is_[kind])

    def _alternative(self, where: str, before: Schema, now: Schema) -> Iterator[Change]:
        yield from self._constraints(where, before, now)
        if "enum" in before or "enum" in now:
            yield from self._enum(where, before.get("enum"), now.get("enum"))
        if before.get("type") == "object" or now.get("type") == "object":
            yield from self._object(where, before, now)
        if "items" in before and "items" in now:
            yield from self.schemas(f"{where}[]", before["items"], now["items"])
        was_items, is_items = before.get("prefixItems", []), now.get("prefixItems", [])
        if len(was_items) != len(is_items):
            yield Change(where, f"{len(was_items)} items -> {len(is_items)}", breaking=True)
        for index, (was, is_) in enumerate(zip(was_items, is_items, strict=False)):
            yield from self.schemas(f"{where}[{index}]", was, is_)

    def _object(self, where: str, before: Schema, now: Schema) -> Iterator[Change]:
        was, is_ = before.get("properties", {}), now.get("properties", {})
        was_required, is_required = set(before.get("required", ())), set(now.get("required", ()))
        for field in sorted(was.keys() - is_.keys()):
            yield Change(f"{where}.{field}", "field removed", breaking=True)
        for field in sorted(is_.keys() - was.keys()):
            required = field in is_required
            breaking = required and (not self._reading or self._event)  # old events have none of it
            yield Change(f"{where}.{field}", "required field added" if required else "field added", breaking)
        for field in sorted(was.keys() & is_.keys()):
            if self._reading and field in was_required and field not in is_required:
                yield Change(f"{where}.{field}", "may now be absent", breaking=True)
            elif not self._reading and field in is_required and field not in was_required:
                yield Change(f"{where}.{field}", "now required", breaking=True)
            yield from self.schemas(f"{where}.{field}", was[field], is_[field])
        was_more, is_more = before.get("additionalProperties"), now.get("additionalProperties")
        if isinstance(was_more, dict) and isinstance(is_more, dict):
            yield from self.schemas(f"{where}{{}}", was_more, is_more)

    def _enum(self, where: str, before: Sequence[Any] | None, now: Sequence[Any] | None) -> Iterator[Change]:
        was, is_ = set(before or ()), set(now or ())
        for value in sorted(map(str, was - is_)):
            what = f"never {value!r} any more" if self._reading else f"no longer accepts {value!r}"
            yield Change(where, what, breaking=not self._reading)
        for value in sorted(map(str, is_ - was)):
            what = f"may now be {value!r}" if self._reading else f"also accepts {value!r}"
            yield Change(where, what, breaking=self._reading)

    def _constraints(self, where: str, before: Schema, now: Schema) -> Iterator[Change]:
        for keyword in (*_AT_LEAST, *_AT_MOST, *_EXACT):
            was, is_ = before.get(keyword), now.get(keyword)
            if was == is_:
                continue
            if keyword in _EXACT:
                tighter, looser = is_ is not None, was is not None
            elif keyword in _AT_LEAST:
                tighter = is_ is not None and (was is None or is_ > was)
                looser = not tighter
            else:
                tighter = is_ is not None and (was is None or is_ < was)
                looser = not tighter
            what = f"{keyword} {was!r} -> {is_!r}"
            # Sent values must still be accepted; read values must still be what readers expect.
            breaking = (tighter and not self._reading) or (looser and self._reading)
            yield Change(where, what, breaking=breaking)
