"""Solution markers: parsing and validating the regions, and writing the student version of a file.

The code a student writes sits in the library between two comment lines, nbgrader's convention: a
BEGIN line naming the assignment and an END line (see :data:`BEGIN_MARKER` and ``docs/assignments.md``
for the exact syntax). A region always lies inside one function, after its docstring, so the student
copy keeps the signature and the docstring.

The marker words are assembled from two pieces so that this file, which must talk about them,
contains no marker itself: the student copy is checked for the joined text, and a before-commit hook
counts BEGIN and END lines per file.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import os
import re
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from .registry import Assignment, _registry, names, registry_problems

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
#: The line length of the project's ruff configuration: the student stubs stay within it.
LINE_LENGTH = 120

# The BEGIN marker and the assignment's name on a comment line of its own (the name is required); the
# END line may repeat the name. Any other line that mentions a marker is an error, so the before-commit
# hook's BEGIN/END counts and this parser always agree.
_NAME = r"[A-Za-z_][A-Za-z0-9_]*"

# CPython 3.11's ast.parse keeps a recursion counter per interpreter, not per thread: two threads parsing
# at once (grade-all --jobs N) can fail with "AST constructor recursion depth mismatch". One lock avoids it.
_AST_LOCK = threading.Lock()


def parse_source(text: str, filename: str = "<unknown>") -> ast.Module:
    """``ast.parse(text)``, one thread at a time."""
    with _AST_LOCK:
        return ast.parse(text, filename=filename)

_BEGIN_RE = re.compile(rf"^(?P<indent>[ \t]*)#[ \t]*{BEGIN_MARKER}(?:[ \t]+(?P<name>{_NAME}))?[ \t]*$")
_END_RE = re.compile(rf"^(?P<indent>[ \t]*)#[ \t]*{END_MARKER}(?:[ \t]+(?P<name>{_NAME}))?[ \t]*$")
#: Directory names never scanned or copied (caches, build output, virtual environments).
SKIP_DIRS = frozenset({".git", ".venv", ".ci-venv", "venv", "__pycache__", ".pytest_cache", ".ruff_cache",
                       ".hypothesis", ".ipynb_checkpoints", "build", "dist", "runs", "minissd-demo"})


# =========================================================================== regions
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
        tree = parse_source(text, filename=path)
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


def package_python_files(root: Path) -> Iterator[Path]:
    """The .py files of the package ``root/minissd`` (where regions live), skipping caches."""
    base = root / "minissd"
    if base.is_dir():
        for p in sorted(base.rglob("*.py")):
            if not any(part in SKIP_DIRS for part in p.relative_to(root).parts):
                yield p


def scan_regions(root: str | os.PathLike[str], known: Iterable[str] | None = None) -> list[Region]:
    """All solution regions of the package of the checkout at ``root``, validated, in file order."""
    root = Path(root)
    known = names() if known is None else list(known)
    regions: list[Region] = []
    for p in package_python_files(root):
        text = p.read_text(encoding="utf-8")
        if BEGIN_MARKER in text or END_MARKER in text:
            regions.extend(find_regions(text, p.relative_to(root).as_posix(), known))
    return regions


def files_of(regions: Sequence[Region]) -> dict[str, list[str]]:
    """Assignment name -> the files holding its regions (in scan order)."""
    out: dict[str, list[str]] = {}
    for r in regions:
        files = out.setdefault(r.assignment, [])
        if r.path not in files:
            files.append(r.path)
    return out


def check_registry(regions: Sequence[Region], assignments: Sequence[Assignment] | None = None) -> list[str]:
    """Problems between the marked regions and the registry (an empty list when they agree).

    Every region must belong to a registered assignment and lie in one of its listed functions (by
    qualified name, wherever the file is), and every listed function must contain at least one region of
    that assignment. The registry's own problems (parts, points) are included.
    """
    assignments = _registry(assignments)
    problems = registry_problems(assignments)
    by_name = {a.name: a for a in assignments}
    marked: dict[str, set[str]] = {a.name: set() for a in assignments}
    for r in regions:
        a = by_name.get(r.assignment)
        if a is None:
            problems.append(f"{r.path}:{r.begin}: region of unregistered assignment {r.assignment!r}")
        elif r.function not in a.functions:
            problems.append(f"{r.path}:{r.begin}: {r.function} is marked for {a.name} but is not in its "
                            "functions")
        else:
            marked[a.name].add(r.function)
    for a in assignments:
        for f in a.functions:
            if f not in marked[a.name]:
                problems.append(f"{a.name}: {f} is listed but no solution region of {a.name} lies in it")
    return problems


def region_message(region: Region, assignment: Assignment | None) -> str:
    """The ``NotImplementedError`` message of a region in the student copy.

    It starts ``"<assignment>: write <function> in <file>"``: the grader finds this text in a failure
    to tell which missing code a test hit.
    """
    what = assignment.functions.get(region.function, "") if assignment is not None else ""
    msg = f"{region.assignment}: write {region.function} in {region.path}"
    return f"{msg} ({what})" if what else msg


def _wrap_literal(message: str, width: int) -> list[str]:
    """``message`` as string literals of at most ``width`` characters each; joined they give it back.

    Breaks after a space where one is close enough, inside a word only when a word alone is too long.
    """
    def fits(t: str) -> bool:
        return len(json.dumps(t, ensure_ascii=True)) <= width

    chunks: list[str] = []
    rest = message
    while not fits(rest):
        k = len(rest)
        while k > 1 and not fits(rest[:k]):
            k -= 1
        space = rest.rfind(" ", 0, k)
        if space >= k // 2:
            k = space + 1
        chunks.append(rest[:k])
        rest = rest[k:]
    chunks.append(rest)
    return [json.dumps(c, ensure_ascii=True) for c in chunks if c]  # JSON strings are Python literals too


def stub_lines(region: Region, message: str, keep: Sequence[str] = (), newline: str = "\n") -> list[str]:
    """The lines that replace a region in the student copy: lint-clean, within :data:`LINE_LENGTH`.

    ``keep`` are names that only the removed code used (locals assigned before it, imports of the
    module): the stub mentions them, so that the copy passes ``ruff check`` without unused names and
    the student sees what was prepared for them.
    """
    ind = region.indent
    out = []
    if keep:
        value = keep[0] if len(keep) == 1 else f"({', '.join(keep)})"
        out.append(f"{ind}_ = {value}  # prepared for the code you write here{newline}")
    one = f"{ind}raise NotImplementedError({json.dumps(message, ensure_ascii=True)})"
    if len(one) <= LINE_LENGTH:
        return [*out, one + newline]
    parts = _wrap_literal(message, LINE_LENGTH - len(ind) - 4)
    return [*out, f"{ind}raise NotImplementedError({newline}",
            *[f"{ind}    {p}{newline}" for p in parts], f"{ind}){newline}"]


def _loaded_names(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, (ast.Load, ast.Del))}


def _stored_names(fn: ast.AST) -> set[str]:
    """Names assigned in ``fn``'s own body (not its arguments; nested functions included)."""
    out: set[str] = set()
    for n in ast.walk(fn):
        if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store):
            out.add(n.id)
    return out


