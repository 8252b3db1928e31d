"""Tables of orders: one column layout for every tabular input, checked column-wise.

CSV exports, Parquet files and JSON Lines orders all become :class:`TableBatch` es:
polars frames in the layout of :data:`ORDER_SCHEMA`, one row per record read, in input
order.  Rows that cannot be screened keep their place with a reason in ``_reject``
(and ``_rid``, the record id the reader could make out), so that both engines account
for them where they stand and ``read == screened + skipped + rejected`` holds.

Why polars for the column work (and pyarrow for reading CSV, see
:mod:`b12drugs.read.delimited`): polars' expressions (string checks, casts, joins,
group-bys) run in native code over whole columns, which is what a table with millions
of rows and a few thousand distinct drugs needs; its frames are Arrow memory, so
pyarrow's readers hand their batches over without a copy, and Spark's ``mapInArrow``
hands its partitions over the same way.

The checks are those a pharmacist would expect of a dispensing export, each with the
column and value in the reason: ids and texts within their size bounds, ISO dates
(``YYYY-MM-DD``, anything after the tenth character ignored), whole days of supply in
0..36500, a daily dose of 0 or more, RxCUIs of 1-10 digits, NDCs in a 10- or 11-digit
layout (normalised to 11 digits), a diet of omnivore/vegetarian/vegan.  Patient columns
are checked only on rows with a patient id (without one they describe nobody).

Both engines turn a batch's rows into the same :class:`~b12drugs.models.Order` and
:class:`~b12drugs.models.PatientContext` objects (:func:`orders`, :func:`row_context`)
where they need models: the record engine for every row, the columnar engine for the
rows with findings and their patients only.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any

import polars as pl

from ..models import (
    ATC_SYSTEM,
    MAX_TEXT,
    NDC_SYSTEM,
    RXNORM_SYSTEM,
    Coding,
    Condition,
    Order,
    PatientContext,
    SourceLocation,
    normalize_ndc,
)
from .columns import ALIASES, DIETS

#: The layout of every batch.  ``codings`` (JSON) holds codings the flat code columns
#: cannot (displays, other systems): JSON Lines orders use it.  ``_line`` is the row's
#: line (CSV, JSON Lines) or row number (Parquet); ``_reject`` the reason a row cannot be
#: screened, and ``_rid`` the record id to name with it.
ORDER_SCHEMA: dict[str, Any] = {
    "id": pl.String, "patient_id": pl.String, "text": pl.String, "rxcui": pl.String,
    "ndc": pl.String, "atc": pl.String, "codings": pl.String, "status": pl.String,
    "start_date": pl.Date, "days_supply": pl.Int64, "daily_dose_mg": pl.Float64,
    "route": pl.String, "dose": pl.String, "strength": pl.String, "frequency": pl.String,
    "birth_date": pl.Date, "sex": pl.String, "diet": pl.String, "conditions": pl.String,
    "_line": pl.Int64, "_reject": pl.String, "_rid": pl.String,
}
#: The columns that, with ``text``, name a distinct drug.
DRUG_KEY = ("rxcui", "ndc", "atc", "codings", "text")


@dataclass(frozen=True)
class TableBatch:
    """Rows of one input in :data:`ORDER_SCHEMA`, in input order.

    ``location``: ``"line"`` when ``_line`` is a line of a text file (``file:line``),
    ``"row"`` when it is a row number (Parquet: ``file row N``).
    """

    frame: pl.DataFrame
    source: str
    location: str = "line"

    def where(self, line: int | None) -> SourceLocation:
        """The location of the row on ``line``."""
        where: SourceLocation = _LOCATION(location(self.source, self.location, line))
        return where


def location(source: str, kind: str, line: int | None) -> dict[str, Any]:
    """A row's :class:`~b12drugs.models.SourceLocation` as the dict the models validate
    (nested in an order's or context's own validation: one call per row)."""
    if kind == "row":
        return {"file": source[:256], "line": None,
                "pointer": None if line is None else f"row {line}"}
    return {"file": source[:256], "line": line, "pointer": None}


# -- checks -------------------------------------------------------------------------


def checked(raw: pl.DataFrame) -> pl.DataFrame:
    """A frame of raw text cells (canonical names, any subset, plus ``_line`` and an
    optional ``_reject``) checked and typed into :data:`ORDER_SCHEMA`.

    Every check runs over whole columns; only the reasons of the (rare) bad rows are
    worded, in Python.  A row keeps its first problem, in the order of :data:`_CHECKS`.
    """
    c = pl.col
    present = [name for name in ALIASES if name in raw.columns]
    raw = raw.with_columns(pl.lit(None, pl.String).alias(m) for m in ALIASES
                           if m not in raw.columns)
    frame = raw.select(
        *(c(n).cast(pl.String) for n in ALIASES), c("_line").cast(pl.Int64),
        (c("_reject") if "_reject" in raw.columns else pl.lit(None, pl.String))
        .cast(pl.String).alias("_reject"),
    )
    # cells padded with blanks, or blank: stripped, and blank ones null (most exports
    # have none, and one test per column finds out)
    unclean = frame.select(c(n).str.contains(r"^\s|\s$|^$").any() for n in present)
    fix = [n for n in present if unclean[n][0]]
    if fix:
        frame = frame.with_columns(
            pl.when(c(n).str.strip_chars() != "").then(c(n).str.strip_chars()).alias(n)
            for n in fix)
    frame = frame.with_columns(
        c("start_date").str.slice(0, 10).str.to_date("%Y-%m-%d", strict=False).alias("_start"),
        c("days_supply").cast(pl.Int64, strict=False).alias("_days"),
        c("daily_dose_mg").cast(pl.Float64, strict=False).alias("_dose"),
        c("birth_date").str.slice(0, 10).str.to_date("%Y-%m-%d", strict=False).alias("_birth"))
    masks = frame.select(
        (c("_reject").is_null() & check(c)).fill_null(False).alias(f"m{i}")
        for i, (_, check, _) in enumerate(_CHECKS))
    if masks.select(pl.any_horizontal(pl.all()).any()).item():
        frame = frame.with_columns(_reasons(frame, masks))
    ndc, ndc_error = _ndcs(frame["ndc"])
    if ndc_error.null_count() < len(ndc_error):
        frame = frame.with_columns(pl.coalesce(c("_reject"), pl.lit(ndc_error)).alias("_reject"))
    # Rejected rows keep their values, but nothing reads them but _line, _reject and
    # _rid; patient columns are read only on rows with a patient id.
    return frame.select(
        c("id"), c("patient_id"), c("text"), c("rxcui"), pl.lit(ndc).alias("ndc"),
        c("atc").str.to_uppercase(), pl.lit(None, pl.String).alias("codings"),
        c("status").str.to_lowercase(), c("_start").alias("start_date"),
        c("_days").alias("days_supply"), c("_dose").alias("daily_dose_mg"), c("route"),
        pl.lit(None, pl.String).alias("dose"), pl.lit(None, pl.String).alias("strength"),
        pl.lit(None, pl.String).alias("frequency"), c("_birth").alias("birth_date"),
        c("sex"), c("diet").str.to_lowercase(), c("conditions"),
        c("_line"), c("_reject"), c("id").alias("_rid"),
    )


def _too_long(name: str, limit: int) -> Any:
    return lambda frame_cols: frame_cols(name).str.len_chars().fill_null(0) > limit


def _patient(mask: Any) -> Any:
    return lambda frame_cols: frame_cols("patient_id").is_not_null() & mask(frame_cols)


def _q(value: object) -> str:
    return repr(str(value)[:40])


#: (name, mask over the frame's columns, reason from the raw cell of that column).
_CHECKS: tuple[tuple[str, Any, Any], ...] = (
    ("id", lambda c: (c("id").str.len_chars().fill_null(0) > 256)
     | (c("patient_id").str.len_chars().fill_null(0) > 256),
     lambda v: "rx_id/patient_id: longer than 256 characters"),
    ("text", _too_long("text", MAX_TEXT),
     lambda v: f"drug_name: longer than {MAX_TEXT} characters"),
    ("status", _too_long("status", 64), lambda v: "status: longer than 64 characters"),
    ("rxcui", lambda c: c("rxcui").is_not_null() & ~c("rxcui").str.contains(r"^\d{1,10}$"),
     lambda v: f"rxcui: {_q(v)} is not an RxCUI"),
    ("start_date", lambda c: c("start_date").is_not_null() & c("_start").is_null(),
     lambda v: f"start_date: {_q(v)} is not an ISO date (YYYY-MM-DD)"),
    ("days_supply", lambda c: c("days_supply").is_not_null() & c("_days").is_null(),
     lambda v: f"days_supply: {_q(v)} is not a whole number"),
    ("days_supply", lambda c: (c("_days") < 0) | (c("_days") > 36500),
     lambda v: f"days_supply: {int(v)} is outside 0..36500"),
    ("daily_dose_mg", lambda c: c("daily_dose_mg").is_not_null() & c("_dose").is_null(),
     lambda v: f"daily_dose_mg: {_q(v)} is not a number"),
    ("daily_dose_mg", lambda c: c("_dose").is_not_null() & ~(c("_dose") >= 0),
     lambda v: f"daily_dose_mg: {_q(v)} must be 0 or more"),
    ("route", _too_long("route", 256), lambda v: "route: longer than 256 characters"),
    ("birth_date", _patient(lambda c: c("birth_date").is_not_null() & c("_birth").is_null()),
     lambda v: f"birth_date: {_q(v)} is not an ISO date (YYYY-MM-DD)"),
    ("diet", _patient(lambda c: c("diet").is_not_null()
                      & ~c("diet").str.to_lowercase().is_in(DIETS)),
     lambda v: f"diet: {_q(v)} is not one of {', '.join(DIETS)}"),
    ("conditions", _patient(_too_long("conditions", MAX_TEXT)),
     lambda v: f"conditions: longer than {MAX_TEXT} characters"),
    ("sex", _patient(_too_long("sex", 256)), lambda v: "sex: longer than 256 characters"),
)


def _reasons(frame: pl.DataFrame, masks: pl.DataFrame) -> pl.Series:
    """The ``_reject`` column with each bad row's first problem worded."""
    reasons = frame["_reject"].to_list()
    for i, (name, _, word) in enumerate(_CHECKS):
        mask = masks.to_series(i)
        if not mask.any():
            continue
        values = frame[name].to_list()
        for row in mask.arg_true().to_list():
            if reasons[row] is None:
                reasons[row] = word(values[row])[:500]
    return pl.Series("_reject", reasons, pl.String)


