"""A local RxNorm index: RRF release files streamed into one SQLite file.

Why: pharmacy systems send product codes (SCD/SBD/GPCK/BPCK RxCUIs) and NDCs that the
offline knowledge base cannot know, and many sites cannot call RxNav for every order.
A user downloads an RxNorm release (the full release or the licence-free *Current
Prescribable Content* subset, same layout), runs ``b12drugs rxnorm import PATH`` once
per release, and the ``rxnorm-index`` resolver answers codes, NDCs and names offline.

Import (:func:`import_release`):

* **streams** every file line by line and inserts with ``executemany`` in batches:
  memory stays flat whatever the file size;
* is **atomic**: the index is built into ``<path>.tmp`` and moved over the old index
  with :func:`os.replace` only when complete, so an interrupted or failed import leaves
  the previous index untouched (and no temporary file behind);
* keeps only what resolution needs: ``SAB=RXNORM`` names and term types, ``SAB=ATC``
  codes (which share the RxCUI of their ingredient), the ``SAB=RXNORM`` relationships
  that lead from a product down to its ingredients, ``SAB=RXNORM`` NDCs (11 digits),
  and, when present, ``RXNCUI.RRF`` / ``RXNCUICHANGES.RRF`` for retired concepts;
* counts odd rows (wrong field count, non-UTF-8 bytes, non-numeric RxCUIs, bad NDCs)
  and reports them with the first few line numbers instead of failing.

Relationship direction: in ``RXNREL.RRF`` the ``RELA`` is the relationship that the
*second* concept (``RXCUI2``) has to the *first* (``RXCUI1``), as NLM documents it, so a
row ``6809|...|2|860975|...|has_ingredient`` would read "860975 has_ingredient 6809".
The index stores edges as ``src=RXCUI2 --rela--> dst=RXCUI1``.

:class:`LocalIndex` implements :class:`~b12drugs.resolve.source.ConceptSource`.
"""

from __future__ import annotations

import os
import re
import sqlite3
import threading
import time
import unicodedata
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO

from ..errors import InputError, SourceUnavailable
from ..models import normalize_ndc
from .source import AtcClass, Concept, History, NdcInfo

SCHEMA_VERSION = "1"
SOURCE_NAME = "local-index"
BATCH = 5_000

#: Field counts of each file (the trailing pipe makes ``split("|")`` give one more).
FIELDS = {"RXNCONSO": 18, "RXNREL": 16, "RXNSAT": 13, "RXNCUI": 5, "RXNCUICHANGES": 7}

#: RxNorm term types that name a concept; other RXNORM atoms (synonyms, tall-man
#: spellings, prescribable names) are extra names of the same concept.
SECONDARY_TTYS = frozenset({"SY", "TMSY", "PSN", "ET"})
INGREDIENT_TTYS = ("IN", "MIN", "PIN")

#: Relationships that lead from a product towards its ingredients (src RELA dst).
#: Their inverses (ingredient_of, has_tradename, constitutes ...) are not stored,
#: so a walk never climbs from an ingredient to every product that contains it.
DOWNWARD_RELAS = frozenset(
    {
        "has_ingredient",  # SCDC/SCDF/SCDG/SBDC -> IN, SBD -> BN
        "has_ingredients",  # SCD/SBD/SCDF... -> MIN
        "has_precise_ingredient",  # SCDC -> PIN
        "consists_of",  # SCD -> SCDC, SBD -> SBDC
        "tradename_of",  # SBD -> SCD, BN -> IN, BPCK -> GPCK
        "contains",  # GPCK/BPCK -> SCD/SBD
        "has_part",  # MIN -> IN
        "form_of",  # PIN -> IN
        "isa",  # SCD -> SCDF/SCDG
        "quantified_form_of",  # quantified SCD -> SCD
    }
)
MAX_WALK_DEPTH = 6
MAX_WALK_NODES = 2_000

_DATE_IN_NAME = re.compile(r"(?<!\d)(\d{2})(\d{2})(\d{4})(?!\d)")
_TOKEN = re.compile(r"[a-z0-9]+(?:\.[0-9]+)?")


