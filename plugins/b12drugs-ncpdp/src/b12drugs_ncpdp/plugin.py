"""Entry point ``ncpdp`` of the ``b12drugs`` group: registers the input format."""

from __future__ import annotations

from collections.abc import Iterable

from b12drugs import hookimpl
from b12drugs.records import InputFormat

from .reader import parse
from .sniff import sniff

DESCRIPTION = (
    "NCPDP SCRIPT 10.6 / 2017071 XML: NewRx, RxFill, RxChangeRequest, RxRenewalRequest "
    "(CancelRx skipped); one Message per file, a container of Messages, or Messages "
    "one after another"
)


@hookimpl
def b12drugs_input_formats() -> Iterable[InputFormat]:
    return [
        InputFormat(
            name="ncpdp",
            description=DESCRIPTION,
            parse=parse,
            sniff=sniff,
            extensions=(".xml",),
        )
    ]
