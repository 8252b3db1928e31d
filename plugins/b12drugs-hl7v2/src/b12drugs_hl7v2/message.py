"""Read one HL7 v2 pharmacy message into b12drugs records.

Supported: RDE (pharmacy encoded order: ``RDE^O11``, ``RDE^O25``, 2.3's ``RDE^O01``),
RDS (dispense: ``RDS^O13``, ``RDS^O17``, ``RDS^O01``), OMP (pharmacy order,
``OMP^O09``), any event code of these, versions 2.3 to 2.8.  Lab results (``ORU^R01``,
any ORU event) give the patient's B12 status results as patient context (see below)
and a ``Skip`` (no order to screen).  Other message types are ``Skip`` records (read,
deliberately not screened).

Lab results: every ``OBX`` of a B12 status test (serum B12, holotranscobalamin,
methylmalonic acid, homocysteine; folate too), in an ORU or beside an order, becomes a
:class:`~b12drugs.models.LabResult` of the message's PatientContext: OBX-3 the test
(a LOINC code when the coding system is ``LN``, else its name), OBX-5 the value
(``NM``, ``SN`` such as ``<^150``, or a number in ``ST``), OBX-6 the unit, OBX-8 the
abnormal flag (L/LL/H/HH/N), OBX-14 the observation date (else OBR-7).  Results with
OBX-11 ``X``/``D``/``W``/``I``/``O`` (no result, deleted, wrong, pending, order only)
are not used.  An ORU message ends no patient (no ``PatientEnd``): its results wait for
the patient's orders later in the same run.

One message gives: a :class:`~b12drugs.models.PatientContext` (PID-3/7/8, DG1 and PRB
diagnoses), one :class:`~b12drugs.models.Order` per order group (an ``ORC`` and the
``RXO``/``RXE``/``RXD``/``TQ1``/``RXR``/``RXC`` segments after it; a medication segment
without an ORC opens a group of its own), one more Order per ``RXC`` compound
component, and a :class:`~b12drugs.models.PatientEnd`.  What cannot be read becomes a
:class:`~b12drugs.models.Rejection` whose location names the message number (with
MSH-10), the segment (name and index) and the field, e.g.
``message 3 (MSH-10 ABC123), RXE[1]-2: no drug code or text``.

Design choices (documented in the README):

* the drug of a group comes from RXD-2 (dispensed), else RXE-2 (encoded give code),
  else RXO-1 (requested); the codes of the other segments of the group are added after
  it so that a resolver can use any of them;
* RXC components become **separate orders** (``<order id>/RXC<n>``): a compound's
  additive (e.g. a B12-lowering drug in an IV mixture) must be resolved on its own and
  not hide behind the base solution's code;
* order status: ORC-1 DC/OD/DR → ``stopped``, CA/OC/CR → ``cancelled``, HD/OH/HR →
  ``on-hold``; otherwise ORC-5 CM → ``completed``, DC → ``stopped``, CA →
  ``cancelled``, ER → ``entered-in-error``, HD → ``on-hold``; otherwise ``active``.
  For RDS (dispense) messages ORC-5 CM means the dispense is done: ``dispensed``.
  The engine decides which statuses are screened.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal

from pydantic import ValidationError

from b12drugs import labcodes
from b12drugs.models import (
    MAX_TEXT,
    Coding,
    Condition,
    LabResult,
    Notice,
    Order,
    PatientContext,
    PatientEnd,
    Rejection,
    Skip,
    SourceLocation,
)
from b12drugs.records import Record

from .dose import daily_dose_mg, days_between, frequency_per_day
from .fields import (
    Coded,
    Encoding,
    Seg,
    condition_code,
    drug_codes,
    parse_number,
    parse_ts,
    valid_segment_id,
)
from .framing import RawMessage

#: Message codes (MSH-9.1) carrying pharmacy orders, whatever the event code.
ORDER_MESSAGES = frozenset({"RDE", "RDS", "OMP"})
#: Message codes carrying laboratory results (read as patient context).
RESULT_MESSAGES = frozenset({"ORU"})
#: OBX-11 result statuses that carry no usable result.
_NO_RESULT = frozenset({"X", "D", "W", "I", "O"})
MEDICATION_SEGMENTS = ("RXD", "RXE", "RXO")  # most specific first
GROUP_SEGMENTS = frozenset({"RXO", "RXE", "RXD", "RXC", "RXR", "TQ1", "TQ2", "NTE", "OBX", "FT1"})

_CONTROL_STATUS = {
    "DC": "stopped",
    "OD": "stopped",
    "DR": "stopped",
    "CA": "cancelled",
    "OC": "cancelled",
    "CR": "cancelled",
    "HD": "on-hold",
    "OH": "on-hold",
    "HR": "on-hold",
}
_ORDER_STATUS = {
    "CM": "completed",
    "DC": "stopped",
    "CA": "cancelled",
    "ER": "entered-in-error",
    "HD": "on-hold",
}
_SEX = {"M": "male", "F": "female", "O": "other", "U": "unknown", "A": "other", "N": "other"}
_CHARSETS = {
    "ASCII": "ascii",
    "UNICODE UTF-8": "utf-8",
    "UTF-8": "utf-8",
    "8859/1": "latin-1",
    "8859/15": "iso8859-15",
    "8859/2": "iso8859-2",
    "ISO IR6": "ascii",
    "ISO IR100": "latin-1",
    "CP1252": "cp1252",
    "WINDOWS-1252": "cp1252",
}

SAFETY_NET = "internal error while reading the message"


@dataclass(frozen=True)
class Header:
    """What the listener needs from MSH to answer, and what errors name."""

    number: int
    line: int
    control_id: str = ""
    version: str = ""
    message_code: str = ""
    event: str = ""
    sending_app: str = ""
    sending_facility: str = ""
    receiving_app: str = ""
    receiving_facility: str = ""
    encoding: Encoding = field(default_factory=Encoding)
    raw_msh_fields: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        cid = self.control_id[:40]
        return f"message {self.number}" + (f" (MSH-10 {cid})" if cid else "")


@dataclass(frozen=True)
class Problem:
    """A located problem, for Rejections and for the ACK's ERR segment."""

    segment: str
    index: int
    field: int
    reason: str
    code: str = "207"  # HL7 table 0357: application internal error
    level: Literal["reject", "error"] = "error"
    line: int | None = None
    severity: Literal["E", "W"] = "E"  # ERR-4 (HL7 table 0516): error or warning


