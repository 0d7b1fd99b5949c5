"""The typed objects handed between the stages of a recommendation, between the record and the result.

::

    PatientRecord ──features──▶ FeatureRow ──candidates──▶ CandidateSet ──screening──▶ ScreenedCandidates
                  ──predict──▶ Predictions ──report (rank + data gaps)──▶ Recommendation

Each is frozen and saves to one JSON file (:meth:`Handoff.save` / :meth:`Handoff.load`); large arrays (the
posterior draws) are stored in it as base64 of their raw little-endian bytes, so a loaded object is bit-for-bit
the saved one. Each later object holds the one before it (``CandidateSet.features``,
``ScreenedCandidates.candidates``, ``Predictions.screened``): a stage needs only its input, the knowledge it is
given (area, rules, model) and, for the two stages that read the patient (features, screening), the record.
"""

from __future__ import annotations

import base64
import datetime as dt
import os
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, TypeVar

import numpy as np
import pandas as pd
from pydantic import PlainSerializer, PlainValidator, ValidationError, WithJsonSchema, model_validator

from .errors import ConfigError
from .recommendation import DataGap, RecordWarning
from .record import Finding, Frozen, Measurement, Regimen
from .status import GeneStatus

__all__ = [
    "Array",
    "Handoff",
    "FeatureRow",
    "CandidateSet",
    "ScreenedRegimen",
    "ExcludedCandidate",
    "GeneNeed",
    "ScreenedCandidates",
    "Predictions",
]

_H = TypeVar("_H", bound="Handoff")


# ---- arrays ----------------------------------------------------------------------------------------------------
def _to_array(value: Any) -> np.ndarray[Any, Any]:
    """An immutable float array (its dtype kept: float32 draws stay float32) from an array, a nested list, or
    the saved ``{dtype, shape, data}`` form."""
    if isinstance(value, dict):
        try:
            dtype = np.dtype(str(value["dtype"]))
            shape = tuple(int(n) for n in value["shape"])
            raw = base64.b64decode(str(value["data"]), validate=True)
            arr = np.frombuffer(raw, dtype=dtype).reshape(shape)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a saved array ({exc}); expected {{dtype, shape, data (base64)}}") from None
    else:
        arr = np.asarray(value)
    if arr.dtype.kind not in "fiu":
        raise ValueError(f"array of {arr.dtype} where numbers were expected")
    kind = arr.dtype if arr.dtype.kind == "f" else np.dtype(np.float64)
    out = np.array(arr, dtype=kind.newbyteorder("="), copy=True)
    out.setflags(write=False)
    return out


def _from_array(arr: np.ndarray[Any, Any]) -> dict[str, Any]:
    a = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<"))
    return {"dtype": a.dtype.str, "shape": list(a.shape), "data": base64.b64encode(a.tobytes()).decode("ascii")}


Array = Annotated[
    np.ndarray,
    PlainValidator(_to_array),
    PlainSerializer(_from_array, when_used="json"),
    WithJsonSchema(
        {
            "type": "object",
            "properties": {
                "dtype": {"type": "string"},
                "shape": {"type": "array", "items": {"type": "integer"}},
                "data": {"type": "string", "contentEncoding": "base64"},
            },
        }
    ),
]
"""A float array field: read-only in memory, ``{dtype, shape, data}`` (base64 of little-endian bytes) in JSON."""


# ---- the base ------------------------------------------------------------------------------------------------
class Handoff(Frozen):
    """A stage's output: frozen, and saved to / loaded from one JSON file."""

    KIND: ClassVar[str] = ""
    kind: str

    @model_validator(mode="before")
    @classmethod
    def _kind(cls, data: Any) -> Any:
        if isinstance(data, dict):
            got = data.get("kind", cls.KIND)
            if got != cls.KIND:
                raise ValueError(f"a {got!r} hand-off where a {cls.KIND!r} was expected")
        return data

    def to_json(self, *, indent: int | None = None) -> str:
        return self.model_dump_json(indent=indent)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the JSON file (parents created); returns the path."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(self.model_dump_json(), encoding="utf-8")
        return p

    @classmethod
    def load(cls: type[_H], path: str | os.PathLike[str]) -> _H:
        """Read a file written by :meth:`save`; a wrong or damaged file is a :class:`ConfigError` naming it."""
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(
                "cannot read the hand-off file",
                file=str(p),
                field="path",
                expected=f"a {cls.KIND} JSON file ({exc.strerror})",
            ) from None
        try:
            return cls.model_validate_json(text)
        except ValidationError as exc:
            err = exc.errors()[0]
            raise ConfigError(
                str(err["msg"]),
                file=str(p),
                field=".".join(str(x) for x in err["loc"]) or "kind",
                expected=f"a {cls.KIND} hand-off written by {cls.__name__}.save",
            ) from None


