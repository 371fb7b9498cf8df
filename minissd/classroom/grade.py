"""Grading: one submission (``grade``) or a folder of them (``grade-all``).

For each submission the grader

1. finds its root (the folder with ``minissd/``, also one level down, as archives unpack);
2. compares it with the reference outside the solution regions (:mod:`minissd.classroom.integrity`);
3. copies the submission's versions of the reference package's files into a temporary folder, the
   only thing the test runs can import from the submission;
4. runs, for each assignment, the teacher's tests that carry its marker, chosen by node id, in a
   subprocess of its own (:func:`minissd.classroom.runner.run_pytest`, with a watchdog per test);
5. scores each part of the assignment from its tests, separates the points lost to a missing
   prerequisite, and applies the rule for code changed outside the regions (:data:`ON_MODIFIED`).

The tests and their markers are learned once, by collecting the teacher's tests against the
teacher's own package (:func:`collect_suite`), and shared by every submission of a batch.
"""

from __future__ import annotations

import concurrent.futures
import csv
import dataclasses
import hashlib
import json
import re
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from . import integrity
from .make import repository_root
from .markers import files_of, scan_regions
from .registry import Assignment, Part, _registry, names, select
from .runner import RunResult, TestResult, prepare_package, run_pytest

#: What a change outside the solution regions costs: "zero" (the default: the assignments whose files
#: changed get 0; a change to another package file, imported by every test, zeroes every assignment) or
#: "flag" (reported only).
ON_MODIFIED = ("zero", "flag")
#: Default seconds per test before it counts as hung, and per assignment for all its tests.
TEST_TIMEOUT = 10.0
ASSIGNMENT_TIMEOUT = 90.0


class GradingError(ValueError):
    """The grading setup is wrong (the teacher's side): bad folders, markers that do not fit the registry."""


def one_line(text: str, limit: int = 300) -> str:
    """``text`` on one line (whitespace runs collapsed), at most ``limit`` characters."""
    s = " ".join(str(text).split())
    return s if len(s) <= limit else s[:limit - 3] + "..."


# =========================================================================== the test suite
@dataclasses.dataclass
class Suite:
    """The teacher's graded tests: for each assignment, its tests' node ids and the part each grades."""

    tests_dir: Path
    reference: Path
    assignments: list[Assignment]
    nodes: dict[str, dict[str, str]]  # assignment -> {node id: part name}
    hash: str
    package_files: list[str]
    compared_files: list[str]
    region_files: dict[str, list[str]]  # assignment -> files with its regions (in the reference)


def _test_name(node: str) -> str:
    return node.rsplit("::", 1)[-1]


def suite_hash(tests_dir: Path, assignments: Sequence[Assignment]) -> str:
    """A short hash of the test files and the registry's parts: equal hashes, equal grading."""
    h = hashlib.sha256()
    for p in sorted(tests_dir.rglob("*")):
        if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".pyc", ".pyo"):
            h.update(p.relative_to(tests_dir).as_posix().encode() + b"\0" + p.read_bytes() + b"\0")
    h.update(repr([(a.name, a.parts) for a in assignments]).encode())
    return h.hexdigest()[:12]


