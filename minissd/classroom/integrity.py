"""The integrity check: did a submission change anything outside its solution regions?

The submission is compared file by file with the teacher's reference, both normalised to the student
copy: on the reference side every region is replaced by its stub (what ``make`` wrote), and on the
submission side the lines that took the place of a stub are the student's answer and may be anything,
as long as they stay inside the function the region belongs to (indented at least like the stub, and
inside that same function when the file is parsed). Every other difference is reported with its file
and line.

What the grader does with a difference is its rule (see ``docs/assignments.md``): a file holding regions
of some assignments costs those assignments; any other package file (imported by every test, like
``minissd/__init__.py``) costs every assignment; the tests folder is only flagged, since grading runs
the teacher's tests anyway. Files added to the package are flagged and left out of the package under
test, so they cannot shadow a module.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Sequence
from pathlib import Path

from .make import copy_files, student_version
from .markers import BEGIN_MARKER, END_MARKER, SKIP_DIRS, Stub, _functions_by_line, parse_source, stub_source
from .registry import Assignment

#: The folders whose files are compared (the package and the tests); other files (notebooks, docs)
#: are the student's to change.
COMPARED = ("minissd/", "tests/")


@dataclasses.dataclass(frozen=True)
class Difference:
    """One difference between a submission and the reference, outside the solution regions.

    Attributes:
        path: the file, relative to the root (posix).
        line: the line of the submission where it starts (1-based; 0 for a whole file).
        kind: "changed", "missing" (the submission lacks the file) or "added" (the reference lacks it).
        text: the first differing line of the submission (or of the reference for a removal), stripped.
    """

    path: str
    line: int
    kind: str
    text: str = ""

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        what = {"changed": "changed outside the solution regions", "missing": "missing",
                "added": "added (not part of the package under test)"}[self.kind]
        return f"{where} {what}" + (f": {self.text[:80]!r}" if self.text else "")


def reference_files(reference: Path) -> list[str]:
    """The reference files that a submission is compared with (package and tests of the student copy)."""
    try:
        files = copy_files(reference, use_git=True)
    except ValueError:  # not a git checkout (e.g. a student grading their own copy): walk it
        files = copy_files(reference, use_git=False)
    return [f for f in files if f.startswith(COMPARED)]


def _norm(line: str) -> str:
    return line.rstrip()


def compare_python(base: str, stubs: Sequence[Stub], sub: str, path: str) -> list[Difference]:
    """Differences between the student version ``base`` (with ``stubs``) and a submitted file ``sub``."""
    a = [_norm(x) for x in base.splitlines()]
    b = [_norm(x) for x in sub.splitlines()]
    sm = difflib.SequenceMatcher(None, a, b, autojunk=False)
    out: list[Difference] = []
    answers: list[tuple[Stub, int, int]] = []  # (stub, first, end) lines of the submission
    for tag, i1, i2, j1, j2 in sm.get_opcodes():
        if tag == "equal":
            continue
        stub = next((s for s in stubs if s.start <= i1 and i2 <= s.end and (i1 < s.end or i1 == i2)), None)
        if stub is not None:
            ind = stub.region.indent
            bad = next((j for j in range(j1, j2) if b[j].strip() and not b[j].startswith(ind)), None)
            if bad is None:
                answers.append((stub, j1, j2))
                continue
            out.append(Difference(path, bad + 1, "changed", b[bad].strip()))
            continue
        j = j1 if j1 < j2 else max(j1 - 1, 0)
        text = b[j1].strip() if j1 < j2 else (a[i1].strip() if i1 < len(a) else "")
        out.append(Difference(path, j + 1, "changed", text))
    if out or not answers:
        return out
    # the answer must stay in its function: a string opened in one region and closed in the next
    # would otherwise turn the reference code between them into data
    try:
        tree = parse_source(sub)
    except SyntaxError:
        return out  # the file cannot be imported: its tests fail on their own, nothing to gain
    functions = _functions_by_line(tree)
    for stub, j1, j2 in answers:
        code = [j for j in range(j1, j2) if b[j].strip() and not b[j].lstrip().startswith("#")]
        if not code:
            continue
        first, last = code[0] + 1, code[-1] + 1  # 1-based, as in the AST
        inside = [f for f in functions if f[0] < first and last <= f[1]]
        qual = max(inside, key=lambda f: f[0])[2] if inside else None
        if qual != stub.region.function:
            out.append(Difference(path, j1 + 1, "changed",
                                  f"the answer for {stub.region.function} does not stay inside it"))
    return out


def compare(submission: Path, reference: Path, assignments: Sequence[Assignment] | None = None,
            files: Sequence[str] | None = None) -> list[Difference]:
    """Every difference of ``submission`` from ``reference`` outside the solution regions.

    ``files`` are the reference files to compare (default: :func:`reference_files`). Files the
    submission adds to the package are reported as "added"; caches are ignored.
    """
    files = reference_files(reference) if files is None else list(files)
    out: list[Difference] = []
    for rel in files:
        s = submission / rel
        if not s.is_file():
            out.append(Difference(rel, 0, "missing"))
            continue
        data = s.read_bytes()
        if rel.endswith(".py"):
            text = (reference / rel).read_text(encoding="utf-8")
            if BEGIN_MARKER in text or END_MARKER in text:
                base, stubs = stub_source(text, rel, None, assignments)
            else:
                base, stubs = text, []
            try:
                sub = data.decode("utf-8")
            except UnicodeDecodeError:
                out.append(Difference(rel, 0, "changed", "not UTF-8 text"))
                continue
            out.extend(compare_python(base, stubs, sub, rel))
        elif data != student_version(reference, rel, None, assignments):
            out.append(Difference(rel, 0, "changed"))
    known = set(files)
    pkg = submission / "minissd"
    if pkg.is_dir():
        for p in sorted(pkg.rglob("*")):
            rel = p.relative_to(submission).as_posix()
            if p.is_file() and rel not in known and not any(part in SKIP_DIRS for part in p.parts) \
                    and not rel.endswith((".pyc", ".pyo")):
                out.append(Difference(rel, 0, "added"))
    return out