@dataclass
class MessageResult:
    """Everything read from one message."""

    header: Header
    records: list[Record] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    skipped: str | None = None
    orders: int = 0

    @property
    def rejected(self) -> bool:
        """The whole message was refused (AR), as opposed to a bad part (AE)."""
        return any(p.level == "reject" for p in self.problems)


class _Reject(Exception):
    """Internal: the message as a whole cannot be read."""

    def __init__(self, problem: Problem):
        super().__init__(problem.reason)
        self.problem = problem


def _trunc(value: str | None, n: int = 256) -> str | None:
    if value is None:
        return None
    value = " ".join(value.split())
    return value[:n] if value else None


def _pointer(header: Header, seg: str | None, index: int = 0, fld: int = 0) -> str:
    out = header.label
    if seg:
        out += f", {seg}" + (f"[{index}]" if index else "") + (f"-{fld}" if fld else "")
    elif index:
        out += f", segment {index}"
    return out[:256]


def _qualified_id(seg: Seg, fld: int) -> str:
    """CX.1 qualified by its assigning authority CX.4 as ``<authority>:<id>``.

    Identifiers are unique only within their assigning authority: two hospitals may
    both issue ``12345``.  The authority is the HD namespace id, else its universal
    id; without CX.4 the plain CX.1 is kept.  The first repetition that is not a
    social security number (CX.5 ``SS``) is used: an SSN never becomes the patient id
    (it would travel into every report)."""
    for rep in range(1, len(seg.reps(fld)) + 1):
        value = seg.get(fld, 1, rep)
        if not value or seg.get(fld, 5, rep).upper() == "SS":
            continue
        authority = seg.get(fld, 4, rep) or seg.get(fld, 4, rep, sub=2)
        return f"{authority}:{value}" if authority else value
    return ""