def collect_suite(reference: str | Path | None = None, tests_dir: str | Path | None = None,
                  only: str | Iterable[str] | None = None, assignments: Sequence[Assignment] | None = None,
                  python: str | None = None) -> Suite:
    """Collect the teacher's tests (against the reference package) and map them to assignments' parts.

    Raises:
        GradingError: missing folders; a test that carries two assignment markers; a marked test that
            no part of its assignment selects; a part without tests; a collection error in the teacher's
            tests.
    """
    ref = Path(reference).resolve() if reference is not None else repository_root()
    if not (ref / "minissd").is_dir():
        raise GradingError(f"grade: the reference {ref} has no minissd/ package")
    tdir = Path(tests_dir).resolve() if tests_dir is not None else ref / "tests"
    if not tdir.is_dir():
        raise GradingError(f"grade: the tests folder {tdir} does not exist")
    registry = list(_registry(assignments))
    chosen = select(only, registry)
    all_names = names(registry)
    wanted = [a.name for a in chosen]
    files = sorted(p for p in tdir.rglob("test_*.py") if "__pycache__" not in p.parts
                   and any(f"mark.{n}" in p.read_text(encoding="utf-8", errors="replace") for n in wanted))
    nodes: dict[str, dict[str, str]] = {a.name: {} for a in chosen}
    problems: list[str] = []
    if files:
        rels = [p.relative_to(tdir.parent).as_posix() for p in files]
        run = run_pytest(ref, tdir, rels, all_names, test_timeout=None, timeout=600, collect_only=True,
                         python=python)
        if run.collect_errors or run.status not in ("ok",):
            raise GradingError("grade: the teacher's tests do not collect: "
                               + one_line(run.detail or "; ".join(run.collect_errors)))
        by_name = {a.name: a for a in chosen}
        for node, t in run.tests.items():
            if len(t.markers) > 1:
                problems.append(f"{node} carries the markers {', '.join(t.markers)}: a test grades one "
                                "assignment (mark the others it uses with needs(...))")
                continue
            if not t.markers or t.markers[0] not in by_name:
                continue
            a = by_name[t.markers[0]]
            part = a.part_of(_test_name(node))
            if part is None:
                problems.append(f"{node} is marked {a.name} but no part of {a.name} selects it")
                continue
            nodes[a.name][node] = part.name
    for a in chosen:
        used = set(nodes[a.name].values())
        for p in a.parts:
            if p.name not in used:
                problems.append(f"{a.name}: part {p.name!r} has no test (its expression {p.tests!r} matches "
                                "no marked test)")
    if problems:
        raise GradingError("grade: the tests do not fit the registry:\n  " + "\n  ".join(problems))
    compared = integrity.reference_files(ref)
    return Suite(tdir, ref, chosen, nodes, suite_hash(tdir, registry), [f for f in compared
                 if f.startswith("minissd/")], compared, files_of(scan_regions(ref, all_names)))


# =========================================================================== scores
@dataclasses.dataclass
class PartScore:
    """The grade of one part of an assignment."""

    name: str
    points: float
    max_points: float
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    lost_to_prerequisites: float = 0.0
    prerequisite: str = ""  # why, e.g. "box_coding is missing (pairwise_iou)"
    failures: list[dict[str, str]] = dataclasses.field(default_factory=list)

    def line(self) -> str:
        s = f"{self.name}: {self.points:g}/{self.max_points:g}"
        if self.lost_to_prerequisites:
            s += f" ({self.lost_to_prerequisites:g} lost because {self.prerequisite})"
        elif self.prerequisite:
            s += f" ({self.prerequisite})"
        return s


@dataclasses.dataclass
class Score:
    """The grade of one assignment."""

    name: str
    points: float
    max_points: float
    status: str  # ok, timeout, crashed, collection error, modified, no tests
    detail: str = ""
    parts: list[PartScore] = dataclasses.field(default_factory=list)
    hung: list[str] = dataclasses.field(default_factory=list)
    earned: float = 0.0  # the points its tests gave, before the rule for modified code
    seconds: float = 0.0
    run_status: str = ""  # the status of its test run, before the rule for modified code

    @property
    def passed(self) -> int:
        return sum(p.passed for p in self.parts)

    @property
    def failed(self) -> int:
        return sum(p.failed for p in self.parts)

    @property
    def total(self) -> int:
        """Tests that count: passed + failed (errors, hangs and tests not run count as failed)."""
        return self.passed + self.failed

    @property
    def lost_to_prerequisites(self) -> float:
        return round(sum(p.lost_to_prerequisites for p in self.parts), 2)

    def as_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.update(passed=self.passed, failed=self.failed, total=self.total,
                 lost_to_prerequisites=self.lost_to_prerequisites)
        return d


