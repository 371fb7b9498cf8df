"""The student copy (``minissd assignment make OUT``).

The copy is the teacher's checkout with every solution region replaced by a ``NotImplementedError``
stub, and nothing else that could hand out an answer:

* only files git tracks (``git ls-files``), so a teacher's scratch files, caches and virtual
  environments never travel; a folder that is not a git checkout is refused unless the caller asks for
  the exclude-list walk (``use_git=False``);
* none of :data:`EXCLUDED`: the teacher's tests of this tooling, hidden tests, the check that stored
  notebook outputs match the library (the copy strips outputs and changes the library), the benchmarks (a
  benchmark may carry a complete reference implementation, e.g. a PyTorch MultiBox loss), CI files;
* notebooks without stored outputs (an output can show an answer); exercise cells of nbgrader
  notebooks cleared, their solution versions written to a sibling folder, never into the copy;
* Markdown without its teacher notes.

The stubs are lint-clean (see :func:`minissd.classroom.markers.stub_lines`), so the copy passes the
project's own ``ruff check``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from .markers import (
    BEGIN_HIDDEN,
    BEGIN_MARKER,
    END_MARKER,
    SKIP_DIRS,
    check_registry,
    find_regions,
    is_exercise_notebook,
    scan_regions,
    split_notebook,
    strip_teacher_notes,
    stub_source,
)
from .registry import Assignment, names, select

#: Paths (relative to the root; a folder ends with "/") never copied into a student copy.
EXCLUDED = ("tests/hidden/", "tests/test_assignments.py", "tests/test_grader.py", "tests/test_notebooks.py",
            "benchmarks/", ".ci/", ".github/")
_LEAK_TEXTS = (BEGIN_MARKER.encode(), END_MARKER.encode(), BEGIN_HIDDEN.encode())


def repository_root() -> Path:
    """The checkout this minissd was imported from (the parent of the package folder)."""
    return Path(__file__).resolve().parents[2]


def excluded(rel: str) -> bool:
    """Whether the file ``rel`` (posix, relative to the root) stays out of a student copy."""
    parts = rel.split("/")
    if any(p in SKIP_DIRS or p.endswith(".egg-info") for p in parts[:-1]) or rel.endswith((".pyc", ".pyo")):
        return True
    return any(rel == x or (x.endswith("/") and rel.startswith(x)) for x in EXCLUDED)


def tracked_files(root: Path) -> list[str]:
    """The files git tracks in ``root`` (posix paths, sorted; deleted ones left out).

    Raises:
        ValueError: ``root`` is not the top folder of a git checkout, or git is not installed.
    """
    try:
        top = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=root, capture_output=True, text=True,
                             timeout=60)
        if top.returncode != 0 or Path(top.stdout.strip()).resolve() != root.resolve():
            raise ValueError(f"{root} is not the top folder of a git checkout")
        proc = subprocess.run(["git", "ls-files", "-z", "--cached"], cwd=root, capture_output=True, timeout=60)
    except FileNotFoundError:
        raise ValueError("git is not installed") from None
    if proc.returncode != 0:
        raise ValueError(f"git ls-files failed in {root}: {proc.stderr.decode(errors='replace').strip()}")
    files = [f for f in proc.stdout.decode("utf-8", errors="surrogateescape").split("\0") if f]
    return sorted(f for f in files if (root / f).is_file())


def walked_files(root: Path) -> list[str]:
    """Every file under ``root`` except caches and virtual environments (the fallback without git)."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        d = Path(dirpath)
        dirnames[:] = sorted(n for n in dirnames if n not in SKIP_DIRS and not n.endswith(".egg-info"))
        out.extend((d / f).relative_to(root).as_posix() for f in filenames)
    return sorted(out)


def copy_files(root: Path, use_git: bool = True) -> list[str]:
    """The files of ``root`` that a student copy holds (before their transformation)."""
    files = tracked_files(root) if use_git else walked_files(root)
    return [f for f in files if not excluded(f)]


def strip_outputs(nb: dict) -> dict:
    """``nb`` with every code cell's outputs and execution count cleared (in place, also returned)."""
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
    return nb


def student_version(root: Path, rel: str, chosen: Iterable[str] | None = None,
                    assignments: Sequence[Assignment] | None = None) -> bytes:
    """The bytes of file ``rel`` of ``root`` as the student copy holds it (all regions stubbed by default).

    Notebooks come back without outputs, exercise cells cleared; Markdown without teacher notes.
    """
    path = root / rel
    if rel.endswith(".py"):
        text = path.read_text(encoding="utf-8")
        if BEGIN_MARKER in text or END_MARKER in text:
            text = stub_source(text, rel, chosen, assignments)[0]
        return text.encode("utf-8")
    if rel.endswith(".ipynb"):
        nb = json.loads(path.read_text(encoding="utf-8"))
        if is_exercise_notebook(nb):
            nb = split_notebook(nb, rel)[0]
        return (json.dumps(strip_outputs(nb), indent=1, ensure_ascii=False) + "\n").encode("utf-8")
    if rel.endswith(".md"):
        return strip_teacher_notes(path.read_text(encoding="utf-8"), rel).encode("utf-8")
    return path.read_bytes()


