"""The knowledge base: B12-lowering classes, their ingredients, and known other drugs.

Clinical content is data, not code.  It lives in ``data/`` (shipped inside the wheel as
``b12drugs/data``; found next to the source tree in an editable install):

* ``drug_classes.csv``: class definitions (label, role, default severity, evidence,
  mechanism, monitoring advice, ATC prefixes, long-term thresholds, references);
* ``drug_map.csv``: one row per ingredient and class/role, with evidence and reference;
* ``other_drugs.csv``: common drugs that are *not* B12-lowering, so that the offline
  resolver can say "checked, nothing found" rather than "unresolved";
* ``risk_conditions.csv``: how conditions map to risk factors (used by :mod:`assess`).

Plugins add classes and rows through the ``b12drugs_knowledge`` hook.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cache, cached_property
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, field_validator

from .models import Severity

ALERT_CLASSES: tuple[str, ...] = (
    "cytostatics",
    "aminoglycosides",
    "phenytoin",
    "phenobarbital",
    "aminosalicylic_acid",
    "ascorbic_acid",
    "metformin",
    "proton_pump_inhibitors",
    "h2_receptor_antagonists",
    "colchicine",
    "nitrous_oxide",
    "bile_acid_sequestrants",
)
CONTEXT_ROLES: tuple[str, ...] = ("b12_therapy", "folate")

Evidence = Literal["strong", "moderate", "low", "disputed", "n/a"]


def _split(value: str | None, sep: str = ";") -> tuple[str, ...]:
    return tuple(p.strip() for p in (value or "").split(sep) if p.strip())


class ClassDef(BaseModel):
    """A B12-lowering drug class or a context role."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    class_id: str
    label: str
    role: Literal["alert", "context"]
    default_severity: Severity | None = None
    evidence: str = ""
    mechanism: str = ""
    monitoring: str = ""
    atc_prefixes: tuple[str, ...] = ()
    atc_exclude: tuple[str, ...] = ()
    long_term_days: int | None = None
    min_daily_dose_mg: float | None = None
    references: tuple[str, ...] = ()
    #: Local routes (``topical``, ``ophthalmic``, ``otic``) whose products do not raise
    #: this class's alert: the mechanism is gut malabsorption or mucosal/systemic toxicity.
    exclude_routes: tuple[str, ...] = ()
    #: How often a B12 status test is advised during long-term use (days), and where
    #: that interval comes from (see :mod:`b12drugs.assess.monitoring`).
    monitoring_interval_days: int | None = None
    monitoring_reference: str = ""

    @field_validator("atc_prefixes", "atc_exclude", "exclude_routes", mode="before")
    @classmethod
    def _lists(cls, v: object) -> object:
        return _split(v) if isinstance(v, str) else v

    @field_validator("references", mode="before")
    @classmethod
    def _citations(cls, v: object) -> object:
        # Citations contain ";" themselves ("2016;101:1754"): they are separated by "; ".
        return _split(v, "; ") if isinstance(v, str) else v


