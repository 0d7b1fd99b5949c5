"""The Bayesian generative model: outcome response (:class:`ResponseModel`) and regimen proposal
(:class:`RegimenGenerator`), in Pyro.

``ResponseModel.from_area("t2d")`` is the literature-prior model (usable untrained); ``fit`` updates it on
episodes. ``ResponseModel(seed=0)`` works on any tabular study. See :mod:`planner.model.model` for the
generative story and :mod:`planner.model.infer` for SVI / NUTS.
"""

from importlib import import_module
from typing import Any

__all__ = ["ResponseModel", "RegimenGenerator", "NotFittedError", "ModelSpec", "MOVE_KINDS"]

# Lazy: torch, pyro and scikit-learn load only when a model is used, so that CLI commands that need no
# model (inspect, check, rules, simulate) start fast.
_WHERE = {
    "ResponseModel": ".response",
    "NotFittedError": ".response",
    "RegimenGenerator": ".generator",
    "MOVE_KINDS": ".generator",
    "ModelSpec": ".spec",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(_WHERE[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
