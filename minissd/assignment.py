"""Classroom assignments: the registry, the student copy (``make``) and grading (``grade``).

A teacher hands students a copy of minissd with the key pieces removed; students write them back and
the component tests grade their work. Three things make that work:

1. **Solution markers.** The code a student writes sits in the library between two comment lines,
   the solution markers of nbgrader's convention (a BEGIN line naming the assignment, an END line; see
   :data:`BEGIN_MARKER` and ``docs/assignments.md`` for the exact syntax). A region always lies inside
   one function, after its docstring, so the student copy keeps the signature and the docstring.
2. **The student copy** (:func:`make_student_copy`, ``minissd assignment make OUT``): the repository
   with every region replaced by ``raise NotImplementedError("<assignment>: <what to write>")``,
   exercise cells of nbgrader notebooks cleared the way nbgrader does, and teacher notes cut out of
   the Markdown docs. The solution notebooks go to a sibling folder, never into the copy.
3. **Grading** (:func:`grade`, ``minissd assignment grade DIR``): every assignment has a pytest marker
   (its name, registered in ``pyproject.toml``). A marker on a test means "this test needs that
   assignment's code". An assignment is graded on the marked tests of its own test files
   (:attr:`Assignment.tests`), each test counting for the last assignment it needs in course order
   (:func:`graded_tests`); marked tests elsewhere (the models, training) need several assignments at
   once and are not scored, so one unfinished assignment costs no points in another.

Nothing here imports the numeric parts of minissd: making and grading a copy never runs student code
in this process. Grading runs pytest in a subprocess with a timeout, so a submission that hangs or
crashes is scored (0 for that assignment), not fatal.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

# The marker words are assembled from two pieces so that this file, which must talk about them,
# contains no marker itself: the student copy is checked for the joined text, and a before-commit
# hook counts BEGIN and END lines per file.
_SOLUTION = "SOLUTION"
#: The text that opens a solution region (nbgrader's delimiter).
BEGIN_MARKER = "BEGIN " + _SOLUTION
#: The text that closes a solution region.
END_MARKER = "END " + _SOLUTION
#: nbgrader's delimiters for hidden tests inside autograded notebook cells.
BEGIN_HIDDEN = "BEGIN HIDDEN " + "TESTS"
END_HIDDEN = "END HIDDEN " + "TESTS"
#: Markdown blocks between these two comments are notes for teachers, cut from the student copy.
TEACHER_NOTES_BEGIN = "<!-- teacher" + "-notes -->"  # assembled too: this file goes into the copy
TEACHER_NOTES_END = "<!-- /teacher" + "-notes -->"

# The BEGIN marker and the assignment's name on a comment line of its own (the name is required); the
# END line may repeat the name. Any other line that mentions a marker is an error, so the before-commit
# hook's BEGIN/END counts and this parser always agree.
_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_BEGIN_RE = re.compile(rf"^(?P<indent>[ \t]*)#[ \t]*{BEGIN_MARKER}(?:[ \t]+(?P<name>{_NAME}))?[ \t]*$")
_END_RE = re.compile(rf"^(?P<indent>[ \t]*)#[ \t]*{END_MARKER}(?:[ \t]+(?P<name>{_NAME}))?[ \t]*$")


# =========================================================================== the registry
@dataclasses.dataclass(frozen=True)
class Assignment:
    """One assignment: what the student learns, where they write code, and how it is graded.

    Attributes:
        name: identifier, also the pytest marker (``python -m pytest -m <name>``).
        title: a short human title.
        goal: the learning goal, one or two sentences.
        functions: ``"path::Qualified.name"`` of every function with a solution region of this
            assignment, mapped to a one-line description of what to write (it becomes the
            ``NotImplementedError`` message in the student copy).
        notebook: the notebook to read first.
        points: the maximum score.
        tests: the test files whose tests marked ``name`` grade this assignment.
    """

    name: str
    title: str
    goal: str
    functions: Mapping[str, str]
    notebook: str
    points: int
    tests: tuple[str, ...]

    @property
    def marker(self) -> str:
        """The pytest marker of this assignment (its name)."""
        return self.name

    @property
    def files(self) -> tuple[str, ...]:
        """The library files a student edits, in order of first appearance."""
        return tuple(dict.fromkeys(key.split("::", 1)[0] for key in self.functions))

    def check_command(self) -> str:
        """The command a student runs (in their copy) to check this assignment."""
        return f"python -m pytest -m {self.name} {' '.join(self.tests)}"


ASSIGNMENTS: tuple[Assignment, ...] = (
    Assignment(
        name="autograd_ops",
        title="Backward of autograd operations",
        goal=(
            "Apply the chain rule one operation at a time: turn the gradient of an op's output into the "
            "gradients of its inputs, including broadcasting (unbroadcast) and the matrix-product rule."
        ),
        functions={
            "minissd/autograd/tensor.py::Div.backward":
                "the gradients of a / b for a and b, each unbroadcast to its input's shape",
            "minissd/autograd/tensor.py::MatMul.backward":
                "the gradients of a @ b for a and b, with 1-D operands and broadcast batch axes",
            "minissd/autograd/tensor.py::Exp.backward": "the gradient of exp(a), from the saved output",
            "minissd/autograd/tensor.py::Log.backward": "the gradient of log(a)",
            "minissd/autograd/tensor.py::Mean.backward":
                "spread the upstream gradient evenly over the averaged elements",
        },
        notebook="notebooks/01_autograd.ipynb",
        points=10,
        tests=("tests/test_autograd.py",),
    ),
    Assignment(
        name="conv2d",
        title="Convolution as a matrix product: im2col and col2im",
        goal=(
            "Turn a convolution into one matrix product by copying every window into a column (im2col), "
            "with stride, padding and dilation, and send the column gradient back to the pixels (col2im)."
        ),
        functions={
            "minissd/nn/im2col.py::im2col.fill":
                "copy each kernel offset's strided slice of x into cols, zeros where it reads padding",
            "minissd/nn/im2col.py::col2im.add":
                "add each kernel offset's slice of the column gradient back into dx",
        },
        notebook="notebooks/02_conv_and_pooling.ipynb",
        points=15,
        tests=("tests/test_conv.py",),
    ),
    Assignment(
        name="max_pool",
        title="Max pooling forward and backward",
        goal=(
            "Compute the maximum of every window (padding never wins, ceil_mode windows are partial) and "
            "route each output's gradient to the input that won it, adding where windows overlap."
        ),
        functions={
            "minissd/nn/functional.py::MaxPool2d.forward.run":
                "the running maximum over the kernel offsets",
            "minissd/nn/functional.py::MaxPool2d.backward.run":
                "find each window's winner again (the first input equal to the output) and send the output's "
                "gradient to it, adding where windows overlap",
        },
        notebook="notebooks/02_conv_and_pooling.ipynb",
        points=10,
        tests=("tests/test_pool.py",),
    ),
    Assignment(
        name="default_boxes",
        title="Default boxes of every feature map",
        goal=(
            "Generate SSD's default boxes: the box shapes at one location from the scales and aspect "
            "ratios, and their centres on the grid of one feature map, in the order the network predicts."
        ),
        functions={
            "minissd/priors.py::_box_shapes":
                "the (width, height) of the boxes at one location, in the documented order",
            "minissd/priors.py::feature_map_boxes":
                "the (size, size, A, 4) centre-form boxes of one feature map, normalized",
        },
        notebook="notebooks/04_default_boxes.ipynb",
        points=10,
        tests=("tests/test_priors.py",),
    ),
    Assignment(
        name="box_coding",
        title="IoU, encode and decode",
        goal=(
            "Measure the overlap of boxes (intersection over union, safe for empty boxes) and express a "
            "box relative to a default box the way SSD regresses it (centre offsets and log size ratios "
            "scaled by the variances), and back."
        ),
        functions={
            "minissd/boxes.py::_intersection": "the pairwise intersection areas and the areas of the boxes",
            "minissd/boxes.py::pairwise_iou": "intersection over union of every pair, 0 where the union is 0",
            "minissd/boxes.py::encode": "the offsets (l_cx, l_cy, l_w, l_h) of eq. 2 with variances",
            "minissd/boxes.py::decode": "corner boxes from offsets: the inverse of encode",
        },
        notebook="notebooks/05_matching.ipynb",
        points=15,
        tests=("tests/test_boxes.py",),
    ),
    Assignment(
        name="matching",
        title="Matching ground truth to default boxes",
        goal=(
            "Give every ground-truth object its best default box (the bipartite step), then every default "
            "box with IoU >= 0.5 to the object it overlaps most (the threshold step)."
        ),
        functions={
            "minissd/matching.py::_bipartite":
                "greedy bipartite matching: a distinct default box for each ground truth",
            "minissd/matching.py::match_priors":
                "the ground truth of each default box (-1 for background) and its IoU",
        },
        notebook="notebooks/05_matching.ipynb",
        points=15,
        tests=("tests/test_matching.py",),
    ),
    Assignment(
        name="multibox_loss",
        title="The MultiBox loss with hard negative mining",
        goal=(
            "Write SSD's training loss: smooth L1 over the positives, softmax cross-entropy over the "
            "positives and the hardest negatives (at most 3 per positive), both divided by the number of "
            "positives."
        ),
        functions={
            "minissd/loss.py::SmoothL1.forward": "elementwise smooth L1, saving what backward needs",
            "minissd/loss.py::SmoothL1.backward": "the gradient of smooth L1",
            "minissd/loss.py::hard_negative_mining":
                "the mask of the hardest negatives of each image, at most neg_pos_ratio per positive",
            "minissd/loss.py::MultiBoxLoss.forward": "loss_loc and loss_conf of eq. 1 for a batch",
        },
        notebook="notebooks/06_multibox_loss.ipynb",
        points=15,
        tests=("tests/test_loss.py",),
    ),
    Assignment(
        name="nms_ap",
        title="Non-maximum suppression and average precision",
        goal=(
            "Keep the best box and drop the boxes that overlap it (greedy NMS), then score a detector: "
            "the area under the interpolated precision/recall curve and the VOC2007 11-point AP."
        ),
        functions={
            "minissd/boxes.py::nms": "greedy non-maximum suppression of one class",
            "minissd/evaluation.py::voc_ap": "AP from a precision/recall curve (area and 11-point metrics)",
        },
        notebook="notebooks/08_inference_nms_map.ipynb",
        points=10,
        tests=("tests/test_boxes.py", "tests/test_evaluation.py"),
    ),
)


def _registry(assignments: Sequence[Assignment] | None) -> Sequence[Assignment]:
    """``assignments``, or the registry :data:`ASSIGNMENTS` (looked up at call time) when None."""
    return ASSIGNMENTS if assignments is None else assignments


def names(assignments: Sequence[Assignment] | None = None) -> list[str]:
    """The names of the assignments (all registered ones by default), in order."""
    return [a.name for a in _registry(assignments)]


def get_assignment(name: str, assignments: Sequence[Assignment] | None = None) -> Assignment:
    """The assignment called ``name`` (ValueError naming the known ones otherwise)."""
    for a in _registry(assignments):
        if a.name == name:
            return a
    raise ValueError(f"unknown assignment {name!r}; known: {', '.join(names(assignments))}")


def select(only: str | Iterable[str] | None,
           assignments: Sequence[Assignment] | None = None) -> list[Assignment]:
    """The assignments named in ``only`` ("a,b" or a list; None means all), in registry order."""
    assignments = _registry(assignments)
    if only is None:
        return list(assignments)
    wanted = [s.strip() for s in only.split(",")] if isinstance(only, str) else [s.strip() for s in only]
    wanted = [s for s in wanted if s]
    if not wanted:
        raise ValueError("--only: expected one or more assignment names separated by commas")
    for s in wanted:
        get_assignment(s, assignments)  # raises for an unknown name
    return [a for a in assignments if a.name in wanted]


# =========================================================================== solution regions
class MarkerError(ValueError):
    """A solution marker is malformed, unbalanced, misplaced or names an unknown assignment."""


@dataclasses.dataclass(frozen=True)
class Region:
    """One solution region of a Python file.

    Attributes:
        path: the file, relative to the repository root, with forward slashes.
        assignment: the assignment it belongs to.
        begin, end: 1-based line numbers of the BEGIN and END marker lines.
        indent: the indentation of the marker lines (the ``raise`` replacing the region gets it too).
        function: the qualified name of the function that contains the region (``Div.backward``).
    """

    path: str
    assignment: str
    begin: int
    end: int
    indent: str
    function: str

    @property
    def key(self) -> str:
        """``path::function``, as in :attr:`Assignment.functions`."""
        return f"{self.path}::{self.function}"


def _functions_by_line(tree: ast.AST) -> list[tuple[int, int, str, Any]]:
    """(first line, last line, qualified name, node) of every function, outer before inner."""
    out: list[tuple[int, int, str, Any]] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                qual = f"{prefix}{child.name}"
                first = min([child.lineno] + [d.lineno for d in child.decorator_list])
                out.append((first, child.end_lineno or child.lineno, qual, child))
                visit(child, qual + ".")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")
            else:
                visit(child, prefix)

    visit(tree, "")
    return out


def _signature_end(node: Any) -> int:
    """The last line of a function's signature (name, arguments, defaults, return annotation)."""
    a = node.args
    parts = [*a.posonlyargs, *a.args, *a.kwonlyargs, *a.defaults, *a.kw_defaults, a.vararg, a.kwarg,
             node.returns]
    return max([node.lineno] + [p.end_lineno or p.lineno for p in parts if p is not None])


