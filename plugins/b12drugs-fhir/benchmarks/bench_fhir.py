"""Throughput of the FHIR reader (parser only, no screening).

Measures, as the median of ``--runs`` runs:

* full Synthea bundles (1-1.5 MB, every resource type): ms per bundle, bundles/s and
  resources/s (all entries, medication or not), with the standard-library ``json``
  hot path, and for comparison ``fhir.resources`` (R4B) validating the same Bundle;
* NDJSON: the reduced Synthea bundles one per line, repeated to ``--ndjson`` lines:
  bundles/s and resources/s;
* a Bulk Data export folder of ``--patients`` patients (Patient, Condition,
  MedicationRequest files; through the temporary SQLite): resources/s.

Usage::

    python plugins/b12drugs-fhir/benchmarks/bench_fhir.py [--runs 5] [--corpus DIR]
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from b12drugs_fhir import bulk, reader

HERE = Path(__file__).resolve().parent
TEST_DATA = HERE.parent / "tests" / "data" / "synthea"
DEFAULT_CORPUS = Path("/work/shared/corpus")


def _median(fn: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _full_bundles(corpus: Path) -> list[bytes]:
    found = sorted((corpus / "synthea-r4-full").glob("*.json"))
    if found:
        return [p.read_bytes() for p in found]
    return [gzip.decompress((TEST_DATA / "full_Alfonso_Dietrich.json.gz").read_bytes())]


def _reduced(corpus: Path) -> list[bytes]:
    found = sorted((corpus / "synthea-r4").glob("*.json")) or sorted(TEST_DATA.glob("*.json"))
    return [json.dumps(json.loads(p.read_bytes()), separators=(",", ":")).encode()
            for p in found]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument("--ndjson", type=int, default=2000, help="bundles in the NDJSON file")
    ap.add_argument("--patients", type=int, default=5000, help="patients in the bulk export")
    args = ap.parse_args()

    print(f"runs per figure: {args.runs} (median)")
    for data in _full_bundles(args.corpus):
        n_res = len(json.loads(data)["entry"])

        def parse(data: bytes = data) -> list[object]:
            return list(reader.parse(io.BytesIO(data), "bench"))

        t = _median(parse, args.runs)
        print(f"full bundle {len(data) / 1e6:.2f} MB, {n_res} resources: json hot path "
              f"{t * 1000:.1f} ms ({1 / t:.0f} bundles/s, {n_res / t:,.0f} resources/s)")
        try:
            from fhir.resources.R4B.bundle import Bundle
        except ImportError:
            continue

        def validate(data: bytes = data) -> object:
            return Bundle.model_validate_json(data)

        tv = _median(validate, max(1, args.runs // 2))
        print(f"    fhir.resources R4B Bundle.model_validate_json: {tv * 1000:.0f} ms "
              f"({tv / t:.0f}x the json hot path)")

    lines = _reduced(args.corpus)
    n_res_per = [len(json.loads(x)["entry"]) for x in lines]
    body = b"".join(lines[i % len(lines)] + b"\n" for i in range(args.ndjson))
    n_resources = sum(n_res_per[i % len(lines)] for i in range(args.ndjson))
    t = _median(lambda: sum(1 for _ in reader.parse(io.BytesIO(body), "bench")), args.runs)
    print(f"NDJSON {args.ndjson} reduced Synthea bundles ({len(body) / 1e6:.1f} MB, "
          f"{n_resources} resources): {t:.2f} s ({args.ndjson / t:,.0f} bundles/s, "
          f"{n_resources / t:,.0f} resources/s)")

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        with (folder / "Patient.ndjson").open("w") as p, \
                (folder / "Condition.ndjson").open("w") as c, \
                (folder / "MedicationRequest.ndjson").open("w") as m:
            for i in range(args.patients):
                p.write(json.dumps({"resourceType": "Patient", "id": f"p{i}",
                                    "birthDate": "1950-01-01"}) + "\n")
                c.write(json.dumps({"resourceType": "Condition", "code": {"text": "Anemia"},
                                    "subject": {"reference": f"Patient/p{i}"}}) + "\n")
                for k in range(2):
                    m.write(json.dumps({
                        "resourceType": "MedicationRequest", "id": f"r{i}-{k}",
                        "status": "active", "subject": {"reference": f"Patient/p{i}"},
                        "medicationCodeableConcept": {"coding": [{
                            "system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                            "code": "860975"}]}}) + "\n")
        n = args.patients * 4
        t = _median(lambda: sum(1 for _ in bulk.parse_dir(folder, "bench")), args.runs)
        print(f"bulk export {args.patients} patients ({n} resources): {t:.2f} s "
              f"({n / t:,.0f} resources/s, {args.patients / t:,.0f} patients/s)")


if __name__ == "__main__":
    main()
