"""``planner simulate`` (a cohort as FHIR bundles + truth) and ``planner episodes`` (episodes of a folder)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..errors import ConfigError

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add the ``simulate`` and ``episodes`` commands to the planner CLI."""

    @app.command("simulate")
    def simulate(
        area: Annotated[
            str, typer.Option("--area", help="Therapeutic area id (t2d, lipids, hypertension, depression).")
        ],
        out: Annotated[Path, typer.Option("--out", help="Output folder (fhir/, truth.parquet, truth_params.yaml).")],
        n: Annotated[int, typer.Option("--n", help="Number of patients.")] = 1000,
        seed: Annotated[int, typer.Option("--seed", help="Seed: the same seed gives byte-identical output.")] = 0,
        overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace bundles already in the folder.")] = False,
    ) -> None:
        """Simulate a cohort with a known true world: FHIR R4 bundles plus the truth."""
        from ..areas import load_area
        from ..simulate import simulate_cohort

        if n < 1:
            raise ConfigError("cohort size must be positive", field="--n", value=n, expected="an integer >= 1")
        cohort = simulate_cohort(load_area(area), n, seed=seed)
        info = cohort.write_fhir(str(out), overwrite=overwrite)
        typer.echo(f"{info['bundles']} bundles ({info['resources']} resources) in {info['fhir_dir']}")
        typer.echo(
            f"{info['decisions']} decision points, {info['episodes']} meet the episode rules; truth for "
            f"{info['truth_regimens']} regimens in {info['truth']}"
        )

    @app.command("episodes")
    def episodes(
        source: Annotated[Path, typer.Argument(help="A FHIR file or folder (bundles, NDJSON).")],
        area: Annotated[str, typer.Option("--area", help="Therapeutic area id.")],
        out: Annotated[
            Path | None, typer.Option("--out", help="Write episodes as Parquet (one row per episode).")
        ] = None,
    ) -> None:
        """Extract episodes (DESIGN.md rules) and report how many candidates were dropped and why."""
        from ..areas import load_area
        from ..ingest import read_records
        from .extract import DROP_REASONS, episodes_frame

        a = load_area(area)
        if not source.exists():
            raise ConfigError("input not found", field="SOURCE", value=str(source), expected="a FHIR file or folder")
        records = read_records(str(source))
        frame, counts = episodes_frame(records, a)
        typer.echo(
            f"{len(records)} patients, {counts['candidates']} candidate episodes (regimen changes), "
            f"{counts['episodes']} episodes"
        )
        for reason in DROP_REASONS:
            typer.echo(f"  dropped {reason}: {counts.get(reason, 0)}")
        for note, count in sorted(frame.attrs.get("notes", {}).items()):
            typer.echo(f"  note {note}: {count}")
        if out is not None:
            if out.parent and not out.parent.exists():
                raise ConfigError("output folder does not exist", field="--out", value=str(out.parent))
            frame.to_parquet(out, index=False)
            typer.echo(f"wrote {len(frame)} rows to {out}")
