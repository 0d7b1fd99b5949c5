"""``planner recommend``: ranked, screened plans for one patient (table, JSON, FHIR or HTML), by the Planner."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

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
                "lowest-cost, avoid-sexual-side-effects (rules/ranking.yaml preferences).",
            ),
        ] = None,
    ) -> None:
        """Recommend ranked treatment plans for a patient.

        An input of several patients (NDJSON, a Bulk export, a bundle of several Patients): every patient is
        planned and printed; a patient that fails is listed on standard error by position (``patient 3 of
        5``, never its identifiers) with the error's class and message, and the exit code is 3."""
        from ..errors import ConfigError
        from ..ingest import read_records, select_patients
        from . import Planner

        # bad input fails fast, before models load; several patients: each one (or the one --patient names)
        records = select_patients(read_records(bundle, as_of=as_of), patient, file=str(bundle))
        single = len(records) == 1 and patient is None
        if fmt is RecommendFormat.html and len(records) > 1:
            raise ConfigError(
                f"an HTML page shows one patient and the input holds {len(records)}",
                file=str(bundle),
                field="--patient",
                expected="--patient ID with --format html",
            )
        if single:
            pairs: list[tuple[int, Any]] = [(1, Planner.read(bundle, as_of=as_of))]
            failed: list[tuple[int, BaseException, str]] = []
        else:
            pairs, failed = _read_each(records)
        planner = Planner.load(model=model, rules=rules, audit=audit)
        opts = {"top": top, "seed": seed, "preferences": prefer}
        recs, more = _recommend_each(planner, pairs, area, opts, total=len(records), strict=len(records) == 1)
        failed += more
        _print(recs, pairs[0][1][0] if pairs else None, fmt, planner, total=len(records))
        if failed:
            _report_failures(failed, len(records), planned=len({pos for pos, _ in recs}))
            raise typer.Exit(code=PARTIAL_EXIT)


# A multi-patient input: one failing patient never sinks the others (the exit code says some failed).
PARTIAL_EXIT = 3


def _scrub(text: str, patient_id: str) -> str:
    """An error message with the patient's id replaced (it may quote a reference such as Patient/<id>)."""
    return text.replace(patient_id, "<patient>") if patient_id else text


def _read_each(records: list[Any]) -> tuple[list[tuple[int, Any]], list[tuple[int, BaseException, str]]]:
    from . import Planner

    pairs: list[tuple[int, Any]] = []
    failed: list[tuple[int, BaseException, str]] = []
    for pos, r in enumerate(records, start=1):
        try:
            pairs.append((pos, Planner.read(r)))
        except Exception as exc:  # noqa: BLE001 - reported by position, the other patients go on
            failed.append((pos, exc, r.patient_id or ""))
    return pairs, failed


def _recommend_each(
    planner: Any, pairs: list[tuple[int, Any]], area: str | None, opts: dict[str, Any], *, total: int, strict: bool
) -> tuple[list[tuple[int, Any]], list[tuple[int, BaseException, str]]]:
    """Recommendations (position, Recommendation) of every patient; with several patients a failing one is
    kept as (position, error, id) and the others go on; with one (``strict``) an error is raised as is."""
    from ..errors import ConfigError

    recs: list[tuple[int, Any]] = []
    failed: list[tuple[int, BaseException, str]] = []
    for pos, (record, digest) in pairs:
        try:
            if area:
                recs.append((pos, planner.recommend(record, area=area, input_digest=digest, **opts)))
                continue
            found = planner.recommend_all(record, input_digest=digest, **opts)
            if not found and strict:
                raise ConfigError(
                    "the patient has no condition of a known therapeutic area",
                    field="--area",
                    expected="one of the areas: pass --area " + "|".join(sorted(planner.models)),
                )
            recs += [(pos, r) for r in found]
            if not found:
                typer.echo(f"patient {pos} of {total}: no condition of a known therapeutic area; no plans", err=True)
        except Exception as exc:
            if strict:
                raise
            failed.append((pos, exc, record.patient_id or ""))
    return recs, failed


def _print(recs: list[tuple[int, Any]], record: Any, fmt: RecommendFormat, planner: Any, *, total: int = 1) -> None:
    import orjson

    from ..render import render

    only = [r for _, r in recs]
    if fmt is RecommendFormat.html:  # one self-contained page: the record summary and every area's plans
        from ..render.report import build_report, render_page

        typer.echo(render_page(build_report(record, only, planner.ruleset)), nl=False)
    elif fmt is RecommendFormat.json:
        if len(only) == 1:
            typer.echo(only[0].to_json())
        else:
            docs = [orjson.loads(r.to_json(indent=None)) for r in only]
            typer.echo(orjson.dumps(docs, option=orjson.OPT_INDENT_2).decode())
    else:
        for pos, r in recs:
            if total > 1:  # several patients: each block says whose plans they are (stdout, as JSON does)
                who = f"Patient {r.patient_id}" if r.patient_id else "Patient"
                typer.echo(f"{who} ({pos} of {total} in the input)")
            typer.echo(render(r, fmt.value))


def _report_failures(failed: list[tuple[int, BaseException, str]], total: int, *, planned: int) -> None:
    """On standard error: each failed patient by position, error class and message (its id scrubbed)."""
    from ..errors import PlannerError

    for pos, exc, pid in sorted(failed, key=lambda f: f[0]):
        msg = str(exc) if isinstance(exc, PlannerError) else f"{exc} (an internal error; PLANNER_DEBUG=1 for more)"
        typer.echo(f"patient {pos} of {total}: {type(exc).__name__}: {_scrub(msg, pid)[:300]}", err=True)
    if failed:
        typer.echo(
            f"{len(failed)} of {total} patients failed (listed above by position in the input); "
            f"{planned} planned and printed; exit code {PARTIAL_EXIT}",
            err=True,
        )
