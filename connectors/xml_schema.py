"""The exchange package's XSD as the connector uses it: which elements a root may hold, and a
rewrite that lets libxml2 validate a stream of records in constant memory."""

from __future__ import annotations

from typing import Any

XS = "{http://www.w3.org/2001/XMLSchema}"


def root_children(doc: Any, root: str) -> list[str]:
    """Local names of the elements the XSD allows directly under the package root.

    Follows the root's inline or named complex type through sequence/choice/all; an ``xs:any``
    or a construct not followed here yields what was found so far (those other children are
    then cleared when the next record arrives, as before).
    """
    top = doc.getroot()
    types = {t.get("name"): t for t in top.iterchildren(f"{XS}complexType")}
    decl = next((e for e in top.iterchildren(f"{XS}element") if e.get("name") == root), None)
    if decl is None:
        return []
    ctype = decl.find(f"{XS}complexType")
    if ctype is None and decl.get("type"):
        ctype = types.get(decl.get("type").rpartition(":")[2])
    names: list[str] = []
    stack = [ctype] if ctype is not None else []
    while stack:
        node = stack.pop()
        for child in node.iterchildren(f"{XS}sequence", f"{XS}choice", f"{XS}all", f"{XS}element"):
            if child.tag == f"{XS}element":
                name = child.get("name") or (child.get("ref") or "").rpartition(":")[2]
                if name:
                    names.append(name)
            else:
                stack.append(child)
    return names


def repeat_choices_as_sequences(doc: Any) -> None:
    """Rewrite each repeated ``xs:choice`` as a repeated ``xs:sequence`` holding that choice.

    ``<choice min max>A|B</choice>`` and ``<sequence min max><choice>A|B</choice></sequence>``
    accept exactly the same children, but libxml2 (2.14) compiles the first into an automaton
    whose streaming validation keeps state for every repetition: validating a package whose
    root is ``<choice maxOccurs="unbounded">`` of records (the land XSD's) grew by ~100 MB per
    800,000 records, and was slower. The second form validates in constant memory. Only the
    schema document given is rewritten (not ``xs:include``-d ones).
    """
    for choice in list(doc.iter(f"{XS}choice")):
        if choice.get("maxOccurs", "1") == "1":
            continue
        sequence = choice.makeelement(f"{XS}sequence", {})
        for occurs in ("minOccurs", "maxOccurs"):
            if occurs in choice.attrib:
                sequence.set(occurs, choice.attrib.pop(occurs))
        choice.addprevious(sequence)
        sequence.append(choice)  # moves the choice into the sequence