def normalize_name(text: str) -> str:
    """A forgiving key for names: case, accents, punctuation and word order ignored.

    ``"Metformin Hydrochloride"``, ``"metformin-hydrochloride"`` and
    ``"hydrochloride, metformin"`` share one key.
    """
    folded = unicodedata.normalize("NFKD", text.casefold()).encode("ascii", "ignore").decode()
    return " ".join(sorted(_TOKEN.findall(folded)))


# --------------------------------------------------------------------------- import


@dataclass
class FileStats:
    """What the import made of one RRF file."""

    name: str
    lines: int = 0
    kept: int = 0
    odd: int = 0
    non_utf8: int = 0
    examples: list[str] = field(default_factory=list)

    def note(self, line_no: int, why: str) -> None:
        self.odd += 1
        if len(self.examples) < 5:
            self.examples.append(f"{self.name}:{line_no}: {why}")


@dataclass
class ImportReport:
    """Summary of an import, printed by ``b12drugs rxnorm import``."""

    path: Path
    release: str
    files: list[FileStats]
    seconds: float
    counts: dict[str, int]

    @property
    def lines(self) -> int:
        return sum(f.lines for f in self.files)

    @property
    def odd(self) -> int:
        return sum(f.odd for f in self.files)

    @property
    def rows_per_second(self) -> float:
        return self.lines / self.seconds if self.seconds > 0 else float("inf")

    def render(self) -> str:
        out = [f"RxNorm release {self.release} imported into {self.path}"]
        for f in self.files:
            line = f"  {f.name}: {f.lines:,} lines read, {f.kept:,} kept"
            if f.odd:
                line += f", {f.odd:,} odd rows skipped"
            if f.non_utf8:
                line += f", {f.non_utf8:,} rows with non-UTF-8 bytes (read with replacement)"
            out.append(line)
            out.extend(f"    {e}" for e in f.examples)
        out.append(
            "  index: "
            + ", ".join(f"{v:,} {k}" for k, v in self.counts.items())
        )
        out.append(
            f"  {self.lines:,} lines in {self.seconds:.1f} s "
            f"({self.rows_per_second:,.0f} rows/s)"
        )
        return "\n".join(out)


class _Release:
    """Opens the RRF files of a release folder, a folder of RRF files, or a zip."""

    def __init__(self, path: Path):
        self.path = path
        self._zip: zipfile.ZipFile | None = None
        self._members: dict[str, str] = {}
        if path.is_file():
            try:
                self._zip = zipfile.ZipFile(path)
            except (zipfile.BadZipFile, OSError) as exc:
                raise InputError(
                    f"not a zip file or RxNorm release folder ({exc})", str(path)
                ) from exc
            names = self._zip.namelist()
        elif path.is_dir():
            names = [str(p.relative_to(path)) for p in path.rglob("*") if p.is_file()]
        else:
            raise InputError("no such file or folder", str(path))
        self._names = names
        for n in names:
            base = n.replace("\\", "/").rsplit("/", 1)[-1]
            if base.upper().endswith(".RRF"):
                key = base.upper()[:-4]
                # prefer files under rrf/ when a release carries several copies
                if key not in self._members or "/rrf/" in f"/{n.lower()}":
                    self._members[key] = n
        if "RXNCONSO" not in self._members:
            raise InputError(
                "no RXNCONSO.RRF found: give an RxNorm release folder (with rrf/), "
                "the folder of RRF files, or the release zip",
                str(path),
            )

    def has(self, key: str) -> bool:
        return key in self._members

    def open(self, key: str) -> IO[bytes]:
        member = self._members[key]
        if self._zip is not None:
            return self._zip.open(member)
        return (self.path / member).open("rb")

    def version(self) -> str:
        """The release date from the folder/zip/readme name (``RxNorm_full_01062025``),
        else from a version line of a readme, else ``unknown``."""
        candidates = [self.path.name, self.path.resolve().parent.name, *self._names]
        for name in candidates:
            m = _DATE_IN_NAME.search(name.replace("\\", "/").rsplit("/", 1)[-1]) or (
                _DATE_IN_NAME.search(name)
            )
            if m and 1 <= int(m.group(1)) <= 12 and 1 <= int(m.group(2)) <= 31:
                return f"{m.group(3)}-{m.group(1)}-{m.group(2)}"
        for n in self._names:
            if "readme" in n.lower() and n.lower().endswith(".txt"):
                head = self._read_head(n)
                m = re.search(r"(?i)(?:release|version)\D{0,20}(\d{1,2})/(\d{1,2})/(\d{4})", head)
                if m:
                    return f"{m.group(3)}-{int(m.group(1)):02d}-{int(m.group(2)):02d}"
        return "unknown"

    def _read_head(self, member: str) -> str:
        if self._zip is not None:
            with self._zip.open(member) as fh:
                return fh.read(4096).decode("utf-8", "replace")
        with (self.path / member).open("rb") as fh:
            return fh.read(4096).decode("utf-8", "replace")

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()


