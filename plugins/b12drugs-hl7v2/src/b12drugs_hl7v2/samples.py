"""Synthetic HL7 v2 pharmacy messages for demos, tests and benchmarks.

No real patient is described.  RxNorm codes come from the project's verified lists
(``shared/reference/verified_products.csv``: 861007 metformin hydrochloride 500 MG Oral
Tablet, 198051 omeprazole 20 MG Delayed Release Oral Capsule, 197541 colchicine 0.6 MG
Oral Tablet).  NDCs use the labeler code ``99999``, which is not assigned to a real
labeler here: they are deliberately fake and exercise NDC parsing only.  The SNOMED CT
code 368581000119106 (neuropathy due to type 2 diabetes mellitus) is the one used in the
Synthea test corpus.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

FAKE_NDC_LABELER = "99999"


@dataclass(frozen=True)
class Drug:
    give_code: str  # an HL7 CWE value, e.g. "861007^metformin ...^RXNORM"
    amount: str = ""
    units: str = ""


METFORMIN = Drug("861007^metformin hydrochloride 500 MG Oral Tablet^RXNORM", "500", "mg")
OMEPRAZOLE = Drug(
    "99999-0001-01^omeprazole 20 mg DR capsule^NDC^198051^Omeprazole 20 MG Delayed Release "
    "Oral Capsule^RXNORM",
    "20",
    "mg",
)
COLCHICINE_TEXT = Drug("^colchicine 0.6 mg tablet", "0.6", "mg")
LISINOPRIL_TEXT = Drug("^lisinopril 10 mg tablet", "10", "mg")
NEUROPATHY_DG1 = "368581000119106^Neuropathy due to type 2 diabetes mellitus^SCT"


def rde_o11(
    control_id: str,
    patient_id: str,
    drug: Drug = METFORMIN,
    *,
    birth: str = "19480315",
    sex: str = "F",
    version: str = "2.5",
    order_control: str = "NW",
    placer: str = "ORD1",
    frequency: str = "BID",
    start: str = "20240105",
    diagnoses: tuple[str, ...] = (),
    sep: str = "\r",
) -> str:
    """An RDE^O11 pharmacy encoded order with one RXE (and optional DG1s)."""
    segs = [
        f"MSH|^~\\&|PHARM|EXAMPLE-HOSP|B12DRUGS|EXAMPLE-HOSP|20240105120000||RDE^O11^RDE_O11|"
        f"{control_id}|P|{version}",
        f"PID|1||{patient_id}^^^EXAMPLE-HOSP^MR||Example^Patient||{birth}|{sex}",
    ]
    segs += [f"DG1|{k}||{dx}" for k, dx in enumerate(diagnoses, start=1)]
    segs += [
        f"ORC|{order_control}|{placer}|||||||{start}0900||||||{start}",
        f"RXE|^{frequency}^^{start}|{drug.give_code}|{drug.amount}||{drug.units}^^UCUM|TAB"
        f"|||60|TAB|3||||RX-{placer}",
        "RXR|PO^oral^HL70162",
    ]
    return sep.join(segs) + sep


def rds_o13(
    control_id: str, patient_id: str, drug: Drug = OMEPRAZOLE, *, version: str = "2.6"
) -> str:
    """An RDS^O13 dispense with ORC, RXE and RXD."""
    return (
        "\r".join(
            [
                f"MSH|^~\\&|PHARM|EXAMPLE-HOSP|B12DRUGS|EXAMPLE-HOSP|20240210||RDS^O13^RDS_O13|"
                f"{control_id}|P|{version}",
                f"PID|1||{patient_id}^^^EXAMPLE-HOSP^MR||Example^Dispense||19700101|M",
                "ORC|RE|ORD77|FIL77||CM",
                f"RXE|^QD^^20240210|{drug.give_code}|{drug.amount}||{drug.units}",
                f"RXD|1|{drug.give_code}|20240210|30|CAP||RX77",
            ]
        )
        + "\r"
    )


def omp_o09(
    control_id: str, patient_id: str, drug: Drug = COLCHICINE_TEXT, *, version: str = "2.8"
) -> str:
    """An OMP^O09 pharmacy order with TQ1 and RXO."""
    return (
        "\r".join(
            [
                f"MSH|^~\\&|EHR|EXAMPLE-CLINIC|PHARM|EXAMPLE-HOSP|20240301||OMP^O09^OMP_O09|"
                f"{control_id}|P|{version}",
                f"PID|1||{patient_id}^^^EXAMPLE-CLINIC^MR||Example^Order||1962|F",
                "ORC|NW|ORD9",
                "TQ1|1||QD|||30^d|20240301|20240330",
                f"RXO|{drug.give_code}|{drug.amount}||{drug.units}",
            ]
        )
        + "\r"
    )


def synthetic_stream(count: int, *, mllp: bool = False) -> Iterator[bytes]:
    """``count`` varied messages (RDE/RDS/OMP, several drugs) as bytes, for load tests."""
    drugs = (METFORMIN, OMEPRAZOLE, COLCHICINE_TEXT, LISINOPRIL_TEXT)
    for i in range(count):
        kind = i % 4
        cid = f"MSG{i:07d}"
        pid = f"P{i % 5000:05d}"
        if kind == 0:
            text = rde_o11(cid, pid, drugs[i % len(drugs)], placer=f"ORD{i}")
        elif kind == 1:
            text = rds_o13(cid, pid)
        elif kind == 2:
            text = omp_o09(cid, pid)
        else:
            text = rde_o11(
                cid,
                pid,
                LISINOPRIL_TEXT,
                placer=f"ORD{i}",
                version="2.3",
                diagnoses=(NEUROPATHY_DG1,),
            )
        data = text.encode("ascii")
        yield b"\x0b" + data + b"\x1c\r" if mllp else data
