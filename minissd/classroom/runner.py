"""Running pytest for the grader: one subprocess, results over a pipe, a watchdog per test.

A run imports the submission's ``minissd`` package (a copy of exactly the reference package's files,
taken from the submission, alone on ``PYTHONPATH``) and runs the **teacher's** test files, chosen by
node id. pytest is pinned: ``-c`` points to a configuration the grader writes into the run's temporary
folder, ``--rootdir`` and ``--confcutdir`` to the folder above the tests (so their ``conftest.py`` is
used wherever they are), no cache provider, no notebook plugin, the working directory is the temporary
folder. Nothing is written into the submission (``PYTHONDONTWRITEBYTECODE=1``, Hypothesis' folder in
the temporary folder), and results come back over a pipe from :mod:`minissd.classroom.plugin`, never
through a file.

The watchdog: the plugin announces each test as it starts. A test that runs longer than
``test_timeout`` seconds (setup included) is a hang: the whole process group is killed, the test is
recorded as "timeout", and the tests that had not finished run again in a new process without it.
``timeout`` bounds the whole run, reruns included; past it the unfinished tests count as not run. A
process that dies in a test (``os._exit``, a segfault) is handled like a hang: that test is "crashed"
and the others run again.
"""

from __future__ import annotations

import dataclasses
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from .registry import NEEDS_MARKER

_PLUGIN_MODULE = "_minissd_grade_plugin"


@dataclasses.dataclass
class TestResult:
    """The outcome of one test in a grading run."""

    __test__ = False  # not a pytest test class, despite the name

    node: str
    outcome: str = "not run"  # passed, failed, error, skipped, timeout, crashed or not run
    markers: list[str] = dataclasses.field(default_factory=list)  # its assignment markers
    needs: list[str] = dataclasses.field(default_factory=list)  # the assignments of its needs(...) marker
    message: str = ""  # the first line of the failure
    raised: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # (assignment, function) missing
    seconds: float = 0.0
    finished: bool = False


@dataclasses.dataclass
class RunResult:
    """One grading run: per-test results and what went wrong, if anything.

    ``status`` is "ok", "timeout" (a test hung or the run's time ran out: the finished tests still
    count), "crashed" (the process died outside any test), "collection error" (a test file could not be
    imported; its tests count as not run) or "no tests".
    """

    status: str
    tests: dict[str, TestResult]
    detail: str = ""
    seconds: float = 0.0
    hung: list[str] = dataclasses.field(default_factory=list)
    collect_errors: list[str] = dataclasses.field(default_factory=list)


def _ini(names: Iterable[str]) -> str:
    markers = [f"    {n}: classroom assignment {n}" for n in names]
    markers += [f"    {NEEDS_MARKER}(*assignments): uses these assignments' code without grading them",
                "    gpu: needs a GPU", "    slow: a longer test"]
    return "[pytest]\naddopts =\nmarkers =\n" + "\n".join(markers) + "\n"


def prepare_package(submission: Path, files: Sequence[str], dest: Path) -> Path:
    """Copy the submission's versions of the reference package ``files`` to ``dest/minissd``; ``dest``."""
    for rel in files:
        if not rel.startswith("minissd/"):
            continue
        s = submission / rel
        if s.is_file():
            d = dest / rel
            d.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(s, d)
    return dest


