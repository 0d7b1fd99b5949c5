"""``planner.Planner``: the main job, end to end (``planner.api.cli``: the ``planner recommend`` command).

    FHIR -> PatientRecord -> features at as-of -> candidate regimens (generator + current + single moves)
         -> safety screen (exclude / adjust dose / caution) -> joint posterior draws -> ranked plans

Every stage is a separate package; this module only wires them. Knowledge (rules, areas, ranking weights)
is loaded once per :class:`Planner` and reused for every patient.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from ..version import __version__
from ..areas import Area, list_areas, load_area
from ..audit import AuditConfig, AuditLog
from ..errors import ConfigError, ModelError
from ..guidelines import indicated_candidates
from .. import render  # noqa: F401 - registers the notebook views of the Recommendations made here
from ..rank import RankingConfig, describe_changes, rank_plans
from ..recommendation import DataGap, ExcludedRegimen, OutcomeSummary, Provenance, Recommendation
from ..record import Finding, PatientRecord, Regimen
from ..status import GeneStatus

__all__ = ["Planner"]

Source = str | bytes | os.PathLike[str] | Mapping[str, Any] | PatientRecord


class Planner:
    """Recommend ranked, screened treatment plans for a patient.

    Build with :meth:`load`. ``recommend`` answers for one area (given, or the patient's only area);
    ``recommend_all`` answers once per area the patient's conditions put them in.
    """

    def __init__(
        self,
        *,
        ruleset: Any,
        rules_path: Path | None,
        models: Mapping[str, Any],
        generators: Mapping[str, Any],
        ranking: RankingConfig,
        model_dir: Path | None = None,
        audit: AuditLog | None = None,
        num_candidates: int = 60,
    ) -> None:
        self.ruleset = ruleset
        self.rules_path = rules_path
        self.models = dict(models)
        self.generators = dict(generators)
        self.ranking = ranking
        self.model_dir = model_dir
        self.audit = audit
        self.num_candidates = num_candidates

    # ---- construction ------------------------------------------------------------------------------
    @classmethod
    def load(
        cls,
        model: str | os.PathLike[str] | None = None,
        rules: str | os.PathLike[str] | None = None,
        *,
        audit: str | os.PathLike[str] | AuditConfig | None = None,
        num_candidates: int = 60,
        num_samples: int | None = None,
    ) -> "Planner":
        """Load rules and models once.

        ``model``: a folder written by ``planner fit`` (one area) or a folder of such folders (one per area);
        None: the literature-prior model of every area. ``rules``: a rules folder (default: packaged).
        ``audit``: a SQLite path (or :class:`AuditConfig`) to record every recommendation.
        ``num_samples``: posterior draws per candidate (default: ``rules/ranking.yaml``).
        """
        from ..model import RegimenGenerator, ResponseModel
        from ..safety import RuleSet

        rules_path = Path(rules) if rules is not None else None
        ruleset = RuleSet.load(rules_path)
        models: dict[str, Any] = {}
        generators: dict[str, Any] = {}
        model_dir = Path(model) if model is not None else None
        if model_dir is not None:
            if not model_dir.is_dir():
                raise ConfigError("model folder not found", field="model", value=str(model_dir),
                                  expected="a folder written by `planner fit`")
            dirs = [model_dir] if (model_dir / "meta.json").is_file() else sorted(
                p for p in model_dir.iterdir() if (p / "meta.json").is_file())
            if not dirs:
                raise ConfigError("no fitted model in folder", field="model", value=str(model_dir),
                                  expected="meta.json written by `planner fit`")
            for d in dirs:
                m = ResponseModel.load(d)
                models[m.area_.id if hasattr(m, "area_") else m.area.id] = m
                gen_dir = d / "generator"
                if gen_dir.is_dir():
                    g = RegimenGenerator.load(gen_dir)
                    generators[g.area.id] = g
        for area_id in list_areas(rules_path):
            area = load_area(area_id, rules_path)
            models.setdefault(area_id, ResponseModel.from_area(area))
            generators.setdefault(area_id, RegimenGenerator.from_area(area))
        audit_log = None
        if audit is not None:
            cfg = audit if isinstance(audit, AuditConfig) else AuditConfig(path=Path(audit))
            audit_log = AuditLog(cfg)
        ranking = RankingConfig.load(rules_path)
        if num_samples is not None:
            if num_samples < 100:
                raise ConfigError("too few posterior draws", field="num_samples", value=num_samples,
                                  expected="at least 100")
            ranking = dataclasses.replace(ranking, num_samples=int(num_samples))
        return cls(ruleset=ruleset, rules_path=rules_path, models=models, generators=generators,
                   ranking=ranking, model_dir=model_dir, audit=audit_log,
                   num_candidates=num_candidates)

    # ---- public API --------------------------------------------------------------------------------
    @staticmethod
    def read(source: Source, *, as_of: dt.date | str | None = None) -> tuple[PatientRecord, str]:
        """The record and a SHA-256 digest of the input (for the audit trail)."""
        from ..ingest import read_record

        if isinstance(source, PatientRecord):
            rec = source if as_of is None else source.model_copy(update={"as_of": _date(as_of)})
            return rec, hashlib.sha256(rec.model_dump_json().encode()).hexdigest()
        if isinstance(source, (bytes, bytearray)):
            data = bytes(source)
        elif isinstance(source, Mapping):
            import orjson

            data = orjson.dumps(dict(source), option=orjson.OPT_SORT_KEYS)
        elif isinstance(source, str) and source.lstrip().startswith(("{", "[")):
            data = source.encode()
        else:
            data = b""
            path = Path(source)
            if path.is_file():
                data = path.read_bytes()
        rec = read_record(dict(source) if isinstance(source, Mapping) else source, as_of=_date(as_of) if as_of is not None else None)
        return rec, hashlib.sha256(data or rec.model_dump_json().encode()).hexdigest()

    def areas_for(self, record: PatientRecord) -> list[str]:
        """Areas whose conditions the patient has (active on the as-of date), in a stable order."""
        found = []
        active = record.active_conditions()
        for area_id in sorted(self.models):
            area = load_area(area_id, self.rules_path)
            if any(
                area.matches_condition(c.code, c.system)
                or any(area.matches_condition(k.code, k.system) for k in c.codings)
                for c in active
            ):
                found.append(area_id)
        return found

    def recommend(
        self, source: Source, *, area: str | None = None, as_of: dt.date | str | None = None,
        top: int = 5, seed: int = 0, input_digest: str | None = None,
        preferences: str | Sequence[str] | None = None,
    ) -> Recommendation:
        """One recommendation: for ``area``, or for the patient's only area (error if none or several).

        ``input_digest``: SHA-256 of the original input for the audit trail, when ``source`` is a record the
        caller already read with :meth:`read`. ``preferences``: the patient's, e.g. ``"avoid-injections,fewest-pills"``
        or a list (ids in ``rules/ranking.yaml``); they move the ranking and each plan says how."""
        record, digest = self.read(source, as_of=as_of)
        digest = input_digest or digest
        if area is None:
            areas = self.areas_for(record)
            if len(areas) != 1:
                raise ConfigError(
                    "cannot choose the therapeutic area from the conditions" if not areas
                    else "the patient is in several areas",
                    field="area", value=areas,
                    expected="exactly one matching area; pass area= (one of " + ", ".join(sorted(self.models)) + ")"
                    + ("" if not areas else " or use recommend_all"),
                )
            area = areas[0]
        return self._recommend(record, area, top=top, seed=seed, digest=digest,
                               preferences=self.ranking.parse_preferences(preferences))

    def recommend_all(
        self, source: Source, *, as_of: dt.date | str | None = None, top: int = 5, seed: int = 0,
        input_digest: str | None = None, preferences: str | Sequence[str] | None = None,
    ) -> list[Recommendation]:
        """One recommendation per area the patient is in (empty list when none)."""
        record, digest = self.read(source, as_of=as_of)
        digest = input_digest or digest
        prefs = self.ranking.parse_preferences(preferences)
        return [self._recommend(record, a, top=top, seed=seed, digest=digest, preferences=prefs)
                for a in self.areas_for(record)]

    def recommend_many(
        self, sources: Sequence[Source], *, area: str | None = None, as_of: dt.date | str | None = None,
        top: int = 5, seed: int = 0, errors: str = "raise",
    ) -> list[Any]:
        """One recommendation per source, the same as :meth:`recommend` gives each (see :mod:`planner.batch`);
        ``errors="return"`` puts a failing source's exception in its place instead of raising."""
        from ..batch import recommend_many

        return recommend_many(self, sources, area=area, as_of=as_of, top=top, seed=seed, errors=errors)

    # ---- the pipeline --------------------------------------------------------------------------------
    def _recommend(self, record: PatientRecord, area_id: str, *, top: int, seed: int, digest: str,
                   preferences: Sequence[str] = ()) -> Recommendation:
        from ..features import features_at
        from ..safety import screen_plan

        if top < 1:
            raise ConfigError("top must be at least 1", field="top", value=top)
        if area_id not in self.models:
            raise ConfigError("unknown area", field="area", value=area_id,
                              expected="one of " + ", ".join(sorted(self.models)))
        area = load_area(area_id, self.rules_path)
        model = self.models[area_id]
        generator = self.generators[area_id]
        on = record.as_of
        feats = features_at(record, area, on, knowledge=self.ruleset.knowledge)
        gaps: list[DataGap] = []
        baseline_m = record.latest(area.outcome.quantity, within_days=area.outcome.baseline_window_days)
        stale = record.latest(area.outcome.quantity) if baseline_m is None else None
        baseline_name = next((f.name for f in area.features if f.kind == "baseline"), None)
        if baseline_name and feats.get(baseline_name) is None and stale is not None:
            # predictions start from the last known value, and the data gap says how old it is
            feats = {**feats, baseline_name: stale.value}
        X = pd.DataFrame([{k: (np.nan if v is None else v) for k, v in feats.items()}])
        can_predict = baseline_name is None or feats.get(baseline_name) is not None

        # current regimen: the area's drugs active on the as-of date
        current, dose_gaps = _current_regimen(record, area)
        gaps += dose_gaps

        # candidates: generator samples + current + every single move (the generator adds those)
        filled = _fill_doses(current, area)
        proposals = generator.propose(X, filled, n=self.num_candidates, seed=seed)
        seen: dict[str, Regimen] = {}
        for r in [current, *proposals]:
            if r == filled and filled != current:
                continue  # the current regimen itself, with its unknown doses filled in for the generator
            seen.setdefault(r.key(), r)
        candidates = list(seen.values())
        if any(self.ranking.guideline.values()):  # regimens that also meet the guideline indications
            candidates += indicated_candidates(area, record, candidates, rules=self.rules_path)

        # safety screen: excluded regimens listed with why; adjusted doses applied and re-screened
        ctx = self.ruleset.prepare(record, on=on, area=area.id)
        current_ingredients = set(current.ingredients)
        kept: dict[str, tuple[Regimen, list[Finding], dict[str, str]]] = {}
        excluded: dict[str, ExcludedRegimen] = {}
        for cand in candidates:
            ps = screen_plan(ctx, cand, rules=self.ruleset, new_start=set(cand.ingredients) - current_ingredients)
            if ps.final is None:
                excluded.setdefault(cand.key(), ExcludedRegimen(
                    key=cand.key(), regimen=describe_changes(current, cand, area)[0], findings=ps.exclusions))
                continue
            kept.setdefault(ps.final.key(), (ps.final, list(ps.findings), ps.adjusted_by))

        num_samples = self.ranking.num_samples
        screened = list(kept.values())
        plans = []
        target, target_label = _target(area, record)
        if screened and can_predict:
            regs = [_fill_doses(r, area) for r, _, _ in screened]
            # the baseline value carries the effect of the regimen active when it was measured
            cur = current
            measured = baseline_m or stale
            if measured is not None:
                from ..episodes import regimen_on

                cur = regimen_on(record, area, measured.date - dt.timedelta(days=1))
            cur = _fill_doses(cur, area)
            mean = np.asarray(model.sample(X, regs, num_samples=num_samples, kind="mean", seed=seed,
                                           current=cur))[:, 0, :]
            pred = np.asarray(model.sample(X, regs, num_samples=num_samples, kind="predictive", seed=seed + 1,
                                           current=cur))[:, 0, :]
            if not (np.isfinite(mean).all() and np.isfinite(pred).all()):
                raise ModelError("the model produced non-finite draws", field="model", value=getattr(model, "name", "?"))
            plans = rank_plans(
                area=area, current=current, candidates=[r for r, _, _ in screened],
                findings=[f for _, f, _ in screened], mean_draws=mean, pred_draws=pred,
                baseline=None if baseline_m is None else baseline_m.value, target=target,
                config=self.ranking, features=feats, adjusted_by=[a for _, _, a in screened],
                record=record, preferences=preferences, seed=seed,
            )[:top]

        gaps += _data_gaps(record, area, self.ruleset, candidates, baseline_m is None)
        used = feats.get(baseline_name) if baseline_name else None
        lo_p, hi_p = area.outcome.plausible
        if isinstance(used, (int, float)) and not lo_p <= used <= hi_p:
            gaps.append(DataGap(code="implausible-outcome", quantity=area.outcome.quantity,
                                message=f"the baseline {area.outcome.quantity} is outside the plausible range "
                                        f"{lo_p:g}-{hi_p:g} {area.outcome.unit}; predictions from it are unreliable",
                                suggestion="check the value and its unit in the source system"))
        if not can_predict:
            gaps.append(DataGap(code="no-outcome", quantity=area.outcome.quantity,
                                message=f"no {area.outcome.quantity} on record: outcomes cannot be predicted, "
                                        "so no plan is ranked (excluded regimens are still listed)",
                                suggestion=f"measure {area.outcome.quantity} (LOINC {area.outcome.loinc[0]})"))
        rec = Recommendation(
            patient_id=record.patient_id,
            area=area.id,
            area_name=area.name,
            outcome=OutcomeSummary(
                quantity=area.outcome.quantity, loinc=area.outcome.loinc[0], unit=area.outcome.unit,
                direction=area.outcome.direction,
                baseline=None if baseline_m is None else baseline_m.value,
                baseline_date=None if baseline_m is None else baseline_m.date,
                target=target, target_label=target_label,
            ),
            current_regimen=describe_changes(current, current, area)[0],
            plans=tuple(plans),
            excluded=tuple(sorted(excluded.values(), key=lambda e: e.key)),
            current_findings=tuple(self.ruleset.check(record)),
            data_gaps=tuple(gaps),
            preferences=tuple(preferences),
            provenance=Provenance(
                planner_version=__version__, rules_version=self.ruleset.rules_version,
                area_version=area.version, model=getattr(model, "name", type(model).__name__), seed=seed,
                as_of=record.as_of, num_samples=num_samples, candidates_considered=len(candidates),
            ),
        )
        if self.audit is not None:
            self.audit.write(rec, input_sha256=digest)
        return rec


def _date(value: dt.date | str) -> dt.date:
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise ConfigError("invalid date", field="as_of", value=value, expected="YYYY-MM-DD") from None


def _current_regimen(record: PatientRecord, area: Area) -> tuple[Regimen, list[DataGap]]:
    """The area's drugs active on the as-of date, by the same interval rules as episodes (DESIGN.md)."""
    from ..episodes import regimen_on

    current = regimen_on(record, area, record.as_of)
    gaps = [
        DataGap(code="dose-unknown", message=f"the current dose of {d.ingredient} is not recorded",
                suggestion="record the dose; predictions assume the reference dose")
        for d in current.drugs if d.dose_mg_day is None
    ]
    return current, gaps


def _fill_doses(regimen: Regimen, area: Area) -> Regimen:
    """Unknown doses take the area's reference dose (for prediction only)."""
    if all(d.dose_mg_day is not None for d in regimen.drugs):
        return regimen
    return Regimen.of([
        d if d.dose_mg_day is not None else d.model_copy(update={"dose_mg_day": area.drug(d.ingredient).reference_dose})
        for d in regimen.drugs
    ])


def _target(area: Area, record: PatientRecord) -> tuple[float, str]:
    """The patient's target and why (the area's target rules, by active condition codes and age)."""
    codes = {code for c in record.active_conditions() for code in (c.code, *(k.code for k in c.codings)) if code}
    rule = area.target_rule_for(codes, record.age())
    return (area.outcome.target, "default target") if rule is None else (rule.value, rule.label)


def _data_gaps(record: PatientRecord, area: Area, ruleset: Any, candidates: Sequence[Regimen], no_outcome: bool) -> list[DataGap]:
    gaps: list[DataGap] = []
    o = area.outcome
    if no_outcome:
        last = record.latest(o.quantity)
        when = f" (last {last.date})" if last else ""
        gaps.append(DataGap(code="no-recent-outcome", quantity=o.quantity,
                            message=f"no {o.quantity} in the last {o.baseline_window_days} days{when}"
                                    + ("; predictions start from that value" if last else ""),
                            suggestion=f"measure {o.quantity} (LOINC {o.loinc[0]}) before acting on predictions"))
    for f in area.features:
        if f.kind == "quantity" and f.quantity and record.latest(f.quantity, within_days=f.lookback_days) is None:
            gaps.append(DataGap(code="lab-missing", quantity=f.quantity,
                                message=f"no {f.quantity} in the last {f.lookback_days} days; a population default is used",
                                suggestion=f"measure {f.quantity}"))
    phenos = ruleset.phenotypes(record)
    genes_needed: dict[str, set[str]] = {}
    for cand in candidates:
        for d in cand.drugs:
            for g in ruleset.genes_for(d.ingredient):
                genes_needed.setdefault(g, set()).add(d.ingredient)
    for gene in sorted(genes_needed):
        res = phenos.get(gene)
        status = GeneStatus.NOT_TESTED if res is None else GeneStatus(res.status)
        if status.is_gap:
            drugs = ", ".join(sorted(genes_needed[gene]))
            gaps.append(DataGap(code=f"gene-{status.value}", gene=gene,
                                message=f"{gene} {status.label} while candidates depend on it ({drugs})",
                                suggestion=f"consider {gene} genotyping before starting {drugs}"))
    return gaps