def _raised_names(t: TestResult) -> set[str]:
    return {a for a, _ in t.raised}


def score_part(part: Part, assignment: str, tests: Sequence[TestResult]) -> PartScore:
    """Score ``part`` from its tests' results; separate the failures due to missing prerequisites.

    A failure is due to a missing prerequisite when it raised the ``NotImplementedError`` of an
    assignment the part requires, and not its own assignment's.
    """
    ps = PartScore(part.name, 0.0, part.points)
    missing: dict[str, set[str]] = {}
    pre = 0
    for t in tests:
        if t.outcome == "skipped":
            ps.skipped += 1
        elif t.outcome == "passed":
            ps.passed += 1
        else:
            ps.failed += 1
            ps.failures.append({"test": t.node, "outcome": t.outcome, "message": one_line(t.message)})
            raised = _raised_names(t)
            if raised and assignment not in raised and raised <= set(part.requires):
                pre += 1
                for a, f in t.raised:
                    missing.setdefault(a, set()).add(f)
    n = ps.passed + ps.failed
    if n:
        ps.points = round(part.points * ps.passed / n, 2)
        ps.lost_to_prerequisites = round(part.points * pre / n, 2)
    if missing:
        ps.prerequisite = " and ".join(f"{a} is missing ({', '.join(sorted(fs))})" for a, fs in sorted(missing.items()))
    return ps


def score_assignment(a: Assignment, nodes: dict[str, str], run: RunResult) -> Score:
    """The score of ``a`` from its run (``nodes``: its node ids -> part names)."""
    parts = []
    for p in a.parts:
        mine = [run.tests.get(n, TestResult(n)) for n, name in nodes.items() if name == p.name]
        parts.append(score_part(p, a.name, mine))
    points = round(sum(p.points for p in parts), 2)
    status = run.status if run.status != "no tests" or nodes else "no tests"
    if status == "collection error" and all(run.tests.get(n) and run.tests[n].finished for n in nodes):
        status = "ok"  # the error was in a file none of these tests needs
    detail = run.detail
    if run.hung:
        detail = "hung: " + ", ".join(run.hung) + ("" if run.status != "crashed" else " (crashed)")
    return Score(a.name, points, a.points, status, one_line(detail), parts, list(run.hung), points,
                 round(run.seconds, 2), status)


def _prerequisite_notes(scores: Sequence[Score], assignments: Sequence[Assignment]) -> None:
    """Note, on parts that lost points, a prerequisite graded in the same report that is not perfect."""
    by_name = {s.name: s for s in scores}
    for a in assignments:
        s = by_name.get(a.name)
        if s is None:
            continue
        for p, ps in zip(a.parts, s.parts):
            if ps.points >= ps.max_points or ps.prerequisite:
                continue
            weak = [by_name[r] for r in p.requires if r in by_name and by_name[r].earned < by_name[r].max_points]
            if weak:
                ps.prerequisite = "its tests use " + ", ".join(
                    f"{w.name}, which scored {w.earned:g}/{w.max_points:g}" for w in weak)


def apply_modified_rule(scores: Sequence[Score], differences: Sequence[integrity.Difference],
                        region_files: dict[str, list[str]], rule: str = "zero") -> None:
    """Zero the assignments that a change outside the regions could have helped (see :data:`ON_MODIFIED`)."""
    if rule not in ON_MODIFIED:
        raise GradingError(f"grade: on_modified must be one of {', '.join(ON_MODIFIED)}, got {rule!r}")
    package = [d for d in differences if d.path.startswith("minissd/") and d.kind == "changed"]
    if rule == "flag" or not package:
        return
    owners: dict[str, list[str]] = {}
    for name, files in region_files.items():
        for f in files:
            owners.setdefault(f, []).append(name)
    for s in scores:
        hits = [d for d in package if s.name in owners.get(d.path, []) or d.path not in owners]
        if hits:
            s.points, s.status = 0.0, "modified"
            s.detail = one_line(f"0 points: {hits[0]}" + (f" (+{len(hits) - 1} more)" if len(hits) > 1 else ""))


