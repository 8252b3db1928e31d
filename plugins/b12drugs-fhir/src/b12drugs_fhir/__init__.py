"""b12drugs-fhir: the FHIR R4 adapter for b12drugs.

* input format ``fhir``: Bundles, single resources, NDJSON and Bulk Data export folders
  (:mod:`b12drugs_fhir.reader`, :mod:`b12drugs_fhir.bulk`);
* output format ``fhir-detectedissue`` (:mod:`b12drugs_fhir.detected_issue`);
* conversion functions reused by other plugins (:mod:`b12drugs_fhir.convert`).
"""

__version__ = "0.1.0"
