"""Typed access to FHIR JSON with JSON-pointer error locations.

FHIR arrives as untrusted JSON: any field can hold the wrong type.  Every read goes
through these getters so a bad field becomes a :class:`FhirDataError` naming the exact
JSON pointer (``/entry/3/resource/authoredOn``) instead of a ``TypeError`` somewhere
deep in the conversion.  The converters catch it and yield a
:class:`~b12drugs.models.Rejection`.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

#: Longest string we accept for an id or reference (models.ShortText is 256).
MAX_SHORT = 256

_FHIR_DATE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?(?:T[0-9:.]+(?:Z|[+-]\d{2}:\d{2})?)?$")
_FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


class FhirDataError(ValueError):
    """A field of a FHIR resource cannot be read: where (JSON pointer) and why."""

    def __init__(self, pointer: str, message: str):
        self.pointer = pointer
        self.message = message
        super().__init__(f"{pointer or '/'}: {message}")


def escape(key: str) -> str:
    """Escape one JSON-pointer reference token (RFC 6901)."""
    return key.replace("~", "~0").replace("/", "~1")


def json_type(value: object) -> str:
    """The JSON name of a Python value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, Sequence):
        return "array"
    return type(value).__name__


def get_str(
    obj: Mapping[str, Any], key: str, ptr: str, *, max_len: int | None = None
) -> str | None:
    """A string field, ``None`` when absent; wrong type or over ``max_len`` is an error."""
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise FhirDataError(f"{ptr}/{escape(key)}", f"expected a string, got {json_type(value)}")
    if max_len is not None and len(value) > max_len:
        raise FhirDataError(
            f"{ptr}/{escape(key)}", f"string of {len(value)} characters exceeds {max_len}"
        )
    return value


def get_obj(obj: Mapping[str, Any], key: str, ptr: str) -> Mapping[str, Any] | None:
    value = obj.get(key)
    if value is None:
        return None
    # ``type(...) is dict`` first: parsed JSON is plain dicts, and the ABC check of
    # ``isinstance(..., Mapping)`` costs several times more on this hot path.
    if type(value) is not dict and not isinstance(value, Mapping):
        raise FhirDataError(f"{ptr}/{escape(key)}", f"expected an object, got {json_type(value)}")
    return value


def get_list(obj: Mapping[str, Any], key: str, ptr: str) -> Sequence[Any]:
    """An array field (empty when absent)."""
    value = obj.get(key)
    if value is None:
        return ()
    if not isinstance(value, list):
        raise FhirDataError(f"{ptr}/{escape(key)}", f"expected an array, got {json_type(value)}")
    return value


def get_num(obj: Mapping[str, Any], key: str, ptr: str) -> float | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise FhirDataError(f"{ptr}/{escape(key)}", f"expected a number, got {json_type(value)}")
    if value != value or value in (float("inf"), float("-inf")):
        raise FhirDataError(f"{ptr}/{escape(key)}", "number is not finite")
    return float(value)


def get_bool(obj: Mapping[str, Any], key: str, ptr: str) -> bool | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise FhirDataError(f"{ptr}/{escape(key)}", f"expected a boolean, got {json_type(value)}")
    return value


def objects(obj: Mapping[str, Any], key: str, ptr: str) -> list[tuple[Mapping[str, Any], str]]:
    """The objects of an array field with their pointers; a non-object item is an error."""
    out: list[tuple[Mapping[str, Any], str]] = []
    items = get_list(obj, key, ptr)
    if not items:
        return out
    prefix = f"{ptr}/{escape(key)}/"
    for i, item in enumerate(items):
        item_ptr = f"{prefix}{i}"
        if type(item) is not dict and not isinstance(item, Mapping):
            raise FhirDataError(item_ptr, f"expected an object, got {json_type(item)}")
        out.append((item, item_ptr))
    return out


def get_date(
    obj: Mapping[str, Any], key: str, ptr: str, *, latest: bool = False
) -> date | None:
    """A FHIR ``date``/``dateTime``/``instant`` as a calendar date.

    Partial dates (``2019``, ``2019-04``) become the first day of their period: the
    start of a medication is then never later than the sender said.  With ``latest``
    they become the last day instead (``2019`` -> 2019-12-31): for a birth date, so
    that age is never overstated (an overstated age escalates alerts wrongly); the
    HL7 v2 plugin does the same.
    """
    raw = get_str(obj, key, ptr)
    if raw is None:
        return None
    m = _FHIR_DATE.match(raw.strip())
    if not m:
        # The value is not echoed: a date of a patient's record is patient data.
        raise FhirDataError(f"{ptr}/{escape(key)}", "not a FHIR date or dateTime")
    try:
        year = int(m.group(1))
        if not latest:
            return date(year, int(m.group(2) or 1), int(m.group(3) or 1))
        month = int(m.group(2) or 12)
        if m.group(3):
            return date(year, month, int(m.group(3)))
        return date(year, month, calendar.monthrange(year, month)[1])
    except (ValueError, calendar.IllegalMonthError):
        raise FhirDataError(f"{ptr}/{escape(key)}", "not a valid calendar date") from None


def is_fhir_id(value: str) -> bool:
    return bool(_FHIR_ID.match(value))


def reference_id(reference: str, resource_type: str) -> str | None:
    """The logical id in a reference to ``resource_type``.

    Understands ``Patient/123``, ``Patient/123/_history/2``, absolute URLs ending in
    either, and ``urn:uuid:<uuid>`` (whose uuid is the id Synthea and most servers use).
    Returns ``None`` for references to another type or to contained resources.
    """
    ref = reference.strip()
    if ref.startswith("urn:uuid:"):
        return ref[9:] or None
    if ref.startswith("#"):
        return None
    parts = ref.split("/")
    if len(parts) >= 4 and parts[-2] == "_history":
        parts = parts[:-2]
    if len(parts) >= 2 and parts[-2] == resource_type and parts[-1]:
        return parts[-1]
    return None
