"""The autograd operations, one Function class each, forward and backward side by side.

Tensor's operators and methods (``a + b``, ``x.exp()``, ``x[i]``) apply these classes; this module is
the list a student reads to see which operations exist, and the place to import them from
(``from minissd.autograd.ops import Add, LogSoftmax``). Each ``forward`` keeps the inputs or output
its ``backward`` reads with ``save_for_backward`` (an in-place change to them is then caught, see
``function.py``) and anything else (shapes, axes) as a plain attribute.

Also here, as functions: ``relu`` (with ``inplace``), ``softmax``, ``log_softmax``, ``concatenate``,
``stack``, and the plain-array ``log_softmax_array`` / ``softmax_array`` that the ops' forwards use and
that code outside autograd (losses, detection) shares. They are the only ReLU, softmax and
log-softmax in minissd.
"""

from __future__ import annotations

import operator
from collections.abc import Iterator, Sequence
from typing import Any

import numpy  # host-side scalar types only; array math goes through the backend

from .. import backend
from .function import Function, check_broadcast, lift, unbroadcast
from .tensor import Tensor

__all__ = [
    "Abs", "Add", "Cast", "Concatenate", "Div", "Exp", "GetItem", "Log", "LogSoftmax", "MatMul", "Max",
    "Mean", "Mul", "Neg", "Pow", "PowScalar", "ReLU", "Reshape", "Sigmoid", "Softmax", "Sqrt", "Stack",
    "Sub", "Sum", "Transpose",
    "concatenate", "log_softmax", "log_softmax_array", "power", "relu", "softmax", "softmax_array", "stack",
]


def _tensor(x: Any) -> Tensor:
    return x if isinstance(x, Tensor) else Tensor(x)


# --------------------------------------------------------------------------- elementwise binary
class Add(Function):
    def forward(self, a: Any, b: Any) -> Any:
        check_broadcast("add", a, b)
        self.shapes = (a.shape, b.shape)
        return a + b

    def backward(self, grad: Any) -> tuple[Any, Any]:
        sa, sb = self.shapes
        return unbroadcast(grad, sa), unbroadcast(grad, sb)


class Sub(Function):
    def forward(self, a: Any, b: Any) -> Any:
        check_broadcast("sub", a, b)
        self.shapes = (a.shape, b.shape)
        return a - b

    def backward(self, grad: Any) -> tuple[Any, Any]:
        sa, sb = self.shapes
        return unbroadcast(grad, sa), unbroadcast(-grad, sb)


class Mul(Function):
    def forward(self, a: Any, b: Any) -> Any:
        check_broadcast("mul", a, b)
        self.save_for_backward(a=a, b=b)
        return a * b

    def backward(self, grad: Any) -> tuple[Any, Any]:
        return unbroadcast(grad * self.b, self.a.shape), unbroadcast(grad * self.a, self.b.shape)


class Div(Function):
    def forward(self, a: Any, b: Any) -> Any:
        check_broadcast("div", a, b)
        self.save_for_backward(a=a, b=b)
        return a / b

    def backward(self, grad: Any) -> tuple[Any, Any]:
        # BEGIN SOLUTION autograd_ops
        ga = grad / self.b
        gb = -grad * self.a / (self.b * self.b)
        return unbroadcast(ga, self.a.shape), unbroadcast(gb, self.b.shape)
        # END SOLUTION


class Pow(Function):
    """``a ** b`` with both a tensor; d/db = a**b * log(a) (defined for a > 0)."""

    def forward(self, a: Any, b: Any) -> Any:
        check_broadcast("pow", a, b)
        out = a**b
        self.save_for_backward(a=a, b=b, out=out)
        return out

    def backward(self, grad: Any) -> tuple[Any, Any]:
        xp = backend.get_array_module(self.a)
        ga = grad * self.b * self.a ** (self.b - 1)
        safe = xp.where(self.a > 0, self.a, 1)
        gb = grad * self.out * xp.log(safe)
        return unbroadcast(ga, self.a.shape), unbroadcast(gb, self.b.shape)


