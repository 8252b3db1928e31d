"""End to end through b12drugs.engines.screen_inputs, plus the input-format contract."""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path

import pytest

from b12drugs.config import Config, PolicyConfig
from b12drugs.engines import screen_inputs
from b12drugs.models import Report
from b12drugs.plugins import PluginManager
from b12drugs.testing import InputFormatContract

sys.path.insert(0, str(Path(__file__).parent))
import ncpdp_helpers as h

DATA = Path(__file__).parent / "data"
AS_OF = Config(policy=PolicyConfig(as_of=date(2026, 1, 1)))


class TestNcpdpContract(InputFormatContract):
    format_name = "ncpdp"
    sample_path = DATA / "newrx.xml"


def screen_xml(tmp_path: Path, xml: str, name: str = "in.xml") -> Report:
    path = tmp_path / name
    path.write_text(xml, encoding="utf-8")
    return screen_inputs([path], config=AS_OF, manager=PluginManager(strict=False))


def test_sample_newrx_is_detected_and_alerts(tmp_path: Path) -> None:
    report = screen_inputs([DATA / "newrx.xml"], config=AS_OF,
                           manager=PluginManager(strict=False))
    (alert,) = report.alerts
    assert alert.class_id == "metformin" and alert.severity == "warning"
    assert alert.patient_id == "0000002:MRN-1001" and alert.orders == ("NEWRX-0001",)
    assert "peripheral_neuropathy" in alert.risk_factors
    assert report.counts.read == report.counts.screened == 1


def test_metformin_for_a_70_year_old_with_neuropathy_is_a_warning(tmp_path: Path) -> None:
    xml = h.message_2017071(
        "MET-1", ndc=None, patient=h.patient_2017071("P70", birth_date="1955-06-01"),
        diagnoses=((h.NEUROPATHY_SNOMED, "LD", "Neuropathy due to type 2 diabetes"),))
    (alert,) = screen_xml(tmp_path, xml).alerts
    assert (alert.class_id, alert.severity) == ("metformin", "warning")


def test_omeprazole_for_a_young_patient_is_info(tmp_path: Path) -> None:
    xml = h.message_106("OME-1", birth_date="1990-01-01")
    report = screen_xml(tmp_path, xml)
    (alert,) = report.alerts
    assert (alert.class_id, alert.severity) == ("proton_pump_inhibitors", "info")


def test_lisinopril_gives_no_alert_and_no_notice(tmp_path: Path) -> None:
    xml = h.message_2017071("LIS-1", ndc=None, db_code=None, strength=None,
                            description="lisinopril 10 MG Oral Tablet")
    report = screen_xml(tmp_path, xml)
    assert report.alerts == () and report.notices == ()
    assert report.counts.screened == 1


def test_cancelled_order_is_skipped_and_counted(tmp_path: Path) -> None:
    report = screen_xml(tmp_path, h.concatenated([
        h.message_2017071("CAN-1", transaction="CancelRx"), h.message_106("OME-2")]))
    assert report.counts.read == 2 and report.counts.skipped == 1
    assert [a.class_id for a in report.alerts] == ["proton_pump_inhibitors"]
    assert any(n.kind == "skipped" and "CancelRx" in n.message for n in report.notices)


def test_diagnosis_escalates_severity(tmp_path: Path) -> None:
    young = h.patient_2017071("PY", birth_date="1990-01-01")
    plain = screen_xml(tmp_path, h.message_2017071("A", patient=young), "a.xml")
    with_dx = screen_xml(tmp_path, h.message_2017071(
        "B", patient=young, diagnoses=((h.NEUROPATHY_SNOMED, "LD", None),)), "b.xml")
    assert plain.alerts[0].severity == "info"
    assert with_dx.alerts[0].severity == "warning"


def test_partly_bad_batch_still_screens_valid_messages(tmp_path: Path) -> None:
    broken = h.message_2017071("BAD").replace("</DrugDescription>", "</Oops>")
    report = screen_xml(tmp_path, h.container([
        h.message_2017071("M1", patient=h.patient_2017071("P1")),
        broken,
        h.message_106("M3"),
    ]))
    assert report.counts.read == 3 and report.counts.rejected == 1
    assert sorted(a.class_id for a in report.alerts) == ["metformin", "proton_pump_inhibitors"]
    (rej,) = [n for n in report.notices if n.kind == "rejected"]
    assert "message 2 /Message/Body/NewRx/MedicationPrescribed/DrugDescription" in (
        (rej.location or "") + rej.message)


@pytest.mark.parametrize("attack", ["<!DOCTYPE Message [<!ENTITY a 'b'>]>"])
def test_single_attacked_file_is_an_input_error_notice_not_a_crash(
    tmp_path: Path, attack: str
) -> None:
    xml = '<?xml version="1.0"?>\n' + attack + "\n" + h.strip_declaration(h.message_2017071())
    report = screen_xml(tmp_path, xml)
    assert report.alerts == ()
    assert report.counts.rejected >= 1
    assert any("DTD" in n.message for n in report.notices)


def test_two_medications_of_one_newrx_both_alert(tmp_path: Path) -> None:
    meds = (h.medication_2017071(),
            h.medication_2017071(db_code=h.OMEPRAZOLE_SCD, ndc=None,
                                 description="Omeprazole 20 MG Delayed Release Oral Capsule"))
    report = screen_xml(tmp_path, h.message_2017071("TWO", medications=meds))
    assert report.counts.read == report.counts.screened == 2
    assert {a.class_id for a in report.alerts} >= {"metformin", "proton_pump_inhibitors"}
