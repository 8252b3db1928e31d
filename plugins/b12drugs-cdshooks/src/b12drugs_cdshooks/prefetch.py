"""Prefetched FHIR data, and fetching what the client did not prefetch.

A CDS client may fill some, all or none of the prefetch templates.  A key with the
value ``null`` means "no data" (the specification's rule); a missing key means the
client did not or could not fill it.  What is missing is
fetched from ``fhirServer`` with the client's ``fhirAuthorization`` token, but only when
that server is on the configured allowlist (the token must never be sent anywhere
else, and the service must not be turned into a proxy for arbitrary URLs).  Fetches
run in parallel, each bounded in time and size, without following redirects.  What
can be neither prefetched nor fetched is reported so that the card can say the
screening was done without it.
"""

from __future__ import annotations

import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import requests

from .discovery import CONDITIONS, LABS, MEDICATIONS, PATIENT, PREFETCH
from .hookrequest import Context, HookRequest
from .settings import CDSHooksSettings

log = logging.getLogger("b12drugs.cdshooks.prefetch")

#: What each prefetch key is called in cards.
DESCRIPTIONS = {
    PATIENT: "patient demographics",
    MEDICATIONS: "current medications",
    CONDITIONS: "active conditions",
    LABS: "recent vitamin B12 / methylmalonic acid results",
}

_EXPECTED_TYPE = {
    PATIENT: "Patient",
    MEDICATIONS: "Bundle",
    CONDITIONS: "Bundle",
    LABS: "Bundle",
}


@dataclass
class PatientData:
    """Resources for one call, by prefetch key, and how each was obtained."""

    patient: dict[str, Any] | None = None
    medication_requests: list[dict[str, Any]] = field(default_factory=list)
    medications: dict[str, dict[str, Any]] = field(default_factory=dict)
    conditions: list[dict[str, Any]] = field(default_factory=list)
    observations: list[dict[str, Any]] = field(default_factory=list)
    available: set[str] = field(default_factory=set)
    fetched: set[str] = field(default_factory=set)
    missing: dict[str, str] = field(default_factory=dict)  # key -> why
    incomplete: dict[str, str] = field(default_factory=dict)  # key -> why (list truncated)

    def missing_descriptions(self) -> list[str]:
        return [DESCRIPTIONS[k] for k in PREFETCH if k in self.missing]


class FetchError(Exception):
    """A fetch failed; the message is safe to show (no URL, no token)."""


def _entries(bundle: dict[str, Any], limit: int) -> list[dict[str, Any]]:
    entries = bundle.get("entry") or []
    if not isinstance(entries, list):
        return []
    out = []
    for e in entries[:limit]:
        if isinstance(e, dict) and isinstance(e.get("resource"), dict):
            out.append(e["resource"])
    return out


def _truncation(key: str, bundle: dict[str, Any], limit: int) -> str | None:
    """Why a searchset bundle holds less than the whole list, or ``None``.

    A server pages its answer (``link`` with relation ``next``), says how many matched
    (``total``) or sends more entries than the service reads (``max_prefetch_entries``).
    The labs query asks for the 20 newest results on purpose, so a next page of older
    labs is not a gap.
    """
    entries = bundle.get("entry") or []
    if not isinstance(entries, list):
        return None
    if len(entries) > limit:
        return f"incomplete: only the first {limit} of {len(entries)} entries were read"
    if key == LABS:
        return None
    links = bundle.get("link")
    if isinstance(links, list) and any(
        isinstance(link, dict) and link.get("relation") == "next" for link in links
    ):
        return "incomplete: the FHIR server sent only the first page of the list"
    total = bundle.get("total")
    matches = sum(
        1 for e in entries
        if isinstance(e, dict) and not (
            isinstance(e.get("search"), dict) and e["search"].get("mode") == "include")
    )
    if isinstance(total, int) and not isinstance(total, bool) and total > matches:
        return f"incomplete: {total} entries match but {matches} were sent"
    return None


def _absorb(data: PatientData, key: str, resource: dict[str, Any], limit: int) -> None:
    if key == PATIENT:
        data.patient = resource
        return
    why = _truncation(key, resource, limit)
    if why is not None:
        data.incomplete[key] = why
    for r in _entries(resource, limit):
        rtype = r.get("resourceType")
        if key == MEDICATIONS:
            if rtype == "MedicationRequest":
                data.medication_requests.append(r)
            elif rtype == "Medication" and isinstance(r.get("id"), str):
                data.medications[f"Medication/{r['id']}"] = r
        elif key == CONDITIONS and rtype == "Condition":
            data.conditions.append(r)
        elif key == LABS and rtype == "Observation":
            data.observations.append(r)


