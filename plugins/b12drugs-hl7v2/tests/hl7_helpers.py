"""Helpers shared by the hl7v2 plugin tests (not a conftest: no name clashes).

Test modules import it after putting this folder on ``sys.path``.  Codes used in the
samples: RxNorm 861007, 198051, 197541, 11248 from the project's verified lists; NDCs
with labeler 99999 are deliberately fake; SNOMED CT 368581000119106 is the diabetic
neuropathy code of the Synthea corpus.
"""

from __future__ import annotations

import io
from datetime import date
from pathlib import Path
from typing import Any

from b12drugs_hl7v2.reader import parse

from b12drugs.config import Config, PolicyConfig
from b12drugs.models import Order, PatientContext, PatientEnd, Rejection, Skip

DATA = Path(__file__).parent / "data"
AS_OF = date(2025, 1, 1)


def data(name: str) -> bytes:
    return (DATA / name).read_bytes()


def parse_bytes(raw: bytes, source: str = "test.hl7") -> list[Any]:
    return list(parse(io.BytesIO(raw), source))


def orders(records: list[Any]) -> list[Order]:
    return [r for r in records if isinstance(r, Order)]


def rejections(records: list[Any]) -> list[Rejection]:
    return [r for r in records if isinstance(r, Rejection)]


def skips(records: list[Any]) -> list[Skip]:
    return [r for r in records if isinstance(r, Skip)]


def patients(records: list[Any]) -> list[PatientContext]:
    return [r for r in records if isinstance(r, PatientContext)]


def ends(records: list[Any]) -> list[PatientEnd]:
    return [r for r in records if isinstance(r, PatientEnd)]


def config(as_of: date = AS_OF, **policy: Any) -> Config:
    return Config(policy=PolicyConfig(as_of=as_of, **policy))


def message(
    control_id: str = "C1",
    *,
    msg_type: str = "RDE^O11^RDE_O11",
    version: str = "2.5",
    pid: str = "PID|1||PAT1^^^HOSP^MR||Example^Test||19480315|F",
    body: tuple[str, ...] = (
        "ORC|NW|ORD1",
        "RXE|^QD|861007^metformin hydrochloride 500 MG Oral Tablet^RXNORM|500||mg",
    ),
    sep: str = "\r",
) -> str:
    """One message as text (segments ended by ``sep``)."""
    segs = [f"MSH|^~\\&|PHARM|HOSP|B12|HOSP|20240101||{msg_type}|{control_id}|P|{version}"]
    if pid:
        segs.append(pid)
    segs += list(body)
    return sep.join(segs) + sep
