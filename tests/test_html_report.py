"""The HTML report (``--format html``) and the care-gap page.

Two kinds of tests:

* on the HTML text: structure, counts, and that every value from the input is escaped
  (hostile drug names, patient ids, file names, notice messages);
* in a real headless browser (Debian's ``chromium``): the page renders with its own
  script and style allowed by the Content-Security-Policy, the SVG charts and the table
  are there after the script ran, the fragment's filter and sort are applied, a hostile
  value runs no script (also with the CSP removed, so escaping alone is tested), the
  CSP blocks a script that is not the page's own, and a screenshot is taken.

The browser tests need ``chromium`` (``.ci/install-chromium.sh`` installs it; another
binary can be named in ``B12DRUGS_CHROMIUM``).  Without it they FAIL with a message
saying so; set ``B12DRUGS_NO_BROWSER=1`` to skip them on purpose.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import os
import re
import shutil
import struct
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner

from b12drugs.cli import cli
from b12drugs.emit import html as html_mod
from b12drugs.emit.html import write_gaps_html, write_html
from b12drugs.models import Alert, Counts, Notice, Report
from b12drugs.plugins import PluginManager

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "dispensing.csv"

#: Each payload, if it ever ran, marks the page (title, an attribute, an element).
PWN = "document.title='pwned';document.documentElement.setAttribute('data-pwned','1')"
HOSTILE_IMG = f'<img src=x onerror="{PWN}">'
HOSTILE_SCRIPT = f"</script><script>{PWN}</script>"
HOSTILE_ATTR = f'"><svg onload="{PWN}"><b id="pwned">x</b>'
HOSTILE_SINGLE = "'><iframe srcdoc='<b id=pwned>'></iframe>"
HOSTILE = (HOSTILE_IMG, HOSTILE_SCRIPT, HOSTILE_ATTR, HOSTILE_SINGLE)
TITLE = "Vitamin B12 drug screening"


# --------------------------------------------------------------------------------------
# Reports to render.


def _alert(patient: str, class_id: str, severity: str, drugs: tuple[str, ...] = ("metformin",),
           **kw: object) -> Alert:
    fields: dict[str, object] = {
        "patient_id": patient, "class_id": class_id, "severity": severity,
        "summary": f"{drugs[0]} can lower vitamin B12"[:139],
        "detail": "**Drugs:** x\n**Why:** because", "orders": ("RX1",), "drugs": drugs,
        "recommendation": "Consider a B12 level.", "evidence": "strong",
        "rule": "default-policy"}
    fields.update(kw)
    return Alert.model_validate(fields)


def _report(alerts: tuple[Alert, ...] = (), notices: tuple[Notice, ...] = (),
            counts: Counts | None = None, sources: tuple[str, ...] = ("in.csv",)) -> Report:
    return Report(generated_at=dt.datetime(2026, 11, 21, 8, 30, tzinfo=dt.timezone.utc),
                  b12drugs_version="0.1.0", knowledge_version="kb1", sources=sources,
                  alerts=alerts, notices=notices,
                  counts=counts or Counts(read=10, screened=8, skipped=1, rejected=1))


def hostile_report() -> Report:
    """Every free-text field a plugin or an input file could fill, filled with payloads."""
    alerts = (
        _alert(HOSTILE_IMG, "metformin", "warning", drugs=(HOSTILE_IMG, HOSTILE_SCRIPT),
               orders=(HOSTILE_ATTR,), risk_factors=(HOSTILE_SINGLE,),
               summary=HOSTILE_SCRIPT[:139], detail=f"**{HOSTILE_IMG}**\n{HOSTILE_SCRIPT}",
               recommendation=HOSTILE_ATTR, evidence=HOSTILE_SINGLE[:256],
               references=(HOSTILE_IMG,), rule=HOSTILE_ATTR[:256], sources=(HOSTILE_SCRIPT,)),
        _alert(HOSTILE_SCRIPT, "proton_pump_inhibitors", "critical", drugs=(HOSTILE_ATTR,)),
    )
    notices = tuple(Notice(kind="unresolved", message=f"drug not recognised ({p!r})",
                           order_id=p[:256], location=p[:256], source=p[:256])
                    for p in HOSTILE)
    return _report(alerts, notices, sources=HOSTILE)


def render(report: Report) -> str:
    out = io.StringIO()
    write_html(report, out)
    return out.getvalue()


def example_report_html(tmp_path: Path) -> Path:
    out = tmp_path / "report.html"
    result = CliRunner().invoke(cli, ["screen", str(EXAMPLE), "--format", "html", "--output",
                                      str(out), "--as-of", "2026-11-21"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return out


GAPS: list[dict[str, object]] = [
    {"patient_id": "P001", "classes": ["metformin", "proton_pump_inhibitors"],
     "drugs": ["metformin", "omeprazole"], "risk_factors": ["peripheral_neuropathy"],
     "last_result": None, "due_date": None, "days_overdue": None},
    {"patient_id": "P002", "classes": ["metformin"], "drugs": ["metformin"],
     "risk_factors": [], "last_result": {"kind": "b12", "value": 240, "unit": "pg/mL",
                                         "date": "2025-01-10", "interpretation": "borderline"},
     "due_date": "2025-07-10", "days_overdue": 499},
    {"patient_id": HOSTILE_IMG, "classes": ["h2_blockers"], "drugs": [HOSTILE_SCRIPT],
     "risk_factors": [HOSTILE_ATTR], "last_result": {
         "kind": "b12", "value": 410, "unit": "pg/mL", "date": dt.date(2025, 10, 1),
         "interpretation": "normal"},
     "due_date": dt.date(2026, 10, 1), "days_overdue": 51},
]
GAP_COUNTS = {"patients_screened": 40, "patients_on_b12_lowering_drugs": 12, "due": 3}


def render_gaps() -> str:
    out = io.StringIO()
    write_gaps_html(GAPS, GAP_COUNTS, out, as_of="2026-11-21")
    return out.getvalue()


# --------------------------------------------------------------------------------------
# A small DOM for assertions (the stdlib parser; no dependency).


VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr"}


@dataclass
class Node:
    tag: str
    attrs: dict[str, str | None]
    children: list[Node] = field(default_factory=list)
    text: list[str] = field(default_factory=list)

    def iter(self) -> Iterator[Node]:
        yield self
        for c in self.children:
            yield from c.iter()

    def find_all(self, tag: str, **attrs: str) -> list[Node]:
        return [n for n in self.iter() if n.tag == tag
                and all(n.attrs.get(k.rstrip("_")) == v for k, v in attrs.items())]

    def find(self, tag: str, **attrs: str) -> Node:
        found = self.find_all(tag, **attrs)
        assert found, f"no <{tag} {attrs}>"
        return found[0]

    def text_content(self) -> str:
        return "".join(self.text) + "".join(c.text_content() for c in self.children)

    def has_class(self, name: str) -> bool:
        return name in (self.attrs.get("class") or "").split()


class _Builder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, dict(attrs))
        self.stack[-1].children.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack[-1].children.append(Node(tag, dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self.stack) - 1, 0, -1):
            if self.stack[i].tag == tag:
                del self.stack[i:]
                return

    def handle_data(self, data: str) -> None:
        # text after a child goes to a pseudo-child so that text_content keeps order
        self.stack[-1].children.append(Node("#text", {}, text=[data]))


def parse(markup: str) -> Node:
    b = _Builder()
    b.feed(markup)
    b.close()
    return b.root


def table_rows(doc: Node) -> list[Node]:
    return doc.find("table", id="rows").find("tbody").find_all("tr")


# --------------------------------------------------------------------------------------
# The HTML text.


def test_html_is_a_registered_output_format() -> None:
    fmt = PluginManager(strict=True, entry_points=False).hooks.output_for("html")
    assert fmt is not None and fmt.media_type == "text/html"
    assert fmt.provider  # registered through the hook like any plugin's format
    out = io.StringIO()
    fmt.write(_report((_alert("P1", "metformin", "info"),)), out)
    assert out.getvalue().startswith("<!DOCTYPE html>")


def test_structure_counts_and_accounting() -> None:
    report = _report((
        _alert("P1", "metformin", "warning"),
        _alert("P1", "proton_pump_inhibitors", "info", drugs=("omeprazole",)),
        _alert("P2", "metformin", "critical"),
    ), (Notice(kind="unresolved", message="drug not recognised", order_id="RX9"),
        Notice(kind="skipped", message="stopped", order_id="RX8")))
    doc = parse(render(report))
    assert doc.find("title").text_content() == TITLE
    rows = table_rows(doc)
    assert len(rows) == 3
    assert [r.find("td").text_content() for r in rows] == ["warning", "info", "critical"]
    assert "Proton-pump inhibitors" in rows[1].text_content()
    # charts: severity, class, records read, notices; one bar group per non-empty bar
    charts = doc.find_all("svg")
    charts = [c for c in charts if c.has_class("chart")]
    assert [c.find("title").text_content() for c in charts] == [
        "Alerts by severity", "Alerts by drug class", "Records read", "Notices by kind"]
    by_class = charts[1]
    metformin = next(g for g in by_class.find_all("g")
                     if g.find("title").text_content() == "Metformin: 2")
    assert len(metformin.find_all("rect")) == 2  # one critical + one warning segment
    assert "Metformin: 2 (1 critical, 1 warning)" in by_class.find("desc").text_content()
    # the filters offer each severity and class present
    severity = doc.find("select", **{"data-col": "severity"})
    assert [o.attrs["value"] for o in severity.find_all("option")] == [
        "", "critical", "info", "warning"]
    acct = doc.find("section", id="accounting").text_content()
    assert "read 10 = screened 8 + skipped 1 + rejected 1 ✓" in acct
    notices = doc.find("section", id="notices")
    assert len(notices.find("tbody").find_all("tr")) == 2
    assert "1 unresolved" in doc.find("p", role="note").text_content()  # not silently clean
    facts = {f.find("div", **{"class": "l"}).text_content():
             f.find("div", **{"class": "v"}).text_content()
             for f in doc.find_all("div") if f.has_class("fact")}
    assert facts["alerts"] == "3" and facts["patients with alerts"] == "2"
    assert facts["critical"] == "1" and facts["notices"] == "2"


def test_guidance_once_per_class_and_details_left_out_of_big_pages(
        monkeypatch: pytest.MonkeyPatch) -> None:
    alerts = (*(_alert(f"P{i}", "metformin", "info", references=("Ref A",)) for i in range(3)),
              _alert("P9", "phenytoin", "info"))
    doc = parse(render(_report(alerts)))
    guidance = next(s for s in doc.find_all("section") if s.has_class("text"))
    assert [h.text_content().split(" evidence")[0] for h in guidance.find_all("h3")] == [
        "Metformin", "Phenytoin"]
    assert guidance.text_content().count("Ref A") == 1
    assert len(doc.find("table", id="rows").find_all("details")) == 4
    monkeypatch.setattr(html_mod, "DETAIL_LIMIT", 3)
    doc = parse(render(_report(alerts)))
    assert doc.find("table", id="rows").find_all("details") == []
    note = doc.find("p", **{"class": "tnote"}).text_content()
    assert note.startswith("4 alerts: to keep the page quick") and "--format json" in note


def test_unbalanced_accounting_is_shown_as_such() -> None:
    page = render(_report(counts=Counts(read=5, screened=2, skipped=1, rejected=1)))
    assert "does NOT add up" in page


def test_empty_report_says_checked_nothing_found() -> None:
    doc = parse(render(_report(counts=Counts(read=3, screened=3))))
    assert doc.find_all("table", id="rows") == []
    text = doc.find("section", id="table").text_content()
    assert "every screened order was checked and nothing was found." in text
    assert "No alerts." in doc.text_content()
    assert doc.find_all("p", role="note") == []


def test_every_hostile_value_is_escaped() -> None:
    page = render(hostile_report())
    # none of the payloads' markup survives as markup, anywhere
    for needle in ("<img", "<iframe", "<svg onload", "<b id", 'id="pwned"'):
        assert needle not in page, needle
    attributes = {name for n in parse(page).iter() for name in n.attrs}
    assert not {a for a in attributes if a.startswith("on")}  # no event handler attribute
    assert page.count("<script>") == 1 and page.count("</script>") == 1
    # the one script is the page's own, byte for byte: no value ever reaches it
    script = page.split("<script>", 1)[1].split("</script>", 1)[0]
    assert script == html_mod._JS
    # the payloads are there as text
    doc = parse(page)
    text = doc.text_content()
    for payload in (HOSTILE_IMG, HOSTILE_SCRIPT, HOSTILE_ATTR):
        assert payload in text
    # attributes hold escaped values only: parsing gives back exactly the input
    assert {"pwned"} & {n.attrs.get("id") for n in doc.iter()} == set()
    patients = [r.find_all("td")[1] for r in table_rows(doc)]
    assert patients[0].attrs["data-sort"] == HOSTILE_IMG
    assert all(not n.tag.startswith(("img", "iframe")) for n in doc.iter())
    # the details block's **bold** markup is applied to escaped text only
    assert "<strong>&lt;img src=x onerror=&quot;" in page


def test_a_stream_that_is_not_utf8_gets_ascii_with_character_references() -> None:
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="latin-1")
    report = _report((_alert("Pätient ✓ 患者", "metformin", "info"),))
    write_html(report, stream)
    stream.flush()
    data = raw.getvalue()
    assert data.isascii() and b"P&#228;tient &#10003; &#24739;&#32773;" in data
    doc = parse(data.decode("utf-8"))
    assert table_rows(doc)[0].find_all("td")[1].text_content() == "Pätient ✓ 患者"
    assert data.decode().split("<script>")[1].split("</script>")[0] == html_mod._JS


def test_csp_forbids_remote_loads_and_allows_only_the_pages_script_and_style() -> None:
    page = render(hostile_report())
    doc = parse(page)
    csp = doc.find("meta", **{"http-equiv": "Content-Security-Policy"}).attrs["content"] or ""
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["default-src"] == "'none'"
    assert "unsafe-inline" not in csp and "http" not in csp and "*" not in csp

    def digest(text: str) -> str:
        return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"

    script = page.split("<script>", 1)[1].split("</script>", 1)[0]
    style = page.split("<style>", 1)[1].split("</style>", 1)[0]
    assert directives["script-src"] == digest(script)
    assert directives["style-src"] == digest(style)
    # and nothing to load: no external resources at all
    assert not re.search(r"<(link|iframe|object|embed|img)\b", page)
    attributes = {name for n in doc.iter() for name in n.attrs}
    assert not attributes & {"src", "href", "srcdoc", "action", "srcset", "xlink:href"}
    assert "@import" not in page and "url(" not in page
    assert set(re.findall(r"https?://[^\s\"'<>]+", page)) <= {"http://www.w3.org/2000/svg"}


def test_monitoring_is_shown_when_alerts_carry_it() -> None:
    class MonitoredAlert(Alert):  # what a later schema version adds; read by getattr
        monitoring: dict[str, object] | None = None

    base = _alert("P1", "metformin", "info").model_dump()
    due = MonitoredAlert(**base, monitoring={
        "last_result": {"kind": "b12", "value": 180, "unit": "pg/mL", "date": "2024-03-01",
                        "interpretation": "low"},
        "due": True, "due_date": "2025-03-01"})
    fine = MonitoredAlert(**{**base, "patient_id": "P2"}, monitoring={
        "last_result": {"kind": "b12", "value": 450, "unit": "pg/mL", "date": "2026-09-20",
                        "interpretation": "normal"},
        "due": False, "due_date": "2027-09-20"})
    never = MonitoredAlert(**{**base, "patient_id": "P3"}, monitoring={
        "last_result": None, "due": True, "due_date": None})
    report = _report((due, fine, never))
    assert isinstance(report.alerts[0], MonitoredAlert)
    doc = parse(render(report))
    heads = [th.text_content() for th in doc.find("table", id="rows").find_all("th")]
    assert "Last B12 result" in heads and "Test" in heads
    rows = [r.text_content() for r in table_rows(doc)]
    assert "B12 180 pg/mL" in rows[0] and "low · 2024-03-01" in rows[0]
    assert "due" in rows[0] and "since 2025-03-01" in rows[0]
    assert "not due" in rows[1] and "next 2027-09-20" in rows[1] and "normal" in rows[1]
    assert "none on record" in rows[2]
    # without monitoring anywhere, no such columns
    plain = parse(render(_report((_alert("P1", "metformin", "info"),))))
    assert "Last B12 result" not in plain.find("table", id="rows").text_content()


def test_cli_screen_writes_html(tmp_path: Path) -> None:
    page = example_report_html(tmp_path).read_text(encoding="utf-8")
    doc = parse(page)
    rows = table_rows(doc)
    assert len(rows) == 7
    text = doc.text_content()
    assert "Zorvanex 25 mg tablet" in text  # the unresolved drug is a visible notice
    assert "read 15 = screened 13 + skipped 1 + rejected 1 ✓" in text
    assert "examples/dispensing.csv" in text or "dispensing.csv" in text


def test_cli_input_file_with_hostile_values_is_escaped(tmp_path: Path) -> None:
    src = tmp_path / "<b id=pwned>x.csv"
    src.write_text("patient_id,rx_id,drug_name,status\n"
                   f'"{HOSTILE_IMG.replace(chr(34), chr(34) * 2)}",RX1,metformin 500 mg tablet,'
                   "active\n"
                   f'P2,"{HOSTILE_ATTR.replace(chr(34), chr(34) * 2)}",'
                   f'"{HOSTILE_SCRIPT}",active\n', encoding="utf-8")
    out = tmp_path / "r.html"
    result = CliRunner().invoke(cli, ["screen", str(src), "-f", "html", "-o", str(out)],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    page = out.read_text(encoding="utf-8")
    assert "<img" not in page and "<b id" not in page and page.count("<script>") == 1
    text = parse(page).text_content()
    assert HOSTILE_IMG in text and "<b id=pwned>x.csv" in text  # shown, as text


def test_gaps_page_structure_and_escaping() -> None:
    page = render_gaps()
    assert "<img" not in page and page.count("<script>") == 1
    doc = parse(page)
    assert doc.find("title").text_content() == "Vitamin B12 care gaps"
    rows = table_rows(doc)
    assert [r.find("td").text_content() for r in rows] == ["P001", "P002", HOSTILE_IMG]
    first, second, third = (r.text_content() for r in rows)
    assert "Metformin, Proton-pump inhibitors" in first and "never tested" in first
    assert "B12 240 pg/mL" in second and "borderline · 2025-01-10" in second
    assert "2025-07-10" in second and "> 1 year overdue" in second
    assert "2026-10-01" in third and "3–12 months overdue" not in third
    overdue = [r.find_all("td")[6] for r in rows]
    assert [td.attrs.get("data-sort") for td in overdue] == ["", "499.0", "51.0"]
    charts = [c for c in doc.find_all("svg") if c.has_class("chart")]
    assert [c.find("title").text_content() for c in charts] == [
        "Patients due by time overdue", "Patients due by drug class"]
    assert "Metformin: 2" in charts[1].find("desc").text_content()
    acct = doc.find("section", id="accounting").text_content()
    assert "patients screened" in acct and "40" in acct and "on B12 lowering drugs" in acct
    assert "As of" in doc.find("header").text_content()


def test_generic_renderer_takes_any_columns_and_rows() -> None:
    page = "".join(html_mod.render_page(
        "A <page>", [html_mod.BarChart("c", (html_mod.Bar("x", (html_mod.Segment(
            "s", 3, "not-a-tone"),)),))],
        [html_mod.Column("a", "A"), html_mod.Column("n", "N", numeric=True, filter=True)],
        [{"a": "<i>", "n": 2}, {"a": None, "n": html_mod.Cell("7", sort=7, tone="ok")}],
        [html_mod.PageNotice("info", "<here>", "<msg>")], None))
    assert "<i>" not in page and "&lt;i&gt;" in page and "&lt;page&gt;" in page
    assert 'class="s-neutral"' in page  # an unknown tone cannot reach a class attribute
    assert 'data-sort="7"' in page and "id=\"accounting\"" not in page


# --------------------------------------------------------------------------------------
# In a real browser.


DEBIAN_CHROMIUM = Path("/usr/bin/chromium")


def find_chromium() -> str:
    """The browser to test in; fails the test (or skips it, when asked to) if none."""
    binary = os.environ.get("B12DRUGS_CHROMIUM") or shutil.which("chromium") or (
        str(DEBIAN_CHROMIUM) if DEBIAN_CHROMIUM.exists() else None)
    if binary is None:
        if os.environ.get("B12DRUGS_NO_BROWSER") == "1":
            pytest.skip("B12DRUGS_NO_BROWSER=1: browser tests of the HTML report skipped")
        pytest.fail("chromium not found: the HTML report is tested in a real browser. Install "
                    "it with .ci/install-chromium.sh (Debian: apt-get install chromium), name "
                    "another binary in B12DRUGS_CHROMIUM, or set B12DRUGS_NO_BROWSER=1 to "
                    "skip these tests on purpose.", pytrace=False)
    return binary


@pytest.fixture(scope="module")
def chromium() -> str:
    return find_chromium()


def test_without_chromium_the_browser_tests_fail_unless_told_to_skip(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("B12DRUGS_CHROMIUM", raising=False)
    monkeypatch.delenv("B12DRUGS_NO_BROWSER", raising=False)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setitem(globals(), "DEBIAN_CHROMIUM", tmp_path / "no-chromium")
    with pytest.raises(pytest.fail.Exception, match=r"install-chromium\.sh"):
        find_chromium()
    monkeypatch.setenv("B12DRUGS_NO_BROWSER", "1")
    with pytest.raises(pytest.skip.Exception, match="B12DRUGS_NO_BROWSER=1"):
        find_chromium()


def _browser(chromium: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--no-first-run", "--no-default-browser-check", "--disable-extensions",
           "--hide-scrollbars", f"--user-data-dir={profile}", *args]
    env = {**os.environ, "HOME": str(tmp_path)}
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env,
                            check=False)
    assert result.returncode == 0, f"{cmd}\n{result.stderr[-3000:]}"
    return result


def dump_dom(chromium: str, tmp_path: Path, page: Path, fragment: str = "") -> Node:
    """The DOM after the page's scripts ran, as chromium serialises it."""
    result = _browser(chromium, tmp_path, "--virtual-time-budget=2000", "--dump-dom",
                      page.as_uri() + fragment)
    assert "<html" in result.stdout, result.stderr[-3000:]
    return parse(result.stdout)


