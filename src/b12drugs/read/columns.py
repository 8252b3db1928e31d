"""The columns of a dispensing table: canonical names and the header names they go by.

Kept apart from :mod:`b12drugs.read.tabular` (which needs polars) so that sniffing a
file's header stays cheap.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

#: Header names (case-insensitive) each canonical column is found under, first match wins.
ALIASES: dict[str, tuple[str, ...]] = {
    "patient_id": ("patient_id", "patient", "patientid", "mrn", "member_id"),
    "id": ("rx_id", "order_id", "rx_number", "prescription_id", "id"),
    "text": ("drug_name", "drug", "medication", "description", "drug_description"),
    "rxcui": ("rxcui", "rxnorm", "rxnorm_code"),
    "ndc": ("ndc", "ndc11", "ndc_code"),
    "atc": ("atc", "atc_code", "who_atc"),
    "status": ("status", "order_status"),
    "start_date": ("start_date", "fill_date", "date_written", "written_date"),
    "days_supply": ("days_supply", "days"),
    "daily_dose_mg": ("daily_dose_mg",),
    "route": ("route", "route_of_administration"),
    "birth_date": ("birth_date", "dob", "date_of_birth"),
    "sex": ("sex", "gender"),
    "diet": ("diet",),
    "conditions": ("conditions", "diagnoses"),
}
#: At least one of these must be in a table's header.
DRUG_COLUMNS = ("text", "rxcui", "ndc", "atc")
#: The columns that describe the patient rather than the order.
PATIENT_COLUMNS = ("birth_date", "sex", "diet", "conditions")
DIETS = ("omnivore", "vegetarian", "vegan")


def header_columns(header: Sequence[str],
                   aliases: Mapping[str, Sequence[str]] = ALIASES) -> dict[str, int]:
    """Canonical column -> position in ``header`` (names compared case-insensitively),
    by the header names each canonical column goes by (``aliases``)."""
    lowered = [h.strip().lower().lstrip("\ufeff") for h in header]
    found: dict[str, int] = {}
    for canon, names in aliases.items():
        for name in names:
            if name in lowered:
                found[canon] = lowered.index(name)
                break
    return found


def delimiter(line: str) -> str:
    """The separator of a header line: the most frequent of comma, semicolon, tab, pipe."""
    counts = {d: line.count(d) for d in (",", ";", "\t", "|")}
    return max(counts, key=lambda d: counts[d]) if any(counts.values()) else ","