def _module_imports(tree: ast.Module) -> set[str]:
    out: set[str] = set()
    for n in tree.body:
        if isinstance(n, (ast.Import, ast.ImportFrom)):
            for a in n.names:
                if a.name != "*" and not (isinstance(n, ast.ImportFrom) and n.module == "__future__"):
                    out.add((a.asname or a.name).split(".")[0])
    return out


@dataclasses.dataclass(frozen=True)
class Stub:
    """Where a region's stub lies in the student version of a file (0-based lines, end exclusive)."""

    start: int
    end: int
    region: Region


def stub_source(text: str, path: str, only: Iterable[str] | None = None,
                assignments: Sequence[Assignment] | None = None) -> tuple[str, list[Stub]]:
    """The student version of one Python file, and where its stubs lie.

    Regions of the assignments in ``only`` (all when None) become a ``raise NotImplementedError(...)``
    stub at the region's indentation (see :func:`stub_lines`); regions of other assignments keep their
    code and lose only the two marker lines, so no marker text is left either way.
    """
    by_name = {a.name: a for a in _registry(assignments)}
    regions = find_regions(text, path, by_name)
    if not regions:
        return text, []
    strip = set(by_name) if only is None else set(only)
    lines = text.splitlines(keepends=True)
    newline = "\r\n" if lines and lines[0].endswith("\r\n") else "\n"
    chosen = [r for r in regions if r.assignment in strip]
    # first pass without the names to keep, to find which names the removed code alone used
    first = _assemble(lines, regions, strip, {}, by_name, newline)[0]
    keep: dict[int, list[str]] = {}
    if chosen:
        tree = parse_source(first, filename=path)
        imports = _module_imports(tree)
        still = _loaded_names(tree)
        for r in chosen:
            ind = len(r.indent)
            body = "".join(line[ind:] if line.strip() else "\n" for line in lines[r.begin:r.end - 1])
            try:
                used = _loaded_names(parse_source("def _region():\n" + "".join(
                    "    " + b if b.strip() else b for b in body.splitlines(keepends=True))))
            except SyntaxError:  # pragma: no cover - find_regions checked that the file parses
                used = set()
            # locals of the region's function, or of a function around it (a closure), that only the
            # removed code read
            local: set[str] = set()
            for _first, _last, qual, fn in _functions_by_line(tree):
                if r.function == qual or r.function.startswith(qual + "."):
                    local |= _stored_names(fn) - _loaded_names(fn)
            names_ = sorted(n for n in used if (n in local) or (n in imports and n not in still))
            if names_:
                keep[r.begin] = names_
                still |= set(names_)  # one stub mentioning an import is enough
    result, stubs = _assemble(lines, regions, strip, keep, by_name, newline)
    try:
        parse_source(result, filename=path)
    except SyntaxError as exc:  # pragma: no cover - find_regions' checks should make this impossible
        raise MarkerError(f"{path}: the student version does not parse ({exc.msg}, line {exc.lineno})",
                          ) from None
    return result, stubs


def _assemble(lines: list[str], regions: Sequence[Region], strip: set[str], keep: Mapping[int, list[str]],
              by_name: Mapping[str, Assignment], newline: str) -> tuple[str, list[Stub]]:
    out: list[str] = []
    stubs: list[Stub] = []
    cursor = 0  # index of the next original line to copy
    for r in regions:
        out.extend(lines[cursor:r.begin - 1])
        if r.assignment in strip:
            new = stub_lines(r, region_message(r, by_name.get(r.assignment)), keep.get(r.begin, ()), newline)
            stubs.append(Stub(len(out), len(out) + len(new), r))
            out.extend(new)
        else:
            out.extend(lines[r.begin:r.end - 1])
        cursor = r.end
    out.extend(lines[cursor:])
    return "".join(out), stubs


def strip_source(text: str, path: str, only: Iterable[str] | None = None,
                 assignments: Sequence[Assignment] | None = None) -> str:
    """The student version of one Python file (:func:`stub_source` without the stub positions)."""
    return stub_source(text, path, only, assignments)[0]


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


