"""``minissd assignment {make,grade,grade-all,list}`` (also ``python -m minissd.classroom``)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from . import registry
from .grade import ASSIGNMENT_TIMEOUT, ON_MODIFIED, TEST_TIMEOUT, format_report, grade, grade_all
from .make import make_student_copy


def _cmd_make(args: argparse.Namespace) -> int:
    report = make_student_copy(args.out, only=args.only, source=args.source, solutions=args.solutions,
                               use_git=not args.no_git)
    print(report.summary())
    return 0


def _limits(args: argparse.Namespace) -> dict[str, Any]:
    return {"only": args.only, "reference": args.reference, "tests_dir": args.tests,
            "test_timeout": args.test_timeout if args.test_timeout > 0 else None, "timeout": args.timeout,
            "on_modified": args.on_modified}


def _cmd_grade(args: argparse.Namespace) -> int:
    report = grade(args.dir, **_limits(args))
    print(json.dumps(report.as_dict()) if args.json else format_report(report))
    return 0


def _cmd_grade_all(args: argparse.Namespace) -> int:
    reports = grade_all(args.dir, csv_path=args.csv, json_dir=args.json, jobs=args.jobs, **_limits(args))
    for r in reports:
        flags = f"  [{', '.join(r.flags)}]" if r.flags else ""
        print(f"{r.student:<24} {r.points:>6g} / {r.max_points:g}{flags}")
    print(f"{len(reports)} submissions graded; gradebook: {args.csv}")
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    for a in registry.ASSIGNMENTS:
        parts = ", ".join(f"{p.name} {p.points:g}" for p in a.parts)
        print(f"{a.name:<16} {a.points:>3g} points  {a.title} ({parts})")
    return 0


def _grading_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--only", metavar="NAME,...", help="grade only these assignments")
    p.add_argument("--reference", metavar="DIR", help="the teacher's checkout whose tests grade and whose "
                   "code is the integrity baseline (default: the checkout this minissd runs from)")
    p.add_argument("--tests", metavar="TESTS_DIR", help="the teacher's tests folder, anywhere "
                   "(default: REFERENCE/tests; TESTS_DIR/hidden counts too)")
    p.add_argument("--test-timeout", type=float, default=TEST_TIMEOUT,
                   help=f"seconds per test before it counts as hung; 0 for none (default {TEST_TIMEOUT:g})")
    p.add_argument("--timeout", type=float, default=ASSIGNMENT_TIMEOUT,
                   help=f"seconds per assignment for all its tests (default {ASSIGNMENT_TIMEOUT:g})")
    p.add_argument("--on-modified", choices=ON_MODIFIED, default="zero",
                   help="code changed outside the solution regions: zero the assignments it could help "
                        "(default) or only flag it")


def add_subparser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``assignment {make,grade,grade-all,list}`` on the ``minissd`` command's subparsers."""
    p = subparsers.add_parser("assignment", help="classroom assignments: make a student copy, grade it",
                              description="Classroom assignments (see docs/assignments.md).")
    sub = p.add_subparsers(dest="assignment_command", metavar="ACTION")
    sub.required = True
    make = sub.add_parser("make", help="write a student copy of the repository",
                          description="Write a student copy: the git-tracked files, solution regions replaced "
                                      "by NotImplementedError, notebook outputs cleared, no benchmarks; the "
                                      "solution notebooks go to OUT-solutions.")
    make.add_argument("out", metavar="OUT", help="a new folder for the student copy")
    make.add_argument("--only", metavar="NAME,...", help="remove only these assignments (default: all)")
    make.add_argument("--source", metavar="DIR", help="the repository to copy (default: this checkout)")
    make.add_argument("--solutions", metavar="DIR", help="where the solution notebooks go "
                      "(default: OUT-solutions)")
    make.add_argument("--no-git", action="store_true", help="copy a folder that is not a git checkout "
                      "(everything but caches and virtual environments: check it for stray files)")
    make.set_defaults(func=_cmd_make)
    gr = sub.add_parser("grade", help="grade one submission with the teacher's tests",
                        description="Grade a submission: the teacher's tests run against its minissd package, "
                                    "one subprocess per assignment; code changed outside the solution regions "
                                    "is reported.")
    gr.add_argument("dir", metavar="DIR", help="the submission (root of a student copy, or a folder holding it)")
    gr.add_argument("--json", action="store_true", help="print the grade as one line of JSON")
    _grading_options(gr)
    gr.set_defaults(func=_cmd_grade)
    ga = sub.add_parser("grade-all", help="grade every student folder of DIR into a CSV gradebook",
                        description="Grade each folder of SUBMISSIONS_DIR (one per student) and write the "
                                    "gradebook: one row per student, a column per assignment, total, flags.")
    ga.add_argument("dir", metavar="SUBMISSIONS_DIR", help="one folder per student")
    ga.add_argument("--csv", required=True, metavar="FILE", help="the gradebook to write")
    ga.add_argument("--json", metavar="DIR", help="also write one JSON report per student into DIR")
    ga.add_argument("--jobs", type=int, default=1, metavar="N", help="submissions graded at once (default 1)")
    _grading_options(ga)
    ga.set_defaults(func=_cmd_grade_all)
    ls = sub.add_parser("list", help="list the assignments and their parts")
    ls.set_defaults(func=_cmd_list)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m minissd.classroom ...``: the same commands without the ``minissd`` CLI."""
    parser = argparse.ArgumentParser(prog="python -m minissd.classroom")
    add_subparser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["assignment", *(sys.argv[1:] if argv is None else argv)])
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, RuntimeError, OSError) as exc:
        print(f"minissd assignment: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
