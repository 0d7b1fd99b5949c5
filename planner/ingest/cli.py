"""``planner inspect FILE``: the normalized patient record, as a rich table or as JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ..cli_options import ReportFormat, ReportFormatOption
from ..record import PatientRecord

__all__ = ["register", "render_table"]


def _row(table: Any, *cells: object) -> None:
    """EHR text is shown literally: ``[/bold]`` in a display is text, never rich markup."""
    from rich.text import Text

    table.add_row(*(Text(str(c)) for c in cells))


def _labs_table(record: PatientRecord) -> Any:
    """The latest value of each quantity, its unit as a clinician reads it (mm[Hg] -> mmHg; JSON keeps UCUM)."""
    from rich.table import Table

    from ..units import unit_display

    labs = Table(title="Latest measurements")
    for col in ("quantity", "value", "unit", "date", "LOINC", "n"):
        labs.add_column(col)
    for name in sorted(record.observations):
        last = record.latest(name)
        if last is None:
            continue
        shown = unit_display(last.unit) if last.unit else "-"
        _row(labs, name, f"{last.value:.4g}", shown, str(last.date), last.loinc, str(len(record.series(name))))
    return labs


def render_table(record: PatientRecord, *, width: int | None = None) -> str:
    """The record as text tables: patient, conditions, current medications, latest labs, PGx, warnings."""
    import io

    from rich.console import Console
    from rich.table import Table

    # printed into a buffer only (the caller echoes the text once)
    console = Console(file=io.StringIO(), record=True, width=width or 110, force_terminal=False, color_system=None)
    age = record.age()
    head = Table(title="Patient", show_header=False)
    _row(head, "id", record.patient_id)
    _row(head, "sex", record.sex or "-")
    _row(head, "birth date", f"{record.birth_date} (age {age:.0f})" if record.birth_date and age is not None else "-")
    if record.is_deceased:
        _row(head, "deceased", str(record.deceased or "yes (no date)"))
    _row(head, "as of", str(record.as_of))
    console.print(head)

    conds = Table(title="Active conditions")
    for col in ("code", "system", "display", "onset"):
        conds.add_column(col)
    for c in record.active_conditions():
        _row(conds, c.code or "-", (c.system or "-").rsplit("/", 1)[-1], c.display or "-", str(c.onset or "-"))
    console.print(conds)

    meds = Table(title="Current medications")
    for col in ("ingredient", "RxCUI", "dose mg/day", "start", "end", "status", "as given"):
        meds.add_column(col)
    for m in record.active_medications():
        _row(
            meds,
            m.ingredient or "(unresolved)",
            m.rxcui or "-",
            "-" if m.dose_mg_day is None else f"{m.dose_mg_day:g}",
            str(m.start or "-"),
            str(m.end or "-"),
            m.status or "-",
            (m.source_display or "-")[:40],
        )
    console.print(meds)

    console.print(_labs_table(record))

    pgx = Table(title="Pharmacogenomics (genes not listed: not tested)")
    for col in ("gene", "diplotype", "phenotype", "activity", "allele status", "source"):
        pgx.add_column(col)
    for p in record.pgx:
        _row(
            pgx,
            p.gene,
            p.diplotype or "-",
            p.phenotype or "-",
            "-" if p.activity_score is None else f"{p.activity_score:g}",
            f"{p.allele} {p.allele_status}" if p.allele else "-",
            p.source,
        )
    console.print(pgx)

    if record.warnings:
        warn = Table(title=f"Data-quality warnings ({len(record.warnings)})")
        for col in ("code", "resource", "message"):
            warn.add_column(col)
        for w in record.warnings:
            _row(warn, w.code, w.resource or "-", w.message)
        console.print(warn)
    return console.export_text()


def register(app: typer.Typer) -> None:
    @app.command("inspect")
    def inspect(
        file: Annotated[Path, typer.Argument(help="FHIR R4 Bundle, NDJSON, resource file or folder.")],
        as_of: Annotated[Optional[str], typer.Option("--as-of", help="Date the record describes (YYYY-MM-DD).")] = None,
        fmt: ReportFormatOption = ReportFormat.table,
        strict: Annotated[
            bool, typer.Option("--strict", help="Also validate whole resources (fhir.resources R4B).")
        ] = False,
        pharmcat: Annotated[
            list[Path], typer.Option("--pharmcat", help="PharmCAT phenotype JSON / outside-call TSV.")
        ] = [],  # noqa: B006 - Typer gives each call its own list
        patient: Annotated[
            Optional[str], typer.Option("--patient", help="Patient id (default: every patient).")
        ] = None,
    ) -> None:
        """Show the normalized patient record(s) planner reads from FILE."""
        from . import read_records, select_patients

        records = select_patients(
            read_records(file, as_of=as_of, strict=strict, pharmcat=pharmcat), patient, file=str(file)
        )
        if fmt is ReportFormat.json:
            if len(records) == 1:
                typer.echo(records[0].model_dump_json(indent=2))
            else:
                typer.echo("[" + ",\n".join(r.model_dump_json(indent=2) for r in records) + "]")
            return
        for r in records:
            typer.echo(render_table(r))