class PowScalar(Function):
    """``a ** p`` for a constant exponent ``p``."""

    def forward(self, a: Any, exponent: float) -> Any:
        self.save_for_backward(a=a)
        self.p = exponent
        return a**exponent

    def backward(self, grad: Any) -> Any:
        if self.p == 0:
            # d(x**0)/dx = 0 everywhere; the general formula would give 0 * 0**-1 = nan at x = 0
            return backend.get_array_module(grad).zeros_like(grad * self.a)
        return grad * self.p * self.a ** (self.p - 1)


def power(x: Tensor, exponent: Any) -> Tensor:
    """``x ** exponent``: PowScalar for a constant number, Pow (broadcasting) for a tensor or array."""
    if isinstance(exponent, Tensor) or backend.is_array(exponent):
        return Pow.apply(x, lift(exponent, x))
    if isinstance(exponent, numpy.generic):
        exponent = exponent.item()  # a NumPy float64 scalar would turn a float32 result float64
    return PowScalar.apply(x, exponent=exponent)


class MatMul(Function):
    """Matrix product with NumPy's rules (batched, broadcasting over leading axes)."""

    def forward(self, a: Any, b: Any) -> Any:
        if a.ndim == 0 or b.ndim == 0:
            raise ValueError(f"matmul: inputs must be at least 1-D, got shapes {a.shape} and {b.shape}")
        if a.shape[-1] != b.shape[0 if b.ndim == 1 else -2]:  # contracted axes must agree
            raise ValueError(f"matmul: shapes {tuple(a.shape)} and {tuple(b.shape)} are not aligned")
        self.save_for_backward(a=a, b=b)
        return a @ b

    def backward(self, grad: Any) -> tuple[Any, Any]:
        # BEGIN SOLUTION autograd_ops
        xp = backend.get_array_module(grad)
        a, b = self.a, self.b
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        # Put back the axes that matmul dropped for 1-D operands, so that grad is (..., m, n) like
        # a2 @ b2. Order matters when both are 1-D: grad is 0-d, and expanding -1 first gives (1,)
        # and then (1, 1); expanding -2 first would be out of range for a 0-d array.
        g = grad
        if b.ndim == 1:
            g = xp.expand_dims(g, -1)
        if a.ndim == 1:
            g = xp.expand_dims(g, -2)
        ga = g @ xp.swapaxes(b2, -1, -2)
        gb = xp.swapaxes(a2, -1, -2) @ g
        ga = unbroadcast(ga, a2.shape).reshape(a.shape)
        gb = unbroadcast(gb, b2.shape).reshape(b.shape)
        return ga, gb
        # END SOLUTION


# --------------------------------------------------------------------------- elementwise unary
class Neg(Function):
    def forward(self, a: Any) -> Any:
        return -a

    def backward(self, grad: Any) -> Any:
        return -grad


class Cast(Function):
    def forward(self, a: Any, dtype: Any) -> Any:
        self.dtype = a.dtype
        return a.astype(dtype)

    def backward(self, grad: Any) -> Any:
        return grad.astype(self.dtype)


class Exp(Function):
    def forward(self, a: Any) -> Any:
        out = backend.get_array_module(a).exp(a)
        self.save_for_backward(out=out)
        return out

    def backward(self, grad: Any) -> Any:
        # BEGIN SOLUTION autograd_ops
        return grad * self.out
        # END SOLUTION


class Log(Function):
    def forward(self, a: Any) -> Any:
        self.save_for_backward(a=a)
        return backend.get_array_module(a).log(a)

    def backward(self, grad: Any) -> Any:
        # BEGIN SOLUTION autograd_ops
        return grad / self.a
        # END SOLUTION


class Sqrt(Function):
    def forward(self, a: Any) -> Any:
        out = backend.get_array_module(a).sqrt(a)
        self.save_for_backward(out=out)
        return out

    def backward(self, grad: Any) -> Any:
        return grad / (2 * self.out)


class Abs(Function):
    def forward(self, a: Any) -> Any:
        self.sign = backend.get_array_module(a).sign(a)  # a new array: nothing can overwrite it
        return abs(a)

    def backward(self, grad: Any) -> Any:
        return grad * self.sign


