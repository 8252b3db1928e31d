"""Cards as the CDS Hooks specification defines them, built from screening results.

Rules kept here:

* ``summary`` is one sentence under 140 characters; ``indicator`` is the alert's
  severity (``info``/``warning``/``critical``); ``detail`` is GitHub-flavoured
  markdown with the drugs, the mechanism, the evidence, the patient's risk factors and
  what to monitor; ``source`` has a label (and a URL and a topic when known).
* Optional fields are omitted when they have no value, never sent as null or empty.
* Every card has a ``uuid`` (feedback needs it); suggestions have uuids too, and
  ``selectionBehavior`` is present exactly when suggestions are.
* Text that came from the request (drug names typed by a prescriber, ids) is escaped
  before it goes into markdown, so a request cannot inject links or HTML into a card.
* "No silent negatives": drugs that could not be checked get an ``info`` card saying
  so, and missing prefetch data is stated rather than ignored, where it concerns the
  prescriber: inside the alert cards it could change ("Screened without: ..."), on a
  card of its own when a draft of a B12 class has no alert card (the missing context
  could have raised one), and nowhere on screen when the drafts hold no drug of a B12
  class (a card on every order signed in an EHR that does not prefetch, although no
  missing fact could have produced an alert): that card is *withheld*, i.e. logged
  and written to the audit log for the integrator, not shown.
* Lab history: an alert's ``monitoring`` object gives the "Last serum B12" line; the
  serum B12 order suggestion is offered only when a test is due, a confirmatory
  methylmalonic acid order when the last result was borderline.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from b12drugs.assess.monitoring import describe
from b12drugs.assess.risk import label as risk_label
from b12drugs.config import Config
from b12drugs.knowledge import KnowledgeBase
from b12drugs.models import LOINC_SYSTEM, SEVERITIES, Alert, LabResult, PatientContext

from .discovery import B12_LOINC, B12_LOINC_DISPLAY, MMA_LOINC
from .prefetch import DESCRIPTIONS, PatientData
from .screening import Screening
from .settings import CDSHooksSettings

MAX_SUMMARY = 139
TOPIC_SYSTEM = "urn:b12drugs:class"

#: Override reasons offered on alert cards (code, display).
OVERRIDE_REASONS: tuple[tuple[str, str], ...] = (
    ("b12-monitored", "Vitamin B12 status is already being monitored"),
    ("on-b12-therapy", "Patient already receives vitamin B12 replacement"),
    ("short-course", "Short course; deficiency is unlikely"),
    ("benefit-outweighs-risk", "Benefit outweighs the risk; will monitor"),
    ("not-applicable", "Not applicable to this patient"),
)

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#!|<>~&])")


def plain(text: str, limit: int = 1000) -> str:
    """Our own reviewed text (knowledge base, policy labels): one line, bounded."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def md(text: str, limit: int = 200) -> str:
    """Escape request-derived text for markdown (one line, bounded length)."""
    return _MD_SPECIAL.sub(r"\\\1", plain(text, limit))