def find_regions(text: str, path: str, known: Iterable[str] | None = None) -> list[Region]:
    """Parse and validate the solution regions of one Python file.

    Each region is a BEGIN line naming an assignment and an END line (optionally repeating the name) at
    the same indentation, inside one function and after its docstring; regions do not nest. With
    ``known`` (assignment names), a region of any other name is an error.

    Raises:
        MarkerError: naming the file and line of the first problem.
    """
    lines = text.splitlines()
    known_set = None if known is None else set(known)
    raw: list[tuple[int, int, str, str]] = []  # (begin, end, indent, name)
    open_: tuple[int, str, str] | None = None
    for no, line in enumerate(lines, start=1):
        if BEGIN_MARKER not in line and END_MARKER not in line:
            continue
        where = f"{path}:{no}"
        b, e = _BEGIN_RE.match(line), _END_RE.match(line)
        if b:
            if open_ is not None:
                raise MarkerError(f"{where}: {BEGIN_MARKER} inside the region opened at line {open_[0]}")
            name = b.group("name")
            if not name:
                raise MarkerError(f"{where}: {BEGIN_MARKER} must name its assignment "
                                  f"('# {BEGIN_MARKER} <assignment>')")
            if known_set is not None and name not in known_set:
                raise MarkerError(f"{where}: unknown assignment {name!r} (registered: "
                                  f"{', '.join(sorted(known_set)) or 'none'})")
            open_ = (no, b.group("indent"), name)
        elif e:
            if open_ is None:
                raise MarkerError(f"{where}: {END_MARKER} without a {BEGIN_MARKER} before it")
            begin, indent, name = open_
            if e.group("indent") != indent:
                raise MarkerError(f"{where}: {END_MARKER} is not indented like its {BEGIN_MARKER} "
                                  f"(line {begin})")
            if e.group("name") and e.group("name") != name:
                raise MarkerError(f"{where}: {END_MARKER} {e.group('name')} closes the region of "
                                  f"{name!r} opened at line {begin}")
            if no == begin + 1:
                raise MarkerError(f"{where}: the region opened at line {begin} is empty")
            raw.append((begin, no, indent, name))
            open_ = None
        else:
            raise MarkerError(f"{where}: a solution marker must be a comment line of its own: "
                              f"'# {BEGIN_MARKER} <assignment>' or '# {END_MARKER}', got {line.strip()!r}")
    if open_ is not None:
        raise MarkerError(f"{path}:{open_[0]}: {BEGIN_MARKER} {open_[2]} is never closed")
    if not raw:
        return []
    try:
        tree = ast.parse(text, filename=path)
    except SyntaxError as exc:
        raise MarkerError(f"{path}:{exc.lineno}: cannot parse the file: {exc.msg}") from None
    functions = _functions_by_line(tree)
    regions = []
    for begin, end, indent, name in raw:
        body_lines = lines[begin:end - 1]
        code = [line for line in body_lines if line.strip() and not line.lstrip().startswith("#")]
        if not code:
            raise MarkerError(f"{path}:{begin}: the region holds no code")
        if any(len(line) - len(line.lstrip()) < len(indent) for line in code):
            # a line left of the markers would belong to an enclosing block: the region would not be
            # one piece of code, and replacing it by one statement would change the program
            raise MarkerError(f"{path}:{begin}-{end}: every line of the region must be indented at least "
                              "as much as its markers")
        # comments after a function's last statement are outside its AST span: locate by the BEGIN line
        inside = [f for f in functions if f[0] < begin <= f[1]]
        if not inside:
            raise MarkerError(f"{path}:{begin}: a solution region must lie inside a function body")
        _, _, qual, node = max(inside, key=lambda f: f[0])  # the innermost function
        if len(indent) <= node.col_offset or begin <= _signature_end(node):
            raise MarkerError(f"{path}:{begin}: the region must lie inside the body of {qual}")
        doc = node.body[0]
        if (isinstance(doc, ast.Expr) and isinstance(doc.value, ast.Constant)
                and isinstance(doc.value.value, str) and begin <= (doc.end_lineno or doc.lineno)):
            raise MarkerError(f"{path}:{begin}: the region must start after the docstring of {qual}")
        regions.append(Region(path, name, begin, end, indent, qual))
    return regions


