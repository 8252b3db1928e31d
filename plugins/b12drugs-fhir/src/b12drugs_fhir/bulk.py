"""FHIR Bulk Data export folders: population-size input with flat memory.

A Bulk Data export is a folder of NDJSON files, one resource type per file
(``Patient.ndjson``, ``MedicationRequest.ndjson``, ``MedicationRequest.000.ndjson``,
``Observation_2.ndjson.gz`` ...).  Orders must be screened together with their patient's
context, but the files are per type, not per patient.  So:

1. each relevant file is streamed **once**; every line is parsed with :mod:`json` and
   only the fields the conversion needs are written to a temporary SQLite file
   (Medication resources by ``Medication/<id>``; Patient, Condition, B12-related
   Observation and medication resources by patient id);
2. the SQLite rows are then read back **patient by patient** (one indexed, sorted
   cursor) and each patient yields a PatientContext, its orders and a PatientEnd.

Python memory stays flat: it holds one patient at a time plus a bounded cache of
Medication resources; SQLite pages live on disk (its page cache is bounded).

What is read: files named for Patient, Condition, Observation, Medication,
MedicationRequest, MedicationDispense and MedicationStatement, and NDJSON files whose
name names no resource type (routed by each line's ``resourceType``).  NDJSON files of
other types (Encounter, Claim ...) carry no medication and are not opened.  Observation
lines mentioning none of the B12-related terms/codes are not parsed at all (the
biggest file of a typical export).  Files that are not NDJSON are reported as Skips so
that nothing in the folder is ignored silently.  Patients without any medication record
have nothing to screen and are passed over.
"""

from __future__ import annotations

import gzip
import itertools
import json
import re
import sqlite3
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

from pydantic import ValidationError

from b12drugs.models import Condition, LabResult, PatientContext, PatientEnd, Rejection, Skip
from b12drugs.records import Record

from .convert import (
    LAB_LOINC,
    MEDICATION_TYPES,
    FhirDataError,
    _patient_facts,
    _patient_of,
    _rejection,
    _Where,
    condition_from_resource,
    lab_from_observation,
    order_records,
)
from .fields import MAX_SHORT, json_type
from .reader import _loc, ndjson_lines

CONTEXT_TYPES = ("Patient", "Condition", "Observation")
RELEVANT_TYPES = frozenset({"Medication", *CONTEXT_TYPES, *MEDICATION_TYPES})
_NDJSON = re.compile(r"\.ndjson(\.gz)?$", re.IGNORECASE)
_TYPE_TOKEN = re.compile(r"^[A-Z][A-Za-z]{2,63}$")
_LAB_HINT = re.compile(
    ("(?i)cobalamin|b ?12|methylmalon|homocyst|folate|folic|transcobalamin|holotc|"
     + "|".join(re.escape(code) for code in LAB_LOINC)).encode()
)

#: Fields kept per resource type (everything the converters read).
_KEEP = {
    "Patient": ("resourceType", "id", "birthDate", "gender"),
    "Condition": ("resourceType", "id", "clinicalStatus", "verificationStatus", "code"),
    "Observation": (
        "resourceType", "id", "status", "code", "valueQuantity", "valueString",
        "effectiveDateTime", "effectiveInstant", "effectivePeriod", "issued",
        "interpretation", "referenceRange",
    ),
    "Medication": ("resourceType", "id", "code", "ingredient"),
    "Order": (
        "resourceType", "id", "status", "doNotPerform", "subject", "patient",
        "medicationCodeableConcept", "medicationReference", "medication", "contained",
        "dosageInstruction", "dosage", "dispenseRequest", "authoredOn", "effectiveDateTime",
        "effectivePeriod", "dateAsserted", "whenHandedOver", "whenPrepared", "daysSupply",
    ),
}
_KIND = {"Patient": 0, "Condition": 1, "Observation": 2}
_ORDER_KIND = 3
_BATCH = 2000
_MED_CACHE = 4096


def declared_type(name: str) -> str | None:
    """The resource type a Bulk Data file name announces (``MedicationRequest.000.ndjson``
    -> ``MedicationRequest``), or ``None``."""
    stem = _NDJSON.sub("", name)
    for token in re.split(r"[.\-_ ]", stem):
        if _TYPE_TOKEN.match(token):
            return token
    return None


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