# =========================================================================== one submission
@dataclasses.dataclass
class GradeReport:
    """The grade of one submission."""

    student: str
    folder: str
    root: str = ""
    scores: list[Score] = dataclasses.field(default_factory=list)
    differences: list[integrity.Difference] = dataclasses.field(default_factory=list)
    suite_hash: str = ""
    seconds: float = 0.0
    error: str = ""

    @property
    def points(self) -> float:
        return round(sum(s.points for s in self.scores), 2)

    @property
    def max_points(self) -> float:
        return round(sum(s.max_points for s in self.scores), 2)

    @property
    def flags(self) -> list[str]:
        out = []
        if self.error:
            out.append("error")
        if any(d.path.startswith("minissd/") and d.kind == "changed" for d in self.differences):
            out.append("modified")
        if any(d.path.startswith("tests/") for d in self.differences):
            out.append("tests-modified")
        if any(d.kind == "added" for d in self.differences):
            out.append("added-files")
        runs = [s.run_status or s.status for s in self.scores]
        if any(s.hung for s in self.scores) or "timeout" in runs:
            out.append("timeout")
        for status, flag in (("crashed", "crashed"), ("collection error", "collection-error")):
            if status in runs:
                out.append(flag)
        return out

    def notes(self) -> str:
        """Why points were lost, on one line."""
        bits = [f"error: {self.error}"] if self.error else []
        for s in self.scores:
            if s.status != "ok":
                bits.append(f"{s.name}: {s.status}" + (f" ({s.detail})" if s.detail else ""))
            for p in s.parts:
                if p.lost_to_prerequisites:
                    bits.append(f"{s.name}: {p.line()}")
        pkg = [d for d in self.differences if not (d.path.startswith("minissd/") and d.kind == "changed")]
        if pkg:
            bits.append(f"{pkg[0]}" + (f" (+{len(pkg) - 1} more)" if len(pkg) > 1 else ""))
        return one_line("; ".join(bits), 1000)

    def as_dict(self) -> dict[str, Any]:
        """The machine-readable grade: every message on one line."""
        return {
            "student": self.student, "folder": self.folder, "root": self.root,
            "points": self.points, "max_points": self.max_points, "flags": self.flags, "error": self.error,
            "suite_hash": self.suite_hash, "seconds": round(self.seconds, 2),
            "differences": [dataclasses.asdict(d) | {"message": str(d)} for d in self.differences],
            "assignments": [s.as_dict() for s in self.scores],
        }


def find_root(folder: str | Path) -> Path:
    """The root of a submission: ``folder`` if it holds ``minissd/``, else its only subfolder that does.

    Raises:
        FileNotFoundError: ``folder`` does not exist.
        GradingError: no ``minissd/`` there nor in a single folder inside it.
    """
    d = Path(folder).resolve()
    if not d.is_dir():
        raise FileNotFoundError(f"grade: {d} is not a folder")
    if (d / "minissd").is_dir():
        return d
    entries = [e for e in d.iterdir() if not e.name.startswith(".") and e.name != "__MACOSX"]
    if len(entries) == 1 and entries[0].is_dir() and (entries[0] / "minissd").is_dir():
        return entries[0]
    seen = ", ".join(sorted(e.name for e in entries)[:5]) or "nothing"
    raise GradingError(f"grade: {d} has no minissd/ package, nor a single folder holding one (found: {seen})")