def _python_files(root: Path) -> Iterator[Path]:
    """The .py files of the package and the tests (where regions may live), skipping caches."""
    for top in ("minissd", "tests"):
        base = root / top
        if base.is_dir():
            for p in sorted(base.rglob("*.py")):
                if not any(part in _SKIP_DIRS for part in p.relative_to(root).parts):
                    yield p


def scan_regions(root: str | os.PathLike[str], known: Iterable[str] | None = None) -> list[Region]:
    """All solution regions of the repository at ``root`` (package and tests), validated."""
    root = Path(root)
    known = names() if known is None else list(known)
    regions: list[Region] = []
    for p in _python_files(root):
        text = p.read_text(encoding="utf-8")
        if BEGIN_MARKER in text or END_MARKER in text:
            regions.extend(find_regions(text, p.relative_to(root).as_posix(), known))
    return regions


def check_registry(regions: Sequence[Region],
                   assignments: Sequence[Assignment] | None = None) -> list[str]:
    """Problems between the marked regions and the registry (an empty list when they agree).

    Every region must belong to a registered assignment and lie in one of its listed functions, and
    every listed function must contain at least one region of that assignment.
    """
    assignments = _registry(assignments)
    problems: list[str] = []
    by_name = {a.name: a for a in assignments}
    if len(by_name) != len(assignments):
        problems.append("two registered assignments share a name")
    marked: dict[str, set[str]] = {a.name: set() for a in assignments}
    for r in regions:
        a = by_name.get(r.assignment)
        if a is None:
            problems.append(f"{r.path}:{r.begin}: region of unregistered assignment {r.assignment!r}")
        elif r.key not in a.functions:
            problems.append(f"{r.path}:{r.begin}: {r.function} is marked for {a.name} but is not in its "
                            "functions")
        else:
            marked[a.name].add(r.key)
    for a in assignments:
        for key in a.functions:
            if key not in marked[a.name]:
                problems.append(f"{a.name}: {key} is listed but has no solution region")
        if a.points <= 0:
            problems.append(f"{a.name}: points must be positive, got {a.points}")
        if not a.tests:
            problems.append(f"{a.name}: no test files listed")
    return problems