def _html_root(doc: Node) -> Node:
    return doc.find("html")


def _visible_rows(doc: Node) -> list[Node]:
    return [r for r in table_rows(doc) if "hidden" not in r.attrs]


def test_browser_renders_the_report_with_charts_and_table(chromium: str,
                                                          tmp_path: Path) -> None:
    page = example_report_html(tmp_path)
    doc = dump_dom(chromium, tmp_path, page)
    root = _html_root(doc)
    assert root.attrs.get("data-ready") == "1", "the page's script did not run (CSP hash?)"
    assert doc.find("title").text_content() == TITLE
    charts = [c for c in doc.find_all("svg") if c.has_class("chart")]
    assert len(charts) == 4 and all(c.find_all("rect") for c in charts)
    assert len(table_rows(doc)) == len(_visible_rows(doc)) == 7
    assert doc.find("span", id="shown").text_content() == "Showing 7 of 7"


def test_browser_applies_filter_and_sort_from_the_fragment(chromium: str,
                                                           tmp_path: Path) -> None:
    page = example_report_html(tmp_path)
    doc = dump_dom(chromium, tmp_path, page, "#severity=warning")
    assert len(_visible_rows(doc)) == 4
    assert doc.find("span", id="shown").text_content() == "Showing 4 of 7"
    assert all(r.find("td").text_content() == "warning" for r in _visible_rows(doc))

    doc = dump_dom(chromium, tmp_path, page, "#q=omeprazole")
    [row] = _visible_rows(doc)
    assert "P001" in row.text_content() and "Proton-pump inhibitors" in row.text_content()

    doc = dump_dom(chromium, tmp_path, page, "#sort=patient:desc")
    patients = [r.find_all("td")[1].text_content() for r in table_rows(doc)]
    assert patients == sorted(patients, reverse=True) and patients[0] == "P006"
    th = doc.find("th", **{"data-key": "patient"})
    assert th.attrs.get("aria-sort") == "descending"

    doc = dump_dom(chromium, tmp_path, page, "#sort=severity&class=Metformin")
    assert [r.find("td").text_content() for r in _visible_rows(doc)] == ["warning", "info"]


