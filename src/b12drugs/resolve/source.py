"""A common read interface over RxNorm: the RxNav REST API or a local RxNorm index.

Resolvers and knowledge-base maintenance (``b12drugs kb verify|refresh``) talk to
whichever source is configured through this protocol, so the same logic works online
(RxNav, RxNav-in-a-Box) and offline (a local index built from RRF files).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class Concept:
    """An RxNorm concept as a source reports it."""

    rxcui: str
    name: str
    tty: str = ""
    active: bool | None = None


@dataclass(frozen=True)
class History:
    """What became of an RxCUI: its status and, if retired, its successors.

    ``status`` is one of Active, Obsolete, Remapped, Quantified, NotCurrent, Unknown
    (as RxNav spells them; compare case-insensitively).
    """

    rxcui: str
    status: str
    remapped_to: tuple[Concept, ...] = ()
    ingredients: tuple[Concept, ...] = ()


@dataclass(frozen=True)
class AtcClass:
    """An ATC class of a concept (level derived from the id's length)."""

    class_id: str
    class_name: str = ""
    rxcui: str = ""


@dataclass(frozen=True)
class NdcInfo:
    """NDC status: the current concept, or the last concept of an obsolete NDC."""

    ndc11: str
    status: str
    rxcui: str | None = None
    history_rxcuis: tuple[str, ...] = field(default=())


@runtime_checkable
class ConceptSource(Protocol):
    """Read-only RxNorm lookups.  ``None``/empty means "no result", never an error;
    failures to reach the source raise :class:`b12drugs.errors.SourceUnavailable`."""

    name: str

    def data_version(self) -> str | None: ...

    def properties(self, rxcui: str) -> Concept | None: ...

    def ingredients(self, rxcui: str) -> list[Concept]:
        """Ingredients (TTY IN, MIN, PIN) of any concept; an ingredient returns itself."""
        ...

    def rxcuis_by_name(self, name: str) -> list[str]:
        """Exact, then normalised name match."""
        ...

    def rxcuis_by_ndc(self, ndc11: str) -> list[str]: ...

    def ndc_status(self, ndc11: str) -> NdcInfo | None: ...

    def history(self, rxcui: str) -> History | None: ...

    def atc_classes(self, rxcui: str) -> list[AtcClass]: ...

    def class_members(self, class_id: str, ttys: str = "IN") -> list[Concept]: ...
