"""An RxNav emulator: a real HTTP server on 127.0.0.1 answering like the RxNav REST API.

Used by the tests and the benchmark (``from rxnav_emulator import RxNavEmulator``), and
runnable by hand: ``python tests/rxnav_emulator.py --port 8765`` then point
``B12DRUGS_RXNAV_URL=http://127.0.0.1:8765/REST`` at it.

Data (``tests/data/rxnav/``), copied from ``shared/reference``:

* ``ingredients.csv``: ingredient RxCUIs and names (from ``verified_rxcui.csv``);
* ``products.csv``: product concepts and the ingredient they contain (from
  ``verified_products.csv``);
* ``atc.csv``: ATC classes served by ``/rxclass/class/byRxcui.json``.  Only class-level
  codes named in ``clinical.md`` (A10BA, A02BC, L01XA, L01XX, and the level-3 L01A ...
  L01F where clinical.md names only those); class names are descriptive labels.

Invented values (clearly fake, for paths real data cannot show):

* RxCUIs ``99000000x`` (9 digits starting with 99) for remapped, obsolete, PIN-only,
  combination and empty concepts, and the made-up L01 cytotoxic "emulatoplatin";
* every NDC: labeler ``99999`` (``99999-PPPP-01`` for product row PPPP of
  ``products.csv``) and ``99998`` for obsolete / alien NDCs.  None is a real NDC.

Faults on demand: :meth:`RxNavEmulator.inject` (per path regex, count-limited): slow
answers, timeouts, HTTP 500/503/403/429 with or without ``Retry-After``, truncated or
invalid JSON, connection resets.  Every request is recorded with its arrival time.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import difflib
import json
import re
import socket
import struct
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

DATA = Path(__file__).parent / "data" / "rxnav"
PREFIX = "/REST"
VERSION = "EMULATED-2025-01"

# -- invented test concepts (fake RxCUIs, 9 digits starting with 99) ---------------------
REMAPPED = "990000001"  # remapped to 860975 (metformin ER SCD, real)
OBSOLETE = "990000002"  # obsolete; history names omeprazole 7646 as its ingredient
NOT_CURRENT = "990000003"  # not current; history names cisplatin 2555
PIN_ONLY = "990000005"  # product whose related answer holds only a PIN
NO_INGREDIENT = "990000006"  # active concept with no ingredient
ODD_SHAPES = "990000007"  # related/properties/ATC answers with odd shapes
UNKNOWN = "990000009"  # unknown everywhere
COMBO_MIN = "990000102"  # MIN "metformin / sitagliptin"
SITAGLIPTIN = "990000101"  # IN "sitagliptin" (fake code: no verified RxCUI)
METFORMIN_PIN = "990000103"  # PIN "metformin hydrochloride" (fake code)
EMULATOPLATIN = "990000201"  # a made-up L01XA cytotoxic the knowledge base cannot know
EMULATOPLATIN_SCD = "990000202"  # its injectable product

METFORMIN = "6809"
METFORMIN_ER = "860975"  # 24 HR metformin hydrochloride 500 MG ER Oral Tablet (corpus)
COMBO_SCD = "1243827"  # 24 HR metformin 1000 MG / sitagliptin 100 MG ER Oral Tablet

# -- invented NDCs (labeler 99999 / 99998: not real) -------------------------------------
OBSOLETE_NDC = "99998000101"  # obsolete, history -> 860975
OBSOLETE_NDC_CHAIN = "99998000201"  # obsolete, history -> 990000002 (itself obsolete)
ALIEN_NDC = "99998000301"  # ALIEN status, no history

_INGREDIENT_ALIASES = {
    "cyanocobalamin (vitamin b12)": "11248",
    "ascorbic acid": "1151",
    "levomefolate": "1025342",
}


def product_ndc(index: int) -> str:
    """The fake 11-digit NDC of product row ``index`` (0-based) of products.csv."""
    return f"99999{index + 1:04d}01"


@dataclass
class Fault:
    """One injected fault: applies to requests whose path+query match ``pattern``."""

    pattern: re.Pattern[str]
    kind: str  # status | slow | timeout | truncated | invalid_json | reset | not_object
    remaining: int | None
    status: int = 503
    retry_after: str | None = None
    delay: float = 0.0


@dataclass
class Recorded:
    at: float  # time.monotonic() on arrival
    path: str  # without the /REST prefix
    query: str


@dataclass
class Concept:
    rxcui: str
    name: str
    tty: str


@dataclass
class EmulatorData:
    """Everything the emulator answers from."""

    concepts: dict[str, Concept] = field(default_factory=dict)
    related: dict[str, list[Concept]] = field(default_factory=dict)
    names: dict[str, list[str]] = field(default_factory=dict)
    ndcs: dict[str, str] = field(default_factory=dict)
    ndc_status: dict[str, dict[str, Any]] = field(default_factory=dict)
    history: dict[str, dict[str, Any]] = field(default_factory=dict)
    atc: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    atc_extra_rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    approximate: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    spelling: dict[str, list[str]] = field(default_factory=dict)
    product_ndcs: list[tuple[str, str]] = field(default_factory=list)  # (ndc11, rxcui)

    @classmethod
    def load(cls, folder: Path = DATA) -> EmulatorData:
        d = cls()
        by_name: dict[str, str] = {}
        with (folder / "ingredients.csv").open(encoding="utf-8", newline="") as fh:
            for row in csv.DictReader(fh):
                c = Concept(row["rxcui"], row["name"].lower(), "IN")
                d.concepts[c.rxcui] = c
                d.related[c.rxcui] = [c]  # an ingredient is its own ingredient
                by_name.setdefault(c.name, c.rxcui)
        by_name.update(_INGREDIENT_ALIASES)
        with (folder / "products.csv").open(encoding="utf-8", newline="") as fh:
            for i, row in enumerate(csv.DictReader(fh)):
                ing = by_name.get(row["ingredient"].lower())
                if ing is None or row["rxcui"] in d.concepts:
                    continue
                tty = row["tty"].split(" ")[0] if row["tty"] != "unknown" else ""
                d.concepts[row["rxcui"]] = Concept(row["rxcui"], row["name"], tty)
                d.related[row["rxcui"]] = [d.concepts[ing]]
                ndc = product_ndc(i)
                d.ndcs[ndc] = row["rxcui"]
                d.product_ndcs.append((ndc, row["rxcui"]))
        with (folder / "atc.csv").open(encoding="utf-8", newline="") as fh:
            for row in csv.DictReader(fh):
                d.atc.setdefault(row["rxcui"], []).append((row["class_id"], row["class_name"]))
        for c in d.concepts.values():
            d.names.setdefault(_norm(c.name), []).append(c.rxcui)
        d._add_test_concepts()
        return d

    def _add_test_concepts(self) -> None:
        met = self.concepts[METFORMIN]
        fake = [
            Concept(SITAGLIPTIN, "sitagliptin", "IN"),
            Concept(COMBO_MIN, "metformin / sitagliptin", "MIN"),
            Concept(METFORMIN_PIN, "metformin hydrochloride", "PIN"),
            Concept(PIN_ONLY, "metformin hydrochloride 500 MG (test product)", "SCD"),
            Concept(NO_INGREDIENT, "test concept without ingredient", "DF"),
            Concept(ODD_SHAPES, "test concept with odd answers", "SCD"),
            Concept(EMULATOPLATIN, "emulatoplatin", "IN"),
            Concept(EMULATOPLATIN_SCD, "emulatoplatin 50 MG Injection", "SCD"),
        ]
        for c in fake:
            self.concepts[c.rxcui] = c
            self.names.setdefault(_norm(c.name), []).append(c.rxcui)
        self.related[SITAGLIPTIN] = [self.concepts[SITAGLIPTIN]]
        self.related[EMULATOPLATIN] = [self.concepts[EMULATOPLATIN]]
        self.related[EMULATOPLATIN_SCD] = [self.concepts[EMULATOPLATIN]]
        # a combination product: two INs and the MIN
        self.related[COMBO_SCD] = [met, self.concepts[SITAGLIPTIN], self.concepts[COMBO_MIN]]
        self.related[COMBO_MIN] = [met, self.concepts[SITAGLIPTIN], self.concepts[COMBO_MIN]]
        # a product whose related answer holds only the PIN; the PIN leads to the IN
        self.related[PIN_ONLY] = [self.concepts[METFORMIN_PIN]]
        self.related[METFORMIN_PIN] = [met, self.concepts[METFORMIN_PIN]]
        self.related[NO_INGREDIENT] = []
        self.atc[EMULATOPLATIN] = [("L01XA", "Platinum compounds")]
        # ATC rows to filter: a combination product containing metformin (A10BD per
        # clinical.md) and a repeated row.
        self.atc_extra_rows[METFORMIN] = [
            _atc_row(COMBO_MIN, "metformin / sitagliptin", "MIN", "A10BD",
                     "Combinations of oral blood glucose lowering drugs"),
            _atc_row(METFORMIN, "metformin", "IN", "A10BA", "Biguanides"),
        ]
        self.history[REMAPPED] = _history(
            REMAPPED, "Remapped",
            remapped=[{"remappedRxCui": METFORMIN_ER, "remappedName":
                       self.concepts[METFORMIN_ER].name, "remappedTTY": "SCD",
                       "remappedActive": "YES"}])
        self.history[OBSOLETE] = _history(
            OBSOLETE, "Obsolete",
            ingredients=[{"ingredientRxcui": "7646", "ingredientName": "omeprazole"}])
        self.history[NOT_CURRENT] = _history(
            NOT_CURRENT, "NotCurrent",
            ingredients=[{"ingredientRxcui": "2555", "ingredientName": "cisplatin"}])
        self.ndc_status[OBSOLETE_NDC] = {
            "ndc11": OBSOLETE_NDC, "status": "OBSOLETE", "active": "NO", "rxnormNdc": "YES",
            "rxcui": "", "conceptName": "", "conceptStatus": "",
            "ndcHistory": [
                {"activeRxcui": METFORMIN_ER, "originalRxcui": METFORMIN_ER,
                 "startDate": "200706", "endDate": "201101"},
                {"activeRxcui": METFORMIN_ER, "originalRxcui": METFORMIN_ER,
                 "startDate": "200506", "endDate": "200705"},
            ],
        }
        self.ndc_status[OBSOLETE_NDC_CHAIN] = {
            "ndc11": OBSOLETE_NDC_CHAIN, "status": "OBSOLETE",
            "ndcHistory": {"activeRxcui": "", "originalRxcui": OBSOLETE,
                           "startDate": "200706", "endDate": "201101"},
        }
        self.ndc_status[ALIEN_NDC] = {"ndc11": ALIEN_NDC, "status": "ALIEN"}
        # approximate answers (repeated rxcuis, as RxNav sends one row per atom)
        self.approximate["metforminn"] = [
            _cand(METFORMIN, "metformin", "1", "9.1", "RXNORM"),
            _cand(METFORMIN, "Metformin", "1", "9.1", "MTHSPL"),
            _cand(METFORMIN_ER, self.concepts[METFORMIN_ER].name, "2", "6.0", "RXNORM"),
        ]
        self.approximate["metformin tablet"] = [
            _cand(METFORMIN_ER, self.concepts[METFORMIN_ER].name, "1", "7.5", "RXNORM"),
            _cand("860981", "24 HR metformin hydrochloride 750 MG", "1", "7.5", "RXNORM"),
        ]
        self.approximate["emulatoplatn inj"] = [
            _cand(EMULATOPLATIN_SCD, "emulatoplatin 50 MG Injection", "1", "8.0", "RXNORM"),
            _cand(EMULATOPLATIN, "emulatoplatin", "2", "7.9", "RXNORM"),
        ]
        self.spelling["ambienn"] = []
        self.spelling["metforminn"] = ["metformin", "Metformin", "metformine"]

    # -- answers ---------------------------------------------------------------------
    def rxcui_by_name(self, name: str) -> list[str]:
        return list(self.names.get(_norm(name), []))

    def approximate_candidates(self, term: str, max_entries: int) -> list[dict[str, str]]:
        fixed = self.approximate.get(_norm(term))
        if fixed is not None:
            return fixed[: max_entries * 2]
        # generic: string similarity over ingredient names; equal scores share a rank
        scored = []
        for c in self.concepts.values():
            if c.tty == "IN":
                score = difflib.SequenceMatcher(None, _norm(term), c.name).ratio()
                if score >= 0.6:
                    scored.append((round(score * 10, 2), c))
        scored.sort(key=lambda x: (-x[0], x[1].rxcui))
        out, rank, last = [], 0, None
        for score, c in scored[:max_entries]:
            if score != last:
                rank, last = rank + 1, score
            out.append(_cand(c.rxcui, c.name, str(rank), str(score), "RXNORM"))
        return out

    def suggestions(self, name: str) -> list[str]:
        fixed = self.spelling.get(_norm(name))
        if fixed is not None:
            return fixed
        pool = [c.name for c in self.concepts.values() if c.tty == "IN"]
        return difflib.get_close_matches(_norm(name), pool, n=5, cutoff=0.7)


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def _cand(rxcui: str, name: str, rank: str, score: str, source: str) -> dict[str, str]:
    return {"rxcui": rxcui, "rxaui": "", "score": score, "rank": rank, "name": name,
            "source": source}


def _atc_row(rxcui: str, name: str, tty: str, class_id: str, class_name: str) -> dict[str, Any]:
    return {
        "minConcept": {"rxcui": rxcui, "name": name, "tty": tty},
        "rxclassMinConceptItem": {"classId": class_id, "className": class_name,
                                  "classType": "ATC1-4"},
        "rela": "", "relaSource": "ATC",
    }


def _history(rxcui: str, status: str, *, remapped: list[dict[str, str]] | None = None,
             ingredients: list[dict[str, str]] | None = None) -> dict[str, Any]:
    derived: dict[str, Any] = {}
    if remapped:
        derived["remappedConcept"] = remapped
    if ingredients:
        derived["ingredientConcept"] = ingredients
    return {"rxcuiStatusHistory": {
        "metaData": {"status": status, "source": "RXNORM", "releaseStartDate": "072006",
                     "releaseEndDate": "012011", "isCurrent": "NO", "activeStartDate": "",
                     "activeEndDate": "", "remappedDate": ""},
        "attributes": {"rxcui": rxcui, "name": "", "tty": "", "isMultipleIngredient": "",
                       "isBranded": ""},
        "derivedConcepts": derived,
    }}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    emulator: RxNavEmulator


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # silence stderr
        pass

    def do_GET(self) -> None:
        em = self.server.emulator
        parts = urlsplit(self.path)
        path = parts.path[len(PREFIX):] if parts.path.startswith(PREFIX) else parts.path
        em._record(path, parts.query)
        fault = em._take_fault(f"{path}?{parts.query}")
        if fault is not None and self._apply(fault):
            return
        status, payload = em.answer(path, parts.query)
        body = json.dumps(payload).encode()
        if fault is not None and fault.kind == "truncated":
            self._send(200, body, length=len(body), cut=len(body) // 2)
            return
        if fault is not None and fault.kind == "invalid_json":
            body = b'{"idGroup": {"name": "x", "rxnormId": ["6809"'
        if fault is not None and fault.kind == "not_object":
            body = b'["not", "an", "object"]'
        self._send(status, body)

    def _apply(self, fault: Fault) -> bool:
        """Apply a fault; True when the request is fully handled."""
        if fault.kind in ("slow", "timeout"):
            time.sleep(fault.delay)
            return False
        if fault.kind == "status":
            headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
            self._send(fault.status, b'{"error": "injected"}', headers=headers)
            return True
        if fault.kind == "reset":
            # SO_LINGER 0: close() sends a TCP RST instead of a clean FIN
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True
            return True
        return False

    def _send(self, status: int, body: bytes, *, length: int | None = None,
              cut: int | None = None, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body) if length is None else length))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if cut is not None:
            self.send_header("Connection", "close")
        self.end_headers()
        with contextlib.suppress(OSError):
            self.wfile.write(body if cut is None else body[:cut])
        if cut is not None:
            self.close_connection = True


class RxNavEmulator:
    """A threaded RxNav look-alike on 127.0.0.1 (port 0 = any free port).

    ``with RxNavEmulator() as em: em.base_url`` -> ``http://127.0.0.1:PORT/REST``.
    """

    def __init__(self, data: EmulatorData | None = None, port: int = 0):
        self.data = data or EmulatorData.load()
        self._server = _Server(("127.0.0.1", port), _Handler)
        self._server.emulator = self
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        name="rxnav-emulator", daemon=True)
        self._lock = threading.Lock()
        self.requests: list[Recorded] = []
        self._faults: list[Fault] = []

    # -- lifecycle ---------------------------------------------------------------------
    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{PREFIX}"

    def start(self) -> RxNavEmulator:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> RxNavEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- faults and records -----------------------------------------------------------
    def inject(self, pattern: str, kind: str, count: int | None = 1, *, status: int = 503,
               retry_after: str | None = None, delay: float = 0.0) -> None:
        """Make the next ``count`` requests matching ``pattern`` (a regex searched in
        ``path?query``; ``None`` count = forever) fail with ``kind``."""
        with self._lock:
            self._faults.append(Fault(re.compile(pattern), kind, count, status, retry_after,
                                      delay))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _take_fault(self, target: str) -> Fault | None:
        with self._lock:
            for f in self._faults:
                if f.remaining != 0 and f.pattern.search(target):
                    if f.remaining is not None:
                        f.remaining -= 1
                    return f
        return None

    def _record(self, path: str, query: str) -> None:
        with self._lock:
            self.requests.append(Recorded(time.monotonic(), path, query))

    def reset_log(self) -> None:
        with self._lock:
            self.requests.clear()

    def count(self, pattern: str = "") -> int:
        rx = re.compile(pattern)
        with self._lock:
            return sum(1 for r in self.requests if rx.search(f"{r.path}?{r.query}"))

    def by_endpoint(self) -> Counter[str]:
        """Requests per endpoint (RxCUIs in paths replaced by ``{id}``)."""
        with self._lock:
            return Counter(endpoint(r.path, r.query) for r in self.requests)

    def max_in_window(self, window: float = 1.0) -> int:
        """The most requests that arrived within any ``window`` seconds."""
        with self._lock:
            times = sorted(r.at for r in self.requests)
        best, lo = 0, 0
        for hi, t in enumerate(times):
            while t - times[lo] >= window:
                lo += 1
            best = max(best, hi - lo + 1)
        return best

    # -- the API -----------------------------------------------------------------------
    def answer(self, path: str, query: str) -> tuple[int, Any]:
        q = {k: v[0] for k, v in parse_qs(query, keep_blank_values=True).items()}
        d = self.data
        if path == "/version.json":
            return 200, {"version": VERSION, "apiVersion": "3.1.0"}
        if path == "/rxcui.json":
            if q.get("idtype", "").upper() == "NDC":
                ndc = q.get("id", "").replace("-", "")
                ids = [d.ndcs[ndc]] if ndc in d.ndcs else []
                return 200, {"idGroup": ({"idType": "NDC", "id": q.get("id", ""), "rxnormId": ids}
                                         if ids else {"idType": "NDC", "id": q.get("id", "")})}
            name = q.get("name", "")
            ids = d.rxcui_by_name(name)
            return 200, {"idGroup": {"name": name, "rxnormId": ids} if ids else {"name": name}}
        if path == "/approximateTerm.json":
            term = q.get("term", "")
            cands = d.approximate_candidates(term, int(q.get("maxEntries", "20") or 20))
            group: dict[str, Any] = {"inputTerm": term, "maxEntries": q.get("maxEntries", "")}
            if cands:
                group["candidate"] = cands
            return 200, {"approximateGroup": group}
        if path == "/spellingsuggestions.json":
            name = q.get("name", "")
            sugg = d.suggestions(name)
            sg: dict[str, Any] = {"name": name}
            sg["suggestionList"] = {"suggestion": sugg} if sugg else None
            return 200, {"suggestionGroup": sg}
        if path == "/ndcstatus.json":
            ndc = q.get("ndc", "")
            if ndc in d.ndc_status:
                return 200, {"ndcStatus": d.ndc_status[ndc]}
            if ndc in d.ndcs:
                rx = d.ndcs[ndc]
                return 200, {"ndcStatus": {
                    "ndc11": ndc, "status": "ACTIVE", "rxcui": rx,
                    "conceptName": d.concepts[rx].name, "conceptStatus": "ACTIVE",
                    "ndcHistory": [{"activeRxcui": rx, "originalRxcui": rx,
                                    "startDate": "201001", "endDate": ""}]}}
            return 200, {"ndcStatus": {"ndc11": ndc, "status": "UNKNOWN", "ndcHistory": []}}
        if path == "/rxclass/class/byRxcui.json":
            rx = q.get("rxcui", "")
            if rx == ODD_SHAPES:
                return 200, {"rxclassDrugInfoList": {"rxclassDrugInfo": [
                    "junk", {"minConcept": "not an object"},
                    {"minConcept": {"rxcui": rx}, "rxclassMinConceptItem": None}]}}
            rows = [_atc_row(rx, d.concepts[rx].name, d.concepts[rx].tty, cid, cname)
                    for cid, cname in d.atc.get(rx, [])]
            rows += d.atc_extra_rows.get(rx, [])
            if not rows:
                return 200, {}
            return 200, {"rxclassDrugInfoList": {"rxclassDrugInfo": rows}}
        if path == "/rxclass/classMembers.json":
            cid = q.get("classId", "").upper()
            ttys = set(re.split(r"[ +,]", q.get("ttys", "IN") or "IN"))
            members = []
            for rx, classes in sorted(d.atc.items()):
                c = d.concepts.get(rx)
                if c and c.tty in ttys and any(k.startswith(cid) for k, _ in classes):
                    members.append({"minConcept": {"rxcui": rx, "name": c.name, "tty": c.tty},
                                    "nodeAttr": [{"attrName": "SourceId",
                                                  "attrValue": classes[0][0]}]})
            return 200, ({"drugMemberGroup": {"drugMember": members}} if members else {})
        m = re.fullmatch(r"/rxcui/([^/]+)/(related|properties|historystatus)\.json", path)
        if m:
            return self._concept_answer(m.group(1), m.group(2), q)
        return 404, {"error": f"no such path {path}"}

    def _concept_answer(self, rx: str, what: str, q: dict[str, str]) -> tuple[int, Any]:
        d = self.data
        if not rx.isdigit():
            return 400, {"error": "rxcui must be numeric"}
        if what == "properties":
            c = d.concepts.get(rx)
            if c is None:
                return 200, {}
            if rx == ODD_SHAPES:
                return 200, {"properties": {"rxcui": int(rx), "name": None, "tty": "SCD"}}
            return 200, {"properties": {"rxcui": rx, "name": c.name, "synonym": "",
                                        "tty": c.tty, "language": "ENG", "suppress": "N",
                                        "umlscui": ""}}
        if what == "related":
            ttys = [t for t in re.split(r"[ +]", q.get("tty", "")) if t] or ["IN", "MIN", "PIN"]
            if rx == ODD_SHAPES:
                return 200, {"relatedGroup": {"rxcui": "", "termType": ttys, "conceptGroup": {
                    "tty": "IN", "conceptProperties": {"rxcui": METFORMIN, "name": "metformin",
                                                       "tty": "IN"}}}}
            concepts = d.related.get(rx, [])
            groups = []
            for tty in ttys:
                props = [_props(c) for c in concepts if c.tty == tty]
                groups.append({"tty": tty, "conceptProperties": props} if props else {"tty": tty})
            return 200, {"relatedGroup": {"rxcui": "", "termType": ttys, "conceptGroup": groups}}
        # historystatus
        if rx in d.history:
            return 200, d.history[rx]
        if rx in d.concepts:
            return 200, _history(rx, "Active")
        return 200, {"rxcuiStatusHistory": {"metaData": {"status": "UNKNOWN"},
                                            "attributes": {}, "derivedConcepts": {}}}


def _props(c: Concept) -> dict[str, str]:
    return {"rxcui": c.rxcui, "name": c.name, "synonym": "", "tty": c.tty, "language": "ENG",
            "suppress": "N", "umlscui": ""}


def endpoint(path: str, query: str = "") -> str:
    """A request's endpoint label: ``/rxcui/{id}/related.json``, ``/rxcui.json?idtype=NDC``."""
    label = re.sub(r"/rxcui/\d+/", "/rxcui/{id}/", path)
    if path == "/rxcui.json":
        label += "?idtype=NDC" if "idtype=NDC" in query else "?name"
    return label


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run the RxNav emulator on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    em = RxNavEmulator(port=args.port).start()
    print(f"RxNav emulator at {em.base_url}  (Ctrl-C to stop)", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        em.stop()


if __name__ == "__main__":
    main()