def _region_message(region: Region, assignment: Assignment | None) -> str:
    what = assignment.functions.get(region.key, "") if assignment is not None else ""
    msg = f"{region.assignment}: write {region.function} in {region.path}"
    return f"{msg} ({what})" if what else msg


def strip_source(text: str, path: str, only: Iterable[str] | None = None,
                 assignments: Sequence[Assignment] | None = None) -> str:
    """The student version of one Python file.

    Regions of the assignments in ``only`` (all when None) become ``raise NotImplementedError(...)`` at
    the region's indentation; regions of other assignments keep their code and lose only the two
    marker lines, so no marker text is left either way.
    """
    by_name = {a.name: a for a in _registry(assignments)}
    regions = find_regions(text, path, by_name)
    if not regions:
        return text
    strip = set(by_name) if only is None else set(only)
    lines = text.splitlines(keepends=True)
    newline = "\r\n" if lines and lines[0].endswith("\r\n") else "\n"
    out: list[str] = []
    cursor = 0  # index of the next original line to copy
    for r in regions:
        out.extend(lines[cursor:r.begin - 1])
        if r.assignment in strip:
            message = _region_message(r, by_name.get(r.assignment))
            literal = json.dumps(message, ensure_ascii=False)  # a valid Python string literal too
            out.append(f"{r.indent}raise NotImplementedError({literal}){newline}")
        else:
            out.extend(lines[r.begin:r.end - 1])
        cursor = r.end
    out.extend(lines[cursor:])
    result = "".join(out)
    try:
        ast.parse(result, filename=path)
    except SyntaxError as exc:  # pragma: no cover - find_regions' checks should make this impossible
        raise MarkerError(f"{path}: the student version does not parse ({exc.msg}, line {exc.lineno})",
                          ) from None
    return result


# =========================================================================== notebooks (nbgrader)
_CODE_STUB = "# YOUR CODE HERE\nraise NotImplementedError()"
_MARKDOWN_STUB = "YOUR ANSWER HERE"


def _source_lines(cell: Mapping[str, Any]) -> list[str]:
    src = cell.get("source", "")
    return list(src) if isinstance(src, list) else str(src).splitlines(keepends=True)


def _set_source(cell: dict[str, Any], text: str) -> None:
    cell["source"] = text.splitlines(keepends=True)


def _is_marker_line(line: str, delimiter: str) -> bool:
    """nbgrader's rule: a comment line (any number of '#') that contains the delimiter."""
    s = line.strip()
    return s.startswith("#") and delimiter in s


def _replace_blocks(lines: list[str], begin: str, end: str, replacement: str | None, where: str) -> str:
    """Replace each begin..end block (marker lines included) by ``replacement`` (None: drop it)."""
    out: list[str] = []
    inside = False
    for line in lines:
        if _is_marker_line(line, begin):
            if inside:
                raise MarkerError(f"{where}: nested {begin}")
            inside = True
            if replacement is not None:
                indent = line[: len(line) - len(line.lstrip())]
                stub = "".join(f"{indent}{r}\n" for r in replacement.split("\n"))
                out.append(stub)
        elif _is_marker_line(line, end):
            if not inside:
                raise MarkerError(f"{where}: {end} without {begin}")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise MarkerError(f"{where}: {begin} is never closed")
    return "".join(out).rstrip("\n") if replacement is not None or out else ""


def _drop_marker_lines(lines: list[str], delimiters: Sequence[str]) -> str:
    kept = [line for line in lines if not any(_is_marker_line(line, d) for d in delimiters)]
    return "".join(kept).rstrip("\n")


