"""Tests for minissd.autograd: every op's gradient, the backward engine, and the dtype/shape rules.

The central table ``CASES`` lists, for every Function in ``minissd.autograd.ops``, one or more small
computations on random float64 inputs (random sizes, broadcasting and edge cases included). Each
case is checked twice:

* ``test_gradient_matches_finite_differences``: ``gradcheck`` passes (on NumPy, and on CuPy where a
  GPU is present);
* ``test_broken_backward_is_caught``: with that op's ``backward`` deliberately made wrong, the same
  check fails, so none of the gradient checks can pass vacuously.

``test_every_op_has_a_gradient_check`` fails when someone adds an op to ``ops`` without a case here.
The remaining tests use numbers worked out by hand.
"""

from __future__ import annotations

import doctest
import math
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from minissd import Tensor, backend, no_grad, to_numpy
from minissd.autograd import (
    Function,
    GradcheckError,
    concatenate,
    enable_grad,
    gradcheck,
    is_grad_enabled,
    ops,
    stack,
)

# Few sampled elements per input keep the whole table fast; the cases are small, so most inputs are
# checked completely anyway.
MAX_SAMPLES = 24

REPO = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- input helpers
def leaf(rng: np.random.Generator, shape: tuple[int, ...], low: float = -1.0, high: float = 1.0) -> Tensor:
    """A float64 leaf with uniform values in [low, high)."""
    return Tensor(rng.uniform(low, high, size=shape), requires_grad=True)


def leaf_away_from_zero(rng: np.random.Generator, shape: tuple[int, ...], low: float = 0.5,
                        high: float = 1.5) -> Tensor:
    """A float64 leaf with |values| in [low, high) and random signs (for /, abs, relu: no kink at 0)."""
    mag = rng.uniform(low, high, size=shape)
    return Tensor(mag * rng.choice([-1.0, 1.0], size=shape), requires_grad=True)


def dims(rng: np.random.Generator, n: int) -> list[int]:
    """``n`` random sizes in 2..4 (random shapes, small enough for fast finite differences)."""
    return [int(d) for d in rng.integers(2, 5, size=n)]


# Broadcasting patterns for the elementwise binary ops: each returns (shape_a, shape_b).
BROADCAST_PATTERNS: dict[str, Callable[[np.random.Generator], tuple[tuple[int, ...], tuple[int, ...]]]] = {
    "same": lambda r: (lambda a, b: ((a, b), (a, b)))(*dims(r, 2)),
    "row": lambda r: (lambda a, b: ((a, b), (b,)))(*dims(r, 2)),
    "row-left": lambda r: (lambda a, b: ((b,), (a, b)))(*dims(r, 2)),
    "both-stretch": lambda r: (lambda a, b, c: ((a, 1, b), (c, 1)))(*dims(r, 3)),
    "scalar": lambda r: (lambda a, b: ((), (a, b)))(*dims(r, 2)),
    "ones": lambda r: (lambda a, b: ((a, b), (1, 1)))(*dims(r, 2)),
}


@dataclass
class Case:
    """One gradient check: ``fn`` applied to the tensors ``make(rng)`` returns."""

    id: str
    op: type[Function]  # the Function whose backward the case exercises
    fn: Callable[..., Tensor]
    make: Callable[[np.random.Generator], list[Tensor]]
    kwargs: dict[str, Any] = field(default_factory=dict)  # extra gradcheck arguments


def _binary_cases() -> list[Case]:
    cases = []
    ops_table = [
        ("add", ops.Add, lambda a, b: a + b, leaf),
        ("sub", ops.Sub, lambda a, b: a - b, leaf),
        ("mul", ops.Mul, lambda a, b: a * b, leaf),
        # denominators kept away from 0, where 1/b is steep and finite differences inaccurate
        ("div", ops.Div, lambda a, b: a / b, None),
        # base > 0 so that log(base) in d/d(exponent) is defined
        ("pow", ops.Pow, lambda a, b: a**b, None),
    ]
    for name, op, fn, _ in ops_table:
        for pattern, shapes in BROADCAST_PATTERNS.items():
            def make(rng: np.random.Generator, name: str = name, shapes: Any = shapes) -> list[Tensor]:
                sa, sb = shapes(rng)
                if name == "div":
                    return [leaf(rng, sa), leaf_away_from_zero(rng, sb)]
                if name == "pow":
                    return [leaf(rng, sa, 0.5, 2.0), leaf(rng, sb, -1.5, 1.5)]
                return [leaf(rng, sa), leaf(rng, sb)]

            cases.append(Case(f"{name}-{pattern}", op, fn, make))
    return cases


def _matmul_cases() -> list[Case]:
    # (shape of a, shape of b) as functions of random sizes m, k, n, batch
    patterns = {
        "2d@2d": lambda m, k, n, B: ((m, k), (k, n)),
        "1d@2d": lambda m, k, n, B: ((k,), (k, n)),
        "2d@1d": lambda m, k, n, B: ((m, k), (k,)),
        "1d@1d": lambda m, k, n, B: ((k,), (k,)),
        "batched": lambda m, k, n, B: ((B, m, k), (B, k, n)),
        "batched@2d": lambda m, k, n, B: ((B, m, k), (k, n)),
        "broadcast-batch": lambda m, k, n, B: ((2, 1, m, k), (B, k, n)),
        "1d@batched": lambda m, k, n, B: ((k,), (B, k, n)),
        "batched@1d": lambda m, k, n, B: ((B, m, k), (k,)),
    }
    cases = []
    for pid, shapes in patterns.items():
        def make(rng: np.random.Generator, shapes: Any = shapes) -> list[Tensor]:
            sa, sb = shapes(*dims(rng, 4))
            return [leaf(rng, sa), leaf(rng, sb)]

        cases.append(Case(f"matmul-{pid}", ops.MatMul, lambda a, b: a @ b, make))
    return cases


def _one(shape_fn: Callable[[list[int]], tuple[int, ...]], n: int = 3, low: float = -1.0,
         high: float = 1.0, away: bool = False) -> Callable[[np.random.Generator], list[Tensor]]:
    """A ``make`` for a single input whose shape is ``shape_fn(random sizes)``."""

    def make(rng: np.random.Generator) -> list[Tensor]:
        shape = shape_fn(dims(rng, n))
        if away:
            return [leaf_away_from_zero(rng, shape, low, high)]
        return [leaf(rng, shape, low, high)]

    return make


