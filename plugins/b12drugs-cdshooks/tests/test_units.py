"""Pieces that need no server: robustness of the request readers, dedupe, escaping."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests
from b12drugs_cdshooks.cards import md, summary
from b12drugs_cdshooks.dedupe import DedupeCache
from b12drugs_cdshooks.hookrequest import parse_feedback, parse_request
from b12drugs_cdshooks.jsonbody import depth_exceeds, parse_json_object
from b12drugs_cdshooks.outcome import Problem
from cds_support import bound_socket
from hypothesis import given, settings
from hypothesis import strategies as st

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                 max_size=4),
    max_leaves=30,
)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_parse_json_object_only_raises_problems(raw: bytes) -> None:
    try:
        assert isinstance(parse_json_object(raw, 32), dict)
    except Problem as p:
        assert 400 <= p.status < 500


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["hook", "hookInstance", "context", "prefetch",
                                        "fhirServer", "fhirAuthorization", "x"]),
                       json_values, max_size=6),
       st.sampled_from(["order-select", "order-sign", "patient-view"]))
def test_parse_request_only_raises_problems(data: dict[str, Any], hook: str) -> None:
    try:
        parse_request(data, hook)
    except Problem as p:
        assert p.status == 400


@settings(max_examples=100, deadline=None)
@given(json_values)
def test_parse_feedback_only_raises_problems(data: Any) -> None:
    try:
        parse_feedback({"feedback": data})
    except Problem as p:
        assert p.status == 400


def _no_lone_surrogates(value: Any) -> Any:
    """``value`` with lone surrogates made U+FFFD, as the service documents (issue 15);
    written independently of the service's code: a UTF-16 round trip."""
    if isinstance(value, str):
        return value.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    if isinstance(value, list):
        return [_no_lone_surrogates(v) for v in value]
    if isinstance(value, dict):
        return {_no_lone_surrogates(k): _no_lone_surrogates(v) for k, v in value.items()}
    return value


def _stdlib_value(raw: bytes) -> Any:
    """What the standard library makes of ``raw`` (the service's judge), or the error."""
    try:
        return _no_lone_surrogates(json.loads(raw.decode("utf-8")))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        return exc


def _same_json(a: Any, b: Any) -> bool:
    """Equal as JSON values: also the type of each number (1 is not 1.0 here)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same_json(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(map(_same_json, a, b))
    if type(b) is int and not -(2**63) <= b < 2**64:  # documented: orjson reads a float
        return (type(a) is int and a == b) or (type(a) is float and a == float(b))
    return type(a) is type(b) and (a == b or (a != a and b != b))  # NaN is NaN here


json_bodies = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda v: json.dumps({"v": v}).encode()),
    # near misses: valid bodies with one byte changed or cut short
    st.tuples(json_values.map(lambda v: json.dumps({"v": v}).encode()),
              st.integers(0, 500), st.binary(min_size=0, max_size=2)).map(
        lambda t: t[0][: t[1] % (len(t[0]) + 1)] + t[2] + t[0][t[1] % (len(t[0]) + 1) + 1:]),
    st.sampled_from([b'{"a": NaN}', b'{"a": Infinity}', b'{"a": "\\ud800"}', b'{"a": 1e400}',
                     b'\xef\xbb\xbf{}', b'{"a": 1}\x00', b'{"a": "\x01"}', b' {"a": -0} ',
                     b'{"a": 1, "a": 2}', b'{"a": "\xed\xa0\x80"}']),
)


@settings(max_examples=400, deadline=None)
@given(json_bodies)
def test_fast_decoding_accepts_and_reads_as_the_standard_library(raw: bytes) -> None:
    """orjson is only a fast path: a body is accepted exactly when ``json`` accepts it,
    with the same value (an integer beyond 64 bits is read as a float and a lone
    surrogate as U+FFFD, as documented), and refused with ``json``'s reason."""
    expected = _stdlib_value(raw)
    try:
        got: Any = parse_json_object(raw, 32)
    except Problem as problem:
        got = problem
    if isinstance(expected, dict):
        assert isinstance(got, dict), got
        assert _same_json(got, expected)
    elif isinstance(expected, json.JSONDecodeError) and raw.strip():
        assert isinstance(got, Problem)
        assert f"line {expected.lineno} column {expected.colno}" in got.message
    else:
        assert isinstance(got, Problem)


