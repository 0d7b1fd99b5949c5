from __future__ import annotations

import subprocess
import sys

import pytest

from planner.areas import list_areas, load_area
from planner.errors import AreaError, FhirError, PlannerError


def test_error_message_names_resource_field_value_expected():
    err = FhirError(
        "for LOINC 33914-3",
        resource="Observation/obs-7",
        field="valueQuantity.unit",
        value="mg/dL",
        expected="mL/min/1.73m2",
    )
    msg = str(err)
    assert msg.startswith("Observation/obs-7 valueQuantity.unit 'mg/dL': for LOINC 33914-3")
    assert msg.endswith("expected mL/min/1.73m2")
    assert isinstance(err, PlannerError)
    assert err.to_dict()["resource"] == "Observation/obs-7"


def test_areas_load_and_unknown_area_is_clear():
    assert "t2d" in list_areas()
    area = load_area("t2d")
    assert area.outcome.loinc[0] == "4548-4"
    assert area.drug("metformin").rxcui == "6809"
    with pytest.raises(AreaError, match="unknown area.*expected one of"):
        load_area("oncology")


def test_cli_version_runs():
    out = subprocess.run([sys.executable, "-m", "planner.cli", "--version"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "planner" in out.stdout


def test_yaml_data_with_duplicate_keys_is_refused(tmp_path):
    from planner.errors import RuleError
    from planner.rule_files import read_yaml

    p = tmp_path / "dup.yaml"
    p.write_text("id: a\nversion: '1'\nid: b\n")
    with pytest.raises(RuleError, match="duplicate key 'id'"):
        read_yaml(p)
    q = tmp_path / "bad.yaml"
    q.write_text("id: [unclosed\n")
    with pytest.raises(RuleError, match="bad.yaml"):
        read_yaml(q)
