"""Hook implementations of the ``hl7v2`` plugin (entry point ``b12drugs`` -> ``hl7v2``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from b12drugs import hookimpl
from b12drugs.records import InputFormat

from . import reader


@hookimpl
def b12drugs_input_formats() -> Iterable[InputFormat]:
    return [
        InputFormat(
            name="hl7v2",
            description=(
                "HL7 v2 pharmacy messages (RDE, RDS, OMP; v2.3-2.8), single, batched "
                "(FHS/BHS) or MLLP-framed"
            ),
            parse=reader.parse,
            sniff=reader.sniff,
            extensions=reader.EXTENSIONS,
        )
    ]


@hookimpl
def b12drugs_cli_commands() -> Iterable[Any]:
    from .cli import hl7_group

    return [hl7_group]
