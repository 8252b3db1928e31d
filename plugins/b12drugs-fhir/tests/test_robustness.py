"""Property-based robustness and flat-memory streaming."""

from __future__ import annotations

import io
import json
import sys
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from b12drugs_fhir import bulk, reader
from b12drugs_fhir.convert import order_from_resource, order_records, records_from_bundle
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from b12drugs.errors import InputError
from b12drugs.models import Notice, Order, PatientContext, PatientEnd, Rejection, Skip

sys.path.insert(0, str(Path(__file__).parent))
import contextlib

import fhir_helpers as h

RECORDS = (Order, PatientContext, Rejection, Skip, PatientEnd, Notice)
FIELDS = ["resourceType", "id", "status", "subject", "medicationCodeableConcept",
          "medicationReference", "contained", "dosageInstruction", "dispenseRequest",
          "authoredOn", "coding", "code", "system", "display", "text", "reference", "entry",
          "resource", "fullUrl", "doseAndRate", "doseQuantity", "value", "unit", "timing",
          "repeat", "frequency", "period", "periodUnit", "clinicalStatus", "valueQuantity",
          "daysSupply", "birthDate", "effectivePeriod", "start", "ingredient", "sequence"]
TYPES = ["Bundle", "MedicationRequest", "MedicationDispense", "MedicationStatement",
         "Medication", "Patient", "Condition", "Observation", "Encounter"]

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=30),
                    st.sampled_from([*TYPES, "active", "unknown", "2019-01-01", "mg", "d",
                                     "Patient/p1", "#m1", h.RXNORM, h.NDC]))
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.sampled_from(FIELDS), children, max_size=6)),
    max_leaves=25)
resources = st.fixed_dictionaries(
    {"resourceType": st.sampled_from(TYPES)},
    optional={k: json_values for k in FIELDS[1:]})


def _check(records: list[Any]) -> None:
    for r in records:
        assert isinstance(r, RECORDS)
        if isinstance(r, Rejection):
            assert "internal error" not in r.reason, r


@settings(max_examples=120, deadline=None)
@given(resources)
def test_random_resources_never_raise(resource: dict[str, Any]) -> None:
    got = order_from_resource(resource, source="f", pointer="/x")
    assert isinstance(got, (Order, Rejection))
    if isinstance(got, Rejection):
        assert "internal error" not in got.reason, got
    _check(list(records_from_bundle({"resourceType": "Bundle", "entry": [
        {"resource": resource}, {"resource": h.med_request()}]})))


#: A string no message may repeat (stands for patient data in a detail field).
MARKED = st.text(max_size=8).map(lambda t: "Zq9" + t)
detail_values = st.recursive(
    st.one_of(scalars, MARKED),
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.sampled_from(FIELDS), children, max_size=6)),
    max_leaves=25)
DETAIL = ["dosageInstruction", "dispenseRequest", "authoredOn"]


def _leaves(value: Any) -> Iterator[Any]:
    if isinstance(value, dict):
        for v in value.values():
            yield from _leaves(v)
    elif isinstance(value, list):
        for v in value:
            yield from _leaves(v)
    else:
        yield value


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.sampled_from(DETAIL), detail_values, min_size=1))
def test_any_detail_of_an_identified_drug_is_screened(detail: dict[str, Any]) -> None:
    """Whatever the optional detail holds, an identifiable drug gives an Order (plus
    info notices naming pointers), never a Rejection, and no message repeats a value."""
    records = order_records(h.med_request(**detail), source="f", pointer="/entry/0/resource")
    order, *notes = records
    assert isinstance(order, Order), order
    assert order.rxnorm_codes() == (h.METFORMIN_ER[0],)
    marked = [v for v in _leaves(detail) if isinstance(v, str) and v.startswith("Zq9")]
    for n in notes:
        assert isinstance(n, Notice) and n.kind == "info"
        assert n.message.startswith("/entry/0/resource/"), n.message
        assert n.order_id == "MedicationRequest/rx1"
        assert not any(m in n.message for m in marked), n.message


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(resources, json_values), max_size=6))
def test_random_ndjson_only_input_error_or_records(docs: list[Any]) -> None:
    data = b"".join(json.dumps(d).encode() + b"\n" for d in docs)
    with contextlib.suppress(InputError):
        _check(h.parse_bytes(data))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_random_bytes_only_input_error(data: bytes) -> None:
    with contextlib.suppress(InputError):
        _check(h.parse_bytes(data))


_SAMPLE = h.SAMPLE.read_bytes()


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(_SAMPLE) - 1), st.binary(min_size=1, max_size=3)),
                min_size=1, max_size=5))
def test_mutated_sample_only_input_error(edits: list[tuple[int, bytes]]) -> None:
    data = bytearray(_SAMPLE)
    for pos, blob in edits:
        data[pos:pos + len(blob)] = blob
    with contextlib.suppress(InputError):
        _check(h.parse_bytes(bytes(data)))


def test_valid_lines_of_a_partly_bad_ndjson_are_screened() -> None:
    lines = [json.dumps(h.bundle(h.patient(f"p{i}"), h.med_request(f"r{i}", patient=f"p{i}")))
             for i in range(20)]
    lines[5] = lines[5][:40]
    lines[11] = "\x00\x01garbage"
    records = h.parse_bytes("\n".join(lines).encode())
    assert len(h.of_type(records, Order)) == 18
    assert [r.location.line for r in h.of_type(records, Rejection)] == [6, 12]