# ---- features ------------------------------------------------------------------------------------------------
FeatureValue = float | str | None


class FeatureRow(Handoff):
    """A patient's features on the as-of date, with units, and the facts of the record later stages use.

    ``values``: column -> value (None: missing; the baseline column holds the last value on record when none is
    recent: ``baseline_from_last``); ``units``: column -> unit (``"1"`` dimensionless, ``""`` a category).
    """

    KIND: ClassVar[str] = "feature-row"
    kind: Literal["feature-row"] = "feature-row"
    patient_id: str | None
    area: str
    area_version: str
    as_of: dt.date
    values: dict[str, FeatureValue]
    units: dict[str, str]
    baseline_feature: str | None = None
    outcome_recent: Measurement | None = None  # the outcome's latest value within the baseline window
    outcome_last: Measurement | None = None  # its latest value at all, when none is recent
    baseline_from_last: bool = False
    current: Regimen = Regimen()  # the area's drugs active on the as-of date (doses as recorded)
    measured_under: Regimen = Regimen()  # the regimen active when the baseline was measured (doses filled)
    target: float
    target_label: str
    labs_missing: tuple[str, ...] = ()  # names of the quantity features with no value within their lookback
    record_gaps: tuple[DataGap, ...] = ()  # the record's own gaps (planner.ingest.quality.record_gaps)
    record_warnings: tuple[RecordWarning, ...] = ()  # its data-quality warnings (planner.ingest.quality)
    deceased: bool = False  # recorded as deceased: no plans are made

    @model_validator(mode="after")
    def _columns(self) -> FeatureRow:
        if list(self.values) != list(self.units):
            raise ValueError("values and units must name the same columns in the same order")
        if self.baseline_feature is not None and self.baseline_feature not in self.values:
            raise ValueError(f"baseline feature {self.baseline_feature!r} is not a column")
        return self

    @property
    def can_predict(self) -> bool:
        """False when the area has a baseline feature and no value of it is on record at all."""
        return self.baseline_feature is None or self.values[self.baseline_feature] is not None

    def frame(self) -> pd.DataFrame:
        """The row as the models take it: one row, NaN where missing, ``attrs["units"]``. Built once per row (the
        candidates and predict stages both ask): each call returns its own shallow copy (copy-on-write: changing
        one leaves the others as they were; its own ``attrs``)."""
        state = (tuple(self.values.items()), tuple(self.units.items()))
        kept = self.__dict__.get("_frame")
        if not isinstance(kept, _Kept) or kept.state != state:
            df = pd.DataFrame([{k: (np.nan if v is None else v) for k, v in self.values.items()}])
            df.attrs["units"] = dict(self.units)
            kept = self.__dict__["_frame"] = _Kept(state, df)
        assert kept.frame is not None
        return kept.frame.copy(deep=False)


class _Kept:
    """A value worked out from a frozen model's fields, kept in its instance dict: equal to any other (the
    model's equality is its fields'), and neither pickled nor deep-copied (worked out again where needed)."""

    __slots__ = ("state", "frame")

    def __init__(self, state: Any = None, frame: pd.DataFrame | None = None) -> None:
        self.state, self.frame = state, frame

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Kept)

    __hash__ = None  # type: ignore[assignment]

    def __reduce__(self) -> tuple[type[_Kept], tuple[()]]:
        return (_Kept, ())


