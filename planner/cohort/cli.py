"""``planner cohort run | evaluate | report``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..cli_options import ReportFormat, ReportFormatOption

__all__ = ["register"]

SPLITS = 3  # the default of planner.cohort.ope.SPLITS (not imported here: the CLI starts without pandas)
SplitsOption = Annotated[
    int, typer.Option("--splits", min=1, max=50, help="Cross-fitting fold assignments (the value is their median).")
]


def run_cmd(
    source: Annotated[Path, typer.Argument(help="A folder of FHIR bundles, NDJSON files or a Bulk Data export.")],
    area: Annotated[str, typer.Option("--area", help="Therapeutic area id.")],
    out: Annotated[Path, typer.Option("--out", help="Results folder (a killed run resumes into the same one).")],
    model: Annotated[Optional[Path], typer.Option("--model", help="Fitted model folder (default: priors).")] = None,
    rules: Annotated[Optional[Path], typer.Option("--rules", help="Rules folder (default: packaged rules).")] = None,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Local worker processes.")] = 1,
    scheduler: Annotated[Optional[str], typer.Option("--scheduler", help="Dask scheduler address (tcp://...).")] = None,
    at: Annotated[str, typer.Option("--at", help="Decision points: all | episodes | current.")] = "all",
    top: Annotated[int, typer.Option("--top", min=1, max=50, help="Plans kept per decision point.")] = 5,
    seed: Annotated[int, typer.Option("--seed", help="Random seed (same input and seed: same output).")] = 0,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Units (patients/files) per task.")] = 16,
    no_progress: Annotated[bool, typer.Option("--no-progress", help="No progress bar.")] = False,
    warm: Annotated[
        bool,
        typer.Option(
            "--warm/--no-warm",
            help="Each process warms its planner with simulated patients as it loads it (a few seconds; the "
            "results are the same either way).",
        ),
    ] = True,
) -> None:
    """Plan every patient and decision point; write Parquet and DuckDB results."""
    from .run import run_cohort

    s = run_cohort(
        source,
        area=area,
        out=out,
        model=None if model is None else str(model),
        rules=None if rules is None else str(rules),
        at=at,
        top=top,
        seed=seed,
        workers=workers,
        scheduler=scheduler,
        batch_size=batch_size,
        progress=not no_progress,
        warm=warm,
    )
    typer.echo(
        f"{s.units} units ({s.done_before} done before, {s.planned_now} now, "
        f"{s.units_per_second:.1f}/s); {s.rows} rows, {s.errors} error rows; results in {s.out}"
    )
    for note, count in sorted(s.notes.items()):
        typer.echo(f"  {note.removeprefix('note:')}: {count}")


def evaluate_cmd(
    results: Annotated[Path, typer.Argument(help="A results folder written by `planner cohort run`.")],
    truth: Annotated[
        Optional[Path],
        typer.Option(
            "--truth", help="A `planner simulate` folder (default: beside the run's input, when there is one)."
        ),
    ] = None,
    fmt: ReportFormatOption = ReportFormat.table,
    out: Annotated[Optional[Path], typer.Option("--out", help="Also write the JSON to this file.")] = None,
    n_boot: Annotated[int, typer.Option("--bootstrap", min=50, help="Bootstrap replicates.")] = 1000,
    level: Annotated[float, typer.Option("--level", min=0.5, max=0.99, help="Interval level.")] = 0.9,
    seed: Annotated[int, typer.Option("--seed", help="Seed of folds and bootstrap.")] = 0,
    splits: SplitsOption = SPLITS,
) -> None:
    """Agreement, off-policy value (IPW, SNIPW, DR), calibration, safety, by subgroup."""
    import json

    from .evaluate import evaluate
    from .tables import print_evaluation

    ev = evaluate(results, truth=truth, n_boot=n_boot, level=level, seed=seed, splits=splits)
    text = json.dumps(ev, indent=1, sort_keys=True)
    if out is not None:
        out.write_text(text, encoding="utf-8")
    if fmt is ReportFormat.json:
        typer.echo(text)
    else:
        print_evaluation(ev)


def report_cmd(
    results: Annotated[Path, typer.Argument(help="A results folder written by `planner cohort run`.")],
    html_out: Annotated[Path, typer.Option("--html", help="Write the self-contained HTML report here.")],
    truth: Annotated[
        Optional[Path], typer.Option("--truth", help="A `planner simulate` folder (default: found).")
    ] = None,
    n_boot: Annotated[int, typer.Option("--bootstrap", min=50, help="Bootstrap replicates.")] = 1000,
    seed: Annotated[int, typer.Option("--seed", help="Seed of folds and bootstrap.")] = 0,
    splits: SplitsOption = SPLITS,
) -> None:
    """One self-contained HTML report: policy values, calibration, PIT, safety, subgroups."""
    from .report import write_report

    path = write_report(results, html_out, truth=truth, n_boot=n_boot, seed=seed, splits=splits)
    typer.echo(f"wrote {path}")


def register(app: typer.Typer) -> None:
    """Add the ``cohort`` command group to the planner CLI."""
    cohort = typer.Typer(help="Plan a whole cohort and evaluate the policy (locally or on Dask).", no_args_is_help=True)
    cohort.command("run")(run_cmd)
    cohort.command("evaluate")(evaluate_cmd)
    cohort.command("report")(report_cmd)
    app.add_typer(cohort, name="cohort")
