"""Classroom assignments: the registry, the solution markers, the student copy and the grader.

A teacher hands students a copy of minissd with the key pieces removed (``minissd assignment make``);
students write them back; the teacher's tests grade their work (``minissd assignment grade`` for one
submission, ``grade-all`` for a class). See ``docs/assignments.md``.

* :mod:`.registry`: the assignments, their functions (by qualified name) and their graded parts;
* :mod:`.markers`: parsing the solution regions, writing the student version of a file;
* :mod:`.make`: the student copy;
* :mod:`.integrity`: what a submission changed outside its regions;
* :mod:`.runner` and :mod:`.plugin`: running the teacher's tests in a subprocess, results over a pipe;
* :mod:`.grade`: scores, one submission, a class;
* :mod:`.cli`: the ``minissd assignment`` commands.

``grade`` is a submodule here; the function that grades one submission is
``minissd.classroom.grade.grade``. The detector never imports this package, and this package never
imports the detector: making and grading never run student code in the grader's own process.
"""

from .grade import GradeReport, Score, collect_suite, format_report, grade_all
from .make import make_student_copy
from .markers import BEGIN_MARKER, END_MARKER, MarkerError, check_registry, scan_regions
from .registry import ASSIGNMENTS, Assignment, Part, get_assignment, names, select

__all__ = ["ASSIGNMENTS", "BEGIN_MARKER", "END_MARKER", "Assignment", "GradeReport", "MarkerError", "Part", "Score",
           "check_registry", "collect_suite", "format_report", "grade_all", "get_assignment",
           "make_student_copy", "names", "scan_regions", "select"]
