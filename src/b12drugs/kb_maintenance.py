"""Knowledge-base maintenance: check ``data/drug_map.csv`` against RxNorm, propose additions.

The knowledge base is reviewed clinical content, so these tools only *report*:

* :func:`verify` checks every RxCUI of ``drug_map.csv`` and ``other_drugs.csv`` against a
  :class:`~b12drugs.resolve.source.ConceptSource` (RxNav or the local index): does the
  code exist, is it active (or what was it remapped to), is it an ingredient (``IN``;
  ``PIN``/``MIN`` are noted), does its RxNorm name match the row's ingredient name?
  Its ATC column is checked too (:func:`check_atc`): is each code a well-formed level-5
  WHO ATC code in a group of the ATC listing, does a class row carry a code inside its
  class (and a row of ``other_drugs.csv`` none), and does the source's ATC for the
  row's RxCUI agree?
* :func:`refresh` lists the members of each alert class's ATC prefixes (minus its
  exclusions) that the knowledge base lacks, as rows in the ``drug_map.csv`` layout with
  evidence and reference left empty for the reviewer and a provenance note, and renders
  them as a unified diff against ``drug_map.csv``.

Neither ever writes ``drug_map.csv``: the CLI prints the diff, or writes the proposed
file to a *new* path the user names.
"""

from __future__ import annotations

import csv
import difflib
import io
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .errors import SourceUnavailable
from .knowledge import KBEntry, KnowledgeBase, data_dir, read_classes, read_entries
from .resolve.local_index import normalize_name
from .resolve.source import Concept, ConceptSource

KB_FILES = ("drug_map.csv", "other_drugs.csv")

OK = "OK"
NOT_FOUND = "NOT FOUND"
INACTIVE = "INACTIVE"
NAME_MISMATCH = "NAME MISMATCH"
TTY = "TTY"
NO_RXCUI = "NO RXCUI"
UNAVAILABLE = "UNAVAILABLE"


def load_kb_dir(path: str | os.PathLike[str]) -> KnowledgeBase:
    """A knowledge base read from a folder holding ``drug_classes.csv``,
    ``drug_map.csv`` and (optionally) ``other_drugs.csv``; for reviewing a copy."""
    d = Path(path)
    classes = read_classes(d / "drug_classes.csv")
    entries = read_entries(d / "drug_map.csv")
    if (d / "other_drugs.csv").is_file():
        entries += read_entries(d / "other_drugs.csv", classified=False)
    return KnowledgeBase({c.class_id: c for c in classes}, entries, version=f"dir:{d}")


def _source_label(source: ConceptSource) -> str:
    try:
        version = source.data_version()
    except SourceUnavailable:
        version = None
    return f"{source.name} {version}" if version else source.name


# --------------------------------------------------------------------------- verify


@dataclass(frozen=True)
class RowCheck:
    """The verdict on one knowledge-base row."""

    where: str
    ingredient: str
    class_id: str | None
    rxcui: str | None
    status: str
    detail: str = ""
    finding: bool = False
    suggestion: str | None = None

    def render(self) -> str:
        mark = "!" if self.finding else " "
        code = f" ({self.rxcui})" if self.rxcui else ""
        text = f"{mark} {self.status:<13} {self.where:<22} {self.ingredient}{code}"
        return f"{text}: {self.detail}" if self.detail else text


@dataclass
class VerifyReport:
    """All row verdicts; ``findings`` are the rows a reviewer must look at.

    ``atc`` holds the ATC-column verdicts (only rows with something to say)."""

    source: str
    rows: list[RowCheck] = field(default_factory=list)
    atc: list[RowCheck] = field(default_factory=list)
    atc_codes: int = 0

    @property
    def findings(self) -> list[RowCheck]:
        return [r for r in (*self.rows, *self.atc) if r.finding]

    @property
    def exit_code(self) -> int:
        return 1 if self.findings else 0

    def render(self) -> str:
        out = [f"# kb verify against {self.source}", "# '!' marks a finding to review"]
        out += [r.render() for r in self.rows]
        notes = sum(1 for r in self.rows if not r.finding and r.status != OK)
        out.append(
            f"# {len(self.rows)} rows checked: "
            f"{sum(1 for r in self.rows if r.status == OK)} OK, "
            f"{sum(1 for r in self.rows if r.finding)} findings, {notes} notes"
        )
        out += [r.render() for r in self.atc]
        out.append(
            f"# ATC column: {self.atc_codes} codes checked, "
            f"{sum(1 for r in self.atc if r.finding)} findings, "
            f"{sum(1 for r in self.atc if not r.finding)} notes"
        )
        return "\n".join(out)

    def as_dict(self) -> dict[str, object]:
        return {
            "source": self.source,
            "rows": [r.__dict__ for r in self.rows],
            "atc": [r.__dict__ for r in self.atc],
            "findings": len(self.findings),
        }