@dataclasses.dataclass
class MakeReport:
    """What :func:`make_student_copy` wrote."""

    out: Path
    solutions: Path
    assignments: list[str]
    files: int = 0
    stripped: list[str] = dataclasses.field(default_factory=list)  # "path::function" per region replaced
    notebooks: list[str] = dataclasses.field(default_factory=list)  # exercise notebooks cleared

    def summary(self) -> str:
        lines = [f"student copy: {self.out} ({self.files} files)",
                 f"assignments: {', '.join(self.assignments)}",
                 f"regions replaced by NotImplementedError: {len(self.stripped)}",
                 f"exercise notebooks cleared: {len(self.notebooks)}"]
        if self.notebooks:
            lines.append(f"solution notebooks: {self.solutions}")
        return "\n".join(lines)


def _empty_or_missing(p: Path, what: str) -> None:
    if p.exists() and (not p.is_dir() or any(p.iterdir())):
        raise ValueError(f"{what} {p} already exists and is not an empty folder; choose another path")


def make_student_copy(out: str | os.PathLike[str], only: str | Iterable[str] | None = None,
                      source: str | os.PathLike[str] | None = None,
                      solutions: str | os.PathLike[str] | None = None,
                      assignments: Sequence[Assignment] | None = None, use_git: bool = True) -> MakeReport:
    """Write a student copy of the repository ``source`` (default: this checkout) to ``out``.

    Args:
        out: a new (or empty) folder for the copy.
        only: the assignments to remove ("a,b" or a list); the others keep their solutions. All if None.
        source: the repository to copy (it must hold the package and its tests).
        solutions: where the solution notebooks go; default: the sibling folder ``<out>-solutions``.
        assignments: the registry (tests pass their own).
        use_git: copy the files git tracks (default); False walks the folder instead (caches and
            virtual environments skipped), for a source that is not a git checkout.

    The copy is built in a temporary folder next to ``out`` and renamed at the end, so a failure leaves
    no half-made copy.

    Raises:
        ValueError: bad arguments, an existing non-empty ``out``, a source that is not a git checkout
            (with ``use_git``), or a solution marker problem.
        RuntimeError: if marker text would still be in the copy (nothing is written then).
    """
    src = Path(source).resolve() if source is not None else repository_root()
    if not (src / "minissd").is_dir() or not (src / "tests").is_dir():
        raise ValueError(f"make: {src} is not a minissd checkout (it needs minissd/ and tests/)")
    chosen = [a.name for a in select(only, assignments)]
    out_p = Path(out).resolve()
    sol_p = Path(solutions).resolve() if solutions is not None else out_p.with_name(out_p.name + "-solutions")
    if out_p == src or src in out_p.parents and out_p.relative_to(src).parts[0] in {"minissd", "tests"}:
        raise ValueError(f"make: the copy {out_p} cannot go inside the package or tests of {src}")
    _empty_or_missing(out_p, "make: the output folder")
    _empty_or_missing(sol_p, "make: the solutions folder")
    # validate every marker of the source first, so that a mistake stops before anything is written
    problems = check_registry(scan_regions(src, names(assignments)), assignments)
    if problems:
        raise ValueError("make: the solution markers do not match the registry:\n  " + "\n  ".join(problems))
    try:
        files = copy_files(src, use_git)
    except ValueError as exc:
        raise ValueError(f"make: {exc}; commit the files to hand out, or pass --no-git to copy the folder "
                         "minus caches") from None
    inside = [p for p in (out_p, sol_p) if src in p.parents]
    files = [f for f in files if not any(src / f == p or p in (src / f).parents for p in inside)]

    report = MakeReport(out=out_p, solutions=sol_p, assignments=chosen)
    out_p.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_p.name}-", dir=out_p.parent))
    copy, tmp_sol = tmp / "copy", tmp / ".solutions"
    try:
        for rel in files:
            d = copy / rel
            d.parent.mkdir(parents=True, exist_ok=True)
            if rel.endswith(".py"):
                text = (src / rel).read_text(encoding="utf-8")
                if BEGIN_MARKER in text or END_MARKER in text:
                    report.stripped += [r.path + "::" + r.function
                                        for r in find_regions(text, rel, names(assignments)) if r.assignment in chosen]
            elif rel.endswith(".ipynb"):
                nb = json.loads((src / rel).read_text(encoding="utf-8"))
                if is_exercise_notebook(nb):
                    k = tmp_sol / rel
                    k.parent.mkdir(parents=True, exist_ok=True)
                    solution = split_notebook(nb, rel)[1]
                    k.write_text(json.dumps(solution, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
                    report.notebooks.append(rel)
            d.write_bytes(student_version(src, rel, chosen, assignments))
            if not rel.endswith((".py", ".ipynb", ".md")):
                shutil.copystat(src / rel, d)  # keeps the executable bit of scripts
            report.files += 1
        leaks = [str(p.relative_to(copy)) for p in sorted(copy.rglob("*"))
                 if p.is_file() and any(t in p.read_bytes() for t in _LEAK_TEXTS)]
        if leaks:
            raise RuntimeError("make: marker text would remain in the student copy (nothing written): "
                               + ", ".join(leaks))
        if out_p.exists():
            out_p.rmdir()
        copy.rename(out_p)
        if report.notebooks:
            if sol_p.exists():
                sol_p.rmdir()
            shutil.move(str(tmp_sol), str(sol_p))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return report