def grade(directory: str | Path, only: str | Iterable[str] | None = None, reference: str | Path | None = None,
          tests_dir: str | Path | None = None, test_timeout: float | None = TEST_TIMEOUT,
          timeout: float = ASSIGNMENT_TIMEOUT, on_modified: str = "zero",
          assignments: Sequence[Assignment] | None = None, suite: Suite | None = None,
          python: str | None = None) -> GradeReport:
    """Grade the submission in ``directory`` with the teacher's tests (see the module docstring).

    Args:
        directory: the submission (a student copy with the student's code; also one level down).
        only: grade only these assignments ("a,b" or a list).
        reference: the teacher's checkout (default: the one this package runs from).
        tests_dir: the teacher's tests (default: ``reference/tests``); its ``hidden/`` tests count too.
        test_timeout: seconds per test before it counts as hung; None for no limit.
        timeout: seconds per assignment for all its tests.
        on_modified: the rule for code changed outside the regions (:data:`ON_MODIFIED`).
        assignments: the registry (tests pass their own).
        suite: a suite from :func:`collect_suite` (a batch collects once).

    Raises:
        FileNotFoundError, GradingError: for the teacher's mistakes (a missing reference, tests that do
            not fit the registry) and a folder that is not a submission.
    """
    started = time.monotonic()
    if on_modified not in ON_MODIFIED:
        raise GradingError(f"grade: --on-modified must be one of {', '.join(ON_MODIFIED)}, got {on_modified!r}")
    folder = Path(directory).resolve()
    root = find_root(folder)
    if suite is None:
        suite = collect_suite(reference, tests_dir, only, assignments, python)
    report = GradeReport(folder.name, str(folder), str(root), suite_hash=suite.hash)
    if root != suite.reference:
        report.differences = integrity.compare(root, suite.reference, assignments, suite.compared_files)
    with tempfile.TemporaryDirectory(prefix="minissd-submission-") as tmp:
        pkg = prepare_package(root, suite.package_files, Path(tmp))
        for a in suite.assignments:
            nodes = suite.nodes[a.name]
            run = run_pytest(pkg, suite.tests_dir, list(nodes), names(assignments), test_timeout, timeout,
                             python=python)
            report.scores.append(score_assignment(a, nodes, run))
    _prerequisite_notes(report.scores, suite.assignments)
    apply_modified_rule(report.scores, report.differences, suite.region_files, on_modified)
    report.seconds = time.monotonic() - started
    return report


def format_report(report: GradeReport) -> str:
    """A plain-text score table: one row per assignment and part, then the total and the flags."""
    rows = [("assignment", "points", "passed", "status")]
    for s in report.scores:
        rows.append((s.name, f"{s.points:g} / {s.max_points:g}", f"{s.passed} / {s.total}",
                     s.status if not s.detail else f"{s.status}: {s.detail}"[:90]))
        if len(s.parts) > 1 or any(p.prerequisite for p in s.parts):
            for p in s.parts:
                note = (f"{p.lost_to_prerequisites:g} lost because {p.prerequisite}" if p.lost_to_prerequisites
                        else p.prerequisite)
                rows.append((f"  {p.name}", f"{p.points:g} / {p.max_points:g}",
                             f"{p.passed} / {p.passed + p.failed}", note[:90]))
    rows.append(("total", f"{report.points:g} / {report.max_points:g}", "", ""))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = []
    for k, r in enumerate(rows):
        lines.append(f"{r[0]:<{widths[0]}}  {r[1]:>{widths[1]}}  {r[2]:>{widths[2]}}  {r[3]}".rstrip())
        if k == 0 or k == len(rows) - 2:
            lines.append("-" * len(lines[0]))
    if report.flags:
        lines.append(f"flags: {', '.join(report.flags)}")
    for d in report.differences[:20]:
        lines.append(f"  {d}")
    if len(report.differences) > 20:
        lines.append(f"  ... {len(report.differences) - 20} more differences")
    lines.append(f"test suite {report.suite_hash}, {report.seconds:.1f} s")
    return "\n".join(lines)


