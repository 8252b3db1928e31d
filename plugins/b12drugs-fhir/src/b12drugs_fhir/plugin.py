"""Hook implementations: the ``fhir`` input format and ``fhir-detectedissue`` output."""

from __future__ import annotations

from collections.abc import Iterable

from b12drugs import hookimpl
from b12drugs.records import InputFormat, OutputFormat

from . import bulk, detected_issue, reader


@hookimpl
def b12drugs_input_formats() -> Iterable[InputFormat]:
    return [
        InputFormat(
            name="fhir",
            description="FHIR R4 JSON: Bundle, single resource, NDJSON (.gz) or a Bulk Data "
            "export folder (MedicationRequest/Dispense/Statement with Patient, Condition, "
            "Observation context)",
            parse=reader.parse,
            sniff=reader.sniff,
            extensions=(".json", ".fhir.json", ".ndjson", ".ndjson.gz"),
            sniff_dir=bulk.sniff_dir,
            parse_dir=bulk.parse_dir,
        )
    ]


@hookimpl
def b12drugs_output_formats() -> Iterable[OutputFormat]:
    return [
        OutputFormat(
            name="fhir-detectedissue",
            description="FHIR R4 Bundle of DetectedIssue resources, one per alert, with an "
            "OperationOutcome for notices",
            write=detected_issue.write,
            media_type="application/fhir+json",
        )
    ]