def _rows(
    stream: IO[bytes], stats: FileStats, nfields: int
) -> Iterator[tuple[int, list[str]]]:
    """Split each line into fields; count and skip rows with the wrong field count."""
    for line_no, raw in enumerate(stream, start=1):
        stats.lines += 1
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            stats.non_utf8 += 1
            if len(stats.examples) < 5:
                stats.examples.append(f"{stats.name}:{line_no}: non-UTF-8 bytes")
            line = raw.decode("utf-8", "replace")
        parts = line.rstrip("\r\n").split("|")
        if len(parts) == nfields + 1 and parts[-1] == "":
            parts.pop()
        elif len(parts) != nfields:
            stats.note(line_no, f"{len(parts) - 1} fields, expected {nfields}")
            continue
        yield line_no, parts


_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT) WITHOUT ROWID;
CREATE TABLE names (rxcui INTEGER NOT NULL, tty TEXT NOT NULL, str TEXT NOT NULL,
                    lc TEXT NOT NULL, norm TEXT NOT NULL, suppress TEXT NOT NULL);
CREATE TABLE atc (rxcui INTEGER NOT NULL, code TEXT NOT NULL, name TEXT NOT NULL);
CREATE TABLE rel (src INTEGER NOT NULL, rela TEXT NOT NULL, dst INTEGER NOT NULL);
CREATE TABLE ndc (ndc11 TEXT NOT NULL, rxcui INTEGER NOT NULL, suppress TEXT NOT NULL);
CREATE TABLE retired (rxcui INTEGER NOT NULL, ver_start TEXT, ver_end TEXT,
                      cardinality TEXT, new_rxcui INTEGER);
CREATE TABLE cuichanges (old_rxcui INTEGER NOT NULL, new_rxcui INTEGER NOT NULL,
                         sab TEXT, tty TEXT, str TEXT);
"""

_FINISH = """
CREATE TABLE concepts (rxcui INTEGER PRIMARY KEY, name TEXT NOT NULL, tty TEXT NOT NULL,
                       suppress TEXT NOT NULL);
INSERT OR IGNORE INTO concepts
  SELECT rxcui, str, tty, suppress FROM names
  WHERE tty NOT IN ('SY', 'TMSY', 'PSN', 'ET')
  ORDER BY suppress != 'N', rowid;
