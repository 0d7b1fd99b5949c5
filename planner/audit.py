"""An audit trail of recommendations, CDS cards and card feedback in a local SQLite file.

One row per recommendation: when, a digest of the input (not the input), planner/rules/model versions, seed,
area, and the plans and exclusions as JSON; one row per card the CDS Hooks service issued (its uuid, service,
indicator, rule id, suggestion uuids); one row per feedback item (card uuid, outcome, accepted suggestion uuids,
override reason code).

De-identified unless the configuration says otherwise (``include_identifiers=True``):

* no patient identifier (the patient column is NULL; plans and findings carry none);
* no full date tied to the patient: the recorded time, the as-of date and feedback times are kept as the year;
* no value from which a patient's own result can be recomputed: a plan keeps its rank, regimen, doses and the
  ids/actions of the rules that fired, but not its predicted mean, change from baseline, interval, quantiles,
  P(target), P(best) or utility (mean minus change gave the baseline back), nor finding messages or phenotype
  lookups (a drug-lab message quotes the lab value);
* no free text from clinicians (a feedback ``userComment`` is dropped).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import orjson

from .errors import ConfigError
from .recommendation import Recommendation

__all__ = ["AuditConfig", "AuditLog", "input_digest", "deidentify_plan", "deidentify_finding"]

_SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS recommendation_audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    recorded_at TEXT NOT NULL,
    input_sha256 TEXT NOT NULL,
    patient_id TEXT,
    area TEXT NOT NULL,
    planner_version TEXT NOT NULL,
    rules_version TEXT NOT NULL,
    model TEXT NOT NULL,
    seed INTEGER NOT NULL,
    as_of TEXT NOT NULL,
    plans_json TEXT NOT NULL,
    excluded_json TEXT NOT NULL
)""",
    """
CREATE TABLE IF NOT EXISTS card_audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    recorded_at TEXT NOT NULL,
    service TEXT NOT NULL,
    hook TEXT NOT NULL,
    card_uuid TEXT NOT NULL,
    indicator TEXT NOT NULL,
    rule_id TEXT,
    suggestions_json TEXT NOT NULL
)""",
    "CREATE INDEX IF NOT EXISTS card_audit_uuid ON card_audit (card_uuid)",
    """
CREATE TABLE IF NOT EXISTS feedback_audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    recorded_at TEXT NOT NULL,
    service TEXT NOT NULL,
    card_uuid TEXT NOT NULL,
    known_card INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    accepted_json TEXT NOT NULL,
    override_system TEXT,
    override_code TEXT,
    outcome_time TEXT,
    user_comment TEXT
)""",
)

# Finding fields kept by default: what fired and what it did, no message text and no lookup values.
_FINDING_KEEP = (
    "rule_id",
    "rule_version",
    "kind",
    "action",
    "strength",
    "drugs",
    "genes",
    "target_drug",
    "dose_factor",
    "max_dose_mg_day",
    "adjusted_dose_mg_day",
)


def input_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class AuditConfig:
    path: Path
    include_identifiers: bool = False


def deidentify_finding(f: dict[str, Any]) -> dict[str, Any]:
    return {k: f[k] for k in _FINDING_KEEP if k in f}


def deidentify_plan(plan: dict[str, Any]) -> dict[str, Any]:
    """A plan's JSON without predictions or probabilities (they give the patient's baseline back)."""
    return {
        "rank": plan.get("rank"),
        "key": plan.get("key"),
        "regimen": plan.get("regimen", []),
        "stopped": plan.get("stopped", []),
        "findings": [deidentify_finding(f) for f in plan.get("findings", [])],
    }


def _year(value: dt.date | dt.datetime | str) -> str:
    if isinstance(value, (dt.date, dt.datetime)):
        return f"{value.year:04d}"
    text = str(value)
    return text[:4] if len(text) >= 4 and text[:4].isdigit() else "unknown"


def _check_schema(con: sqlite3.Connection, path: str) -> None:
    """A database whose audit tables have other columns (another program's, an older layout) is refused before any
    work is done, not when the first row fails to write."""
    import re

    for stmt in _SCHEMA:
        m = re.search(r"CREATE TABLE IF NOT EXISTS (\w+) \((.*)\)", stmt, re.S)
        if not m:
            continue
        want = {line.split()[0] for line in m.group(2).split(",\n") if line.strip()}
        have = {row[1] for row in con.execute(f"PRAGMA table_info({m.group(1)})")}
        if not want <= have:
            raise ConfigError(
                "audit database has another schema",
                field="audit",
                value=path,
                expected=f"table {m.group(1)} with columns {', '.join(sorted(want - have))} "
                "(use a new file, or the database planner made)",
            )


