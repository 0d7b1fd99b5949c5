"""CPU per patient of the ranking stage, the stage hand-offs and ``Planner.recommend_many``, optionally A/B.

On ``--patients`` simulated patients of ``--area`` (``planner.simulate``, seed 0), recommended in batches of
``--batch`` by one warm :class:`~planner.Planner` (one batch first to warm it), it prints CPU milliseconds per
patient (``time.process_time``; the best of ``--repeat`` passes) of

* ``recommend_many``: the whole batch call (read, features, candidates, screening, draws, ranking, report);
* ``rank_plans``: the ranking stage alone, replaying the calls the batches made (the same draws and candidates);
* ``handoffs``: ``FeatureRow.frame()`` as the stages ask for it (each row as often as the batches asked, on a
  fresh copy of the row: nothing kept from a previous pass) plus ``Regimen.key()``/``.ingredients`` as the
  stages ask for them (each candidate regimen as often as the batches asked, on a fresh copy);

with the 1-minute load average, because the machine is shared and the figures move with it.

``--against TREE`` also runs the same measurement with the planner package of another source tree (a checkout
or ``git archive`` of an older commit: ``TREE/planner``), in alternating fresh processes (A, B, A, B, ...;
``--rounds`` each), and prints the median of each and the ratio (this tree / that one): the baseline is measured
in the same run, on the same machine load.

Usage: ``python benchmarks/ranking.py [--area t2d] [--patients 128] [--batch 32] [--repeat 3] [--rounds 3]
[--against /path/to/old/tree]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FIGURES = ("recommend_many", "rank_plans", "handoffs")


def _measure(area: str, n: int, batch: int, repeat: int) -> dict[str, float]:
    """The figures of one process (the planner package on ``sys.path`` is the one measured)."""
    from planner import Planner
    from planner import rank as rank_mod
    from planner.areas import load_area
    from planner.handoffs import FeatureRow
    from planner.record import Regimen
    from planner.simulate import simulate_cohort

    tmp = Path(tempfile.mkdtemp(prefix="bench-ranking-"))
    simulate_cohort(load_area(area), n, seed=0).write_fhir(str(tmp))
    bundles = sorted((tmp / "fhir").glob("*.json"))
    planner = Planner.load()

    def run_all() -> None:
        for i in range(0, n, batch):
            planner.recommend_many(bundles[i : i + batch], area=area, errors="return")

    # one pass that records what the stages ask for (the timed passes run unwrapped)
    calls: list[dict[str, Any]] = []
    rows: dict[int, tuple[FeatureRow, int]] = {}
    regs: dict[int, tuple[Regimen, int]] = {}
    asked: Counter[str] = Counter()
    orig_rank, orig_frame, orig_key = rank_mod.rank_plans, FeatureRow.frame, Regimen.key
    orig_ingredients = Regimen.ingredients

    def rank_spy(**kw: Any) -> Any:
        calls.append(kw)
        return orig_rank(**kw)

    def frame_spy(self: FeatureRow) -> Any:
        rows[id(self)] = (self, rows.get(id(self), (self, 0))[1] + 1)
        return orig_frame(self)

    def key_spy(self: Regimen) -> str:
        regs[id(self)] = (self, regs.get(id(self), (self, 0))[1] + 1)
        asked["key"] += 1
        return orig_key(self)

    def ingredients_spy(self: Regimen) -> tuple[str, ...]:
        asked["ingredients"] += 1
        return orig_ingredients.fget(self)  # type: ignore[attr-defined,no-any-return]

    rank_mod.rank_plans = rank_spy  # type: ignore[assignment]
    FeatureRow.frame = frame_spy  # type: ignore[method-assign]
    Regimen.key = key_spy  # type: ignore[method-assign]
    Regimen.ingredients = property(ingredients_spy)  # type: ignore[method-assign,assignment]
    try:
        run_all()
    finally:
        rank_mod.rank_plans = orig_rank  # type: ignore[assignment]
        FeatureRow.frame = orig_frame  # type: ignore[method-assign]
        Regimen.key = orig_key  # type: ignore[method-assign]
        Regimen.ingredients = orig_ingredients  # type: ignore[method-assign]
    per_key = asked["ingredients"] / max(asked["key"], 1)  # .ingredients asked per key() asked, on average

    def best(f: Any) -> float:
        out = []
        for _ in range(repeat):
            t0 = time.process_time()
            f()
            out.append(time.process_time() - t0)
        return 1000 * min(out) / n

    def replay_rank() -> None:
        for kw in calls:
            orig_rank(**kw)

    def replay_handoffs() -> None:
        for row, k in rows.values():
            fresh = FeatureRow.model_construct(**dict(row))
            for _ in range(k):
                fresh.frame()
        m = int(round(per_key))
        for reg, k in regs.values():
            fresh_reg = Regimen.model_construct(drugs=reg.drugs)
            for _ in range(k):
                fresh_reg.key()
                for _ in range(m):
                    fresh_reg.ingredients  # noqa: B018 - the property is what is timed

    return {
        "recommend_many": best(run_all),
        "rank_plans": best(replay_rank),
        "handoffs": best(replay_handoffs),
        "load": os.getloadavg()[0],
    }


def _child(tree: Path, args: argparse.Namespace) -> dict[str, float]:
    env = dict(os.environ, PYTHONPATH=str(tree))
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", "--area", args.area]
    cmd += ["--patients", str(args.patients), "--batch", str(args.batch), "--repeat", str(args.repeat)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"the measurement with {tree} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--area", default="t2d")
    ap.add_argument("--patients", type=int, default=128)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=3, help="timed passes per process (the best is kept)")
    ap.add_argument("--rounds", type=int, default=3, help="fresh processes per tree")
    ap.add_argument("--against", type=Path, default=None, help="another source tree (its planner/) to compare")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(_measure(args.area, args.patients, args.batch, args.repeat)))
        return
    trees = {"this": ROOT} | ({"against": args.against.resolve()} if args.against else {})
    if args.against is not None and not (args.against / "planner" / "__init__.py").is_file():
        raise SystemExit(f"--against {args.against}: no planner package there (expected TREE/planner/__init__.py)")
    got: dict[str, list[dict[str, float]]] = {k: [] for k in trees}
    for _ in range(args.rounds):
        for name, tree in trees.items():  # alternating fresh processes
            got[name].append(_child(tree, args))
    print(f"{args.area}: {args.patients} simulated patients, batches of {args.batch}; CPU ms per patient")
    print(f"(median of {args.rounds} fresh processes, best of {args.repeat} passes each; shared machine: noisy)")
    med = {k: {f: statistics.median(r[f] for r in v) for f in (*FIGURES, "load")} for k, v in got.items()}
    for f in FIGURES:
        line = f"  {f:15s} this {med['this'][f]:7.3f}"
        if "against" in med:
            a = med["against"][f]
            line += f"   against {a:7.3f}   ratio {med['this'][f] / a:.2f}"
        print(line)
    print("  load average (1 min) " + ", ".join(f"{r['load']:.2f}" for v in got.values() for r in v))


if __name__ == "__main__":
    main()
