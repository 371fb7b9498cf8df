"""The assignments: what a student writes, where, and how many points each piece is worth.

Functions are named by their qualified name only (``Div.backward``, ``im2col.fill``), never by file:
the files that hold them are found by scanning the package for solution regions
(:func:`minissd.classroom.markers.scan_regions`), so moving code between modules needs no change
here as long as the markers move with it. :func:`minissd.classroom.markers.check_registry` checks that
every listed function has a region and every region belongs to a listed function.

Each assignment is graded in **parts**. A part names the functions it grades, its points, and which
of the assignment's tests grade it: a regular expression searched in the test's name (the node id
after its last ``::``, parameters included). A test marked with the assignment belongs to the first
part whose expression it matches. ``requires`` names the earlier assignments whose code those tests
also call (NMS calls IoU): points lost because that code is missing are reported apart.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping, Sequence


@dataclasses.dataclass(frozen=True)
class Part:
    """A graded piece of an assignment.

    Attributes:
        name: a short name shown in reports ("iou", "nms"); unique over the registry.
        functions: qualified names (keys of :attr:`Assignment.functions`) this part grades.
        points: its share of the assignment's points.
        tests: a regular expression searched in a test's name (``test_x[param]``): the first part of
            the assignment that matches a marked test gets it.
        requires: names of other assignments whose code these tests call too.
    """

    name: str
    functions: tuple[str, ...]
    points: float
    tests: str = "."
    requires: tuple[str, ...] = ()

    def matches(self, test_name: str) -> bool:
        """Whether the test called ``test_name`` (``name[params]``) grades this part."""
        return re.search(self.tests, test_name) is not None


@dataclasses.dataclass(frozen=True)
class Assignment:
    """One assignment: what the student learns, where they write code, and how it is graded.

    Attributes:
        name: identifier, also the pytest marker (``python -m pytest -m <name> tests``).
        title: a short human title.
        goal: the learning goal, one or two sentences.
        functions: the qualified name of every function with a solution region of this assignment,
            mapped to a one-line description of what to write (it becomes the ``NotImplementedError``
            message in the student copy).
        notebook: the notebook to read first.
        parts: how the points are split over the functions (see :class:`Part`).
    """

    name: str
    title: str
    goal: str
    functions: Mapping[str, str]
    notebook: str
    parts: tuple[Part, ...]

    @property
    def marker(self) -> str:
        """The pytest marker of this assignment (its name)."""
        return self.name

    @property
    def points(self) -> float:
        """The maximum score: the sum of the parts' points."""
        return sum(p.points for p in self.parts)

    def part_of(self, test_name: str) -> Part | None:
        """The part that the test called ``test_name`` grades (None when no part matches)."""
        for p in self.parts:
            if p.matches(test_name):
                return p
        return None

    def check_command(self) -> str:
        """The command a student runs (in their copy) to check this assignment: the grader's selection."""
        return f"python -m pytest -m {self.name} tests"


