"""One patient's assessment, the same for every engine.

An engine gathers a :class:`~b12drugs.records.PatientCase` (the patient's context and
the orders with class hits) however suits its input; :class:`Assessor` then names the
patient's risk factors (the ``b12drugs_risk_factors`` hook), runs every enabled rule,
and keeps what the policy reports.  So the record engine, the columnar engine and the
Spark workers apply one policy, written once, and third-party rules see the same
:class:`PatientCase` from all of them.

A rule or risk-factor plugin that fails is reported as a ``plugin_error`` notice for
that patient (the exception's type only: its message may quote patient data), and the
other rules still run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING

from ..errors import PluginError
from .monitoring import kept_out
from ..models import SEVERITIES, Alert, Notice, PatientContext
from ..records import OrderFindings, PatientCase

if TYPE_CHECKING:
    from ..config import Config
    from ..knowledge import KnowledgeBase
    from ..plugins import Hooks
    from ..records import Rule


@dataclass
class CaseResult:
    """What assessing one patient gave: reported alerts, notices to list (in order),
    alerts kept out by ``min_severity`` and the disabled classes the patient had."""

    alerts: list[Alert] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)
    unreported: int = 0
    #: alerts kept out for a normal B12 result within the monitoring interval
    not_due: int = 0
    disabled_classes: tuple[str, ...] = ()


class Assessor:
    """Assesses patients with one run's rules, knowledge and configuration."""

    def __init__(self, hooks: Hooks, kb: KnowledgeBase, rules: Sequence[Rule],
                 config: Config, as_of: date):
        self.hooks = hooks
        self.kb = kb
        self.config = config
        self.as_of = as_of
        self._rule_calls = [(rule, f"rule {rule.name}") for rule in rules]
        policy = config.policy
        self._reported = frozenset(SEVERITIES[SEVERITIES.index(policy.min_severity):])
        self._disabled = frozenset(policy.disabled_classes)

    def assess(self, patient_id: str | None, context: PatientContext | None,
               findings: list[OrderFindings]) -> CaseResult:
        """Risk factors, then every rule, for one patient with findings."""
        hooks, problems = self.hooks, self.hooks.problems
        result = CaseResult()
        risk: tuple[str, ...] = ()
        if context is not None:
            before = problems.mark()
            risk = tuple(sorted(hooks.risk_factors(context, self.as_of, self.config)))
            if problems.total > before:
                self._plugin_failed(result, before, patient_id, "risk factors: some of this "
                                    "patient's risk factors may be missing")
        case = PatientCase(patient_id, context, findings, risk, self.as_of)
        if self._disabled:
            result.disabled_classes = tuple(sorted(self._disabled.intersection(case.by_class())))
        kb, config, reported = self.kb, self.config, self._reported
        for rule, where in self._rule_calls:
            before = problems.mark()
            try:
                got = list(rule.evaluate(case, kb, config))
            except PluginError:
                raise
            except Exception as exc:
                hooks.problem(rule.provider, where, exc)
                got = []
            if problems.total > before:
                self._plugin_failed(result, before, patient_id,
                                    f"{where}: this patient was not checked by it")
            for item in got:
                if isinstance(item, Alert):
                    if item.severity not in reported:
                        result.unreported += 1
                    elif item.monitoring is not None and kept_out(item, config):
                        result.not_due += 1
                    else:
                        result.alerts.append(item)
                elif isinstance(item, Notice):
                    if item.patient_id is None and patient_id is not None:
                        item = item.model_copy(update={"patient_id": patient_id})
                    result.notices.append(item)
                else:
                    hooks.problem(rule.provider, where, TypeError(
                        f"yielded {type(item).__name__}, expected Alert or Notice"))
                    self._plugin_failed(result, problems.total - 1, patient_id,
                                        f"{where}: some of its results were dropped")
        return result

    def _plugin_failed(self, result: CaseResult, before: int, patient_id: str | None,
                       what: str) -> None:
        """Plugin problems recorded since ``before``, as notices of this patient."""
        for prob in self.hooks.problems.since(before):
            result.notices.append(Notice(
                kind="plugin_error", patient_id=patient_id,
                message=f"plugin {prob.plugin!r} failed in {what} "
                        f"({prob.exc_type or 'error'})"[:1000]))