def test_json_answers_are_starlettes_bytes() -> None:
    """The orjson response renders what Starlette's would, byte for byte."""
    from b12drugs_cdshooks.responses import JSONResponse
    from starlette.responses import JSONResponse as StarletteJSONResponse

    content = {"cards": [{"summary": "Metformin — B12 ↓", "indicator": "warning",
                          "detail": "**Drugs:** \"a\"\n\tb </script>", "n": [1, -2, True, None],
                          "nested": {"x": {"y": []}}}], "empty": {}}
    ours, theirs = JSONResponse(content), StarletteJSONResponse(content)
    assert ours.body == theirs.body
    assert ours.headers["content-type"] == theirs.headers["content-type"]


def _depth(value: Any) -> int:
    """Containers on the deepest path of a decoded value (the oracle)."""
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0


tricky_text = st.text(alphabet='[]{}"\\,: ab\n\u00e9', max_size=8)
nested_values = st.recursive(
    st.none() | st.integers() | tricky_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(tricky_text, inner, max_size=3),
    max_leaves=40,
)


@settings(max_examples=500, deadline=None)
@given(nested_values, st.integers(1, 12), st.booleans())
def test_depth_from_the_bytes_is_the_depth_of_the_value(value: Any, limit: int,
                                                         spaced: bool) -> None:
    """Brackets, quotes and backslashes inside strings and keys do not count."""
    document = json.dumps(value, indent=1 if spaced else None, ensure_ascii=False).encode()
    assert depth_exceeds(document, limit) == (_depth(value) > limit)


def test_depth_limit() -> None:
    chain = b"[" * 10 + b"1" + b"]" * 10
    assert not depth_exceeds(chain, 10)
    assert depth_exceeds(b"[" + chain + b"]", 10)
    # no run of openers: only the passes can tell
    zigzag = b'{"a": [[], {"b": [{}, [' + b"[],[" * 8 + b"]" * 9 + b"]}]}"
    assert depth_exceeds(zigzag, _depth(json.loads(zigzag)) - 1)
    assert not depth_exceeds(zigzag, _depth(json.loads(zigzag)))
    wide = b"[" + b",".join([b"[[[]]]"] * 1000) + b"]"
    assert not depth_exceeds(wide, 4)
    assert depth_exceeds(wide, 3)


@given(st.text(max_size=400))
def test_escaped_text_cannot_open_links_or_html(text: str) -> None:
    out = md(text)
    assert "\n" not in out
    for ch in "[]()<>`*_|!":
        assert out.count(ch) == out.count("\\" + ch)


@given(st.text(max_size=400))
def test_summary_is_under_140(text: str) -> None:
    assert len(summary(text)) < 140


def test_dedupe_cache_ttl_and_bound() -> None:
    cache = DedupeCache(ttl_seconds=10, max_entries=100)
    key = cache.key(patient="p", encounter="e", user="u", kind="k", orders=["b", "a"])
    assert key == cache.key(patient="p", encounter="e", user="u", kind="k", orders=["a", "b"])
    assert not cache.seen_before(key, now=0)
    assert cache.seen_before(key, now=5)
    assert not cache.seen_before(key, now=20)  # expired: shown again
    for i in range(300):
        cache.seen_before(cache.key(patient=str(i), encounter="", user="", kind="", orders=()))
    assert len(cache) == 100
    other = DedupeCache(ttl_seconds=10, max_entries=100)
    assert other.key(patient="p", encounter="e", user="u", kind="k", orders=[]) != cache.key(
        patient="p", encounter="e", user="u", kind="k", orders=[])  # per-process secret


