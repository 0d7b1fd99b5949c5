"""The Bayesian generative model: outcome response (:class:`ResponseModel`) and regimen proposal
(:class:`RegimenGenerator`), in Pyro.

``ResponseModel.from_area("t2d")`` is the literature-prior model (usable untrained); ``fit`` updates it on
episodes. ``ResponseModel(seed=0)`` works on any tabular study. See :mod:`planner.model.model` for the
generative story and :mod:`planner.model.infer` for SVI / NUTS.
"""

from .generator import MOVE_KINDS, RegimenGenerator
from .response import NotFittedError, ResponseModel
from .spec import ModelSpec

__all__ = ["ResponseModel", "RegimenGenerator", "NotFittedError", "ModelSpec", "MOVE_KINDS"]
