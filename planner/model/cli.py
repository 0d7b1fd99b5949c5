"""``planner fit``: learn the response model and the regimen generator of one area from a FHIR cohort."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from ..errors import ConfigError

__all__ = ["register", "fit_cohort"]


def fit_cohort(
    source: Path,
    area_id: str,
    out: Path,
    *,
    method: str = "svi",
    seed: int = 0,
    rules: str | None = None,
    progress: bool = True,
    steps: int | None = None,
    check_folds: int = 3,
) -> dict:
    """Read bundles, extract episodes, fit both models, check the response model by ``check_folds``-fold
    cross-validation on the observed follow-ups (:mod:`planner.model.selfcheck`; 0 skips it), save them to
    ``out`` (``meta.json`` with the check, ``draws.npz``, ``generator/``), and return a summary (counts, loss,
    times, the check; no identifiers)."""
    from rich.console import Console

    from ..areas import load_area
    from .generator import RegimenGenerator
    from .response import ResponseModel

    if method not in ("svi", "nuts"):
        raise ConfigError("unknown method", field="--method", value=method, expected="svi or nuts")
    if not source.exists():
        raise ConfigError(
            "cohort not found",
            field="COHORT_DIR",
            value=str(source),
            expected="a folder of FHIR bundles / NDJSON (e.g. from `planner simulate`)",
        )
    if steps is not None and steps < 1:
        raise ConfigError("steps must be positive", field="--steps", value=steps, expected="an integer >= 1")
    area = load_area(area_id, rules)
    console = Console(stderr=True, quiet=not progress)
    t0 = time.perf_counter()
    coh = _read_cohort(source, area, rules, console)
    read_s = time.perf_counter() - t0

    def build() -> ResponseModel:
        return ResponseModel.from_area(area, seed=seed, method=method, rules=rules, num_steps=steps)

    model = _fit_with_progress(build, coh, area, method, seed, check_folds, console)
    gen = RegimenGenerator.from_area(area, seed=seed, rules=rules)
    gen.fit(coh["X"], coh["current"], coh["regimens"])
    out.mkdir(parents=True, exist_ok=True)
    model.save(out)
    gen.save(out / "generator")
    counts = coh["counts"]
    return {
        "area": area.id,
        "area_version": area.version,
        "patients": len(coh["records"]),
        "candidates": int(counts.get("candidates", 0)),
        "episodes": int(len(coh["frame"])),
        "dropped": {k: int(v) for k, v in counts.items() if k not in ("candidates", "episodes")},
        "method": method,
        "seed": seed,
        "final_loss": model.training_summary_.get("final_loss"),
        "fit_seconds": round(model.fit_seconds_, 2),
        "read_seconds": round(read_s, 2),
        "diagnostics": model.diagnostics_,
        "generator_moves": gen.kind_counts_,
        "out": str(out),
        "self_check": getattr(model, "self_check_", None),
        "followup_noise": coh["followup_noise"],  # aggregates of lab pairs only (planner.model.levels)
    }


def _read_cohort(source: Path, area, rules: str | None, console) -> dict:  # noqa: ANN001
    """Records and episodes of a cohort folder: the frame, features ``X``, the regimen of each episode, the
    regimen at its baseline and the follow-up ``y`` (refused when there are no episodes)."""
    import pandas as pd

    from ..episodes import episodes_frame
    from ..ingest import read_records
    from ..record import Regimen
    from .levels import within_patient_variance

    fhir_dir = source / "fhir" if (source / "fhir").is_dir() else source
    with console.status("reading FHIR records"):
        records = read_records(str(fhir_dir), rules=rules)
    with console.status(f"extracting {area.id} episodes from {len(records)} patients"):
        frame, counts = episodes_frame(records, area)
    if frame.empty:
        raise ConfigError(
            "no episodes in the cohort",
            field="COHORT_DIR",
            value=str(source),
            expected=f"patients with {area.id} regimen changes, a baseline and a follow-up outcome",
        )
    feats = [f.name for f in area.features if f.name in frame.columns]
    X = frame[feats].copy()
    for c in X.columns:
        if X[c].dtype == object and all(isinstance(v, (int, float, bool)) or v is None for v in X[c]):
            X[c] = pd.to_numeric(X[c])
    return {
        "records": records,
        "frame": frame,
        "counts": counts,
        "X": X,
        "regimens": [Regimen.model_validate_json(s) for s in frame["regimen_json"]],
        "current": _regimens_at_baseline(records, area, frame),
        "y": frame["followup"].to_numpy(dtype=float),
        "followup_noise": within_patient_variance(records, area),
    }


def _fit_with_progress(build, coh: dict, area, method: str, seed: int, check_folds: int, console):  # noqa: ANN001, ANN202
    """Fit ``build()`` on the cohort with a progress bar, then (``check_folds`` > 0) its cross-validated
    self-check on the observed follow-ups, kept as ``model.self_check_``."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    model = build()
    with Progress(
        TextColumn("[bold]fit[/] {task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TextColumn("loss {task.fields[loss]}"),
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        task = bar.add_task(f"{area.id} ({method})", total=None, loss="-")

        def report(step: int, total: int, loss: float) -> None:
            bar.update(task, completed=step, total=total, loss="-" if loss != loss else f"{loss:.4f}")

        model.fit(
            coh["X"],
            coh["regimens"],
            coh["y"],
            current=coh["current"],
            progress=report,
            followup_noise=coh["followup_noise"],
        )
        if not check_folds:
            return model
        from .selfcheck import self_check

        task2 = bar.add_task(f"self-check ({check_folds}-fold CV)", total=None, loss="-")

        def report_cv(fold: int, step: int, total: int, loss: float) -> None:
            bar.update(
                task2,
                completed=fold * total + step,
                total=check_folds * total,
                loss="-" if loss != loss else f"{loss:.4f}",
            )

        model.self_check_ = self_check(
            build,
            coh["X"],
            coh["regimens"],
            coh["y"],
            coh["current"],
            _targets_at_t0(coh["records"], area, coh["frame"]),
            list(coh["frame"]["patient_id"]),
            folds=check_folds,
            seed=seed,
            direction=area.outcome.direction,
            progress=report_cv,
        )
    return model


def _targets_at_t0(records, area, frame):  # noqa: ANN001, ANN202 - returns a float ndarray
    """Each episode's target on its t0 (the area's target rules by the conditions active then and age)."""
    import numpy as np

    by_id = {r.patient_id: r for r in records}
    out = []
    for pid, t0 in zip(frame["patient_id"], frame["t0"]):
        rec = by_id.get(pid)
        day = t0.date() if hasattr(t0, "date") else t0
        if rec is None:
            out.append(area.outcome.target)
            continue
        codes = {
            code for c in rec.conditions if c.is_active(day) for code in (c.code, *(k.code for k in c.codings)) if code
        }
        out.append(area.target_for(codes, rec.age(day)))
    return np.asarray(out, dtype=float)


def _regimens_at_baseline(records, area, frame) -> list:
    """The regimen active on each episode's baseline date (whose effect the baseline carries; after a recent
    change it differs from the regimen of the day before t0). A value dated on a change day predates it."""
    import datetime as dt

    from ..episodes import regimen_on
    from ..record import Regimen

    by_id = {r.patient_id: r for r in records}
    out = []
    for pid, bd, before in zip(frame["patient_id"], frame["baseline_date"], frame["regimen_before_json"]):
        rec = by_id.get(pid)
        if rec is None or bd is None or bd != bd:
            out.append(Regimen.model_validate_json(before))
            continue
        day = (bd.date() if hasattr(bd, "date") else bd) - dt.timedelta(days=1)
        out.append(regimen_on(rec, area, day))
    return out


def register(app: typer.Typer) -> None:
    """Add ``planner fit``."""

    @app.command("fit")
    def fit(
        cohort_dir: Annotated[
            Path, typer.Argument(help="Folder of FHIR bundles / NDJSON (or a `planner simulate` output).")
        ],
        area: Annotated[
            str, typer.Option("--area", help="Therapeutic area id (t2d, lipids, hypertension, depression).")
        ],
        out: Annotated[Path, typer.Option("--out", help="Model folder to write (meta.json, draws.npz, generator/).")],
        method: Annotated[
            str, typer.Option("--method", help="svi (default; any size) or nuts (small cohorts).")
        ] = "svi",
        seed: Annotated[int, typer.Option("--seed", help="Seed: the same cohort and seed give the same model.")] = 0,
        rules: Annotated[
            Path | None, typer.Option("--rules", help="Rules folder (default: the packaged rules).")
        ] = None,
        steps: Annotated[
            int | None, typer.Option("--steps", help="SVI steps (default: chosen from the cohort size).")
        ] = None,
        quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
        check_folds: Annotated[
            int, typer.Option("--check-folds", help="Folds of the held-out self-check (0: none).")
        ] = 3,
    ) -> None:
        """Fit the outcome model and the regimen generator of an area on a FHIR cohort's episodes."""
        s = fit_cohort(
            cohort_dir,
            area,
            out,
            method=method,
            seed=seed,
            rules=None if rules is None else str(rules),
            progress=not quiet,
            steps=steps,
            check_folds=check_folds,
        )
        dropped = ", ".join(f"{k} {v}" for k, v in sorted(s["dropped"].items())) or "none"
        loss = s["final_loss"]
        typer.echo(
            f"{s['area']} {s['area_version']}: {s['patients']} patients, {s['candidates']} regimen changes, "
            f"{s['episodes']} episodes used (dropped: {dropped})"
        )
        typer.echo(
            f"{s['method']} fit in {s['fit_seconds']:.1f} s (reading {s['read_seconds']:.1f} s)"
            + ("" if loss is None else f", final loss {loss:.4f} per episode")
            + "".join(f", {k} {v:.3g}" for k, v in s["diagnostics"].items() if k != "final_loss")
        )
        fn = s.get("followup_noise")
        typer.echo(
            "follow-up spread around the patient's level: "
            + (
                f"SD {fn['var'] ** 0.5:.3g} (model scale) from {fn['pairs']} same-regimen lab pairs of "
                f"{fn['patients']} patients"
                if fn
                else "too few same-regimen lab pairs; the area's noise SD is used"
            )
        )
        chk = s.get("self_check") or {}
        if "coverage90" in chk:
            hist = " ".join(f"{h:.2f}" for h in chk["pit_hist"])
            typer.echo(
                f"self-check ({chk['folds']}-fold CV, {chk['episodes']} held-out follow-ups): 90% predictive "
                f"coverage {chk['coverage90']:.3f}, P(target) ECE {chk['ece_p_target']:.3f}, PIT [{hist}]"
            )
            for w in chk["warnings"]:
                typer.echo(f"warning: {w}", err=True)
        elif chk:
            typer.echo(f"self-check skipped: {chk['skipped']}", err=True)
        typer.echo(f"wrote {s['out']} (model + generator/)")
