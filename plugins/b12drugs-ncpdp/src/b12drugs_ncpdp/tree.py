"""A small, namespace-free element tree for one SCRIPT message.

The stream splitter (:mod:`b12drugs_ncpdp.xmlstream`) builds one of these per
``Message`` and drops it once the message is read, so memory stays flat however many
messages a file holds.  Element names are *local* names: SCRIPT messages arrive with
the NCPDP namespace, with a prefix, or without any namespace, and the reader treats
them alike.  Text is capped per element (:data:`MAX_ELEMENT_TEXT`) so that an
over-long field costs bounded memory and is still reported (``overlong``).
"""

from __future__ import annotations

from collections.abc import Iterator

#: Characters of text kept per element; more marks the element ``overlong``.  Larger
#: than any model bound (``b12drugs.models.MAX_TEXT``) so over-long fields are detected.
MAX_ELEMENT_TEXT = 8192


def local_name(tag: str) -> str:
    """``{namespace}Name`` -> ``Name``."""
    return tag.rpartition("}")[2]


class Node:
    """One XML element: local name, attributes (local names), children, text."""

    __slots__ = ("_parts", "_size", "attrib", "children", "name", "overlong")

    def __init__(self, name: str, attrib: dict[str, str] | None = None) -> None:
        self.name = name
        self.attrib = attrib or {}
        self.children: list[Node] = []
        self._parts: list[str] = []
        self._size = 0
        self.overlong = False

    def add_text(self, text: str) -> None:
        if self.overlong:
            return
        room = MAX_ELEMENT_TEXT - self._size
        if len(text) > room:
            text = text[:room]
            self.overlong = True
        self._parts.append(text)
        self._size += len(text)

    @property
    def text(self) -> str:
        """The element's own text, stripped of surrounding white space."""
        if len(self._parts) != 1:
            self._parts = ["".join(self._parts)]
        return self._parts[0].strip()

    def child(self, name: str) -> Node | None:
        for c in self.children:
            if c.name == name:
                return c
        return None

    def children_named(self, name: str) -> Iterator[Node]:
        return (c for c in self.children if c.name == name)

    def find(self, path: str) -> Node | None:
        """The first descendant along ``A/B/C`` (local names), or ``None``."""
        node: Node | None = self
        for part in path.split("/"):
            if node is None:
                return None
            node = node.child(part)
        return node

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"Node({self.name!r}, {len(self.children)} children)"