def _split_msh(segment: bytes) -> tuple[Encoding, list[str]]:
    """MSH-1/MSH-2 separators and the raw MSH fields; raises _Reject-worthy ValueError."""
    text = segment.decode("latin-1")
    if len(text) < 5:
        raise ValueError("MSH-1/MSH-2: segment too short to declare its separators")
    sep = text[3]
    end = text.find(sep, 4)
    enc_chars = text[4:end] if end >= 0 else text[4:]
    if sep.isalnum() or sep.isspace() or not sep.isprintable():
        raise ValueError(f"MSH-1: {sep!r} cannot be a field separator")
    if end < 0:
        raise ValueError("MSH-2: no field separator after the encoding characters")
    if not 2 <= len(enc_chars) <= 5:
        raise ValueError("MSH-2: expected 4 encoding characters (e.g. ^~\\&)")
    padded = enc_chars + "^~\\&"[len(enc_chars) :] if len(enc_chars) < 4 else enc_chars
    chars = [sep, *padded[:4]]
    if len(set(chars)) != len(chars) or any(
        c.isalnum() or c.isspace() or not c.isprintable() for c in chars
    ):
        raise ValueError("MSH-2: encoding characters must be distinct punctuation")
    enc = Encoding(
        field=sep,
        component=padded[0],
        repetition=padded[1],
        escape=padded[2],
        subcomponent=padded[3],
    )
    fields = text.split(sep)
    # fields[0] = "MSH", fields[1] = MSH-2; MSH-n is fields[n-1]
    return enc, fields


def _msh(fields: list[str], n: int, enc: Encoding, comp: int = 1) -> str:
    """Raw MSH-n component (no unescaping: header values are identifiers)."""
    idx = n - 1
    if idx >= len(fields):
        return ""
    rep = fields[idx].split(enc.repetition)[0]
    parts = rep.split(enc.component)
    return parts[comp - 1].strip() if comp <= len(parts) else ""


def read_header(raw: RawMessage) -> Header:
    """Read what MSH allows; never raises (falls back to an empty header)."""
    try:
        enc, fields = _split_msh(raw.segments[0])
    except (ValueError, IndexError):
        return Header(raw.number, raw.line)
    return Header(
        number=raw.number,
        line=raw.line,
        control_id=_msh(fields, 10, enc),
        version=_msh(fields, 12, enc),
        message_code=_msh(fields, 9, enc, 1).upper(),
        event=_msh(fields, 9, enc, 2).upper(),
        sending_app=fields[2] if len(fields) > 2 else "",
        sending_facility=fields[3] if len(fields) > 3 else "",
        receiving_app=fields[4] if len(fields) > 4 else "",
        receiving_facility=fields[5] if len(fields) > 5 else "",
        encoding=enc,
        raw_msh_fields=tuple(fields),
    )


def _charset(header: Header) -> str:
    declared = _msh(list(header.raw_msh_fields), 18, header.encoding).upper()
    name = _CHARSETS.get(declared, "utf-8")
    try:
        codecs.lookup(name)
    except LookupError:  # pragma: no cover - the table only holds known codecs
        return "utf-8"
    return name


def _decode(data: bytes, charset: str) -> str:
    try:
        return data.decode(charset)
    except UnicodeDecodeError:
        # Undeclared 8-bit text (common in older feeds): Latin-1 never fails and keeps
        # ASCII drug names intact.
        return data.decode("latin-1")


def read_message(raw: RawMessage, source: str, *, max_bytes: int | None = None) -> MessageResult:
    """Read one raw message.  Never raises for bad content."""
    header = read_header(raw)
    result = MessageResult(header)
    try:
        _read(raw, source, header, result, max_bytes)
    except _Reject as rej:
        p = rej.problem
        result.problems.append(p)
        result.records = [
            Rejection(
                location=SourceLocation(
                    file=_trunc(source),
                    line=p.line or raw.line,
                    pointer=_pointer(header, p.segment, p.index, p.field),
                ),
                reason=p.reason[:MAX_TEXT],
                record_id=_trunc(header.control_id) or None,
            )
        ]
    except Exception as exc:  # safety net: a bug must not stop the rest of the file
        reason = f"{SAFETY_NET} ({type(exc).__name__})"
        result.problems.append(Problem("MSH", 0, 0, reason, "207", "reject"))
        result.records = [
            Rejection(
                location=SourceLocation(
                    file=_trunc(source), line=raw.line, pointer=_pointer(header, None)
                ),
                reason=reason,
            )
        ]
    return result