#: Run after the page's own script: uses the page as a person would (click a chart bar,
#: type in the search box, click column headers, reset) and writes what it saw into
#: attributes of <html> for the DOM dump.
DRIVER = """
(function () {
  var html = document.documentElement;
  function visible() {
    return Array.prototype.filter.call(document.querySelectorAll("#rows tbody tr"),
      function (tr) { return !tr.hidden; });
  }
  function firstCells(col) {
    return visible().map(function (tr) { return tr.cells[col].textContent.trim(); }).join(",");
  }
  function click(el) { el.dispatchEvent(new MouseEvent("click", {bubbles: true})); }
  click(document.querySelector('[data-filter-col="severity"][data-filter-value="critical"]'));
  html.setAttribute("data-after-bar", firstCells(1) + "|" + location.hash);
  click(document.querySelector('[data-filter-col="severity"][data-filter-value="critical"]'));
  html.setAttribute("data-after-bar-again", String(visible().length));
  click(document.querySelector('[data-filter-col="class"][data-filter-value="Metformin"]'));
  html.setAttribute("data-after-class-bar", firstCells(1));
  document.getElementById("reset").click();
  var q = document.getElementById("q");
  q.value = "famotidine";
  q.dispatchEvent(new Event("input"));
  html.setAttribute("data-after-search", firstCells(1) + "|" +
                    document.getElementById("shown").textContent);
  document.getElementById("reset").click();
  var patient = document.querySelector('th[data-key="patient"] button');
  click(patient);
  html.setAttribute("data-sort-1", firstCells(1));
  click(patient);
  html.setAttribute("data-sort-2", firstCells(1) + "|" + location.hash);
  document.getElementById("reset").click();
  html.setAttribute("data-after-reset", String(visible().length) + "|" + location.hash);
})();
"""


