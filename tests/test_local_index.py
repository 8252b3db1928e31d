"""The local RxNorm index: streaming atomic import, lookups, resolver integration.

The RRF files in ``tests/data/rrf`` use the real column layout; RxCUIs below
9999900000 are verified ones, 99999xxxxx RxCUIs and labeler-99999 NDCs are fake (see
``tests/data/rrf/README.md``).
"""

from __future__ import annotations

import shutil
import sqlite3
import string
import tracemalloc
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from b12drugs.config import Config
from b12drugs.errors import InputError, SourceUnavailable
from b12drugs.models import DrugQuery
from b12drugs.resolve import index_plugin as plugin
from b12drugs.resolve.local_index import (
    LocalIndex,
    import_release,
    normalize_name,
    tmp_path_for,
)
from b12drugs.resolve.source import Concept, ConceptSource

RELEASE = Path(__file__).parent / "data" / "rrf" / "RxNorm_test_01062025"


@pytest.fixture(scope="module")
def index_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("index") / "rxnorm.sqlite"
    import_release(RELEASE, path)
    return path


@pytest.fixture
def index(index_file: Path) -> Iterator[LocalIndex]:
    ix = LocalIndex(index_file)
    yield ix
    ix.close()


def names(concepts: list[Concept]) -> list[str]:
    return [c.name for c in concepts]


# --------------------------------------------------------------------------- import


def test_import_builds_index_and_reports_odd_rows(tmp_path: Path) -> None:
    report = import_release(RELEASE, tmp_path / "ix.sqlite")
    assert report.release == "2025-01-06"
    files = {f.name: f for f in report.files}
    assert set(files) == {"RXNCONSO.RRF", "RXNREL.RRF", "RXNSAT.RRF", "RXNCUI.RRF",
                          "RXNCUICHANGES.RRF"}
    conso = files["RXNCONSO.RRF"]
    assert conso.lines == 45
    assert conso.odd == 2  # a short row and a non-numeric RXCUI
    assert conso.non_utf8 == 1  # the Latin-1 MMSL row is read with replacement
    assert files["RXNREL.RRF"].odd == 1
    assert files["RXNSAT.RRF"].odd == 1  # '12AB' is not an NDC
    assert any("RXNCONSO.RRF:44" in e for e in conso.examples)
    assert report.counts["NDCs"] == 5  # the MTHSPL NDC and the bad one are not kept
    assert report.counts["ATC codes"] == 10
    text = report.render()
    assert "2 odd rows skipped" in text and "rows/s" in text
    with LocalIndex(tmp_path / "ix.sqlite") as ix:
        assert ix.data_version() == "2025-01-06"
        assert ix.meta["has_history"] == "1"
        assert ix.meta["imported_at"]
    assert not tmp_path_for(tmp_path / "ix.sqlite").exists()


def test_import_from_zip_with_rrf_folder(tmp_path: Path) -> None:
    archive = tmp_path / "RxNorm_full_prescribe_02032025.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for f in (RELEASE / "rrf").iterdir():
            zf.write(f, f"rrf/{f.name}")
    report = import_release(archive, tmp_path / "ix.sqlite")
    assert report.release == "2025-02-03"
    with LocalIndex(tmp_path / "ix.sqlite") as ix:
        assert ix.ingredients("860975")[0].rxcui == "6809"


def test_import_from_folder_of_rrf_files_with_release_override(tmp_path: Path) -> None:
    flat = tmp_path / "files"
    shutil.copytree(RELEASE / "rrf", flat)
    report = import_release(flat, tmp_path / "ix.sqlite", release="2025-03-03")
    assert report.release == "2025-03-03"


def test_release_version_from_the_parent_of_an_rrf_folder(tmp_path: Path) -> None:
    report = import_release(RELEASE / "rrf", tmp_path / "ix.sqlite")
    assert report.release == "2025-01-06"


@given(st.lists(st.text(alphabet=string.ascii_letters + string.digits + "-,/()[] ",
                        max_size=12), max_size=6))
def test_normalised_names_ignore_case_order_and_punctuation(words: list[str]) -> None:
    key = normalize_name(" ".join(words))
    assert normalize_name(key) == key
    assert normalize_name(", ".join(reversed(words)).upper()) == key