class ReLU(Function):
    """max(x, 0); the gradient at exactly 0 is taken as 0. Saves only the output: dx = dy where y > 0.

    With ``inplace=True`` the result is written over the input array, so a conv + ReLU pair holds one
    activation instead of two (as ``nn.ReLU(inplace=True)`` in PyTorch's VGG). That is safe whenever
    it runs: the input's version is bumped, and if another Function saved the input for its backward
    (Exp saves its output, Mul its inputs), that backward raises instead of using the new values.
    """

    def forward(self, a: Any, inplace: bool = False) -> Any:
        xp = backend.get_array_module(a)
        zero = a.dtype.type(0)
        # maximum(), not a * mask: -inf * 0 would be nan, but relu(-inf) is 0; a nan input stays nan
        # (so a diverging network is noticed) rather than being hidden as 0
        if inplace:
            self.mark_dirty(a)
            out = xp.maximum(a, zero, out=a)
        else:
            out = xp.maximum(a, zero)
        self.save_for_backward(out=out)
        return out

    def backward(self, grad: Any) -> Any:
        return grad * (self.out > 0)  # 3x faster than where(out > 0, grad, 0) on NumPy


def relu(x: Tensor | Any, inplace: bool = False) -> Tensor:
    """Rectified linear unit, elementwise ``max(x, 0)``; any shape.

    ``inplace=True`` overwrites ``x``'s array (saving the memory of a second activation) and returns a
    new Tensor on that same memory; use it, not ``x``, afterwards. It raises RuntimeError for a leaf
    that requires grad; if something saved ``x`` for its backward, that backward raises instead.
    """
    return ReLU.apply(_tensor(x), inplace=bool(inplace))


class Sigmoid(Function):
    def forward(self, a: Any) -> Any:
        xp = backend.get_array_module(a)
        # the two branches keep exp() from overflowing for large |a|
        e = xp.exp(-abs(a))
        out = xp.where(a >= 0, 1 / (1 + e), e / (1 + e))
        self.save_for_backward(out=out)
        return out

    def backward(self, grad: Any) -> Any:
        return grad * self.out * (1 - self.out)


def log_softmax_array(a: Any, axis: int = -1) -> Any:
    """``a - logsumexp(a)`` along ``axis`` on a plain array (NumPy or CuPy), same shape and dtype.

    Subtracting the maximum first keeps ``exp`` from overflowing, so logits of +-1e4 are exact.
    """
    xp = backend.get_array_module(a)
    shifted = a - a.max(axis=axis, keepdims=True)
    return shifted - xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))


def softmax_array(a: Any, axis: int = -1) -> Any:
    """``exp(a) / sum(exp(a))`` along ``axis`` on a plain array: the exponential of :func:`log_softmax_array`."""
    return backend.get_array_module(a).exp(log_softmax_array(a, axis))


class Softmax(Function):
    """exp(x) / sum(exp(x)) along ``axis``, stable for logits of +-1e4 (see :func:`softmax_array`)."""

    def forward(self, a: Any, axis: int = -1) -> Any:
        out = softmax_array(a, axis)
        self.save_for_backward(out=out)
        self.axis = axis
        return out

    def backward(self, grad: Any) -> Any:
        s = self.out
        return s * (grad - (grad * s).sum(axis=self.axis, keepdims=True))


class LogSoftmax(Function):
    """x - logsumexp(x) along ``axis``, stable for logits of +-1e4 (see :func:`log_softmax_array`)."""

    def forward(self, a: Any, axis: int = -1) -> Any:
        out = log_softmax_array(a, axis)
        self.save_for_backward(out=out)
        self.axis = axis
        return out

    def backward(self, grad: Any) -> Any:
        xp = backend.get_array_module(grad)
        return grad - xp.exp(self.out) * grad.sum(axis=self.axis, keepdims=True)


def softmax(x: Tensor | Any, axis: int = -1) -> Tensor:
    """``exp(x) / sum(exp(x))`` along ``axis``; any shape."""
    return Softmax.apply(_tensor(x), axis=axis)


def log_softmax(x: Tensor | Any, axis: int = -1) -> Tensor:
    """``x - logsumexp(x)`` along ``axis`` (stable for large logits); any shape."""
    return LogSoftmax.apply(_tensor(x), axis=axis)