def test_browser_user_clicks_bars_searches_and_sorts(chromium: str, tmp_path: Path) -> None:
    page = example_report_html(tmp_path).read_text(encoding="utf-8")
    digest = base64.b64encode(hashlib.sha256(DRIVER.encode()).digest()).decode()
    page = page.replace("script-src ", f"script-src 'sha256-{digest}' ", 1)
    page = page.replace("</body>", f"<script>{DRIVER}</script></body>", 1)
    root = _html_root(dump_dom(chromium, tmp_path, _write(tmp_path, "driven.html", page)))
    assert root.attrs.get("data-ready") == "1"
    assert root.attrs["data-after-bar"] == "P003|#severity=critical"
    assert root.attrs["data-after-bar-again"] == "7"  # a second click clears the filter
    assert root.attrs["data-after-class-bar"] == "P001,P004"
    assert root.attrs["data-after-search"] == "P006|Showing 1 of 7"
    ascending = (root.attrs["data-sort-1"] or "").split(",")
    assert ascending == sorted(ascending) and len(ascending) == 7
    descending, fragment = (root.attrs["data-sort-2"] or "").split("|")
    assert descending.split(",") == sorted(ascending, reverse=True)
    assert fragment == "#sort=patient:desc"
    assert root.attrs["data-after-reset"] in ("7|", "7|#")