def test_import_refuses_what_is_not_a_release(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=r"no RXNCONSO\.RRF"):
        import_release(tmp_path / "empty", tmp_path / "ix.sqlite")
    bad = tmp_path / "notazip.zip"
    bad.write_bytes(b"not a zip")
    with pytest.raises(InputError, match="not a zip"):
        import_release(bad, tmp_path / "ix.sqlite")
    assert not (tmp_path / "ix.sqlite").exists()


def test_interrupted_import_keeps_the_old_index(tmp_path: Path, index_file: Path) -> None:
    target = tmp_path / "ix.sqlite"
    shutil.copy(index_file, target)
    before = target.read_bytes()

    def interrupt(message: str) -> None:
        if "RXNREL" in message:  # half way: RXNCONSO already written to the tmp file
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        import_release(RELEASE, target, release="2099-01-01", progress=interrupt)
    assert target.read_bytes() == before
    assert not tmp_path_for(target).exists()
    with LocalIndex(target) as ix:
        assert ix.data_version() == "2025-01-06"
        assert ix.ingredients("860975")[0].name == "metformin"


def test_stale_tmp_file_from_a_killed_import_is_replaced(tmp_path: Path) -> None:
    target = tmp_path / "ix.sqlite"
    tmp_path_for(target).write_bytes(b"half-written garbage")
    import_release(RELEASE, target)
    assert not tmp_path_for(target).exists()
    with LocalIndex(target) as ix:
        assert ix.properties("6809") is not None


def test_import_streams_large_files_in_bounded_memory(tmp_path: Path) -> None:
    """200,000 RXNCONSO lines (~15 MB) import with a small Python heap peak: the file
    is never held in memory (a whole-file read alone would exceed the bound)."""
    folder = tmp_path / "big" / "rrf"
    folder.mkdir(parents=True)
    n = 200_000
    with (folder / "RXNCONSO.RRF").open("w", encoding="utf-8") as fh:
        for i in range(n):
            rxcui = 9999000000 + i
            sab, tty = ("RXNORM", "SCD") if i % 10 == 0 else ("MMSL", "GN")
            fh.write(f"{rxcui}|ENG||||||TA{i}||||{sab}|{tty}|{rxcui}|"
                     f"fake test drug number {i} 10 MG Oral Tablet||N|4096|\n")
    size = (folder / "RXNCONSO.RRF").stat().st_size
    assert size > 14_000_000
    tracemalloc.start()
    try:
        report = import_release(folder.parent, tmp_path / "big.sqlite")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert report.files[0].lines == n
    assert report.counts["concepts"] == n // 10
    assert peak < 8_000_000, f"peak Python memory {peak:,} bytes for a {size:,}-byte file"


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.binary(max_size=120), max_size=30))
def test_arbitrary_lines_never_crash_the_import(tmp_path: Path, lines: list[bytes]) -> None:
    folder = tmp_path / "fuzz" / "rrf"
    folder.mkdir(parents=True, exist_ok=True)
    body = b"\n".join(line.replace(b"\n", b" ").replace(b"\r", b" ") for line in lines)
    (folder / "RXNCONSO.RRF").write_bytes(body)
    report = import_release(folder.parent, tmp_path / "fuzz.sqlite")
    stats = report.files[0]
    assert stats.kept + stats.odd <= stats.lines
    LocalIndex(tmp_path / "fuzz.sqlite").close()


# --------------------------------------------------------------------------- lookups


def test_local_index_is_a_concept_source(index: LocalIndex) -> None:
    assert isinstance(index, ConceptSource)
    assert index.name == "local-index"


def test_properties(index: LocalIndex) -> None:
    c = index.properties("860975")
    assert c is not None
    assert (c.tty, c.active) == ("SCD", True)
    assert c.name == "24 HR metformin hydrochloride 500 MG Extended Release Oral Tablet"
    assert index.properties("1") is None
    assert index.properties("not-a-number") is None
    obsolete = index.properties("9999900006")
    assert obsolete is not None and obsolete.active is False