class AuditLog:
    """Append-only audit log. Thread-safe (one connection per write) and shared safely by processes (SQLite
    locking, WAL journal, writers wait up to 5 s for each other)."""

    def __init__(self, config: AuditConfig) -> None:
        self.config = config
        self._lock = threading.Lock()
        try:
            Path(config.path).parent.mkdir(parents=True, exist_ok=True)
            with sqlite3.connect(config.path) as con:
                for stmt in _SCHEMA:
                    con.execute(stmt)
                _check_schema(con, str(config.path))
                # WAL: the worker processes of `planner serve --workers N` write to one store at once
                con.execute("PRAGMA journal_mode=WAL")
        except (sqlite3.Error, OSError) as exc:
            raise ConfigError(f"cannot open audit database ({exc})", field="audit", value=str(config.path)) from None

    def _when(self, now: dt.datetime | None) -> str:
        now = now or dt.datetime.now(dt.timezone.utc)
        return now.isoformat(timespec="seconds") if self.config.include_identifiers else _year(now)

    def write(self, rec: Recommendation, *, input_sha256: str, now: dt.datetime | None = None) -> int:
        full = self.config.include_identifiers
        plans = [p.model_dump(mode="json", exclude={"rationale"}) for p in rec.plans]
        excluded = [e.model_dump(mode="json") for e in rec.excluded]
        if not full:
            plans = [deidentify_plan(p) for p in plans]
            excluded = [
                {"key": e["key"], "regimen": e["regimen"], "findings": [deidentify_finding(f) for f in e["findings"]]}
                for e in excluded
            ]
        p = rec.provenance
        row = (
            self._when(now),
            input_sha256,
            rec.patient_id if full else None,
            rec.area,
            p.planner_version,
            p.rules_version,
            p.model,
            p.seed,
            p.as_of.isoformat() if full else _year(p.as_of),
            orjson.dumps(plans).decode(),
            orjson.dumps(excluded).decode(),
        )
        with self._lock, sqlite3.connect(self.config.path) as con:
            cur = con.execute(
                "INSERT INTO recommendation_audit (recorded_at, input_sha256, patient_id, area, planner_version,"
                " rules_version, model, seed, as_of, plans_json, excluded_json) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                row,
            )
            return int(cur.lastrowid or 0)

    def write_cards(
        self, *, service: str, hook: str, issued: Iterable[dict[str, Any]], now: dt.datetime | None = None
    ) -> int:
        """One row per issued card (uuid, indicator, rule id, suggestion uuids): no card text."""
        when = self._when(now)
        rows = [
            (
                when,
                service,
                hook,
                str(c["uuid"]),
                str(c["indicator"]),
                c.get("rule_id"),
                orjson.dumps(list(c.get("suggestions") or [])).decode(),
            )
            for c in issued
        ]
        if not rows:
            return 0
        with self._lock, sqlite3.connect(self.config.path) as con:
            con.executemany(
                "INSERT INTO card_audit (recorded_at, service, hook, card_uuid, indicator, rule_id,"
                " suggestions_json) VALUES (?,?,?,?,?,?,?)",
                rows,
            )
        return len(rows)

    def write_feedback(self, *, service: str, items: Iterable[dict[str, Any]], now: dt.datetime | None = None) -> int:
        """CDS Hooks feedback items; ``known_card`` says whether this store issued the card."""
        full = self.config.include_identifiers
        when = self._when(now)
        with self._lock, sqlite3.connect(self.config.path) as con:
            n = 0
            for it in items:
                card = str(it.get("card", ""))
                known = con.execute("SELECT 1 FROM card_audit WHERE card_uuid = ? LIMIT 1", (card,)).fetchone()
                reason = (it.get("overrideReason") or {}).get("reason") or {}
                ts = it.get("outcomeTimestamp")
                accepted = [str(s.get("id")) for s in it.get("acceptedSuggestions") or [] if isinstance(s, dict)]
                con.execute(
                    "INSERT INTO feedback_audit (recorded_at, service, card_uuid, known_card, outcome, accepted_json,"
                    " override_system, override_code, outcome_time, user_comment) VALUES (?,?,?,?,?,?,?,?,?,?)",
                    (
                        when,
                        service,
                        card,
                        1 if known else 0,
                        str(it.get("outcome", "")),
                        orjson.dumps(accepted).decode(),
                        reason.get("system"),
                        reason.get("code"),
                        None if ts is None else (str(ts) if full else _year(str(ts))),
                        (it.get("overrideReason") or {}).get("userComment") if full else None,
                    ),
                )
                n += 1
        return n

    def rows(self, table: str = "recommendation_audit") -> list[dict]:
        if table not in ("recommendation_audit", "card_audit", "feedback_audit"):
            raise ConfigError(
                "unknown audit table",
                field="table",
                value=table,
                expected="recommendation_audit, card_audit or feedback_audit",
            )
        with sqlite3.connect(self.config.path) as con:
            con.row_factory = sqlite3.Row
            return [dict(r) for r in con.execute(f"SELECT * FROM {table} ORDER BY id")]  # noqa: S608 - checked name
