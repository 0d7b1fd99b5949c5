"""An audit trail of recommendations in a local SQLite file.

One row per recommendation: when, a digest of the input (not the input), planner/rules/model versions,
seed, area, and the plans and exclusions as JSON. Patient identifiers are stored only when the
configuration says so (``include_identifiers=True``); by default the patient column is NULL and the
plans carry no identifier either.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

import orjson

from .errors import ConfigError
from .recommendation import Recommendation

__all__ = ["AuditConfig", "AuditLog", "input_digest"]

_SCHEMA = """
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
)
"""


def input_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class AuditConfig:
    path: Path
    include_identifiers: bool = False


class AuditLog:
    """Append-only audit log. Thread-safe (one connection per write)."""

    def __init__(self, config: AuditConfig) -> None:
        self.config = config
        self._lock = threading.Lock()
        try:
            config.path.parent.mkdir(parents=True, exist_ok=True)
            with sqlite3.connect(config.path) as con:
                con.execute(_SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise ConfigError(f"cannot open audit database ({exc})", field="audit", value=str(config.path)) from None

    def write(self, rec: Recommendation, *, input_sha256: str, now: dt.datetime | None = None) -> int:
        now = now or dt.datetime.now(dt.timezone.utc)
        plans = [p.model_dump(mode="json", exclude={"rationale"}) for p in rec.plans]
        excluded = [e.model_dump(mode="json") for e in rec.excluded]
        p = rec.provenance
        row = (
            now.isoformat(timespec="seconds"), input_sha256,
            rec.patient_id if self.config.include_identifiers else None,
            rec.area, p.planner_version, p.rules_version, p.model, p.seed, p.as_of.isoformat(),
            orjson.dumps(plans).decode(), orjson.dumps(excluded).decode(),
        )
        with self._lock, sqlite3.connect(self.config.path) as con:
            cur = con.execute(
                "INSERT INTO recommendation_audit (recorded_at, input_sha256, patient_id, area, planner_version,"
                " rules_version, model, seed, as_of, plans_json, excluded_json) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                row,
            )
            return int(cur.lastrowid or 0)

    def rows(self) -> list[dict]:
        with sqlite3.connect(self.config.path) as con:
            con.row_factory = sqlite3.Row
            return [dict(r) for r in con.execute("SELECT * FROM recommendation_audit ORDER BY id")]