def _ndcs(raw: pl.Series) -> tuple[pl.Series, pl.Series]:
    """NDCs normalised to 11 digits and the reason for each bad one: each distinct
    value through :func:`~b12drugs.models.normalize_ndc` once (an export holds a few
    thousand distinct NDCs)."""
    if raw.null_count() == len(raw):
        return raw, pl.Series("ndc_error", [None] * len(raw), pl.String)
    distinct = raw.drop_nulls().unique()
    good: dict[str, str | None] = {}
    errors: dict[str, str | None] = {}
    for value in distinct:
        try:
            good[value] = normalize_ndc(value)
            errors[value] = None
        except ValueError as exc:
            good[value] = None
            errors[value] = f"ndc: {exc}"
    normal = raw.replace_strict(good, default=None, return_dtype=pl.String)
    why = raw.replace_strict(errors, default=None, return_dtype=pl.String)
    return normal, why.alias("ndc_error")


# -- rows as models -------------------------------------------------------------------


_LOCATION = SourceLocation.__pydantic_validator__.validate_python


@functools.lru_cache(maxsize=4096)
def coding(system: str, code: str) -> Coding:
    """Codings are few and frozen: one object per distinct code."""
    return Coding(system=system, code=code)


def codings_of(rxcui: str | None, ndc: str | None, atc: str | None,
               codings: str | None) -> tuple[Coding, ...]:
    """A row's codings: the flat code columns in this order, or its ``codings`` JSON."""
    if codings is not None:
        return tuple(Coding.model_validate(c) for c in json.loads(codings))
    out: tuple[Coding, ...] = ()
    if rxcui is not None:
        out = (coding(RXNORM_SYSTEM, rxcui),)
    if ndc is not None:
        out = (*out, coding(NDC_SYSTEM, ndc))
    if atc is not None:
        out = (*out, coding(ATC_SYSTEM, atc))
    return out


