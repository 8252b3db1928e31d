"""A finished run: its report, and its alerts wherever they are kept."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..models import SEVERITIES, Alert, Report

if TYPE_CHECKING:
    from .spill import AlertSpool, TempArea



@dataclass
class Result:
    """A finished run: the report, and its alerts when they were spooled.

    ``report.alerts`` is empty while :attr:`spool` holds the alerts; :meth:`to_report`
    gives the whole report (memory then grows with the alerts), :meth:`alerts` the
    alerts one by one, in order, for writers that stream.
    """

    report: Report
    spool: AlertSpool | None = None
    severities: dict[str, int] = field(default_factory=dict)
    temp: TempArea | None = None

    def alerts(self) -> Iterable[Alert]:
        """The alerts one by one, in report order, wherever they are kept (a spool also
        gives their JSON: :class:`~b12drugs.records.AlertJson`)."""
        return self.report.alerts if self.spool is None else self.spool

    def to_report(self) -> Report:
        if self.spool is None:
            return self.report
        return self.report.model_copy(update={"alerts": tuple(self.spool)})

    def max_severity(self) -> str | None:
        found = [s for s in SEVERITIES if self.severities.get(s)]
        return found[-1] if found else None

    def close(self) -> None:
        """Remove the run's temporary files."""
        if self.temp is not None:
            self.temp.close()

    @classmethod
    def of(cls, report: Report) -> Result:
        """A result whose alerts are all in ``report``."""
        severities: dict[str, int] = {}
        for alert in report.alerts:
            severities[alert.severity] = severities.get(alert.severity, 0) + 1
        return cls(report, None, severities)
