"""Conventions of the contracts, as tests: what crosses a module boundary is immutable and exact."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import msgspec
import pytest

import contracts
from contracts import IntegrationEvent


def _keyword_only(struct: type[msgspec.Struct]) -> bool:
    parameters = inspect.signature(struct).parameters.values()
    return all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in parameters)


def _contract_structs() -> list[type[msgspec.Struct]]:
    found: dict[str, type[msgspec.Struct]] = {}
    for info in pkgutil.iter_modules(contracts.__path__, "contracts."):
        module = importlib.import_module(info.name)
        for _, value in inspect.getmembers(module, inspect.isclass):
            if issubclass(value, msgspec.Struct) and value.__module__.startswith("contracts"):
                found[f"{value.__module__}.{value.__qualname__}"] = value
    return [found[name] for name in sorted(found)]


STRUCTS = _contract_structs()
RECORDS = [s for s in STRUCTS if not issubclass(s, IntegrationEvent)]
EVENTS = [s for s in STRUCTS if issubclass(s, IntegrationEvent) and s is not IntegrationEvent]


def test_the_contracts_declare_records_and_events() -> None:
    assert len(RECORDS) >= 10
    assert len(EVENTS) >= 6


@pytest.mark.parametrize("struct", RECORDS, ids=lambda s: s.__qualname__)
def test_every_contract_record_is_frozen_keyword_only_and_exact(struct: type[msgspec.Struct]) -> None:
    config = struct.__struct_config__
    assert (config.frozen, _keyword_only(struct), config.forbid_unknown_fields) == (True, True, True)


@pytest.mark.parametrize("event", EVENTS, ids=lambda s: s.__qualname__)
def test_every_event_is_frozen_keyword_only_tagged_and_a_tolerant_reader(
    event: type[IntegrationEvent],
) -> None:
    """Events are read by consumers of older versions: a field added in a minor version is ignored."""
    config = event.__struct_config__
    assert (config.frozen, _keyword_only(event), config.forbid_unknown_fields) == (True, True, False)
    assert event.type_name().startswith(f"{event.__module__.removeprefix('contracts.')}.")
    assert event.type_name().endswith(tuple(f".v{n}" for n in range(1, 10)))
