"""Saving and loading a :class:`~planner.model.RegimenGenerator` (``generator.json``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ..areas import load_area
from ..errors import ModelError
from ..version import __version__

__all__ = ["save_generator", "load_generator"]


def save_generator(gen: Any, directory: str | Path) -> Path:
    """Write ``generator.json`` (options, fitted weights and the kind model's coefficients)."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    area = gen._a()
    params = gen.get_params()
    params["area"] = area.id
    state: dict[str, Any] = {
        "format": "planner.model.RegimenGenerator",
        "format_version": 1,
        "planner": __version__,
        "area": {"id": area.id, "version": area.version},
        "params": params,
        "fitted": gen._is_fitted(),
    }
    if gen._is_fitted():
        lr = gen.kind_model_
        state.update(
            {
                "feature_names_in": list(gen.feature_names_in_),
                "categories": gen.categories_,
                "feat_loc": gen.feat_loc_.tolist(),
                "feat_scale": gen.feat_scale_.tolist(),
                "drug_weights": gen.drug_weights_.tolist(),
                "level_weights": gen.level_weights_.tolist(),
                "kind_counts": gen.kind_counts_,
                "n_decisions": gen.n_decisions_,
                "kind_model": None
                if lr is None
                else {
                    "classes": lr.classes_.tolist(),
                    "coef": lr.coef_.tolist(),
                    "intercept": lr.intercept_.tolist(),
                },
            }
        )
    (d / "generator.json").write_text(json.dumps(state, indent=1), encoding="utf-8")
    return d


def load_generator(cls: Any, directory: str | Path, *, rules: str | None = None) -> Any:
    p = Path(directory) / "generator.json"
    if not p.is_file():
        raise ModelError("not a saved generator folder", file=str(directory), expected="generator.json")
    from .persist import read_state

    state = read_state(p, "RegimenGenerator")
    params = dict(state["params"])
    if rules is not None:
        params["rules"] = rules
    params["area"] = load_area(params["area"], params.get("rules"))
    g = cls(**params)
    if state.get("fitted"):
        g.feature_names_in_ = np.array(state["feature_names_in"], dtype=object)
        g.n_features_in_ = len(g.feature_names_in_)
        g.categories_ = state.get("categories", {})
        g.feat_loc_ = np.array(state["feat_loc"], dtype=np.float64)
        g.feat_scale_ = np.array(state["feat_scale"], dtype=np.float64)
        g.drug_weights_ = np.array(state["drug_weights"])
        g.level_weights_ = np.array(state["level_weights"])
        g.kind_counts_ = state["kind_counts"]
        g.n_decisions_ = state["n_decisions"]
        km = state.get("kind_model")
        if km is None:
            g.kind_model_ = None
        else:
            from sklearn.linear_model import LogisticRegression

            lr = LogisticRegression(C=g.C)
            lr.classes_ = np.array(km["classes"])
            lr.coef_ = np.array(km["coef"])
            lr.intercept_ = np.array(km["intercept"])
            lr.n_features_in_ = lr.coef_.shape[1]
            g.kind_model_ = lr
    return g
