"""Configuration: TOML loading, validation, environment overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from b12drugs.config import load_config
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