def _write(tmp_path: Path, name: str, page: str) -> Path:
    path = tmp_path / name
    path.write_text(page, encoding="utf-8")
    return path


def _not_pwned(doc: Node) -> None:
    root = _html_root(doc)
    assert root.attrs.get("data-pwned") is None, "a hostile value ran script"
    assert doc.find("title").text_content() != "pwned"
    ids = {n.attrs.get("id") for n in doc.iter()}
    assert "pwned" not in ids, "a hostile value added an element"
    assert not doc.find_all("img") and not doc.find_all("iframe")


def test_browser_hostile_values_run_no_script(chromium: str, tmp_path: Path) -> None:
    path = _write(tmp_path, "hostile.html", render(hostile_report()))
    doc = dump_dom(chromium, tmp_path, path)
    _not_pwned(doc)
    assert _html_root(doc).attrs.get("data-ready") == "1"
    assert doc.find("title").text_content() == TITLE
    assert HOSTILE_IMG in table_rows(doc)[0].text_content()  # shown as text


def test_browser_escaping_alone_holds_without_the_csp(chromium: str, tmp_path: Path) -> None:
    page = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "",
                  render(hostile_report()))
    assert "Content-Security-Policy" not in page
    doc = dump_dom(chromium, tmp_path, _write(tmp_path, "no-csp.html", page))
    _not_pwned(doc)
    assert _html_root(doc).attrs.get("data-ready") == "1"


