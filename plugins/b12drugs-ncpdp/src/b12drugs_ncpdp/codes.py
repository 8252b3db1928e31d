"""SCRIPT code qualifiers and how they map to b12drugs code systems.

Only qualifiers whose meaning we need are mapped; every other qualifier is kept as an
"other" coding under :data:`OTHER_SYSTEM_PREFIX` + kind + qualifier, so nothing a
prescriber sent is thrown away and a vendor resolver can still use it.
"""

from __future__ import annotations

from b12drugs.models import ICD10_SYSTEMS, NDC_SYSTEM, RXNORM_SYSTEM, SNOMED_SYSTEM

#: ``ProductCode`` qualifier for a National Drug Code.
NDC_QUALIFIER = "ND"

#: ``DrugDBCode`` qualifiers naming RxNorm concepts (RxNorm term types).  SCRIPT uses
#: SCD/SBD/GPK/BPK; the other term types are accepted from senders that pass the RxNorm
#: TTY through.
RXNORM_QUALIFIERS = frozenset(
    {"SCD", "SBD", "GPK", "BPK", "SCDF", "SBDF", "SCDG", "SBDG", "SCDC", "SBDC", "MIN", "PIN", "IN"}
)

#: ``Diagnosis`` qualifiers: ABF = ICD-10-CM, LD = SNOMED CT.
DIAGNOSIS_SYSTEMS = {"ABF": ICD10_SYSTEMS[1], "LD": SNOMED_SYSTEM}

OTHER_SYSTEM_PREFIX = "urn:b12drugs:ncpdp:"

__all__ = [
    "DIAGNOSIS_SYSTEMS",
    "NDC_QUALIFIER",
    "NDC_SYSTEM",
    "OTHER_SYSTEM_PREFIX",
    "RXNORM_QUALIFIERS",
    "RXNORM_SYSTEM",
    "other_system",
]


def other_system(kind: str, qualifier: str) -> str:
    """System URI for a code we keep but do not interpret, e.g.
    ``urn:b12drugs:ncpdp:DrugDBCode:MG``."""
    return f"{OTHER_SYSTEM_PREFIX}{kind}:{qualifier or 'unqualified'}"