# --------------------------------------------------------------------------- reductions
def _normalize_axis(axis: Any, ndim: int) -> tuple[int, ...]:
    """``axis`` (None, an int or a sequence of ints, negatives allowed) as sorted non-negative axes."""
    if axis is None:
        return tuple(range(ndim))
    try:
        axes = (operator.index(axis),)  # int, numpy.int64, ...
    except TypeError:
        axes = tuple(operator.index(ax) for ax in axis)
    out = []
    for ax in axes:
        if not -ndim <= ax < ndim:
            raise ValueError(f"axis {ax} is out of range for a tensor with {ndim} dimensions")
        out.append(ax % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"axis {axis} repeats an axis")
    return tuple(sorted(out))


def _expand_reduced(grad: Any, axes: tuple[int, ...], keepdims: bool, shape: tuple[int, ...]) -> Any:
    """Put the reduced axes back into ``grad`` so that it broadcasts against the input."""
    if not keepdims:
        for ax in axes:
            grad = backend.get_array_module(grad).expand_dims(grad, ax)
    return grad


class Sum(Function):
    def forward(self, a: Any, axis: Any = None, keepdims: bool = False) -> Any:
        self.axes = _normalize_axis(axis, a.ndim)
        self.keepdims, self.shape = keepdims, a.shape
        return a.sum(axis=self.axes, keepdims=keepdims)

    def backward(self, grad: Any) -> Any:
        xp = backend.get_array_module(grad)
        g = _expand_reduced(grad, self.axes, self.keepdims, self.shape)
        return xp.broadcast_to(g, self.shape).copy()


class Mean(Function):
    def forward(self, a: Any, axis: Any = None, keepdims: bool = False) -> Any:
        self.axes = _normalize_axis(axis, a.ndim)
        self.keepdims, self.shape = keepdims, a.shape
        self.count = 1
        for ax in self.axes:
            self.count *= a.shape[ax]
        return a.mean(axis=self.axes, keepdims=keepdims)

    def backward(self, grad: Any) -> Any:
        # BEGIN SOLUTION autograd_ops
        xp = backend.get_array_module(grad)
        g = _expand_reduced(grad, self.axes, self.keepdims, self.shape)
        return xp.broadcast_to(g / self.count, self.shape).copy()
        # END SOLUTION


class Max(Function):
    """Maximum along ``axis``. On ties the gradient is split equally among the tied elements."""

    def forward(self, a: Any, axis: Any = None, keepdims: bool = False) -> Any:
        self.axes = _normalize_axis(axis, a.ndim)
        self.keepdims, self.shape = keepdims, a.shape
        m = a.max(axis=self.axes, keepdims=True)
        mask = (a == m).astype(a.dtype)
        self.weights = mask / mask.sum(axis=self.axes, keepdims=True)  # a new array, not the input
        return m if keepdims else m.reshape(tuple(n for i, n in enumerate(a.shape) if i not in self.axes))

    def backward(self, grad: Any) -> Any:
        return _expand_reduced(grad, self.axes, self.keepdims, self.shape) * self.weights


# --------------------------------------------------------------------------- shape
class Reshape(Function):
    def forward(self, a: Any, shape: tuple[int, ...]) -> Any:
        self.shape = a.shape
        try:
            return a.reshape(shape)
        except ValueError:
            raise ValueError(
                f"reshape: cannot reshape a tensor of shape {tuple(a.shape)} to {shape}"
            ) from None

    def backward(self, grad: Any) -> Any:
        return grad.reshape(self.shape)


class Transpose(Function):
    def forward(self, a: Any, axes: tuple[int, ...] | None = None) -> Any:
        if axes is None:
            axes = tuple(reversed(range(a.ndim)))
        if len(axes) != a.ndim or sorted(ax % max(a.ndim, 1) for ax in axes) != list(range(a.ndim)):
            raise ValueError(f"transpose: axes {axes} are not a permutation for a {a.ndim}-D tensor")
        # Store non-negative axes: the inverse permutation below needs them (argsort of (-1, 0)
        # would be the identity, not the inverse of swapping two axes).
        self.axes = tuple(ax % a.ndim for ax in axes)
        return a.transpose(self.axes)

    def backward(self, grad: Any) -> Any:
        # output axis i came from input axis axes[i], so input axis axes[i] is output axis i
        inverse = [0] * len(self.axes)
        for i, ax in enumerate(self.axes):
            inverse[ax] = i
        return grad.transpose(tuple(inverse))