def split_notebook(nb: Mapping[str, Any], where: str = "notebook") -> tuple[dict[str, Any], dict[str, Any]]:
    """The student and the solution versions of an nbgrader notebook.

    Student version, as nbgrader's "generate assignment" makes it: in a cell whose metadata has
    ``nbgrader.solution: true`` the solution block between the BEGIN and END marker lines (the whole
    cell when it has none) becomes ``raise NotImplementedError()`` (code) or "YOUR ANSWER HERE"
    (Markdown); hidden-test blocks of autograded cells are removed; all outputs are cleared (they could
    show the answer). Solution version: the same notebook with only the marker lines removed, outputs
    kept.
    """
    student = json.loads(json.dumps(nb))
    solution = json.loads(json.dumps(nb))
    for i, (s_cell, k_cell) in enumerate(zip(student.get("cells", []), solution.get("cells", []))):
        meta = s_cell.get("metadata", {}).get("nbgrader", {})
        lines = _source_lines(s_cell)
        here = f"{where}, cell {i}"
        if meta.get("solution"):
            stub = _CODE_STUB if s_cell.get("cell_type") == "code" else _MARKDOWN_STUB
            if any(_is_marker_line(line, BEGIN_MARKER) for line in lines):
                _set_source(s_cell, _replace_blocks(lines, BEGIN_MARKER, END_MARKER, stub, here))
            else:
                _set_source(s_cell, stub)
        if meta.get("grade") and any(_is_marker_line(line, BEGIN_HIDDEN) for line in lines):
            _set_source(s_cell, _replace_blocks(_source_lines(s_cell), BEGIN_HIDDEN, END_HIDDEN, None, here))
        if s_cell.get("cell_type") == "code":
            s_cell["outputs"] = []
            s_cell["execution_count"] = None
        _set_source(k_cell, _drop_marker_lines(_source_lines(k_cell),
                                               (BEGIN_MARKER, END_MARKER, BEGIN_HIDDEN, END_HIDDEN)))
    return student, solution


def is_exercise_notebook(nb: Mapping[str, Any]) -> bool:
    """True when some cell carries nbgrader solution or grade metadata."""
    for cell in nb.get("cells", []):
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("solution") or meta.get("grade"):
            return True
    return False


def strip_teacher_notes(text: str, where: str = "file") -> str:
    """Markdown ``text`` without its teacher-notes blocks (replaced by a one-line comment)."""
    if TEACHER_NOTES_BEGIN not in text:
        return text
    pattern = re.compile(re.escape(TEACHER_NOTES_BEGIN) + r".*?" + re.escape(TEACHER_NOTES_END), re.DOTALL)
    out = pattern.sub("<!-- The notes for teachers are not part of the student copy. -->", text)
    if TEACHER_NOTES_BEGIN in out or TEACHER_NOTES_END in out:
        raise MarkerError(f"{where}: unbalanced teacher-notes comments")
    return out


# =========================================================================== make
#: Top-level entries of the repository that go into a student copy (those that exist).
COPY_TOP_LEVEL = ("minissd", "tests", "notebooks", "docs", "benchmarks", "pyproject.toml", "README.md",
                  "LICENSE", ".gitignore")
#: Directory names never copied (caches, build output, virtual environments, version control).
_SKIP_DIRS = frozenset({".git", ".venv", ".ci-venv", "venv", "__pycache__", ".pytest_cache", ".ruff_cache",
                        ".hypothesis", ".ipynb_checkpoints", "build", "dist", "runs", "minissd-demo"})
#: Paths (relative to the root) never copied: teacher-only tests. ``tests/hidden`` holds hidden tests
#: a teacher grades with (``grade --tests``); test_assignments.py checks the solution markers, which a
#: student copy no longer has.
EXCLUDED_PATHS = ("tests/hidden", "tests/test_assignments.py")
_LEAK_TEXTS = (BEGIN_MARKER.encode(), END_MARKER.encode(), BEGIN_HIDDEN.encode())


def repository_root() -> Path:
    """The checkout this minissd was imported from (the parent of the package folder)."""
    return Path(__file__).resolve().parent.parent


def _skipped(rel: Path) -> bool:
    parts = rel.parts
    if any(p in _SKIP_DIRS or p.endswith(".egg-info") for p in parts):
        return True
    posix = rel.as_posix()
    return any(posix == x or posix.startswith(x + "/") for x in EXCLUDED_PATHS) or rel.suffix == ".pyc"


