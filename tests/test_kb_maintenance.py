"""Knowledge-base maintenance and the ``rxnorm`` / ``kb`` commands, against a tiny
index built from the test RRF release and a knowledge-base fixture with known faults:
a misspelt name, an inactive (remapped) code, a retired code, an unknown code, a PIN,
a row without RxCUI, and L01 members the knowledge base lacks."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from b12drugs.kb_maintenance import load_kb_dir, refresh, verify
from b12drugs.resolve.index_plugin import classify_input, kb, rxnorm
from b12drugs.resolve.local_index import LocalIndex, import_release

RELEASE = Path(__file__).parent / "data" / "rrf" / "RxNorm_test_01062025"

CLASSES = """\
class_id,label,role,default_severity,evidence,mechanism,monitoring,atc_prefixes,atc_exclude,long_term_days,min_daily_dose_mg,references
metformin,Metformin,alert,info,strong,ileal uptake,B12 every 2-3 years,A10BA02,,120,,Aroda 2016
proton_pump_inhibitors,Proton pump inhibitors,alert,info,moderate,acid,,A02BC,,365,,Lam 2013
cytostatics,Cytostatics,alert,info,low,malabsorption,,L01,L01E;L01F,,,
phenytoin,Phenytoin,alert,info,low,folate,,N03AB02,,,,
"""

DRUG_MAP = """\
class_id,ingredient,rxcui,atc,synonyms,brands,evidence,reference,notes
metformin,metformin,6809,A10BA02,,Glucophage,strong,Aroda 2016,
metformin,metformin (retired code),9999900010,A10BA02,,,strong,Aroda 2016,
metformin,metformin hydrochloride,9999900001,,,,strong,Aroda 2016,
proton_pump_inhibitors,omeprazol,7646,,,,moderate,Lam 2013,
proton_pump_inhibitors,pantoprazole,40790,,,,moderate,Lam 2013,
cytostatics,cisplatin,2555,L01XA01,,,low,Belghith 2015,
cytostatics,methotrexate,6851,L01BA01,,,low,Belghith 2015,
cytostatics,cyclophosphamide,9999900011,L01AA01,,,low,Belghith 2015,
cytostatics,made-up drug,9999999999,,,,low,none,
phenytoin,phenytoin,,N03AB02,,,low,Belghith 2015,
"""

OTHER = """\
ingredient,rxcui,category
imatinib,282388,kinase inhibitor
"""


@pytest.fixture(scope="module")
def index_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("index") / "rxnorm.sqlite"
    import_release(RELEASE, path)
    return path


@pytest.fixture
def kb_dir(tmp_path: Path) -> Path:
    d = tmp_path / "kb"
    d.mkdir()
    (d / "drug_classes.csv").write_text(CLASSES, encoding="utf-8")
    (d / "drug_map.csv").write_text(DRUG_MAP, encoding="utf-8")
    (d / "other_drugs.csv").write_text(OTHER, encoding="utf-8")
    return d


@pytest.fixture
def clean_kb(tmp_path: Path) -> Path:
    d = tmp_path / "clean"
    d.mkdir()
    (d / "drug_classes.csv").write_text(CLASSES, encoding="utf-8")
    rows = [line for line in DRUG_MAP.splitlines()
            if line.startswith(("class_id", "metformin,metformin,", "cytostatics,cisplatin"))]
    (d / "drug_map.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return d


# --------------------------------------------------------------------------- verify


def test_verify_reports_each_kind_of_problem(kb_dir: Path, index_file: Path) -> None:
    with LocalIndex(index_file) as source:
        report = verify(kb_dir, source)
    by_name = {r.ingredient: r for r in report.rows}
    assert by_name["metformin"].status == "OK"
    assert by_name["pantoprazole"].status == "OK"
    assert by_name["imatinib"].status == "OK"  # other_drugs.csv is checked too
    assert by_name["imatinib"].where == "other_drugs.csv:2"
    mism = by_name["omeprazol"]
    assert (mism.status, mism.finding, mism.where) == ("NAME MISMATCH", True, "drug_map.csv:5")
    assert "'omeprazol' vs local-index 'omeprazole'" in mism.detail
    remapped = by_name["metformin (retired code)"]
    assert remapped.status == "INACTIVE" and remapped.suggestion == "6809"
    assert "remapped to 6809 metformin" in remapped.detail
    retired = by_name["cyclophosphamide"]
    assert retired.status == "INACTIVE" and "no successor" in retired.detail
    assert by_name["made-up drug"].status == "NOT FOUND"
    pin = by_name["metformin hydrochloride"]
    assert (pin.status, pin.finding) == ("TTY PIN", False)
    norx = by_name["phenytoin"]
    assert (norx.status, norx.finding, norx.suggestion) == ("NO RXCUI", False, "8183")
    assert len(report.findings) == 4
    assert report.exit_code == 1
    text = report.render()
    assert "# kb verify against local-index 2025-01-06" in text
    assert "! NAME MISMATCH" in text and "  OK" in text
    assert "11 rows checked: 5 OK, 4 findings, 2 notes" in text


def test_verify_clean_kb_exits_zero(clean_kb: Path, index_file: Path) -> None:
    with LocalIndex(index_file) as source:
        report = verify(clean_kb, source)
    assert [r.status for r in report.rows] == ["OK", "OK"]
    assert report.exit_code == 0


def test_verify_accepts_a_loaded_knowledge_base(kb_dir: Path, index_file: Path) -> None:
    with LocalIndex(index_file) as source:
        report = verify(load_kb_dir(kb_dir), source)
    assert len(report.rows) == 11
    assert report.rows[0].where == "entry 1"


# --------------------------------------------------------------------------- refresh


def test_refresh_proposes_missing_class_members_as_a_diff(kb_dir: Path,
                                                          index_file: Path) -> None:
    before = (kb_dir / "drug_map.csv").read_bytes()
    with LocalIndex(index_file) as source:
        report = refresh(kb_dir, source)
    proposed = [(p.class_id, p.concept.name, p.atc) for p in report.proposals]
    # carboplatin and oxaliplatin are L01 members the KB lacks; imatinib is L01E
    # (excluded, and in other_drugs.csv); cyclophosphamide is known by name.
    assert proposed == [("cytostatics", "carboplatin", ("L01XA02",)),
                        ("cytostatics", "oxaliplatin", ("L01XA03",))]
    assert report.exit_code == 1
    added = [line for line in report.diff.splitlines() if line.startswith("+") and
             not line.startswith("+++")]
    assert added == [
        "+cytostatics,carboplatin,40048,L01XA02,,,,,\"proposed from ATC L01 members, "
        "local-index 2025-01-06; reviewer: set evidence and reference\"",
        "+cytostatics,oxaliplatin,32592,L01XA03,,,,,\"proposed from ATC L01 members, "
        "local-index 2025-01-06; reviewer: set evidence and reference\"",
    ]
    assert "--- drug_map.csv" in report.diff and "+++ drug_map.csv (proposed)" in report.diff
    # new rows follow the class's last row, in context
    lines = report.proposed_text.splitlines()
    assert lines.index(added[0][1:]) == lines.index(
        "cytostatics,made-up drug,9999999999,,,,low,none,") + 1
    assert (kb_dir / "drug_map.csv").read_bytes() == before


def test_refresh_one_class_and_nothing_to_propose(kb_dir: Path, index_file: Path) -> None:
    with LocalIndex(index_file) as source:
        report = refresh(kb_dir, source, ["metformin"])
        assert report.proposals == [] and report.diff == "" and report.exit_code == 0
        with pytest.raises(KeyError):
            refresh(kb_dir, source, ["no_such_class"])


# --------------------------------------------------------------------------- CLI


def test_classify_input() -> None:
    assert classify_input("860975") == "rxcui"
    assert classify_input("99999000101") == "ndc"
    assert classify_input("99999-0001-01") == "ndc"
    assert classify_input("metformin 500 mg") == "name"
    assert classify_input("A10BA02") == "atc" and classify_input("a02bc") == "atc"
    assert classify_input("ABC") == "name"


def test_lookup_chain_of_an_atc_code(kb_dir: Path, index_file: Path) -> None:
    from b12drugs.resolve.index_plugin import lookup_chain

    with LocalIndex(index_file) as source:
        result = lookup_chain("A10BA02", source, load_kb_dir(kb_dir))
    assert result["kind"] == "atc" and result["atc_classes"] == ["metformin"]
    assert "6809" in {c["rxcui"] for c in result["concepts"]}
    with LocalIndex(index_file) as source:
        none = lookup_chain("C09AA05", source, load_kb_dir(kb_dir))
    assert none["atc_classes"] == [] and "no B12 class by prefix" in none["notes"][0]


def test_cli_import_then_lookup(tmp_path: Path, kb_dir: Path) -> None:
    runner = CliRunner()
    ix = tmp_path / "cli.sqlite"
    result = runner.invoke(rxnorm, ["import", str(RELEASE), "--index", str(ix)])
    assert result.exit_code == 0, result.output
    assert "RxNorm release 2025-01-06 imported" in result.output
    assert "odd rows skipped" in result.output

    result = runner.invoke(rxnorm, ["lookup", "861008", "--index", str(ix), "--kb", str(kb_dir)])
    assert result.exit_code == 0, result.output
    assert "-> 861008 SBD metformin hydrochloride 500 MG Oral Tablet [Glucophage]" in result.output
    assert "ingredient 6809 IN metformin ATC A10BA02" in result.output
    assert "classes: metformin (alert)" in result.output

    result = runner.invoke(rxnorm, ["lookup", "99999-0004-01", "--index", str(ix), "--kb",
                                    str(kb_dir), "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["ndc11"] == "99999000401"
    (concept,) = data["concepts"]
    assert concept["rxcui"] == "1736854"
    ing = concept["ingredients"][0]
    assert ing["name"] == "cisplatin" and ing["atc"] == ["L01XA01"]
    assert [c["class_id"] for c in ing["classes"]] == ["cytostatics"]

    result = runner.invoke(rxnorm, ["lookup", "Glucophage", "--index", str(ix), "--kb",
                                    str(kb_dir)])
    assert "ingredient 6809 IN metformin" in result.output

    result = runner.invoke(rxnorm, ["lookup", "9999900010", "--index", str(ix), "--kb",
                                    str(kb_dir)])
    assert "[Remapped]" in result.output and "remapped to 6809 metformin" in result.output


def test_cli_errors_are_messages_not_tracebacks(tmp_path: Path, kb_dir: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(rxnorm, ["lookup", "6809", "--index", str(tmp_path / "none.sqlite"),
                                    "--kb", str(kb_dir)])
    assert result.exit_code == 3
    assert "does not exist; build it with 'b12drugs rxnorm import'" in result.output
    assert "Traceback" not in result.output
    empty = tmp_path / "empty"
    empty.mkdir()
    result = runner.invoke(rxnorm, ["import", str(empty), "--index", str(tmp_path / "x.sqlite")])
    assert result.exit_code == 3 and "no RXNCONSO.RRF found" in result.output
    result = runner.invoke(rxnorm, ["lookup", "1234-56", "--as", "ndc", "--index",
                                    str(tmp_path / "none.sqlite")])
    assert result.exit_code == 3


def test_cli_kb_verify(kb_dir: Path, clean_kb: Path, index_file: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(kb, ["verify", "--kb", str(kb_dir), "--index", str(index_file)])
    assert result.exit_code == 1
    assert "! NAME MISMATCH" in result.output and "remapped to 6809" in result.output
    result = runner.invoke(kb, ["verify", "--kb", str(clean_kb), "--index", str(index_file),
                                "--format", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["findings"] == 0


def test_cli_kb_refresh_never_overwrites(kb_dir: Path, index_file: Path,
                                         tmp_path: Path) -> None:
    runner = CliRunner()
    drug_map = kb_dir / "drug_map.csv"
    before = drug_map.read_bytes()
    args = ["refresh", "--kb", str(kb_dir), "--index", str(index_file)]

    result = runner.invoke(kb, args)
    assert result.exit_code == 1
    assert "+cytostatics,carboplatin,40048" in result.output

    out = tmp_path / "proposal.diff"
    result = runner.invoke(kb, [*args, "--class", "cytostatics", "--output", str(out)])
    assert result.exit_code == 1
    assert "+cytostatics,oxaliplatin,32592" in out.read_text()

    for target in (drug_map, out):  # the KB file itself, or any existing file
        result = runner.invoke(kb, [*args, "--write", str(target)])
        assert result.exit_code == 2 and "refusing" in result.output
    result = runner.invoke(kb, [*args, "--output", str(drug_map)])
    assert result.exit_code == 2

    new = tmp_path / "drug_map.proposed.csv"
    result = runner.invoke(kb, [*args, "--write", str(new)])
    assert result.exit_code == 1
    assert "cytostatics,carboplatin,40048" in new.read_text()
    assert drug_map.read_bytes() == before

    result = runner.invoke(kb, [*args, "--class", "nope"])
    assert result.exit_code == 2 and "unknown class 'nope'" in result.output
    result = runner.invoke(kb, [*args, "--class", "metformin"])
    assert result.exit_code == 0 and "# 0 proposed rows" in result.output


def test_cli_cache_stats_and_clear(tmp_path: Path) -> None:
    config = tmp_path / "b12.toml"
    cache = tmp_path / "rxnav-cache.sqlite"
    config.write_text(f'[rxnav]\ncache_path = "{cache.as_posix()}"\n', encoding="utf-8")
    runner = CliRunner()
    result = runner.invoke(rxnorm, ["cache", "stats", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "responses: 0" in result.output and "rxnav-cache" in result.output
    result = runner.invoke(rxnorm, ["cache", "clear", "--config", str(config)])
    assert result.exit_code == 0 and "cleared" in result.output
    bad = tmp_path / "bad.toml"
    bad.write_text("[rxnav\n", encoding="utf-8")
    result = runner.invoke(rxnorm, ["cache", "stats", "--config", str(bad)])
    assert result.exit_code == 2 and "not valid TOML" in result.output


# --------------------------------------------------------------------------- RxNav source


@pytest.fixture
def rxnav_config(tmp_path: Path) -> Iterator[Path]:
    """A config file pointing at the RxNav emulator (a real HTTP server on 127.0.0.1)."""
    sys.path.insert(0, str(Path(__file__).parent))
    from rxnav_emulator import RxNavEmulator

    with RxNavEmulator() as emulator:
        config = tmp_path / "rxnav.toml"
        config.write_text(
            f'[rxnav]\nbase_url = "{emulator.base_url}"\n'
            f'cache_path = "{(tmp_path / "cache.sqlite").as_posix()}"\n'
            "timeout = 2.0\nbackoff = 0.01\nrate_limit = 1000.0\n",
            encoding="utf-8",
        )
        yield config


def test_cli_verify_and_lookup_against_rxnav(kb_dir: Path, rxnav_config: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(kb, ["verify", "--source", "rxnav", "--kb", str(kb_dir),
                                "--config", str(rxnav_config)])
    assert result.exit_code == 1, result.output
    assert "# kb verify against rxnav" in result.output
    out = result.output.splitlines()
    assert any(line.startswith("  OK") and "metformin (6809)" in line for line in out)
    assert any(line.startswith("! NAME MISMATCH") and "omeprazol (7646)" in line
               for line in out)
    result = runner.invoke(rxnorm, ["lookup", "860975", "--rxnav", "--kb", str(kb_dir),
                                    "--config", str(rxnav_config)])
    assert result.exit_code == 0, result.output
    assert "via rxnav" in result.output and "ingredient 6809 IN metformin" in result.output
    assert "classes: metformin (alert)" in result.output


def test_groups_are_attached_to_the_main_command(tmp_path: Path, kb_dir: Path,
                                                  index_file: Path) -> None:
    from b12drugs.cli import cli

    runner = CliRunner()
    result = runner.invoke(cli, ["rxnorm", "lookup", "860975", "--index", str(index_file),
                                 "--kb", str(kb_dir)], env={"B12DRUGS_LOAD_PLUGINS": ""})
    assert result.exit_code == 0, result.output
    assert "ingredient 6809 IN metformin" in result.output
    result = runner.invoke(cli, ["kb", "--help"], env={"B12DRUGS_LOAD_PLUGINS": ""})
    assert result.exit_code == 0 and "verify" in result.output and "refresh" in result.output


def test_verify_checks_the_atc_column(kb_dir: Path, index_file: Path) -> None:
    (kb_dir / "drug_map.csv").write_text(
        DRUG_MAP
        + "metformin,metformin bad code,,A10BA2,,,strong,Aroda 2016,\n"
        + "metformin,metformin unknown group,,Z10BA02,,,strong,Aroda 2016,\n"
        + "phenytoin,phenytoin eye only,,S01AA12,,,low,Belghith 2015,\n",
        encoding="utf-8",
    )
    (kb_dir / "other_drugs.csv").write_text(
        "ingredient,rxcui,atc,category\nimatinib,282388,L01XA01,kinase inhibitor\n"
        "ramipril,,C09AA05,ACE inhibitor\n", encoding="utf-8")
    with LocalIndex(index_file) as source:
        report = verify(kb_dir, source)
    by_name = {(r.ingredient, r.status): r for r in report.atc}
    assert by_name[("metformin bad code", "ATC MALFORMED")].finding
    assert by_name[("metformin unknown group", "ATC UNKNOWN")].finding
    assert by_name[("imatinib", "ATC CLASS")].finding  # other_drugs row inside a class
    eye = by_name[("phenytoin eye only", "ATC CLASS")]
    assert not eye.finding and "no code inside phenytoin" in eye.detail
    assert not any(r.ingredient in ("metformin", "ramipril", "cisplatin") for r in report.atc)
    assert report.atc_codes == 11
    text = report.render()
    note = by_name[("imatinib", "ATC SOURCE")]  # the index files imatinib under L01EA01
    assert not note.finding and note.suggestion == "L01EA01"
    assert "# ATC column: 11 codes checked, 3 findings, 2 notes" in text
    assert report.exit_code == 1
