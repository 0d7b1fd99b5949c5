"""Every notebook under notebooks/ executes top to bottom (a real kernel, via nbclient).

Skipped, not failed, where the ``notebooks`` extra (nbformat, nbclient, ipykernel) is not installed."""

from __future__ import annotations

from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="the notebooks extra is not installed: pip install -e '.[notebooks]'")
nbclient = pytest.importorskip("nbclient", reason="the notebooks extra is not installed: pip install -e '.[notebooks]'")
pytest.importorskip("ipykernel", reason="the notebooks extra is not installed: pip install -e '.[notebooks]'")

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))
# what a notebook must show besides running cleanly (a notebook not listed: at least one output)
SHOWS = {"clinician_review.ipynb": ("text/html", "image/png")}

pytestmark = pytest.mark.slow  # a kernel per notebook; CI runs them, the fast lane does not


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_executes(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    )
    client.execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    errors = [o for o in outputs if o.get("output_type") == "error"]
    assert not errors, [f"{e.get('ename')}: {e.get('evalue')}" for e in errors]
    assert outputs, f"{path.name} shows nothing"
    for mime in SHOWS.get(path.name, ()):
        assert any(mime in o.get("data", {}) for o in outputs), f"{path.name} should show {mime}"


def test_there_is_a_notebook() -> None:
    assert NOTEBOOKS
