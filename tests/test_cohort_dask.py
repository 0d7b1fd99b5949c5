"""``planner cohort run`` on a real dask.distributed LocalCluster gives exactly the local run's rows."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

distributed = pytest.importorskip("distributed")

from planner.cohort import read_results, run_cohort  # noqa: E402


@pytest.mark.slow
def test_dask_run_equals_local_run(tmp_path: Path) -> None:
    from planner.areas import load_area
    from planner.simulate import simulate_cohort

    simulate_cohort(load_area("t2d"), 8, seed=11).write_fhir(str(tmp_path / "sim"))
    src = tmp_path / "sim" / "fhir"
    (src / "zz-broken.json").write_text("{ not json", encoding="utf-8")
    local = run_cohort(src, area="t2d", out=tmp_path / "local", at="all", batch_size=3)
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, host="127.0.0.1"
    ) as cluster:
        with distributed.Client(cluster) as client:

            def profiling() -> set[bool]:  # whether each worker's statistical profiler is running
                on = client.run(lambda dask_worker: dask_worker.periodic_callbacks["profile"].is_running())
                return set(on.values())

            during: list[set[bool]] = []
            assert profiling() == {True}
            # by address, as `planner cohort run --scheduler tcp://...` does
            remote = run_cohort(
                src,
                area="t2d",
                out=tmp_path / "dask",
                at="all",
                batch_size=3,
                scheduler=cluster.scheduler_address,
                on_batch=lambda _: during.append(profiling()),
            )
            assert during and all(d == {False} for d in during)  # paused while the run plans (1.8 ms a patient)
            assert profiling() == {True}  # and running again after it
            loads = client.run(lambda: __import__("planner.cohort.run", fromlist=["_PLANNERS"])._PLANNERS.__len__())
    assert remote.units == local.units == 9
    assert all(v <= 1 for v in loads.values()) and sum(loads.values()) >= 1  # loaded once per worker
    a = read_results(tmp_path / "local").sort_values(["unit", "patient_id", "point"]).reset_index(drop=True)
    b = read_results(tmp_path / "dask").sort_values(["unit", "patient_id", "point"]).reset_index(drop=True)
    assert (a.status == "error").sum() == 1
    pd.testing.assert_frame_equal(a, b)
