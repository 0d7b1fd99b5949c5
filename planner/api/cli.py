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
        model: Annotated[
            Path | None, typer.Option("--model", help="Fitted model folder (default: literature priors).")
        ] = None,
        rules: RulesOption = None,
        as_of: AsOfOption = None,
        top: Annotated[int, typer.Option("--top", min=1, max=50, help="Number of plans to show.")] = 5,
        seed: SeedOption = 0,
        fmt: RecommendFormatOption = RecommendFormat.table,
        audit: Annotated[Path | None, typer.Option("--audit", help="Append an audit row to this SQLite file.")] = None,
        patient: Annotated[
            str | None,
            typer.Option("--patient", help="Patient id, for inputs of several patients (default: every patient)."),
        ] = None,
        prefer: Annotated[
            str | None,
            typer.Option(
                "--prefer",
                help="Patient preferences, comma-separated: avoid-injections, avoid-weight-gain, fewest-pills, "
                "lowest-cost.",
            ),
        ] = None,
    ) -> None:
        """Recommend ranked treatment plans for a patient."""
        import orjson

        from ..errors import ConfigError
        from ..ingest import read_records, select_patients
        from ..render import render
        from . import Planner

        # bad input fails fast, before models load; several patients: each one (or the one --patient names)
        records = select_patients(read_records(bundle, as_of=as_of), patient, file=str(bundle))
        pairs = (
            [Planner.read(bundle, as_of=as_of)]
            if len(records) == 1 and patient is None
            else [Planner.read(r) for r in records]
        )
        if fmt is RecommendFormat.html and len(pairs) > 1:
            raise ConfigError(
                f"an HTML page shows one patient and the input holds {len(pairs)}",
                file=str(bundle),
                field="--patient",
                expected="--patient ID with --format html",
            )
        planner = Planner.load(model=model, rules=rules, audit=audit)
        recs = []
        for record, digest in pairs:
            if area:
                recs.append(
                    planner.recommend(record, area=area, top=top, seed=seed, input_digest=digest, preferences=prefer)
                )
            else:
                found = planner.recommend_all(record, top=top, seed=seed, input_digest=digest, preferences=prefer)
                if not found and len(pairs) == 1:
                    raise ConfigError(
                        "the patient has no condition of a known therapeutic area",
                        field="--area",
                        expected="one of the areas: pass --area " + "|".join(sorted(planner.models)),
                    )
                recs += found
        record = pairs[0][0]
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
