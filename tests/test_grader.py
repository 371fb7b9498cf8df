"""Tests for the grader (minissd/classroom/grade.py, runner.py, plugin.py, integrity.py).

Most tests grade a tiny fake repository (two fake assignments, tests without NumPy: a pytest run
costs about a second): the teacher's tests run whatever the submission did to its own, a hang costs
only the hung test, a crash only the crashed one, nothing is written into the submission, scores are
reproducible, and a class is graded into one gradebook row per student.

The last tests grade real student copies of this repository, on two small assignments only
(box_coding and nms_ap) to keep CI time down: an untouched copy, a solved assignment, two cheats, an
NMS that hangs and an IoU that is wrong at random.

The marker words never appear literally in this file (they are assembled below).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from minissd.classroom import grade as G
from minissd.classroom import integrity as I  # noqa: E741 - short, like the others
from minissd.classroom import make as K
from minissd.classroom import markers as M
from minissd.classroom import registry as R
from minissd.classroom.registry import Assignment, Part

REPO = Path(__file__).resolve().parents[1]
B = "# " + M.BEGIN_MARKER  # the marker words are assembled, never written out
E = "# " + M.END_MARKER


def _dedent(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n").replace("BEGIN", B).replace("END", E)


# =========================================================================== a fake course
PKG = _dedent('''
    import math


    class Shape:
        def area(self, r: float) -> float:
            """The area of a disc of radius r."""
            BEGIN one
            return math.pi * r * r
            END one

        def perimeter(self, r: float) -> float:
            """Twice pi r, from the area (so it needs assignment one)."""
            BEGIN two
            return 2 * self.area(r) / r
            END


    def outer(x: int) -> int:
        def inner(y: int) -> int:
            BEGIN two
            return y + 1
            END
        return inner(x)
''')
TESTS = {
    "tests/conftest.py": "",
    "tests/test_one.py": """
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
        """,
    "tests/test_two.py": """
        import pytest
        from hypothesis import given, settings, strategies as st
        from minissd.pkg import Shape, outer

        @pytest.mark.two
        def test_perimeter():
            assert Shape().perimeter(1.0) == pytest.approx(6.28319, abs=1e-5)

        @pytest.mark.two
        @settings(max_examples=30)
        @given(st.floats(0.01, 100.0))
        def test_perimeter_property(r):
            assert Shape().perimeter(r) == pytest.approx(2 * 3.141592653589793 * r)

        @pytest.mark.two
        @pytest.mark.parametrize("y", [1, 2, 3])
        def test_inner(y):
            assert outer(y) == y + 1

        @pytest.mark.two
        @pytest.mark.skip(reason="skipped tests do not count")
        def test_perimeter_skipped():
            pass
        """,
    "tests/hidden/test_hidden_one.py": """
        import pytest
        from minissd.pkg import Shape

        @pytest.mark.one
        def test_hidden_area():
            assert Shape().area(3.0) == pytest.approx(28.27433, abs=1e-5)
        """,
}
FAKE = (
    Assignment("one", "One", "the first fake assignment, for testing the grader only",
               {"Shape.area": "the area"}, "notebooks/01_x.ipynb", (Part("area", ("Shape.area",), 4),)),
    Assignment("two", "Two", "the second fake assignment, for testing the grader only",
               {"Shape.perimeter": "the perimeter", "outer.inner": "add one"}, "notebooks/02_x.ipynb",
               (Part("perimeter", ("Shape.perimeter",), 3, "perimeter", requires=("one",)),
                Part("inner", ("outer.inner",), 3))),
)
FAST = {"assignments": FAKE, "test_timeout": 3.0, "timeout": 60.0}


def _write(root: Path, rel: str, text: str) -> None:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")


@pytest.fixture
def course(tmp_path: Path) -> Path:
    """The teacher's fake checkout (not a git repository: the grader walks it)."""
    root = tmp_path / "teacher"
    _write(root, "minissd/__init__.py", '"""A fake minissd."""\n')
    (root / "minissd" / "pkg.py").write_text(PKG, encoding="utf-8")
    for rel, text in TESTS.items():
        _write(root, rel, text)
    return root