def test_b12drugs_serve_runs_uvicorn(tmp_path: Path) -> None:
    """The real command line: ``b12drugs serve --insecure-no-auth`` answers discovery."""
    sock = bound_socket()
    port = sock.getsockname()[1]
    sock.close()
    config = tmp_path / "b12drugs.toml"
    config.write_text(f'[plugin.cdshooks]\naudit_db = "{tmp_path / "audit.db"}"\n')
    exe = Path(sys.executable).parent / "b12drugs"
    proc = subprocess.Popen(
        [str(exe), "serve", "--port", str(port), "--config", str(config),
         "--insecure-no-auth"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ},
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                resp = requests.get(f"http://127.0.0.1:{port}/cds-services", timeout=2)
                break
            except requests.ConnectionError:
                assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
                assert time.monotonic() < deadline
                time.sleep(0.1)
        assert resp.status_code == 200
        assert len(resp.json()["services"]) == 3
    finally:
        proc.send_signal(signal.SIGINT)
        out = proc.communicate(timeout=10)[0].decode()
    assert "WITHOUT authentication" in out


def test_b12drugs_serve_refuses_to_start_without_issuers(tmp_path: Path) -> None:
    config = tmp_path / "b12drugs.toml"
    config.write_text(json.dumps({}).replace("{}", ""))
    exe = Path(sys.executable).parent / "b12drugs"
    proc = subprocess.run([str(exe), "serve", "--config", str(config)], capture_output=True,
                          text=True, timeout=30)
    assert proc.returncode == 2
    assert "no trusted issuers" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_left_out_detail_reaches_the_engine_as_info_without_a_card() -> None:
    """CallScreener passes the FHIR adapter's info notices into the run under the hook's
    order reference (a draft without id too) and keeps them out of the cards."""
    from b12drugs_cdshooks.cards import CardBuilder
    from b12drugs_cdshooks.hookrequest import OrderSignContext
    from b12drugs_cdshooks.prefetch import PatientData
    from b12drugs_cdshooks.screening import CallScreener
    from b12drugs_cdshooks.settings import CDSHooksSettings
    from cds_support import synthea

    from b12drugs.config import Config
    from b12drugs.engines import Screener
    from b12drugs.plugins import PluginManager

    data = synthea()
    metformin = next(m for m in data["medicationRequests"]
                     if "Metformin" in m["medicationCodeableConcept"]["text"])
    res = dict(metformin, status="draft", authoredOn="2019-13-01",
               dosageInstruction=[{"doseAndRate": {"doseQuantity": {"value": 500}}}])
    res.pop("id")
    manager = PluginManager()
    run = Screener(Config(), manager)
    screener = CallScreener(lambda: run, max_orders=50)
    context = OrderSignContext(userId="Practitioner/1", patientId="danae", draftOrders={
        "resourceType": "Bundle", "entry": [{"resource": res}]})
    result = screener.screen("order-sign", context, PatientData(patient=data["patient"]))
    assert [a.class_id for a in result.alerts] == ["metformin"]
    assert result.scope == {"MedicationRequest/#0"}
    assert not result.unresolved and not result.rejected
    base = "/context/draftOrders/entry/0/resource"
    assert sorted(m.split(":")[0] for m in result.info) == [
        f"{base}/authoredOn", f"{base}/dosageInstruction/0/doseAndRate"]
    assert not any("2019-13-01" in m for m in result.info)
    builder = CardBuilder(CDSHooksSettings(), run.kb, Config())
    assert builder.unchecked_card(result) is None
    # the same notices are in the run's report (for the audit/log), under the hook's ref
    info = [n for n in run.notices if n.kind == "info"]
    assert {n.order_id for n in info} == {"MedicationRequest/#0"}


def test_prefetch_limit_marks_the_list_incomplete() -> None:
    from b12drugs_cdshooks.prefetch import PatientData, _absorb

    data = PatientData()
    meds = {"resourceType": "Bundle", "entry": [
        {"resource": {"resourceType": "MedicationRequest", "id": f"m{i}"}} for i in range(3)]}
    _absorb(data, "medications", meds, 2)
    assert len(data.medication_requests) == 2
    assert "only the first 2 of 3" in data.incomplete["medications"]


def test_audit_log_checkpoints_in_the_background(tmp_path: Path) -> None:
    """Issued cards reach the database file through the background checkpoint (inserts
    no longer checkpoint themselves), and are all there after close."""
    import uuid

    from b12drugs_cdshooks.audit import AuditLog

    path = tmp_path / "audit.sqlite3"
    audit = AuditLog(path, checkpoint_seconds=0.05)
    try:
        empty = path.stat().st_size
        for _ in range(200):
            audit.record_cards("svc", "hook-1", [(str(uuid.uuid4()), "metformin", "warning",
                                                  [str(uuid.uuid4())])])
        deadline = time.monotonic() + 5
        while path.stat().st_size <= empty and time.monotonic() < deadline:
            time.sleep(0.02)
        assert path.stat().st_size > empty  # pages copied from the WAL into the file
    finally:
        audit.close()
    import sqlite3

    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM cards").fetchone() == (200,)


def test_issued_cards_are_written_in_the_background_in_order(tmp_path: Path) -> None:
    """record_cards returns before the commit and cards are written in batches;
    feedback, export and close have the cards queued before them written first (without
    waiting for the batch), so a reader never sees feedback without its card."""
    import sqlite3
    import uuid

    from b12drugs_cdshooks.audit import AuditLog

    path = tmp_path / "audit.sqlite3"
    audit = AuditLog(path, batch_seconds=30)  # a batch waits; flushes must not
    try:
        cards = [str(uuid.uuid4()) for _ in range(50)]
        for card in cards:
            audit.record_cards("svc", "hook-1", [(card, "metformin", "warning", ["s1"])])
        with sqlite3.connect(path) as db:
            assert db.execute("SELECT count(*) FROM cards").fetchone() == (0,)  # gathering
        item = parse_feedback({"feedback": [{
            "card": cards[-1], "outcome": "overridden",
            "outcomeTimestamp": "2024-05-01T10:00:00Z"}]}).feedback
        assert audit.record_feedback("svc", item, "iss") == (1, 0)
        with sqlite3.connect(path) as db:  # another connection, as an export would use
            assert db.execute("SELECT count(*) FROM cards").fetchone() == (50,)
        [row] = list(audit.rows())
        assert (row["card_kind"], row["card_indicator"]) == ("metformin", "warning")
        audit.record_cards("svc", "hook-2", [(str(uuid.uuid4()), "ppi", "info", [])])
    finally:
        audit.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM cards").fetchone() == (51,)


def test_a_card_record_that_cannot_be_written_is_logged_not_raised(
        tmp_path: Path, caplog: Any) -> None:
    """The card was already answered: a locked or failing database costs the record (an
    error in the log, without ids) but neither the call nor later records."""
    import logging
    import sqlite3
    import uuid

    from b12drugs_cdshooks.audit import AuditLog

    path = tmp_path / "audit.sqlite3"
    audit = AuditLog(path)
    audit._db.execute("PRAGMA busy_timeout=50")
    blocker = sqlite3.connect(path, isolation_level=None)
    try:
        blocker.execute("BEGIN EXCLUSIVE")
        lost = str(uuid.uuid4())
        with caplog.at_level(logging.ERROR, logger="b12drugs.cdshooks.audit"):
            audit.record_cards("svc", "hook-1", [(lost, "metformin", "warning", [])])
            assert audit.flush()
        blocker.execute("ROLLBACK")
        assert "1 issued card record(s) could not be written: OperationalError" in caplog.text
        assert lost not in caplog.text
        kept = str(uuid.uuid4())
        audit.record_cards("svc", "hook-2", [(kept, "metformin", "warning", [])])
        assert audit.flush()
        assert blocker.execute("SELECT card_uuid FROM cards").fetchall() == [(kept,)]
    finally:
        blocker.close()
        audit.close()


def test_serve_gets_the_c_http_parser() -> None:
    """`b12drugs serve` leaves uvicorn's parser on "auto"; the plugin depends on httptools
    so that "auto" means the C parser (lower tail latency, see the README benchmark)."""
    import uvicorn
    from starlette.applications import Starlette

    config = uvicorn.Config(Starlette(), http="auto")
    config.load()
    assert config.http_protocol_class.__name__ == "HttpToolsProtocol"