ABC = _one(lambda d: (d[0], d[1], d[2]))  # one random 3-D input in [-1, 1)
AB = _one(lambda d: (d[0], d[1]), n=2)


def two_2x3(rng: np.random.Generator) -> list[Tensor]:
    """Two random (2, 3) inputs (stack needs equal shapes)."""
    return [leaf(rng, (2, 3)), leaf(rng, (2, 3))]


# fixed index arrays (NumPy); inputs are at least 2 along every axis, so 0 and 1 are always valid
REPEATED = np.array([0, 1, 0, 0])


def _unary_and_shape_cases() -> list[Case]:
    c = [
        Case("powscalar-2", ops.PowScalar, lambda x: x**2, ABC),
        Case("powscalar-3-negative-base", ops.PowScalar, lambda x: x**3, ABC),
        Case("powscalar-0.5", ops.PowScalar, lambda x: x**0.5, _one(lambda d: tuple(d), low=0.5, high=2.0)),
        Case("powscalar--1.5", ops.PowScalar, lambda x: x**-1.5, _one(lambda d: tuple(d), low=0.5, high=2.0)),
        Case("powscalar-0", ops.PowScalar, lambda x: x**0, ABC),
        # a constant base raised to a tensor goes through Pow with a base that needs no gradient
        Case("rpow", ops.Pow, lambda x: 2.5**x, ABC),
        Case("neg", ops.Neg, lambda x: -x, ABC),
        Case("exp", ops.Exp, lambda x: x.exp(), ABC),
        Case("log", ops.Log, lambda x: x.log(), _one(lambda d: tuple(d), low=0.5, high=2.0)),
        Case("sqrt", ops.Sqrt, lambda x: x.sqrt(), _one(lambda d: tuple(d), low=0.5, high=2.0)),
        Case("abs", ops.Abs, lambda x: x.abs(), _one(lambda d: tuple(d), low=0.1, high=1.0, away=True)),
        # float64 -> float32 -> float64 is linear but rounds to ~1e-7, so a large step is used
        Case("cast", ops.Cast, lambda x: x.astype(np.float32).astype(np.float64) * 3.0, ABC,
             {"eps": 1e-2}),
        Case("relu", ops.ReLU, lambda x: x.relu(), _one(lambda d: tuple(d), low=0.05, high=1.0, away=True)),
        Case("sigmoid", ops.Sigmoid, lambda x: x.sigmoid(), _one(lambda d: tuple(d), low=-4.0, high=4.0)),
        Case("softmax-last", ops.Softmax, lambda x: x.softmax(), ABC),
        Case("softmax-axis0", ops.Softmax, lambda x: x.softmax(axis=0), ABC),
        Case("log_softmax-last", ops.LogSoftmax, lambda x: x.log_softmax(), ABC),
        Case("log_softmax-axis1", ops.LogSoftmax, lambda x: x.log_softmax(axis=1), ABC),
        Case("reshape", ops.Reshape, lambda x: x.reshape(x.shape[1], -1), ABC),
        Case("reshape-flat", ops.Reshape, lambda x: x.reshape(-1), ABC),
        Case("transpose-reverse", ops.Transpose, lambda x: x.transpose(), ABC),
        Case("transpose-perm", ops.Transpose, lambda x: x.transpose(1, 2, 0), ABC),
        Case("transpose-negative-axes", ops.Transpose, lambda x: x.transpose(-1, 0, 1), ABC),
        Case("transpose-T", ops.Transpose, lambda x: x.T, AB),
        # basic indexing
        Case("getitem-int", ops.GetItem, lambda x: x[1], ABC),
        Case("getitem-slices", ops.GetItem, lambda x: x[1:, ::-1], ABC),
        Case("getitem-ellipsis-none", ops.GetItem, lambda x: x[..., None, -1], ABC),
        Case("getitem-step", ops.GetItem, lambda x: x[:, ::2, 1], ABC),
        # integer arrays, with repeated indices whose gradients must add up
        Case("getitem-repeated", ops.GetItem, lambda x: x[REPEATED], ABC),
        Case("getitem-list-repeated", ops.GetItem, lambda x: x[[1, 1, 0]], ABC),
        Case("getitem-2d-index", ops.GetItem, lambda x: x[np.array([[0, 1], [1, 1]])], ABC),
        Case("getitem-pairs-repeated", ops.GetItem, lambda x: x[[0, 1, 0], [1, 1, 1]], ABC),
        Case("getitem-slice-and-array", ops.GetItem, lambda x: x[:, [1, 1, 0]], ABC),
        Case("getitem-tensor-index", ops.GetItem, lambda x: x[Tensor(REPEATED)], ABC),
        # boolean masks
        Case("getitem-mask-full", ops.GetItem, lambda x: x[np.indices(x.shape).sum(axis=0) % 2 == 0], ABC),
        Case("getitem-mask-rows", ops.GetItem, lambda x: x[np.arange(x.shape[0]) % 2 == 0], ABC),
        Case("getitem-mask-and-ints", ops.GetItem,
             lambda x: x[np.arange(x.shape[0]) < 2, [1, 1]], ABC),
        # joining
        Case("concatenate-axis0", ops.Concatenate, lambda a, b: concatenate([a, b, a], axis=0),
             lambda r: (lambda p, q, n: [leaf(r, (p, n)), leaf(r, (q, n))])(*dims(r, 3))),
        Case("concatenate-axis-1", ops.Concatenate, lambda a, b: concatenate([a, b], axis=-1),
             lambda r: (lambda p, q, n: [leaf(r, (n, 2, p)), leaf(r, (n, 2, q))])(*dims(r, 3))),
        Case("stack-axis0", ops.Stack, lambda a, b: stack([a, b, a]), two_2x3),
        Case("stack-axis-1", ops.Stack, lambda a, b: stack([a, b], axis=-1), two_2x3),
        Case("stack-axis1", ops.Stack, lambda a, b: stack([a, b], axis=1), two_2x3),
    ]
    for name, op in (("sum", ops.Sum), ("mean", ops.Mean), ("max", ops.Max)):
        for axis in (None, 0, -1, (0, 2), (-1, 0)):
            for keepdims in (False, True):
                c.append(Case(f"{name}-axis{axis}-keepdims{keepdims}", op,
                              lambda x, name=name, axis=axis, keepdims=keepdims:
                              getattr(x, name)(axis=axis, keepdims=keepdims), ABC))
    return c


