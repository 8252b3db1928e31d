"""Domain models: normalisers, validation, immutability."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from b12drugs.models import (
    NDC_SYSTEM,
    RXNORM_SYSTEM,
    Alert,
    Coding,
    DrugQuery,
    Order,
    PatientContext,
    normalize_ndc,
)


@pytest.mark.parametrize(
    ("raw", "ndc11"),
    [
        ("0781-1506-10", "00781150610"),  # 4-4-2
        ("12345-678-90", "12345067890"),  # 5-3-2
        ("12345-6789-0", "12345678900"),  # 5-4-1
        ("12345-6789-01", "12345678901"),  # 5-4-2
        ("00364666854", "00364666854"),  # 11 digits
        (" 00364666854 ", "00364666854"),
    ],
)
def test_ndc_layouts_normalise_to_11_digits(raw: str, ndc11: str) -> None:
    assert normalize_ndc(raw) == ndc11


@pytest.mark.parametrize("bad", ["12345-678", "1234567890", "abc-defg-hi", "123-45-6", ""])
def test_ndc_refuses_ambiguous_or_malformed(bad: str) -> None:
    with pytest.raises(ValueError):
        normalize_ndc(bad)


@given(st.text(max_size=30))
def test_ndc_normaliser_only_raises_value_error(text: str) -> None:
    try:
        out = normalize_ndc(text)
    except ValueError:
        return
    assert len(out) == 11 and out.isdigit()


def test_models_are_frozen_and_forbid_unknown_fields() -> None:
    order = Order(id="1", text="metformin")
    with pytest.raises(ValidationError):
        order.text = "x"  # type: ignore[misc]
    with pytest.raises(ValidationError):
        Order(id="1", text="metformin", colour="red")  # type: ignore[call-arg]


def test_text_fields_are_bounded() -> None:
    with pytest.raises(ValidationError):
        Order(id="1", text="x" * 5000)
    with pytest.raises(ValidationError):
        Order(id="y" * 300)


def test_card_summary_is_under_140_characters() -> None:
    fields = dict(patient_id="p", class_id="metformin", severity="info", detail="d",
                  orders=("1",), drugs=("metformin",), recommendation="r", evidence="strong",
                  rule="x")
    Alert(summary="s" * 139, **fields)
    with pytest.raises(ValidationError):
        Alert(summary="s" * 140, **fields)


def test_query_from_order_separates_codes_and_texts() -> None:
    order = Order(
        id="1",
        text="metformin ER",
        codings=(
            Coding(system=RXNORM_SYSTEM, code="860975", display="24 HR metformin"),
            Coding(system=NDC_SYSTEM, code="00000000000"),
            Coding(system="urn:local", code="A1", display="metformin ER"),
        ),
    )
    q = DrugQuery.from_order(order)
    assert q.rxcuis == ("860975",)
    assert q.ndcs == ("00000000000",)
    assert q.texts == ("metformin ER", "24 HR metformin")  # no repeats
    assert q.other_codings[0].system == "urn:local"
    assert hash(q) == hash(DrugQuery.from_order(order))


def test_patient_contexts_merge_without_losing_data() -> None:
    from b12drugs.models import Condition

    a = PatientContext(id="p", birth_date="1950-01-01", conditions=(Condition(text="gout"),))
    b = PatientContext(id="p", sex="female", conditions=(Condition(text="gout"),
                                                         Condition(text="anemia")))
    m = a.merged(b)
    assert str(m.birth_date) == "1950-01-01" and m.sex == "female"
    assert [c.text for c in m.conditions] == ["gout", "anemia"]