def _read(
    raw: RawMessage, source: str, header: Header, result: MessageResult, max_bytes: int | None
) -> None:
    if raw.oversize:
        limit = f"the {max_bytes}-byte limit" if max_bytes else "the size limit"
        raise _Reject(
            Problem("MSH", 0, 0, f"message is larger than {limit}; not read", "207", "reject")
        )
    try:
        enc, _ = _split_msh(raw.segments[0])
    except ValueError as exc:
        msg = str(exc)
        fld = 2 if msg.startswith("MSH-2") else 1
        raise _Reject(Problem("MSH", 1, fld, msg.split(": ", 1)[-1], "102", "reject")) from None
    if not header.message_code:
        raise _Reject(Problem("MSH", 1, 9, "message type missing", "101", "reject"))
    if header.version and not header.version.startswith("2."):
        raise _Reject(
            Problem("MSH", 1, 12, f"version {header.version[:20]!r} is not HL7 v2", "203", "reject")
        )
    if header.message_code not in ORDER_MESSAGES | RESULT_MESSAGES:
        mtype = header.message_code + (f"^{header.event}" if header.event else "")
        reason = (
            f"message type {mtype[:20]} carries no pharmacy order (RDE, RDS, OMP); not screened"
        )
        result.skipped = reason
        result.records = [
            Skip(
                location=SourceLocation(
                    file=_trunc(source), line=raw.line, pointer=_pointer(header, "MSH", 1, 9)
                ),
                reason=reason,
                record_id=_trunc(header.control_id),
            )
        ]
        return

    charset = _charset(header)
    names: list[str] = []
    for k, (segment, line) in enumerate(zip(raw.segments, raw.lines, strict=True)):
        name = segment[:3].decode("latin-1")
        if not valid_segment_id(name):
            raise _Reject(
                Problem(
                    "",
                    k + 1,
                    0,
                    f"line {line} (segment {k + 1}) does not start with a segment id",
                    "100",
                    "reject",
                    line,
                )
            )
        names.append(name)
    counters: dict[str, int] = {}
    segs: list[Seg] = []
    for segment, name, line in zip(raw.segments, names, raw.lines, strict=True):
        counters[name] = counters.get(name, 0) + 1
        segs.append(Seg(_decode(segment, charset), name, counters[name], line, enc, charset))
    builder = _Builder(source, header, result, segs)
    if header.message_code in RESULT_MESSAGES:
        builder.build_results(raw.line)
    else:
        builder.build()


@dataclass
class _Group:
    orc: Seg | None = None
    segs: dict[str, list[Seg]] = field(default_factory=dict)

    def first(self, name: str) -> Seg | None:
        found = self.segs.get(name)
        return found[0] if found else None