# =========================================================================== a class
def submission_folders(directory: str | Path) -> list[Path]:
    """The student folders of ``directory``: its entries, sorted, hidden ones left out."""
    d = Path(directory).resolve()
    if not d.is_dir():
        raise FileNotFoundError(f"grade-all: {d} is not a folder")
    return sorted(p for p in d.iterdir() if not p.name.startswith(".") and p.name != "__MACOSX")


def grade_all(directory: str | Path, csv_path: str | Path | None = None, json_dir: str | Path | None = None,
              jobs: int = 1, only: str | Iterable[str] | None = None, reference: str | Path | None = None,
              tests_dir: str | Path | None = None, test_timeout: float | None = TEST_TIMEOUT,
              timeout: float = ASSIGNMENT_TIMEOUT, on_modified: str = "zero",
              assignments: Sequence[Assignment] | None = None, python: str | None = None) -> list[GradeReport]:
    """Grade every student folder of ``directory``; write the gradebook CSV and one JSON per student.

    The teacher's tests are collected once. A broken submission gets a row with its error; it never
    stops the batch. ``jobs`` submissions are graded at the same time.
    """
    folders = submission_folders(directory)
    suite = collect_suite(reference, tests_dir, only, assignments, python)

    def one(folder: Path) -> GradeReport:
        t0 = time.monotonic()
        try:
            if not folder.is_dir():
                raise GradingError(f"{folder.name} is not a folder (unpack archives first)")
            return grade(folder, only, test_timeout=test_timeout, timeout=timeout, on_modified=on_modified,
                         assignments=assignments, suite=suite, python=python)
        except Exception as exc:  # noqa: BLE001 - one broken submission must not stop the batch
            r = GradeReport(folder.name, str(folder), suite_hash=suite.hash, error=one_line(f"{exc}"))
            r.scores = [Score(a.name, 0.0, a.points, "error", one_line(str(exc))) for a in suite.assignments]
            r.seconds = time.monotonic() - t0
            return r

    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, int(jobs))) as pool:
        reports = list(pool.map(one, folders))
    if csv_path is not None:
        write_gradebook(reports, csv_path, suite.assignments)
    if json_dir is not None:
        out = Path(json_dir)
        out.mkdir(parents=True, exist_ok=True)
        for r in reports:
            safe = re.sub(r"[^A-Za-z0-9._-]+", "_", r.student) or "student"
            (out / f"{safe}.json").write_text(json.dumps(r.as_dict(), indent=1) + "\n", encoding="utf-8")
    return reports


#: The gradebook's columns around the per-assignment ones.
GRADEBOOK_HEAD = ("student",)
GRADEBOOK_TAIL = ("total", "max", "lost_to_prerequisites", "flags", "notes", "suite_hash", "seconds", "folder")


def write_gradebook(reports: Sequence[GradeReport], path: str | Path, assignments: Sequence[Assignment]) -> None:
    """The CSV gradebook: one row per student, one column per assignment, then :data:`GRADEBOOK_TAIL`."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow([*GRADEBOOK_HEAD, *(a.name for a in assignments), *GRADEBOOK_TAIL])
        for r in reports:
            by = {s.name: s for s in r.scores}
            w.writerow([r.student, *(f"{by[a.name].points:g}" if a.name in by else "" for a in assignments),
                        f"{r.points:g}", f"{sum(a.points for a in assignments):g}",
                        f"{sum(s.lost_to_prerequisites for s in r.scores):g}", " ".join(r.flags), r.notes(),
                        r.suite_hash, f"{r.seconds:.1f}", r.folder])
    tmp.replace(p)


def copy_tree_hash(root: str | Path) -> str:
    """A hash of every file (path and bytes) and folder under ``root``: equal before and after grading."""
    h = hashlib.sha256()
    base = Path(root)
    for p in sorted(base.rglob("*")):
        h.update(p.relative_to(base).as_posix().encode() + b"\0")
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


