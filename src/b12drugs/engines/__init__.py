"""Engines: the order of the stages and the books of a run.

* :mod:`.record` screens what arrives one message or request at a time (HL7 v2, NCPDP,
  FHIR bundles, CDS Hooks calls): plain and low latency.
* :mod:`.columnar` screens tables (CSV, Parquet, JSON Lines) as Arrow batches: each
  distinct drug resolved once, outcomes joined back, counts and notices on columns.
* :mod:`.spark` runs the columnar engine's per-partition work on Apache Spark.

Both gather the same :class:`~b12drugs.records.PatientCase`\\ s and hand them to one
assess layer (:mod:`b12drugs.assess`), so the policy is written once.
"""

from .record import Runtime, Screener, detect_format, iter_input_files, screen, screen_inputs

__all__ = ["Runtime", "Screener", "detect_format", "iter_input_files", "screen", "screen_inputs"]
