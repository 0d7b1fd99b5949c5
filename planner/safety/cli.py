"""``planner check BUNDLE`` (safety report on current medications) and ``planner rules list|show|validate``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..cli_options import ReportFormat, ReportFormatOption
from ..record import PatientRecord
from ..status import GeneStatus

__all__ = ["register", "report", "render_report"]


def report(record: PatientRecord, *, rules: Path | None = None) -> dict:
    """The safety report of a record as a JSON-safe dict: genes, findings on current drugs, data gaps, the
    record's data-quality warnings (as ``Recommendation.record_warnings`` carries them), rules version."""
    from ..ingest.quality import record_gaps, record_warnings
    from . import RuleSet

    rs = RuleSet.load(rules)
    ctx = rs.prepare(record)
    findings = rs.check(ctx)
    genes = rs.phenotypes(ctx)
    current = sorted(ctx.current)
    gaps = sorted(
        {
            g
            for d in current
            for g in rs.genes_for(d)
            if genes.get(g) and genes[g].status != GeneStatus.TESTED and not genes[g].phenoconverted_by
        }
    )
    return {
        "patient_id": record.patient_id,
        "as_of": record.as_of.isoformat(),
        "current_medications": current,
        "genes": {
            g: r.model_dump(mode="json", exclude_defaults=True)
            for g, r in genes.items()
            if r.status != GeneStatus.NOT_TESTED or r.phenoconverted_by
        },
        "untested_genes_for_current_drugs": gaps,
        "findings": [f.model_dump(mode="json", exclude_none=True) for f in findings],
        "data_gaps": [g.model_dump(mode="json", exclude_none=True) for g in record_gaps(record)],
        "record_warnings": [w.model_dump(mode="json") for w in record_warnings(record)],
        "provenance": {"rules_version": rs.rules_version},
    }


def render_report(data: dict, *, width: int = 120) -> str:
    import io

    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    # printed into a buffer only (the caller echoes the text once); EHR text is shown literally, never as markup
    console = Console(file=io.StringIO(), record=True, width=width, force_terminal=False, color_system=None)
    console.print(
        Text(
            f"Safety report for {data['patient_id']} as of {data['as_of']} "
            f"(rules {data['provenance']['rules_version']})"
        )
    )
    genes = Table(title="Pharmacogenomics (genes not listed: not tested)")
    for col in ("gene", "status", "diplotype", "phenotype", "activity score", "phenoconverted by"):
        genes.add_column(col)
    for g, r in data["genes"].items():
        genes.add_row(
            *(
                Text(str(x))
                for x in (
                    g,
                    r.get("status", ""),
                    r.get("diplotype") or "-",
                    r.get("phenotype") or "-",
                    r.get("activity_score") or "-",
                    ", ".join(r.get("phenoconverted_by", [])) or "-",
                )
            )
        )
    console.print(genes)
    meds = ", ".join(data["current_medications"]) or "none"
    console.print(Text(f"Current medications: {meds}"))
    table = Table(title="Findings")
    for col in ("action", "kind", "drugs", "message", "strength", "rule"):
        table.add_column(col)
    for f in data["findings"]:
        table.add_row(
            *(
                Text(str(x))
                for x in (
                    f["action"],
                    f["kind"],
                    ", ".join(f.get("drugs", [])),
                    f["message"],
                    f.get("strength") or "-",
                    f["rule_id"],
                )
            )
        )
    console.print(table)
    if not data["findings"]:
        console.print("No findings.")
    for g in data.get("data_gaps", []):
        console.print(Text(f"Data gap: {g['message']}"))
    if data.get("record_warnings"):
        from ..recommendation import RecordWarning
        from ..warnings_table import warnings_table

        console.print(warnings_table([RecordWarning(**w) for w in data["record_warnings"]]))
    return console.export_text()


def register(app: typer.Typer) -> None:
    rules_app = typer.Typer(help="List, show and validate safety rules.", no_args_is_help=True)

    @app.command("check")
    def check(
        bundle: Annotated[Path, typer.Argument(help="FHIR R4 bundle (JSON) of one patient.")],
        format: ReportFormatOption = ReportFormat.table,
        rules: Annotated[Optional[Path], typer.Option("--rules", help="rules folder (default: packaged)")] = None,
        patient: Annotated[
            Optional[str],
            typer.Option("--patient", help="Patient id, for inputs of several patients (default: every patient)."),
        ] = None,
    ) -> None:
        """Safety report on the patient's current medications (gene-drug, interactions, allergy, conditions)."""
        from ..ingest import read_records, select_patients

        reports = [report(r, rules=rules) for r in select_patients(read_records(bundle), patient, file=str(bundle))]
        if format is ReportFormat.json:
            typer.echo(json.dumps(reports[0] if len(reports) == 1 else reports, indent=2, ensure_ascii=False))
        else:
            for data in reports:
                typer.echo(render_report(data))

    @rules_app.command("list")
    def list_rules(
        kind: Annotated[Optional[str], typer.Option("--kind", help="gene-drug, drug-drug, drug-condition, ...")] = None,
        rules: Annotated[Optional[Path], typer.Option("--rules")] = None,
    ) -> None:
        """Every rule: id, kind, version, source."""
        from . import RuleSet

        rs = RuleSet.load(rules)
        for rid, k, version, source in rs.all_rules():
            if kind is None or k == kind:
                typer.echo(f"{rid}\t{k}\t{version}\t{source}")

    @rules_app.command("show")
    def show(rule_id: str, rules: Annotated[Optional[Path], typer.Option("--rules")] = None) -> None:
        """One rule as JSON."""
        from . import RuleSet

        typer.echo(json.dumps(RuleSet.load(rules).rule(rule_id), indent=2, ensure_ascii=False, default=str))

    @rules_app.command("validate")
    def validate(
        path: Annotated[Optional[Path], typer.Argument(help="rules folder (default: packaged)")] = None,
        strict: Annotated[bool, typer.Option("--strict", help="exit 1 while any source is unchecked")] = False,
    ) -> None:
        """Check the manifest and validate every rule file (exit 2 naming the first problem); list rules
        without a checkable source and data lines marked (verify)."""
        from . import RuleSet
        from .sources import source_report

        rs = RuleSet.load(path)
        n = len(rs.all_rules())
        typer.echo(f"ok: {n} rules, rules_version {rs.rules_version}")
        issues = source_report(rs)
        for issue in issues:
            typer.echo(f"{issue.kind}: {issue.where}: {issue.text}")
        typer.echo(f"sources: {len(issues)} unchecked" if issues else "sources: every rule has a checkable source")
        if strict and issues:
            raise typer.Exit(1)

    app.add_typer(rules_app, name="rules")
