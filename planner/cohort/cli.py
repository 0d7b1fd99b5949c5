"""``planner cohort run | evaluate | report``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add the ``cohort`` command group to the planner CLI."""
    cohort = typer.Typer(help="Plan a whole cohort and evaluate the policy (locally or on Dask).",
                         no_args_is_help=True)

    @cohort.command("run")
    def run(
        source: Path = typer.Argument(..., help="A folder of FHIR bundles, NDJSON files or a Bulk Data export."),
        area: str = typer.Option(..., "--area", help="Therapeutic area id."),
        out: Path = typer.Option(..., "--out", help="Results folder (a killed run resumes into the same one)."),
        model: Optional[Path] = typer.Option(None, "--model", help="Fitted model folder (default: priors)."),
        rules: Optional[Path] = typer.Option(None, "--rules", help="Rules folder (default: packaged rules)."),
        workers: int = typer.Option(1, "--workers", min=1, help="Local worker processes."),
        scheduler: Optional[str] = typer.Option(None, "--scheduler", help="Dask scheduler address (tcp://...)."),
        at: str = typer.Option("all", "--at", help="Decision points: all | episodes | current."),
        top: int = typer.Option(5, "--top", min=1, max=50, help="Plans kept per decision point."),
        seed: int = typer.Option(0, "--seed", help="Random seed (same input and seed: same output)."),
        batch_size: int = typer.Option(16, "--batch-size", min=1, help="Units (patients/files) per task."),
        no_progress: bool = typer.Option(False, "--no-progress", help="No progress bar."),
    ) -> None:
        """Plan every patient and decision point; write Parquet and DuckDB results."""
        from .run import run_cohort

        s = run_cohort(source, area=area, out=out, model=None if model is None else str(model),
                       rules=None if rules is None else str(rules), at=at, top=top, seed=seed, workers=workers,
                       scheduler=scheduler, batch_size=batch_size, progress=not no_progress)
        typer.echo(f"{s.units} units ({s.done_before} done before, {s.planned_now} now, "
                   f"{s.units_per_second:.1f}/s); {s.rows} rows, {s.errors} error rows; results in {s.out}")
        for note, count in sorted(s.notes.items()):
            typer.echo(f"  {note.removeprefix('note:')}: {count}")

    @cohort.command("evaluate")
    def evaluate_cmd(
        results: Path = typer.Argument(..., help="A results folder written by `planner cohort run`."),
        truth: Optional[Path] = typer.Option(None, "--truth", help="A `planner simulate` folder (default: beside "
                                             "the run's input, when there is one)."),
        fmt: str = typer.Option("table", "--format", help="table | json"),
        out: Optional[Path] = typer.Option(None, "--out", help="Also write the JSON to this file."),
        n_boot: int = typer.Option(1000, "--bootstrap", min=50, help="Bootstrap replicates."),
        level: float = typer.Option(0.9, "--level", min=0.5, max=0.99, help="Interval level."),
        seed: int = typer.Option(0, "--seed", help="Seed of folds and bootstrap."),
    ) -> None:
        """Agreement, off-policy value (IPW, SNIPW, DR), calibration, safety, by subgroup."""
        import json

        from ..errors import ConfigError
        from .evaluate import evaluate
        from .tables import print_evaluation

        if fmt not in {"table", "json"}:
            raise ConfigError("unknown output format", field="--format", value=fmt, expected="table or json")
        ev = evaluate(results, truth=truth, n_boot=n_boot, level=level, seed=seed)
        text = json.dumps(ev, indent=1, sort_keys=True)
        if out is not None:
            out.write_text(text, encoding="utf-8")
        if fmt == "json":
            typer.echo(text)
        else:
            print_evaluation(ev)

    @cohort.command("report")
    def report_cmd(
        results: Path = typer.Argument(..., help="A results folder written by `planner cohort run`."),
        html_out: Path = typer.Option(..., "--html", help="Write the self-contained HTML report here."),
        truth: Optional[Path] = typer.Option(None, "--truth", help="A `planner simulate` folder (default: found)."),
        n_boot: int = typer.Option(1000, "--bootstrap", min=50, help="Bootstrap replicates."),
        seed: int = typer.Option(0, "--seed", help="Seed of folds and bootstrap."),
    ) -> None:
        """One self-contained HTML report: policy values, calibration, PIT, safety, subgroups."""
        from .report import write_report

        path = write_report(results, html_out, truth=truth, n_boot=n_boot, seed=seed)
        typer.echo(f"wrote {path}")

    app.add_typer(cohort, name="cohort")