def _copy(course: Path, dest: Path, only: str | None = None) -> Path:
    """A student copy of the fake course (``only``: the assignments removed; default all)."""
    K.make_student_copy(dest, only=only, source=course, assignments=FAKE, use_git=False)
    return dest


def _points(report: G.GradeReport) -> list[tuple[str, float, str]]:
    return [(s.name, s.points, s.status) for s in report.scores]


# =========================================================================== fake course: grading
def test_reference_gets_full_points_and_a_copy_zero_with_the_teachers_hidden_tests(course: Path,
                                                                                   tmp_path: Path) -> None:
    full = G.grade(course, reference=course, **FAST)
    assert _points(full) == [("one", 4, "ok"), ("two", 6, "ok")] and full.differences == []
    one = full.scores[0]
    assert (one.passed, one.total) == (3, 3)  # the hidden test counts too
    two = full.scores[1]
    assert [(p.name, p.passed, p.skipped) for p in two.parts] == [("perimeter", 2, 1), ("inner", 3, 0)]
    copy = _copy(course, tmp_path / "student")
    empty = G.grade(copy, reference=course, **FAST)
    assert _points(empty) == [("one", 0, "ok"), ("two", 0, "ok")] and empty.differences == []
    assert all("NotImplementedError" in f["message"] for s in empty.scores for p in s.parts for f in p.failures)
    table = G.format_report(empty)
    assert "total" in table and "0 / 10" in table


def test_points_are_split_over_parts_and_a_missing_prerequisite_is_shown(course: Path, tmp_path: Path) -> None:
    copy = _copy(course, tmp_path / "student", only="one")  # two is done, but it needs one's area
    report = G.grade(copy, reference=course, **FAST)
    two = report.scores[1]
    perimeter, inner = two.parts
    assert (inner.points, inner.max_points) == (3, 3)  # graded by its own tests, nothing lost
    assert (perimeter.points, perimeter.lost_to_prerequisites) == (0, 3)
    assert perimeter.prerequisite == "one is missing (Shape.area)"
    assert perimeter.line() == "perimeter: 0/3 (3 lost because one is missing (Shape.area))"
    assert two.points == 3 and two.lost_to_prerequisites == 3
    assert "two: perimeter: 0/3 (3 lost because one is missing" in report.notes()


def test_the_teachers_tests_run_from_anywhere_not_the_students(course: Path, tmp_path: Path) -> None:
    teacher_tests = tmp_path / "elsewhere" / "grading-tests"
    shutil.copytree(course / "tests", teacher_tests)
    copy = _copy(course, tmp_path / "student")
    # the student "fixes" their tests: they would pass without any code
    (copy / "tests" / "test_one.py").write_text("import pytest\n\n@pytest.mark.one\ndef test_area():\n    pass\n")
    _write(copy, "tests/conftest.py", """
        import pytest

        @pytest.hookimpl(hookwrapper=True)
        def pytest_runtest_makereport(item, call):
            outcome = yield
            outcome.get_result().outcome = "passed"
        """)
    report = G.grade(copy, reference=course, tests_dir=teacher_tests, **FAST)
    assert _points(report) == [("one", 0, "ok"), ("two", 0, "ok")]
    assert report.scores[0].total == 3
    assert {d.path for d in report.differences} == {"tests/test_one.py", "tests/conftest.py"}
    assert "tests-modified" in report.flags and "modified" not in report.flags


