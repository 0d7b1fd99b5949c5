"""``planner recommend`` on an input of several patients: a patient that fails is reported on stderr by its
position (never its identifiers) with the error's class and message, the others are still printed, and the
exit code is 3."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from planner.api import Planner
from planner.cli import main
from planner.errors import ModelError
from planner.testing import BundleBuilder

IDS = ("pa-7f3c", "pb-91d2", "pc-0b44")


def _ndjson(tmp_path: Path) -> Path:
    lines = []
    for pid in IDS:
        b = BundleBuilder(patient_id=pid, birth_date="1958-03-01", sex="female")
        b.condition("44054006", onset="2015-01-01")
        b.medication("metformin", dose_mg_day=1000, start="2023-01-01")
        b.observation("hba1c", 8.2, date="2024-01-05")
        lines += [json.dumps(e["resource"]) for e in b.build()["entry"]]
    f = tmp_path / "three.ndjson"
    f.write_text("\n".join(lines) + "\n")
    return f


@pytest.fixture()
def fail_second(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fault injection: the pipeline raises for the second patient only (no input makes today's pipeline
    fail for one patient of several; the reporting must hold when one does)."""
    real = Planner._recommend

    def _recommend(self, record, area_id, **kw):  # type: ignore[no-untyped-def]
        if record.patient_id == IDS[1]:
            raise ModelError(f"posterior draws unreadable for Patient/{IDS[1]}", field="draws")
        return real(self, record, area_id, **kw)

    monkeypatch.setattr(Planner, "_recommend", _recommend)


def test_failed_patient_is_reported_by_position_and_the_rest_printed(tmp_path, capsys, fail_second) -> None:
    f = _ndjson(tmp_path)
    code = main(["recommend", str(f), "--area", "t2d", "--format", "json"])
    out, err = capsys.readouterr()
    assert code == 3
    docs = json.loads(out)
    assert sorted(d["patient_id"] for d in docs) == [IDS[0], IDS[2]]
    lines = err.strip().splitlines()
    assert lines[0] == ("patient 2 of 3: ModelError: draws: posterior draws unreadable for Patient/<patient>"), err
    assert "1 of 3 patients failed" in lines[-1] and "exit code 3" in lines[-1]
    assert IDS[1] not in err and "Traceback" not in err


def test_table_format_prints_the_others_too(tmp_path, capsys, fail_second) -> None:
    f = _ndjson(tmp_path)
    code = main(["recommend", str(f), "--area", "t2d"])
    out, err = capsys.readouterr()
    assert code == 3 and out.count("Ranked plans") == 2  # the first and the third patient
    assert "patient 2 of 3: ModelError" in err and IDS[1] not in err + out


def test_all_patients_fine_exit_zero_and_one_patient_error_is_unchanged(tmp_path, capsys, monkeypatch) -> None:
    f = _ndjson(tmp_path)
    code = main(["recommend", str(f), "--area", "t2d", "--format", "json"])
    out, err = capsys.readouterr()
    assert code == 0 and len(json.loads(out)) == 3 and "failed" not in err
    # one patient (--patient): an error is the command's error (exit 2), as before
    real = Planner._recommend

    def boom(self, record, area_id, **kw):  # type: ignore[no-untyped-def]
        raise ModelError("posterior draws unreadable", field="draws")

    monkeypatch.setattr(Planner, "_recommend", boom)
    code = main(["recommend", str(f), "--area", "t2d", "--patient", IDS[0]])
    _, err = capsys.readouterr()
    assert code == 2 and err.startswith("error: draws: posterior draws unreadable")
    monkeypatch.setattr(Planner, "_recommend", real)


def test_table_of_several_patients_names_whose_plans_each_block_is(tmp_path, capsys) -> None:
    # a Bulk export or NDJSON of several patients: without a heading the blocks cannot be told apart
    f = _ndjson(tmp_path)
    code = main(["recommend", str(f), "--area", "t2d", "--top", "1"])
    out, _ = capsys.readouterr()
    assert code == 0
    heads = [line for line in out.splitlines() if line.startswith("Patient ")]
    assert heads == [f"Patient {pid} ({i} of 3 in the input)" for i, pid in enumerate(IDS, start=1)]
    assert out.index(heads[1]) < out.index("Ranked plans", out.index(heads[1]))
