"""The books of a run: counts, notices under their per-kind limit, the policy's notes.

Every record read ends as *screened*, *skipped* (with a reason) or *rejected* (with a
location and a reason): ``read == screened + skipped + rejected`` always.  Notices are
listed up to ``notice_limit`` per kind and counted beyond it (a closing notice per kind
says how many were not listed); counts are always exact.  Both engines keep their books
here, so their reports agree to the notice.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING

from ..__about__ import __version__
from ..models import Alert, Counts, Notice, Rejection, Report
from .runtime import PSEUDO_CLASSES

if TYPE_CHECKING:
    from ..assess.case import CaseResult
    from ..config import Config

DEFAULT_NOTICE_LIMIT = 1000


class Books:
    """Counts and notices of one run."""

    def __init__(self, notice_limit: int = DEFAULT_NOTICE_LIMIT):
        self.counts = {"read": 0, "screened": 0, "skipped": 0, "rejected": 0}
        self.notices: list[Notice] = []
        self.sources: list[str] = []
        self.notice_limit = notice_limit
        self.notice_counts: dict[str, int] = {}
        #: alerts the policy kept out (under ``min_severity``)
        self.unreported = 0
        #: alerts kept out for a normal B12 result within the interval
        self.not_due = 0
        #: class id -> patients with orders in that disabled class
        self.disabled_seen: dict[str, int] = {}

    def source(self, source: str) -> None:
        if source and source not in self.sources:
            self.sources.append(source)

    def listed(self, kind: str) -> bool:
        """Count one notice of ``kind``; true while it is still to be listed.

        Callers ask first and build the :class:`Notice` only when it will be listed: a
        file with 50,000 stopped orders then builds 1,000 skip notices, not 50,000.
        """
        n = self.notice_counts.get(kind, 0) + 1
        self.notice_counts[kind] = n
        return n <= self.notice_limit

    def room(self, kind: str) -> int:
        """How many more notices of ``kind`` will be listed."""
        return max(self.notice_limit - self.notice_counts.get(kind, 0), 0)

    def count_only(self, kind: str, n: int) -> None:
        """Count ``n`` notices of ``kind`` that are past the limit (not listed)."""
        if n:
            self.notice_counts[kind] = self.notice_counts.get(kind, 0) + n

    def notice(self, notice: Notice) -> None:
        if self.listed(notice.kind):
            self.notices.append(notice)

    def reject(self, rec: Rejection, source: str) -> None:
        self.counts["read"] += 1
        self.counts["rejected"] += 1
        if self.listed("rejected"):
            self.notices.append(rejected_notice(rec, source))

    def skip(self, reason: str, source: str, *, order_id: str | None = None,
             patient_id: str | None = None, location: str | None = None) -> None:
        self.counts["read"] += 1
        self.counts["skipped"] += 1
        if self.listed("skipped"):
            self.notices.append(Notice(kind="skipped", message=reason, order_id=order_id,
                                       patient_id=patient_id, location=location,
                                       source=source or None))

    def case(self, result: CaseResult) -> None:
        """The notices and policy counts of one assessed patient (not its alerts)."""
        for n in result.notices:
            self.notice(n)
        self.unreported += result.unreported
        self.not_due += result.not_due
        for class_id in result.disabled_classes:
            self.disabled_seen[class_id] = self.disabled_seen.get(class_id, 0) + 1

    def close(self, config: Config, disabled_rules: tuple[str, ...]) -> None:
        """Add the closing notices: what the policy kept out, then per kind how many
        notices were not listed.  Checks the accounting."""
        self.notices.extend(policy_notices(self, config, disabled_rules))
        for kind, n in self.notice_counts.items():
            if n > self.notice_limit:
                self.notices.append(Notice(
                    kind=kind,  # type: ignore[arg-type]
                    message=f"{n - self.notice_limit} more {kind} notices not listed "
                            f"(limit {self.notice_limit} per kind; counts are exact)"))
        c = self.counts
        if c["read"] != c["screened"] + c["skipped"] + c["rejected"]:
            raise AssertionError(f"accounting broken: {c}")

    def report(self, knowledge_version: str, alerts: tuple[Alert, ...] = ()) -> Report:
        return Report(
            generated_at=datetime.now(timezone.utc),
            b12drugs_version=__version__,
            knowledge_version=knowledge_version,
            sources=tuple(self.sources),
            alerts=alerts,
            notices=tuple(self.notices),
            counts=Counts(**self.counts),
        )


def rejected_notice(rec: Rejection, source: str) -> Notice:
    return Notice(kind="rejected", message=rec.reason, order_id=rec.record_id,
                  location=str(rec.location)[:256], source=source or rec.location.file)


def policy_notices(books: Books, config: Config, disabled_rules: tuple[str, ...],
                   ) -> list[Notice]:
    """What the configured policy left out of this report, so that a quiet report is
    not mistaken for a clean one: alerts under ``min_severity``, classes in
    ``disabled_classes`` that patients' orders fell in (and the folate-masking check when
    it is listed there), rules in ``disabled_rules``.  Counts and names from the
    configuration only, no patient data."""
    policy = config.policy
    out = []
    if books.unreported:
        out.append(Notice(kind="info", message=(
            f"{books.unreported} alert(s) under the reporting threshold were not "
            f"reported ([policy] min_severity = {policy.min_severity!r})")))
    if books.not_due:
        out.append(Notice(kind="info", message=(
            f"{books.not_due} alert(s) for patients with a normal B12 status result "
            "within the monitoring interval were not reported ([policy.monitoring] "
            "report_not_due = false)")))
    for class_id, patients in sorted(books.disabled_seen.items()):
        out.append(Notice(kind="info", message=(
            f"class {class_id!r} is disabled ([policy] disabled_classes): {patients} "
            "patient(s) with orders in it were not alerted for it")))
    off = [c for c in PSEUDO_CLASSES if c in policy.disabled_classes]
    if off:
        out.append(Notice(kind="info", message=(
            "checks disabled ([policy] disabled_classes), so not applied: " + ", ".join(off))))
    if disabled_rules:
        out.append(Notice(kind="info", message=(
            "rules disabled ([policy] disabled_rules), so not applied: "
            + ", ".join(disabled_rules))[:1000]))
    return out
