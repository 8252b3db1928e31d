"""HL7 v2 original-mode acknowledgements (ACK) for the MLLP listener.

The ACK mirrors the message: sender and receiver swapped (MSH-3/4 <-> MSH-5/6), the
same encoding characters and version (MSH-12), MSA-2 = the message's MSH-10.  MSA-1 is
``AA`` (accepted and screened), ``AE`` (accepted, but part of it could not be read:
the rest was screened) or ``AR`` (rejected as a whole).  The reason goes into MSA-3 and
an ERR segment: from v2.5 on as ERR-2 (location), ERR-3 (HL7 table 0357 code), ERR-4
(severity) and ERR-8 (user message); before v2.5 as ERR-1 (segment^sequence^field^code).
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from typing import Literal

from .fields import Encoding
from .message import Header, Problem

AckCode = Literal["AA", "AE", "AR"]

_ERROR_TEXT = {
    "100": "Segment sequence error",
    "101": "Required field missing",
    "102": "Data type error",
    "200": "Unsupported message type",
    "203": "Unsupported version id",
    "207": "Application internal error",
}
_counter = itertools.count(1)
MAX_WARNINGS = 10


@dataclass(frozen=True)
class AckDecision:
    code: AckCode
    text: str = ""
    problem: Problem | None = None
    #: warnings (ERR-4 = W) reported even with AA, e.g. an order whose drug was not
    #: recognised and so was not checked
    warnings: tuple[Problem, ...] = ()


def escape(text: str, enc: Encoding) -> str:
    """Escape separators in free text (HL7 v2 section 2.7) and flatten line breaks."""
    e = enc.escape
    out = []
    for ch in " ".join(text.split()):
        if ch == e:
            out.append(f"{e}E{e}")
        elif ch == enc.field:
            out.append(f"{e}F{e}")
        elif ch == enc.component:
            out.append(f"{e}S{e}")
        elif ch == enc.repetition:
            out.append(f"{e}R{e}")
        elif ch == enc.subcomponent:
            out.append(f"{e}T{e}")
        else:
            out.append(ch)
    return "".join(out)


def _version_at_least(version: str, major: int, minor: int) -> bool:
    try:
        parts = [int(p) for p in version.split(".")[:2]]
    except ValueError:
        return True
    return len(parts) == 2 and (parts[0], parts[1]) >= (major, minor)


def control_id() -> str:
    """A new message control id for an ACK (unique per process run)."""
    return f"B12{int(time.time()):x}{next(_counter):06d}"[:20]


def build_ack(header: Header, decision: AckDecision) -> bytes:
    """The ACK message for ``header`` (as bytes, UTF-8, segments ended by ``\\r``)."""
    enc = header.encoding
    f, c = enc.field, enc.component
    msh2 = f"{enc.component}{enc.repetition}{enc.escape}{enc.subcomponent}"
    version = header.version or "2.5"
    now = time.strftime("%Y%m%d%H%M%S")
    fields = list(header.raw_msh_fields)
    processing = ""
    if len(fields) > 10:
        processing = fields[10]
    msh = f.join(
        [
            "MSH",
            msh2,
            header.receiving_app,
            header.receiving_facility,
            header.sending_app,
            header.sending_facility,
            now,
            "",
            f"ACK{c}{escape(header.event, enc)}{c}ACK" if header.event else "ACK",
            control_id(),
            processing or "P",
            escape(version, enc),
        ]
    )
    text = escape(decision.text, enc)[:200]
    msa = f.join(["MSA", decision.code, escape(header.control_id, enc), text]).rstrip(f)
    segments = [msh, msa]
    problems = [decision.problem] if decision.problem and decision.code != "AA" else []
    problems += list(decision.warnings[:MAX_WARNINGS])
    for p in problems:
        label = _ERROR_TEXT.get(p.code, "Application error")
        seg_id = escape(p.segment, enc)
        seq = str(p.index) if p.index else ""
        fld = str(p.field) if p.field else ""
        reason = escape(p.reason, enc)[:200]
        s = enc.subcomponent
        if _version_at_least(version, 2, 5):
            err = f.join(
                [
                    "ERR",
                    "",
                    c.join([seg_id, seq, fld]).rstrip(c),
                    c.join([p.code, label, "HL70357"]),
                    p.severity,
                    "",
                    "",
                    "",
                    reason,
                ]
            )
        else:
            err = f.join(["ERR", c.join([seg_id, seq, fld, s.join([p.code, label, "HL70357"])])])
        segments.append(err)
    return ("\r".join(segments) + "\r").encode("utf-8")