def _walk(root: Path, avoid: Sequence[Path]) -> Iterator[Path]:
    """Files of the copied top-level entries, relative to ``root``, skipping ``avoid`` folders."""
    for top in COPY_TOP_LEVEL:
        start = root / top
        if start.is_file():
            yield Path(top)
        elif start.is_dir():
            for dirpath, dirnames, filenames in os.walk(start):
                d = Path(dirpath)
                dirnames[:] = sorted(n for n in dirnames
                                     if not _skipped((d / n).relative_to(root))
                                     and (d / n).resolve() not in avoid)
                for f in sorted(filenames):
                    rel = (d / f).relative_to(root)
                    if not _skipped(rel):
                        yield rel


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
                      assignments: Sequence[Assignment] | None = None) -> MakeReport:
    """Write a student copy of the repository ``source`` (default: this checkout) to ``out``.

    Args:
        out: a new (or empty) folder for the copy.
        only: the assignments to remove ("a,b" or a list); the others keep their solutions. All if None.
        source: the repository to copy (it must hold the package and its tests).
        solutions: where the solution notebooks go; default: the sibling folder ``<out>-solutions``.
        assignments: the registry (tests pass their own).

    The copy holds :data:`COPY_TOP_LEVEL` minus caches and :data:`EXCLUDED_PATHS`. It is built in a
    temporary folder next to ``out`` and renamed at the end, so a failure leaves no half-made copy.

    Raises:
        ValueError: bad arguments, an existing non-empty ``out``, or a solution marker problem.
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

    report = MakeReport(out=out_p, solutions=sol_p, assignments=chosen)
    out_p.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_p.name}-", dir=out_p.parent))
    tmp_sol = tmp / ".solutions"
    try:
        avoid = [p for p in (out_p, sol_p, tmp) if p == src or src in p.parents]
        for rel in _walk(src, avoid):
            _copy_one(src, tmp / "copy", tmp_sol, rel, chosen, assignments, report)
            report.files += 1
        leaks = [str(p.relative_to(tmp / "copy")) for p in sorted((tmp / "copy").rglob("*"))
                 if p.is_file() and any(t in p.read_bytes() for t in _LEAK_TEXTS)]
        if leaks:
            raise RuntimeError("make: marker text would remain in the student copy (nothing written): "
                               + ", ".join(leaks))
        if out_p.exists():
            out_p.rmdir()
        (tmp / "copy").rename(out_p)
        if report.notebooks:
            if sol_p.exists():
                sol_p.rmdir()
            shutil.move(str(tmp_sol), str(sol_p))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return report


def _copy_one(src: Path, dst_root: Path, sol_root: Path, rel: Path, chosen: list[str],
              assignments: Sequence[Assignment] | None, report: MakeReport) -> None:
    """Copy one file into the student copy, transformed according to its type."""
    s, d = src / rel, dst_root / rel
    d.parent.mkdir(parents=True, exist_ok=True)
    where = rel.as_posix()
    if rel.suffix == ".py":
        text = s.read_text(encoding="utf-8")
        if BEGIN_MARKER in text or END_MARKER in text:
            for r in find_regions(text, where, names(assignments)):
                if r.assignment in chosen:
                    report.stripped.append(r.key)
            text = strip_source(text, where, chosen, assignments)
        d.write_text(text, encoding="utf-8", newline="")
    elif rel.suffix == ".ipynb":
        raw = s.read_text(encoding="utf-8")
        nb = json.loads(raw)
        if is_exercise_notebook(nb):
            student, solution = split_notebook(nb, where)
            d.write_text(json.dumps(student, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
            k = sol_root / rel
            k.parent.mkdir(parents=True, exist_ok=True)
            k.write_text(json.dumps(solution, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
            report.notebooks.append(where)
        else:
            d.write_text(raw, encoding="utf-8", newline="")
    elif rel.suffix == ".md":
        d.write_text(strip_teacher_notes(s.read_text(encoding="utf-8"), where), encoding="utf-8", newline="")
    else:
        shutil.copy2(s, d)


# =========================================================================== grade
# A tiny pytest plugin, written to a temporary folder for each grading run (the submission's own
# minissd shadows this package there, so the plugin cannot be imported from it). It records, for
# every test that ran, its outcome, the assignment markers it carries and the first line of its failure.
_PLUGIN = r'''
import json, os, re
import pytest

_NAMES = set(json.loads(os.environ["MINISSD_GRADE_NAMES"]))
# the student copy's NotImplementedError messages start "<assignment>: write ..."; finding them in a
# failure (also in the output of a subprocess the test ran) tells which missing code it hit
_RAISED = re.compile(r"\b(" + "|".join(sorted(_NAMES)) + r"): write \S") if _NAMES else None
_OUT = os.environ["MINISSD_GRADE_OUT"]
_tests = {}
_collect_errors = []


def pytest_collectreport(report):
    if report.failed:
        _collect_errors.append({"node": report.nodeid, "message": str(report.longrepr)[-2000:]})


def pytest_collection_finish(session):
    for item in session.items:
        marks = sorted({m.name for m in item.iter_markers()} & _NAMES)
        _tests[item.nodeid] = {"markers": marks, "outcome": "not run", "message": "", "raised": []}


def _message(report):
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None:
        return crash.message
    return str(report.longrepr).strip().splitlines()[-1] if report.longrepr else ""


def pytest_runtest_logreport(report):
    entry = _tests.setdefault(report.nodeid,
                              {"markers": [], "outcome": "not run", "message": "", "raised": []})
    if report.failed:
        if entry["outcome"] not in ("failed", "error"):
            entry["outcome"] = "failed" if report.when == "call" else "error"
            entry["message"] = _message(report)[:2000]
        if _RAISED is not None:
            found = set(_RAISED.findall(str(report.longrepr))) | set(entry["raised"])
            entry["raised"] = sorted(found)
    elif report.skipped:
        if entry["outcome"] == "not run":
            entry["outcome"] = "skipped"
    elif report.when == "call" and entry["outcome"] == "not run":
        entry["outcome"] = "passed"


def pytest_sessionfinish(session, exitstatus):
    with open(_OUT, "w", encoding="utf-8") as f:
        json.dump({"exitstatus": int(exitstatus), "tests": _tests, "collect_errors": _collect_errors}, f)
'''


@dataclasses.dataclass
class TestResult:
    """The outcome of one test in a grading run."""

    __test__ = False  # not a pytest test class, despite the name

    node: str
    outcome: str  # "passed", "failed", "error", "skipped" or "not run"
    markers: list[str]  # the assignment markers the test carries
    message: str = ""  # the first line of the failure
    raised: list[str] = dataclasses.field(default_factory=list)  # assignments whose missing code it hit


@dataclasses.dataclass
class RunResult:
    """One pytest run of a submission: per-test results, or why there are none."""

    status: str  # "ok", "timeout", "crashed", "collection error" or "no tests"
    tests: list[TestResult]
    detail: str = ""
    seconds: float = 0.0
    returncode: int | None = None


@dataclasses.dataclass
class Score:
    """The grade of one assignment."""

    name: str
    points: float
    max_points: int
    passed: int
    failed: int
    skipped: int
    status: str
    detail: str = ""
    failures: list[dict[str, str]] = dataclasses.field(default_factory=list)

    @property
    def total(self) -> int:
        """Tests that count: passed + failed (errors count as failed; skipped tests do not count)."""
        return self.passed + self.failed

    def as_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["total"] = self.total
        return d


def _has_pytest_timeout() -> bool:
    import importlib.util  # noqa: PLC0415 - only grading needs it

    return importlib.util.find_spec("pytest_timeout") is not None


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


def run_pytest(directory: str | os.PathLike[str], args: Sequence[str], markers: Iterable[str],
               timeout: float = 900.0, test_timeout: float | None = 120.0,
               python: str | None = None) -> RunResult:
    """Run pytest on the code in ``directory`` in a subprocess and collect per-test results.

    The subprocess imports ``minissd`` from ``directory`` (it comes first on PYTHONPATH and is the
    working directory), ignores pyproject's ``addopts`` (no notebooks) and the cache, and records its
    results with a small plugin. ``markers`` are the marker names to report for each test.

    Args:
        directory: the repository to test (a student copy or a checkout).
        args: pytest arguments: test paths, ``-m`` expression, ...
        timeout: seconds for the whole run; past it the run is killed and reported as "timeout".
        test_timeout: seconds per test (pytest-timeout, when installed): one hanging test fails
            instead of stopping the run. None for no per-test limit.
        python: the interpreter (default: this one).
    """
    directory = Path(directory).resolve()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="minissd-grade-") as tmp:
        plugin_dir = Path(tmp)
        (plugin_dir / "_minissd_grade_plugin.py").write_text(_PLUGIN, encoding="utf-8")
        out_json = plugin_dir / "results.json"
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            [str(directory), str(plugin_dir)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
        env["MINISSD_GRADE_NAMES"] = json.dumps(sorted(set(markers)))
        env["MINISSD_GRADE_OUT"] = str(out_json)
        env.setdefault("MPLBACKEND", "Agg")
        env.pop("PYTEST_ADDOPTS", None)
        env.pop("PYTEST_DISABLE_PLUGIN_AUTOLOAD", None)
        # no cache written into the submission; no nbmake: notebooks are not graded, and importing
        # the plugin alone costs seconds per run
        cmd = [python or sys.executable, "-m", "pytest", "-p", "_minissd_grade_plugin", "-p", "no:cacheprovider",
               "-p", "no:nbmake", "-o", "addopts=", "-q", "--no-header", "-rN", "--tb=line"]
        if test_timeout and _has_pytest_timeout():
            cmd.append(f"--timeout={test_timeout:g}")  # pytest-timeout loads through its entry point
        cmd += list(args)
        try:
            proc = subprocess.run(cmd, cwd=directory, env=env, capture_output=True, text=True,
                                  timeout=timeout, errors="replace")
        except subprocess.TimeoutExpired:
            return RunResult("timeout", [], f"pytest ran longer than {timeout:g} s and was stopped",
                             time.monotonic() - started)
        seconds = time.monotonic() - started
        tail = (proc.stdout + proc.stderr).strip()[-1500:]
        if not out_json.exists():
            return RunResult("crashed", [], f"pytest exited with code {proc.returncode} without results: "
                             f"{tail}", seconds, proc.returncode)
        data = json.loads(out_json.read_text(encoding="utf-8"))
    tests = [TestResult(node, t["outcome"], t["markers"], t["message"], t["raised"])
             for node, t in data["tests"].items()]
    if data["collect_errors"]:
        first = data["collect_errors"][0]
        return RunResult("collection error", tests,
                         f"{first['node'] or 'collection'}: {_last_line(first['message'])}",
                         seconds, proc.returncode)
    if data["exitstatus"] == 5:
        return RunResult("no tests", tests, "no test carries this marker", seconds, proc.returncode)
    if data["exitstatus"] not in (0, 1):
        return RunResult("crashed", tests, f"pytest exit status {data['exitstatus']}: {tail}", seconds,
                         proc.returncode)
    return RunResult("ok", tests, "", seconds, proc.returncode)


#: Hidden tests of the teacher's tests folder (never copied to students); see ``grade(tests_dir=...)``.
HIDDEN_TESTS = "tests/hidden"


def graded_tests(a: Assignment, tests: Iterable[TestResult],
                 assignments: Sequence[Assignment] | None = None) -> list[TestResult]:
    """The tests among ``tests`` that grade ``a``.

    A test grades ``a`` when it lies in one of a's test files (or in the teacher's hidden tests) and ``a``
    is the last, in course order, of the assignments it is marked with. A test that needs several
    assignments (NMS needs IoU) thus grades the latest of them; the earlier ones are its prerequisites.
    """
    order = names(assignments)
    out = []
    for t in tests:
        file = t.node.split("::", 1)[0]
        marks = [m for m in order if m in t.markers]
        if marks and marks[-1] == a.name and (file in a.tests or file.startswith(HIDDEN_TESTS + "/")):
            out.append(t)
    return out


def score_run(a: Assignment, run: RunResult, assignments: Sequence[Assignment] | None = None) -> Score:
    """The score of ``a`` from one pytest run (which may have covered other assignments too)."""
    if run.status not in ("ok", "no tests"):
        return Score(a.name, 0.0, a.points, 0, 0, 0, run.status, run.detail)
    mine = graded_tests(a, run.tests, assignments)
    passed = sum(t.outcome == "passed" for t in mine)
    skipped = sum(t.outcome == "skipped" for t in mine)
    failed = len(mine) - passed - skipped  # failed, error, or collected but never run
    if passed + failed == 0:
        return Score(a.name, 0.0, a.points, 0, 0, skipped, "no tests",
                     f"no test graded {a.name} in {', '.join(a.tests)}")
    failures = [{"test": t.node, "message": t.message} for t in mine
                if t.outcome not in ("passed", "skipped")]
    return Score(a.name, round(a.points * passed / (passed + failed), 2), a.points, passed, failed, skipped,
                 "ok", "", failures)


def grade(directory: str | os.PathLike[str], only: str | Iterable[str] | None = None,
          timeout: float = 900.0, test_timeout: float | None = 120.0, isolate: bool = False,
          tests_dir: str | os.PathLike[str] | None = None,
          assignments: Sequence[Assignment] | None = None) -> list[Score]:
    """Grade the submission in ``directory``: one :class:`Score` per assignment.

    An assignment scores ``points * passed / (passed + failed)`` over its graded tests (see
    :func:`graded_tests`: marked with its name, in its test files, and not needing a later assignment);
    errors count as failures, skipped tests (e.g. GPU-only ones on a machine without a GPU) do not count.

    All assignments are first graded in one pytest run (fast). If that run does not finish cleanly (it
    times out, crashes, or a file fails to import), each assignment is rerun on its own with its own
    ``timeout``, so that only the assignments whose code hangs or crashes get 0. ``isolate=True`` goes
    straight to one run per assignment.

    Args:
        directory: the submission (a student copy with the student's code).
        only: grade only these assignments ("a,b" or a list).
        timeout: seconds per pytest run.
        test_timeout: seconds per test (with pytest-timeout installed), None for no limit.
        isolate: one run per assignment from the start.
        tests_dir: a ``tests`` folder to run instead of the submission's own (the teacher's, so that
            edited tests do not count); its ``hidden`` subfolder, if any, is graded too.
        assignments: the registry (tests pass their own).

    Raises:
        FileNotFoundError: ``directory`` or ``tests_dir`` does not exist.
        ValueError: ``directory`` has no ``minissd`` package, or an unknown assignment in ``only``.
    """
    d = Path(directory).resolve()
    if not d.is_dir():
        raise FileNotFoundError(f"grade: {d} is not a folder")
    if not (d / "minissd").is_dir():
        raise ValueError(f"grade: {d} has no minissd/ package; pass the root folder of a student copy")
    tdir = Path(tests_dir).resolve() if tests_dir is not None else None
    if tdir is not None and not tdir.is_dir():
        raise FileNotFoundError(f"grade: the tests folder {tdir} does not exist")
    chosen = select(only, assignments)
    all_names = names(assignments)

    def paths(a: Assignment) -> list[str]:
        if tdir is None:
            return list(a.tests)
        return [str(tdir / Path(f).relative_to("tests")) for f in a.tests]

    scores: dict[str, Score] = {}
    for a in chosen:
        missing = [p for p in paths(a) if not (d / p).is_file()]
        if missing:
            scores[a.name] = Score(a.name, 0.0, a.points, 0, 0, 0, "missing tests",
                                   f"test file not found: {', '.join(missing)}")
    hidden = [str(tdir / "hidden")] if tdir is not None and (tdir / "hidden").is_dir() else []
    todo = [a for a in chosen if a.name not in scores]
    if todo and not isolate:
        files = list(dict.fromkeys(p for a in todo for p in paths(a))) + hidden
        expr = " or ".join(a.name for a in todo)
        run = run_pytest(d, ["-m", expr, *files], all_names, timeout, test_timeout)
        if run.status in ("ok", "no tests"):
            for a in todo:
                scores[a.name] = score_run(a, run, assignments)
    for a in todo:
        if a.name not in scores:
            run = run_pytest(d, ["-m", a.name, *paths(a), *hidden], all_names, timeout, test_timeout)
            scores[a.name] = score_run(a, run, assignments)
    return [scores[a.name] for a in chosen]


def format_scores(scores: Sequence[Score]) -> str:
    """A plain-text score table (one row per assignment, then the total)."""
    rows = [("assignment", "points", "passed", "status")]
    for s in scores:
        rows.append((s.name, f"{s.points:g} / {s.max_points}", f"{s.passed} / {s.total}",
                     s.status if not s.detail else f"{s.status}: {s.detail}"[:70]))
    total = sum(s.points for s in scores)
    rows.append(("total", f"{round(total, 2):g} / {sum(s.max_points for s in scores)}", "", ""))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = []
    for k, r in enumerate(rows):
        lines.append(f"{r[0]:<{widths[0]}}  {r[1]:>{widths[1]}}  {r[2]:>{widths[2]}}  {r[3]}".rstrip())
        if k == 0 or k == len(rows) - 2:
            lines.append("-" * len(lines[0]))
    return "\n".join(lines)


def scores_json(directory: str | os.PathLike[str], scores: Sequence[Score]) -> dict[str, Any]:
    """The machine-readable grade (what ``grade --json`` prints)."""
    return {
        "directory": str(Path(directory).resolve()),
        "points": round(sum(s.points for s in scores), 2),
        "max_points": sum(s.max_points for s in scores),
        "assignments": [s.as_dict() for s in scores],
    }


# =========================================================================== command line
def _cmd_make(args: argparse.Namespace) -> int:
    report = make_student_copy(args.out, only=args.only, source=args.source, solutions=args.solutions)
    print(report.summary())
    return 0


def _cmd_grade(args: argparse.Namespace) -> int:
    scores = grade(args.dir, only=args.only, timeout=args.timeout,
                   test_timeout=args.test_timeout if args.test_timeout > 0 else None,
                   isolate=args.isolate, tests_dir=args.tests)
    if args.json:
        print(json.dumps(scores_json(args.dir, scores), indent=2))
    else:
        print(format_scores(scores))
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    for a in ASSIGNMENTS:
        print(f"{a.name:<16} {a.points:>3} points  {a.title}")
    return 0


def add_subparser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``assignment {make,grade,list}`` on the ``minissd`` command's subparsers."""
    p = subparsers.add_parser("assignment", help="classroom assignments: make a student copy, grade it",
                              description="Classroom assignments (see docs/assignments.md).")
    sub = p.add_subparsers(dest="assignment_command", metavar="ACTION")
    sub.required = True
    make = sub.add_parser("make", help="write a student copy of the repository",
                          description="Write a student copy: solution regions replaced by "
                                      "NotImplementedError, exercise notebooks cleared; the solution "
                                      "notebooks go to OUT-solutions.")
    make.add_argument("out", metavar="OUT", help="a new folder for the student copy")
    make.add_argument("--only", metavar="NAME,...", help="remove only these assignments (default: all)")
    make.add_argument("--source", metavar="DIR", help="the repository to copy (default: this checkout)")
    make.add_argument("--solutions", metavar="DIR", help="where the solution notebooks go "
                      "(default: OUT-solutions)")
    make.set_defaults(func=_cmd_make)
    gr = sub.add_parser("grade", help="run each assignment's tests in DIR and print the scores",
                        description="Grade a submission: each assignment's marked tests run in a "
                                    "subprocess; a hanging or crashing assignment scores 0.")
    gr.add_argument("dir", metavar="DIR", help="the submission (root of a student copy)")
    gr.add_argument("--json", action="store_true", help="print machine-readable JSON")
    gr.add_argument("--only", metavar="NAME,...", help="grade only these assignments")
    gr.add_argument("--tests", metavar="TESTS_DIR", help="run this tests folder (e.g. the teacher's, with "
                    "hidden tests in TESTS_DIR/hidden) instead of the submission's own")
    gr.add_argument("--timeout", type=float, default=900.0, help="seconds per pytest run (default 900)")
    gr.add_argument("--test-timeout", type=float, default=120.0,
                    help="seconds per test, with pytest-timeout installed; 0 for none (default 120)")
    gr.add_argument("--isolate", action="store_true", help="one pytest run per assignment")
    gr.set_defaults(func=_cmd_grade)
    ls = sub.add_parser("list", help="list the assignments")
    ls.set_defaults(func=_cmd_list)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m minissd.assignment ...``: the same commands without the ``minissd`` CLI."""
    parser = argparse.ArgumentParser(prog="python -m minissd.assignment")
    add_subparser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["assignment", *(sys.argv[1:] if argv is None else argv)])
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        print(f"minissd assignment: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
