"""Configuration: TOML loading, validation, environment overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from b12drugs.config import Config, load_config
from b12drugs.errors import ConfigError


def test_defaults_work_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("B12DRUGS_RXNAV_URL", raising=False)
    config = load_config(None)
    assert config.rxnav.enabled is False
    assert config.policy.age_limit == 65


def test_toml_sections(tmp_path: Path) -> None:
    path = tmp_path / "b12.toml"
    path.write_text(
        '[policy]\ndisabled_classes = ["ascorbic_acid"]\nmin_severity = "warning"\n'
        "age_limit = 70\n[policy.long_term_days]\nmetformin = 200\n"
        '[plugin.cdshooks]\ndedupe = false\n'
    )
    config = load_config(path)
    assert config.policy.disabled_classes == ("ascorbic_acid",)
    assert config.policy.min_severity == "warning"
    assert config.policy.long_term_days == {"metformin": 200}
    assert config.plugin_options("cdshooks") == {"dedupe": False}


def test_unknown_key_is_refused_with_its_path(tmp_path: Path) -> None:
    path = tmp_path / "b12.toml"
    path.write_text("[policy]\nage_limt = 70\n")
    with pytest.raises(ConfigError, match=r"policy\.age_limt"):
        load_config(path)


def test_invalid_toml_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[policy\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.toml")


def test_environment_enables_rxnav(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("B12DRUGS_RXNAV_URL", "http://127.0.0.1:9/REST")
    config = load_config(None)
    assert config.rxnav.enabled and config.rxnav.base_url == "http://127.0.0.1:9/REST"


@pytest.mark.parametrize("policy", [
    {"disabled_classes": ("metformn",)},
    {"long_term_days": {"ppi": 100}},
    {"disabled_rules": ("default_policy",)},
])
def test_unknown_policy_keys_are_config_errors(policy: dict[str, object]) -> None:
    from b12drugs.config import PolicyConfig
    from b12drugs.engines import Runtime

    config = Config(policy=PolicyConfig(**policy))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="policy\\.") as info:
        Runtime(config)
    assert next(iter(next(iter(policy.values())))) in str(info.value)


def test_known_policy_keys_and_folate_masking_are_accepted() -> None:
    from b12drugs.config import PolicyConfig
    from b12drugs.engines import Runtime

    Runtime(Config(policy=PolicyConfig(
        disabled_classes=("folate_masking", "ascorbic_acid"),
        long_term_days={"metformin": 200}, disabled_rules=("folate-masking",))))


def test_min_confidence_is_gone() -> None:
    """It was never read: a knob that does nothing must not look like a safety setting."""
    from b12drugs.config import PolicyConfig

    with pytest.raises(ValueError):
        PolicyConfig(min_confidence=0.9)  # type: ignore[call-arg]
