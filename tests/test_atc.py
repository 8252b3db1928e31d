"""WHO ATC-coded orders: resolution, classification, route notices and lookup."""

from __future__ import annotations

import json

from b12drugs.engines import screen
from b12drugs.knowledge import load_knowledge
from b12drugs.lookup import query_for
from b12drugs.models import ATC_SYSTEM, Coding, DrugQuery, Order
from b12drugs.resolve.atc import AtcIndex, atc_codes, known_groups, local_route, normalize_atc
from b12drugs.resolve.offline import OfflineResolver

KB = load_knowledge()
RESOLVER = OfflineResolver(KB)


def atc(code: str, display: str | None = None) -> Coding:
    return Coding(system=ATC_SYSTEM, code=code, display=display)


def order(oid: str, code: str, text: str | None = None, **kw: object) -> Order:
    return Order(id=oid, patient_id="p1", codings=(atc(code),), text=text, **kw)  # type: ignore[arg-type]


def alerts_and_notices(orders: list[Order]) -> tuple[set[str], list[tuple[str, str | None, str]]]:
    report = screen(orders)
    return ({a.class_id for a in report.alerts},
            [(n.kind, n.order_id, n.message) for n in report.notices])


def test_level5_codes_of_class_ingredients_and_combinations() -> None:
    cases = {
        "A10BA02": ("metformin", "metformin"),
        "A10BD07": ("metformin", "metformin"),  # metformin and sitagliptin
        "A02BC11": ("ilaprazole", "proton_pump_inhibitors"),
        "M01AE52": ("esomeprazole", "proton_pump_inhibitors"),  # naproxen and esomeprazole
        "A02BD01": ("omeprazole", "proton_pump_inhibitors"),  # H. pylori triple therapy
        "N01AX13": ("nitrous oxide", "nitrous_oxide"),
        "J01GB11": ("isepamicin", "aminoglycosides"),
    }
    for code, (ingredient, class_id) in cases.items():
        res = RESOLVER.resolve_one(DrugQuery(other_codings=(atc(code),)))
        assert res is not None and res.resolved, code
        assert [m.name for m in res.ingredients] == [ingredient], code
        assert res.ingredients[0].method == "atc"
        found, _ = alerts_and_notices([order("1", code)])
        assert found == {class_id}, code


def test_new_class_member_is_placed_by_prefix_and_exclusions_hold() -> None:
    found, _ = alerts_and_notices([order("1", "L01AA99")])
    assert found == {"cytostatics"}
    # A10BD01 phenformin and sulfonylureas: inside A10BD but excluded (no metformin)
    found, notices = alerts_and_notices([order("2", "A10BD01")])
    assert found == set()
    assert not [n for n in notices if n[0] == "unresolved"]
    # kinase inhibitors L01E are excluded from the cytostatics
    found, _ = alerts_and_notices([order("3", "L01EA01")])
    assert found == set()


def test_valid_non_b12_code_is_checked_nothing_found() -> None:
    res = RESOLVER.resolve_one(DrugQuery(other_codings=(atc("C09AA05"),)))  # ramipril
    assert res is not None and res.resolved and res.notices == ()
    found, notices = alerts_and_notices([order("1", "C09AA05"), order("2", "N02BE01")])
    assert found == set() and notices == []


def test_malformed_and_unknown_codes_say_so() -> None:
    found, notices = alerts_and_notices([order("1", "A10BA0X"), order("2", "Z99ZZ99")])
    assert found == set()
    by_order: dict[str | None, str] = {}
    for kind, oid, msg in notices:
        if kind == "unresolved":
            by_order[oid] = by_order.get(oid, "") + msg + "\n"
    assert "'A10BA0X' is not a well-formed WHO ATC code" in by_order["1"]
    assert "drug not recognised (ATC A10BA0X)" in by_order["1"]
    assert "group 'Z' is not in the ATC listing" in by_order["2"]


def test_group_containing_classes_is_not_a_guess() -> None:
    res = RESOLVER.resolve_one(DrugQuery(other_codings=(atc("A02B"),)))
    assert res is not None and not res.resolved
    assert "names no drug" in res.notices[0].message
    res = RESOLVER.resolve_one(DrugQuery(other_codings=(atc("A02BC"),)))  # inside the class
    assert res is not None and res.resolved


