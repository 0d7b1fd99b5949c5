"""What a record's data quality means for a recommendation or a safety check: :class:`DataGap` s, and the
record's data-quality warnings as a recommendation carries them (:func:`record_warnings`).

* an active medication that could not be resolved to an ingredient: it cannot be screened, so it is a gap in
  every ``recommend`` and ``check`` output, never silently dropped;
* a deceased patient: no plans are made, and the output says so;
* the latest value of the outcome dropped as implausible: the gap says so, with its date, since the baseline then
  comes from an older value (or none);
* parts of the input that could not be read (a broken NDJSON line) or a resource that was skipped;
* a pharmacogenomic result that could not be read (its gene may then show as not tested).
"""

from __future__ import annotations

import datetime as dt

from ..recommendation import DataGap, RecordWarning
from ..record import PatientRecord

__all__ = ["record_gaps", "record_warnings", "DECEASED"]

DECEASED = "deceased"


# a lab result planner skipped (ingest/pgx.py): the gene is then not tested here, which the report must say
PGX_NOT_READ = frozenset({"pgx-unreadable", "pgx-no-gene", "pgx-gene-mismatch", "pgx-variant-not-read"})


def record_gaps(record: PatientRecord, *, on: dt.date | None = None, quantity: str | None = None) -> list[DataGap]:
    """The data gaps the record itself carries (``quantity``: the outcome a recommendation predicts)."""
    on = on or record.as_of
    gaps: list[DataGap] = []
    if record.is_deceased:
        when = f" on {record.deceased.isoformat()}" if record.deceased else ""
        gaps.append(
            DataGap(
                code=DECEASED,
                message=f"the patient is recorded as deceased{when}: no treatment plans are made",
                suggestion="check Patient.deceased[x] in the source",
            )
        )
    for m in record.active_medications(on):
        if m.ingredient is None:
            gaps.append(
                DataGap(
                    code="unresolved-medication",
                    message=f"a current medication could not be identified ({(m.source_display or 'no name')[:60]}); "
                    "it is not screened for interactions or doses",
                    suggestion="code it with an RxNorm ingredient or clinical-drug code",
                )
            )
    if quantity is not None:
        kept = record.latest(quantity, until=on)
        for w in record.warnings:
            if (
                w.code == "implausible-value"
                and w.quantity == quantity
                and w.date is not None
                and w.date <= on
                and (kept is None or w.date >= kept.date)
            ):
                used = (
                    f"the baseline is the value of {kept.date.isoformat()}" if kept else "no other value is on record"
                )
                gaps.append(
                    DataGap(
                        code="implausible-latest-outcome",
                        quantity=quantity,
                        message=f"the latest {quantity} ({w.date.isoformat()}: {w.value}) was dropped as "
                        f"implausible; {used}",
                        suggestion="check the value and its unit in the source system",
                    )
                )
    unread = [w for w in record.warnings if w.code in ("input-skipped", "resource-skipped", "resource-unattributed")]
    if unread:
        gaps.append(
            DataGap(
                code="input-not-read",
                message=f"{len(unread)} part(s) of the input could not be used (see the record's "
                "data-quality warnings); facts in them are missing here",
                suggestion="planner inspect FILE lists each one with resource, field and why",
            )
        )
    pgx_unread = [w for w in record.warnings if w.code in PGX_NOT_READ]
    if pgx_unread:
        genes = sorted({w.gene for w in pgx_unread if w.gene})
        gaps.append(
            DataGap(
                code="pgx-not-read",
                message=f"{len(pgx_unread)} pharmacogenomic result(s) could not be read and are not used; "
                + (
                    f"{', '.join(genes)} may show here as not tested"
                    if genes
                    else "a gene they report may show here as not tested"
                )
                + (" (some name no gene)" if genes and any(w.gene is None for w in pgx_unread) else ""),
                suggestion="planner inspect FILE lists each one with the resource and why",
                gene=genes[0] if len(genes) == 1 else None,
            )
        )
    return gaps


def record_warnings(record: PatientRecord) -> tuple[RecordWarning, ...]:
    """Every data-quality warning on the record, in its order, as a recommendation carries it: code, resource,
    field and message (what ``planner inspect`` prints; the warning's value and date stay on the record)."""
    return tuple(
        RecordWarning(code=w.code, message=w.message, resource=w.resource, field=w.field) for w in record.warnings
    )
