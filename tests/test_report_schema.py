"""The JSON report is a contract: its schema is snapshot-tested.

A change to the report's shape must be deliberate: bump ``SCHEMA_VERSION`` when it is
not backwards compatible, then refresh the snapshot with
``B12DRUGS_UPDATE_SNAPSHOTS=1 pytest tests/test_report_schema.py``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from b12drugs.models import SCHEMA_VERSION, Report

SNAPSHOT = Path(__file__).parent / "snapshots" / "report_schema.json"


def current_schema() -> dict[str, object]:
    return {"schema_version": SCHEMA_VERSION, "schema": Report.model_json_schema()}


def test_report_schema_matches_snapshot() -> None:
    schema = current_schema()
    if os.environ.get("B12DRUGS_UPDATE_SNAPSHOTS") == "1":
        SNAPSHOT.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
    expected = json.loads(SNAPSHOT.read_text())
    assert schema == expected, (
        "the report schema changed: bump SCHEMA_VERSION if incompatible, then refresh the "
        "snapshot (see module docstring)"
    )


def test_report_contract_fields() -> None:
    props = Report.model_json_schema()["properties"]
    assert {"schema_version", "alerts", "notices", "counts"} <= set(props)
    alert = Report.model_json_schema()["$defs"]["Alert"]["properties"]
    for field in ("patient_id", "class_id", "severity", "summary", "detail", "orders", "drugs",
                  "risk_factors", "recommendation", "evidence", "references", "rule",
                  "monitoring"):
        assert field in alert, field
    defs = Report.model_json_schema()["$defs"]
    assert set(defs["Monitoring"]["properties"]) == {"last_result", "due", "due_date"}
    assert set(defs["LastResult"]["properties"]) == {"kind", "value", "unit", "date",
                                                     "interpretation"}
    assert defs["LastResult"]["properties"]["interpretation"]["enum"] == [
        "low", "borderline", "normal"]
    assert SCHEMA_VERSION == "1.1"
    notice = Report.model_json_schema()["$defs"]["Notice"]["properties"]
    kinds = set(notice["kind"]["enum"])
    assert {"unresolved", "skipped", "rejected", "source_unavailable"} <= kinds


def test_json_output_is_the_same_text_on_every_kind_of_stream() -> None:
    """``write_json`` hands pydantic's UTF-8 bytes straight to a UTF-8 stream's buffer
    and decodes them for any other stream: the text must be the same either way, keep
    non-ASCII names, and come after what the stream already held."""
    import io

    from b12drugs import screen
    from b12drugs.emit.outputs import report_json, write_json
    from b12drugs.models import Order

    report = screen([Order(id="rx-é", patient_id="pä", text="Glucophage 500 mg")])
    assert report.alerts
    expected = "before\n" + b"".join(report_json(report)).decode() + "\n"
    assert "rx-é" in expected
    plain = io.StringIO()
    plain.write("before\n")
    write_json(report, plain)
    assert plain.getvalue() == expected
    for encoding in ("utf-8", "UTF8", "latin-1"):
        raw = io.BytesIO()
        text = io.TextIOWrapper(raw, encoding=encoding, newline="\n")
        text.write("before\n")
        write_json(report, text)
        text.flush()
        assert raw.getvalue().decode(encoding) == expected, encoding


@pytest.mark.parametrize("chunk", [1, 2, 1000])
def test_json_report_written_in_pieces_is_the_report(chunk: int,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """``report_json`` writes alerts and notices a chunk at a time and splices them into
    the rest of the report: with lists empty, short and longer than a chunk it must be
    the report (parsed, it equals the model's dump), its other fields indented as
    pydantic writes them, and each alert and notice its compact JSON on one line."""
    from pydantic import TypeAdapter

    from b12drugs import screen
    from b12drugs.emit import outputs
    from b12drugs.models import Alert, Notice, Order

    monkeypatch.setattr(outputs, "JSON_CHUNK", chunk)
    orders = [Order(id=f"rx-{i}é", patient_id=f"p{i % 3}", text=text)
              for i, text in enumerate(["Glucophage 500 mg", "omeprazole 20 mg", "xyzzy 5 mg",
                                        "famotidine 20 mg", "Zorvanex", "nitrous oxide"])]
    full = screen(orders)
    assert len(full.alerts) >= 3 and len(full.notices) >= 2
    for report in (full, full.model_copy(update={"alerts": ()}),
                   full.model_copy(update={"notices": ()}),
                   full.model_copy(update={"alerts": (), "notices": ()})):
        text = b"".join(outputs.report_json(report))
        assert json.loads(text) == report.model_dump(mode="json")
        lines = text.split(b"\n")
        for item, adapter in [(a, TypeAdapter(Alert)) for a in report.alerts] + \
                             [(n, TypeAdapter(Notice)) for n in report.notices]:
            assert b"    " + adapter.dump_json(item) in {line.rstrip(b",") for line in lines}
        rest = report.model_copy(update={"alerts": (), "notices": ()})
        if not report.alerts and not report.notices:
            assert text == TypeAdapter(Report).dump_json(rest, indent=2)
