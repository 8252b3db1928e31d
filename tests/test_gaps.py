"""The care-gap list (issue 14, section 2): who is due, in which order, and its JSON,
CSV and FHIR forms."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from pathlib import Path

from click.testing import CliRunner

from b12drugs import screen
from b12drugs.assess.gaps import compute_gaps, priority
from b12drugs.cli import cli
from b12drugs.config import Config, PolicyConfig
from b12drugs.emit.gaps import GAP_FORMATS, fhir_bundle
from b12drugs.models import Condition, LabResult, LastResult, Order, PatientContext

AS_OF = dt.date(2026, 11, 21)
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "dispensing.csv"


def b12(value: float, day: dt.date) -> LabResult:
    return LabResult(kind="b12", value=value, unit="pg/mL", date=day)


def population():  # type: ignore[no-untyped-def]
    young = dt.date(1990, 1, 1)
    patients = [
        # not due: normal result two months ago
        PatientContext(id="ok", birth_date=young, labs=(b12(500, dt.date(2026, 9, 1)),)),
        # overdue 100 days, no risk factor
        PatientContext(id="late", birth_date=young, labs=(b12(500, AS_OF - dt.timedelta(465)),)),
        # overdue 10 days, no risk factor
        PatientContext(id="late10", birth_date=young,
                       labs=(b12(500, AS_OF - dt.timedelta(375)),)),
        # never tested, no risk factor
        PatientContext(id="never", birth_date=young),
        # never tested, age 65+
        PatientContext(id="old", birth_date=dt.date(1940, 1, 1)),
        # neuropathy: possible sign
        PatientContext(id="neuro", birth_date=young,
                       conditions=(Condition(text="Peripheral neuropathy"),)),
        # low result: known deficiency
        PatientContext(id="low", birth_date=young, labs=(b12(120, dt.date(2026, 6, 1)),)),
        # borderline result: possible sign
        PatientContext(id="grey", birth_date=young, labs=(b12(260, dt.date(2026, 10, 1)),)),
    ]
    orders = [Order(id=f"rx-{p.id}", patient_id=p.id, text="metformin 500 mg tablet")
              for p in patients]
    orders.append(Order(id="rx-x", patient_id="nobody", text="lisinopril 10 mg"))
    return screen([*patients, *orders], config=Config(policy=PolicyConfig(as_of=AS_OF)))


def test_priority_order_and_counts() -> None:
    listed = compute_gaps(population(), AS_OF)
    assert [g.patient_id for g in listed.gaps] == [
        "low", "neuro", "grey", "old", "never", "late", "late10"]
    by_id = {g.patient_id: g for g in listed.gaps}
    assert by_id["late"].days_overdue == 100 and by_id["late10"].days_overdue == 10
    assert by_id["late"].due_date == AS_OF - dt.timedelta(100)
    assert by_id["never"].days_overdue is None and by_id["never"].due_date is None
    assert by_id["low"].last_result is not None and by_id["low"].priority == 1
    assert by_id["grey"].days_overdue == (AS_OF - dt.date(2026, 10, 1)).days
    assert "methylmalonic acid" in by_id["grey"].recommendation
    assert by_id["old"].classes == ("metformin",) and by_id["old"].drugs == ("metformin",)
    assert "older_age" in by_id["old"].risk_factors
    c = listed.counts
    assert (c.patients, c.due, c.not_due) == (8, 7, 1)
    assert (c.never_tested, c.overdue, c.borderline, c.low) == (3, 2, 1, 1)
    assert c.by_class == {"metformin": 7}


def test_priority_tiers() -> None:
    low = LastResult(kind="b12", value=100, unit="pg/mL", date=AS_OF, interpretation="low")
    assert priority(["older_age"], low) == 1
    assert priority(["pernicious_anemia"], None) == 1
    assert priority(["anemia"], None) == 2
    assert priority(["older_age"], None) == 3
    assert priority(["on_b12_therapy"], None) == 4


def test_json_has_gaps_and_counts() -> None:
    out = io.StringIO()
    GAP_FORMATS["json"].write(compute_gaps(population(), AS_OF), out)
    doc = json.loads(out.getvalue())
    assert {"gaps", "counts"} <= set(doc)
    first = doc["gaps"][0]
    assert {"patient_id", "classes", "drugs", "risk_factors", "last_result", "due_date",
            "days_overdue"} <= set(first)
    assert first["last_result"]["interpretation"] == "low"


def test_csv_rows_and_formula_cells_are_neutralised() -> None:
    report = screen([PatientContext(id="=cmd|' /C calc'!A0"),
                     Order(id="rx", patient_id="=cmd|' /C calc'!A0", text="metformin 500 mg")],
                    config=Config(policy=PolicyConfig(as_of=AS_OF)))
    out = io.StringIO()
    GAP_FORMATS["csv"].write(compute_gaps(report, AS_OF), out)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert len(rows) == 1 and rows[0]["patient_id"].startswith("'=")
    assert rows[0]["days_overdue"] == "" and rows[0]["classes"] == "metformin"


def test_fhir_bundle_is_deqm_shaped_and_self_consistent() -> None:
    bundle = fhir_bundle(compute_gaps(population(), AS_OF))
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "collection"
    urls = {e["fullUrl"]: e["resource"] for e in bundle["entry"]}
    issues = [r for r in urls.values() if r["resourceType"] == "DetectedIssue"]
    assert len(issues) == 7 and len(urls) == 14
    for issue in issues:
        ext = issue["modifierExtension"][0]
        assert ext["url"].endswith("/extension-gapStatus")
        assert ext["valueCodeableConcept"]["coding"][0]["code"] == "open-gap"
        assert issue["code"]["coding"][0]["code"] == "CAREGAP"
        evidence = issue["evidence"][0]["detail"][0]["reference"]
        assert urls[evidence]["resourceType"] == "GuidanceResponse"  # resolves in the bundle
        assert urls[evidence]["subject"] == issue["patient"]
    assert issues[0]["patient"] == {"reference": "Patient/low"}
    assert issues[0]["severity"] == "high"


def test_gaps_command_with_labs_file(tmp_path: Path) -> None:
    labs = tmp_path / "labs.csv"
    labs.write_text("patient_id,loinc,value,unit,date\nP001,2132-9,450,pg/mL,2026-09-20\n"
                    "P004,2132-9,400,pmol/L,2024-01-10\n")
    got = CliRunner().invoke(cli, ["gaps", str(EXAMPLE), str(labs), "--as-of", "2026-11-21",
                                   "-f", "json"], catch_exceptions=False)
    assert got.exit_code == 0, got.stderr
    doc = json.loads(got.stdout)
    ids = [g["patient_id"] for g in doc["gaps"]]
    assert "P001" not in ids  # normal result in September: not due
    p4 = next(g for g in doc["gaps"] if g["patient_id"] == "P004")
    assert p4["last_result"]["value"] == 541 and p4["last_result"]["unit"] == "pg/mL"
    assert p4["due_date"] == "2025-01-09" and p4["days_overdue"] == 681
    assert doc["counts"]["not_due"] == 1
    out = tmp_path / "gaps.csv"
    got = CliRunner().invoke(cli, ["gaps", str(EXAMPLE), "-f", "csv", "-o", str(out),
                                   "--as-of", "2026-11-21"], catch_exceptions=False)
    assert got.exit_code == 0 and out.read_text().startswith("priority,patient_id")


def test_gaps_command_lists_info_alerts_under_a_quiet_policy(tmp_path: Path) -> None:
    conf = tmp_path / "b.toml"
    conf.write_text('[policy]\nmin_severity = "critical"\n[policy.monitoring]\n'
                    "report_not_due = false\n")
    got = CliRunner().invoke(cli, ["gaps", str(EXAMPLE), "--config", str(conf), "-f", "json",
                                   "--as-of", "2026-11-21"], catch_exceptions=False)
    assert got.exit_code == 0
    assert "P005" in {g["patient_id"] for g in json.loads(got.stdout)["gaps"]}


def test_gaps_command_refuses_unknown_format() -> None:
    got = CliRunner().invoke(cli, ["gaps", str(EXAMPLE), "-f", "xml"])
    assert got.exit_code == 2 and "unknown gaps format" in got.output


def test_gaps_are_the_same_on_both_engines_and_as_a_page(tmp_path: Path) -> None:
    """The list runs on the engines of ``screen`` (a dispensing table and a labs file
    are both tables: the columnar engine by default)."""
    labs = tmp_path / "labs.csv"
    labs.write_text("patient_id,loinc,value,unit,date\nP001,2132-9,450,pg/mL,2026-09-20\n"
                    "P004,2132-9,400,pmol/L,2024-01-10\n")
    docs = []
    for engine in ("record", "columnar", "auto"):
        got = CliRunner().invoke(cli, ["gaps", str(EXAMPLE), str(labs), "--as-of",
                                       "2026-11-21", "-f", "json", "--engine", engine],
                                 catch_exceptions=False)
        assert got.exit_code == 0, got.stderr
        doc = json.loads(got.stdout)
        doc.pop("generated_at")
        docs.append(doc)
    assert docs[0] == docs[1] == docs[2] and docs[0]["gaps"]
    page = CliRunner().invoke(cli, ["gaps", str(EXAMPLE), str(labs), "--as-of", "2026-11-21",
                                    "-f", "html"], catch_exceptions=False)
    assert page.exit_code == 0 and page.stdout.startswith("<!DOCTYPE html>")
    assert all(g["patient_id"] in page.stdout for g in docs[0]["gaps"])
