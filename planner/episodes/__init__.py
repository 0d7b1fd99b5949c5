"""Episodes: how a cohort teaches the model (DESIGN.md episode rules), from any PatientRecord.

Public API::

    extract_episodes(record, area, *, with_features=True) -> EpisodeResult   # .episodes, .dropped (Counter)
    episodes_frame(records, area, *, with_features=True) -> (DataFrame, Counter)
    medication_intervals(record, area) -> list[Interval]; regimen_changes(intervals) -> list[Change]
    regimen_on(record, area, day) -> Regimen
    Episode (frozen pydantic), EpisodeResult, DROP_REASONS
"""

from ..medication_intervals import Change, Interval, medication_intervals, regimen_changes, regimen_on
from .extract import DROP_REASONS, Episode, EpisodeResult, episodes_frame, extract_episodes

__all__ = [
    "DROP_REASONS",
    "Change",
    "Episode",
    "EpisodeResult",
    "Interval",
    "episodes_frame",
    "extract_episodes",
    "medication_intervals",
    "regimen_changes",
    "regimen_on",
]
