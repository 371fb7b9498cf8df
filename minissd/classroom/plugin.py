"""The pytest plugin of a grading run (loaded with ``-p``; it never imports minissd).

The grader copies this file into the run's temporary folder and loads it from there, so that the
submission's own ``minissd`` (first on the path of the run) cannot replace it. It does three things:

* reports every event of the run, one JSON object per line, to the pipe whose file descriptor the
  grader passes with ``--minissd-grade-fd``: the collected tests with their assignment markers, the
  start of each test (so the grader knows which test hangs), each phase's outcome with the first line
  of its failure, collection errors, and the end of the session. Nothing is written to a file;
* names the assignments whose missing code a failure hit: the student copy's ``NotImplementedError``
  messages start ``"<assignment>: write <function> in ..."``, found in the failure's text (also when a
  test ran the code in a subprocess);
* loads a Hypothesis profile before any test module is imported: derandomized (the same examples on
  every run), no example database (nothing remembered between submissions, nothing written), no
  deadline and no too-slow health check (their outcome depends on the machine's load), no shrinking
  (a failing property test stops at its first failing example), so that grading the same submission
  twice gives the same score, quickly. The global generators of ``random`` and ``numpy.random`` are
  seeded before each test for the same reason.
"""

from __future__ import annotations

import json
import os
import random
import re
import sys
from typing import Any

import pytest

_state: dict[str, Any] = {"fd": None, "names": set(), "raised": None}
#: The name of the marker of tests that use assignments' code without grading them.
NEEDS_MARKER = "needs"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("minissd-grade", "minissd grading (internal)")
    group.addoption("--minissd-grade-fd", type=int, default=None, help="file descriptor for the results")
    group.addoption("--minissd-grade-names", default="", help="the assignment names, comma separated")


def _hypothesis_profile() -> None:
    try:
        from hypothesis import HealthCheck, Phase, settings  # noqa: PLC0415 - only when the tests use it
    except ImportError:  # pragma: no cover - hypothesis is a dev dependency
        return
    # no shrinking: a grade needs to know that a test fails, not its smallest failing example, and
    # shrinking a failing property test costs far more than running it
    settings.register_profile("minissd-grade", derandomize=True, database=None, deadline=None,
                              print_blob=False, suppress_health_check=[HealthCheck.too_slow],
                              phases=[Phase.explicit, Phase.generate], report_multiple_bugs=False)
    settings.load_profile("minissd-grade")


def _send(**event: Any) -> None:
    fd = _state["fd"]
    if fd is None:
        return
    data = (json.dumps(event) + "\n").encode("utf-8")
    try:
        while data:
            data = data[os.write(fd, data):]
    except OSError:  # the grader stopped listening (it killed the run): nothing more to say
        _state["fd"] = None


def pytest_configure(config: pytest.Config) -> None:
    _state["fd"] = config.getoption("--minissd-grade-fd")
    names = {n for n in config.getoption("--minissd-grade-names").split(",") if n}
    _state["names"] = names
    if names:
        _state["raised"] = re.compile(r"\b(" + "|".join(sorted(names)) + r"): write (\S+) in ")
    _hypothesis_profile()


def pytest_collectreport(report: pytest.CollectReport) -> None:
    if report.failed:
        _send(e="collect_error", node=report.nodeid, message=_one_line(str(report.longrepr), last=True))


def pytest_collection_finish(session: pytest.Session) -> None:
    for item in session.items:
        marks = sorted({m.name for m in item.iter_markers()} & _state["names"])
        needs = sorted({str(a) for m in item.iter_markers(NEEDS_MARKER) for a in m.args})
        _send(e="collected", node=item.nodeid, markers=marks, needs=needs)


def pytest_runtest_logstart(nodeid: str, location: Any) -> None:
    _send(e="start", node=nodeid)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    # code that draws from the global generators without seeding them (random.random(),
    # numpy.random.rand()) gets the same numbers in every grading run
    random.seed(0)
    np = sys.modules.get("numpy")
    if np is not None:
        np.random.seed(0)


def _one_line(text: str, last: bool = False) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return ""
    return (lines[-1] if last else lines[0])[:500]


def _message(report: pytest.TestReport) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None:
        return _one_line(crash.message)
    return _one_line(str(report.longrepr), last=True) if report.longrepr else ""


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    raised: list[list[str]] = []
    if report.failed and _state["raised"] is not None:
        raised = sorted({(m.group(1), m.group(2)) for m in _state["raised"].finditer(str(report.longrepr))})
        raised = [list(r) for r in raised]
    outcome = "passed" if report.passed else "skipped" if report.skipped else "failed"
    _send(e="report", node=report.nodeid, when=report.when, outcome=outcome,
          message=_message(report) if report.failed else "", raised=raised)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _send(e="finish", exitstatus=int(exitstatus))
