"""Field access, escape sequences, coded values and dates of HL7 v2 segments.

Why not :func:`hl7.parse` (python-hl7) on the hot path: it builds a container object
and a parse plan for every field, repetition and component of every segment, which
measured at about 75% of the whole parse time (about 1,200 messages/s on the reference
box).  :class:`Seg` splits with ``str.split`` using the separators the message declares
and only splits a field into components when it is read.  python-hl7 stays the
reference in the test-suite: every sample is also parsed with ``hl7.parse`` and the
field values compared (``tests/test_hl7_reference.py``).

Escape sequences are decoded here rather than with :func:`hl7.unescape`, which logs
the whole field on malformed input (patient data must never reach the logs) and can
raise on a malformed ``\\.sp`` count.  Unknown or unsupported sequences (character
set switches ``\\C..\\``/``\\M..\\``, local ``\\Z..\\``, highlighting) are dropped;
formatting commands become a space so that drug text stays on one line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from b12drugs.models import (
    ATC_SYSTEM,
    ICD10_SYSTEMS,
    NDC_SYSTEM,
    RXNORM_SYSTEM,
    SNOMED_SYSTEM,
    normalize_ndc,
)

#: Coding-system names (HL7 table 0396 and common variants) per FHIR system URI.
_DRUG_SYSTEMS: dict[str, str] = {
    "NDC": NDC_SYSTEM,
    "NDC10": NDC_SYSTEM,
    "NDC11": NDC_SYSTEM,
    "2.16.840.1.113883.6.69": NDC_SYSTEM,
    NDC_SYSTEM.upper(): NDC_SYSTEM,
    "RXNORM": RXNORM_SYSTEM,
    "RXN": RXNORM_SYSTEM,
    "RXCUI": RXNORM_SYSTEM,
    "2.16.840.1.113883.6.88": RXNORM_SYSTEM,
    RXNORM_SYSTEM.upper(): RXNORM_SYSTEM,
    # WHO ATC is "WC" in table 0396 (HL7/UTG cs-v2-0396.xml, concept 4271 "WHO ATC");
    # OID from the HL7 Terminology NamingSystem v3-WC.  Not "ATC": in table 0396 that is
    # the American Type Culture Collection.
    "WC": ATC_SYSTEM,
    "2.16.840.1.113883.6.73": ATC_SYSTEM,
    ATC_SYSTEM.upper(): ATC_SYSTEM,
}

_ICD10, _ICD10CM = ICD10_SYSTEMS
_CONDITION_SYSTEMS: dict[str, str] = {
    "I10": _ICD10,
    "ICD10": _ICD10,
    "ICD-10": _ICD10,
    "2.16.840.1.113883.6.3": _ICD10,
    "I10C": _ICD10CM,
    "ICD10CM": _ICD10CM,
    "ICD-10-CM": _ICD10CM,
    "2.16.840.1.113883.6.90": _ICD10CM,
    "SCT": SNOMED_SYSTEM,
    "SNM": SNOMED_SYSTEM,
    "SNM3": SNOMED_SYSTEM,
    "SNOMED": SNOMED_SYSTEM,
    "SNOMEDCT": SNOMED_SYSTEM,
    "SNOMED-CT": SNOMED_SYSTEM,
    "2.16.840.1.113883.6.96": SNOMED_SYSTEM,
    SNOMED_SYSTEM.upper(): SNOMED_SYSTEM,
}

_SEGMENT_ID = re.compile(r"^[A-Z][A-Z0-9]{2}$")
_RXCUI = re.compile(r"^\d{1,10}$")
_TS = re.compile(r"^(\d{4})(\d{2})?(\d{2})?")


def valid_segment_id(name: str) -> bool:
    return bool(_SEGMENT_ID.match(name))


@dataclass(frozen=True)
class Encoding:
    """The separators a message declares in MSH-1 and MSH-2."""

    field: str = "|"
    component: str = "^"
    repetition: str = "~"
    escape: str = "\\"
    subcomponent: str = "&"


def unescape(text: str, enc: Encoding, charset: str = "utf-8") -> str:
    """Decode HL7 escape sequences (``\\F\\``, ``\\S\\``, ``\\Xhh..\\``, ``\\.br\\`` ...)."""
    esc = enc.escape
    if not esc or esc not in text:
        return text
    out: list[str] = []
    i = 0
    n = len(text)
    while i < n:
        j = text.find(esc, i)
        if j < 0:
            out.append(text[i:])
            break
        out.append(text[i:j])
        k = text.find(esc, j + 1)
        if k < 0:  # unterminated: keep literally
            out.append(text[j:])
            break
        out.append(_escape_value(text[j + 1 : k], enc, charset))
        i = k + 1
    return "".join(out)


def _escape_value(seq: str, enc: Encoding, charset: str) -> str:
    simple = {
        "F": enc.field,
        "S": enc.component,
        "R": enc.repetition,
        "T": enc.subcomponent,
        "E": enc.escape,
        "P": "",  # truncation character (2.7+)
        "H": "",
        "N": "",
    }
    if seq in simple:
        return simple[seq]
    if seq.startswith("X"):
        try:
            raw = bytes.fromhex(seq[1:])
        except ValueError:
            return ""
        try:
            return raw.decode(charset)
        except (UnicodeDecodeError, LookupError):
            return raw.decode("latin-1")
    if seq.startswith(".") and seq[1:3] in ("br", "sp", "ce", "in", "ti", "sk"):
        return " "
    return ""


class Seg:
    """A read-only view of one segment with 1-based HL7 field numbers.

    Fields are split with the message's own separators (MSH-1/MSH-2); components and
    subcomponents are split only when a field is read.  ``index`` is the segment's
    1-based position among segments of the same name in its message (``RXE[2]``),
    ``line`` its line in the input file.
    """

    __slots__ = ("_charset", "_enc", "_fields", "index", "line", "name")

    def __init__(self, text: str, name: str, index: int, line: int, enc: Encoding, charset: str):
        parts = text.split(enc.field)
        if name == "MSH":  # MSH-1 is the field separator itself, MSH-2 the encoding chars
            parts = ["MSH", enc.field, *parts[1:]]
        self._fields = parts
        self.name = name
        self.index = index
        self.line = line
        self._enc = enc
        self._charset = charset

    @property
    def ref(self) -> str:
        return f"{self.name}[{self.index}]"

    def __len__(self) -> int:
        """Number of fields present (the highest field number + 1)."""
        return len(self._fields)

    def reps(self, n: int) -> list[list[list[str]]]:
        """Field ``n`` as repetitions of components of subcomponents (still escaped)."""
        if n <= 0 or n >= len(self._fields):
            return []
        enc = self._enc
        value = self._fields[n]
        if not value:
            return []
        return [
            [c.split(enc.subcomponent) for c in r.split(enc.component)]
            for r in value.split(enc.repetition)
        ]

    def get(self, n: int, comp: int = 1, rep: int = 1, sub: int = 1) -> str:
        """One value, unescaped and stripped; ``""`` when absent."""
        reps = self.reps(n)
        if rep > len(reps):
            return ""
        comps = reps[rep - 1]
        if comp > len(comps):
            return ""
        subs = comps[comp - 1]
        if sub > len(subs):
            return ""
        return unescape(subs[sub - 1], self._enc, self._charset).strip()

    def components(self, n: int, rep: int = 1) -> list[str]:
        """The components of one repetition (first subcomponent each), unescaped."""
        reps = self.reps(n)
        if rep > len(reps):
            return []
        return [unescape(c[0], self._enc, self._charset).strip() for c in reps[rep - 1]]


@dataclass(frozen=True)
class Coded:
    """One code from a CE/CWE triplet: (system URI or local name, code, display)."""

    system: str
    code: str
    display: str | None


def drug_codes(comps: list[str], local_system: str) -> tuple[list[Coded], str | None, list[str]]:
    """Codes and text of a drug CE/CWE value, plus problems found.

    Components 1-3 are the primary code, text and coding system, 4-6 the alternate ones.
    ``NDC``, ``RXNORM``/``RxNorm``/``RXN`` and ``WC`` (WHO ATC) map to the FHIR system
    URIs; other
    systems are kept under their own name; a code without a system is a local code
    (``local_system``).  A primary value with neither system nor text that contains
    whitespace is taken as free text: senders put drug names in component 1.
    """
    comps = comps + [""] * (6 - len(comps))
    codes: list[Coded] = []
    problems: list[str] = []
    text = comps[1] or comps[4] or None
    for code, display, system_name, label in (
        (comps[0], comps[1], comps[2], "1"),
        (comps[3], comps[4], comps[5], "4"),
    ):
        if not code:
            continue
        key = system_name.strip().upper()
        system = _DRUG_SYSTEMS.get(key)
        if system == NDC_SYSTEM:
            try:
                code = normalize_ndc(code)
            except ValueError:
                problems.append(f"component {label}: NDC {code!r} is not a valid NDC")
                system = None
                key = key or "NDC"
        elif system == RXNORM_SYSTEM and not _RXCUI.match(code):
            problems.append(f"component {label}: RxNorm code {code!r} is not an RxCUI")
            system = None
        if system is None and not system_name and not display and text is None and " " in code:
            text = code
            continue
        codes.append(Coded(system or (system_name.strip() or local_system), code, display or None))
    return codes, text, problems


def condition_code(comps: list[str]) -> tuple[str | None, str | None, str | None]:
    """(system, code, text) of a diagnosis CE/CWE; ICD-10 and SNOMED CT names mapped."""
    comps = comps + [""] * (6 - len(comps))
    for code, system_name in ((comps[0], comps[2]), (comps[3], comps[5])):
        if code:
            key = system_name.strip().upper()
            system = _CONDITION_SYSTEMS.get(key) or (system_name.strip() or None)
            return system, code, comps[1] or comps[4] or None
    return None, None, comps[1] or comps[4] or None


def parse_ts(value: str, *, latest: bool = False) -> date | None:
    """The date part of an HL7 TS/DTM/DT (``YYYY[MM[DD[HHMM[SS[.S]]]]][+ZZZZ]``).

    Partial dates take the first day of the year/month, or the last one with
    ``latest=True`` (used for birth dates so that an age is never overstated).
    ``None`` for an empty or invalid value.
    """
    m = _TS.match(value.strip())
    if not m:
        return None
    year = int(m.group(1))
    month_s, day_s = m.group(2), m.group(3)
    try:
        if month_s is None:
            return date(year, 12, 31) if latest else date(year, 1, 1)
        month = int(month_s)
        if day_s is None:
            if not latest:
                return date(year, month, 1)
            nxt = date(year + (month == 12), month % 12 + 1, 1)
            return date.fromordinal(nxt.toordinal() - 1)
        return date(year, month, int(day_s))
    except ValueError:
        return None


def parse_number(value: str) -> float | None:
    try:
        num = float(value.strip())
    except ValueError:
        return None
    if num != num or num in (float("inf"), float("-inf")):
        return None
    return num
