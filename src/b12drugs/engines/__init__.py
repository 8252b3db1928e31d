"""Engines: the order of the stages and the books of a run.

* :mod:`.record` screens what arrives one message or request at a time (HL7 v2, NCPDP,
  FHIR bundles, CDS Hooks calls): plain and low latency.
* :mod:`.columnar` screens tables (CSV, Parquet, JSON Lines) as batches of columns:
  each distinct drug resolved once, outcomes joined back, counts and notices on columns,
  rows held by patient on disk when they outgrow memory (:mod:`.spill`).
* :mod:`b12drugs.spark` runs the columnar engine's per-partition work on Apache Spark.

Both gather the same :class:`~b12drugs.records.PatientCase`\\ s and hand them to one
assess layer (:mod:`b12drugs.assess.case`), so the policy is written once; they keep
their books alike (:mod:`.books`) and share one :class:`.runtime.Runtime`.
:mod:`.inputs` picks the engine for a run's inputs.
"""

from .inputs import detect_format, iter_input_files, run_inputs, screen_inputs
from .record import Screener, screen
from .runtime import Runtime

__all__ = ["Runtime", "Screener", "detect_format", "iter_input_files", "run_inputs", "screen",
           "screen_inputs"]