class GetItem(Function):
    """``a[index]``: basic (ints, slices, None, ...), integer-array and boolean-mask indexing.

    Backward writes ``grad`` into zeros of the input's shape. Basic indexing and a single boolean
    mask select each element at most once, so plain assignment is enough. Integer arrays may select
    an element several times (``a[[0, 0]]``), and then every copy's gradient must be *added*:
    ``out[index] = grad`` would keep only one of them, so that case uses ``backend.scatter_add``.
    Indices arrive through ``Tensor.__getitem__`` with lists already turned into backend arrays.
    """

    def forward(self, a: Any, index: Any) -> Any:
        self.index, self.shape, self.dtype = index, a.shape, a.dtype
        return a[index]

    def backward(self, grad: Any) -> Any:
        xp = backend.get_array_module(grad)
        out = xp.zeros(self.shape, dtype=grad.dtype)
        parts = self.index if isinstance(self.index, tuple) else (self.index,)
        arrays = [p for p in parts if backend.is_array(p)]
        if not arrays or (len(arrays) == 1 and arrays[0].dtype == bool):
            out[self.index] = grad
        else:
            backend.scatter_add(out, _bool_to_int_index(parts), grad)
        return out


def _bool_to_int_index(parts: tuple[Any, ...]) -> tuple[Any, ...]:
    """Replace each boolean mask by its ``nonzero()`` integer arrays (NumPy's own definition of a mask).

    Scatter-add on the GPU accepts integer arrays mixed with a mask less reliably than plain integers.
    """
    out: list[Any] = []
    for p in parts:
        if backend.is_array(p) and p.dtype == bool and p.ndim > 0:
            out.extend(p.nonzero())
        else:
            out.append(p)
    return tuple(out)


class Concatenate(Function):
    def forward(self, *arrays: Any, axis: int = 0) -> Any:
        xp = backend.get_array_module(*arrays)
        try:
            out = xp.concatenate(arrays, axis=axis)
        except (ValueError, IndexError):  # IndexError: NumPy's AxisError for an axis out of range
            shapes = [tuple(a.shape) for a in arrays]
            raise ValueError(f"concatenate(axis={axis}): incompatible shapes {shapes}") from None
        self.axis = axis
        self.sizes = [a.shape[axis] for a in arrays]
        return out

    def backward(self, grad: Any) -> tuple[Any, ...]:
        xp = backend.get_array_module(grad)
        cuts = list(_cumsum(self.sizes))[:-1]
        return tuple(xp.split(grad, cuts, axis=self.axis))


class Stack(Function):
    def forward(self, *arrays: Any, axis: int = 0) -> Any:
        xp = backend.get_array_module(*arrays)
        shapes = {tuple(a.shape) for a in arrays}
        if len(shapes) != 1:
            raise ValueError(f"stack: all tensors must have the same shape, got {sorted(shapes)}")
        self.axis = axis
        return xp.stack(arrays, axis=axis)

    def backward(self, grad: Any) -> tuple[Any, ...]:
        xp = backend.get_array_module(grad)
        n = grad.shape[self.axis]
        return tuple(xp.take(grad, i, axis=self.axis) for i in range(n))


def _cumsum(values: Sequence[int]) -> Iterator[int]:
    total = 0
    for v in values:
        total += v
        yield total


def concatenate(tensors: Sequence[Tensor], axis: int = 0) -> Tensor:
    """Join tensors along an existing axis (gradients split back)."""
    if len(tensors) == 0:
        raise ValueError("concatenate: expected at least one tensor, got an empty sequence")
    return Concatenate.apply(*tensors, axis=axis)


def stack(tensors: Sequence[Tensor], axis: int = 0) -> Tensor:
    """Join same-shaped tensors along a new axis."""
    if len(tensors) == 0:
        raise ValueError("stack: expected at least one tensor, got an empty sequence")
    return Stack.apply(*tensors, axis=axis)