def _kill(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def run_pytest(package_root: Path, tests_dir: Path, nodes: Sequence[str] | None, names: Sequence[str],
               test_timeout: float | None = 10.0, timeout: float = 60.0, collect_only: bool = False,
               python: str | None = None) -> RunResult:
    """Run the teacher's tests (``nodes``, or whole files) against the package in ``package_root``.

    Args:
        package_root: the folder that holds the ``minissd`` package to import (nothing else of it is
            importable: it is the only entry added to the path).
        tests_dir: the teacher's tests folder; pytest's root is its parent.
        nodes: node ids relative to that root (``tests/test_boxes.py::test_iou[x]``) or file paths.
        names: the assignment names (markers to report, messages to recognise).
        test_timeout: seconds per test before it counts as hung (None: no limit).
        timeout: seconds for the whole run, reruns after hangs included.
        collect_only: only collect (to learn the tests and their markers).
        python: the interpreter (default: this one).
    """
    started = time.monotonic()
    deadline = started + timeout
    tests: dict[str, TestResult] = {}
    hung: list[str] = []
    collect_errors: list[str] = []
    root = tests_dir.parent
    todo = list(nodes) if nodes is not None else [tests_dir.name]
    status, detail = "ok", ""
    with tempfile.TemporaryDirectory(prefix="minissd-grade-") as tmp_s:
        tmp = Path(tmp_s)
        (tmp / "plugin").mkdir()
        shutil.copyfile(Path(__file__).with_name("plugin.py"), tmp / "plugin" / f"{_PLUGIN_MODULE}.py")
        (tmp / "pytest.ini").write_text(_ini(names), encoding="utf-8")
        (tmp / "work").mkdir()
        attempt = 0
        while todo:
            attempt += 1
            once = _run_once(tmp, attempt, package_root, root, todo, names, test_timeout, deadline, collect_only,
                             python)
            for node, t in once["tests"].items():
                prior = tests.get(node)
                if prior is None or not prior.finished:
                    tests[node] = t
            collect_errors += once["collect_errors"]
            if once["hung"] is not None:
                node, why = once["hung"]
                t = tests.setdefault(node, TestResult(node))
                t.outcome, t.finished = why, True
                t.message = (f"hung: still running after {test_timeout:g} s, stopped" if why == "timeout"
                             else f"the test process died during this test: {once['tail']}")
                hung.append(node)
                status = "timeout" if why == "timeout" or status == "timeout" else "crashed"
                detail = f"{why} in {node}"
                todo = [n for n in todo if n != node and not _finished(tests, n)]
                if time.monotonic() >= deadline:
                    status, detail = "timeout", f"stopped after {timeout:g} s ({detail})"
                    break
                continue
            if once["timed_out"]:
                status, detail = "timeout", f"the run took longer than {timeout:g} s and was stopped"
            elif once["exitstatus"] is None:
                status, detail = "crashed", f"pytest exited without finishing: {once['tail']}"
            elif collect_errors and status == "ok":
                status, detail = "collection error", collect_errors[0]
            elif once["exitstatus"] == 5 and not tests and status == "ok":
                status, detail = "no tests", "no test collected"
            break
    return RunResult(status, tests, detail, time.monotonic() - started, hung, collect_errors)


def _finished(tests: dict[str, TestResult], node: str) -> bool:
    t = tests.get(node)
    return t is not None and t.finished


def _run_once(tmp: Path, attempt: int, package_root: Path, root: Path, todo: Sequence[str],
              names: Sequence[str], test_timeout: float | None, deadline: float, collect_only: bool,
              python: str | None) -> dict[str, Any]:
    r, w = os.pipe()
    log = tmp / f"output-{attempt}.txt"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "PYTHON", "HYPOTHESIS"))}
    env.update(PYTHONPATH=os.pathsep.join([str(tmp / "plugin"), str(package_root)]), PYTHONDONTWRITEBYTECODE="1",
               PYTHONHASHSEED="0", PYTHONNOUSERSITE="1", MPLBACKEND="Agg",
               HYPOTHESIS_STORAGE_DIRECTORY=str(tmp / "hypothesis"))
    args = [str(root / n) for n in todo]
    cmd = [python or sys.executable, "-m", "pytest", "-c", str(tmp / "pytest.ini"), "--rootdir", str(root),
           "--confcutdir", str(root), "-p", _PLUGIN_MODULE, "-p", "no:cacheprovider", "-p", "no:nbmake",
           "-p", "no:randomly", "-p", "no:timeout", "--basetemp", str(tmp / f"basetemp-{attempt}"),
           f"--minissd-grade-fd={w}", f"--minissd-grade-names={','.join(names)}", "-q", "--no-header",
           "-p", "no:warnings", "--tb=short", "--continue-on-collection-errors",
           *(["--collect-only"] if collect_only else []), *args]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=tmp / "work", env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, pass_fds=(w,), start_new_session=True)
    os.close(w)
    tests: dict[str, TestResult] = {}
    result: dict[str, Any] = {"tests": tests, "collect_errors": [], "hung": None, "timed_out": False,
                              "exitstatus": None, "tail": ""}
    current: tuple[str, float] | None = None
    buf = b""
    try:
        while True:
            now = time.monotonic()
            if current is not None and test_timeout is not None and now - current[1] > test_timeout:
                _kill(proc)
                result["hung"] = (current[0], "timeout")
                break
            if now >= deadline:
                _kill(proc)
                result["timed_out"] = True
                break
            ready, _, _ = select.select([r], [], [], 0.2)
            if not ready:
                continue
            chunk = os.read(r, 65536)
            if not chunk:
                break
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for line in lines:
                try:
                    ev = json.loads(line)
                except ValueError:
                    continue  # not the plugin's: ignore garbage written to the pipe
                current = _event(ev, tests, result, current)
    finally:
        os.close(r)
        if proc.poll() is None and (result["hung"] or result["timed_out"]):
            _kill(proc)
    if not result["hung"] and not result["timed_out"]:
        try:
            proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _kill(proc)
            result["timed_out"] = True
        if result["exitstatus"] is None and current is not None:
            result["hung"] = (current[0], "crashed")  # the process died inside this test
    result["tail"] = _tail(log)
    return result


def _event(ev: dict[str, Any], tests: dict[str, TestResult], result: dict[str, Any],
           current: tuple[str, float] | None) -> tuple[str, float] | None:
    kind = ev.get("e")
    node = str(ev.get("node", ""))
    if kind == "collected":
        tests[node] = TestResult(node, markers=list(ev.get("markers", [])), needs=list(ev.get("needs", [])))
    elif kind == "collect_error":
        result["collect_errors"].append(f"{node or 'collection'}: {ev.get('message', '')}")
    elif kind == "start":
        tests.setdefault(node, TestResult(node))
        return node, time.monotonic()
    elif kind == "report":
        t = tests.setdefault(node, TestResult(node))
        when, outcome = ev.get("when"), ev.get("outcome")
        if outcome == "failed":
            if t.outcome not in ("failed", "error"):
                t.outcome = "failed" if when == "call" else "error"
                t.message = str(ev.get("message", ""))
            t.raised = sorted({*t.raised, *(tuple(x) for x in ev.get("raised", []))})
        elif outcome == "skipped" and t.outcome == "not run":
            t.outcome = "skipped"
        elif outcome == "passed" and when == "call" and t.outcome == "not run":
            t.outcome = "passed"
        if when == "teardown":
            t.finished = True
            if current is not None and current[0] == node:
                t.seconds = time.monotonic() - current[1]
                return None
    elif kind == "finish":
        result["exitstatus"] = int(ev.get("exitstatus", 1))
    return current


def _tail(log: Path, limit: int = 400) -> str:
    try:
        text = log.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return " | ".join(lines[-3:])[-limit:]
