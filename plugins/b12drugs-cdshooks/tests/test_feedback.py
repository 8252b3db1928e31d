"""Feedback round trip: card -> feedback over HTTP -> SQLite audit log -> export."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from cds_support import Service, bundle, draft, full_prefetch, hook_request, load, synthea
from click.testing import CliRunner

from b12drugs.cli import cli

SIGN = "/cds-services/b12drugs-order-sign"
FEEDBACK = "/cds-services/b12drugs-order-sign/feedback"


def _card(service: Service) -> dict[str, Any]:
    data = synthea()
    metformin = next(m for m in data["medicationRequests"]
                     if "Metformin" in m["medicationCodeableConcept"]["text"])
    context = {"userId": "Practitioner/dr-1", "patientId": "danae",
               "draftOrders": bundle([draft(metformin, "rx-m")])}
    others = [m for m in data["medicationRequests"] if m is not metformin]
    resp = service.post(SIGN, hook_request("order-sign", context, full_prefetch(data, others)))
    return resp.json()["cards"][0]  # type: ignore[no-any-return]


def _rows(db: Path, card: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(
            "SELECT outcome, accepted_suggestions, override_code, override_display, user_comment,"
            " issuer FROM feedback WHERE card_uuid = ? ORDER BY id", (card,)).fetchall()


def test_accepted_feedback_round_trip_is_idempotent(service: Service) -> None:
    card = _card(service)
    suggestion = card["suggestions"][0]["uuid"]
    body = {"feedback": [{"card": card["uuid"], "outcome": "accepted",
                          "acceptedSuggestions": [{"id": suggestion}],
                          "outcomeTimestamp": "2024-05-01T10:00:00Z"}]}
    first = service.post(FEEDBACK, body)
    assert first.status_code == 200, first.text
    assert first.json() == {"received": 1, "stored": 1, "duplicates": 0}
    again = service.post(FEEDBACK, body)  # the client retries: no second row
    assert again.json() == {"received": 1, "stored": 0, "duplicates": 1}
    rows = _rows(service.audit_db, card["uuid"])
    assert rows == [("accepted", json.dumps([suggestion]), None, None, None,
                     "https://ehr.example.org")]


def test_overridden_with_reason_from_card(service: Service) -> None:
    card = _card(service)
    reason = card["overrideReasons"][1]
    body = {"feedback": [{"card": card["uuid"], "outcome": "overridden",
                          "overrideReason": {"reason": reason, "userComment": "on IM B12"},
                          "outcomeTimestamp": "2024-05-01T10:05:00+02:00"}]}
    assert service.post(FEEDBACK, body).json()["stored"] == 1
    assert _rows(service.audit_db, card["uuid"]) == [
        ("overridden", "[]", reason["code"], reason["display"], "on IM B12",
         "https://ehr.example.org")]


def test_spec_feedback_examples_are_accepted(service: Service) -> None:
    examples = load("spec_feedback.json")
    for key in ("accepted", "overridden"):
        resp = service.post(FEEDBACK, examples[key])
        assert resp.status_code == 200, resp.text
        assert resp.json()["received"] == 1


def test_same_card_overridden_later_is_a_new_row(service: Service) -> None:
    card = _card(service)
    for ts in ("2024-05-01T10:00:00Z", "2024-05-02T10:00:00Z", "2024-05-02T10:00:00Z"):
        service.post(FEEDBACK, {"feedback": [{"card": card["uuid"], "outcome": "overridden",
                                              "outcomeTimestamp": ts}]})
    assert len(_rows(service.audit_db, card["uuid"])) == 2


@pytest.mark.parametrize("item,needle", [
    ({"card": "c", "outcome": "accepted", "outcomeTimestamp": "2024-05-01T10:00:00Z"},
     "acceptedSuggestions"),
    ({"card": "c", "outcome": "ignored", "outcomeTimestamp": "2024-05-01T10:00:00Z"}, "outcome"),
    ({"card": "c", "outcome": "overridden", "outcomeTimestamp": "yesterday"}, "outcomeTimestamp"),
])
def test_invalid_feedback_is_400(service: Service, item: dict[str, Any], needle: str) -> None:
    resp = service.post(FEEDBACK, {"feedback": [item]})
    assert resp.status_code == 400
    assert needle in resp.json()["issue"][0]["diagnostics"]


def test_audit_log_is_append_only(service: Service) -> None:
    _card(service)
    service.post(FEEDBACK, {"feedback": [{"card": "x-append", "outcome": "overridden",
                                          "outcomeTimestamp": "2024-01-01T00:00:00Z"}]})
    with sqlite3.connect(service.audit_db) as conn:
        for statement in ("UPDATE feedback SET outcome = 'accepted'", "DELETE FROM feedback",
                          "DELETE FROM cards"):
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                conn.execute(statement)


def test_audit_export_cli_csv_and_json(service: Service, tmp_path: Path) -> None:
    card = _card(service)
    body = {"feedback": [{"card": card["uuid"], "outcome": "accepted",
                          "acceptedSuggestions": [{"id": card["suggestions"][0]["uuid"]}],
                          "outcomeTimestamp": "2024-06-01T08:00:00Z"}]}
    service.post(FEEDBACK, body)
    runner = CliRunner()
    result = runner.invoke(cli, ["audit", "export", "--format", "json", "--db",
                                 str(service.audit_db)])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    mine = [r for r in rows if r["card_uuid"] == card["uuid"]]
    assert len(mine) == 1
    assert mine[0]["card_kind"] == "metformin" and mine[0]["card_indicator"] == "warning"
    assert mine[0]["accepted_suggestions"] == [card["suggestions"][0]["uuid"]]

    out = tmp_path / "audit.csv"
    result = runner.invoke(cli, ["audit", "export", "--db", str(service.audit_db),
                                 "-o", str(out)])
    assert result.exit_code == 0, result.output
    reader = list(csv.DictReader(io.StringIO(out.read_text("utf-8"))))
    assert any(r["card_uuid"] == card["uuid"] and r["outcome"] == "accepted" for r in reader)
    assert len(reader) == len(rows)


def test_audit_export_missing_db_is_an_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["audit", "export", "--db", str(tmp_path / "no.db")])
    assert result.exit_code == 3
    assert "does not exist" in result.output


def test_serve_command_is_attached() -> None:
    result = CliRunner().invoke(cli, ["serve", "--help"])
    assert result.exit_code == 0
    assert "--insecure-no-auth" in result.output and "--port" in result.output