@pytest.mark.parametrize(
    ("rxcui", "expected"),
    [
        ("860975", ["metformin"]),  # SCD -> SCDC -> IN
        ("861007", ["metformin"]),  # SCD
        ("860977", ["metformin"]),  # SBD -> SCD / BN -> IN
        ("861008", ["metformin"]),  # SBD -> SBDC / SCD
        ("9999900003", ["metformin"]),  # GPCK contains SCD
        ("9999900004", ["metformin"]),  # BPCK contains SBD
        ("9999900002", ["metformin"]),  # BN tradename_of IN
        ("9999900001", ["metformin"]),  # PIN form_of IN
        ("9999900005", ["metformin", "omeprazole"]),  # MIN has_part INs
        ("6809", ["metformin"]),  # an IN is its own ingredient (no climbing to products)
        ("1736854", ["cisplatin"]),
        ("123456789", []),
    ],
)
def test_ingredients_walk_down_to_in(index: LocalIndex, rxcui: str, expected: list[str]) -> None:
    found = index.ingredients(rxcui)
    assert names(found) == expected
    assert all(c.tty == "IN" for c in found)


def test_inactive_concept_has_ingredients_only_through_its_history(index: LocalIndex) -> None:
    assert index.ingredients("9999900006") == []
    hist = index.history("9999900006")
    assert hist is not None and hist.status == "Obsolete"
    assert names(list(hist.ingredients)) == ["metformin"]


def test_names_exact_then_normalised(index: LocalIndex) -> None:
    assert index.rxcuis_by_name("METFORMIN") == ["6809"]
    assert index.rxcuis_by_name("CISplatin") == ["2555"]  # TMSY atom
    assert index.rxcuis_by_name("Hydrochloride, Metformin") == ["9999900001"]
    assert index.rxcuis_by_name("metformin hydrochloride 500 MG 24HR Extended Release "
                                "Oral Tablet") == ["860975"]  # SY atom
    assert index.rxcuis_by_name("old test product name") == []  # suppressed atom
    assert index.rxcuis_by_name("   ") == []
    assert normalize_name("Métformine-HCl") == "hcl metformine"


def test_ndc_lookups(index: LocalIndex) -> None:
    assert index.rxcuis_by_ndc("99999000101") == ["860975"]
    assert index.rxcuis_by_ndc("99999-0004-01") == ["1736854"]  # stored from 5-4-2
    assert index.rxcuis_by_ndc("99999000301") == []  # obsolete NDC
    info = index.ndc_status("99999000301")
    assert info is not None
    assert (info.status, info.rxcui) == ("OBSOLETE", "861008")
    active = index.ndc_status("99999000101")
    assert active is not None and active.status == "ACTIVE"
    assert index.ndc_status("99999000601") is None  # MTHSPL rows are not imported
    assert index.ndc_status("00000000000") is None


def test_history(index: LocalIndex) -> None:
    active = index.history("6809")
    assert active is not None and active.status == "Active"
    remapped = index.history("9999900010")  # RXNCUI.RRF
    assert remapped is not None and remapped.status == "Remapped"
    assert [c.rxcui for c in remapped.remapped_to] == ["6809"]
    assert names(list(remapped.ingredients)) == ["metformin"]
    changed = index.history("9999900012")  # RXNCUICHANGES.RRF
    assert changed is not None and [c.rxcui for c in changed.remapped_to] == ["2555"]
    retired = index.history("9999900011")  # retired, CUI2 == CUI1: no successor
    assert retired is not None and retired.status == "Obsolete" and not retired.remapped_to
    unknown = index.history("424242")
    assert unknown is not None and unknown.status == "Unknown"


def test_atc_classes_and_members(index: LocalIndex) -> None:
    assert [a.class_id for a in index.atc_classes("2555")] == ["L01XA01"]
    # a product gets the codes of its ingredients
    scd = index.atc_classes("860975")
    assert [(a.class_id, a.rxcui) for a in scd] == [("A10BA02", "6809")]
    assert names(index.class_members("L01XA")) == ["carboplatin", "cisplatin", "oxaliplatin"]
    l01 = names(index.class_members("l01"))
    assert "imatinib" in l01 and "methotrexate" in l01 and "metformin" not in l01
    assert index.class_members("L01", ttys="SCD") == []
    assert index.class_members("") == []
    assert index.class_members("L01%") == []


def test_not_an_index_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SourceUnavailable, match="does not exist"):
        LocalIndex(tmp_path / "missing.sqlite")
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(SourceUnavailable, match="not a b12drugs RxNorm index"):
        LocalIndex(junk)
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE meta (key TEXT, value TEXT)")
        conn.execute("INSERT INTO meta VALUES ('schema_version', '0')")
    with pytest.raises(SourceUnavailable, match="another b12drugs version"):
        LocalIndex(other)