def _kb_rows(kb: KnowledgeBase | str | os.PathLike[str]) -> list[tuple[str, KBEntry]]:
    """Rows with their ``file:line`` (line numbers only when reading files)."""
    if isinstance(kb, KnowledgeBase):
        return [(f"entry {i + 1}", e) for i, e in enumerate(kb.entries)]
    d = Path(kb)
    out: list[tuple[str, KBEntry]] = []
    for name in KB_FILES:
        path = d / name
        if not path.is_file():
            continue
        entries = read_entries(path, classified=name == "drug_map.csv")
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            lines = [reader.line_num for _ in reader]
        out += [(f"{name}:{line}", e) for line, e in zip(lines, entries, strict=True)]
    return out


def _names_match(entry: KBEntry, concept: Concept, source: ConceptSource) -> bool:
    wanted = normalize_name(concept.name)
    if wanted in {normalize_name(n) for n in (entry.ingredient, *entry.synonyms)}:
        return True
    # the row's name may be an RxNorm synonym of the same concept
    try:
        return concept.rxcui in source.rxcuis_by_name(entry.ingredient)
    except SourceUnavailable:
        return False


def check_entry(where: str, entry: KBEntry, source: ConceptSource) -> RowCheck:
    """Verify one row; never raises for a source failure (the row says UNAVAILABLE)."""

    def row(status: str, detail: str = "", finding: bool = False,
            suggestion: str | None = None) -> RowCheck:
        return RowCheck(where, entry.ingredient, entry.class_id, entry.rxcui, status, detail,
                        finding, suggestion)

    if not entry.rxcui:
        try:
            found = source.rxcuis_by_name(entry.ingredient)
        except SourceUnavailable as exc:
            return row(UNAVAILABLE, detail=str(exc), finding=True)
        hint = f"{source.name} knows the name as RxCUI {', '.join(found)}" if found else ""
        return row(NO_RXCUI, detail=f"matched by name only. {hint}".strip(),
                        suggestion=found[0] if len(found) == 1 else None)
    try:
        concept = source.properties(entry.rxcui)
        if concept is None or concept.active is False:
            hist = source.history(entry.rxcui)
            status = (hist.status if hist else "Unknown").lower()
            if concept is None and status in ("unknown", ""):
                return row(NOT_FOUND, finding=True,
                                detail=f"{source.name} does not know this RxCUI")
            if hist and hist.remapped_to:
                to = ", ".join(f"{c.rxcui} {c.name}".strip() for c in hist.remapped_to)
                return row(INACTIVE, finding=True,
                                detail=f"{hist.status} -> remapped to {to}",
                                suggestion=hist.remapped_to[0].rxcui)
            return row(INACTIVE, finding=True,
                            detail=f"{hist.status if hist else 'inactive'}, no successor")
        if not _names_match(entry, concept, source):
            return row(NAME_MISMATCH, finding=True,
                            detail=f"{entry.ingredient!r} vs {source.name} {concept.name!r}")
        if concept.tty and concept.tty != "IN":
            if concept.tty in ("PIN", "MIN"):
                return row(f"{TTY} {concept.tty}",
                                detail=f"{concept.name!r} is a {concept.tty}, noted")
            return row(f"{TTY} {concept.tty}", finding=True,
                            detail=f"{concept.name!r} is a {concept.tty}, expected IN")
        return row(OK)
    except SourceUnavailable as exc:
        return row(UNAVAILABLE, detail=str(exc), finding=True)


ATC_MALFORMED = "ATC MALFORMED"
ATC_UNKNOWN = "ATC UNKNOWN"
ATC_CLASS = "ATC CLASS"
ATC_SOURCE = "ATC SOURCE"


