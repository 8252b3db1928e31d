"""End to end through the engine: registration, sniffing, screening, errors."""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from hl7_helpers import DATA, config, data, orders, parse_bytes, rejections

from b12drugs.engines import Screener, screen_inputs
from b12drugs.plugins import PluginManager
from b12drugs.testing import InputFormatContract


class TestHL7v2Contract(InputFormatContract):
    format_name = "hl7v2"
    sample_path = DATA / "sample.hl7"
    min_orders = 2


def test_elderly_patient_with_neuropathy_on_metformin_gets_a_warning() -> None:
    report = screen_inputs([DATA / "rde_o11_v25.hl7"], config=config())
    (alert,) = report.alerts
    assert alert.class_id == "metformin"
    assert alert.patient_id == "EXAMPLE-HOSP:PAT1001"
    assert alert.severity == "warning"
    assert "peripheral_neuropathy" in alert.risk_factors
    assert "older_age" in alert.risk_factors
    assert alert.orders == ("ORD-1001@msg1",)


def test_same_order_without_risk_factors_stays_info() -> None:
    raw = data("rde_o11_v25.hl7").replace(b"19480315", b"19900315")
    raw = b"\r".join(s for s in raw.split(b"\r") if not s.startswith(b"DG1"))
    s = Screener(config(as_of=date(2024, 2, 1)))  # 4 weeks of metformin: not long-term
    s.feed(parse_bytes(raw), "young.hl7")
    report = s.finish()
    (alert,) = report.alerts
    assert alert.severity == "info"
    assert alert.risk_factors == ()


def test_discontinued_order_is_skipped_not_screened() -> None:
    report = screen_inputs([DATA / "rde_o25_v27.hl7"], config=config())
    assert report.counts.skipped == 1
    skipped = [n for n in report.notices if n.kind == "skipped"]
    assert skipped[0].order_id == "ORD-5005B@msg1"
    assert not any(a.class_id == "proton_pump_inhibitors" for a in report.alerts)


def test_dispense_alerts_for_ppi_and_text_only_colchicine_alerts() -> None:
    report = screen_inputs(
        [DATA / "rds_o13_v26.hl7", DATA / "omp_o09_v28.hl7", DATA / "batch.hl7"], config=config()
    )
    classes = {(a.patient_id, a.class_id) for a in report.alerts}
    assert ("EXAMPLE-HOSP:PAT2002", "proton_pump_inhibitors") in classes
    assert ("EXAMPLE-CLINIC:PAT3003", "colchicine") in classes
    assert ("EXAMPLE-HOSP:PAT6001", "metformin") in classes
    assert ("EXAMPLE-HOSP:PAT6002", "colchicine") in classes
    assert not any(p == "EXAMPLE-HOSP:PAT6003" for p, _ in classes)  # lisinopril: nothing found


def test_partly_bad_file_screens_the_good_messages_and_names_the_bad_ones() -> None:
    report = screen_inputs([DATA / "partly_bad.hl7"], config=config())
    c = report.counts
    assert (c.read, c.screened, c.rejected) == (4, 2, 2)
    assert {a.patient_id for a in report.alerts} == {"EXAMPLE-HOSP:PAT8001", "EXAMPLE-HOSP:PAT8004"}
    locations = sorted(n.location or "" for n in report.notices if n.kind == "rejected")
    assert any("message 2 (MSH-10 ABC123), RXE[1]-2" in loc for loc in locations)
    assert any("message 3, MSH[1]-1" in loc for loc in locations)
    messages = {n.message for n in report.notices if n.kind == "rejected"}
    assert "no drug code or text" in messages


def test_error_string_names_message_segment_and_field() -> None:
    recs = parse_bytes(data("partly_bad.hl7"), "partly_bad.hl7")
    rej = rejections(recs)[0]
    assert f"{rej.location}: {rej.reason}" == (
        "partly_bad.hl7:8 message 2 (MSH-10 ABC123), RXE[1]-2: no drug code or text"
    )
    assert len(orders(recs)) == 2


def test_format_is_detected_by_content_among_installed_formats() -> None:
    report = screen_inputs([DATA / "mllp_stream.hl7"], config=config(), manager=PluginManager())
    assert report.counts.read == 2
    assert {a.patient_id for a in report.alerts} == {"EXAMPLE-HOSP:PAT7001", "EXAMPLE-HOSP:PAT7002"}
