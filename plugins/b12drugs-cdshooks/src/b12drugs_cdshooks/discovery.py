"""The services this CDS Hooks server offers and the FHIR data each asks to prefetch.

Codes used here (never written from memory):

* LOINC 2132-9 "Cobalamin (Vitamin B12) [Mass/volume] in Serum or Plasma": serum B12,
  listed in the project's clinical reference (``clinical.md``); the code is confirmed
  by ARUP's test directory (test 0070150, component "Vitamin B12", LOINC 2132-9,
  https://ltd.aruplab.com/Tests/Pub/0070150) and the long name is the one LOINC
  publishes at https://loinc.org/2132-9/ (as quoted in public FHIR/OMOP code tables).
* LOINC 13964-2: methylmalonic acid, serum/plasma, as Mayo Clinic Laboratories' test
  MMAP reports it (order and result LOINC 13964-2,
  http://genetics.testcatalog.org/show/MMAP).  Used without a display string because
  its LOINC long name was not confirmed from a public source.
* LOINC 72160-5 (holotranscobalamin) and 13965-9 (total homocysteine): the core's
  :mod:`b12drugs.labcodes`, where each code's public source is named.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from b12drugs.labcodes import HOLOTC_LOINC, HOMOCYSTEINE_LOINC
from b12drugs.models import LOINC_SYSTEM

B12_LOINC = "2132-9"
B12_LOINC_DISPLAY = "Cobalamin (Vitamin B12) [Mass/volume] in Serum or Plasma"
MMA_LOINC = "13964-2"

#: Prefetch keys and their FHIR query templates.
PATIENT = "patient"
MEDICATIONS = "medications"
CONDITIONS = "conditions"
LABS = "labs"

PREFETCH: dict[str, str] = {
    PATIENT: "Patient/{{context.patientId}}",
    MEDICATIONS: (
        "MedicationRequest?patient={{context.patientId}}&status=active"
        "&_include=MedicationRequest:medication"
    ),
    CONDITIONS: "Condition?patient={{context.patientId}}&clinical-status=active",
    LABS: (
        "Observation?patient={{context.patientId}}"
        f"&code={LOINC_SYSTEM}|{B12_LOINC},{LOINC_SYSTEM}|{HOLOTC_LOINC},"
        f"{LOINC_SYSTEM}|{MMA_LOINC},{LOINC_SYSTEM}|{HOMOCYSTEINE_LOINC}"
        "&_sort=-date&_count=20"
    ),
}


@dataclass(frozen=True)
class Service:
    """One CDS service: its id (URL segment), hook, title and description."""

    id: str
    hook: str
    title: str
    description: str

    def discovery(self) -> dict[str, Any]:
        return {
            "hook": self.hook,
            "id": self.id,
            "title": self.title,
            "description": self.description,
            "prefetch": dict(PREFETCH),
        }


SERVICES: tuple[Service, ...] = (
    Service(
        id="b12drugs-order-select",
        hook="order-select",
        title="Vitamin B12-lowering drugs (order select)",
        description=(
            "Checks the newly selected medication orders for drugs that lower vitamin B12, "
            "in the light of the other draft orders, the current medications and the "
            "patient's risk factors and recent B12 results."
        ),
    ),
    Service(
        id="b12drugs-order-sign",
        hook="order-sign",
        title="Vitamin B12-lowering drugs (order sign)",
        description=(
            "Checks every draft medication order about to be signed for drugs that lower "
            "vitamin B12, together with the current medications and patient context."
        ),
    ),
    Service(
        id="b12drugs-patient-view",
        hook="patient-view",
        title="Vitamin B12-lowering drugs (medication review)",
        description=(
            "Reviews the patient's active medication list for drugs that lower vitamin B12 "
            "and suggests B12 monitoring where the patient's risk warrants it."
        ),
    ),
)

BY_ID: dict[str, Service] = {s.id: s for s in SERVICES}


def discovery_document() -> dict[str, Any]:
    return {"services": [s.discovery() for s in SERVICES]}