CASES = _binary_cases() + _matmul_cases() + _unary_and_shape_cases()

# Classroom assignment "autograd_ops" (minissd/assignment.py) has students write the backward of these
# ops: their cases carry its marker, so that `pytest -m autograd_ops` grades exactly that work.
ASSIGNMENT_OPS = (ops.Div, ops.MatMul, ops.Exp, ops.Log, ops.Mean)
CASE_PARAMS = [pytest.param(c, marks=pytest.mark.autograd_ops) if c.op in ASSIGNMENT_OPS else c
               for c in CASES]


@pytest.mark.parametrize("case", CASE_PARAMS, ids=lambda c: c.id)
def test_gradient_matches_finite_differences(case: Case, xp: Any, rng: np.random.Generator) -> None:
    inputs = case.make(rng)
    assert all(t.dtype == np.float64 and t.requires_grad for t in inputs)
    assert gradcheck(case.fn, inputs, max_samples=MAX_SAMPLES, **case.kwargs) is True
    # the gradient of every input has the input's shape and dtype
    for t in inputs:
        assert t.grad is not None and t.grad.shape == t.data.shape and t.grad.dtype == t.data.dtype


@pytest.mark.parametrize("case", CASE_PARAMS, ids=lambda c: c.id)
def test_broken_backward_is_caught(case: Case, rng: np.random.Generator,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The same check must fail when the op's backward is wrong (by 5% plus 0.01 everywhere)."""
    original = case.op.backward

    def wrong_backward(self: Function, grad: Any) -> Any:
        result = original(self, grad)
        if isinstance(result, tuple):
            return tuple(None if g is None else g * 1.05 + 0.01 for g in result)
        return result * 1.05 + 0.01

    monkeypatch.setattr(case.op, "backward", wrong_backward)
    with pytest.raises(GradcheckError, match="relative error"):
        gradcheck(case.fn, case.make(rng), max_samples=MAX_SAMPLES, **case.kwargs)


def test_every_op_has_a_gradient_check() -> None:
    functions = {getattr(ops, name) for name in ops.__all__}
    functions = {f for f in functions if isinstance(f, type) and issubclass(f, Function)}
    covered = {case.op for case in CASES}
    assert functions - covered == set(), "ops without a gradient check in CASES"


# --------------------------------------------------------------------------- hand-worked values
def test_broadcast_add_sums_gradient_over_the_stretched_axis() -> None:
    x = Tensor(np.zeros((2, 3)), requires_grad=True)
    b = Tensor(np.zeros(3), requires_grad=True)
    up = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    (x + b).backward(up)
    np.testing.assert_array_equal(to_numpy(x.grad), up)
    np.testing.assert_array_equal(to_numpy(b.grad), [5.0, 7.0, 9.0])  # column sums


@pytest.mark.autograd_ops
def test_broadcast_mul_and_div_by_hand() -> None:
    a = Tensor(np.array([[1.0, 2.0], [3.0, 4.0]]), requires_grad=True)
    s = Tensor(np.array([2.0]), requires_grad=True)
    (a / s).sum().backward()
    # d(a/s)/da = 1/s = 0.5; d(sum a/s)/ds = -sum(a)/s^2 = -10/4
    np.testing.assert_allclose(to_numpy(a.grad), np.full((2, 2), 0.5))
    np.testing.assert_allclose(to_numpy(s.grad), [-2.5])
    a.zero_grad()
    (a * s).sum().backward()
    np.testing.assert_allclose(to_numpy(a.grad), np.full((2, 2), 2.0))


def test_pow_by_hand() -> None:
    x = Tensor(np.array([2.0]), requires_grad=True)
    p = Tensor(np.array([3.0]), requires_grad=True)
    (x**p).backward(np.array([1.0]))
    assert float(x.grad[0]) == pytest.approx(12.0)  # 3 * 2^2
    assert float(p.grad[0]) == pytest.approx(8 * math.log(2))  # 2^3 ln 2


@pytest.mark.autograd_ops
def test_matmul_by_hand() -> None:
    A = Tensor(np.array([[1.0, 2.0], [3.0, 4.0]]), requires_grad=True)
    B = Tensor(np.array([[5.0], [6.0]]), requires_grad=True)
    out = A @ B
    np.testing.assert_array_equal(to_numpy(out), [[17.0], [39.0]])
    out.backward(np.ones((2, 1)))
    np.testing.assert_array_equal(to_numpy(A.grad), [[5.0, 6.0], [5.0, 6.0]])  # ones @ B.T
    np.testing.assert_array_equal(to_numpy(B.grad), [[4.0], [6.0]])  # A.T @ ones


@pytest.mark.autograd_ops
def test_matmul_vectors_by_hand() -> None:
    a = Tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    b = Tensor(np.array([4.0, 5.0, 6.0]), requires_grad=True)
    out = a @ b
    assert out.shape == () and out.item() == 32.0
    out.backward()
    np.testing.assert_array_equal(to_numpy(a.grad), [4.0, 5.0, 6.0])
    np.testing.assert_array_equal(to_numpy(b.grad), [1.0, 2.0, 3.0])


@pytest.mark.parametrize(
    ("axis", "keepdims", "out_shape"),
    [(None, False, ()), (None, True, (1, 1, 1)), ((0, 2), False, (3,)), ((0, 2), True, (1, 3, 1)),
     ((-1, 0), False, (3,)), (1, True, (2, 1, 4))],
)
@pytest.mark.autograd_ops
def test_reduction_shapes_and_mean_gradient(axis: Any, keepdims: bool, out_shape: tuple[int, ...]) -> None:
    x = Tensor(np.ones((2, 3, 4)), requires_grad=True)
    out = x.mean(axis=axis, keepdims=keepdims)
    assert out.shape == out_shape
    assert x.sum(axis=axis, keepdims=keepdims).shape == out_shape
    assert x.max(axis=axis, keepdims=keepdims).shape == out_shape
    out.sum().backward()
    # each input element contributes to one mean over (24 / number of outputs) elements
    count = 24 // max(1, math.prod(out_shape))
    np.testing.assert_allclose(to_numpy(x.grad), np.full((2, 3, 4), 1.0 / count))


def test_reduction_rejects_bad_axis() -> None:
    x = Tensor(np.ones((2, 3)))
    with pytest.raises(ValueError, match="axis 2 is out of range"):
        x.sum(axis=2)
    with pytest.raises(ValueError, match="repeats"):
        x.sum(axis=(0, -2))
    assert x.sum(axis=np.int64(1)).shape == (2,)  # NumPy integers are accepted as axes


def test_max_splits_gradient_equally_among_ties() -> None:
    x = Tensor(np.array([1.0, 3.0, 3.0, 2.0]), requires_grad=True)
    m = x.max()
    assert m.item() == 3.0
    m.backward()
    np.testing.assert_array_equal(to_numpy(x.grad), [0.0, 0.5, 0.5, 0.0])

    y = Tensor(np.array([[5.0, 5.0, 5.0], [1.0, 4.0, 2.0]]), requires_grad=True)
    y.max(axis=1).backward(np.array([3.0, 1.0]))
    np.testing.assert_allclose(to_numpy(y.grad), [[1.0, 1.0, 1.0], [0.0, 1.0, 0.0]])


def test_transpose_gradient_is_the_inverse_permutation() -> None:
    x = Tensor(np.zeros((2, 3, 4)), requires_grad=True)
    y = x.transpose(2, 0, 1)  # (4, 2, 3)
    assert y.shape == (4, 2, 3)
    up = np.arange(24.0).reshape(4, 2, 3)
    y.backward(up)
    np.testing.assert_array_equal(to_numpy(x.grad), up.transpose(1, 2, 0))
    with pytest.raises(ValueError, match="permutation"):
        x.transpose(0, 0, 1)


def test_repeated_integer_index_accumulates() -> None:
    x = Tensor(np.array([10.0, 20.0, 30.0]), requires_grad=True)
    y = x[[0, 2, 0, 0]]
    np.testing.assert_array_equal(to_numpy(y), [10.0, 30.0, 10.0, 10.0])
    y.backward(np.array([1.0, 2.0, 3.0, 4.0]))
    np.testing.assert_array_equal(to_numpy(x.grad), [8.0, 0.0, 2.0])  # 1 + 3 + 4 at index 0


def test_empty_list_index_selects_nothing() -> None:
    x = Tensor(np.ones((3, 2)), requires_grad=True)
    y = x[[]]
    assert y.shape == (0, 2)
    (y.sum() + x.sum()).backward()
    np.testing.assert_array_equal(to_numpy(x.grad), np.ones((3, 2)))


def test_boolean_mask_index() -> None:
    x = Tensor(np.array([[1.0, -2.0], [-3.0, 4.0]]), requires_grad=True)
    mask = to_numpy(x.data) > 0
    y = x[mask]
    np.testing.assert_array_equal(to_numpy(y), [1.0, 4.0])
    y.backward(np.array([5.0, 6.0]))
    np.testing.assert_array_equal(to_numpy(x.grad), [[5.0, 0.0], [0.0, 6.0]])


def test_concatenate_and_stack_split_gradients_back() -> None:
    a = Tensor(np.zeros((1, 2)), requires_grad=True)
    b = Tensor(np.zeros((2, 2)), requires_grad=True)
    concatenate([a, b]).backward(np.arange(6.0).reshape(3, 2))
    np.testing.assert_array_equal(to_numpy(a.grad), [[0.0, 1.0]])
    np.testing.assert_array_equal(to_numpy(b.grad), [[2.0, 3.0], [4.0, 5.0]])
    c = Tensor(np.zeros(2), requires_grad=True)
    d = Tensor(np.zeros(2), requires_grad=True)
    stack([c, d], axis=1).backward(np.array([[1.0, 2.0], [3.0, 4.0]]))
    np.testing.assert_array_equal(to_numpy(c.grad), [1.0, 3.0])
    np.testing.assert_array_equal(to_numpy(d.grad), [2.0, 4.0])


# --------------------------------------------------------------------------- numerical stability
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_softmax_and_log_softmax_of_huge_logits(dtype: Any) -> None:
    logits = np.array([[1e4, -1e4, 0.0], [1e4, 1e4, -1e4]], dtype=dtype)
    x = Tensor(logits, requires_grad=True)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        p = x.softmax()
        lp = x.log_softmax()
        np.testing.assert_array_equal(to_numpy(p), [[1.0, 0.0, 0.0], [0.5, 0.5, 0.0]])
        # log_softmax = x - logsumexp(x): exactly x - 1e4 in row 0, x - (1e4 + ln 2) in row 1
        expected = np.array([[0.0, -2e4, -1e4], [-math.log(2), -math.log(2), -2e4 - math.log(2)]])
        np.testing.assert_allclose(to_numpy(lp), expected, rtol=1e-6, atol=1e-6)
        assert p.dtype == dtype and lp.dtype == dtype
        # d log_softmax = g - softmax * sum(g): with g = [0, 1, 0], row 0 gives [-1, 1, 0]
        lp.backward(np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 0.0]], dtype=dtype))
    np.testing.assert_allclose(to_numpy(x.grad), [[-1.0, 1.0, 0.0], [0.0, 0.0, 0.0]], atol=1e-6)
    y = Tensor(logits, requires_grad=True)
    y.softmax().backward(np.array([[1.0, 2.0, 3.0], [1.0, 3.0, 5.0]], dtype=dtype))
    # d softmax = s * (g - sum(g s)): row 0 is all zero (s one-hot), row 1: 0.5 * (1 - 2), 0.5 * (3 - 2), 0
    np.testing.assert_allclose(to_numpy(y.grad), [[0.0, 0.0, 0.0], [-0.5, 0.5, 0.0]], atol=1e-6)


