"""``planner recommend``: ranked, screened plans for one patient (table, JSON, FHIR or HTML), by the Planner."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..cli_options import AsOfOption, RecommendFormat, RecommendFormatOption, RulesOption, SeedOption


def register(app: typer.Typer) -> None:
    @app.command("recommend")
    def recommend(
        bundle: Annotated[Path, typer.Argument(help="FHIR R4 Bundle / NDJSON / resource file of one patient.")],
        area: Annotated[str | None, typer.Option("--area", help="Therapeutic area (default: from conditions).")] = None,
        model: Annotated[Path | None, typer.Option(
            "--model", help="Fitted model folder (default: literature priors).")] = None,
        rules: RulesOption = None,
        as_of: AsOfOption = None,
        top: Annotated[int, typer.Option("--top", min=1, max=50, help="Number of plans to show.")] = 5,
        seed: SeedOption = 0,
        fmt: RecommendFormatOption = RecommendFormat.table,
        audit: Annotated[Path | None, typer.Option(
            "--audit", help="Append an audit row to this SQLite file.")] = None,
    ) -> None:
        """Recommend ranked treatment plans for a patient."""
        import orjson

        from ..errors import ConfigError
        from ..render import render
        from . import Planner

        record, digest = Planner.read(bundle, as_of=as_of)  # bad input fails fast, before models load
        planner = Planner.load(model=model, rules=rules, audit=audit)
        if area:
            recs = [planner.recommend(record, area=area, top=top, seed=seed, input_digest=digest)]
        else:
            recs = planner.recommend_all(record, top=top, seed=seed, input_digest=digest)
            if not recs:
                raise ConfigError("the patient has no condition of a known therapeutic area", field="--area",
                                  expected="one of the areas: pass --area " + "|".join(sorted(planner.models)))
        if fmt is RecommendFormat.html:  # one self-contained page: the record summary and every area's plans
            from ..render.report import build_report, render_page

            typer.echo(render_page(build_report(record, recs, planner.ruleset)), nl=False)
        elif fmt is RecommendFormat.json:
            if len(recs) == 1:
                typer.echo(recs[0].to_json())
            else:
                docs = [orjson.loads(r.to_json(indent=None)) for r in recs]
                typer.echo(orjson.dumps(docs, option=orjson.OPT_INDENT_2).decode())
        else:
            for r in recs:
                typer.echo(render(r, fmt.value))
