"""The b12drugs plugin API: every hook, documented.

Plugins implement these with the :data:`b12drugs.hookimpl` marker and advertise
themselves through the ``b12drugs`` entry-point group.  Hook signatures are public
API: arguments may be added, never removed or renamed without a deprecation period.
pluggy lets an implementation accept fewer arguments than the spec, so adding one
does not break existing plugins.

Two kinds of hooks:

* **Registration hooks** take no arguments and return an iterable of typed records
  (see :mod:`b12drugs.records`).  Every implementation is called; the plugin manager
  stamps each record with its provider and reports name conflicts naming both.
* **Decision / contribution hooks** receive data.  ``firstresult`` ones say so and
  stop at the first non-``None`` result; builtins implement them ``trylast`` so that a
  vendor's implementation wins.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    import click

    from .config import Config
    from .models import PatientContext
    from .records import AlertSink, InputFormat, Knowledge, OutputFormat, Resolver, Rule

PROJECT = "b12drugs"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def b12drugs_input_formats() -> Iterable[InputFormat]:
    """Register input formats.

    :return: an iterable of :class:`~b12drugs.records.InputFormat`, each with a unique
        ``name`` (e.g. ``"csv"``, ``"fhir"``), a ``sniff(head, filename)`` function that
        returns a confidence from 0 to 1, and a streaming ``parse(stream, source)``
        generator that yields orders, patient contexts, skips and rejections.

    Called once per plugin manager; all implementations are collected (not
    firstresult).  Two formats with the same name are a conflict reported with both
    providers; the first registered wins unless strict mode is on.
    """


@hookspec
def b12drugs_output_formats() -> Iterable[OutputFormat]:
    """Register output formats.

    :return: an iterable of :class:`~b12drugs.records.OutputFormat`, each with a unique
        ``name`` (``"json"``, ``"table"``, ``"cds-cards"`` ...) and a
        ``write(report, stream)`` function writing to a text stream.

    All implementations are collected (not firstresult).
    """


@hookspec
def b12drugs_resolvers() -> Iterable[Resolver]:
    """Register steps of the drug resolution chain.

    :return: an iterable of :class:`~b12drugs.records.Resolver`.  Each has an
        ``order`` (knowledge base 100, local RxNorm index 200, RxNav 300; a vendor's
        formulary lookup would typically take 50 to run first) and a
        ``factory(config)`` returning a batch function
        ``resolve(queries) -> {query: Resolution}`` or ``None`` when disabled.

    The core calls the resolvers in ascending ``order``; for each distinct query it
    stops at the first resolver that answers ``resolved=True`` (firstresult semantics
    over an explicit, deterministic order).  Queries no resolver resolves become
    ``unresolved`` notices, together with any ``source_unavailable`` notices the
    resolvers attached.  Such answers are not cached across runs (the source is asked
    again next time).  A resolver that raises or answers anything but a mapping of
    queries to :class:`~b12drugs.models.Resolution` is a plugin problem; its queries
    go on to the next resolver.
    """


@hookspec
def b12drugs_knowledge() -> Iterable[Knowledge]:
    """Contribute knowledge: extra B12 classes and/or ingredient rows.

    :return: an iterable of :class:`~b12drugs.records.Knowledge` records, each holding
        :class:`~b12drugs.knowledge.ClassDef` and :class:`~b12drugs.knowledge.KBEntry`
        tuples, merged into the shipped knowledge base (``data/drug_map.csv``).
        Entries must name an existing or contributed class.

    All implementations are collected (not firstresult).
    """


@hookspec
def b12drugs_rules() -> Iterable[Rule]:
    """Register alert rules.

    :return: an iterable of :class:`~b12drugs.records.Rule`; each rule's
        ``evaluate(case, knowledge, config)`` yields :class:`~b12drugs.models.Alert`
        objects for one :class:`~b12drugs.records.PatientCase`, and may yield
        :class:`~b12drugs.models.Notice` objects too: say so when an order of a
        B12-lowering class was checked and deliberately not alerted (a local route, a
        dose below the class's threshold), so that no negative is silent.  The engine
        lists them with the run's notices (its patient id filled in when missing).

    All enabled rules run for every patient (not firstresult).  Builtins: the default
    severity policy (``default-policy``) and folate masking (``folate-masking``).
    A rule can be disabled by name with ``[policy] disabled_rules`` in the config (an
    unknown name is a configuration error).  A rule that raises is a plugin problem and
    becomes a ``plugin_error`` notice for that patient (the exception's type only, never
    its message, which may quote patient data).
    """


@hookspec
def b12drugs_risk_factors(
    patient: PatientContext, as_of: date, config: Config
) -> Iterable[str] | None:
    """Name the risk factors that apply to a patient.

    :param patient: everything known about the patient (conditions, labs, diet, age).
    :param as_of: the reference date of the screening (ages and durations use it).
    :param config: the run's configuration (e.g. ``policy.age_limit``).
    :return: a collection of risk-factor ids, such as ``"age_65_or_over"``,
        ``"peripheral_neuropathy"``, ``"b12_deficiency"``; or ``None``.  A bare ``str``
        (or a non-str item) is a plugin problem, not a set of one-letter ids.

    All implementations are called and their answers are united (not firstresult), so
    a plugin can add a site-specific risk factor without replacing the builtin
    detection.  Ids listed under ``KNOWN_DEFICIENCY`` in :mod:`b12drugs.assess.risk` count
    as known deficiency for the second escalation step.
    """


@hookspec
def b12drugs_alert_sinks() -> Iterable[AlertSink]:
    """Register alert sinks: places alerts are delivered besides the report.

    :return: an iterable of :class:`~b12drugs.records.AlertSink` whose
        ``factory(options)`` returns a callable receiving each finished report.

    Sinks are chosen by name in the config (``[[sinks]]`` tables) or by a plugin
    (e.g. the HL7 listener).  All implementations are collected (not firstresult).
    A factory should raise :class:`~b12drugs.errors.ConfigError` for bad options (the
    run stops: exit 2); a sink that fails otherwise adds a ``plugin_error`` notice to
    the returned report and makes ``b12drugs screen`` exit 4.
    """


@hookspec
def b12drugs_cli_commands() -> Iterable[click.Command]:
    """Add sub-commands to the ``b12drugs`` command line.

    :return: an iterable of :class:`click.Command` (or groups).  They are attached
        when the CLI starts; a name that is already taken is reported as a conflict.

    All implementations are collected (not firstresult).
    """
