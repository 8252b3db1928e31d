"""Which laboratory tests are B12 status tests, by LOINC code or by name, and how a
lab's interpretation flag reads.  Shared by every reader of lab results (the CSV labs
file, FHIR Observations, HL7 v2 OBX segments).

Every LOINC code here was read in a public source, none written from memory (the
sources are listed in ``data/README.md``, "Laboratory codes"):

* 2132-9 Cobalamin (vitamin B12), serum/plasma: ARUP test 0070150, labcatalog.net
  test 4500900, and ``shared/reference/clinical.md``;
* 72160-5 Holo-transcobalamin II [Moles/volume] in Serum: healthassure.in LOINC page;
* 13964-2 Methylmalonic acid, serum/plasma: Mayo Clinic Laboratories test MMAP;
* 13965-9 Homocysteine (total), serum/plasma: ARUP test 0099869;
* 26582-7 Homocysteine: labcatalog.net test 2004575.

Folate has no code here (matched by name only).
"""

from __future__ import annotations

from typing import Literal

LabKindName = Literal["b12", "holotc", "mma", "homocysteine", "folate"]

B12_LOINC = "2132-9"
HOLOTC_LOINC = "72160-5"
MMA_LOINC = "13964-2"
HOMOCYSTEINE_LOINC = "13965-9"

#: LOINC code -> lab kind.
LAB_LOINC: dict[str, LabKindName] = {
    B12_LOINC: "b12",
    HOLOTC_LOINC: "holotc",
    MMA_LOINC: "mma",
    HOMOCYSTEINE_LOINC: "homocysteine",
    "26582-7": "homocysteine",
}

#: Words in a test's name -> lab kind, tried in order (holotranscobalamin before
#: cobalamin, "active B12" before "B12").
LAB_TEXT: tuple[tuple[str, LabKindName], ...] = (
    ("holotranscobalamin", "holotc"),
    ("holo-transcobalamin", "holotc"),
    ("holotc", "holotc"),
    ("active b12", "holotc"),
    ("methylmalon", "mma"),
    ("homocyst", "homocysteine"),
    ("cobalamin", "b12"),
    ("vitamin b12", "b12"),
    ("vitamin b 12", "b12"),
    ("vit b12", "b12"),
    ("folate", "folate"),
    ("folic acid", "folate"),
)

#: Interpretation flags (HL7 v2 table 0078 / FHIR v3 ObservationInterpretation codes
#: for low, high and normal, and plain words) -> b12drugs reading.
FLAGS: dict[str, Literal["low", "borderline", "normal", "high"]] = {
    "L": "low", "LL": "low", "LU": "low", "<": "low", "LOW": "low",
    "H": "high", "HH": "high", "HU": "high", ">": "high", "HIGH": "high",
    "N": "normal", "NORMAL": "normal",
    "BORDERLINE": "borderline",
}


def kind_of(code: str | None, text: str | None = None) -> LabKindName | None:
    """The lab kind of a test given its LOINC code and/or name, or ``None``."""
    if code:
        kind = LAB_LOINC.get(code.strip())
        if kind is not None:
            return kind
    if text:
        low = text.lower()
        for needle, kind in LAB_TEXT:
            if needle in low:
                return kind
    return None


def flag(value: str | None) -> Literal["low", "borderline", "normal", "high"] | None:
    """A lab's interpretation flag read as ``low``/``borderline``/``normal``/``high``;
    ``None`` for an empty or unknown flag (e.g. ``A`` abnormal, which gives no direction)."""
    if not value:
        return None
    return FLAGS.get(value.strip().upper())
