"""``planner fit`` end to end on a tiny simulated FHIR cohort, and its errors (exit code 2)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from planner.cli import main
from planner.model import RegimenGenerator, ResponseModel
from planner.simulate import simulate_cohort


def test_fit_command_on_simulated_bundles(tmp_path, capsys):
    simulate_cohort("t2d", 40, seed=2).write_fhir(str(tmp_path / "cohort"))
    out = tmp_path / "model"
    rc = main(
        [
            "fit",
            str(tmp_path / "cohort"),
            "--area",
            "t2d",
            "--out",
            str(out),
            "--seed",
            "1",
            "--steps",
            "150",
            "--quiet",
            "--check-folds",
            "2",
        ]
    )
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "episodes used" in text and "svi fit in" in text and "final loss" in text
    assert "self-check (2-fold CV" in text and "P(target) ECE" in text
    assert "follow-up spread around the patient's level:" in text
    meta = json.loads((out / "meta.json").read_text())
    fv = meta["spec"]["followup_var"]  # measured on the cohort's lab pairs, or None (too few): never a guess
    assert fv is None or (0 < fv < 1.0 and meta["spec"]["followup_var_se"] >= 0)
    chk = meta["self_check"]
    assert chk["folds"] == 2 and chk["episodes"] == meta["training"]["episodes"]
    assert 0 <= chk["coverage90"] <= 1 and abs(sum(chk["pit_hist"]) - 1) < 1e-6 and isinstance(chk["warnings"], list)
    assert meta["area"]["id"] == "t2d" and meta["seed"] == 1 and meta["training"]["episodes"] > 10
    assert "patient" not in json.dumps(meta["training"]).lower()
    m = ResponseModel.load(out)
    g = RegimenGenerator.load(out / "generator")
    X = pd.DataFrame(
        {
            "age": [60.0],
            "sex_female": [1.0],
            "baseline": [8.5],
            "bmi": [30.0],
            "egfr": [80.0],
            "sbp": [130.0],
            "heart_failure": [0.0],
            "ckd": [0.0],
            "cyp2c9": ["not-tested"],
        }
    )
    cands = g.propose(X, g.regimen_of(()), n=5, seed=0)
    assert m.sample(X, cands, 10).shape == (10, 1, len(cands))


def test_fit_command_errors(tmp_path, capsys):
    assert main(["fit", str(tmp_path / "missing"), "--area", "t2d", "--out", str(tmp_path / "m")]) == 2
    assert "COHORT_DIR" in capsys.readouterr().err
    (tmp_path / "c").mkdir()
    assert main(["fit", str(tmp_path / "c"), "--area", "nope", "--out", str(tmp_path / "m")]) == 2
    assert main(["fit", str(tmp_path / "c"), "--area", "t2d", "--out", str(tmp_path / "m"), "--method", "mcmc"]) == 2


@pytest.mark.slow
def test_self_check_calibrated_model_passes_and_overconfident_one_warns():
    """The held-out check needs no truth: a well-specified model covers about 90% of observed follow-ups with
    a flat PIT; a model whose draws are squeezed is flagged."""
    import numpy as np

    from planner.model.selfcheck import self_check

    rng = np.random.default_rng(0)
    n = 900
    X = pd.DataFrame({"a": rng.normal(size=n)})
    t = rng.random(n) < 0.5
    y = 1.0 + X["a"].to_numpy() + t * 1.0 + rng.normal(size=n)
    regs = [{"treated"} if v else set() for v in t]
    groups = [f"p{i // 2}" for i in range(n)]  # two episodes a patient
    targets = np.full(n, 1.5)
    make = lambda: ResponseModel(seed=0, num_steps=300, num_draws=300, basis="none")  # noqa: E731
    good = self_check(make, X, regs, y, None, targets, groups, folds=3, seed=0)
    assert 0.85 <= good["coverage90"] <= 0.95 and good["ece_p_target"] < 0.06 and good["pit_max_dev"] < 0.05
    assert good["warnings"] == [] and good["episodes"] == n and good["patients"] == n // 2

    class Squeezed(ResponseModel):
        def sample(self, X, regimens, num_samples=None, **kw):  # noqa: ANN001, ANN003
            d = super().sample(X, regimens, num_samples, **kw)
            return d.mean(0, keepdims=True) + 0.3 * (d - d.mean(0, keepdims=True))

    bad = self_check(
        lambda: Squeezed(seed=0, num_steps=300, num_draws=300, basis="none"),
        X,
        regs,
        y,
        None,
        targets,
        groups,
        folds=3,
        seed=0,
    )
    assert bad["coverage90"] < 0.6 and any("coverage90" in w for w in bad["warnings"])
    assert any("pit_max_dev" in w for w in bad["warnings"])