# ---- candidates ----------------------------------------------------------------------------------------------
class CandidateSet(Handoff):
    """The regimens to consider: the current one first, then the generator's, de-duplicated by key."""

    KIND: ClassVar[str] = "candidate-set"
    kind: Literal["candidate-set"] = "candidate-set"
    features: FeatureRow
    candidates: tuple[Regimen, ...]
    generator: str
    seed: int
    requested: int  # how many the generator was asked for

    @model_validator(mode="after")
    def _unique(self) -> CandidateSet:
        keys = [r.key() for r in self.candidates]
        if len(set(keys)) != len(keys):
            raise ValueError("candidate regimens must be unique")
        return self


# ---- screening -----------------------------------------------------------------------------------------------
class ScreenedRegimen(Frozen):
    """A candidate that passed the safety screen, after the dose adjustments its findings made."""

    proposed: Regimen
    regimen: Regimen
    findings: tuple[Finding, ...] = ()
    adjusted_by: dict[str, str] = {}  # drug -> id of the rule that set its dose

    @property
    def adjusted(self) -> bool:
        return self.regimen != self.proposed


class ExcludedCandidate(Frozen):
    """A candidate a rule removed, with the findings that removed it."""

    regimen: Regimen
    findings: tuple[Finding, ...]


class GeneNeed(Frozen):
    """A gene some candidate's drugs have rules for, and the patient's test status for it."""

    gene: str
    status: GeneStatus
    drugs: tuple[str, ...]


class ScreenedCandidates(Handoff):
    """The safety verdict on every candidate: kept (some with adjusted doses) or excluded, with findings."""

    KIND: ClassVar[str] = "screened-candidates"
    kind: Literal["screened-candidates"] = "screened-candidates"
    candidates: CandidateSet
    kept: tuple[ScreenedRegimen, ...]
    excluded: tuple[ExcludedCandidate, ...]
    current_findings: tuple[Finding, ...] = ()  # on the medications the patient takes now
    genes: tuple[GeneNeed, ...] = ()
    rules_version: str

    @property
    def features(self) -> FeatureRow:
        return self.candidates.features

    @property
    def adjusted(self) -> tuple[ScreenedRegimen, ...]:
        return tuple(k for k in self.kept if k.adjusted)


# ---- predictions ---------------------------------------------------------------------------------------------
class Predictions(Handoff):
    """Joint posterior draws of each kept regimen's follow-up outcome.

    ``mean_draws``: the expected outcome; ``pred_draws``: a new measurement of it; both (num_samples, regimens),
    columns in the order of ``screened.kept``. None when nothing could be predicted (no kept regimen, or no
    outcome value on record).
    """

    KIND: ClassVar[str] = "predictions"
    kind: Literal["predictions"] = "predictions"
    screened: ScreenedCandidates
    regimens: tuple[Regimen, ...] = ()  # the kept regimens as the model saw them (unknown doses filled)
    mean_draws: Array | None = None
    pred_draws: Array | None = None
    model: str
    num_samples: int
    seed: int

    @model_validator(mode="after")
    def _shapes(self) -> Predictions:
        if (self.mean_draws is None) != (self.pred_draws is None):
            raise ValueError("mean_draws and pred_draws are given together or not at all")
        if self.mean_draws is not None and self.pred_draws is not None:
            want = (self.num_samples, len(self.regimens))
            if self.mean_draws.shape != want or self.pred_draws.shape != want:
                raise ValueError(f"draws must have shape {want} (num_samples, regimens)")
            if len(self.regimens) != len(self.screened.kept):
                raise ValueError("one predicted regimen per kept candidate")
        return self

    def __eq__(self, other: object) -> bool:  # arrays compare by value
        if not isinstance(other, Predictions):
            return NotImplemented
        a, b = (
            self.model_dump(exclude={"mean_draws", "pred_draws"}),
            other.model_dump(exclude={"mean_draws", "pred_draws"}),
        )
        return a == b and all(
            (x is None and y is None) or (x is not None and y is not None and np.array_equal(x, y))
            for x, y in ((self.mean_draws, other.mean_draws), (self.pred_draws, other.pred_draws))
        )
