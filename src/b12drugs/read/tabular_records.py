"""Table batches as records, for the record engine (``--engine record``).

The columnar engine reads a table as batches; forced onto the record engine, the same
batches are handed on row by row as :class:`~b12drugs.models.Rejection`,
:class:`~b12drugs.models.PatientContext` and :class:`~b12drugs.models.Order` records,
built by the same functions the columnar engine uses for its rows with findings.  So
the two engines read a file alike, and their reports can be compared.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from ..models import Notice, Rejection
from ..records import Record
from .columns import PATIENT_COLUMNS
from .tabular import TableBatch, orders, row_context

#: Patients whose last patient columns are remembered (a context is handed on when a
#: patient's columns change; repeating an unchanged one would be merged away anyway).
_REMEMBERED = 100_000


def records_of(items: Iterable[TableBatch | Notice]) -> Iterator[Record]:
    last: dict[str, tuple[object, ...]] = {}
    for item in items:
        if not isinstance(item, TableBatch):
            yield item
            continue
        frame = item.frame
        ok = frame.filter(frame["_reject"].is_null())
        made = iter(orders(ok, item))
        columns = frame.select("_reject", "_rid", "_line", "patient_id", *PATIENT_COLUMNS)
        for reason, rid, line, pid, birth, sex, diet, conds in columns.iter_rows():
            if reason is not None:
                yield Rejection(location=item.where(line), reason=reason,
                                record_id=rid[:256] if rid else None)
                continue
            if pid is not None and not (birth is None and sex is None and diet is None
                                        and conds is None):
                key = (birth, sex, diet, conds)
                if last.get(pid) != key:
                    if len(last) >= _REMEMBERED:
                        last.clear()
                    last[pid] = key
                    context = row_context(pid, birth, sex, diet, conds, item.where(line))
                    if context is not None:
                        yield context
            yield next(made)
