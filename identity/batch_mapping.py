"""What resolution reads of a department's mapping: one Protocol, so resolve takes no ``Any``.

A :class:`mappings.engine.DatasetMapping` satisfies it; resolution needs its department and
dataset, and from its parsed file the identity kind, the identifier fields and the relations.
"""

from __future__ import annotations

from typing import Protocol

from mappings.spec import IdentifierSpec, MappingSpec


class ResolvableMapping(Protocol):
    """A department dataset's mapping as identity resolution sees it."""

    @property
    def department(self) -> str: ...

    @property
    def dataset(self) -> str: ...

    @property
    def spec(self) -> MappingSpec: ...


def identifier_specs(mapping: ResolvableMapping | None) -> tuple[IdentifierSpec, ...]:
    """The mapping's identifier fields (none without a mapping)."""
    return tuple(mapping.spec.identifiers) if mapping is not None else ()