def test_sigmoid_and_relu_at_extremes() -> None:
    x = Tensor(np.array([-1e4, 0.0, 1e4]), requires_grad=True)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        s = x.sigmoid()
        np.testing.assert_array_equal(to_numpy(s), [0.0, 0.5, 1.0])
        s.backward(np.ones(3))
    np.testing.assert_array_equal(to_numpy(x.grad), [0.0, 0.25, 0.0])  # s (1 - s)
    r = Tensor(np.array([-np.inf, -1.0, 0.0, 2.0, np.nan])).relu()
    np.testing.assert_array_equal(to_numpy(r), [0.0, 0.0, 0.0, 2.0, np.nan])  # nan is not hidden


def test_pow_zero_exponent_has_zero_gradient_at_zero() -> None:
    x = Tensor(np.array([0.0, 2.0]), requires_grad=True)
    (x**0).sum().backward()
    np.testing.assert_array_equal(to_numpy(x.grad), [0.0, 0.0])


# --------------------------------------------------------------------------- the backward engine
def test_diamond_graph() -> None:
    # x feeds two branches that meet again: c = (2x) * (x + 1) = 2x^2 + 2x, dc/dx = 4x + 2 = 14 at 3
    x = Tensor(np.array(3.0), requires_grad=True)
    a = x * 2.0
    b = x + 1.0
    c = a * b
    assert c.item() == 24.0
    c.backward()
    assert x.grad == 14.0
    assert backend.is_array(x.grad) and x.grad.shape == ()  # an array, not a NumPy scalar