def sniff_dir(path: Path) -> float:
    """Confidence that ``path`` is a FHIR Bulk Data export folder."""
    try:
        files = [p for p in _files(path) if _NDJSON.search(p.name)]
    except OSError:
        return 0.0
    if not files:
        return 0.0
    types = {declared_type(p.name) for p in files}
    if types & MEDICATION_TYPES:
        return 0.9
    if types & RELEVANT_TYPES:
        return 0.7
    try:
        with _open(files[0]) as fh:
            head = fh.read(4096)
    except OSError:
        return 0.0
    return 0.6 if b'"resourceType"' in head else 0.0


def _open(path: Path) -> IO[bytes]:
    with path.open("rb") as probe:
        magic = probe.read(2)
    if magic == b"\x1f\x8b":
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return path.open("rb")


class _Medications(Mapping[str, Mapping[str, Any]]):
    """Medication resources by reference key, read from SQLite on demand (bounded cache)."""

    def __init__(self, db: sqlite3.Connection):
        self._db = db
        self._cache: dict[str, Mapping[str, Any] | None] = {}

    def __getitem__(self, key: str) -> Mapping[str, Any]:
        if key in self._cache:
            found = self._cache[key]
        else:
            row = self._db.execute("SELECT body FROM meds WHERE key = ?", (key,)).fetchone()
            found = json.loads(row[0]) if row else None
            if len(self._cache) >= _MED_CACHE:
                self._cache.clear()
            self._cache[key] = found
        if found is None:
            raise KeyError(key)
        return found

    def __iter__(self) -> Iterator[str]:
        return (row[0] for row in self._db.execute("SELECT key FROM meds"))

    def __len__(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM meds").fetchone()[0])


def _slim(resource: Mapping[str, Any], kind: str) -> str:
    return json.dumps({k: resource[k] for k in _KEEP[kind] if k in resource},
                      separators=(",", ":"))


def _load(
    db: sqlite3.Connection, files: list[tuple[int, Path, str]]
) -> Iterator[Record]:
    """Phase 1: stream every file once into SQLite; yield rejections of bad lines."""
    items: list[tuple[str | None, int, int, int, int, str]] = []
    meds: list[tuple[str, str]] = []
    seq = 0

    def flush() -> None:
        db.executemany("INSERT INTO items VALUES (?, ?, ?, ?, ?, ?)", items)
        db.executemany("INSERT OR REPLACE INTO meds VALUES (?, ?)", meds)
        items.clear()
        meds.clear()

    for idx, path, name in files:
        only_observations = declared_type(path.name) == "Observation"
        with _open(path) as fh:
            for item in ndjson_lines(fh, name):
                if isinstance(item, Rejection):
                    yield item
                    continue
                lineno, line = item
                if only_observations and not _LAB_HINT.search(line):
                    continue  # not a B12-related lab: not needed, not parsed
                try:
                    doc = json.loads(line)
                except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                    col = f" at column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
                    yield Rejection(location=_loc(name, lineno),
                                    reason=f"invalid JSON{col}: {getattr(exc, 'msg', exc)}")
                    continue
                except RecursionError:
                    yield Rejection(location=_loc(name, lineno), reason="JSON nested too deeply")
                    continue
                if not isinstance(doc, dict) or not isinstance(doc.get("resourceType"), str):
                    what = json_type(doc) if not isinstance(doc, dict) else "object"
                    yield Rejection(location=_loc(name, lineno),
                                    reason=f"not a FHIR resource ({what} without resourceType)")
                    continue
                rtype = doc["resourceType"]
                seq += 1
                if rtype == "Medication":
                    rid = doc.get("id")
                    if isinstance(rid, str) and 0 < len(rid) <= MAX_SHORT:
                        meds.append((f"Medication/{rid}", _slim(doc, "Medication")))
                    continue
                if rtype in MEDICATION_TYPES:
                    pid = _patient_of(doc, "", {}, [])
                    items.append((pid, _ORDER_KIND, seq, idx, lineno, _slim(doc, "Order")))
                elif rtype in _KIND:
                    if rtype == "Patient":
                        raw = doc.get("id")
                        pid = raw if isinstance(raw, str) and 0 < len(raw) <= MAX_SHORT else None
                    else:
                        pid = _patient_of(doc, "", {}, [])
                    if pid is not None:
                        items.append((pid, _KIND[rtype], seq, idx, lineno, _slim(doc, rtype)))
                if len(items) + len(meds) >= _BATCH:
                    flush()
    flush()
    db.execute("CREATE INDEX items_by_patient ON items (pid, kind, seq)")
    db.commit()


def _context_of(
    pid: str, rows: list[tuple[int, int, int, str]], names: Mapping[int, str]
) -> tuple[PatientContext | None, list[Rejection]]:
    birth = sex = None
    conds: list[Condition] = []
    labs: list[LabResult] = []
    rejections: list[Rejection] = []
    for kind, file_idx, line, body in rows:
        res = json.loads(body)
        try:
            if kind == 0:
                birth, sex = _patient_facts(res, "")
            elif kind == 1:
                c = condition_from_resource(res, "")
                if c is not None and c not in conds:
                    conds.append(c)
            else:
                lab = lab_from_observation(res, "")
                if lab is not None and lab not in labs:
                    labs.append(lab)
        except (FhirDataError, ValidationError) as exc:
            rejections.append(_rejection(_Where(names[file_idx], line, ""), exc, res))
    if not rows:
        return None, rejections
    try:
        ctx = PatientContext(id=pid, birth_date=birth, sex=sex, conditions=tuple(conds),
                             labs=tuple(labs))
    except ValidationError as exc:
        rejections.append(_rejection(_Where(names[rows[0][1]], rows[0][2], ""), exc, None))
        return None, rejections
    return ctx, rejections


def _patients(db: sqlite3.Connection, names: Mapping[int, str]) -> Iterator[Record]:
    """Phase 2: patient by patient, from one sorted cursor."""
    medications = _Medications(db)
    cursor = db.execute(
        "SELECT pid, kind, file, line, body FROM items WHERE pid IS NOT NULL "
        "ORDER BY pid, kind, seq"
    )
    for pid, rows in itertools.groupby(cursor, key=lambda r: r[0]):
        context_rows: list[tuple[int, int, int, str]] = []
        started = False
        for _, kind, file_idx, line, body in rows:
            if kind != _ORDER_KIND:
                context_rows.append((kind, file_idx, line, body))
                continue
            if not started:
                started = True
                ctx, rejections = _context_of(pid, context_rows, names)
                yield from rejections
                if ctx is not None:
                    yield ctx
            yield from order_records(json.loads(body), medications=medications,
                                     source=names[file_idx], line=line, patient_id=pid)
        if started:
            yield PatientEnd(patient_id=pid)
    for file_idx, line, body in db.execute(
        "SELECT file, line, body FROM items WHERE pid IS NULL ORDER BY seq"
    ):
        yield from order_records(json.loads(body), medications=medications,
                                 source=names[file_idx], line=line)


def parse_dir(path: Path, source: str) -> Iterator[Record]:
    """Read a Bulk Data export folder (see the module docstring)."""
    base = source or str(path)
    selected: list[tuple[int, Path, str]] = []
    for p in _files(path):
        name = f"{base.rstrip('/')}/{p.name}"
        if not _NDJSON.search(p.name):
            yield Skip(location=_loc(name, None),
                       reason="not an NDJSON file of the FHIR Bulk Data export; "
                              "screen it on its own if it holds prescriptions")
            continue
        declared = declared_type(p.name)
        if declared is not None and declared not in RELEVANT_TYPES:
            continue  # e.g. Encounter.ndjson: no medication, no patient context
        selected.append((len(selected), p, name))
    names = {idx: name for idx, _, name in selected}
    with tempfile.TemporaryDirectory(prefix="b12drugs-fhir-") as tmp:
        db = sqlite3.connect(Path(tmp) / "bulk.sqlite3")
        try:
            db.execute("PRAGMA journal_mode = OFF")
            db.execute("PRAGMA synchronous = OFF")
            db.execute("PRAGMA cache_size = -8192")  # KiB: 8 MiB page cache at most
            db.execute("CREATE TABLE meds (key TEXT PRIMARY KEY, body TEXT)")
            db.execute(
                "CREATE TABLE items (pid TEXT, kind INTEGER, seq INTEGER, file INTEGER, "
                "line INTEGER, body TEXT)"
            )
            yield from _load(db, selected)
            yield from _patients(db, names)
        finally:
            db.close()
