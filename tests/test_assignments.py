"""Tests for the classroom assignments (minissd/assignment.py, docs/assignments.md).

Three layers:

* the marker parser, the notebook and Markdown strippers, on small sources written here;
* ``make`` and ``grade`` on a tiny fake repository in ``tmp_path`` (fast: its tests need no NumPy),
  including a submission that hangs and one that crashes;
* the real repository: ONE student copy per module (module-scoped fixture) and ONE pytest run of the
  whole suite in it. In that copy each assignment's graded tests must fail with its
  NotImplementedError, every other failing test must carry the marker of the missing code it hit, and
  the full repository must get full points.

The marker words never appear literally in this file (they are assembled below): the student copy is
checked for them, and a commit hook counts them per file.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import tomllib

from minissd import assignment as A
from minissd.assignment import Assignment, MarkerError

REPO = Path(__file__).resolve().parents[1]
B = "# " + A.BEGIN_MARKER  # the marker words are assembled, never written out
E = "# " + A.END_MARKER


# =========================================================================== registry and markers
def test_registry_is_well_formed() -> None:
    assert len(A.ASSIGNMENTS) >= 7
    assert len(set(A.names())) == len(A.ASSIGNMENTS)
    for a in A.ASSIGNMENTS:
        assert re.fullmatch(r"[a-z][a-z0-9_]*", a.name), a.name
        assert a.points > 0 and a.title and len(a.goal) > 40
        assert a.functions and all("::" in k and v for k, v in a.functions.items())
        assert re.fullmatch(r"notebooks/\d\d_\w+\.ipynb", a.notebook), a.notebook
        for f in a.tests:
            assert (REPO / f).is_file(), f"{a.name}: test file {f} does not exist"
        for f in a.files:
            assert (REPO / f).is_file(), f"{a.name}: library file {f} does not exist"
        assert a.check_command().startswith(f"python -m pytest -m {a.name} tests/")


def test_every_assignment_has_a_marker_registered_in_pyproject() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    markers = {m.split(":", 1)[0].strip() for m in config["tool"]["pytest"]["ini_options"]["markers"]}
    assert set(A.names()) <= markers


def test_markers_are_balanced_and_every_region_belongs_to_an_assignment() -> None:
    # the commit hook's rule: as many BEGIN as END lines in every file that has them
    for top in ("minissd", "tests", "notebooks"):
        for p in sorted((REPO / top).rglob("*")):
            if p.is_file() and p.suffix in (".py", ".ipynb") and "__pycache__" not in p.parts:
                text = p.read_text(encoding="utf-8")
                assert text.count(A.BEGIN_MARKER) == text.count(A.END_MARKER), p
    regions = A.scan_regions(REPO)
    assert A.check_registry(regions) == []
    assert {r.assignment for r in regions} == set(A.names())  # every assignment has code to write


@pytest.mark.parametrize("a", A.ASSIGNMENTS, ids=lambda a: a.name)
def test_each_graded_test_file_carries_the_marker(a: Assignment) -> None:
    for f in a.tests:
        assert re.search(rf"pytest\.mark\.{a.name}\b", (REPO / f).read_text(encoding="utf-8")), \
            f"{f} has no test marked {a.name}"


def test_docs_describe_every_assignment() -> None:
    doc = (REPO / "docs" / "assignments.md").read_text(encoding="utf-8")
    assert f"worth {sum(a.points for a in A.ASSIGNMENTS)} points together" in doc
    for k, a in enumerate(A.ASSIGNMENTS, start=1):
        assert re.search(rf"^\| {k} \| `{a.name}` \| {a.points} \|", doc, re.MULTILINE), a.name
        section = doc.split(f"### {k}. `{a.name}`: ", 1)[1].split("\n### ", 1)[0]
        assert f"({a.points} points)" in section.splitlines()[0]
        assert f"`{a.check_command()}`" in section and a.notebook in section
        for key in a.functions:
            path, function = key.split("::")
            assert path in section and f"`{function.split('.')[0]}" in section, (a.name, key)
    # the notes for teachers (the marker syntax among them) are cut from the student copy
    assert doc.count(A.TEACHER_NOTES_BEGIN) == doc.count(A.TEACHER_NOTES_END) == 1
    assert A.BEGIN_MARKER not in A.strip_teacher_notes(doc)


# =========================================================================== the parser
def _module(body: str) -> str:
    return textwrap.dedent(body).lstrip("\n").replace("BEGIN", B).replace("END", E)


GOOD = _module('''
    import math


    class Shape:
        def area(self, r: float) -> float:
            """The area of a disc of radius r."""
            BEGIN one
            squared = r * r
            return math.pi * squared
            END one

        def perimeter(self, r: float) -> float:
            """Twice pi r."""
            if r < 0:
                raise ValueError("r")
            BEGIN two
            return 2 * math.pi * r
            END


    def outer(x: int) -> int:
        def inner(y: int) -> int:
            BEGIN two
            return y + 1
            END
        return inner(x)
''')
FAKE = (
    Assignment("one", "One", "the first fake assignment, for testing the machinery only",
               {"minissd/pkg.py::Shape.area": "the area"}, "notebooks/01_x.ipynb", 4, ("tests/test_one.py",)),
    Assignment("two", "Two", "the second fake assignment, for testing the machinery only",
               {"minissd/pkg.py::Shape.perimeter": "the perimeter", "minissd/pkg.py::outer.inner": "add one"},
               "notebooks/02_x.ipynb", 6, ("tests/test_two.py",)),
)


def test_find_regions_locates_each_region_in_its_function() -> None:
    regions = A.find_regions(GOOD, "minissd/pkg.py", ["one", "two"])
    assert [(r.assignment, r.function, r.indent) for r in regions] == [
        ("one", "Shape.area", " " * 8), ("two", "Shape.perimeter", " " * 8), ("two", "outer.inner", " " * 8)]
    assert A.check_registry(regions, FAKE) == []
    # the registry must list exactly the marked functions
    fewer = (FAKE[0], dataclasses.replace(FAKE[1], functions={"minissd/pkg.py::Shape.perimeter": "p"}))
    assert any("outer.inner" in p for p in A.check_registry(regions, fewer))
    more = (FAKE[0], dataclasses.replace(FAKE[1], functions={**FAKE[1].functions, "minissd/pkg.py::f": "f"}))
    assert "two: minissd/pkg.py::f is listed but has no solution region" in A.check_registry(regions, more)
    assert any("unregistered" in p for p in A.check_registry(regions, FAKE[:1]))


BAD_SOURCES = {
    "unnamed": ("def f():\n    BEGIN\n    return 1\n    END\n", "must name its assignment"),
    "unknown": ("def f():\n    BEGIN three\n    return 1\n    END\n", "unknown assignment 'three'"),
    "nested": ("def f():\n    BEGIN one\n    BEGIN one\n    return 1\n    END\n    END\n",
               "inside the region"),
    "unclosed": ("def f():\n    BEGIN one\n    return 1\n", "never closed"),
    "stray-end": ("def f():\n    return 1\n    END\n", "without a"),
    "name-mismatch": ("def f():\n    BEGIN one\n    return 1\n    END two\n", "closes the region of 'one'"),
    "indent-mismatch": ("def f():\n    if True:\n        BEGIN one\n        x = 1\n    END\n    return 1\n",
                        "not indented like"),
    "module-level": ("BEGIN one\nx = 1\nEND\n", "inside a function"),
    "docstring": ('def f():\n    BEGIN one\n    """Doc."""\n    return 1\n    END\n', "after the docstring"),
    "empty": ("def f():\n    BEGIN one\n    # nothing\n    END\n    return 1\n", "no code"),
    "dedented-code": ("def f(x):\n    if x:\n        BEGIN one\n        y = 1\n    return 2\n        END\n",
                      "indented at least"),
    "inline": ("def f():\n    return 1  BEGIN one\n", "comment line of its own"),
}


@pytest.mark.parametrize("source, message", BAD_SOURCES.values(), ids=BAD_SOURCES.keys())
def test_malformed_markers_are_rejected_with_file_and_line(source: str, message: str) -> None:
    text = source.replace("BEGIN", B).replace("END", E)
    with pytest.raises(MarkerError, match=re.escape(message)) as info:
        A.find_regions(text, "pkg.py", ["one", "two"])
    assert str(info.value).startswith("pkg.py:")


def test_strip_source_keeps_signature_and_docstring_and_raises_the_message() -> None:
    out = A.strip_source(GOOD, "minissd/pkg.py", assignments=FAKE)
    assert A.BEGIN_MARKER not in out and A.END_MARKER not in out
    assert '"""The area of a disc of radius r."""' in out and "def area(self, r: float) -> float:" in out
    assert "math.pi * squared" not in out and "2 * math.pi * r" not in out
    assert 'raise ValueError("r")' in out  # code outside the regions stays
    assert '        raise NotImplementedError("one: write Shape.area in minissd/pkg.py (the area)")' in out
    ns: dict[str, object] = {}
    exec(compile(out, "pkg.py", "exec"), ns)  # noqa: S102 - our own generated code
    with pytest.raises(NotImplementedError, match=r"^two: write Shape.perimeter in minissd/pkg.py \(the per"):
        ns["Shape"]().perimeter(1.0)  # type: ignore[operator]
    with pytest.raises(NotImplementedError, match="^two: write outer.inner"):
        ns["outer"](1)  # type: ignore[operator]


def test_strip_source_only_removes_the_chosen_assignments() -> None:
    out = A.strip_source(GOOD, "minissd/pkg.py", only=["two"], assignments=FAKE)
    assert A.BEGIN_MARKER not in out and A.END_MARKER not in out  # markers go either way
    assert "return math.pi * squared" in out and "2 * math.pi * r" not in out
    ns: dict[str, object] = {}
    exec(compile(out, "pkg.py", "exec"), ns)  # noqa: S102
    assert ns["Shape"]().area(1.0) == pytest.approx(3.14159, abs=1e-5)  # type: ignore[operator]
    assert A.strip_source("x = 1\n", "plain.py") == "x = 1\n"


# =========================================================================== notebooks and docs
def _cell(kind: str, source: str, nbgrader: dict[str, object] | None = None) -> dict[str, object]:
    cell: dict[str, object] = {"cell_type": kind, "metadata": {}, "source": source.splitlines(keepends=True)}
    if nbgrader is not None:
        cell["metadata"] = {"nbgrader": nbgrader}
    if kind == "code":
        cell["outputs"] = [{"output_type": "stream", "name": "stdout", "text": ["42\n"]}]
        cell["execution_count"] = 3
    return cell


def _exercise_notebook() -> dict[str, object]:
    sol = "def f(x):\n    ### " + A.BEGIN_MARKER + "\n    return x * 2\n    ### " + A.END_MARKER + "\n"
    hidden = ("assert f(1) == 2\n### " + A.BEGIN_HIDDEN + "\nassert f(5) == 10\n### " + A.END_HIDDEN + "\n")
    return {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [
        _cell("markdown", "# Title"),
        _cell("code", sol, {"solution": True, "grade": False, "grade_id": "f", "schema_version": 3}),
        _cell("code", "secret = 7\n", {"solution": True, "grade": False, "grade_id": "g"}),
        _cell("markdown", "Why?", {"solution": True, "grade": True, "points": 1, "grade_id": "w"}),
        _cell("code", hidden, {"solution": False, "grade": True, "points": 2, "grade_id": "t"}),
        _cell("code", "print(f(21))\n"),
    ]}


def _src(cell: object) -> str:
    return "".join(cell["source"])  # type: ignore[index]


def test_notebook_solution_cells_are_cleared_as_nbgrader_does() -> None:
    nb = _exercise_notebook()
    assert A.is_exercise_notebook(nb) and not A.is_exercise_notebook({"cells": [_cell("code", "1")]})
    student, solution = A.split_notebook(nb)
    cells = student["cells"]
    assert _src(cells[1]) == "def f(x):\n    # YOUR CODE HERE\n    raise NotImplementedError()"
    assert _src(cells[2]) == "# YOUR CODE HERE\nraise NotImplementedError()"  # no markers: whole cell
    assert _src(cells[3]) == "YOUR ANSWER HERE"
    assert _src(cells[4]) == "assert f(1) == 2"  # hidden tests removed
    assert _src(cells[5]) == "print(f(21))\n"
    assert all(c["outputs"] == [] and c["execution_count"] is None for c in cells if c["cell_type"] == "code")
    assert cells[1]["metadata"] == nb["cells"][1]["metadata"]  # type: ignore[index]
    text = json.dumps(student)
    assert "BEGIN" not in text and "x * 2" not in text and "secret" not in text and "f(5)" not in text
    # the solution notebook keeps code, hidden tests and outputs, without marker lines
    sol = solution["cells"]
    assert _src(sol[1]) == "def f(x):\n    return x * 2"
    assert _src(sol[4]) == "assert f(1) == 2\nassert f(5) == 10"
    assert sol[5]["outputs"] and "BEGIN" not in json.dumps(solution)
    assert nb["cells"][1]["outputs"]  # type: ignore[index] # the input is not modified


def test_teacher_notes_are_cut_from_markdown() -> None:
    text = f"# Title\nfor all\n{A.TEACHER_NOTES_BEGIN}\nsecret grading notes\n{A.TEACHER_NOTES_END}\nend\n"
    out = A.strip_teacher_notes(text)
    assert "secret" not in out and out.startswith("# Title\nfor all\n") and out.endswith("end\n")
    with pytest.raises(MarkerError, match="unbalanced"):
        A.strip_teacher_notes(f"a {A.TEACHER_NOTES_BEGIN} b")


# =========================================================================== make and grade on a fake repo
FAKE_TESTS = {
    "tests/test_one.py": '''
        import pytest
        from minissd.pkg import Shape

        @pytest.mark.one
        def test_area():
            assert Shape().area(1.0) == pytest.approx(3.14159, abs=1e-5)

        @pytest.mark.one
        def test_area_of_two():
            assert Shape().area(2.0) == pytest.approx(12.56637, abs=1e-5)

        def test_unmarked():
            assert True
        ''',
    "tests/test_two.py": '''
        import pytest
        from minissd.pkg import Shape, outer

        @pytest.mark.two
        def test_perimeter():
            assert Shape().perimeter(1.0) == pytest.approx(6.28319, abs=1e-5)

        @pytest.mark.two
        def test_inner():
            assert outer(1) == 2

        @pytest.mark.two
        @pytest.mark.skip(reason="skipped tests do not count")
        def test_skipped():
            pass
        ''',
    "tests/hidden/test_hidden_one.py": '''
        import pytest
        from minissd.pkg import Shape

        @pytest.mark.one
        def test_hidden_area():
            assert Shape().area(3.0) == pytest.approx(28.27433, abs=1e-5)
        ''',
}


def _write(root: Path, rel: str, text: str) -> None:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")


@pytest.fixture
def fake_repo(tmp_path: Path) -> Path:
    """A tiny repository with the layout of minissd and the FAKE registry's regions and tests."""
    root = tmp_path / "repo"
    _write(root, "minissd/__init__.py", "")
    (root / "minissd" / "pkg.py").write_text(GOOD, encoding="utf-8")
    for rel, text in FAKE_TESTS.items():
        _write(root, rel, text)
    _write(root, "tests/test_assignments.py", "# teacher-only: never copied\n")
    _write(root, "pyproject.toml", '''
        [tool.pytest.ini_options]
        markers = ["one: fake one", "two: fake two"]
        addopts = "--this-option-does-not-exist"
        ''')
    _write(root, "docs/assignments.md", f"# A\nall\n{A.TEACHER_NOTES_BEGIN}\nhidden\n{A.TEACHER_NOTES_END}\n")
    _write(root, "notebooks/01_x.ipynb", json.dumps(_exercise_notebook()))
    _write(root, "notebooks/02_x.ipynb", json.dumps({"cells": [_cell("code", "1")]}))
    _write(root, "minissd/__pycache__/pkg.cpython-311.pyc", "cache")
    _write(root, "minissd/weights/w.bin", "binary")
    _write(root, "notes.txt", "not copied: not a top-level entry of a copy")
    return root


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def test_make_writes_a_student_copy_and_sibling_solutions(fake_repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "class" / "copy"
    report = A.make_student_copy(out, source=fake_repo, assignments=FAKE)
    assert report.assignments == ["one", "two"] and len(report.stripped) == 3
    assert report.notebooks == ["notebooks/01_x.ipynb"]
    assert _files(out) == {"minissd/__init__.py", "minissd/pkg.py", "minissd/weights/w.bin",
                           "tests/test_one.py", "tests/test_two.py", "pyproject.toml", "docs/assignments.md",
                           "notebooks/01_x.ipynb", "notebooks/02_x.ipynb"}
    assert _files(tmp_path / "class" / "copy-solutions") == {"notebooks/01_x.ipynb"}
    for p in out.rglob("*"):
        if p.is_file():
            data = p.read_bytes()
            assert b"BEGIN" not in data and b"secret" not in data and b"hidden" not in data, p
    assert "raise NotImplementedError" in (out / "minissd" / "pkg.py").read_text(encoding="utf-8")
    solution = json.loads((tmp_path / "class" / "copy-solutions" / "notebooks" / "01_x.ipynb").read_text())
    assert "x * 2" in json.dumps(solution)
    again = _raises(lambda: A.make_student_copy(out, source=fake_repo, assignments=FAKE))
    assert "make: the output folder" in again and "already exists" in again


def _raises(fn: object) -> str:
    with pytest.raises(ValueError) as info:
        fn()  # type: ignore[operator]
    return str(info.value)


def test_make_refuses_leaks_bad_markers_and_unknown_names(fake_repo: Path, tmp_path: Path) -> None:
    assert "unknown assignment 'three'" in _raises(
        lambda: A.make_student_copy(tmp_path / "c1", only="one,three", source=fake_repo, assignments=FAKE))
    assert "not a minissd checkout" in _raises(lambda: A.make_student_copy(tmp_path / "c2", source=tmp_path))
    # marker text outside a .py region (here in a README) would leak: nothing is written
    (fake_repo / "README.md").write_text(f"how to mark: {B} name\n", encoding="utf-8")
    with pytest.raises(RuntimeError, match="README.md"):
        A.make_student_copy(tmp_path / "c3", source=fake_repo, assignments=FAKE)
    assert not (tmp_path / "c3").exists() and not list(tmp_path.glob(".c3-*"))
    (fake_repo / "README.md").unlink()
    pkg = fake_repo / "minissd" / "pkg.py"
    pkg.write_text(pkg.read_text(encoding="utf-8").replace(f"{E} one", "", 1), encoding="utf-8")
    message = _raises(lambda: A.make_student_copy(tmp_path / "c4", source=fake_repo, assignments=FAKE))
    assert message == f"minissd/pkg.py:16: {A.BEGIN_MARKER} inside the region opened at line 7"


def test_make_only_keeps_the_other_solutions(fake_repo: Path, tmp_path: Path) -> None:
    A.make_student_copy(tmp_path / "c", only="two", source=fake_repo, assignments=FAKE)
    text = (tmp_path / "c" / "minissd" / "pkg.py").read_text(encoding="utf-8")
    assert "return math.pi * squared" in text and text.count("raise NotImplementedError") == 2
    scores = {s.name: s for s in A.grade(tmp_path / "c", assignments=FAKE, test_timeout=None)}
    assert (scores["one"].points, scores["one"].passed, scores["one"].total) == (4, 2, 2)
    assert (scores["two"].points, scores["two"].failed, scores["two"].skipped) == (0, 2, 1)


def test_grade_scores_the_full_repo_and_the_copy(fake_repo: Path, tmp_path: Path) -> None:
    full = A.grade(fake_repo, assignments=FAKE, test_timeout=None)
    assert [(s.name, s.points, s.max_points, s.status) for s in full] == [("one", 4, 4, "ok"),
                                                                          ("two", 6, 6, "ok")]
    A.make_student_copy(tmp_path / "c", source=fake_repo, assignments=FAKE)
    empty = A.grade(tmp_path / "c", assignments=FAKE, test_timeout=None)
    assert [(s.points, s.passed, s.failed) for s in empty] == [(0, 0, 2), (0, 0, 2)]
    assert all("NotImplementedError" in f["message"] for s in empty for f in s.failures)
    table = A.format_scores(empty)
    assert "total" in table and "0 / 10" in table
    # the teacher's tests (with hidden ones) against the student's code
    (tmp_path / "c" / "minissd" / "pkg.py").write_text(GOOD.replace(B, "#").replace(E, "#"), encoding="utf-8")
    with_hidden = A.grade(tmp_path / "c", assignments=FAKE, test_timeout=None, tests_dir=fake_repo / "tests")
    assert [(s.passed, s.total) for s in with_hidden] == [(3, 3), (2, 2)]


def test_a_crashing_or_hanging_submission_is_scored_not_fatal(fake_repo: Path) -> None:
    pkg = fake_repo / "minissd" / "pkg.py"
    good = pkg.read_text(encoding="utf-8")
    pkg.write_text(good.replace("return y + 1", "import os; os._exit(3)"), encoding="utf-8")  # kills pytest
    # the one run for both assignments dies; each is then rerun alone, so only "two" loses its points
    scores = A.grade(fake_repo, assignments=FAKE, test_timeout=None)
    assert [(s.points, s.status) for s in scores] == [(4, "ok"), (0, "crashed")]
    pkg.write_text(good.replace("squared = r * r", "import time; time.sleep(60); squared = r * r"),
                   encoding="utf-8")  # hangs
    one = A.grade(fake_repo, only="one", assignments=FAKE, timeout=3, test_timeout=None)[0]
    assert (one.points, one.status) == (0, "timeout")
    if A._has_pytest_timeout():  # with a per-test limit the hanging tests fail alone and the run goes on
        one = A.grade(fake_repo, only="one", assignments=FAKE, timeout=60, test_timeout=1)[0]
        assert (one.status, one.passed, one.failed) == ("ok", 0, 2)


def test_grade_reports_missing_tests_and_bad_folders(fake_repo: Path, tmp_path: Path) -> None:
    (fake_repo / "tests" / "test_two.py").unlink()
    scores = A.grade(fake_repo, assignments=FAKE, test_timeout=None)
    assert (scores[1].status, scores[1].points) == ("missing tests", 0) and scores[0].points == 4
    with pytest.raises(FileNotFoundError):
        A.grade(tmp_path / "nowhere")
    assert "no minissd/ package" in _raises(lambda: A.grade(tmp_path))


def test_command_line_make_and_grade_json(fake_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(A, "ASSIGNMENTS", FAKE)  # the functions look the registry up when called
    assert A.main(["make", str(tmp_path / "c"), "--source", str(fake_repo), "--only", "one"]) == 0
    assert "regions replaced by NotImplementedError: 1" in capsys.readouterr().out
    assert A.main(["grade", str(tmp_path / "c"), "--json", "--test-timeout", "0"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["points"], result["max_points"]) == (6, 10)
    assert [a["name"] for a in result["assignments"]] == ["one", "two"]
    assert A.main(["grade", str(tmp_path / "nowhere")]) == 1
    assert "error" in capsys.readouterr().err


def test_minissd_cli_has_the_assignment_commands() -> None:
    proc = subprocess.run([sys.executable, "-m", "minissd", "assignment", "list"], capture_output=True,
                          text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert all(name in proc.stdout for name in A.names())


# =========================================================================== the real repository
@pytest.fixture(scope="module")
def student_copy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One student copy of this repository for the whole module."""
    out = tmp_path_factory.mktemp("classroom") / "student"
    A.make_student_copy(out)
    yield out


@pytest.fixture(scope="module")
def copy_run(student_copy: Path) -> A.RunResult:
    """ONE pytest run of the whole test suite (notebooks aside) in the student copy.

    The whole suite, not only the files with markers: a test elsewhere that reaches a student's function
    (the data pipeline comparing its IoU with boxes.iou) must carry that assignment's marker too. Most
    marked tests fail at once, so the run costs about as much as the unmarked tests.
    """
    run = A.run_pytest(student_copy, ["tests"], A.names(), timeout=600)
    assert run.status == "ok", run.detail
    return run


def test_student_copy_contains_no_solution_text(student_copy: Path) -> None:
    texts = (A.BEGIN_MARKER.encode(), A.END_MARKER.encode(), A.TEACHER_NOTES_BEGIN.encode())
    leaks = [p for p in student_copy.rglob("*") if p.is_file() and any(t in p.read_bytes() for t in texts)]
    assert leaks == []
    assert not (student_copy / "tests" / "test_assignments.py").exists()
    assert (student_copy / "minissd" / "assignment.py").is_file()  # students can grade themselves
    for r in A.scan_regions(REPO):
        student = (student_copy / r.path).read_text(encoding="utf-8")
        raise_line = f'{r.indent}raise NotImplementedError("{r.assignment}: write {r.function} in {r.path}'
        assert raise_line in student


def test_student_copy_imports(student_copy: Path) -> None:
    code = ("import importlib, pkgutil, minissd; "
            "mods = [m.name for m in pkgutil.walk_packages(minissd.__path__, 'minissd.') "
            "if not m.name.endswith('__main__')]; [importlib.import_module(m) for m in mods]; "
            "print(minissd.__file__, len(mods))")
    env = {**os.environ, "PYTHONPATH": str(student_copy), "MPLBACKEND": "Agg"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=student_copy,
                          env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(str(student_copy))  # the copy's package, not this checkout's


@pytest.mark.parametrize("a", A.ASSIGNMENTS, ids=lambda a: a.name)
def test_each_assignments_tests_fail_with_not_implemented_error(a: Assignment, copy_run: A.RunResult) -> None:
    graded = [t for t in A.graded_tests(a, copy_run.tests) if t.outcome != "skipped"]
    assert graded, f"no graded test of {a.name} ran"
    # a graded test that passes without the student's code would give points for nothing: unmark it
    passing = [t.node for t in graded if t.outcome not in ("failed", "error")]
    assert passing == [], f"graded tests of {a.name} that pass in the student copy:\n" + "\n".join(passing)
    for t in graded:
        assert "NotImplementedError" in t.message and t.raised, (t.node, t.message)
    assert any(a.name in t.raised for t in graded)


def test_only_tests_marked_with_the_missing_code_fail(copy_run: A.RunResult) -> None:
    """A test fails in the copy only if it carries the marker of every assignment whose code it hit."""
    wrong = [f"{t.node}: hit {t.raised or t.message[:150]!r}, marked {t.markers}" for t in copy_run.tests
             if t.outcome in ("failed", "error") and (not t.raised or not set(t.raised) <= set(t.markers))]
    assert wrong == [], "tests to mark (or to fix):\n" + "\n".join(wrong)
    assert sum(t.outcome == "passed" for t in copy_run.tests) > 100  # the unmarked tests ran and passed


def test_grading_the_copy_gives_zero_and_the_repository_full_points(student_copy: Path) -> None:
    scores = A.grade(student_copy)
    assert [(s.name, s.points, s.status) for s in scores] == [(a.name, 0, "ok") for a in A.ASSIGNMENTS]
    assert all(s.failed > 0 for s in scores)
    full = A.grade(REPO)
    assert [(s.name, s.points, s.failed) for s in full] == [(a.name, a.points, 0) for a in A.ASSIGNMENTS], \
        [f for s in full for f in s.failures][:5]
