"""``planner.Planner``: the main job, end to end (``planner.api.cli``: the ``planner recommend`` command).

    FHIR -> PatientRecord -> FeatureRow -> CandidateSet (generator + current + single moves)
         -> ScreenedCandidates (exclude / adjust dose / caution) -> Predictions (joint posterior draws)
         -> Recommendation (ranked plans, excluded regimens, data gaps)

Each arrow is a stage function of :mod:`planner.stages` taking the previous typed hand-off
(:mod:`planner.handoffs`); this module only loads the knowledge (rules, areas, models, ranking weights, data-gap
wording) once per :class:`Planner` and wires the stages for every patient.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from .. import render  # noqa: F401 - registers the notebook views of the Recommendations made here
from ..areas import list_areas, load_area
from ..audit import AuditConfig, AuditLog
from ..errors import ConfigError
from ..rank import RankingConfig
from ..recommendation import Recommendation
from ..record import PatientRecord
from ..stages.gaps import GapRules

if TYPE_CHECKING:
    from ..safety import RuleSet

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
        ruleset: RuleSet,
        rules_path: Path | None,
        models: Mapping[str, Any],
        generators: Mapping[str, Any],
        ranking: RankingConfig,
        model_dir: Path | None = None,
        audit: AuditLog | None = None,
        num_candidates: int = 60,
        gap_rules: GapRules | None = None,
    ) -> None:
        self.ruleset = ruleset
        self.rules_path = rules_path
        self.models = dict(models)
        self.generators = dict(generators)
        self.ranking = ranking
        self.model_dir = model_dir
        self.audit = audit
        self.num_candidates = num_candidates
        self.gap_rules = GapRules.load(rules_path) if gap_rules is None else gap_rules

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
                raise ConfigError(
                    "model folder not found",
                    field="model",
                    value=str(model_dir),
                    expected="a folder written by `planner fit`",
                )
            dirs = (
                [model_dir]
                if (model_dir / "meta.json").is_file()
                else sorted(p for p in model_dir.iterdir() if (p / "meta.json").is_file())
            )
            if not dirs:
                raise ConfigError(
                    "no fitted model in folder",
                    field="model",
                    value=str(model_dir),
                    expected="meta.json written by `planner fit`",
                )
            for d in dirs:
                m, g = _load_saved(d)
                models[m.area_.id if hasattr(m, "area_") else m.area.id] = m
                if g is not None:
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
                raise ConfigError(
                    "too few posterior draws", field="num_samples", value=num_samples, expected="at least 100"
                )
            ranking = dataclasses.replace(ranking, num_samples=int(num_samples))
        return cls(
            ruleset=ruleset,
            rules_path=rules_path,
            models=models,
            generators=generators,
            ranking=ranking,
            model_dir=model_dir,
            audit=audit_log,
            num_candidates=num_candidates,
        )

    # ---- public API --------------------------------------------------------------------------------
    @staticmethod
    def read(source: Source, *, as_of: dt.date | str | None = None) -> tuple[PatientRecord, str]:
        """The record and a SHA-256 digest of the input (for the audit trail)."""
        from ..ingest import read_record

        if not isinstance(source, (PatientRecord, bytes, bytearray, Mapping, str, os.PathLike)):
            raise ConfigError(
                "unsupported input type",
                field="source",
                value=type(source).__name__,
                expected="a path, JSON text, bytes, a dict or a PatientRecord",
            )
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
        rec = read_record(
            dict(source) if isinstance(source, Mapping) else source, as_of=_date(as_of) if as_of is not None else None
        )
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
        self,
        source: Source,
        *,
        area: str | None = None,
        as_of: dt.date | str | None = None,
        top: int = 5,
        seed: int = 0,
        input_digest: str | None = None,
        preferences: str | Sequence[str] | None = None,
    ) -> Recommendation:
        """One recommendation: for ``area``, or for the patient's only area (error if none or several).

        ``input_digest``: SHA-256 of the original input for the audit trail, when ``source`` is a record the
        caller already read with :meth:`read`. ``preferences``: the patient's, e.g. ``"avoid-injections,fewest-pills"``
        or a list (ids in ``rules/ranking.yaml``); they move the ranking and each plan says how."""
        record, digest = self.read(source, as_of=as_of)
        digest = input_digest or digest
        return self._recommend(
            record,
            self.area_of(record, area),
            top=top,
            seed=seed,
            digest=digest,
            preferences=self.ranking.parse_preferences(preferences),
        )

    def area_of(self, record: PatientRecord, area: str | None) -> str:
        """``area``, or the patient's only area from the conditions (a ConfigError if none or several)."""
        if area is not None:
            return area
        areas = self.areas_for(record)
        if len(areas) != 1:
            raise ConfigError(
                "cannot choose the therapeutic area from the conditions"
                if not areas
                else "the patient is in several areas",
                field="area",
                value=areas,
                expected="exactly one matching area; pass area= (one of "
                + ", ".join(sorted(self.models))
                + ")"
                + ("" if not areas else " or use recommend_all"),
            )
        return areas[0]

    def recommend_all(
        self,
        source: Source,
        *,
        as_of: dt.date | str | None = None,
        top: int = 5,
        seed: int = 0,
        input_digest: str | None = None,
        preferences: str | Sequence[str] | None = None,
    ) -> list[Recommendation]:
        """One recommendation per area the patient is in (empty list when none)."""
        record, digest = self.read(source, as_of=as_of)
        digest = input_digest or digest
        prefs = self.ranking.parse_preferences(preferences)
        return [
            self._recommend(record, a, top=top, seed=seed, digest=digest, preferences=prefs)
            for a in self.areas_for(record)
        ]

    def recommend_many(
        self,
        sources: Sequence[Source],
        *,
        area: str | None = None,
        as_of: dt.date | str | None = None,
        top: int = 5,
        seed: int = 0,
        errors: str = "raise",
        preferences: str | Sequence[str] | None = None,
    ) -> list[Any]:
        """One recommendation per source, the same as :meth:`recommend` gives each, with the posterior draws of
        the whole batch in one sampler call (see :mod:`planner.batch`); ``errors="return"`` puts a failing
        source's exception in its place instead of raising."""
        from ..batch import recommend_many

        return recommend_many(
            self, sources, area=area, as_of=as_of, top=top, seed=seed, errors=errors, preferences=preferences
        )

    def warm(self, area: str | Sequence[str] | None = None, *, n: int | None = None, seed: int = 0) -> Any:
        """Fill the per-regimen caches by planning ``n`` simulated patients per area (``area``: an id, several,
        or None: every area; ``seed``: the seed later calls will mostly use); no patient data, no audit entries;
        the output of later calls is unchanged. Returns a :class:`planner.warm.WarmStats` (areas, patients,
        seconds, CPU seconds). See :mod:`planner.warm`."""
        from ..warm import WARM_N, warm_planner

        return warm_planner(self, area, n=WARM_N if n is None else n, seed=seed)

    # ---- the pipeline: only wiring (each stage in planner.stages; hand-offs in planner.handoffs) -------------
    def _recommend(
        self, record: PatientRecord, area_id: str, *, top: int, seed: int, digest: str, preferences: Sequence[str] = ()
    ) -> Recommendation:
        """One recommendation: the batch pipeline of :func:`planner.batch.recommend_jobs` with a batch of one."""
        from ..batch import Job, recommend_jobs

        out = recommend_jobs(self, [Job(record, area_id, digest)], top=top, seed=seed, preferences=preferences)[0]
        if isinstance(out, Exception):
            raise out
        return out


def _load_saved(d: Path) -> tuple[Any, Any]:
    """A saved model (and its generator); a folder that is damaged (a key missing from meta.json, a truncated
    draws file) is a ModelError naming it, not a crash."""
    import zipfile

    from ..errors import ModelError, PlannerError
    from ..model import RegimenGenerator, ResponseModel

    try:
        m = ResponseModel.load(d)
        gen_dir = d / "generator"
        return m, (RegimenGenerator.load(gen_dir) if gen_dir.is_dir() else None)
    except PlannerError:
        raise
    except (KeyError, TypeError, ValueError, IndexError, OSError, EOFError, zipfile.BadZipFile, RuntimeError) as exc:
        what = f"missing {exc}" if isinstance(exc, KeyError) else type(exc).__name__
        raise ModelError(
            f"damaged model folder ({what})",
            file=str(d),
            expected="a folder written by `planner fit` (meta.json with params and spec, a complete "
            "draws.npz); fit it again",
        ) from None


def _date(value: dt.date | str) -> dt.date:
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise ConfigError("invalid date", field="as_of", value=value, expected="YYYY-MM-DD") from None