def test_code_changed_outside_the_regions_is_flagged_and_gains_nothing(course: Path, tmp_path: Path) -> None:
    copy = _copy(course, tmp_path / "student", only="one")
    init = copy / "minissd" / "__init__.py"
    # rewrite every test report as passed, from the package that every test imports
    init.write_text(init.read_text() + textwrap.dedent("""
        import _pytest.reports as _r
        _init = _r.TestReport.__init__
        def _passed(self, *args, **kwargs):
            _init(self, *args, **kwargs)
            self.outcome = "passed"
        _r.TestReport.__init__ = _passed
        """), encoding="utf-8")
    suite = G.collect_suite(course, assignments=FAKE)
    report = G.grade(copy, reference=course, suite=suite, **FAST)
    assert _points(report) == [("one", 0, "modified"), ("two", 0, "modified")]
    assert report.scores[0].earned == 4  # the cheat did work on the tests: the rule takes it away
    assert report.differences[0].path == "minissd/__init__.py" and report.differences[0].line == 2
    assert "modified" in report.flags
    assert "0 points: minissd/__init__.py:2 changed outside the solution regions" in report.scores[0].detail
    # a change outside the regions of a file with regions costs that file's assignments only
    pkg = copy / "minissd" / "pkg.py"
    init.write_text('"""A fake minissd."""\n', encoding="utf-8")
    pkg.write_text(pkg.read_text().replace("    return inner(x)", "    return inner(x) * 1"))
    report = G.grade(copy, reference=course, suite=suite, **FAST)
    assert _points(report) == [("one", 0, "modified"), ("two", 0, "modified")]  # pkg.py holds both
    flagged = G.grade(copy, reference=course, on_modified="flag", suite=suite, **FAST)
    assert _points(flagged) == [("one", 0, "ok"), ("two", 3, "ok")] and "modified" in flagged.flags


def test_an_added_module_cannot_shadow_the_package(course: Path, tmp_path: Path) -> None:
    copy = _copy(course, tmp_path / "student", only="one")
    _write(copy, "minissd/pkg/__init__.py", "class Shape:\n    def area(self, r):\n        return 3.14159265 * r * r\n")
    report = G.grade(copy, reference=course, **FAST)
    assert report.differences == [I.Difference("minissd/pkg/__init__.py", 0, "added")]
    assert report.scores[0].points == 0 and "added-files" in report.flags  # the package under test has no pkg/


def test_a_hang_costs_only_the_hung_test(course: Path, tmp_path: Path) -> None:
    copy = _copy(course, tmp_path / "student", only="one")
    pkg = copy / "minissd" / "pkg.py"
    pkg.write_text(pkg.read_text().replace("        return y + 1",
                                           "        while y == 2:\n            pass\n        return y + 1"))
    started = time.monotonic()
    report = G.grade(copy, reference=course, **FAST)
    assert time.monotonic() - started < 45
    two = report.scores[1]
    assert two.status == "timeout" and two.hung == ["tests/test_two.py::test_inner[2]"]
    assert [(p.name, p.passed, p.failed) for p in two.parts] == [("perimeter", 0, 2), ("inner", 2, 1)]
    assert two.points == 2 and "timeout" in report.flags
    assert "hung: tests/test_two.py::test_inner[2]" in two.detail
    # the total limit bounds a hang that each test would hit
    pkg.write_text(pkg.read_text().replace("while y == 2:", "while True:"))
    capped = G.grade(copy, reference=course, only="two", assignments=FAKE, test_timeout=2.0, timeout=4.0)
    assert capped.scores[0].status == "timeout" and capped.scores[0].points == 0
    assert capped.seconds < 30


def test_a_crash_costs_only_the_crashed_test(course: Path, tmp_path: Path) -> None:
    copy = _copy(course, tmp_path / "student", only="one")
    pkg = copy / "minissd" / "pkg.py"
    pkg.write_text(pkg.read_text().replace("        return y + 1",
                                           "        if y == 3:\n            import os\n"
                                           "            os._exit(3)\n        return y + 1"))
    two = G.grade(copy, reference=course, **FAST).scores[1]
    assert two.status == "crashed" and two.hung == ["tests/test_two.py::test_inner[3]"]
    assert [(p.name, p.passed, p.failed) for p in two.parts] == [("perimeter", 0, 2), ("inner", 2, 1)]