def check_atc(where: str, entry: KBEntry, kb: KnowledgeBase,
              source: ConceptSource | None) -> list[RowCheck]:
    """ATC verdicts for one row (empty when all is well).

    * every code is a level-5 WHO ATC code (``A10BA02``) whose groups are in the listing
      (``data/atc_groups.csv``);
    * a class row has at least one code inside its class's prefixes (its eye, skin and
      combination codes may lie outside); a row of ``other_drugs.csv`` has none;
    * when the source (local index, RxNav) reports ATC codes for the row's RxCUI, they
      share at least one code with the row's (a note, with the source's codes, if not).
    """
    from .resolve.atc import ATC_CODE, known_groups

    groups = known_groups()

    def row(status: str, detail: str, finding: bool, suggestion: str | None = None) -> RowCheck:
        return RowCheck(where, entry.ingredient, entry.class_id, entry.rxcui, status, detail,
                        finding, suggestion)

    out: list[RowCheck] = []
    codes: list[str] = []
    for code in (c.strip().upper() for c in entry.atc):
        if len(code) != 7 or not ATC_CODE.match(code):
            out.append(row(ATC_MALFORMED, f"{code!r} is not a level-5 WHO ATC code", True))
        elif not {code[:1], code[:3], code[:4]} <= groups:
            out.append(row(ATC_UNKNOWN, f"{code}: its group is not in the ATC listing", True))
        else:
            codes.append(code)
    if codes:
        in_class = [c.class_id for c in kb.classes_for_atc(codes)]
        if entry.class_id is None and in_class:
            out.append(row(ATC_CLASS, f"a drug without a class, but its ATC "
                           f"{', '.join(codes)} lies in {', '.join(in_class)}", True))
        cdef = kb.classes.get(entry.class_id or "")
        if cdef is not None and cdef.atc_prefixes and entry.class_id not in in_class:
            out.append(row(ATC_CLASS, f"no code inside {entry.class_id} "
                           f"({';'.join(cdef.atc_prefixes)}): {', '.join(codes)}", False))
    if source is not None and entry.rxcui and codes:
        try:
            theirs = sorted({a.class_id for a in source.atc_classes(entry.rxcui)
                             if len(a.class_id) == 7})
        except SourceUnavailable as exc:
            return [*out, row(UNAVAILABLE, f"ATC not checked: {exc}", True)]
        if theirs and not set(theirs) & set(codes):
            out.append(row(ATC_SOURCE, f"{source.name} gives {', '.join(theirs)}, the row "
                           f"{', '.join(codes)}", False, suggestion=theirs[0]))
    return out


def verify(kb: KnowledgeBase | str | os.PathLike[str], source: ConceptSource) -> VerifyReport:
    """Check every row of the knowledge base against ``source``.

    :param kb: a folder with ``drug_map.csv`` (and ``other_drugs.csv``), or a loaded
        :class:`~b12drugs.knowledge.KnowledgeBase` (rows are then numbered, not lined).
    """
    report = VerifyReport(_source_label(source))
    loaded = kb if isinstance(kb, KnowledgeBase) else load_kb_dir(kb)
    for where, entry in _kb_rows(kb):
        report.rows.append(check_entry(where, entry, source))
        report.atc.extend(check_atc(where, entry, loaded, source))
        report.atc_codes += len(entry.atc)
    return report


# --------------------------------------------------------------------------- refresh


@dataclass(frozen=True)
class Proposal:
    """A concept an ATC class holds and the knowledge base lacks."""

    class_id: str
    prefix: str
    concept: Concept
    atc: tuple[str, ...]
    provenance: str
    source: str = ""


@dataclass
class RefreshReport:
    """Proposed rows and the unified diff that adds them to ``drug_map.csv``."""

    source: str
    proposals: list[Proposal]
    diff: str
    proposed_text: str
    notes: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return 1 if self.proposals else 0


def _known(kb: KnowledgeBase) -> tuple[set[str], set[str]]:
    rxcuis = {e.rxcui for e in kb.entries if e.rxcui}
    names = {normalize_name(n) for e in kb.entries for n in (e.ingredient, *e.synonyms)}
    return rxcuis, names


def _members(source: ConceptSource, prefix: str) -> list[Concept]:
    return [c for c in source.class_members(prefix, "IN") if c.active is not False]