def test_each_node_runs_backward_once_with_its_total_gradient(monkeypatch: pytest.MonkeyPatch) -> None:
    """Topological order: y's backward must wait for both of its consumers, then run once."""
    seen: list[float] = []
    original = ops.Mul.backward

    def spy(self: Function, grad: Any) -> Any:
        seen.append(float(np.sum(to_numpy(grad))))
        return original(self, grad)

    monkeypatch.setattr(ops.Mul, "backward", spy)
    x = Tensor(np.array(1.0), requires_grad=True)
    y = x * 2.0  # one Mul
    c = y * 3.0 + y * 4.0  # two more Muls, both consuming y
    c.backward()
    assert x.grad == 14.0  # (3 + 4) * 2
    assert len(seen) == 3  # not 4: y's Mul ran once, not once per consumer
    assert seen[-1] == 7.0  # ... with the sum of both contributions


def test_reuse_accumulates() -> None:
    x = Tensor(np.array([1.5, -2.0]), requires_grad=True)
    (x * x).sum().backward()
    np.testing.assert_array_equal(to_numpy(x.grad), [3.0, -4.0])  # 2x
    x.zero_grad()
    assert x.grad is None
    (x + x + x).sum().backward()
    np.testing.assert_array_equal(to_numpy(x.grad), [3.0, 3.0])
    (x * 2.0).sum().backward()  # a second loss adds to .grad
    np.testing.assert_array_equal(to_numpy(x.grad), [5.0, 5.0])


