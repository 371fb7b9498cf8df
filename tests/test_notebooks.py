"""The notebooks' sources and their stored copies agree.

Each notebook is edited as ``notebooks/NN_name.py`` (jupytext percent format) and stored, with its outputs,
as ``notebooks/NN_name.ipynb``. These tests check the pairing: every stored notebook has its source twin
and both hold the same cells (outputs and metadata are not compared). nbmake runs the .ipynb files
themselves (``pytest notebooks/``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

jupytext = pytest.importorskip("jupytext", reason="jupytext (a dev dependency) reads the notebook sources")

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
STORED = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
SOURCES = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.py"))


def cells(path: Path) -> list[tuple[str, str]]:
    """(cell type, source) of every cell, as jupytext reads the file (.ipynb or percent .py)."""
    return [(cell.cell_type, cell.source) for cell in jupytext.read(path).cells]


def test_the_notebooks_are_found():
    assert len(STORED) >= 10, f"expected notebooks 00-09 in {NOTEBOOKS}, found {[p.name for p in STORED]}"


def test_every_stored_notebook_has_its_source_and_back():
    assert [p.stem for p in STORED] == [p.stem for p in SOURCES], (
        "each notebooks/NN_name.ipynb needs its jupytext source notebooks/NN_name.py and vice versa; "
        "create a missing source with `jupytext --set-formats ipynb,py:percent notebooks/NN_name.ipynb`"
    )


@pytest.mark.parametrize("stored", STORED, ids=lambda p: p.stem)
def test_stored_notebook_is_paired_with_the_percent_source(stored: Path):
    formats = jupytext.read(stored).metadata.get("jupytext", {}).get("formats", "")
    assert set(formats.split(",")) == {"ipynb", "py:percent"}, (
        f"{stored.name}: jupytext formats metadata is {formats!r}, expected 'ipynb,py:percent' "
        "(so that Jupyter with jupytext keeps the .py source up to date)"
    )


@pytest.mark.parametrize("stored", STORED, ids=lambda p: p.stem)
def test_stored_notebook_has_the_cells_of_its_source(stored: Path):
    source = stored.with_suffix(".py")
    if not source.exists():
        pytest.fail(f"{stored.name} has no source {source.name}")
    have, want = cells(stored), cells(source)
    first = next((k for k, (a, b) in enumerate(zip(have, want)) if a != b), min(len(have), len(want)))
    assert have == want, (
        f"{stored.name} and {source.name} differ (first at cell {first}; {len(have)} vs {len(want)} cells). "
        f"Edit the .py, then update the stored notebook: `jupytext --to ipynb --update notebooks/{source.name}` "
        f"(keeps the outputs of unchanged cells), or re-execute it: `python notebooks/_freshness.py --execute "
        f"{stored.name[:2]}`"
    )