# --------------------------------------------------------------------------- resolver


def test_resolver_plugin_record() -> None:
    (record,) = plugin.b12drugs_resolvers()
    assert (record.name, record.order) == ("rxnorm-index", 200)


def test_resolver_disabled_without_an_index(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("b12drugs.resolve.local_index.default_index_path",
                        lambda: tmp_path / "none.sqlite")
    assert plugin.make_resolver(Config()) is None
    missing = Config.model_validate({"rxnorm_index": {"path": str(tmp_path / "x.sqlite")}})
    assert plugin.make_resolver(missing) is None


def test_resolver_uses_the_default_index_when_present(
    tmp_path: Path, index_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    default = tmp_path / "rxnorm.sqlite"
    shutil.copy(index_file, default)
    monkeypatch.setattr("b12drugs.resolve.local_index.default_index_path", lambda: default)
    assert plugin.index_path(Config()) == default
    off = Config.model_validate({"rxnorm_index": {"enabled": False}})
    assert plugin.make_resolver(off) is None


def test_resolver_resolves_codes_ndcs_and_names(index_file: Path) -> None:
    config = Config.model_validate({"rxnorm_index": {"path": str(index_file)}})
    resolve = plugin.make_resolver(config)
    assert resolve is not None
    scd = DrugQuery(rxcuis=("860975",))
    ndc = DrugQuery(ndcs=("99999-0004-01",))
    old_ndc = DrugQuery(ndcs=("99999000301",))
    brand = DrugQuery(texts=("Glucophage",))
    remapped = DrugQuery(rxcuis=("9999900010",))
    unknown = DrugQuery(texts=("no such drug",))
    unknown_code = DrugQuery(rxcuis=("424242",))
    try:
        out = resolve([scd, ndc, old_ndc, brand, remapped, unknown, unknown_code])
    finally:
        resolve.close()  # type: ignore[attr-defined]
    r = out[scd]
    assert r.resolved and r.resolver == "rxnorm-index" and r.data_version == "2025-01-06"
    (ing,) = r.ingredients
    assert (ing.name, ing.rxcui, ing.method, ing.atc) == ("metformin", "6809", "local_index",
                                                          ("A10BA02",))
    assert "local-index 2025-01-06" in ing.source
    assert [i.name for i in out[ndc].ingredients] == ["cisplatin"]
    assert out[ndc].ingredients[0].atc == ("L01XA01",)
    assert [i.name for i in out[old_ndc].ingredients] == ["metformin"]
    assert [i.name for i in out[brand].ingredients] == ["metformin"]
    assert out[remapped].resolved and out[remapped].ingredients[0].rxcui == "6809"
    assert out[remapped].ingredients[0].confidence < 1.0
    assert out[unknown].resolved is False  # left for the next resolver
    assert out[unknown_code].resolved is False
    assert "unknown to the local RxNorm index" in out[unknown_code].notices[0].message


# --------------------------------------------------------------------------- engine


def test_engine_screens_product_codes_through_the_index(index_file: Path) -> None:
    """Codes the knowledge base cannot know (a pack RxCUI, an NDC) alert through the
    index; without the index the same orders are unresolved notices, not silence."""
    from b12drugs.engines import screen
    from b12drugs.models import NDC_SYSTEM, RXNORM_SYSTEM, Coding, Order
    from b12drugs.plugins import PluginManager

    orders = [
        Order(id="rx1", patient_id="p1",
              codings=(Coding(system=RXNORM_SYSTEM, code="9999900004"),)),
        Order(id="rx2", patient_id="p1",
              codings=(Coding(system=NDC_SYSTEM, code="99999-0004-01"),)),
    ]
    pm = PluginManager(strict=True, entry_points=False)
    with_index = Config.model_validate({"rxnorm_index": {"path": str(index_file)}})
    report = screen(orders, config=with_index, manager=pm)
    assert sorted(a.class_id for a in report.alerts) == ["cytostatics", "metformin"]
    assert not [n for n in report.notices if n.kind == "unresolved"]

    no_index = Config.model_validate(
        {"rxnorm_index": {"path": str(index_file.parent / "none.sqlite")}})
    report = screen(orders, config=no_index, manager=PluginManager(strict=True,
                                                                    entry_points=False))
    assert report.alerts == ()
    assert {n.order_id for n in report.notices if n.kind == "unresolved"} == {"rx1", "rx2"}