def _proposal_row(header: Sequence[str], p: Proposal) -> dict[str, str]:
    values = {
        "class_id": p.class_id,
        "ingredient": p.concept.name.lower(),
        "rxcui": p.concept.rxcui,
        "atc": ";".join(p.atc),
        "evidence": "",
        "reference": "",
    }
    note_col = next((c for c in ("notes", "note") if c in header), None)
    if note_col:
        values[note_col] = p.provenance
    for col in ("rxcui_source", "atc_source"):  # provenance columns of the shipped file
        values[col] = p.source
    return {c: values.get(c, "") for c in header}


def refresh(
    kb: KnowledgeBase | str | os.PathLike[str],
    source: ConceptSource,
    classes: Iterable[str] | None = None,
    *,
    drug_map: str | os.PathLike[str] | None = None,
) -> RefreshReport:
    """Propose ``drug_map.csv`` rows for ATC class members the knowledge base lacks.

    For each alert class (or those named in ``classes``): the members of each of its
    ``atc_prefixes`` minus the members of its ``atc_exclude`` prefixes, minus every
    ingredient the knowledge base already lists (by RxCUI or name, in any file).
    New rows go right after the class's last row, so the diff reads in context.

    :raises KeyError: a class named in ``classes`` does not exist.
    """
    if isinstance(kb, KnowledgeBase):
        base = kb
        map_path = Path(drug_map) if drug_map else data_dir() / "drug_map.csv"
    else:
        base = load_kb_dir(kb)
        map_path = Path(drug_map) if drug_map else Path(kb) / "drug_map.csv"
    wanted = list(classes) if classes else [c.class_id for c in base.alert_classes()]
    for cid in wanted:
        if cid not in base.classes:
            raise KeyError(cid)
    label = _source_label(source)
    known_rx, known_names = _known(base)
    proposals: list[Proposal] = []
    notes: list[str] = []
    for cid in wanted:
        cdef = base.classes[cid]
        if not cdef.atc_prefixes:
            notes.append(f"class {cid} has no ATC prefixes; nothing to propose")
            continue
        excluded: set[str] = set()
        for ex in cdef.atc_exclude:
            excluded |= {c.rxcui for c in _members(source, ex)}
        for prefix in cdef.atc_prefixes:
            for concept in _members(source, prefix):
                if concept.rxcui in excluded or concept.rxcui in known_rx:
                    continue
                if normalize_name(concept.name) in known_names:
                    continue
                codes = tuple(sorted({
                    a.class_id for a in source.atc_classes(concept.rxcui)
                    if a.class_id.startswith(prefix)
                    and not any(a.class_id.startswith(x) for x in cdef.atc_exclude)
                })) or (prefix,)
                proposals.append(Proposal(
                    cid, prefix, concept, codes,
                    f"proposed from ATC {prefix} members, {label}; reviewer: set evidence "
                    "and reference",
                    label,
                ))
                known_rx.add(concept.rxcui)
                known_names.add(normalize_name(concept.name))
    text = map_path.read_text(encoding="utf-8")
    proposed = _insert_rows(text, proposals)
    diff = "".join(difflib.unified_diff(
        text.splitlines(keepends=True), proposed.splitlines(keepends=True),
        fromfile=f"{map_path.name}", tofile=f"{map_path.name} (proposed)",
    ))
    return RefreshReport(label, proposals, diff, proposed, notes)


def _insert_rows(text: str, proposals: Sequence[Proposal]) -> str:
    """``drug_map.csv`` with the proposed rows after each class's last row."""
    lines = text.splitlines(keepends=True)
    if not lines:
        return text
    if not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    header = next(csv.reader([lines[0]]))
    last_of: dict[str, int] = {}
    for i, line in enumerate(lines[1:], start=1):
        row = next(csv.reader([line]), [])
        if row and "class_id" in header and len(row) > header.index("class_id"):
            last_of[row[header.index("class_id")]] = i
    inserts: dict[int, list[str]] = {}
    for p in proposals:
        buf = io.StringIO()
        csv.DictWriter(buf, fieldnames=header, lineterminator="\n").writerow(
            _proposal_row(header, p)
        )
        at = last_of.get(p.class_id, len(lines) - 1)
        inserts.setdefault(at, []).append(buf.getvalue())
    out: list[str] = []
    for i, line in enumerate(lines):
        out.append(line)
        out.extend(inserts.get(i, []))
    return "".join(out)