def summary(text: str) -> str:
    """One line under 140 characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= MAX_SUMMARY else flat[: MAX_SUMMARY - 1].rstrip() + "…"


@dataclass
class BuiltCard:
    """A card plus what the service needs to know about it (dedupe, audit)."""

    card: dict[str, Any]
    kind: str
    orders: tuple[str, ...]
    #: built but not shown: for the log and the audit record only
    withheld: bool = False

    @property
    def uuid(self) -> str:
        return str(self.card["uuid"])

    def suggestion_ids(self) -> list[str]:
        return [s["uuid"] for s in self.card.get("suggestions", ())]


def _recent_b12(patient: PatientContext | None, today: date, days: int) -> LabResult | None:
    if patient is None:
        return None
    recent = [
        lab for lab in patient.labs
        if lab.kind == "b12" and lab.date is not None and lab.date >= today - timedelta(days=days)
    ]
    return max(recent, key=lambda lab: lab.date or today) if recent else None


_LAST_LABELS = {"b12": "Last serum B12", "holotc": "Last holotranscobalamin",
                "mma": "Last methylmalonic acid", "homocysteine": "Last homocysteine"}


class CardBuilder:
    """Builds the cards of one call; stateless apart from configuration."""

    def __init__(self, settings: CDSHooksSettings, kb: KnowledgeBase, config: Config):
        self._s = settings
        self._kb = kb
        self._config = config

    def _source(self, class_id: str | None) -> dict[str, Any]:
        source: dict[str, Any] = {"label": self._s.source_label}
        if self._s.source_url:
            source["url"] = self._s.source_url
        if class_id:
            cls = self._kb.classes.get(class_id)
            topic = {"system": TOPIC_SYSTEM, "code": class_id}
            if cls is not None and cls.label:
                topic["display"] = cls.label
            source["topic"] = topic
        return source

    def _lab_suggestion(self, patient_id: str, encounter: str | None, code: str,
                        display: str | None, text: str, reason: str,
                        recommended: bool) -> dict[str, Any]:
        coding: dict[str, Any] = {"system": LOINC_SYSTEM, "code": code}
        if display:
            coding["display"] = display
        resource: dict[str, Any] = {
            "resourceType": "ServiceRequest",
            "status": "draft",
            "intent": "order",
            "category": [{"text": "Laboratory"}],
            "code": {"coding": [coding], "text": text},
            "subject": {"reference": f"Patient/{patient_id}"},
            "reasonCode": [{"text": reason}],
        }
        if encounter:
            resource["encounter"] = {"reference": f"Encounter/{encounter}"}
        return {
            "label": f"Order {text}",
            "uuid": str(uuid.uuid4()),
            "isRecommended": recommended,
            "actions": [
                {
                    "type": "create",
                    "description": f"Create a draft order for {text} (LOINC {code})",
                    "resource": resource,
                }
            ],
        }

    def alert_card(self, alert: Alert, screening: Screening, patient_id: str,
                   encounter: str | None, missing: str | None = None) -> BuiltCard:
        labels = screening.labels
        cls = self._kb.classes.get(alert.class_id)
        today = self._config.as_of()
        orders = [labels.get(o, o) for o in alert.orders]
        in_scope = [labels.get(o, o) for o in alert.orders if o in screening.scope]
        lines = [f"**Drugs:** {', '.join(plain(d) for d in alert.drugs)}"]
        lines.append("**Orders:** " + "; ".join(md(o) for o in (in_scope or orders)))
        others = [md(o) for o in orders if o not in in_scope]
        if in_scope and others:
            lines.append("**Together with:** " + "; ".join(others))
        if cls is not None and cls.mechanism:
            lines.append(f"**Why:** {plain(cls.mechanism)}")
        lines.append(f"**Evidence:** {plain(alert.evidence)}")
        factors = [f for f in alert.risk_factors if f != "on_b12_therapy"]
        if factors:
            lines.append("**Patient risk factors:** "
                         + "; ".join(plain(risk_label(f, self._config)) for f in factors))
        if "on_b12_therapy" in alert.risk_factors:
            lines.append("**Already on B12 therapy:** severity lowered one step; keep monitoring.")
        lines.append(f"**Monitor:** {plain(alert.recommendation)}")
        monitoring = alert.monitoring
        recent = None
        if monitoring is not None:
            last = monitoring.last_result
            if last is not None:
                said = describe(last).split(" ", 1)[1] if " " in describe(last) else ""
                when = (f"; next due {monitoring.due_date:%Y-%m}"
                        if not monitoring.due and monitoring.due_date else "; a test is due")
                lines.append(f"**{_LAST_LABELS.get(last.kind, 'Last result')}:** {md(said)} "
                             f"({last.interpretation}){when}")
        else:  # an alert without lab history (a plugin's rule): the recent-result window
            recent = _recent_b12(screening.patient, today, self._s.recent_lab_days)
            if recent is not None:
                value = (f"{recent.value:g} {recent.unit or ''}".strip()
                         if recent.value is not None else "result")
                flag = f" ({recent.interpretation})" if recent.interpretation else ""
                lines.append(f"**Last serum B12:** {md(value)} on {recent.date}{flag}")
        if missing:
            lines.append(missing)
        if alert.references:
            lines.append("**References:** " + "; ".join(plain(r, 300) for r in alert.references))
        card: dict[str, Any] = {
            "uuid": str(uuid.uuid4()),
            "summary": summary(alert.summary),
            "indicator": alert.severity,
            "detail": "\n\n".join(lines),
            "source": self._source(alert.class_id if cls is not None else None),
        }
        suggestions = []
        recommended = SEVERITIES.index(alert.severity) >= 1
        drugs = ", ".join(alert.drugs)[:200]
        last = monitoring.last_result if monitoring is not None else None
        if last is not None and last.interpretation == "borderline":
            suggestions.append(self._lab_suggestion(
                patient_id, encounter, MMA_LOINC, None, "methylmalonic acid (MMA)",
                f"Confirm borderline B12 status during {drugs}", True))
        elif (monitoring.due and (last is None or last.interpretation == "normal")
              if monitoring is not None else recent is None):
            suggestions.append(self._lab_suggestion(
                patient_id, encounter, B12_LOINC, B12_LOINC_DISPLAY,
                "serum vitamin B12 (cobalamin)",
                f"Monitoring vitamin B12 during {drugs}", recommended))
        if alert.class_id == "nitrous_oxide" and not (
                last is not None and last.interpretation == "borderline"):
            # Functional deficiency: serum B12 can look normal; MMA shows it.
            suggestions.append(self._lab_suggestion(
                patient_id, encounter, MMA_LOINC, None, "methylmalonic acid (MMA)",
                f"Functional B12 deficiency check during {drugs}", recommended))
        if suggestions:
            card["suggestions"] = suggestions
            card["selectionBehavior"] = "any" if len(suggestions) > 1 else "at-most-one"
        card["overrideReasons"] = [
            {"system": self._s.override_reason_system, "code": code, "display": display}
            for code, display in OVERRIDE_REASONS
        ]
        return BuiltCard(card, alert.class_id, tuple(sorted(alert.orders)))

    def unchecked_card(self, screening: Screening) -> BuiltCard | None:
        names = screening.unresolved + screening.rejected + screening.unmatched_selections
        if not names and not screening.unavailable:
            return None
        lines = []
        if screening.unmatched_selections:
            lines.append("**Selected order not found among the draft orders, so not checked:** "
                         + "; ".join(md(n) for n in screening.unmatched_selections))
        if screening.unresolved:
            lines.append("**Not recognised, so not checked:** "
                         + "; ".join(md(n) for n in screening.unresolved))
        if screening.rejected:
            lines.append("**Could not be read:** " + "; ".join(md(n) for n in screening.rejected))
        if screening.other_unresolved:
            lines.append(f"{screening.other_unresolved} other medication(s) of this patient "
                         "could not be checked either.")
        if screening.unavailable:
            lines.append("**Drug knowledge source unavailable:** "
                         + "; ".join(md(u) for u in screening.unavailable))
        lines.append("No alert for these drugs does **not** mean they are safe: check them by "
                     "hand for effects on vitamin B12.")
        n = len(names)
        text = (f"{n} medication order{'s' if n != 1 else ''} could not be checked for "
                "vitamin B12-lowering effects" if n else
                "Vitamin B12 screening ran without a drug knowledge source; results may miss drugs")
        card = {
            "uuid": str(uuid.uuid4()),
            "summary": summary(text),
            "indicator": "info",
            "detail": "\n\n".join(lines),
            "source": self._source(None),
        }
        return BuiltCard(card, "unchecked", tuple(sorted(names)))

    def incomplete_card(self, data: PatientData, screening: Screening) -> BuiltCard | None:
        unreadable = screening.context_unreadable
        if not (data.missing or data.incomplete or unreadable) or not self._s.warn_missing_prefetch:
            return None
        what = [DESCRIPTIONS[k] for k in data.missing]
        what += [f"the complete {DESCRIPTIONS[k]}" for k in data.incomplete]
        lines = [f"- {md(DESCRIPTIONS[k])}: {md(why)}" for k, why in data.missing.items()]
        lines += [f"- {md(DESCRIPTIONS[k])}: {md(why)}" for k, why in data.incomplete.items()]
        if unreadable:
            what.append(f"{unreadable} unreadable condition/lab record(s)")
            lines.append(f"- {unreadable} condition or laboratory record(s) could not be read")
        lines.append("")
        lines.append("Alerts may be missing or less severe than the patient's full record "
                     "would warrant (risk factors, other B12-lowering drugs, B12 results).")
        card = {
            "uuid": str(uuid.uuid4()),
            "summary": summary("Vitamin B12 screening was done without " + ", ".join(what)),
            "indicator": "info",
            "detail": "**Screened without:**\n\n" + "\n".join(lines),
            "source": self._source(None),
        }
        return BuiltCard(card, "incomplete", tuple(sorted(what)))

    @staticmethod
    def missing_line(data: PatientData, screening: Screening) -> str | None:
        """The "Screened without" line of an alert card (what, and why), or ``None``."""
        what = [f"{DESCRIPTIONS[k]} ({why})" for k, why in data.missing.items()]
        what += [f"the complete {DESCRIPTIONS[k]} ({why})" for k, why in data.incomplete.items()]
        if screening.context_unreadable:
            what.append(f"{screening.context_unreadable} unreadable condition/lab record(s)")
        if not what:
            return None
        return ("**Screened without:** " + "; ".join(md(w, 400) for w in what)
                + ". Severity may be understated: risk factors, other B12-lowering drugs or "
                "B12 results were not available.")

    def build(self, screening: Screening, data: PatientData, patient_id: str,
              encounter: str | None) -> list[BuiltCard]:
        """All cards of one call, most urgent first; empty when there is nothing to say.

        Withheld cards (``BuiltCard.withheld``) come last; the caller logs and audits
        them and shows none."""
        if not screening.scope and not screening.unmatched_selections:
            return []
        missing = self.missing_line(data, screening) if self._s.warn_missing_prefetch else None
        alerts = sorted(screening.alerts, key=lambda a: -SEVERITIES.index(a.severity))
        cards = [self.alert_card(a, screening, patient_id, encounter, missing) for a in alerts]
        unchecked = self.unchecked_card(screening)
        if unchecked is not None:
            cards.append(unchecked)
        incomplete = self.incomplete_card(data, screening)
        if incomplete is not None:
            alerted = {o for a in screening.alerts for o in a.orders}
            if screening.b12_orders - alerted:
                cards.append(incomplete)  # a B12-class draft without an alert card
            elif not screening.alerts:
                incomplete.withheld = True  # no B12-class draft: nothing it could change
                cards.append(incomplete)
            # else: said inside each alert card
        return cards