# -- flat memory ---------------------------------------------------------------------------
class _Generated(io.RawIOBase):
    """NDJSON of ``n`` patient bundles produced on the fly (the input itself is never
    held in memory, so the measurement is the parser's)."""

    def __init__(self, n: int):
        self._lines = self._make(n)
        self._buf = b""

    @staticmethod
    def _make(n: int) -> Iterator[bytes]:
        for i in range(n):
            doc = h.bundle(h.patient(f"p{i}"), h.condition("Anemia", "271737000", f"p{i}"),
                           h.med_request(f"a{i}", patient=f"p{i}"),
                           h.med_request(f"b{i}", patient=f"p{i}", status="stopped"))
            yield json.dumps(doc).encode() + b"\n"

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while len(self._buf) < len(buffer):
            nxt = next(self._lines, None)
            if nxt is None:
                break
            self._buf += nxt
        n = min(len(buffer), len(self._buf))
        buffer[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n


def _peak(run: Any) -> tuple[int, int]:
    tracemalloc.start()
    try:
        count = run()
        return tracemalloc.get_traced_memory()[1], count
    finally:
        tracemalloc.stop()


def test_ndjson_of_10000_bundles_streams_with_flat_memory() -> None:
    def run(n: int) -> Any:
        return lambda: sum(1 for _ in reader.parse(io.BufferedReader(_Generated(n)), "gen"))

    small, n_small = _peak(run(1_000))
    large, n_large = _peak(run(10_000))
    assert n_large == 10 * n_small == 40_000  # context, 2 orders, end
    # 10x the input (about 8 MB) may not cost more than a small constant over 1x
    assert large < small * 1.5 + 256 * 1024, (small, large)


def test_bulk_export_of_10000_patients_streams_with_flat_memory(tmp_path: Path) -> None:
    def export(n: int) -> Path:
        folder = tmp_path / f"e{n}"
        folder.mkdir()
        with (folder / "Patient.ndjson").open("wb") as p, \
                (folder / "MedicationRequest.ndjson").open("wb") as m, \
                (folder / "Condition.ndjson").open("wb") as c:
            for i in range(n):
                p.write(json.dumps(h.patient(f"p{i}")).encode() + b"\n")
                c.write(json.dumps(h.condition("Anemia", "271737000", f"p{i}")).encode() + b"\n")
                m.write(json.dumps(h.med_request(f"r{i}", patient=f"p{i}")).encode() + b"\n")
        return folder

    small_dir, large_dir = export(1_000), export(10_000)
    small, n_small = _peak(lambda: sum(1 for _ in bulk.parse_dir(small_dir, "s")))
    large, n_large = _peak(lambda: sum(1 for _ in bulk.parse_dir(large_dir, "l")))
    assert n_large == 10 * n_small == 30_000
    assert large < small * 1.5 + 256 * 1024, (small, large)


# -- fast paths read what the checked paths read ------------------------------------------
words = st.sampled_from(["active", "REFUTED", "Entered-In-Error", "", "x" * 256, "x" * 257,
                         "y" * 2000, "y" * 2001])
field_values = st.one_of(words, words, st.none(), st.integers(), st.booleans(),
                         st.lists(st.integers(), max_size=1))
codings = st.one_of(
    st.fixed_dictionaries({}, optional={"system": field_values, "code": field_values,
                                        "display": field_values, "extra": field_values}),
    st.fixed_dictionaries({}, optional={"system": words, "code": words, "display": words}),
    field_values)
well_typed = st.fixed_dictionaries(
    {"coding": st.lists(st.fixed_dictionaries({}, optional={"system": words, "code": words,
                                                            "display": words}), max_size=3)},
    optional={"text": words})
concepts = st.one_of(
    well_typed,
    st.fixed_dictionaries({}, optional={"text": field_values,
                                        "coding": st.one_of(st.lists(codings, max_size=3),
                                                            field_values)}),
    field_values)


def _checked_or_error(fn: Any, *args: Any) -> Any:
    from b12drugs_fhir.fields import FhirDataError

    try:
        return fn(*args)
    except FhirDataError as exc:
        return exc


@settings(max_examples=400, deadline=None)
@given(concepts)
def test_condition_codes_read_without_pointers_match_the_checked_reading(concept: Any) -> None:
    """A code the fast path reads, the checked path reads the same; what the fast path
    does not take, the checked path reads or refuses with the field's pointer."""
    from b12drugs_fhir.convert import _checked_code, _plain_code

    if not isinstance(concept, dict):
        return
    fast = _plain_code(concept)
    checked = _checked_or_error(_checked_code, concept, "/code")
    if fast is not None:
        assert fast == checked


@settings(max_examples=400, deadline=None)
@given(concepts)
def test_status_codes_read_without_pointers_match_the_checked_reading(concept: Any) -> None:
    from b12drugs_fhir.convert import _checked_status, _plain_status

    fast = _plain_status(concept)
    checked = _checked_or_error(_checked_status, {"clinicalStatus": concept},
                                "clinicalStatus", "/r")
    if fast is not None:
        assert fast == checked