class _Builder:
    """Turns the segments of one order message into records."""

    def __init__(self, source: str, header: Header, result: MessageResult, segs: list[Seg]):
        self.source = source
        self.header = header
        self.result = result
        self.segs = segs
        self.local_system = f"local:{header.sending_app.split(header.encoding.component)[0]}"
        if self.local_system == "local:":
            self.local_system = "local"
        self.local_system = self.local_system[:256]
        self.dispense = header.message_code == "RDS"

    # -- helpers ---------------------------------------------------------------
    def loc(self, seg: Seg | None, fld: int = 0) -> SourceLocation:
        return SourceLocation(
            file=_trunc(self.source),
            line=seg.line if seg else self.header.line,
            pointer=_pointer(self.header, seg.name if seg else None, seg.index if seg else 0, fld),
        )

    def date_field(
        self, seg: Seg | None, fld: int, what: str, *, latest: bool = False,
        order_id: str | None = None, patient_id: str | None = None,
    ) -> date | None:
        """Parse a date field; an invalid one is ignored with a notice (never silently),
        naming the field but not echoing its value (patient data)."""
        if seg is None:
            return None
        raw = seg.get(fld)
        value = parse_ts(raw, latest=latest)
        if raw and value is None:
            where = self.loc(seg, fld)
            self.result.records.append(Notice(
                kind="info",
                message=f"{where.pointer}: {what} is not a valid HL7 date "
                        "(YYYY[MM[DD]]); the order was screened without it",
                order_id=order_id, patient_id=patient_id, location=str(where)[:256],
            ))
        return value

    def reject(self, seg: Seg | None, fld: int, reason: str, record_id: str | None = None) -> None:
        self.result.problems.append(
            Problem(
                seg.name if seg else "MSH",
                seg.index if seg else 1,
                fld,
                reason,
                "101",
                "error",
                seg.line if seg else None,
            )
        )
        self.result.records.append(
            Rejection(location=self.loc(seg, fld), reason=reason[:MAX_TEXT], record_id=record_id)
        )

    # -- structure -------------------------------------------------------------
    def build(self) -> None:
        pid: Seg | None = None
        conditions: list[Condition] = []
        groups: list[_Group] = []
        current: _Group | None = None
        for seg in self.segs:
            name = seg.name
            if name == "PID" and pid is None:
                pid = seg
            elif name == "DG1":
                cond = self.diagnosis(seg, 3, extra_text=seg.get(4))
                if cond is not None:
                    conditions.append(cond)
            elif name == "PRB":
                cond = self.problem(seg)
                if cond is not None:
                    conditions.append(cond)
            elif name == "ORC":
                current = _Group(orc=seg)
                groups.append(current)
            elif name in GROUP_SEGMENTS:
                repeats = name in MEDICATION_SEGMENTS and name in (current.segs if current else {})
                if current is None or repeats:
                    current = _Group()
                    groups.append(current)
                current.segs.setdefault(name, []).append(seg)
        patient_id = self.patient(pid, conditions, self.labs())
        if not groups:
            self.reject(None, 0, "no order in the message (no ORC/RXO/RXE/RXD segment)")
        for k, group in enumerate(groups, start=1):
            self.order(group, k, patient_id)
        self.result.records.append(PatientEnd(patient_id=patient_id))

    def build_results(self, line: int) -> None:
        """A lab results message: the patient's context with its labs, and a Skip."""
        pid = next((s for s in self.segs if s.name == "PID"), None)
        labs = self.labs()
        self.patient(pid, [], labs)
        mtype = self.header.message_code + (f"^{self.header.event}" if self.header.event else "")
        reason = (f"lab results ({mtype[:20]}): {len(labs)} B12 status result(s) kept as "
                  "patient context; no pharmacy order to screen")
        self.result.skipped = reason
        self.result.records.append(Skip(
            location=SourceLocation(file=_trunc(self.source), line=line,
                                    pointer=_pointer(self.header, "MSH", 1, 9)),
            reason=reason, record_id=_trunc(self.header.control_id),
        ))

    def labs(self) -> list[LabResult]:
        """The B12 status results of the message's OBX segments."""
        found: list[LabResult] = []
        obr: Seg | None = None
        for seg in self.segs:
            if seg.name == "OBR":
                obr = seg
            elif seg.name == "OBX":
                lab = self.lab(seg, obr)
                if lab is not None and lab not in found:
                    found.append(lab)
        return found

    def lab(self, seg: Seg, obr: Seg | None) -> LabResult | None:
        if seg.get(11).strip().upper()[:1] in _NO_RESULT:
            return None
        ident = [*seg.components(3), *[""] * 6]
        code = next((c for c, system in ((ident[0], ident[2]), (ident[3], ident[5]))
                     if c and system.strip().upper() in ("LN", "LOINC")), None)
        kind = labcodes.kind_of(code, " ".join((ident[1], ident[4])))
        if kind is None:
            return None
        vtype = seg.get(2).strip().upper()
        if vtype == "SN":
            parts = [*seg.components(5), "", ""]
            value = parse_number(parts[1])
        else:
            raw = seg.get(5).strip()
            value = parse_number(raw) if vtype in ("NM", "") else parse_number(
                raw.lstrip("<>=").split(" ")[0]) if raw else None
        units = [*seg.components(6), ""]
        unit = _trunc(units[0] or units[1] or None)
        when = parse_ts(seg.get(14)) or (parse_ts(obr.get(7)) if obr is not None else None)
        try:
            return LabResult(kind=kind, value=value, unit=unit, code=_trunc(code),
                             date=when, interpretation=labcodes.flag(seg.get(8)))
        except ValidationError:
            return None

    def patient(self, pid: Seg | None, conditions: list[Condition],
                labs: list[LabResult] | None = None) -> str:
        pid_value = ""
        if pid is not None:
            pid_value = _qualified_id(pid, 3) or _qualified_id(pid, 2) or _qualified_id(pid, 4)
        patient_id = _trunc(pid_value) or f"unidentified-message-{self.header.number}"
        birth = self.date_field(pid, 7, "the birth date (age-based risk not assessed)", latest=True,
                          patient_id=patient_id)
        sex = _SEX.get(pid.get(8).upper()[:1]) if pid is not None and pid.get(8) else None
        self.result.records.insert(
            0,
            PatientContext(
                id=patient_id,
                birth_date=birth,
                sex=sex,
                conditions=tuple(conditions),
                labs=tuple(labs or ()),
                source=self.loc(pid),
            ),
        )
        return patient_id

    def diagnosis(
        self, seg: Seg, fld: int, extra_text: str = "", active: bool = True
    ) -> Condition | None:
        system, code, text = condition_code(seg.components(fld))
        text = text or extra_text or None
        if not code and not text:
            return None
        return Condition(
            system=_trunc(system), code=_trunc(code), text=_trunc(text, MAX_TEXT), active=active
        )

    def problem(self, seg: Seg) -> Condition | None:
        if seg.get(1).upper() in ("DE", "DELETE"):
            return None  # PRB-1 action code: the problem is being removed
        status = " ".join(seg.components(14)).lower()
        active = not any(w in status for w in ("resolv", "inactive", "remission", "closed"))
        return self.diagnosis(seg, 3, active=active)

    # -- orders ----------------------------------------------------------------
    def status(self, orc: Seg | None) -> str:
        if orc is None:
            return "dispensed" if self.dispense else "active"
        control = orc.get(1).upper()
        if control in _CONTROL_STATUS:
            return _CONTROL_STATUS[control]
        order_status = orc.get(5).upper()
        if self.dispense and order_status in ("CM", "IP", "SC", "A", ""):
            return "dispensed"
        return _ORDER_STATUS.get(order_status, "active")

    def order_id(self, group: _Group, k: int) -> str:
        orc = group.orc
        base = ""
        if orc is not None:
            base = orc.get(2) or orc.get(3)
        for name, fld in (("RXE", 15), ("RXD", 7), ("RXO", 0)):
            if base:
                break
            seg = group.first(name)
            if seg is not None and fld:
                base = seg.get(fld)
        base = base or f"order{k}"
        return f"{base[:200]}@msg{self.header.number}"

    def order(self, group: _Group, k: int, patient_id: str) -> None:
        order_id = self.order_id(group, k)
        status = self.status(group.orc)
        primary: Seg | None = None
        codes: list[Coded] = []
        text: str | None = None
        problems: list[str] = []
        for name in MEDICATION_SEGMENTS:
            seg = group.first(name)
            if seg is None:
                continue
            fld = 1 if name == "RXO" else 2
            found, seg_text, probs = drug_codes(seg.components(fld), self.local_system)
            problems += [f"{seg.ref}-{fld} {p}" for p in probs]
            if primary is None:
                primary = seg
            if text is None and seg_text:
                text = seg_text
            for c in found:
                if c not in codes:
                    codes.append(c)
        anchor = primary or group.orc
        rxcs = group.segs.get("RXC", [])
        if primary is None and not rxcs:
            self.reject(group.orc, 0, "order has no RXO, RXE or RXD segment", order_id)
            return
        if primary is not None:
            if not codes and not text:
                fld = 1 if primary.name == "RXO" else 2
                reason = "no drug code or text"
                if problems:
                    reason += " (" + "; ".join(problems) + ")"
                self.reject(primary, fld, reason, order_id)
            else:
                self.emit(order_id, patient_id, codes, text, status, group, primary, anchor)
        for n, rxc in enumerate(rxcs, start=1):
            found, rxc_text, probs = drug_codes(rxc.components(2), self.local_system)
            cid = f"{order_id}/RXC{n}"[:256]
            if not found and not rxc_text:
                reason = "no compound component code or text"
                if probs:
                    reason += " (" + "; ".join(probs) + ")"
                self.reject(rxc, 2, reason, cid)
                continue
            amount = " ".join(p for p in (rxc.get(3), rxc.get(4, 1) or rxc.get(4, 2)) if p)
            self.emit(cid, patient_id, found, rxc_text, status, group, rxc, rxc, dose=amount)

    def emit(
        self,
        order_id: str,
        patient_id: str,
        codes: list[Coded],
        text: str | None,
        status: str,
        group: _Group,
        primary: Seg,
        anchor: Seg | None,
        dose: str | None = None,
    ) -> None:
        details = self.details(group)
        if dose is not None:
            details.update(dose=dose or None, strength=None, daily_dose_mg=None)
        try:
            order = Order(
                id=order_id,
                patient_id=patient_id,
                codings=tuple(
                    Coding(
                        system=c.system[:256],
                        code=c.code[:256],
                        display=_trunc(c.display, MAX_TEXT),
                    )
                    for c in codes
                ),
                text=_trunc(text, MAX_TEXT),
                status=status,
                source=self.loc(anchor),
                **details,
            )
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(x) for x in first["loc"])
            self.reject(primary, 0, f"order not readable: {where}: {first['msg']}", order_id)
            return
        self.result.records.append(order)
        self.result.orders += 1

    def details(self, group: _Group) -> dict[str, Any]:
        """Dose, strength, frequency, route, dates and days supply, where stated."""
        rxe, rxd, rxo = group.first("RXE"), group.first("RXD"), group.first("RXO")
        tq1, rxr, orc = group.first("TQ1"), group.first("RXR"), group.orc
        out: dict[str, Any] = {}
        amount = units = ""
        if rxe is not None:
            amount, units = rxe.get(3), rxe.get(5, 1) or rxe.get(5, 2)
        elif rxo is not None:
            amount, units = rxo.get(2), rxo.get(4, 1) or rxo.get(4, 2)
        out["dose"] = _trunc(" ".join(p for p in (amount, units) if p))
        strength = ""
        if rxe is not None and rxe.get(25):
            strength = f"{rxe.get(25)} {rxe.get(26, 1) or rxe.get(26, 2)}".strip()
        elif rxd is not None and rxd.get(16):
            strength = f"{rxd.get(16)} {rxd.get(17, 1) or rxd.get(17, 2)}".strip()
        elif rxo is not None and rxo.get(18):
            strength = f"{rxo.get(18)} {rxo.get(19, 1) or rxo.get(19, 2)}".strip()
        out["strength"] = _trunc(strength)
        # timing: TQ1 (2.5+) or the TQ in RXE-1 / ORC-7 (2.3-2.4)
        tq: tuple[Seg, int] | None = None
        for seg, fld in ((rxe, 1), (orc, 7)):
            if seg is not None and seg.get(fld, 2):
                tq = (seg, fld)
                break
        freq = tq1.get(3) if tq1 is not None else ""
        if not freq and tq is not None:
            freq = tq[0].get(tq[1], 2)
        out["frequency"] = _trunc(freq)
        out["route"] = _trunc(rxr.get(1, 2) or rxr.get(1, 1)) if rxr is not None else None
        # start / end dates
        start = end = None
        what = "the start date (duration of use not assessed)"
        start = self.date_field(orc, 15, what)
        if tq1 is not None:
            start = start or self.date_field(tq1, 7, what)
            end = self.date_field(tq1, 8, "the end date")
        if tq is not None:
            start = start or parse_ts(tq[0].get(tq[1], 4))
            end = end or parse_ts(tq[0].get(tq[1], 5))
        if rxd is not None:
            start = start or parse_ts(rxd.get(3))
        out["start_date"] = start
        out["days_supply"] = days_between(start, end)
        # daily dose in mg: RXE-19 / RXD-12 total daily dose, else amount x frequency
        total = None
        for seg, fld in ((rxe, 19), (rxd, 12)):
            if seg is not None and seg.get(fld):
                total = daily_dose_mg(parse_number(seg.get(fld, 1)), seg.get(fld, 2, sub=1), 1.0)
                if total is not None:
                    break
        if total is None:
            total = daily_dose_mg(parse_number(amount), units, frequency_per_day(freq))
        out["daily_dose_mg"] = total
        return out