ASSIGNMENTS: tuple[Assignment, ...] = (
    Assignment(
        name="autograd_ops",
        title="Backward of autograd operations",
        goal=(
            "Apply the chain rule one operation at a time: turn the gradient of an op's output into the "
            "gradients of its inputs, including broadcasting (unbroadcast) and the matrix-product rule."
        ),
        functions={
            "Div.backward": "the gradients of a / b for a and b, each unbroadcast to its input's shape",
            "MatMul.backward": "the gradients of a @ b for a and b, with 1-D operands and broadcast batch axes",
            "Exp.backward": "the gradient of exp(a), from the saved output",
            "Log.backward": "the gradient of log(a)",
            "Mean.backward": "spread the upstream gradient evenly over the averaged elements",
        },
        notebook="notebooks/01_autograd.ipynb",
        parts=(
            Part("MatMul.backward", ("MatMul.backward",), 3, r"matmul"),
            Part("Div.backward", ("Div.backward",), 3, r"div|t/3|3/t"),
            Part("Exp.backward", ("Exp.backward",), 1, r"[\[-]exp\]"),
            Part("Log.backward", ("Log.backward",), 1, r"[\[-]log\]"),
            Part("Mean.backward", ("Mean.backward",), 2, r"mean"),
        ),
    ),
    Assignment(
        name="conv2d",
        title="Convolution as a matrix product: im2col and col2im",
        goal=(
            "Turn a convolution into one matrix product by copying every window into a column (im2col), "
            "with stride, padding and dilation, and send the column gradient back to the pixels (col2im)."
        ),
        functions={
            "im2col": "copy each kernel offset's strided slice of the zero-padded x into cols",
            "col2im": "add each kernel offset's slice of the column gradient back onto its pixels",
        },
        notebook="notebooks/02_conv_and_pooling.ipynb",
        parts=(
            Part("col2im", ("col2im",), 6, r"gradient|backward"),
            Part("im2col", ("im2col",), 9),
        ),
    ),
    Assignment(
        name="max_pool",
        title="Max pooling forward and backward",
        goal=(
            "Compute the maximum of every window (padding never wins, ceil_mode windows are partial) and "
            "route each output's gradient to the input that won it, adding where windows overlap."
        ),
        functions={
            "MaxPool2dFunction.forward.run": "the running maximum over the kernel offsets",
            "MaxPool2dFunction.backward.run":
                "find each window's winner again (the first input equal to the output) and send the output's "
                "gradient to it, adding where windows overlap",
        },
        notebook="notebooks/02_conv_and_pooling.ipynb",
        parts=(
            Part("MaxPool2d.backward", ("MaxPool2dFunction.backward.run",), 5, r"gradient|backward"),
            Part("MaxPool2d.forward", ("MaxPool2dFunction.forward.run",), 5),
        ),
    ),
    Assignment(
        name="default_boxes",
        title="Default boxes of every feature map",
        goal=(
            "Generate SSD's default boxes: the box shapes at one location from the scales and aspect "
            "ratios, and their centres on the grid of one feature map, in the order the network predicts."
        ),
        functions={
            "_box_shapes": "the (width, height) of the boxes at one location, in the documented order",
            "feature_map_boxes": "the (size, size, A, 4) centre-form boxes of one feature map, normalized",
        },
        notebook="notebooks/04_default_boxes.ipynb",
        # every test of the default boxes runs both functions: one part
        parts=(Part("default boxes", ("_box_shapes", "feature_map_boxes"), 10),),
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
            "_intersection": "the pairwise intersection areas and the areas of the boxes",
            "pairwise_iou": "intersection over union of every pair, 0 where the union is 0",
            "encode": "the offsets (l_cx, l_cy, l_w, l_h) of eq. 2 with variances",
            "decode": "corner boxes from offsets: the inverse of encode",
        },
        notebook="notebooks/05_matching.ipynb",
        parts=(
            Part("iou", ("_intersection", "pairwise_iou"), 8, r"iou"),
            # encode and decode are each other's inverse: their tests check them together
            Part("encode/decode", ("encode", "decode"), 7, r"encode|decode|variances"),
        ),
    ),
    Assignment(
        name="matching",
        title="Matching ground truth to default boxes",
        goal=(
            "Give every ground-truth object its best default box (the bipartite step), then every default "
            "box with IoU >= 0.5 to the object it overlaps most (the threshold step)."
        ),
        functions={
            "_bipartite": "greedy bipartite matching: a distinct default box for each ground truth",
            "match_priors": "the ground truth of each default box (-1 for background) and its IoU",
        },
        notebook="notebooks/05_matching.ipynb",
        parts=(
            Part("bipartite", ("_bipartite",), 5, r"sharing_one_best|every_ground_truth_gets",
                 requires=("box_coding", "default_boxes")),
            Part("match_priors", ("match_priors",), 10, requires=("box_coding", "default_boxes")),
        ),
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
            "SmoothL1.forward": "elementwise smooth L1, saving what backward needs",
            "SmoothL1.backward": "the gradient of smooth L1",
            "hard_negative_mining":
                "the mask of the hardest negatives of each image, at most neg_pos_ratio per positive",
            "MultiBoxLoss.forward": "loss_loc and loss_conf of eq. 1 for a batch",
        },
        notebook="notebooks/06_multibox_loss.ipynb",
        parts=(
            Part("smooth L1", ("SmoothL1.forward", "SmoothL1.backward"), 3, r"smooth_l1"),
            Part("hard_negative_mining", ("hard_negative_mining",), 5, r"mining|mined"),
            Part("MultiBoxLoss.forward", ("MultiBoxLoss.forward",), 7),
        ),
    ),
    Assignment(
        name="nms_ap",
        title="Non-maximum suppression and average precision",
        goal=(
            "Keep the best box and drop the boxes that overlap it (greedy NMS), then score a detector: "
            "the area under the interpolated precision/recall curve and the VOC2007 11-point AP."
        ),
        functions={
            "_greedy_keep": "the greedy walk over candidates sorted best first, several lists at once",
            "nms": "greedy non-maximum suppression of one class",
            "voc_ap": "AP from a precision/recall curve (area, VOC07 11-point, and sampled at given recalls)",
        },
        notebook="notebooks/08_inference_nms_map.ipynb",
        parts=(
            Part("nms", ("_greedy_keep", "nms"), 5, r"nms|greedy", requires=("box_coding",)),
            Part("voc_ap", ("voc_ap",), 5, requires=("box_coding",)),
        ),
    ),
)