def test_browser_csp_blocks_a_script_that_is_not_the_pages_own(chromium: str,
                                                               tmp_path: Path) -> None:
    """Defence in depth: were a value ever written unescaped, the CSP would stop it."""
    page = render(_report((_alert("P1", "metformin", "info"),)))
    injected = page.replace("<main>", f"<main><script>{PWN}</script>{HOSTILE_IMG}", 1)
    doc = dump_dom(chromium, tmp_path, _write(tmp_path, "injected.html", injected))
    assert _html_root(doc).attrs.get("data-pwned") is None
    assert doc.find("title").text_content() == TITLE
    assert _html_root(doc).attrs.get("data-ready") == "1"  # the page's own script still runs
    # the control: the same injection without the CSP does run (so the test can fail)
    bare = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", injected)
    doc = dump_dom(chromium, tmp_path, _write(tmp_path, "bare.html", bare))
    assert _html_root(doc).attrs.get("data-pwned") == "1"


def test_browser_renders_the_gaps_page(chromium: str, tmp_path: Path) -> None:
    doc = dump_dom(chromium, tmp_path, _write(tmp_path, "gaps.html", render_gaps()))
    _not_pwned(doc)
    assert _html_root(doc).attrs.get("data-ready") == "1"
    charts = [c for c in doc.find_all("svg") if c.has_class("chart")]
    assert len(charts) == 2 and all(c.find_all("rect") for c in charts)
    assert len(_visible_rows(doc)) == 3
    doc = dump_dom(chromium, tmp_path, _write(tmp_path, "gaps.html", render_gaps()),
                   "#sort=overdue:desc")
    # never tested counts as the most overdue
    assert [r.find("td").text_content() for r in table_rows(doc)] == [
        "P001", "P002", HOSTILE_IMG]


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", head[16:24])
    return width, height


def test_browser_screenshot(chromium: str, tmp_path: Path) -> None:
    page = example_report_html(tmp_path)
    png = tmp_path / "report.png"
    _browser(chromium, tmp_path, "--window-size=1280,1600", f"--screenshot={png}",
             page.as_uri())
    assert _png_size(png) == (1280, 1600)
    assert png.stat().st_size > 30_000  # a rendered page, not a blank one
