"""Faults a file can have (issue 15, files): line endings, encodings, refused DTDs.

Every case goes through the real command or the real readers, on real files, and is
checked through both engines: no row may be lost, every line number must be right.
"""

from __future__ import annotations

import codecs
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from b12drugs.cli import cli
from b12drugs.models import Order, Rejection
from b12drugs.plugins import PluginManager
from b12drugs.read import delimited
from b12drugs.testing import comparable

ROWS = [
    ("P1", "R1", "metformin 500 mg tablet", "active"),
    ("P2", "R2", "omeprazole 20 mg capsule", "active"),
    ("P3", "R3", "lisinopril 10 mg", "active"),
    ("P4", "R4", "famotidine 20 mg", "stopped"),
    ("P5", "R5", "phenytoin 100 mg", "active"),
]
HEADER = "patient_id,rx_id,drug_name,status"


def _lines(ends: list[str]) -> bytes:
    text = HEADER + ends[0]
    for row, end in zip(ROWS, ends[1:], strict=True):
        text += ",".join(row) + end
    return text.encode()


def _screen(path: Path, *args: str) -> dict[str, object]:
    result = CliRunner().invoke(cli, ["screen", str(path), "-f", "json", *args])
    assert result.exit_code == 0, result.output
    out: dict[str, object] = json.loads(result.stdout)
    return out


@pytest.mark.parametrize("ends", [
    ["\n"] * 6, ["\r\n"] * 6, ["\r"] * 6,
    ["\r\n", "\r", "\n", "\r", "\r\n", "\n"],  # files concatenated from several systems
    ["\n", "\r", "\r", "\n", "\r\n", "\r"],
])
@pytest.mark.parametrize("engine", ["record", "columnar"])
def test_every_line_ending_gives_one_record_per_line(tmp_path: Path, ends: list[str],
                                                     engine: str) -> None:
    """A bare CR used to merge rows into one rejected "row": orders lost, exit 0."""
    path = tmp_path / "mixed.csv"
    path.write_bytes(_lines(ends))
    report = _screen(path, "--engine", engine)
    assert report["counts"] == {"read": 5, "screened": 4, "skipped": 1, "rejected": 0}
    classes = sorted(a["class_id"] for a in report["alerts"])  # type: ignore[index,union-attr]
    assert classes == ["metformin", "phenytoin", "proton_pump_inhibitors"]
    [skip] = report["notices"]  # type: ignore[misc]
    assert skip["location"] == f"{path}:5"  # type: ignore[index]


def test_line_numbers_after_mixed_endings_and_a_bad_row(tmp_path: Path) -> None:
    data = (HEADER + "\r" + "P1,R1,metformin,active\r\n" + "P2,R2,bad row\r"
            + "P3,R3,omeprazole,active\n" + "P4,R4,colchicine,2024\r").encode()
    records = list(delimited.parse(__import__("io").BytesIO(data), "f.csv"))
    lines = [(type(r).__name__, r.location.line if isinstance(r, Rejection)
              else r.source.line) for r in records]  # type: ignore[union-attr]
    assert lines == [("Order", 2), ("Rejection", 3), ("Order", 4), ("Order", 5)]


WINDOWS_1252 = ("patient_id,rx_id,drug_name,status\r\n"
                "P1,R1,Metformine 500 mg comprimé,active\r\n"
                "P2,R2,Oméprazole 20 mg gélule – boîte,active\r\n"
                "P3,R3,Paracétamol 500 mg,active\r\n")


@pytest.mark.parametrize("engine", ["record", "columnar"])
def test_a_windows_1252_file_loses_no_row_and_says_so_once(tmp_path: Path, engine: str) -> None:
    """Used to be rejected row by row (exit 3)."""
    path = tmp_path / "export.csv"
    path.write_bytes(WINDOWS_1252.encode("cp1252"))
    report = _screen(path, "--engine", engine)
    assert report["counts"] == {"read": 3, "screened": 3, "skipped": 0, "rejected": 0}
    infos = [n for n in report["notices"] if n["kind"] == "info"]  # type: ignore[union-attr,index]
    assert len(infos) == 1 and "Windows-1252" in infos[0]["message"]
    assert infos[0]["source"] == str(path)