class KBEntry(BaseModel):
    """One ingredient row.  ``class_id`` is ``None`` for a known drug with no class."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    class_id: str | None
    ingredient: str
    rxcui: str | None = None
    atc: tuple[str, ...] = ()
    synonyms: tuple[str, ...] = ()
    brands: tuple[str, ...] = ()
    evidence: str = ""
    reference: str = ""
    notes: str = ""

    @field_validator("atc", "synonyms", "brands", mode="before")
    @classmethod
    def _lists(cls, v: object) -> object:
        return _split(v) if isinstance(v, str) else v

    @field_validator("rxcui", mode="before")
    @classmethod
    def _empty(cls, v: object) -> object:
        return v or None


def data_dir() -> Path:
    """Where the shipped data files are: inside the package, or the source tree."""
    packaged = resources.files("b12drugs") / "data"
    if packaged.is_dir():
        return Path(str(packaged))
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent / "data" / "drug_map.csv"
        if candidate.is_file():
            return candidate.parent
    raise FileNotFoundError("b12drugs data directory (drug_map.csv) not found")


def _rows(path: Path) -> Iterator[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        yield from csv.DictReader(fh)


def read_classes(path: Path) -> list[ClassDef]:
    out = []
    for row in _rows(path):
        out.append(
            ClassDef(
                class_id=row["class_id"],
                label=row["label"],
                role=row["role"],  # type: ignore[arg-type]
                default_severity=(row.get("default_severity") or None),  # type: ignore[arg-type]
                evidence=row.get("evidence", ""),
                mechanism=row.get("mechanism", ""),
                monitoring=row.get("monitoring", ""),
                atc_prefixes=row.get("atc_prefixes", ""),  # type: ignore[arg-type]
                atc_exclude=row.get("atc_exclude", ""),  # type: ignore[arg-type]
                long_term_days=int(row["long_term_days"]) if row.get("long_term_days") else None,
                min_daily_dose_mg=(
                    float(row["min_daily_dose_mg"]) if row.get("min_daily_dose_mg") else None
                ),
                references=row.get("references", ""),  # type: ignore[arg-type]
                exclude_routes=row.get("exclude_routes", ""),  # type: ignore[arg-type]
                monitoring_interval_days=(int(row["monitoring_interval_days"])
                                          if row.get("monitoring_interval_days") else None),
                monitoring_reference=row.get("monitoring_reference", "") or "",
            )
        )
    return out


def read_entries(path: Path, *, classified: bool = True) -> list[KBEntry]:
    out = []
    for row in _rows(path):
        out.append(
            KBEntry(
                class_id=(row.get("class_id") or None) if classified else None,
                ingredient=row["ingredient"].strip().lower(),
                rxcui=row.get("rxcui") or None,
                atc=row.get("atc", ""),  # type: ignore[arg-type]
                synonyms=row.get("synonyms", ""),  # type: ignore[arg-type]
                brands=row.get("brands", ""),  # type: ignore[arg-type]
                evidence=row.get("evidence", ""),
                reference=row.get("reference", ""),
                notes=row.get("notes", "") or row.get("note", "") or row.get("category", ""),
            )
        )
    return out


@dataclass
class KnowledgeBase:
    """Classes and entries with the indexes the resolver and classifier need."""

    classes: dict[str, ClassDef]
    entries: list[KBEntry]
    version: str
    by_rxcui: dict[str, list[KBEntry]] = field(default_factory=dict)
    by_ingredient: dict[str, list[KBEntry]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for e in self.entries:
            if e.rxcui:
                self.by_rxcui.setdefault(e.rxcui, []).append(e)
            self.by_ingredient.setdefault(e.ingredient, []).append(e)

    def alert_classes(self) -> list[ClassDef]:
        """The classes that raise alerts (not context roles), in knowledge-base order."""
        return self._alert_classes

    @cached_property
    def _alert_classes(self) -> list[ClassDef]:
        return [c for c in self.classes.values() if c.role == "alert"]

    def alert_rank(self) -> dict[str, int]:
        """``class id -> position`` of the classes that raise alerts, in knowledge-base
        order (rules put a patient's few classes in this order)."""
        return self._alert_rank

    @cached_property
    def _alert_rank(self) -> dict[str, int]:  # asked once per patient by the rules
        return {c.class_id: i for i, c in enumerate(self._alert_classes)}

    def members(self, class_id: str) -> list[KBEntry]:
        return [e for e in self.entries if e.class_id == class_id]

    def classes_for_ingredient(self, name: str, rxcui: str | None = None) -> list[ClassDef]:
        """Classes/roles of an ingredient, by RxCUI first, then by name."""
        entries = self.by_rxcui.get(rxcui or "", []) or self.by_ingredient.get(name.lower(), [])
        return [self.classes[e.class_id] for e in entries if e.class_id in self.classes]

    def classes_for_atc(self, codes: Iterable[str]) -> list[ClassDef]:
        """Classes whose ATC prefixes cover any of ``codes`` (and no exclusion does)."""
        found: dict[str, ClassDef] = {}
        for code in codes:
            code = code.strip().upper()
            for c in self.classes.values():
                if any(code.startswith(x) for x in c.atc_exclude):
                    continue
                if any(code.startswith(p) for p in c.atc_prefixes):
                    found[c.class_id] = c
        return list(found.values())

    def is_known(self, name: str) -> bool:
        return name.lower() in self.by_ingredient


def _digest(paths: Iterable[Path]) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(p.read_bytes())
    return h.hexdigest()[:12]


@cache
def _shipped() -> tuple[tuple[ClassDef, ...], tuple[KBEntry, ...], str]:
    d = data_dir()
    files = [d / "drug_classes.csv", d / "drug_map.csv", d / "other_drugs.csv"]
    classes = read_classes(files[0])
    entries = read_entries(files[1]) + read_entries(files[2], classified=False)
    return tuple(classes), tuple(entries), _digest(files)


def load_knowledge(
    extra: Iterable[tuple[Iterable[ClassDef], Iterable[KBEntry]]] = (),
) -> KnowledgeBase:
    """The shipped knowledge base merged with plugin contributions.

    :param extra: ``(classes, entries)`` pairs from ``b12drugs_knowledge`` plugins.
    :raises ValueError: an entry names a class nobody defined.
    """
    classes, entries, version = _shipped()
    all_classes = {c.class_id: c for c in classes}
    all_entries = list(entries)
    n_extra = 0
    for ext_classes, ext_entries in extra:
        for c in ext_classes:
            all_classes[c.class_id] = c
        for e in ext_entries:
            all_entries.append(e)
            n_extra += 1
    for e in all_entries:
        if e.class_id is not None and e.class_id not in all_classes:
            raise ValueError(f"knowledge entry {e.ingredient!r} names unknown class {e.class_id!r}")
    if n_extra or len(all_classes) != len(classes):
        version += f"+{len(all_classes) - len(classes)}c{n_extra}e"
    return KnowledgeBase(all_classes, all_entries, version)
