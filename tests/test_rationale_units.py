"""The rationale and trade-offs write units as the rules folder in use writes them (``--rules``' ``codes/units.yaml``)."""

from __future__ import annotations

import shutil

import yaml

from planner import Planner
from planner.rule_files import rules_dir
from planner.testing import BundleBuilder


def _record():
    b = BundleBuilder(patient_id="ru-htn", birth_date="1960-01-01", sex="male", as_of="2024-06-01")
    b.condition("59621000", display="Essential hypertension", onset="2015-01-01")
    b.medication("lisinopril", dose_mg_day=20, start="2020-01-01")
    b.blood_pressure(148, 88, date="2024-05-01")
    return b.record()


def test_rationale_uses_the_custom_rules_units_table(tmp_path):
    from planner.manifest import main as pin

    root = tmp_path / "rules"
    shutil.copytree(rules_dir(), root)
    path = root / "codes" / "units.yaml"
    raw = yaml.safe_load(path.read_text())
    raw["units"]["mm[Hg]"] = {"display": "millimetres of mercury", "space": True}
    path.write_text(yaml.safe_dump(raw, allow_unicode=True))
    pin([str(root)])
    rec = _record()
    custom = Planner.load(rules=root, num_samples=200).recommend(rec, area="hypertension", top=2)
    packaged = Planner.load(num_samples=200).recommend(rec, area="hypertension", top=2)
    assert custom.plans and packaged.plans
    for c, p in zip(custom.plans, packaged.plans):
        assert "millimetres of mercury" in c.rationale and "mmHg" not in c.rationale
        assert "mmHg" in p.rationale and "millimetres of mercury" not in p.rationale
        assert c.rationale.replace("millimetres of mercury", "mmHg") == p.rationale
        units = {t.term: t.unit for t in c.tradeoffs}
        assert units["outcome:shortfall"] == "millimetres of mercury"
        assert {t.term: t.unit for t in p.tradeoffs}["outcome:shortfall"] == "mmHg"
