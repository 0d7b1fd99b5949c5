"""``planner fit`` end to end on a tiny simulated FHIR cohort, and its errors (exit code 2)."""

from __future__ import annotations

import json

import pandas as pd

from planner.cli import main
from planner.model import RegimenGenerator, ResponseModel
from planner.simulate import simulate_cohort


def test_fit_command_on_simulated_bundles(tmp_path, capsys):
    simulate_cohort("t2d", 40, seed=2).write_fhir(str(tmp_path / "cohort"))
    out = tmp_path / "model"
    rc = main(["fit", str(tmp_path / "cohort"), "--area", "t2d", "--out", str(out), "--seed", "1",
               "--steps", "150", "--quiet"])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "episodes used" in text and "svi fit in" in text and "final loss" in text
    meta = json.loads((out / "meta.json").read_text())
    assert meta["area"]["id"] == "t2d" and meta["seed"] == 1 and meta["training"]["episodes"] > 10
    assert "patient" not in json.dumps(meta["training"]).lower()
    m = ResponseModel.load(out)
    g = RegimenGenerator.load(out / "generator")
    X = pd.DataFrame({"age": [60.0], "sex_female": [1.0], "baseline": [8.5], "bmi": [30.0], "egfr": [80.0],
                      "sbp": [130.0], "heart_failure": [0.0], "ckd": [0.0], "cyp2c9": ["not-tested"]})
    cands = g.propose(X, g.regimen_of(()), n=5, seed=0)
    assert m.sample(X, cands, 10).shape == (10, 1, len(cands))


def test_fit_command_errors(tmp_path, capsys):
    assert main(["fit", str(tmp_path / "missing"), "--area", "t2d", "--out", str(tmp_path / "m")]) == 2
    assert "COHORT_DIR" in capsys.readouterr().err
    (tmp_path / "c").mkdir()
    assert main(["fit", str(tmp_path / "c"), "--area", "nope", "--out", str(tmp_path / "m")]) == 2
    assert main(["fit", str(tmp_path / "c"), "--area", "t2d", "--out", str(tmp_path / "m"),
                 "--method", "mcmc"]) == 2
