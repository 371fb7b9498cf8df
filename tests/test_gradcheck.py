"""Tests for minissd.autograd.gradcheck and rel_error: the tool every other gradient test trusts.

Most tests use a tiny linear Function, ``f(x) = 3 x``, whose numeric gradient is exactly known (3),
and break its backward in a controlled way, so the expected message can be worked out by hand.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from minissd import Tensor, to_numpy
from minissd.autograd import Function, GradcheckError, gradcheck, rel_error


class TimesThree(Function):
    """f(x) = 3 x with a backward that can be made wrong at chosen elements.

    ``wrong`` maps a flat index to the value the backward reports there (per unit upstream gradient)
    instead of the correct 3.
    """

    wrong: dict[int, float] = {}

    def forward(self, a: Any) -> Any:
        return a * 3.0

    def backward(self, grad: Any) -> Any:
        g = grad * 3.0
        flat = g.reshape(-1)  # a view of the fresh array g
        for j, value in self.wrong.items():
            flat[j] = value * grad.reshape(-1)[j]
        return g


def times_three(wrong: dict[int, float] | None = None) -> Any:
    cls = type("BrokenTimesThree", (TimesThree,), {"wrong": dict(wrong or {})})
    return lambda x: cls.apply(x)


def x23() -> Tensor:
    return Tensor(np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]), requires_grad=True)


def test_correct_backward_passes() -> None:
    assert gradcheck(times_three(), [x23()]) is True


def test_failure_message_names_worst_element_values_and_relative_error() -> None:
    # flat index 5 is element (1, 2); the analytic gradient there is 5 instead of 3
    fn = times_three({5: 5.0})
    with pytest.raises(GradcheckError) as info:
        gradcheck(fn, [x23()], grad_output=np.ones((2, 3)))
    msg = str(info.value)
    assert "input 0" in msg and "(2, 3)" in msg
    assert "index (1, 2)" in msg
    assert "analytic 5," in msg
    assert "numeric 3," in msg
    assert "relative error 0.25" in msg  # |5 - 3| / (5 + 3)
    assert "fails at 1 of 6" in msg


def test_failure_message_picks_the_worst_of_several() -> None:
    fn = times_three({0: 3.1, 4: -1.0})  # off by 0.1 at (0, 0), by 4 at (1, 1)
    with pytest.raises(GradcheckError, match=r"2 of 6.*index \(1, 1\): analytic -1, numeric 3,"):
        gradcheck(fn, [x23()], grad_output=np.ones((2, 3)))


def test_a_wrong_function_subclass_is_caught() -> None:
    class BadSquare(Function):
        """x**2 whose backward forgot the factor 2: the classic mistake."""

        def forward(self, a: Any) -> Any:
            self.a = a
            return a * a

        def backward(self, grad: Any) -> Any:
            return grad * self.a

    x = Tensor(np.array([0.5, -1.0, 2.0]), requires_grad=True)
    with pytest.raises(GradcheckError):
        gradcheck(lambda t: BadSquare.apply(t), [x])


def test_default_random_upstream_catches_a_backward_that_ignores_its_grad() -> None:
    class IgnoresGrad(TimesThree):
        def backward(self, grad: Any) -> Any:
            return grad * 0 + 3.0  # right only when the upstream gradient is all ones

    fn = lambda x: IgnoresGrad.apply(x)  # noqa: E731
    assert gradcheck(fn, [x23()], grad_output=np.ones((2, 3)))  # an all-ones upstream hides it ...
    with pytest.raises(GradcheckError):
        gradcheck(fn, [x23()])  # ... the default random upstream does not
    with pytest.raises(GradcheckError):
        gradcheck(fn, [x23()], grad_output=Tensor(np.full((2, 3), 2.0)))  # nor does an explicit one


def test_grad_output_shape_is_checked() -> None:
    with pytest.raises(ValueError, match=r"grad_output.*\(2, 3\).*\(3,\)"):
        gradcheck(times_three(), [x23()], grad_output=np.ones(3))


def _perturbed_positions(size: int, **kwargs: Any) -> list[int]:
    """Which flat elements gradcheck perturbed, recorded by watching the input from inside fn."""
    base = np.arange(float(size))
    seen: list[int] = []

    def fn(x: Tensor) -> Tensor:
        changed = np.flatnonzero(to_numpy(x.data) != base)
        seen.extend(int(j) for j in changed)
        return x * 2.0

    x = Tensor(base.copy(), requires_grad=True)
    assert gradcheck(fn, [x], **kwargs)
    np.testing.assert_array_equal(to_numpy(x.data), base)  # every perturbation was undone
    return seen


def test_large_inputs_are_sampled() -> None:
    seen = _perturbed_positions(1000, max_samples=10, seed=1)
    assert len(seen) == 2 * 10  # +eps and -eps for each sampled element
    assert len(set(seen)) == 10  # without repetition
    assert all(0 <= j < 1000 for j in seen)
    assert _perturbed_positions(1000, max_samples=10, seed=1) == seen  # the seed fixes the sample
    assert set(_perturbed_positions(1000, max_samples=10, seed=2)) != set(seen)


def test_small_inputs_and_max_samples_none_check_every_element() -> None:
    assert sorted(set(_perturbed_positions(30, max_samples=None))) == list(range(30))
    assert sorted(set(_perturbed_positions(30, max_samples=200))) == list(range(30))


def test_tolerances_are_applied() -> None:
    class SlightlyOff(TimesThree):
        def backward(self, grad: Any) -> Any:
            return grad * 3.0 * (1 + 1e-4)  # 1e-4 relative error

    fn = lambda x: SlightlyOff.apply(x)  # noqa: E731
    assert gradcheck(fn, [x23()])  # within the default rtol=1e-3
    with pytest.raises(GradcheckError):
        gradcheck(fn, [x23()], atol=0.0, rtol=1e-6)


def test_rejects_float32_inputs() -> None:
    x = Tensor(np.ones(3, dtype=np.float32), requires_grad=True)
    with pytest.raises(ValueError, match=r"input 0 must be float64.*float32"):
        gradcheck(lambda t: t * 2.0, [x])


def test_rejects_inputs_that_are_not_leaves_or_need_no_grad() -> None:
    x = x23()
    with pytest.raises(ValueError, match="input 0 was computed by Mul"):
        gradcheck(lambda t: t * 2.0, [x * 1.0])
    with pytest.raises(ValueError, match="no input has requires_grad=True"):
        gradcheck(lambda t: t * 2.0, [Tensor(np.ones(3))])
    with pytest.raises(TypeError, match="must return a Tensor"):
        gradcheck(lambda t: to_numpy(t.data), [x])


def test_only_inputs_that_require_grad_are_checked() -> None:
    x = x23()
    c = Tensor(np.full((2, 3), 2.0))  # a constant operand: not perturbed, not checked
    assert gradcheck(lambda a, b: a * b, [x, c])
    assert c.grad is None


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ([1.0, 2.0], [1.0, 2.0], 0.0),
        ([1.0], [3.0], 0.5),  # |1 - 3| / (1 + 3)
        ([0.0, 10.0], [0.0, 9.0], 1.0 / 19.0),  # the worst element counts
        ([0.0], [0.0], 0.0),  # no division by zero
        ([1e-9], [-1e-9], 0.2),  # tiny values: the denominator is floored at 1e-8
    ],
)
def test_rel_error_by_hand(a: list[float], b: list[float], expected: float) -> None:
    assert rel_error(np.array(a), np.array(b)) == pytest.approx(expected)


def test_rel_error_accepts_tensors_and_rejects_shape_mismatch() -> None:
    assert rel_error(Tensor(np.ones(2)), np.ones(2)) == 0.0
    with pytest.raises(ValueError, match=r"\(2,\).*\(3,\)"):
        rel_error(np.ones(2), np.ones(3))


def test_gradcheck_runs_on_each_backend(xp: Any) -> None:
    x = Tensor(xp.asarray([[0.5, -1.0], [2.0, 0.25]]), requires_grad=True)
    assert gradcheck(lambda t: (t * t).sum(axis=0), [x])
    with pytest.raises(GradcheckError):
        gradcheck(times_three({2: 0.0}), [x])