def test_leaf_gradients_are_independent_arrays() -> None:
    a = Tensor(np.ones(3), requires_grad=True)
    b = Tensor(np.ones(3), requires_grad=True)
    up = np.array([1.0, 2.0, 3.0])
    (a + b).backward(up)  # Add hands the same upstream array to both inputs
    a.grad *= 10  # e.g. an optimizer scaling one gradient in place
    np.testing.assert_array_equal(to_numpy(b.grad), [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(up, [1.0, 2.0, 3.0])


def test_detach_stops_the_gradient() -> None:
    x = Tensor(np.array([2.0, 3.0]), requires_grad=True)
    d = x.detach()
    assert not d.requires_grad and d.is_leaf
    assert d.data is x.data  # shared, not copied
    (d * x).sum().backward()
    np.testing.assert_array_equal(to_numpy(x.grad), [2.0, 3.0])  # only the non-detached factor


def test_no_grad_builds_no_graph() -> None:
    x = Tensor(np.ones(2), requires_grad=True)
    with no_grad():
        assert not is_grad_enabled()
        y = (x * 2.0).exp().sum()
        with enable_grad():
            z = x * 2.0
    assert is_grad_enabled()
    assert not y.requires_grad and y.is_leaf
    assert z.requires_grad and not z.is_leaf
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.backward()

    @no_grad()
    def infer(t: Tensor) -> Tensor:
        return t * 3.0

    assert not infer(x).requires_grad
    assert is_grad_enabled()


def test_no_grad_restores_state_after_an_exception() -> None:
    with pytest.raises(KeyError), no_grad():
        raise KeyError("boom")
    assert is_grad_enabled()
    assert (Tensor(np.ones(1), requires_grad=True) * 2.0).requires_grad


def test_deep_chain_of_100000_ops_backprops_without_recursion() -> None:
    n = 100_000
    assert sys.getrecursionlimit() < n  # a recursive topological sort would fail here
    x = Tensor(np.array(1.0), requires_grad=True)
    c = 1.0 + 1e-5
    factor = Tensor(np.array(c))  # one constant tensor, rather than wrapping a float 100,000 times
    y = x
    for _ in range(n):
        y = y * factor
    y.backward()
    # y = x c^n, so dy/dx = c^n (about e)
    assert float(x.grad) == pytest.approx(c**n, rel=1e-9)


def test_second_backward_on_freed_graph_raises_and_leaves_grad_alone() -> None:
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    loss = (x * x).sum()
    loss.backward()
    np.testing.assert_array_equal(to_numpy(x.grad), [2.0, 4.0])
    with pytest.raises(RuntimeError, match=r"freed.*retain_graph=True"):
        loss.backward()
    np.testing.assert_array_equal(to_numpy(x.grad), [2.0, 4.0])  # not doubled


@pytest.mark.parametrize("w_first", [True, False])
def test_freed_subgraph_raises_before_any_leaf_changes(w_first: bool) -> None:
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    w = Tensor(np.array([3.0, 4.0]), requires_grad=True)
    y = x * 2.0
    y.sum().backward()  # frees y's Mul
    # w's branch alone would still be fine; both operand orders, since the engine visits them in turn
    a, b = (w * w).sum(), (y * 1.0).sum()
    loss = a + b if w_first else b + a
    with pytest.raises(RuntimeError, match="freed"):
        loss.backward()
    assert w.grad is None
    np.testing.assert_array_equal(to_numpy(x.grad), [2.0, 2.0])


def test_retain_graph_allows_a_second_backward_that_accumulates() -> None:
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    loss = (x * x).sum()
    loss.backward(retain_graph=True)
    loss.backward()  # documented: adds the same gradient again
    np.testing.assert_array_equal(to_numpy(x.grad), [4.0, 8.0])
    with pytest.raises(RuntimeError, match="freed"):
        loss.backward()  # the second call did not retain


def test_backward_needs_grad_for_non_scalar_and_checks_its_shape() -> None:
    y = Tensor(np.ones((2, 3)), requires_grad=True) * 2.0
    with pytest.raises(RuntimeError, match=r"one-element.*\(2, 3\)"):
        y.backward()
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(3, 2\)"):
        y.backward(np.ones((3, 2)))


@pytest.mark.parametrize(
    ("expr", "sa", "sb"),
    [
        (lambda a, b: a + b, (2, 3), (4,)),
        (lambda a, b: a - b, (2, 3), (4,)),
        (lambda a, b: a * b, (5, 1, 3), (4, 2)),
        (lambda a, b: a / b, (2, 3), (3, 2)),
        (lambda a, b: a**b, (2, 3), (4,)),
        (lambda a, b: a @ b, (2, 3), (4, 5)),
        (lambda a, b: a @ b, (3,), (4,)),
        (lambda a, b: concatenate([a, b], axis=0), (2, 3), (2, 4)),
        (lambda a, b: stack([a, b]), (2, 3), (3, 2)),
    ],
    ids=["add", "sub", "mul", "div", "pow", "matmul", "matmul-1d", "concatenate", "stack"],
)
def test_shape_mismatch_names_both_shapes(expr: Callable[..., Tensor], sa: tuple[int, ...],
                                         sb: tuple[int, ...]) -> None:
    a, b = Tensor(np.ones(sa), requires_grad=True), Tensor(np.ones(sb))
    with pytest.raises(ValueError) as info:
        expr(a, b)
    assert str(sa) in str(info.value) and str(sb) in str(info.value)


def test_concatenate_axis_out_of_range_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"concatenate\(axis=3\).*\(2, 3\)"):
        concatenate([Tensor(np.ones((2, 3))), Tensor(np.ones((2, 3)))], axis=3)


def test_reshape_error_names_both_shapes() -> None:
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(4, 2\)"):
        Tensor(np.ones((2, 3))).reshape(4, 2)


# --------------------------------------------------------------------------- in-place operations
def _rand(rng: np.random.Generator, *shape: int, low: float = -1.0, high: float = 1.0) -> Tensor:
    return Tensor(rng.uniform(low, high, size=shape), requires_grad=True)


# Each op keeps an input or its output for its backward; overwriting that array in place after the op
# ran must make backward raise (naming the op) rather than use the new values.
# (name, build): build(rng) -> (victim, loss_fn): ``victim`` is what relu(inplace=True) overwrites,
# ``loss_fn(r)`` the loss built from what relu returned and the op's result.
def _saves_output(op: Callable[[Tensor], Tensor], low: float = -1.0) -> Callable[..., Any]:
    def build(rng: np.random.Generator) -> tuple[Tensor, Tensor, Callable[[Tensor], Tensor]]:
        x = _rand(rng, 2, 3, low=low, high=2.0)
        y = op(x)
        return x, y, lambda r: r.sum()
    return build


def _saves_input(op: Callable[[Tensor, Tensor], Tensor], low: float = -1.0) -> Callable[..., Any]:
    def build(rng: np.random.Generator) -> tuple[Tensor, Tensor, Callable[[Tensor], Tensor]]:
        x = _rand(rng, 3, 3, low=low, high=2.0)
        w = _rand(rng, 3, 3, low=0.5, high=2.0)
        h = x + 0.0  # a non-leaf: Add keeps nothing but shapes
        y = op(h, w)
        return x, h, lambda r: r.sum() + y.sum()
    return build


SAVED_ARRAY_CASES = {
    "Exp": _saves_output(lambda x: x.exp()),
    "Sqrt": _saves_output(lambda x: x.sqrt(), low=0.5),
    "Sigmoid": _saves_output(lambda x: x.sigmoid()),
    "Softmax": _saves_output(lambda x: x.softmax()),
    "LogSoftmax": _saves_output(lambda x: x.log_softmax()),
    "ReLU": _saves_output(lambda x: x.relu()),
    "Pow": _saves_output(lambda x: x ** Tensor(np.full((2, 3), 1.5)), low=0.5),
    "Mul": _saves_input(lambda h, w: h * w),
    "Div": _saves_input(lambda h, w: h / w),
    "MatMul": _saves_input(lambda h, w: h @ w),
    "Log": _saves_input(lambda h, w: h.log() * w, low=0.5),
    "PowScalar": _saves_input(lambda h, w: h**3 * w),
}


@pytest.mark.parametrize("op", SAVED_ARRAY_CASES)
def test_inplace_write_over_a_saved_array_makes_backward_raise(op: str, rng: np.random.Generator) -> None:
    x, victim, loss_fn = SAVED_ARRAY_CASES[op](rng)
    other = Tensor(np.ones(2), requires_grad=True)  # an unrelated branch of the same loss
    r = ops.relu(victim, inplace=True)
    assert r.data is victim.data  # really in place: no second array
    assert victim.version == 1 and r.version == 1
    loss = loss_fn(r) + (other * 2.0).sum()
    with pytest.raises(RuntimeError, match=rf"{op}\.backward needs the array .* ReLU overwrote it in place"):
        loss.backward()
    assert x.grad is None and other.grad is None  # checked before any gradient was written


def test_inplace_write_through_a_view_is_caught() -> None:
    x = Tensor(np.array([[-1.0, 2.0], [3.0, -4.0]]), requires_grad=True)
    y = x.exp()
    v = y.reshape(-1)  # shares y's memory, so it shares y's version counter
    r = ops.relu(v - 5.0, inplace=True)  # a new array: y is untouched
    assert y.version == 0
    r = ops.relu(v, inplace=True)
    assert y.version == 1
    with pytest.raises(RuntimeError, match=r"Exp\.backward"):
        r.sum().backward()


def test_the_version_check_is_what_makes_inplace_safe(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the check switched off, overwriting what LogSoftmax saved gives a wrong gradient silently."""
    from minissd.autograd import function

    data = np.array([[0.5, -1.0, 2.0]])

    def run() -> np.ndarray:
        x = Tensor(data, requires_grad=True)
        lp = ops.log_softmax(x)  # saves its output, the (negative) log-probabilities
        total = lp.sum()  # d total / dx = 1 - 3 softmax(x): needs LogSoftmax's saved output
        r = ops.relu(lp, inplace=True)  # overwrites them with zeros
        (total + r.sum()).backward()
        return to_numpy(x.grad)

    with pytest.raises(RuntimeError, match=r"LogSoftmax\.backward needs the array 'out'"):
        run()
    p = np.exp(data) / np.exp(data).sum()
    monkeypatch.setattr(function.Function, "_watch_saved", lambda self, out: None)
    unchecked = run()  # no error now ...
    np.testing.assert_allclose(unchecked, [[-2.0, -2.0, -2.0]])  # ... it used exp(0) = 1 as softmax
    assert not np.allclose(unchecked, 1 - 3 * p)  # the true gradient (relu's branch contributes 0)


@pytest.mark.needs("autograd_ops")  # MatMul.backward
def test_inplace_relu_where_nothing_saved_its_input_matches_out_of_place(rng: np.random.Generator) -> None:
    """Linear -> ReLU(inplace) -> Linear: MatMul keeps its inputs, never its output, so this is allowed."""
    x, w1, w2 = (rng.standard_normal(s) for s in ((4, 5), (5, 6), (6, 3)))
    grads = {}
    for inplace in (False, True):
        ts = [Tensor(a, requires_grad=True) for a in (x, w1, w2)]
        h = ts[0] @ ts[1]
        out = ops.relu(h, inplace=inplace) @ ts[2]
        assert h.version == (1 if inplace else 0)
        out.backward(np.arange(12.0).reshape(4, 3))
        grads[inplace] = [to_numpy(t.grad) for t in ts]
    for g_out, g_in in zip(grads[False], grads[True]):
        np.testing.assert_array_equal(g_in, g_out)
    inputs = [Tensor(a, requires_grad=True) for a in (x, w1, w2)]
    assert gradcheck(lambda a, b, c: ops.relu(a @ b, inplace=True) @ c, inputs)


@pytest.mark.conv2d  # the convolution's backward
def test_conv_then_inplace_relu_then_conv_matches_out_of_place(rng: np.random.Generator) -> None:
    from minissd.nn import functional as F

    x, w1, w2 = (rng.standard_normal(s) for s in ((2, 3, 6, 6), (4, 3, 3, 3), (2, 4, 3, 3)))
    grads = {}
    for inplace in (False, True):
        ts = [Tensor(a, requires_grad=True) for a in (x, w1, w2)]
        h = F.conv2d(ts[0], ts[1], padding=1)
        r = ops.relu(h, inplace=inplace)
        assert (r.data is h.data) == inplace
        F.conv2d(r, ts[2]).sum().backward()
        grads[inplace] = [to_numpy(t.grad) for t in ts]
    assert np.any(grads[False][0] != 0)
    for g_out, g_in in zip(grads[False], grads[True]):
        np.testing.assert_allclose(g_in, g_out, rtol=1e-12, atol=1e-12)


def test_inplace_on_a_leaf_that_requires_grad_raises_and_leaves_it_alone() -> None:
    w = Tensor(np.array([-1.0, 2.0]), requires_grad=True)
    with pytest.raises(RuntimeError, match="ReLU: cannot overwrite a leaf tensor that requires grad"):
        ops.relu(w, inplace=True)
    with pytest.raises(RuntimeError, match="a view of a leaf tensor"):
        ops.relu(w.reshape(2, 1), inplace=True)
    np.testing.assert_array_equal(to_numpy(w), [-1.0, 2.0])  # refused before anything was written
    assert w.version == 0
    with no_grad():  # an optimizer-style update builds no graph, so it is allowed
        ops.relu(w, inplace=True)
    np.testing.assert_array_equal(to_numpy(w), [0.0, 2.0])
    assert w.version == 1
    a = np.array([-3.0, 4.0])  # a leaf that needs no gradient: plain data, allowed
    ops.relu(a, inplace=True)
    np.testing.assert_array_equal(a, [0.0, 4.0])


def test_saved_leaf_overwritten_under_no_grad_is_caught() -> None:
    w = Tensor(np.array([-1.0, 2.0]), requires_grad=True)
    y = w * w  # Mul keeps w
    with no_grad():
        ops.relu(w, inplace=True)
    with pytest.raises(RuntimeError, match=r"Mul\.backward"):
        y.sum().backward()


def test_the_overwritten_tensor_cannot_be_used_again_in_a_graph() -> None:
    x = Tensor(np.array([-1.0, 2.0]), requires_grad=True)
    h = x + 0.0
    r = ops.relu(h, inplace=True)
    with pytest.raises(RuntimeError, match="overwritten in place by ReLU.*use the tensor that ReLU returned"):
        h * 2.0  # h's graph describes the values before relu: gradients through it would be wrong
    (r * 2.0).sum().backward()  # the returned tensor is the one to use
    np.testing.assert_array_equal(to_numpy(x.grad), [0.0, 2.0])
    d = r.detach()
    assert d.version == r.version  # same memory, same counter
    ops.relu(d, inplace=True)
    assert r.version == d.version == 2


def test_mark_dirty_needs_an_input_array() -> None:
    class Bad(Function):
        def forward(self, a: Any) -> Any:
            self.mark_dirty(a.copy())
            return a

        def backward(self, grad: Any) -> Any:
            return grad

    with pytest.raises(ValueError, match=r"Bad\.mark_dirty\(array\): expected one of the input arrays"):
        Bad.apply(Tensor(np.ones(2)))


def test_attribute_style_functions_still_work_and_are_watched_too() -> None:
    """Functions that keep arrays as plain attributes (no save_for_backward) run unchanged, and checked."""

    class Square(Function):
        def forward(self, a: Any) -> Any:
            self.a = a
            return a * a

        def backward(self, grad: Any) -> Any:
            return 2 * self.a * grad

    x = Tensor(np.array([1.0, -3.0]), requires_grad=True)
    Square.apply(x).sum().backward()
    np.testing.assert_array_equal(to_numpy(x.grad), [2.0, -6.0])
    h = x + 0.0
    y = Square.apply(h)
    ops.relu(h, inplace=True)  # overwrites what Square kept as self.a
    with pytest.raises(RuntimeError, match=r"Square\.backward needs the array 'a'"):
        y.sum().backward()


# --------------------------------------------------------------------------- shared array helpers
def test_log_softmax_array_is_stable_and_backs_the_op(xp: Any) -> None:
    from minissd.autograd import log_softmax_array, softmax_array

    a = xp.asarray([[1e4, -1e4, 0.0], [1.0, 1.0, 1.0]])
    out = log_softmax_array(a)
    assert backend.get_array_module(out) is xp and out.shape == (2, 3)
    np.testing.assert_allclose(to_numpy(out), [[0.0, -2e4, -1e4], [-math.log(3)] * 3], rtol=1e-12)
    column = to_numpy(log_softmax_array(a, axis=0))[:, 1]  # of [-1e4, 1]
    np.testing.assert_allclose(column, [-1e4 - 1.0, 0.0], rtol=1e-12)
    np.testing.assert_allclose(to_numpy(softmax_array(a)), [[1.0, 0.0, 0.0], [1 / 3] * 3], rtol=1e-12)
    np.testing.assert_array_equal(to_numpy(ops.log_softmax(a)), to_numpy(out))
    np.testing.assert_array_equal(to_numpy(ops.softmax(a)), to_numpy(softmax_array(a)))
    r = ops.relu(xp.asarray([-1.0, 3.0]))
    np.testing.assert_array_equal(to_numpy(r), [0.0, 3.0])


# --------------------------------------------------------------------------- dtypes
FLOAT32_EXPRESSIONS = {
    "t+1": lambda t: t + 1,
    "1+t": lambda t: 1 + t,
    "t-0.5": lambda t: t - 0.5,
    "1-t": lambda t: 1 - t,
    "t*2.5": lambda t: t * 2.5,
    "2.5*t": lambda t: 2.5 * t,
    "t/3": pytest.param(lambda t: t / 3, marks=pytest.mark.autograd_ops),
    "3/t": pytest.param(lambda t: 3 / t, marks=pytest.mark.autograd_ops),
    "t**2": lambda t: t**2,
    "t**0.5": lambda t: t**0.5,
    "2**t": lambda t: 2**t,
    "np.float64*t": lambda t: np.float64(2.0) * t,
    "t**np.float64": lambda t: t ** np.float64(2.0),
    "t+list": lambda t: t + [1.0, 2.0],
    "mean": pytest.param(lambda t: t.mean(), marks=pytest.mark.autograd_ops),
    "softmax": lambda t: t.softmax(),
    "sigmoid": lambda t: t.sigmoid(),
}


@pytest.mark.parametrize("expr", FLOAT32_EXPRESSIONS.values(), ids=FLOAT32_EXPRESSIONS.keys())
def test_float32_stays_float32_with_python_scalars(expr: Callable[[Tensor], Tensor]) -> None:
    x = Tensor(np.array([1.0, 2.0], dtype=np.float32), requires_grad=True)
    y = expr(x)
    assert y.dtype == np.float32
    y.sum().backward()
    assert x.grad.dtype == np.float32


def test_float32_gradient_stays_float32_next_to_float64_constants() -> None:
    w = Tensor(np.array([1.0, 2.0], dtype=np.float32), requires_grad=True)
    y = w * np.array([3.0, 4.0])  # a float64 array constant: the result follows NumPy (float64) ...
    assert y.dtype == np.float64
    y.sum().backward()
    assert w.grad.dtype == np.float32  # ... but a gradient always has its tensor's dtype
    np.testing.assert_array_equal(to_numpy(w.grad), [3.0, 4.0])


def test_integer_tensor_times_float_scalar_is_not_truncated() -> None:
    y = Tensor(np.array([1, 3])) * 0.5
    np.testing.assert_array_equal(to_numpy(y), [0.5, 1.5])
    z = Tensor(np.array([1, 3])) + [0.5, 0.25]
    np.testing.assert_array_equal(to_numpy(z), [1.5, 3.25])


def test_numpy_array_on_the_left_builds_a_graph() -> None:
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = np.array([3.0, 4.0]) * x  # ndarray.__mul__ defers to Tensor.__rmul__
    assert isinstance(y, Tensor)
    y.sum().backward()
    np.testing.assert_array_equal(to_numpy(x.grad), [3.0, 4.0])
    with pytest.raises(TypeError):
        np.exp(x)  # a NumPy ufunc would silently drop the graph: refused instead


# --------------------------------------------------------------------------- docs
def run_markdown_doctests(path: Path) -> doctest.TestResults:
    """Run the ``>>>`` examples of a Markdown file, as doctest would run a docstring.

    Code-fence lines are blanked first: doctest would otherwise read a closing fence right after an
    example's output as part of the expected output. Line numbers stay the same for error messages.
    """
    text = re.sub(r"^\s*```.*$", "", path.read_text(encoding="utf-8"), flags=re.MULTILINE)
    test = doctest.DocTestParser().get_doctest(text, {}, path.name, str(path), 0)
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS)
    runner.run(test)
    return runner.summarize(verbose=False)


@pytest.mark.needs("autograd_ops")  # the page runs backward through the ops of that assignment
def test_docs_autograd_examples_run_and_print_what_the_page_says() -> None:
    """Every ``>>>`` example in docs/autograd.md runs and prints exactly the numbers on the page."""
    backend.set_backend("numpy")  # the page shows NumPy output (restored after the test by conftest)
    # the page differentiates through Div, MatMul, Exp, Log and Mean (assignment autograd_ops): one backward
    # through each first, so that a missing one raises its own error rather than a doctest report
    a = Tensor(np.array([[1.0, 2.0]]), requires_grad=True)
    ((a / 2.0) @ a.transpose().exp()).log().mean().backward()
    result = run_markdown_doctests(REPO / "docs" / "autograd.md")
    assert result.attempted > 30
    assert result.failed == 0, "docs/autograd.md: see the doctest report above"
