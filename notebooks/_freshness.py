"""Execute the notebooks in their full setting and stamp what they ran against; find the stale ones.

The stored outputs of ``notebooks/NN_name.ipynb`` are only true of the library they were computed with. When
a notebook is executed here, its metadata gets a stamp (``metadata["minissd"]``): a SHA-256 of the library
sources (``minissd/**/*.py`` and ``minissd/weights/*``, not ``minissd/classroom/``, which never changes an
output) and a SHA-256 of the notebook's own cells, read from its jupytext source ``NN_name.py``. A notebook is
*stale* when either differs from the current files; ``tests/test_notebooks.py`` fails on stale notebooks.

Usage (from the repository root)::

    python notebooks/_freshness.py                    # list the stale notebooks (exit status 1 if any)
    python notebooks/_freshness.py --execute          # execute every notebook from its .py, stamp, store
    python notebooks/_freshness.py --execute 07 08    # only some (names starting with 07, 08)

``--execute`` runs each notebook top to bottom in a fresh ``python3`` kernel with ``MINISSD_FAST`` unset (the
stored outputs are the full setting; CI runs the small one) and this checkout's ``minissd`` first on the path.

This file sits next to the notebooks rather than in ``minissd/``: it is tooling for the stored notebooks, not
part of the detector, and the installed package never needs it.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

NOTEBOOKS = Path(__file__).resolve().parent
ROOT = NOTEBOOKS.parent
PACKAGE = ROOT / "minissd"
EXCLUDED = ("classroom",)  # package subfolders that never change a notebook's output
STAMP = "minissd"  # the notebook metadata key
FORMATS = "ipynb,py:percent"
COMMAND = "python notebooks/_freshness.py --execute"


def library_files(package: Path = PACKAGE) -> list[Path]:
    """The files whose contents a notebook's outputs depend on: every ``*.py`` and every ``weights/*`` file
    under ``package``, except those under the ``EXCLUDED`` subfolders; sorted by relative path."""
    files = [p for p in package.rglob("*.py") if "__pycache__" not in p.parts]
    weights = package / "weights"
    if weights.is_dir():
        files += [p for p in weights.iterdir() if p.is_file() and p.suffix != ".py"]
    kept = [p for p in files if p.relative_to(package).parts[0] not in EXCLUDED]
    return sorted(kept, key=lambda p: p.relative_to(package).as_posix())


def library_fingerprint(package: Path = PACKAGE) -> str:
    """SHA-256 (hex) over the relative path, size and bytes of every file of ``library_files(package)``, so
    that an edit, a new file, a deleted file or a rename all change it."""
    if not package.is_dir():
        raise FileNotFoundError(f"package: expected the minissd package folder, got {package} (not a folder)")
    digest = hashlib.sha256()
    for path in library_files(package):
        data = path.read_bytes()
        digest.update(f"{path.relative_to(package).as_posix()}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()


def notebook_cells(path: Path) -> list[tuple[str, str]]:
    """(cell type, source) of every cell of a notebook, read by jupytext from its .py or .ipynb."""
    import jupytext

    return [(cell.cell_type, cell.source) for cell in jupytext.read(path).cells]


def source_fingerprint(path: Path) -> str:
    """SHA-256 (hex) over a notebook's cell types and sources: the same for a .py and its paired .ipynb,
    blind to outputs, execution counts and metadata."""
    digest = hashlib.sha256()
    for cell_type, source in notebook_cells(path):
        data = source.encode()
        digest.update(f"{cell_type}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()


def stamp_of(library: str, source: str, seconds: float | None = None) -> dict:
    """The metadata a fresh notebook carries; ``seconds`` (how long the run took) is a record, never compared."""
    stamp = {"library_sha256": library, "source_sha256": source, "setting": "full"}
    if seconds is not None:
        stamp["seconds"] = round(seconds)
    return stamp


def staleness(stored: Path, package: Path = PACKAGE, library: str | None = None) -> str | None:
    """Why the outputs stored in ``stored`` (an .ipynb) may be out of date, or None when they are fresh:
    its stamp must name the current library (``package``) and the cells of its source ``stored.with_suffix('.py')``.
    """
    import nbformat

    source = stored.with_suffix(".py")
    if not source.exists():
        return f"no source {source.name}"
    stamp = nbformat.read(stored, as_version=4).metadata.get(STAMP)
    if not stamp:
        return "never stamped (executed before freshness stamps existed)"
    reasons = []
    if stamp.get("setting") != "full":
        reasons.append(f"executed in the {stamp.get('setting')!r} setting, not the full one")
    if stamp.get("library_sha256") != (library or library_fingerprint(package)):
        reasons.append("the library changed since it was executed")
    if stamp.get("source_sha256") != source_fingerprint(source):
        reasons.append(f"{source.name} changed since it was executed")
    return "; ".join(reasons) or None


def stale_notebooks(notebooks: Path = NOTEBOOKS, package: Path = PACKAGE) -> dict[str, str]:
    """{notebook file name: reason} for every stale ``NN_*.ipynb`` in ``notebooks``."""
    library = library_fingerprint(package)
    found = {}
    for stored in sorted(notebooks.glob("[0-9][0-9]_*.ipynb")):
        reason = staleness(stored, package, library)
        if reason:
            found[stored.name] = reason
    return found


@contextlib.contextmanager
def _full_setting_environment() -> Iterator[None]:
    """The kernel inherits this environment: MINISSD_FAST unset (the full setting), MPLBACKEND unset (a
    headless shell's Agg would keep the figures out of the outputs), this checkout's minissd first."""
    saved = dict(os.environ)
    os.environ.pop("MINISSD_FAST", None)
    os.environ.pop("MPLBACKEND", None)
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), saved.get("PYTHONPATH")) if p)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def execute(source: Path, timeout: int = 900) -> float:
    """Run the notebook of ``source`` (a percent .py) top to bottom in the full setting, stamp it and write
    it to the paired .ipynb (outputs included); returns the seconds the run took."""
    import jupytext
    import nbformat
    from nbclient import NotebookClient

    library = library_fingerprint()
    nb = jupytext.read(source)
    nb.metadata["jupytext"] = {"formats": FORMATS}
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    for k, cell in enumerate(nb.cells):
        cell.id = f"{source.name[:2]}-{k:02d}"  # stable ids: re-executing gives a small diff
    with _full_setting_environment():
        t0 = time.perf_counter()
        NotebookClient(nb, timeout=timeout, kernel_name="python3", record_timing=False,
                       resources={"metadata": {"path": str(source.parent)}}).execute()
        seconds = time.perf_counter() - t0
    if library_fingerprint() != library:
        raise RuntimeError(f"{source.name}: the library changed while the notebook ran; not stamped, run again")
    nb.metadata[STAMP] = stamp_of(library, source_fingerprint(source), seconds)
    nbformat.write(nb, source.with_suffix(".ipynb"))
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--execute", action="store_true", help="execute (full setting), stamp and store")
    parser.add_argument("--timeout", type=int, default=900, help="seconds allowed per cell (default 900)")
    parser.add_argument("names", nargs="*", help="notebook name prefixes, e.g. 07 08 (default: all)")
    args = parser.parse_args(argv)
    sources = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.py"))
    chosen = [s for s in sources if not args.names or any(s.name.startswith(n) for n in args.names)]
    if args.names and not chosen:
        parser.error(f"names: no notebook starts with {args.names}; have {[s.stem for s in sources]}")
    if args.execute:
        for source in chosen:
            seconds = execute(source, args.timeout)
            size = source.with_suffix(".ipynb").stat().st_size / 1e6
            print(f"{source.with_suffix('.ipynb').name}: executed in {seconds:.0f} s, {size:.2f} MB", flush=True)
        return 0
    stale = {k: v for k, v in stale_notebooks().items() if any(k.startswith(s.stem) for s in chosen)}
    for name, reason in stale.items():
        print(f"{name}: {reason}")
    if stale:
        print(f"re-execute with: {COMMAND} {' '.join(sorted({n[:2] for n in stale}))}")
    else:
        print("every notebook is fresh")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
