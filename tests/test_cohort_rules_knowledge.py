"""A cohort run with its own rules folder reads pharmacogenomic results with that folder's allele tables: the
features stored per row (``features_json``, which off-policy evaluation adjusts for) are the planner's, not the
packaged rules'."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

from planner.cohort import read_results, run_cohort
from planner.rule_files import rules_dir
from planner.testing import BundleBuilder


def _custom_rules(root: Path) -> Path:
    """The packaged rules with CYP2C19*2 read as normal function (so *1/*2 is a normal metabolizer here)."""
    from planner.manifest import main as pin

    shutil.copytree(rules_dir(), root)
    path = root / "pgx" / "allele_function.csv"
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    head = [ln for ln in lines if ln.startswith("#")]
    rows = list(csv.reader([ln for ln in lines if not ln.startswith("#")]))
    hits = 0
    for row in rows[1:]:
        if row[:2] == ["CYP2C19", "*2"]:
            row[2], hits = "Normal function", hits + 1
    assert hits == 1, "the packaged table no longer has one CYP2C19*2 row"
    with path.open("w", encoding="utf-8", newline="") as fh:
        fh.writelines(head)
        csv.writer(fh, lineterminator="\n").writerows(rows)
    pin([str(root)])
    return root


def test_cohort_features_use_the_planner_rules(tmp_path):
    b = BundleBuilder(patient_id="ck-1", birth_date="1975-04-02", sex="female", as_of="2024-06-01")
    b.condition("35489007", display="Depressive disorder", onset="2023-10-01")
    b.observation("phq9", 17, date="2024-05-20")
    b.genotype("CYP2C19", "*1/*2")
    src = tmp_path / "in"
    src.mkdir()
    (src / "ck-1.json").write_text(json.dumps(b.build()), encoding="utf-8")
    root = _custom_rules(tmp_path / "rules")

    def cyp2c19(out: Path, rules: Path | None) -> str:
        run_cohort(
            src, area="depression", out=out, rules=None if rules is None else str(rules), at="current", warm=False
        )
        df = read_results(out)
        assert list(df.status) == ["ok"]
        return json.loads(df.features_json.iloc[0])["cyp2c19"]

    packaged = cyp2c19(tmp_path / "packaged", None)
    custom = cyp2c19(tmp_path / "custom", root)
    assert "intermediate" in packaged.lower()
    assert "normal" in custom.lower()