def test_grading_writes_nothing_into_the_submission_and_is_reproducible(course: Path, tmp_path: Path) -> None:
    copy = _copy(course, tmp_path / "student", only="one")
    pkg = copy / "minissd" / "pkg.py"
    # wrong only in a narrow range of inputs, and at random: whether a run finds it depends on the seed
    pkg.write_text(pkg.read_text().replace(
        "        return 2 * self.area(r) / r",
        "        import random\n"
        "        if 40.0 < r < 60.0 and random.random() < 0.5:\n"
        "            return 2 * self.area(r) / r + 1.0\n"
        "        return 2 * self.area(r) / r"))
    assert "random.random()" in pkg.read_text()
    before = G.copy_tree_hash(copy)
    suite = G.collect_suite(course, assignments=FAKE)
    first = G.grade(copy, reference=course, suite=suite, **FAST)
    second = G.grade(copy, reference=course, suite=suite, **FAST)
    assert G.copy_tree_hash(copy) == before  # no __pycache__, no .hypothesis, no cache
    outcome = [(s.name, s.points, [(p.name, p.passed, p.failed) for p in s.parts]) for s in first.scores]
    assert outcome == [(s.name, s.points, [(p.name, p.passed, p.failed) for p in s.parts]) for s in second.scores]
    assert first.suite_hash == second.suite_hash


def test_no_result_file_is_named_to_the_students_code(course: Path, tmp_path: Path) -> None:
    copy = _copy(course, tmp_path / "student", only="one")
    probe = tmp_path / "probe.json"
    pkg = copy / "minissd" / "pkg.py"
    pkg.write_text(pkg.read_text().replace(
        "        return y + 1",
        "        import json, os, sys\n"
        f"        open({str(probe)!r}, 'w').write(json.dumps({{'env': dict(os.environ), 'cwd': os.getcwd(), "
        "'path': sys.path}))\n"
        "        return y + 1"))
    G.grade(copy, reference=course, only="two", **FAST)
    seen = json.loads(probe.read_text())
    assert not any(k.startswith("MINISSD_GRADE") for k in seen["env"])
    assert seen["env"]["PYTHONDONTWRITEBYTECODE"] == "1"
    assert not seen["cwd"].startswith(str(copy)) and not any(p.startswith(str(copy)) for p in seen["path"])


def test_the_tests_must_fit_the_registry(course: Path) -> None:
    _write(course, "tests/test_both.py", """
        import pytest

        @pytest.mark.one
        @pytest.mark.two
        def test_two_markers():
            pass
        """)
    with pytest.raises(G.GradingError, match="test_two_markers carries the markers one, two"):
        G.collect_suite(course, assignments=FAKE)
    (course / "tests" / "test_both.py").unlink()
    narrow = (FAKE[0], dataclasses.replace(FAKE[1], parts=(Part("perimeter", ("Shape.perimeter", "outer.inner"),
                                                                 6, "perimeter"),)))
    with pytest.raises(G.GradingError, match=r"test_inner\[1\] is marked two but no part of two selects it"):
        G.collect_suite(course, assignments=narrow)


