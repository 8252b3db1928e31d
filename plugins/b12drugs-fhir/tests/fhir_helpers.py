"""Shared helpers for the FHIR adapter tests (not a conftest: no name clashes)."""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Iterable
from datetime import date
from pathlib import Path
from typing import Any

from b12drugs_fhir import reader

from b12drugs.config import Config, PolicyConfig
from b12drugs.records import Record

DATA = Path(__file__).parent / "data"
SYNTHEA = DATA / "synthea"
SAMPLE = DATA / "sample.json"
AS_OF = date(2026, 1, 1)
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
NDC = "http://hl7.org/fhir/sid/ndc"
#: RxNorm codes used below all come from the Synthea corpus bundles.
METFORMIN_ER = ("860975", "24 HR Metformin hydrochloride 500 MG Extended Release Oral Tablet")
B12_INJECTION = ("2001499", "Vitamin B 12 5 MG/ML Injectable Solution")
METHOTREXATE = ("105586", "Methotrexate 10 MG Oral Tablet")


def config() -> Config:
    return Config(policy=PolicyConfig(as_of=AS_OF))


def synthea(name: str) -> Path:
    """The copied Synthea bundle whose file name starts with ``name``."""
    (path,) = SYNTHEA.glob(f"{name}*")
    return path


def load(path: Path) -> dict[str, Any]:
    data = path.read_bytes()
    if path.suffix == ".gz":
        data = gzip.decompress(data)
    return json.loads(data)  # type: ignore[no-any-return]


def parse_bytes(data: bytes, source: str = "test.json") -> list[Record]:
    return list(reader.parse(io.BytesIO(data), source))


def parse_doc(doc: object, source: str = "test.json") -> list[Record]:
    return parse_bytes(json.dumps(doc).encode(), source)


def ndjson(docs: Iterable[object]) -> bytes:
    return b"".join(json.dumps(d).encode() + b"\n" for d in docs)


def med_request(
    rid: str = "rx1",
    *,
    code: tuple[str, str] | None = METFORMIN_ER,
    status: str = "active",
    patient: str | None = "p1",
    **extra: Any,
) -> dict[str, Any]:
    res: dict[str, Any] = {"resourceType": "MedicationRequest", "id": rid, "status": status,
                           "intent": "order"}
    if code is not None:
        res["medicationCodeableConcept"] = {
            "coding": [{"system": RXNORM, "code": code[0], "display": code[1]}],
            "text": code[1],
        }
    if patient is not None:
        res["subject"] = {"reference": f"Patient/{patient}"}
    res.update(extra)
    return res


def patient(pid: str = "p1", birth: str = "1950-02-01", gender: str = "female") -> dict[str, Any]:
    return {"resourceType": "Patient", "id": pid, "birthDate": birth, "gender": gender}


def condition(text: str, code: str | None = None, pid: str = "p1", status: str = "active",
              system: str = "http://snomed.info/sct") -> dict[str, Any]:
    cc: dict[str, Any] = {"text": text}
    if code:
        cc["coding"] = [{"system": system, "code": code, "display": text}]
    return {
        "resourceType": "Condition",
        "clinicalStatus": {"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
            "code": status}]},
        "code": cc,
        "subject": {"reference": f"Patient/{pid}"},
    }


def bundle(*resources: dict[str, Any], kind: str = "collection") -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": kind,
            "entry": [{"resource": r} for r in resources]}


def of_type(records: Iterable[Record], cls: type) -> list[Any]:
    return [r for r in records if isinstance(r, cls)]