CREATE INDEX names_lc ON names (lc);
CREATE INDEX names_norm ON names (norm);
CREATE INDEX atc_rxcui ON atc (rxcui);
CREATE INDEX atc_code ON atc (code);
CREATE INDEX rel_src ON rel (src);
CREATE INDEX ndc_ndc ON ndc (ndc11);
CREATE INDEX ndc_rxcui ON ndc (rxcui);
CREATE INDEX retired_rxcui ON retired (rxcui);
CREATE INDEX cuichanges_old ON cuichanges (old_rxcui);
ANALYZE;
"""


def _batched(
    conn: sqlite3.Connection, sql: str, rows: Iterable[tuple[object, ...]], size: int = BATCH
) -> int:
    n = 0
    batch: list[tuple[object, ...]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            conn.executemany(sql, batch)
            n += len(batch)
            batch.clear()
    if batch:
        conn.executemany(sql, batch)
        n += len(batch)
    return n


def _int(value: str) -> int | None:
    return int(value) if value.isdigit() and len(value) <= 10 else None


def _load_conso(
    conn: sqlite3.Connection, stream: IO[bytes], stats: FileStats
) -> None:
    atc_rows: list[tuple[object, ...]] = []

    def names() -> Iterator[tuple[object, ...]]:
        for line_no, f in _rows(stream, stats, FIELDS["RXNCONSO"]):
            sab = f[11]
            if sab != "RXNORM" and sab != "ATC":
                continue
            rxcui = _int(f[0])
            if rxcui is None:
                stats.note(line_no, f"RXCUI {f[0]!r} is not numeric")
                continue
            stats.kept += 1
            if sab == "ATC":
                atc_rows.append((rxcui, f[13].strip().upper(), f[14]))
                if len(atc_rows) >= BATCH:
                    conn.executemany("INSERT INTO atc VALUES (?,?,?)", atc_rows)
                    atc_rows.clear()
                continue
            s = f[14]
            yield (rxcui, f[12], s, s.lower(), normalize_name(s), f[16] or "N")

    _batched(conn, "INSERT INTO names VALUES (?,?,?,?,?,?)", names())
    if atc_rows:
        conn.executemany("INSERT INTO atc VALUES (?,?,?)", atc_rows)


def _load_rel(conn: sqlite3.Connection, stream: IO[bytes], stats: FileStats) -> None:
    def rows() -> Iterator[tuple[object, ...]]:
        for line_no, f in _rows(stream, stats, FIELDS["RXNREL"]):
            if f[10] != "RXNORM" or f[7] not in DOWNWARD_RELAS:
                continue
            if not f[0] or not f[4]:
                continue  # atom-level relationship
            a, b = _int(f[0]), _int(f[4])
            if a is None or b is None:
                stats.note(line_no, "RXCUI1/RXCUI2 not numeric")
                continue
            stats.kept += 1
            yield (b, f[7], a)

    _batched(conn, "INSERT INTO rel VALUES (?,?,?)", rows())


def _load_sat(conn: sqlite3.Connection, stream: IO[bytes], stats: FileStats) -> None:
    def rows() -> Iterator[tuple[object, ...]]:
        for line_no, f in _rows(stream, stats, FIELDS["RXNSAT"]):
            if f[8] != "NDC" or f[9] != "RXNORM":
                continue
            rxcui = _int(f[0])
            if rxcui is None:
                stats.note(line_no, f"RXCUI {f[0]!r} is not numeric")
                continue
            try:
                ndc = normalize_ndc(f[10])
            except ValueError as exc:
                stats.note(line_no, str(exc))
                continue
            stats.kept += 1
            yield (ndc, rxcui, f[11] or "N")

    _batched(conn, "INSERT INTO ndc VALUES (?,?,?)", rows())


def _load_rxncui(conn: sqlite3.Connection, stream: IO[bytes], stats: FileStats) -> None:
    def rows() -> Iterator[tuple[object, ...]]:
        for line_no, f in _rows(stream, stats, FIELDS["RXNCUI"]):
            old = _int(f[0])
            if old is None:
                stats.note(line_no, f"CUI1 {f[0]!r} is not numeric")
                continue
            stats.kept += 1
            yield (old, f[1], f[2], f[3], _int(f[4]))

    _batched(conn, "INSERT INTO retired VALUES (?,?,?,?,?)", rows())


def _load_cuichanges(conn: sqlite3.Connection, stream: IO[bytes], stats: FileStats) -> None:
    def rows() -> Iterator[tuple[object, ...]]:
        for line_no, f in _rows(stream, stats, FIELDS["RXNCUICHANGES"]):
            old, new = _int(f[5]), _int(f[6])
            if old is None or new is None:
                stats.note(line_no, "OLD_RXCUI/NEW_RXCUI not numeric")
                continue
            if f[2] != "RXNORM":
                continue
            stats.kept += 1
            yield (old, new, f[2], f[3], f[4])

    _batched(conn, "INSERT INTO cuichanges VALUES (?,?,?,?,?)", rows())


Loader = Callable[[sqlite3.Connection, IO[bytes], FileStats], None]
LOADERS: tuple[tuple[str, Loader], ...] = (
    ("RXNCONSO", _load_conso),
    ("RXNREL", _load_rel),
    ("RXNSAT", _load_sat),
    ("RXNCUI", _load_rxncui),
    ("RXNCUICHANGES", _load_cuichanges),
)


def default_index_path() -> Path:
    """``<user data dir>/rxnorm.sqlite`` (platformdirs), where imports go by default."""
    from platformdirs import user_data_dir

    return Path(user_data_dir("b12drugs")) / "rxnorm.sqlite"


def tmp_path_for(path: Path) -> Path:
    return path.with_name(path.name + ".tmp")


def import_release(
    source: str | os.PathLike[str],
    index_path: str | os.PathLike[str] | None = None,
    *,
    release: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> ImportReport:
    """Build the index from an RxNorm release, atomically.

    :param source: release folder (with ``rrf/`` or the RRF files directly) or its zip.
    :param index_path: the index file (default :func:`default_index_path`).
    :param release: override the release version found in the names.
    :raises InputError: the source is not a readable release.
    """
    src = Path(source)
    target = Path(index_path) if index_path is not None else default_index_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_path_for(target)
    started = time.perf_counter()
    rel = _Release(src)
    version = release or rel.version()
    stats: list[FileStats] = []
    try:
        if tmp.exists():
            tmp.unlink()  # left by an import that was killed
        conn = sqlite3.connect(tmp, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=OFF")
            conn.execute("PRAGMA synchronous=OFF")
            conn.execute("PRAGMA cache_size=-65536")
            conn.execute("PRAGMA temp_store=MEMORY")
            conn.executescript(_SCHEMA)
            conn.execute("BEGIN")
            for key, loader in LOADERS:
                if not rel.has(key):
                    continue
                st = FileStats(f"{key}.RRF")
                stats.append(st)
                if progress:
                    progress(f"reading {key}.RRF")
                with ExitStack() as stack:
                    stream = stack.enter_context(rel.open(key))
                    loader(conn, stream, st)
            if progress:
                progress("building indexes")
            conn.execute("COMMIT")
            conn.executescript(_FINISH)
            counts = {
                "concepts": conn.execute("SELECT count(*) FROM concepts").fetchone()[0],
                "names": conn.execute("SELECT count(*) FROM names").fetchone()[0],
                "relationships": conn.execute("SELECT count(*) FROM rel").fetchone()[0],
                "NDCs": conn.execute("SELECT count(*) FROM ndc").fetchone()[0],
                "ATC codes": conn.execute("SELECT count(*) FROM atc").fetchone()[0],
                "retired": conn.execute("SELECT count(*) FROM retired").fetchone()[0]
                + conn.execute("SELECT count(*) FROM cuichanges").fetchone()[0],
            }
            meta = {
                "schema_version": SCHEMA_VERSION,
                "release": version,
                "imported_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "source": str(src.resolve()),
                "files": ",".join(s.name for s in stats),
                "has_history": "1" if rel.has("RXNCUI") or rel.has("RXNCUICHANGES") else "0",
                "odd_rows": str(sum(s.odd for s in stats)),
            }
            conn.executemany("INSERT INTO meta VALUES (?,?)", meta.items())
        finally:
            conn.close()
        os.replace(tmp, target)
    except BaseException:
        with suppress(FileNotFoundError):
            tmp.unlink()
        raise
    finally:
        rel.close()
    return ImportReport(target, version, stats, time.perf_counter() - started, counts)


# --------------------------------------------------------------------------- lookups


class LocalIndex:
    """Read-only :class:`~b12drugs.resolve.source.ConceptSource` over an index file.

    Thread-safe: one read-only connection guarded by a lock (SQLite lookups on an
    indexed file take microseconds, so contention is not a concern).
    """

    name = SOURCE_NAME

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        if not self.path.is_file():
            raise SourceUnavailable(
                f"RxNorm index {self.path} does not exist; build it with 'b12drugs rxnorm import'"
            )
        try:
            self._conn = sqlite3.connect(
                f"{self.path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False
            )
            meta = dict(self._conn.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.DatabaseError as exc:
            raise SourceUnavailable(f"{self.path} is not a b12drugs RxNorm index ({exc})") from exc
        if meta.get("schema_version") != SCHEMA_VERSION:
            self._conn.close()
            raise SourceUnavailable(
                f"{self.path} was built by another b12drugs version "
                f"(schema {meta.get('schema_version')!r}); import the release again"
            )
        self.meta: dict[str, str] = meta
        self._lock = threading.Lock()

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> LocalIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _q(self, sql: str, params: Sequence[object] = ()) -> list[tuple[object, ...]]:
        try:
            with self._lock:
                return self._conn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise SourceUnavailable(f"RxNorm index {self.path}: {exc}") from exc

    @staticmethod
    def _key(rxcui: str) -> int | None:
        rxcui = rxcui.strip()
        return int(rxcui) if rxcui.isdigit() and len(rxcui) <= 10 else None

    # -- ConceptSource -------------------------------------------------------
    def data_version(self) -> str | None:
        return self.meta.get("release")

    def _concept(self, key: int) -> Concept | None:
        rows = self._q("SELECT name, tty, suppress FROM concepts WHERE rxcui = ?", (key,))
        if not rows:
            return None
        name, tty, suppress = rows[0]
        return Concept(str(key), str(name), str(tty), active=suppress == "N")

    def properties(self, rxcui: str) -> Concept | None:
        key = self._key(rxcui)
        return None if key is None else self._concept(key)

    def ingredients(self, rxcui: str) -> list[Concept]:
        """Walk the product-to-ingredient relationships down to IN concepts.

        MIN and PIN lead on to their INs (``has_part``, ``form_of``); a MIN or PIN with
        no such link is returned itself.  An IN returns itself.
        """
        key = self._key(rxcui)
        if key is None:
            return []
        start = self._concept(key)
        if start is not None and not start.active:
            return []  # like RxNav: only active concepts; history() names its ingredients
        return self._walk(key)

    def _walk(self, key: int) -> list[Concept]:
        """Breadth-first walk over the downward relationships, each concept visited
        once (a visited set keeps odd or cyclic graphs cheap), stopping at INs."""
        seen = {key}
        frontier = [key]
        found: dict[int, Concept] = {}
        for _depth in range(MAX_WALK_DEPTH + 1):
            if not frontier:
                break
            ttys: dict[int, str] = {}
            for chunk in _chunks(frontier):
                marks = ",".join("?" * len(chunk))
                for rx, name, tty, supp in self._q(
                    f"SELECT rxcui, name, tty, suppress FROM concepts WHERE rxcui IN ({marks})",
                    chunk,
                ):
                    ttys[int(str(rx))] = str(tty)
                    if tty in INGREDIENT_TTYS:
                        found[int(str(rx))] = Concept(str(rx), str(name), str(tty),
                                                      active=supp == "N")
            expand = [k for k in frontier if ttys.get(k) != "IN"]
            nxt: list[int] = []
            for chunk in _chunks(expand):
                marks = ",".join("?" * len(chunk))
                for (dst,) in self._q(
                    f"SELECT DISTINCT dst FROM rel WHERE src IN ({marks})", chunk
                ):
                    d = int(str(dst))
                    if d not in seen and len(seen) < MAX_WALK_NODES:
                        seen.add(d)
                        nxt.append(d)
            frontier = nxt
        concepts = sorted(found.values(), key=lambda c: (c.name, c.rxcui))
        ins = [c for c in concepts if c.tty == "IN"]
        return ins or concepts

    def rxcuis_by_name(self, name: str) -> list[str]:
        text = name.strip()
        if not text:
            return []
        rows = self._q(
            "SELECT DISTINCT rxcui FROM names WHERE lc = ? AND suppress = 'N' ORDER BY rxcui",
            (text.lower(),),
        )
        if not rows:
            norm = normalize_name(text)
            if not norm:
                return []
            rows = self._q(
                "SELECT DISTINCT rxcui FROM names WHERE norm = ? AND suppress = 'N' ORDER BY rxcui",
                (norm,),
            )
        return [str(r[0]) for r in rows]

    def rxcuis_by_ndc(self, ndc11: str) -> list[str]:
        rows = self._q(
            "SELECT DISTINCT rxcui FROM ndc WHERE ndc11 = ? AND suppress = 'N' ORDER BY rxcui",
            (_ndc_key(ndc11),),
        )
        return [str(r[0]) for r in rows]

    def ndc_status(self, ndc11: str) -> NdcInfo | None:
        """``ACTIVE`` with its concept, or ``OBSOLETE`` (only suppressed rows) with the
        concepts it was last attached to; ``None`` when the release never listed it."""
        key = _ndc_key(ndc11)
        rows = self._q("SELECT rxcui, suppress FROM ndc WHERE ndc11 = ? ORDER BY rxcui", (key,))
        if not rows:
            return None
        active = [str(r[0]) for r in rows if r[1] == "N"]
        every = tuple(dict.fromkeys(str(r[0]) for r in rows))
        if active:
            return NdcInfo(key, "ACTIVE", active[0], every)
        return NdcInfo(key, "OBSOLETE", every[-1], every)

    def history(self, rxcui: str) -> History | None:
        key = self._key(rxcui)
        if key is None:
            return History(rxcui, "Unknown")
        concept = self._concept(key)
        if concept is not None:
            status = "Active" if concept.active else "Obsolete"
            own = () if concept.active else tuple(self._walk(key))
            return History(rxcui, status, ingredients=own)
        successors: list[int] = []
        retired = False
        for (new,) in self._q("SELECT new_rxcui FROM retired WHERE rxcui = ?", (key,)):
            retired = True
            if isinstance(new, int) and new != key:
                successors.append(new)
        changes = "SELECT DISTINCT new_rxcui FROM cuichanges WHERE old_rxcui = ?"
        for (new,) in self._q(changes, (key,)):
            retired = True
            if isinstance(new, int) and new != key:
                successors.append(new)
        remapped = [c for c in (self._concept(s) for s in dict.fromkeys(successors)) if c]
        if remapped:
            ings: list[Concept] = []
            for c in remapped:
                ings.extend(i for i in self.ingredients(c.rxcui) if i not in ings)
            return History(rxcui, "Remapped", tuple(remapped), tuple(ings))
        if retired:
            return History(rxcui, "Obsolete")
        return History(rxcui, "Unknown")

    def atc_classes(self, rxcui: str) -> list[AtcClass]:
        """ATC codes of a concept, or of its ingredients for a product."""
        key = self._key(rxcui)
        if key is None:
            return []
        keys = [key]
        rows = self._q("SELECT code, name, rxcui FROM atc WHERE rxcui = ? ORDER BY code", (key,))
        if not rows:
            keys = [int(c.rxcui) for c in self.ingredients(rxcui)]
            rows = []
            for k in keys:
                rows += self._q(
                    "SELECT code, name, rxcui FROM atc WHERE rxcui = ? ORDER BY code", (k,)
                )
        seen: dict[tuple[str, str], AtcClass] = {}
        for code, cname, rx in rows:
            seen.setdefault((str(code), str(rx)), AtcClass(str(code), str(cname), str(rx)))
        return list(seen.values())

    def class_members(self, class_id: str, ttys: str = "IN") -> list[Concept]:
        """Concepts whose ATC code starts with ``class_id`` (``L01A`` -> alkylating agents)."""
        prefix = class_id.strip().upper()
        if not prefix or not prefix.isalnum():
            return []
        wanted = [t for t in re.split(r"[\s+,]+", ttys.upper()) if t] or ["IN"]
        marks = ",".join("?" * len(wanted))
        rows = self._q(
            f"""
            SELECT DISTINCT c.rxcui, c.name, c.tty, c.suppress FROM atc a
              JOIN concepts c ON c.rxcui = a.rxcui
            WHERE a.code >= ? AND a.code < ? AND c.tty IN ({marks})
            ORDER BY c.name
            """,
            (prefix, prefix + "\uffff", *wanted),
        )
        return [Concept(str(r[0]), str(r[1]), str(r[2]), active=r[3] == "N") for r in rows]

    def atc_codes_for(self, rxcui: str, prefix: str = "") -> list[str]:
        """The ATC codes attached to an ingredient, optionally under a prefix."""
        return sorted(
            {c.class_id for c in self.atc_classes(rxcui) if c.class_id.startswith(prefix.upper())}
        )


def _chunks(keys: Sequence[int], size: int = 500) -> Iterator[list[int]]:
    for i in range(0, len(keys), size):
        yield list(keys[i : i + size])


def _ndc_key(value: str) -> str:
    try:
        return normalize_ndc(value)
    except ValueError:
        return value.strip()