def test_text_naming_a_b12_drug_is_not_hidden_by_a_code() -> None:
    # code of a non-B12 drug, text of metformin: the text is screened too
    found, _ = alerts_and_notices([order("1", "C09AA05", text="metformin 500 mg")])
    assert found == {"metformin"}
    # a malformed code with a good text: the text resolves, the notice stays
    res = RESOLVER.resolve_one(DrugQuery(texts=("omeprazole 20 mg",),
                                         other_codings=(atc("??"),)))
    assert res is not None and [m.name for m in res.ingredients] == ["omeprazole"]
    assert any("not a well-formed" in n.message for n in res.notices)


def test_eye_ear_and_skin_codes_give_the_local_route_notice() -> None:
    for code, route in (("S01AA12", "ophthalmic"), ("S02AA14", "otic"), ("D06AX07", "topical"),
                        ("S03AA01", "ophthalmic/otic")):
        found, notices = alerts_and_notices([order("1", code)])
        assert found == set(), code
        infos = [m for kind, _, m in notices if kind == "info"]
        assert len(infos) == 1 and f"{route} product, no alert" in infos[0], (code, infos)
    # the systemic code of the same drug alerts
    found, _ = alerts_and_notices([order("1", "J01GB01")])
    assert found == {"aminoglycosides"}


def test_helpers() -> None:
    assert normalize_atc(" a10.ba 02") == "A10BA02"
    assert atc_codes((atc("a10ba02"), Coding(system="http://x", code="A10BA02"),
                      Coding(system="urn:oid:2.16.840.1.113883.6.73", code="A10BA02"))) == (
        "A10BA02",)
    assert local_route("S01AA12") == {"ophthalmic"} and local_route("J01GB01") == frozenset()
    assert {"A", "A10", "A10B", "S01A"} <= known_groups()
    index = AtcIndex(KB, groups=frozenset({"A", "A10", "A10B"}))
    assert index.resolve("C09AA05", "t").status == "unknown"


def test_lookup_reads_an_atc_code() -> None:
    q = query_for("A10BA02")
    assert q.other_codings == (atc("A10BA02"),) and q.texts == ()
    assert query_for("metformin").texts == ("metformin",)
    assert query_for("6809").rxcuis == ("6809",)
    assert q.describe() == "ATC A10BA02"


def test_cli_lookup_of_an_atc_code() -> None:
    from click.testing import CliRunner

    from b12drugs.cli import cli

    def run(*args: str) -> str:
        return CliRunner().invoke(cli, list(args), catch_exceptions=False).stdout

    data = json.loads(run("lookup", "A10BA02", "--format", "json"))
    assert data["query"] == "ATC A10BA02"
    assert [h["class_id"] for h in data["classes"]] == ["metformin"]
    assert data["ingredients"][0]["method"] == "atc"
    text = run("lookup", "C09AA05")
    assert "ramipril" in text and "no B12-lowering class" in text
    assert "group 'Z' is not in the ATC listing" in run("lookup", "Z99ZZ99")


def test_csv_atc_column_in_both_engines(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from click.testing import CliRunner

    from b12drugs.cli import cli

    path = tmp_path / "atc.csv"
    path.write_text("patient_id,rx_id,drug_name,atc\np1,r1,,A10BA02\np2,r2,Tobramycin,S01AA12\n"
                    "p3,r3,,C09AA05\np4,r4,,A10BA0X\n", encoding="utf-8")
    got = []
    for engine in ("record", "columnar"):
        out = CliRunner().invoke(cli, ["screen", str(path), "--engine", engine, "--format",
                                       "json"], catch_exceptions=False).stdout
        data = json.loads(out)
        alerts = sorted((a["patient_id"], a["class_id"]) for a in data["alerts"])
        notices = sorted((n["kind"], n.get("order_id")) for n in data["notices"])
        assert alerts == [("p1", "metformin")], engine
        assert ("info", "r2") in notices and ("unresolved", "r4") in notices, engine
        assert not [n for n in notices if n[1] == "r3"], engine  # checked, nothing found
        got.append((alerts, notices))
    assert got[0] == got[1]
