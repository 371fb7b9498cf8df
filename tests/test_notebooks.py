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


# ---------------------------------------------------------------------------------------------- freshness
def _load_freshness():
    import importlib.util

    spec = importlib.util.spec_from_file_location("notebook_freshness", NOTEBOOKS / "_freshness.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


freshness = _load_freshness()

PERCENT = """# %% [markdown]
# # A notebook

# %%
x = 1 + 1
print(x)
"""


def _package(root: Path) -> Path:
    """A small stand-in for the minissd folder: sources, weights, a classroom and a byte-code cache."""
    pkg = root / "minissd"
    for rel, text in {
        "__init__.py": "",
        "boxes.py": "def iou(): ...\n",
        "nn/conv.py": "def conv2d(): ...\n",
        "weights/ssd_mini.npz": "weights v1",
        "classroom/grade.py": "def grade(): ...\n",
        "__pycache__/boxes.cpython-311.pyc": "bytecode",
        "README.md": "not a source",
    }.items():
        (pkg / rel).parent.mkdir(parents=True, exist_ok=True)
        (pkg / rel).write_text(text)
    return pkg


def test_library_files_are_the_sources_and_weights_without_the_classroom(tmp_path):
    pkg = _package(tmp_path)
    names = [p.relative_to(pkg).as_posix() for p in freshness.library_files(pkg)]
    assert names == ["__init__.py", "boxes.py", "nn/conv.py", "weights/ssd_mini.npz"]


def test_the_real_library_fingerprint_covers_the_package():
    names = {p.relative_to(freshness.PACKAGE).as_posix() for p in freshness.library_files()}
    assert {"__init__.py", "boxes.py", "priors.py"} <= names
    assert any(n.startswith("weights/") for n in names), "the shipped weights change notebooks 07-09's outputs"
    assert not any(n.startswith("classroom/") for n in names)


@pytest.mark.parametrize(
    "change",
    [
        lambda pkg: (pkg / "boxes.py").write_text("def iou(): return 1\n"),
        lambda pkg: (pkg / "nn/conv.py").write_text("def conv2d(): ...\n\n"),  # one more byte
        lambda pkg: (pkg / "weights/ssd_mini.npz").write_text("weights v2"),
        lambda pkg: (pkg / "nms.py").write_text("def nms(): ...\n"),  # a new module
        lambda pkg: (pkg / "nn/conv.py").unlink(),
        lambda pkg: (pkg / "nn/conv.py").rename(pkg / "nn/convolution.py"),  # same bytes, another name
    ],
    ids=["edit", "append", "weights", "new file", "deleted file", "rename"],
)
def test_changing_the_library_changes_its_fingerprint(tmp_path, change):
    pkg = _package(tmp_path)
    before = freshness.library_fingerprint(pkg)
    assert freshness.library_fingerprint(pkg) == before  # deterministic
    change(pkg)
    assert freshness.library_fingerprint(pkg) != before


@pytest.mark.parametrize(
    "change",
    [
        lambda pkg: (pkg / "classroom/grade.py").write_text("def grade(): return 0\n"),
        lambda pkg: (pkg / "__pycache__/boxes.cpython-311.pyc").write_text("other bytecode"),
        lambda pkg: (pkg / "README.md").write_text("edited"),
    ],
    ids=["classroom", "pycache", "non-source"],
)
def test_files_that_cannot_change_an_output_leave_the_fingerprint(tmp_path, change):
    pkg = _package(tmp_path)
    before = freshness.library_fingerprint(pkg)
    change(pkg)
    assert freshness.library_fingerprint(pkg) == before


def _paired(tmp_path: Path, text: str = PERCENT) -> tuple[Path, Path]:
    source = tmp_path / "00_demo.py"
    source.write_text(text)
    stored = source.with_suffix(".ipynb")
    jupytext.write(jupytext.read(source), stored)
    return source, stored


def test_source_fingerprint_follows_the_cells_not_the_outputs(tmp_path):
    import nbformat

    source, stored = _paired(tmp_path)
    assert freshness.source_fingerprint(source) == freshness.source_fingerprint(stored)
    nb = nbformat.read(stored, as_version=4)
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", text="2\n")]
    nb.cells[1].execution_count = 1
    nbformat.write(nb, stored)
    assert freshness.source_fingerprint(stored) == freshness.source_fingerprint(source)
    before = freshness.source_fingerprint(source)
    source.write_text(PERCENT.replace("1 + 1", "1 + 2"))
    assert freshness.source_fingerprint(source) != before
    source.write_text(PERCENT.replace("# %% [markdown]\n# # A notebook", "# %%\n# # A notebook"))
    assert freshness.source_fingerprint(source) != before, "a markdown cell turned into code is a change"


def test_staleness_of_a_stamped_notebook(tmp_path):
    import nbformat

    pkg = _package(tmp_path)
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    source, stored = _paired(notebooks)
    assert "never stamped" in freshness.staleness(stored, pkg)

    nb = nbformat.read(stored, as_version=4)
    nb.metadata[freshness.STAMP] = freshness.stamp_of(freshness.library_fingerprint(pkg),
                                                      freshness.source_fingerprint(source))
    nbformat.write(nb, stored)
    assert freshness.staleness(stored, pkg) is None
    assert freshness.stale_notebooks(notebooks, pkg) == {}

    (pkg / "boxes.py").write_text("def iou(): return 2\n")
    assert freshness.staleness(stored, pkg) == "the library changed since it was executed"
    source.write_text(PERCENT.replace("print(x)", "print(x * 2)"))
    assert freshness.stale_notebooks(notebooks, pkg) == {
        "00_demo.ipynb": "the library changed since it was executed; 00_demo.py changed since it was executed"
    }


def test_stored_notebooks_were_executed_against_the_current_library():
    stale = freshness.stale_notebooks()
    names = " ".join(sorted({name[:2] for name in stale}))
    assert not stale, (
        "stored notebook outputs are stale:\n"
        + "\n".join(f"  {name}: {reason}" for name, reason in stale.items())
        + f"\nre-execute them (full setting, minutes each) with: {freshness.COMMAND} {names}"
    )


@pytest.mark.parametrize("stored", STORED, ids=lambda p: p.stem)
def test_stored_notebook_stays_under_2_mb(stored: Path):
    size = stored.stat().st_size
    assert size < 2_000_000, (
        f"{stored.name} is {size / 1e6:.2f} MB; keep a stored notebook under 2 MB (show photo-like figures "
        "with the notebook's show_jpeg, lower a figure's size)"
    )
