"""WHO ATC codes of an order: resolved to knowledge-base ingredients or classes.

Pharmacy systems outside the US code medicines with WHO ATC (Anatomical Therapeutic
Chemical classification) instead of RxNorm.  Orders hand such codes on as
``Coding(system=ATC_SYSTEM, code=...)`` (FHIR ``http://www.whocc.no/atc``, HL7 v2 coding
system ``WC``, the CSV ``atc`` column, JSON codings).  For each code, in this order:

1. not written like an ATC code (``A``, ``A10``, ``A10B``, ``A10BA``, ``A10BA02``) ->
   a notice that says so; the order's text is tried instead;
2. its anatomical/therapeutic group (first 1, 3 or 4 characters) is not in the ATC
   listing (``data/atc_groups.csv``) -> a notice "unknown ATC code";
3. a code the knowledge base lists for an ingredient (``drug_map.csv``, also the eye,
   ear, skin and combination codes: ``S01AA12`` tobramycin, ``A10BD07`` metformin and
   sitagliptin; ``other_drugs.csv`` for drugs without a class) -> that ingredient, method
   ``atc``;
4. a level-5 code under a class's ``atc_prefixes`` and no ``atc_exclude`` -> an
   ingredient named after the code (``ATC L01AA99``) that :func:`~b12drugs.classify.classify`
   places by its ATC code: a new member of a class is not missed;
5. any other well-formed level-5 code -> "checked, nothing found" (resolved, no
   ingredient of interest): a drug outside every B12 class;
6. a group code (levels 1-4) inside a class (``A02BC``) -> the class, like 4; a group
   that *contains* a class (``A02B``, ``L01``) names no drug: a notice, not a guess.

Route-specific codes (D dermatologicals, S01 ophthalmologicals, S02 otologicals, S03)
resolve to their ingredient; the rules read the local route from the code
(:func:`local_route`) and give the usual "topical/ophthalmic/otic product, no alert"
notice.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from ..knowledge import KnowledgeBase, data_dir
from ..models import ATC_SYSTEM, Coding, IngredientMatch

#: System URIs and OIDs under which ATC codes arrive (FHIR uri, HL7 OID 2.16.840.1.113883.6.73).
ATC_SYSTEMS = frozenset({ATC_SYSTEM, ATC_SYSTEM + "/", "urn:oid:2.16.840.1.113883.6.73"})

#: The five ATC levels: A / A10 / A10B / A10BA / A10BA02.
ATC_CODE = re.compile(r"^[A-Z](?:\d\d(?:[A-Z](?:[A-Z](?:\d\d)?)?)?)?$")
LEVEL_BY_LENGTH = {1: 1, 3: 2, 4: 3, 5: 4, 7: 5}

#: ATC groups of products for local use, by the route word the rules use.  D: skin
#: (dermatologicals), S01: eye, S02: ear, S03: eye and ear.
LOCAL_GROUPS: tuple[tuple[str, frozenset[str]], ...] = (
    ("S01", frozenset({"ophthalmic"})),
    ("S02", frozenset({"otic"})),
    ("S03", frozenset({"ophthalmic", "otic"})),
    ("D", frozenset({"topical"})),
)


def is_atc(coding: Coding) -> bool:
    return coding.system.strip().lower() in ATC_SYSTEMS


def normalize_atc(code: str) -> str:
    """Upper case, no spaces or dots (``a10ba 02`` and ``A10.BA.02`` -> ``A10BA02``)."""
    return re.sub(r"[\s.]", "", code).upper()


def atc_codes(codings: Iterable[Coding]) -> tuple[str, ...]:
    """The ATC codes among ``codings``, normalised, without repeats."""
    return tuple(dict.fromkeys(normalize_atc(c.code) for c in codings if is_atc(c)))


def local_route(code: str) -> frozenset[str]:
    """The local routes (``topical``, ``ophthalmic``, ``otic``) an ATC code stands for."""
    code = normalize_atc(code)
    for prefix, routes in LOCAL_GROUPS:
        if code.startswith(prefix):
            return routes
    return frozenset()


@cache
def _groups(path: Path) -> frozenset[str]:
    with path.open(newline="", encoding="utf-8") as fh:
        return frozenset(row["atc_group"] for row in csv.DictReader(fh))


def known_groups() -> frozenset[str]:
    """Level 1-3 ATC groups of the listing (``data/atc_groups.csv``)."""
    return _groups(data_dir() / "atc_groups.csv")


@dataclass(frozen=True)
class AtcOutcome:
    """What one ATC code resolved to.

    ``status``: ``ingredient`` (matches), ``class`` (a class by prefix, matches named after
    the code), ``no_class`` (checked, nothing found), ``group`` (a group wider than a
    class: not checked), ``malformed`` or ``unknown``.
    """

    code: str
    status: str
    matches: tuple[IngredientMatch, ...]
    message: str

    @property
    def resolved(self) -> bool:
        return self.status in ("ingredient", "class", "no_class")


class AtcIndex:
    """ATC code -> knowledge-base ingredients, and class prefixes for the rest."""

    def __init__(self, kb: KnowledgeBase, groups: frozenset[str] | None = None):
        self.kb = kb
        self.groups = known_groups() if groups is None else groups
        self.by_code: dict[str, list[str]] = {}
        for e in kb.entries:
            for code in e.atc:
                names = self.by_code.setdefault(code.upper(), [])
                if e.ingredient not in names:
                    names.append(e.ingredient)
        self._prefixes = tuple(
            p for c in kb.classes.values() for p in c.atc_prefixes
        )

    def _rxcui(self, name: str) -> str | None:
        return next((e.rxcui for e in self.kb.by_ingredient.get(name, []) if e.rxcui), None)

    def _atc(self, name: str) -> tuple[str, ...]:
        out: list[str] = []
        for e in self.kb.by_ingredient.get(name, []):
            out.extend(a for a in e.atc if a not in out)
        return tuple(out)

    def resolve(self, raw: str, source: str) -> AtcOutcome:
        code = normalize_atc(raw)[:40]
        if not ATC_CODE.match(code):
            return AtcOutcome(code, "malformed", (), f"{raw[:40]!r} is not a well-formed WHO ATC "
                              "code (letter, 2 digits, letter, letter, 2 digits): not checked")
        level = LEVEL_BY_LENGTH[len(code)]
        for group in (code[:1], code[:3], code[:4]):
            if len(group) <= len(code) and group not in self.groups and len(group) in (1, 3, 4):
                return AtcOutcome(code, "unknown", (), f"ATC code {code!r}: group {group!r} is "
                                  "not in the ATC listing (unknown or withdrawn code): not checked")
            if len(group) == len(code):
                break
        names = self.by_code.get(code)
        if names:
            return AtcOutcome(code, "ingredient", tuple(
                IngredientMatch(name=n, rxcui=self._rxcui(n), method="atc", confidence=1.0,
                                atc=self._atc(n), source=source, matched_text=code,
                                detail=f"ATC {code}")
                for n in names), f"ATC {code}: {', '.join(names)}")
        classes = self.kb.classes_for_atc([code])
        if classes:
            match = IngredientMatch(name=f"ATC {code}", method="atc", confidence=1.0,
                                    atc=(code,), source=source, matched_text=code,
                                    detail="placed by the class's ATC prefix (ingredient not "
                                    "listed in the knowledge base)")
            return AtcOutcome(code, "class", (match,),
                              f"ATC {code}: {', '.join(c.class_id for c in classes)} by prefix")
        if level < 5 and any(p.startswith(code) for p in self._prefixes):
            return AtcOutcome(code, "group", (), f"ATC group {code!r} contains B12-lowering "
                              "classes but names no drug: not checked (send the level-5 code)")
        # Named after the code, so that a report and ``lookup`` show what was checked.
        match = IngredientMatch(name=f"ATC {code}", method="atc", confidence=1.0, atc=(code,),
                                source=source, matched_text=code,
                                detail="a drug outside every B12 class")
        return AtcOutcome(code, "no_class", (match,), f"ATC {code}: no B12 class")

    def resolve_all(self, codes: Sequence[str], source: str) -> list[AtcOutcome]:
        return [self.resolve(c, source) for c in codes]


__all__ = [
    "ATC_CODE",
    "ATC_SYSTEMS",
    "AtcIndex",
    "AtcOutcome",
    "atc_codes",
    "is_atc",
    "known_groups",
    "local_route",
    "normalize_atc",
]