# =========================================================================== fake course: a class
def test_grade_all_writes_one_row_per_student_whatever_they_handed_in(course: Path, tmp_path: Path) -> None:
    subs = tmp_path / "submissions"
    _copy(course, subs / "alice")  # nothing done
    _copy(course, subs / "bob" / "ssd-student", only="one")  # unpacked archive: one folder down
    (subs / "carol").mkdir(parents=True)
    (subs / "carol" / "README.md").write_text("I could not make it work\n")
    (subs / "dave.zip").write_bytes(b"PK\x03\x04")
    _copy(course, subs / "erin", only="two")
    (subs / "erin" / "minissd" / "pkg.py").write_text("def broken(:\n")  # a syntax error everywhere
    gradebook, reports = tmp_path / "out" / "gradebook.csv", tmp_path / "out" / "json"
    result = G.grade_all(subs, gradebook, reports, jobs=2, reference=course, **FAST)
    assert [r.student for r in result] == ["alice", "bob", "carol", "dave.zip", "erin"]
    rows = list(csv.DictReader(gradebook.open(encoding="utf-8")))
    assert [r["student"] for r in rows] == ["alice", "bob", "carol", "dave.zip", "erin"]
    assert list(rows[0])[:3] == ["student", "one", "two"] and "suite_hash" in rows[0] and "flags" in rows[0]
    by = {r["student"]: r for r in rows}
    assert (by["alice"]["one"], by["alice"]["two"], by["alice"]["total"], by["alice"]["max"]) == ("0", "0", "0", "10")
    assert (by["bob"]["two"], by["bob"]["total"], by["bob"]["lost_to_prerequisites"]) == ("3", "3", "3")
    assert by["carol"]["flags"] == "error" and "no minissd/ package" in by["carol"]["notes"]
    assert by["dave.zip"]["flags"] == "error" and "not a folder" in by["dave.zip"]["notes"]
    assert "collection-error" in by["erin"]["flags"].split() and by["erin"]["total"] == "0"
    assert len({r["suite_hash"] for r in rows}) == 1 and rows[0]["suite_hash"]
    assert sorted(p.name for p in reports.iterdir()) == ["alice.json", "bob.json", "carol.json", "dave.zip.json",
                                                          "erin.json"]
    for p in reports.iterdir():
        data = json.loads(p.read_text())
        messages = [f["message"] for a in data["assignments"] for part in a["parts"] for f in part["failures"]]
        assert all("\n" not in m for m in [*messages, data["error"]])