@pytest.mark.parametrize("bom,codec", [(codecs.BOM_UTF16_LE, "utf-16-le"),
                                       (codecs.BOM_UTF16_BE, "utf-16-be")])
@pytest.mark.parametrize("engine", ["record", "columnar"])
def test_utf16_with_a_byte_order_mark_is_read(tmp_path: Path, bom: bytes, codec: str,
                                              engine: str) -> None:
    """Used to be "format not recognised"."""
    path = tmp_path / "export.csv"
    path.write_bytes(bom + WINDOWS_1252.encode(codec))
    report = _screen(path, "--engine", engine)
    assert report["counts"]["read"] == 3  # type: ignore[index]
    assert any("UTF-16" in n["message"] for n in report["notices"])  # type: ignore[union-attr,index]
    drugs = {d for a in report["alerts"] for d in a["drugs"]}  # type: ignore[union-attr,index]
    assert drugs == {"metformin", "omeprazole"}


def test_utf8_with_a_byte_order_mark_needs_no_notice(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    path.write_bytes(codecs.BOM_UTF8 + WINDOWS_1252.encode())
    report = _screen(path)
    assert report["counts"]["read"] == 3  # type: ignore[index]
    assert not [n for n in report["notices"] if n["kind"] == "info"]  # type: ignore[union-attr,index]


def test_encoding_option_overrides_detection(tmp_path: Path) -> None:
    """A Latin-1 file whose bytes happen to be valid UTF-8 would read wrongly; the user
    says what it is."""
    path = tmp_path / "export.csv"
    path.write_bytes("rx_id,drug_name\nR1,Ã©\n".encode("latin-1"))
    as_utf8 = _screen(path)
    assert "'é'" in as_utf8["notices"][0]["message"]  # type: ignore[index]
    as_latin1 = _screen(path, "--encoding", "latin-1")
    assert "'Ã©'" in as_latin1["notices"][0]["message"]  # type: ignore[index]
    result = CliRunner().invoke(cli, ["screen", str(path), "--encoding", "nonesuch"])
    assert result.exit_code == 3 and "unknown encoding" in result.stderr


def test_engines_agree_on_an_export_with_every_fault(tmp_path: Path) -> None:
    from b12drugs.engines import screen_inputs

    path = tmp_path / "export.csv"
    path.write_bytes(WINDOWS_1252.encode("cp1252").replace(b"\r\n", b"\r", 2)
                     + b"P4,R4,metformin,active\n")
    manager = PluginManager(entry_points=False)
    reports = [screen_inputs([path], manager=manager, engine=e) for e in ("record", "columnar")]
    assert reports[0].counts.read == 4
    assert comparable(reports[0]) == comparable(reports[1])


BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
""" + b"".join(b' <!ENTITY e%d "&lol2;&lol2;&lol2;">\n' % i for i in range(3000)) + b"""]>
<Message><Body><NewRx>&e2999;</NewRx></Body></Message>
"""


def test_an_xml_file_refused_for_its_dtd_says_so(tmp_path: Path) -> None:
    """An entity-expansion file whose DTD fills the sniffing window used to be "format
    not recognised"; it is refused for its DTD, whichever format looks first."""
    path = tmp_path / "bomb.xml"
    path.write_bytes(BOMB)
    result = CliRunner().invoke(cli, ["screen", str(path), "-f", "json"])
    assert result.exit_code == 3
    [notice] = json.loads(result.stdout)["notices"]
    assert notice["kind"] == "rejected" and "DTD" in notice["message"]
    assert "not recognised" not in notice["message"]


def test_an_order_of_a_truncated_multibyte_file_is_kept(tmp_path: Path) -> None:
    """A cp1252 byte right before a line break, at a reader block's end."""
    path = tmp_path / "t.csv"
    body = b"".join(b"R%d,metformin caf\xe9\n" % i for i in range(20000))
    path.write_bytes(b"rx_id,drug_name\n" + body)
    records = list(delimited.parse(path.open("rb"), "t.csv"))
    orders = [r for r in records if isinstance(r, Order)]
    assert len(orders) == 20000 and orders[-1].text == "metformin café"
