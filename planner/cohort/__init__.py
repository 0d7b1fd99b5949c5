"""Cohort evaluation: plan every patient of a cohort, then ask how the policy would have done.

Public API::

    run_cohort(source, *, area, out, model=None, workers=1, scheduler=None, at="all", seed=0) -> RunSummary
    read_results(out) -> pandas.DataFrame
    evaluate(out, *, truth=None, seed=0) -> dict            # agreement, off-policy value, calibration, safety
    write_report(out, html_path, evaluation=None) -> Path   # one self-contained HTML file

Command line: ``planner cohort run | evaluate | report`` (:mod:`planner.cohort.cli`).
"""

from .run import RunSummary, read_results, run_cohort

__all__ = ["RunSummary", "read_results", "run_cohort"]
