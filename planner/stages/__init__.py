"""The recommendation pipeline as stages: each takes the previous stage's typed hand-off
(:mod:`planner.handoffs`) and returns the next, so each can be run and tested from a saved fixture::

    row       = feature_row(record, area, knowledge=rules.knowledge)                   # planner.features
    cands     = propose_candidates(row, area=area, generator=generator, n=60, seed=0)  # .candidates
    screened  = screen_candidates(cands, record, area=area, rules=rules)               # .screening
    preds     = predict(screened, area=area, model=model, num_samples=1000, seed=0)    # .predict
    rec       = report(preds, area=area, ranking=ranking, gaps=gap_rules, top=5)       # .report (+ .gaps)

:class:`planner.Planner` loads the knowledge once and only wires these.
"""

from ..features.row import feature_row
from .candidates import CandidateGenerator, propose_candidates
from .gaps import GapRules, data_gaps
from .predict import OutcomeModel, predict, predict_draws, predict_many
from .report import report
from .screening import screen_candidates

__all__ = [
    "CandidateGenerator",
    "GapRules",
    "OutcomeModel",
    "data_gaps",
    "feature_row",
    "predict",
    "predict_draws",
    "predict_many",
    "propose_candidates",
    "report",
    "screen_candidates",
]
