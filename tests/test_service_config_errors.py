"""A bad value in the service configuration is named with the right complaint: a value of the wrong type says
what type is wanted, a number outside its range says so; neither is mistaken for the other."""

from __future__ import annotations

from pathlib import Path

import pytest

from planner.errors import ConfigError
from planner.service.config import load_config


def _config(tmp_path: Path, line: str) -> Path:
    p = tmp_path / "service.yaml"
    p.write_text(f"service_url: https://planner.example.org\n{line}\n", encoding="utf-8")
    return p


@pytest.mark.parametrize(
    ("line", "field", "complaint"),
    [
        ("planners: two", "planners", "must be an integer"),
        ("planners: 2.5", "planners", "must be an integer"),
        ("planners: true", "planners", "must be an integer"),
        ("planners: -1", "planners", "out of range"),
        ("top: 0", "top", "out of range"),
        ("fhir_timeout_s: soon", "fhir_timeout_s", "must be a number"),
        ("fhir_timeout_s: 120", "fhir_timeout_s", "out of range"),
    ],
)
def test_config_value_errors_name_the_key_and_the_problem(tmp_path, line, field, complaint):
    with pytest.raises(ConfigError) as err:
        load_config(_config(tmp_path, line))
    text = str(err.value)
    assert complaint in text and field in text and "service.yaml" in text
    assert ("out of range" in text) == (complaint == "out of range")


def test_good_integers_are_taken(tmp_path):
    cfg = load_config(_config(tmp_path, "planners: 2\ntop: 4"))
    assert (cfg.planners, cfg.top) == (2, 4)
