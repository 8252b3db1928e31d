"""Test kit for plugin authors: fixtures and contract tests.

Installed as a pytest plugin (entry point ``pytest11``), so in any environment where
b12drugs is installed these fixtures are available without imports:

``plugin_manager``
    A fresh, isolated :class:`~b12drugs.plugins.PluginManager` with the builtins only
    (no entry points), strict, so a broken hook fails the test.
``register_plugin``
    ``register_plugin(obj, name="...")`` registers a plugin object into
    ``plugin_manager`` for one test.

Contract tests: subclass and set the class attributes; every test of the base class
then runs against your format::

    from pathlib import Path
    from b12drugs.testing import InputFormatContract

    class TestMyFormat(InputFormatContract):
        format_name = "myformat"
        sample_path = Path(__file__).parent / "data" / "sample.txt"

The input contract checks that the format is registered through its entry point,
recognises its own sample (and is preferred for it over every other installed
format), refuses empty and binary input, parses the sample into orders, accounts for
every record, and that truncated or mutated input never raises anything but
:class:`~b12drugs.errors.InputError`.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from .engines import detect_format, screen, screen_inputs
from .errors import InputError
from .models import (
    Notice,
    Order,
    PatientContext,
    PatientEnd,
    Rejection,
    Report,
    Skip,
)
from .plugins import PluginManager
from .records import InputFormat, OutputFormat

RECORD_TYPES = (Order, PatientContext, Rejection, Skip, PatientEnd, Notice)


@pytest.fixture
def plugin_manager() -> PluginManager:
    """An isolated plugin manager: builtins only, strict."""
    return PluginManager(strict=True, entry_points=False)


@pytest.fixture
def register_plugin(plugin_manager: PluginManager) -> Iterator[Callable[..., None]]:
    """Register a plugin object into ``plugin_manager`` for the duration of a test."""
    names: list[str] = []

    def register(plugin: object, name: str = "test-plugin") -> None:
        plugin_manager.register(plugin, name, dist="test", version="0")
        names.append(name)

    yield register
    for name in names:
        if name in plugin_manager.infos:
            plugin_manager.unregister(name)


def parse_all(fmt: InputFormat, data: bytes, source: str = "contract") -> list[Any]:
    """Parse bytes completely; only :class:`InputError` may escape."""
    return list(fmt.parse(io.BytesIO(data), source))


def comparable(report: Report) -> dict[str, Any]:
    """A report without its time stamp: what two engines must agree on."""
    return report.model_dump(mode="json", exclude={"generated_at"})


class InputFormatContract:
    """Contract every input format must meet.  Set ``format_name`` and ``sample_path``."""

    format_name: ClassVar[str]
    sample_path: ClassVar[Path]
    #: At least this many orders in the sample.
    min_orders: ClassVar[int] = 1

    @pytest.fixture
    def contract_manager(self) -> PluginManager:
        return PluginManager(strict=False)

    @pytest.fixture
    def fmt(self, contract_manager: PluginManager) -> InputFormat:
        found = contract_manager.hooks.format_for(self.format_name)
        assert found is not None, f"input format {self.format_name!r} is not registered"
        return found

    @pytest.fixture
    def sample(self) -> bytes:
        return self.sample_path.read_bytes()

    def test_registered_without_problems(
        self, fmt: InputFormat, contract_manager: PluginManager
    ) -> None:
        assert fmt.provider, "format has no provider"
        mine = [p for p in contract_manager.hooks.problems if p.plugin == fmt.provider]
        assert not mine, [str(p) for p in mine]

    def test_recognises_its_sample(
        self, fmt: InputFormat, contract_manager: PluginManager, sample: bytes
    ) -> None:
        head = sample[:65536]
        assert fmt.sniff(head, self.sample_path.name) >= 0.5
        chosen = detect_format(head, self.sample_path.name, contract_manager.hooks.input_formats())
        assert chosen is not None and chosen.name == self.format_name

    def test_refuses_empty_and_binary(self, fmt: InputFormat) -> None:
        assert fmt.sniff(b"", "x") < 0.5
        assert fmt.sniff(bytes(range(256)) * 4, "x.bin") < 0.5

    def test_parses_sample_into_orders(self, fmt: InputFormat, sample: bytes) -> None:
        records = parse_all(fmt, sample, str(self.sample_path))
        assert all(isinstance(r, RECORD_TYPES) for r in records)
        orders = [r for r in records if isinstance(r, Order)]
        assert len(orders) >= self.min_orders
        for r in records:
            if isinstance(r, Rejection):
                assert r.location.file or r.location.pointer or r.location.line
                assert r.reason

    def test_accounting_through_the_engine(self, contract_manager: PluginManager) -> None:
        report = screen_inputs([self.sample_path], self.format_name, manager=contract_manager)
        c = report.counts
        assert c.read == c.screened + c.skipped + c.rejected
        assert c.read >= self.min_orders

    def test_engines_agree_on_the_sample(self, fmt: InputFormat,
                                         contract_manager: PluginManager) -> None:
        """A tabular format (``read_table``) is screened alike by both engines."""
        if fmt.read_table is None:
            assert fmt.parse is not None  # a record format: the record engine reads it
            return
        reports = [screen_inputs([self.sample_path], self.format_name,
                                 manager=contract_manager, engine=engine)
                   for engine in ("record", "columnar")]
        assert comparable(reports[0]) == comparable(reports[1])

    def test_truncated_input_never_crashes(self, fmt: InputFormat, sample: bytes) -> None:
        cuts = sorted({1, 7, len(sample) // 3, len(sample) // 2, len(sample) - 1})
        for cut in cuts:
            try:
                records = parse_all(fmt, sample[:cut])
            except InputError:
                continue
            assert all(isinstance(r, RECORD_TYPES) for r in records)

    def test_mutated_input_never_crashes(self, fmt: InputFormat, sample: bytes) -> None:
        from hypothesis import HealthCheck, given, settings
        from hypothesis import strategies as st

        base = sample[:20000]

        @settings(max_examples=40, deadline=None,
                  suppress_health_check=[HealthCheck.function_scoped_fixture])
        @given(st.lists(st.tuples(st.integers(0, max(len(base) - 1, 0)), st.binary(max_size=4)),
                        max_size=6))
        def check(edits: list[tuple[int, bytes]]) -> None:
            data = bytearray(base)
            for pos, blob in edits:
                data[pos:pos + len(blob)] = blob
            try:
                records = parse_all(fmt, bytes(data))
            except InputError:
                return
            assert all(isinstance(r, RECORD_TYPES) for r in records)

        check()


def example_report() -> Report:
    """A small report with alerts of each severity path, for output contracts."""
    from datetime import date

    from .config import Config, PolicyConfig

    config = Config(policy=PolicyConfig(as_of=date(2026, 1, 1)))
    orders = [
        Order(id="rx1", patient_id="p1", text="metformin 500 mg tablet", status="active",
              start_date=date(2020, 1, 1)),
        Order(id="rx2", patient_id="p1", text="omeprazole 20 mg capsule", status="active"),
        Order(id="rx3", patient_id="p1", text="zzqx unknown drug", status="active"),
        Order(id="rx4", patient_id="p1", text="metformin 500 mg tablet", status="stopped"),
    ]
    patient = PatientContext(id="p1", birth_date=date(1950, 5, 1))
    return screen(orders, patient, config)


class OutputFormatContract:
    """Contract every output format must meet.  Set ``format_name``; override
    :meth:`check_output` to validate the text your format writes."""

    format_name: ClassVar[str]

    @pytest.fixture
    def writer(self) -> OutputFormat:
        found = PluginManager(strict=False).hooks.output_for(self.format_name)
        assert found is not None, f"output format {self.format_name!r} is not registered"
        return found

    def check_output(self, text: str, report: Report) -> None:
        assert text.strip(), "output is empty"

    def test_writes_a_report_with_alerts(self, writer: OutputFormat) -> None:
        report = example_report()
        assert report.alerts, "the example report should have alerts"
        out = io.StringIO()
        writer.write(report, out)
        self.check_output(out.getvalue(), report)

    def test_streamed_alerts_write_the_same(self, writer: OutputFormat) -> None:
        """A writer that streams (``write_stream``) writes what ``write`` writes."""
        from .engines.result import Result

        report = example_report()
        whole = io.StringIO()
        writer.write(report, whole)
        if writer.write_stream is None:
            return
        streamed = io.StringIO()
        writer.write_stream(report.model_copy(update={"alerts": ()}),
                            Result.of(report).alerts(), streamed)
        assert streamed.getvalue() == whole.getvalue()

    def test_writes_an_empty_report(self, writer: OutputFormat) -> None:
        report = screen([])
        out = io.StringIO()
        writer.write(report, out)
        assert isinstance(out.getvalue(), str)