#: The marker of a test that uses assignments' code but grades none of them (the models, training):
#: ``@pytest.mark.needs("conv2d", "max_pool")``. In a student copy such a test fails with those
#: assignments' errors until they are done; the grader never scores it.
NEEDS_MARKER = "needs"


def _registry(assignments: Sequence[Assignment] | None) -> Sequence[Assignment]:
    """``assignments``, or the registry :data:`ASSIGNMENTS` (looked up at call time) when None."""
    return ASSIGNMENTS if assignments is None else assignments


def names(assignments: Sequence[Assignment] | None = None) -> list[str]:
    """The names of the assignments (all registered ones by default), in course order."""
    return [a.name for a in _registry(assignments)]


def get_assignment(name: str, assignments: Sequence[Assignment] | None = None) -> Assignment:
    """The assignment called ``name`` (ValueError naming the known ones otherwise)."""
    for a in _registry(assignments):
        if a.name == name:
            return a
    raise ValueError(f"unknown assignment {name!r}; known: {', '.join(names(assignments))}")


def select(only: str | Iterable[str] | None,
           assignments: Sequence[Assignment] | None = None) -> list[Assignment]:
    """The assignments named in ``only`` ("a,b", "a b" or a list; None means all), in registry order."""
    assignments = _registry(assignments)
    if only is None:
        return list(assignments)
    items = re.split(r"[,\s]+", only) if isinstance(only, str) else [w for s in only for w in re.split(r"[,\s]+", s)]
    wanted = [s for s in items if s]
    if not wanted:
        raise ValueError("--only: expected one or more assignment names separated by commas")
    for s in wanted:
        get_assignment(s, assignments)  # raises for an unknown name
    return [a for a in assignments if a.name in wanted]


def registry_problems(assignments: Sequence[Assignment] | None = None) -> list[str]:
    """Problems of the registry itself (names, parts, points), without looking at any file."""
    assignments = _registry(assignments)
    problems: list[str] = []
    all_names = [a.name for a in assignments]
    if len(set(all_names)) != len(all_names):
        problems.append("two registered assignments share a name")
    part_names = [p.name for a in assignments for p in a.parts]
    if len(set(part_names)) != len(part_names):
        problems.append("two parts share a name")
    for a in assignments:
        if not a.parts:
            problems.append(f"{a.name}: no parts")
        covered: set[str] = set()
        for p in a.parts:
            if p.points <= 0:
                problems.append(f"{a.name}: part {p.name!r} must be worth positive points, got {p.points}")
            for f in p.functions:
                if f not in a.functions:
                    problems.append(f"{a.name}: part {p.name!r} grades {f}, which is not in its functions")
            covered.update(p.functions)
            for r in p.requires:
                if r not in all_names or r == a.name:
                    problems.append(f"{a.name}: part {p.name!r} requires {r!r}, not another registered "
                                    "assignment")
            try:
                re.compile(p.tests)
            except re.error as exc:
                problems.append(f"{a.name}: part {p.name!r}: bad test expression {p.tests!r}: {exc}")
        for f in a.functions:
            if f not in covered:
                problems.append(f"{a.name}: function {f} is graded by no part")
    return problems