_ORDER_FIELDS = ("id", "patient_id", "text", "rxcui", "ndc", "atc", "codings", "status",
                 "start_date", "days_supply", "daily_dose_mg", "route", "dose", "strength",
                 "frequency", "_line")


def orders(frame: pl.DataFrame, batch: TableBatch) -> Iterator[Order]:
    """The rows of ``frame`` (screenable rows of ``batch``) as orders (validated by the
    model's own validator, without ``model_validate``'s Python frame: this is the
    per-row step of the rows with findings)."""
    validate = Order.__pydantic_validator__.validate_python
    for (oid, pid, text, rxcui, ndc, atc, cods, status, start, days, dose, route, udose,
         strength, freq, line) in frame.select(_ORDER_FIELDS).iter_rows():
        yield validate({
            "id": oid if oid is not None else f"{batch.source[:240]}:{line}",
            "patient_id": pid, "codings": codings_of(rxcui, ndc, atc, cods), "text": text,
            "status": status, "start_date": start, "days_supply": days,
            "daily_dose_mg": dose, "route": route, "dose": udose, "strength": strength,
            "frequency": freq, "source": location(batch.source, batch.location, line),
        })


@functools.lru_cache(maxsize=1024)
def conditions(value: str) -> tuple[Condition, ...]:
    """Parse a conditions cell: ``;``-separated text or ``SYSTEM:CODE`` items.  Cached:
    an export repeats few distinct condition lists."""
    out = []
    for item in value.split(";"):
        item = item.strip()
        if not item:
            continue
        system, sep, code = item.partition(":")
        if sep and system.lower() in ("snomed", "sct", "icd10", "icd-10", "icd10cm"):
            out.append(Condition(system=system.lower(), code=code.strip()))
        else:
            out.append(Condition(text=item))
    return tuple(out)


def row_context(patient_id: str, birth: date | None, sex: str | None, diet: str | None,
                conds: str | None, where: SourceLocation | dict[str, Any],
                ) -> PatientContext | None:
    """The patient context a row's patient columns describe (None when all are blank)."""
    if birth is None and sex is None and diet is None and conds is None:
        return None
    context: PatientContext = PatientContext.__pydantic_validator__.validate_python({
        "id": patient_id, "birth_date": birth, "sex": sex, "diet": diet,
        "conditions": conditions(conds) if conds else (), "source": where,
    })
    return context