def query_url(base: str, key: str, context: Context, count: int | None = None) -> str:
    """The FHIR query of a prefetch template, tokens replaced (ids URL-quoted).

    Searches get ``_count=<count>`` unless the template sets one: servers page at their
    own default (often 20), and the service reads only the first page.
    """
    query = PREFETCH[key].replace("{{context.patientId}}", quote(context.patientId, safe=""))
    if count is not None and "?" in query and "_count=" not in query:
        query += f"&_count={count}"
    return f"{base.rstrip('/')}/{query}"


class Fetcher:
    """Fetch-on-demand from allow-listed FHIR servers."""

    def __init__(self, settings: CDSHooksSettings):
        self._allowed = set(settings.fhir_servers)
        self._timeout = settings.limits.fetch_timeout_seconds
        self._max_bytes = settings.limits.fetch_max_bytes
        self._count = settings.limits.max_prefetch_entries

    def allowed(self, server: str | None) -> bool:
        return bool(server) and str(server).rstrip("/") in self._allowed

    def _get(self, url: str, token: str, deadline: float) -> dict[str, Any]:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise FetchError("time limit reached")
        try:
            with requests.get(
                url,
                headers={"Authorization": f"Bearer {token}", "Accept": "application/fhir+json"},
                timeout=(min(remaining, self._timeout), min(remaining, self._timeout)),
                stream=True,
                allow_redirects=False,
            ) as resp:
                if resp.status_code != 200:
                    raise FetchError(f"the FHIR server answered HTTP {resp.status_code}")
                body = bytearray()
                for chunk in resp.iter_content(65536):
                    body += chunk
                    if len(body) > self._max_bytes:
                        raise FetchError(f"the answer exceeded {self._max_bytes} bytes")
                    if time.monotonic() > deadline:
                        raise FetchError("time limit reached")
        except requests.Timeout:
            raise FetchError("the FHIR server did not answer in time") from None
        except requests.RequestException:
            raise FetchError("the FHIR server could not be reached") from None
        try:
            value = json.loads(bytes(body))
        except (ValueError, RecursionError):
            raise FetchError("the FHIR server's answer is not JSON") from None
        if not isinstance(value, dict):
            raise FetchError("the FHIR server's answer is not a FHIR resource")
        return value

    def fetch(self, request: HookRequest, context: Context, keys: list[str]
              ) -> dict[str, dict[str, Any] | FetchError]:
        assert request.fhirServer and request.fhirAuthorization
        token = request.fhirAuthorization.access_token
        deadline = time.monotonic() + self._timeout
        urls = {k: query_url(request.fhirServer, k, context, self._count) for k in keys}
        results: dict[str, dict[str, Any] | FetchError] = {}
        with ThreadPoolExecutor(max_workers=min(4, len(keys)) or 1) as pool:
            futures = {k: pool.submit(self._get, u, token, deadline) for k, u in urls.items()}
            for k, fut in futures.items():
                try:
                    results[k] = fut.result()
                except FetchError as exc:
                    results[k] = exc
        return results


def gather(request: HookRequest, context: Context, settings: CDSHooksSettings,
           fetcher: Fetcher) -> PatientData:
    """Collect the patient's data from prefetch, then fetch what is missing if allowed."""
    limit = settings.limits.max_prefetch_entries
    data = PatientData()
    prefetch = request.prefetch or {}
    todo: list[str] = []
    for key in PREFETCH:
        value = prefetch.get(key)
        if key in prefetch and value is None:
            # The spec: null means "the client has no data for this template".
            data.available.add(key)
        elif isinstance(value, dict) and value.get("resourceType") == _EXPECTED_TYPE[key]:
            _absorb(data, key, value, limit)
            data.available.add(key)
        else:
            todo.append(key)
    if not todo:
        return data
    has_access = request.fhirServer and request.fhirAuthorization is not None
    if not has_access:
        for key in todo:
            data.missing[key] = "not prefetched and no FHIR server access was given"
        return data
    if not fetcher.allowed(request.fhirServer):
        for key in todo:
            data.missing[key] = "not prefetched and the FHIR server is not on the allowlist"
        return data
    for key, result in fetcher.fetch(request, context, todo).items():
        if isinstance(result, FetchError):
            data.missing[key] = f"could not be fetched: {result}"
        elif result.get("resourceType") != _EXPECTED_TYPE[key]:
            data.missing[key] = "could not be fetched: unexpected resource type"
        else:
            _absorb(data, key, result, limit)
            data.available.add(key)
            data.fetched.add(key)
    return data