def test_command_line_grade_prints_one_line_of_json(course: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    from minissd.classroom import cli

    monkeypatch.setattr(R, "ASSIGNMENTS", FAKE)  # the functions look the registry up when called
    copy = _copy(course, tmp_path / "student", only="one")
    assert cli.main(["grade", str(copy), "--json", "--reference", str(course), "--test-timeout", "3"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    result = json.loads(out)
    assert (result["points"], result["max_points"]) == (3, 10)
    assert cli.main(["grade", str(tmp_path / "nowhere"), "--reference", str(course)]) == 1
    assert "error" in capsys.readouterr().err
    assert cli.main(["grade-all", str(tmp_path), "--csv", str(tmp_path / "g.csv"), "--reference",
                     str(course), "--only", "one", "--test-timeout", "3"]) == 0
    assert "submissions graded" in capsys.readouterr().out


# =========================================================================== the integrity check
def test_integrity_accepts_any_answer_inside_its_region_and_nothing_else() -> None:
    base, stubs = M.stub_source(PKG, "minissd/pkg.py", assignments=FAKE)
    answer = base.replace(
        '        raise NotImplementedError("one: write Shape.area in minissd/pkg.py (the area)")',
        "        # my answer\n        squared = r ** 2\n\n        return math.pi * squared")
    assert I.compare_python(base, stubs, answer, "minissd/pkg.py") == []
    outside = answer.replace("import math", "import math, os")
    assert I.compare_python(base, stubs, outside, "minissd/pkg.py") == [
        I.Difference("minissd/pkg.py", 1, "changed", "import math, os")]
    # a line of the answer less indented than the region leaves the function
    escaped = answer.replace("        return math.pi * squared", "        return math.pi * squared\nEVIL = 1")
    evil = escaped.splitlines().index("EVIL = 1") + 1
    assert [(d.line, d.text) for d in I.compare_python(base, stubs, escaped, "minissd/pkg.py")] == [(evil, "EVIL = 1")]
    # a string opened in one region and closed in the next turns the code between them into data
    swallow = answer.replace("        return math.pi * squared", "        return '''").replace(
        '        raise NotImplementedError("two: write Shape.perimeter in minissd/pkg.py (the perimeter)")',
        "        '''")
    compile(swallow, "pkg.py", "exec")  # it parses: Shape.perimeter became part of a string
    found = I.compare_python(base, stubs, swallow, "minissd/pkg.py")
    assert found and "does not stay inside it" in found[0].text


# =========================================================================== the real repository
ONLY = "box_coding nms_ap"


def _region(function: str) -> M.Region:
    return next(r for r in M.scan_regions(REPO) if r.function == function)


def _submission(copy: Path, dest: Path, solved: set[str], edits: dict[str, list[str]] | None = None) -> Path:
    """``copy`` with the reference's answers of ``solved`` put back; ``edits``: function -> lines to add
    at the top of its region (the region's indentation is added)."""
    shutil.copytree(copy, dest)
    regions = M.scan_regions(REPO)
    for path in sorted({r.path for r in regions if r.assignment in solved}):
        lines = (REPO / path).read_text(encoding="utf-8").splitlines(keepends=True)
        for r in sorted((r for r in regions if r.path == path), key=lambda r: -r.begin):
            for extra in reversed((edits or {}).get(r.function, [])):
                lines.insert(r.begin, r.indent + extra + "\n")
        stubbed = [n for n in R.names() if n not in solved]
        (dest / path).write_text(M.strip_source("".join(lines), path, only=stubbed), encoding="utf-8")
    return dest


@pytest.fixture(scope="module")
def real_class(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[G.GradeReport], dict[str, str]]:
    """Six submissions of the real course, graded once with grade-all on box_coding and nms_ap."""
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("the student copy holds the files git tracks: needs a git checkout")
    base = tmp_path_factory.mktemp("real-class")
    copy = base / "student-copy"
    K.make_student_copy(copy)
    subs = base / "submissions"
    shutil.copytree(copy, subs / "untouched")
    _submission(copy, subs / "solved", {"box_coding"})
    cheat = _submission(copy, subs / "cheat-init", {"box_coding"})
    init = cheat / "minissd" / "__init__.py"
    init.write_text(init.read_text(encoding="utf-8") + textwrap.dedent("""
        import _pytest.reports as _grade_reports
        _grade_init = _grade_reports.TestReport.__init__
        def _grade_passed(self, *args, **kwargs):
            _grade_init(self, *args, **kwargs)
            self.outcome = "passed"
        _grade_reports.TestReport.__init__ = _grade_passed
        """), encoding="utf-8")
    conftest = _submission(copy, subs / "cheat-conftest", {"box_coding"})
    (conftest / "tests" / "conftest.py").write_text(textwrap.dedent("""
        import pytest

        @pytest.hookimpl(hookwrapper=True)
        def pytest_runtest_makereport(item, call):
            outcome = yield
            outcome.get_result().outcome = "passed"
        """), encoding="utf-8")
    nms_fn = _region("nms")
    _submission(copy, subs / "nms-hangs", {"box_coding", "nms_ap"}, {nms_fn.function: [
        "while any(getattr(v, 'shape', None) == (4, 4) for v in list(locals().values())):",
        "    pass  # loops forever on four boxes"]})
    iou = _region("pairwise_iou")
    first = _first_argument(iou)
    # wrong for about one input in ten, as the random examples of a property test find it or not
    _submission(copy, subs / "iou-random", {"box_coding"}, {iou.function: [
        f"if int(abs(float({first}.sum())) * 1e6) % 10 == 3:",
        f"    {first} = {first} * 1.01"]})
    hashes = {p.name: G.copy_tree_hash(p) for p in subs.iterdir()}
    reports = G.grade_all(subs, base / "gradebook.csv", base / "json", jobs=2, only=ONLY, test_timeout=8,
                          timeout=120)
    assert {p.name: G.copy_tree_hash(p) for p in subs.iterdir()} == hashes  # nothing written into them
    return base, reports, hashes


def _first_argument(region: M.Region) -> str:
    import ast

    tree = ast.parse((REPO / region.path).read_text(encoding="utf-8"))
    node = next(n for _, _, q, n in M._functions_by_line(tree) if q == region.function)
    return node.args.args[0].arg


def _by_student(reports: list[G.GradeReport]) -> dict[str, dict[str, G.Score]]:
    return {r.student: {s.name: s for s in r.scores} for r in reports}


def test_real_class_scores_untouched_and_solved(real_class: tuple[Path, list[G.GradeReport], dict[str, str]]) -> None:
    base, reports, _ = real_class
    by = _by_student(reports)
    box, nms = R.get_assignment("box_coding"), R.get_assignment("nms_ap")
    assert (by["untouched"]["box_coding"].points, by["untouched"]["nms_ap"].points) == (0, 0)
    assert by["solved"]["box_coding"].points == box.points and by["solved"]["box_coding"].status == "ok"
    assert by["solved"]["nms_ap"].points == 0 and by["solved"]["nms_ap"].lost_to_prerequisites == 0
    untouched_nms = {p.name: p for p in by["untouched"]["nms_ap"].parts}
    assert untouched_nms["nms"].max_points == nms.parts[0].points
    rows = list(csv.DictReader((base / "gradebook.csv").open(encoding="utf-8")))
    assert sorted(r["student"] for r in rows) == sorted(r.student for r in reports) and len(rows) == 6
    report = {r.student: r for r in reports}
    assert report["untouched"].differences == [] and report["solved"].differences == []


def test_real_class_cheats_are_flagged_and_gain_nothing(real_class: tuple[Path, list[G.GradeReport],
                                                                          dict[str, str]]) -> None:
    _, reports, _ = real_class
    by, report = _by_student(reports), {r.student: r for r in reports}
    assert {s.points for s in by["cheat-init"].values()} == {0}
    assert {s.status for s in by["cheat-init"].values()} == {"modified"}
    assert "modified" in report["cheat-init"].flags
    assert [d.path for d in report["cheat-init"].differences] == ["minissd/__init__.py"]
    # the edited conftest is not even run: the teacher's tests grade, exactly as for "solved"
    assert [(s.name, s.points) for s in by["cheat-conftest"].values()] == \
        [(s.name, s.points) for s in by["solved"].values()]
    assert "tests-modified" in report["cheat-conftest"].flags
    assert {d.path for d in report["cheat-conftest"].differences} == {"tests/conftest.py"}


def test_real_class_hang_costs_only_the_hung_tests(real_class: tuple[Path, list[G.GradeReport],
                                                                       dict[str, str]]) -> None:
    _, reports, _ = real_class
    by = _by_student(reports)
    hung = by["nms-hangs"]
    assert hung["box_coding"].points == R.get_assignment("box_coding").points  # untouched by the hang
    nms = hung["nms_ap"]
    assert nms.status == "timeout" and nms.hung and all("nms" in n for n in nms.hung)
    parts = {p.name: p for p in nms.parts}
    assert parts["voc_ap"].points == parts["voc_ap"].max_points  # the AP tests finished and count
    assert 0 < parts["nms"].passed and parts["nms"].failed == len(nms.hung)
    assert nms.seconds < 120


def test_real_class_random_answer_gets_the_same_score_twice(real_class: tuple[Path, list[G.GradeReport],
                                                                                dict[str, str]]) -> None:
    base, reports, _ = real_class
    first = next(r for r in reports if r.student == "iou-random")
    again = G.grade(base / "submissions" / "iou-random", only="box_coding", test_timeout=8, timeout=120)
    box = {s.name: s for s in first.scores}["box_coding"]
    assert 0 < box.points < R.get_assignment("box_coding").points  # wrong for some inputs only
    assert [(p.name, p.passed, p.failed) for p in again.scores[0].parts] == \
        [(p.name, p.passed, p.failed) for p in box.parts]
    assert again.scores[0].points == box.points and again.suite_hash == first.suite_hash


def test_command_line_grade_all_help_names_the_gradebook() -> None:
    proc = subprocess.run([sys.executable, "-m", "minissd.classroom", "grade-all", "--help"], capture_output=True,
                          text=True, cwd=REPO, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0 and "--csv" in proc.stdout and "--on-modified" in proc.stdout
