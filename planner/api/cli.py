"""``planner recommend``: ranked, screened plans for one patient (table, JSON, FHIR or HTML), by the Planner."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    @app.command("recommend")
    def recommend(
        bundle: Path = typer.Argument(..., help="FHIR R4 Bundle / NDJSON / resource file of one patient."),
        area: Optional[str] = typer.Option(None, "--area", help="Therapeutic area (default: from conditions)."),
        model: Optional[Path] = typer.Option(None, "--model", help="Fitted model folder (default: literature priors)."),
        rules: Optional[Path] = typer.Option(None, "--rules", help="Rules folder (default: packaged rules)."),
        as_of: Optional[str] = typer.Option(None, "--as-of", help="Date to recommend for (YYYY-MM-DD)."),
        top: int = typer.Option(5, "--top", min=1, max=50, help="Number of plans to show."),
        seed: int = typer.Option(0, "--seed", help="Random seed (same input and seed: same output)."),
        fmt: str = typer.Option("table", "--format", help="table | json | fhir | html"),
        audit: Optional[Path] = typer.Option(None, "--audit", help="Append an audit row to this SQLite file."),
        prefer: Optional[str] = typer.Option(
            None, "--prefer",
            help="Patient preferences, comma-separated: avoid-injections, avoid-weight-gain, fewest-pills, lowest-cost."),
    ) -> None:
        """Recommend ranked treatment plans for a patient."""
        import orjson

        from . import Planner
        from ..render import render

        if fmt not in {"table", "json", "fhir", "html"}:
            from ..errors import ConfigError

            raise ConfigError("unknown output format", field="--format", value=fmt, expected="table, json, fhir or html")
        record, digest = Planner.read(bundle, as_of=as_of)  # bad input fails fast, before models load
        planner = Planner.load(model=model, rules=rules, audit=audit)
        if area:
            recs = [planner.recommend(record, area=area, top=top, seed=seed, input_digest=digest, preferences=prefer)]
        else:
            recs = planner.recommend_all(record, top=top, seed=seed, input_digest=digest, preferences=prefer)
            if not recs:
                from ..errors import ConfigError

                raise ConfigError("the patient has no condition of a known therapeutic area", field="--area",
                                  expected="one of the areas: pass --area " + "|".join(sorted(planner.models)))
        if fmt == "html":  # one self-contained page: the record summary and every area's plans
            from ..render.report import build_report, render_page

            typer.echo(render_page(build_report(record, recs, planner.ruleset)), nl=False)
        elif fmt == "json":
            if len(recs) == 1:
                typer.echo(recs[0].to_json())
            else:
                docs = [orjson.loads(r.to_json(indent=None)) for r in recs]
                typer.echo(orjson.dumps(docs, option=orjson.OPT_INDENT_2).decode())
        else:
            for r in recs:
                typer.echo(render(r, fmt))
