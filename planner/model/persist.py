"""Saving and loading a :class:`~planner.model.ResponseModel`: ``meta.json`` (options, spec, metadata, the
self-check), ``draws.npz`` (posterior draws) and, for a learned basis, ``basis/``."""

from __future__ import annotations

import json
import math
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..areas import Area
from ..errors import ModelError
from ..version import __version__
from .model import DTYPE, Priors
from .spec import ModelSpec

__all__ = ["save_model", "load_model", "FORMAT_VERSION"]

FORMAT_VERSION = 1


def save_model(model: Any, directory: str | Path) -> Path:
    """Write ``meta.json`` (options, spec, metadata) and ``draws.npz`` (posterior draws) to a folder."""
    spec, draws = model._state()
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    params = model.get_params()
    area = model._area()
    params["area"] = area.id if area is not None else None
    import pyro
    import sklearn

    meta = {
        "format": "planner.model.ResponseModel",
        "format_version": FORMAT_VERSION,
        "fitted": model.is_fitted,
        "params": params,
        "spec": spec.to_dict(),
        "area": None if area is None else {"id": area.id, "version": area.version},
        "feature_spec": {
            "features": spec.features,
            "loc": spec.feat_loc,
            "scale": spec.feat_scale,
            "baseline": spec.baseline,
            "outcome_scale": spec.scale,
        },
        "versions": {
            "planner": __version__,
            "torch": torch.__version__,
            "pyro": pyro.__version__,
            "numpy": np.__version__,
            "sklearn": sklearn.__version__,
            "python": platform.python_version(),
        },
        "seed": model.seed,
        "method": getattr(model, "method_", None),
        "training": getattr(model, "training_summary_", None),
        "diagnostics": getattr(model, "diagnostics_", None),
        "self_check": getattr(model, "self_check_", None),
        "saved_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    (d / "meta.json").write_text(json.dumps(meta, indent=2, default=_json_default), encoding="utf-8")
    np.savez_compressed(d / "draws.npz", **{k: v.numpy() for k, v in draws.items()})
    if spec.basis:
        model.basis_.save(d / "basis")
    return d


def read_state(path: Path, kind: str) -> dict[str, Any]:
    """The JSON state file of a saved ``planner.model.<kind>``; unreadable or of another kind: a ModelError."""
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(f"unreadable {path.name}: {exc}", file=str(path)) from None
    if not isinstance(state, dict) or state.get("format") != f"planner.model.{kind}":
        value = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise ModelError(f"not a {kind} file", file=str(path), field="format", value=value)
    return state


def load_model(cls: Any, directory: str | Path, *, rules: str | None = None) -> Any:
    """Load a model written by :meth:`save`."""
    d = Path(directory)
    mj, dz = d / "meta.json", d / "draws.npz"
    if not mj.is_file() or not dz.is_file():
        raise ModelError("not a saved model folder", file=str(d), expected="meta.json and draws.npz")
    meta = read_state(mj, "ResponseModel")
    if int(meta.get("format_version", 0)) > FORMAT_VERSION:
        raise ModelError(
            "saved by a newer planner",
            file=str(mj),
            field="format_version",
            value=meta.get("format_version"),
            expected=f"<= {FORMAT_VERSION}",
        )
    params = dict(meta["params"])
    if rules is not None:
        params["rules"] = rules
    model = cls(**params)
    spec = ModelSpec.from_dict(meta["spec"])
    with np.load(dz) as z:
        draws = {k: torch.as_tensor(z[k], dtype=DTYPE) for k in z.files}
    missing = [s for s in Priors(spec).distributions() if s not in draws]
    if missing:
        raise ModelError("draws file lacks sites", file=str(dz), value=missing)
    area = model._area()
    if area is not None and meta.get("area") and area.version != meta["area"]["version"]:
        import warnings

        warnings.warn(
            f"model was built with area {area.id} version {meta['area']['version']}, rules now have {area.version}",
            stacklevel=2,
        )
    model.spec_ = spec
    model.draws_ = draws
    if spec.basis:
        from .basis import LearnedBasis

        if not (d / "basis" / "basis.json").is_file():
            raise ModelError(
                "saved model lacks its learned basis",
                file=str(d / "basis"),
                expected="basis/basis.json and the fold models written by save()",
            )
        model.basis_ = LearnedBasis.load(d / "basis")
    model.area_ = area
    model.method_ = meta.get("method") or "prior"
    model.training_summary_ = meta.get("training")
    model.diagnostics_ = meta.get("diagnostics") or {}
    if meta.get("self_check") is not None:
        model.self_check_ = meta["self_check"]
    model.loss_ = []
    model.fit_seconds_ = float((meta.get("training") or {}).get("fit_seconds") or 0.0)
    user_cols = [c for c in spec.features if c not in spec.basis]
    model.feature_names_in_ = np.array(user_cols, dtype=object)
    model.n_features_in_ = len(user_cols)
    model.arms_ = [x.name for x in spec.drugs]
    model.metadata_ = meta
    return model


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Area):
        return o.id
    if isinstance(o, float) and not math.isfinite(o):
        return None
    return str(o)
