"""Tensor, Function and the backward pass: reverse-mode automatic differentiation in one file.

A :class:`Tensor` wraps an array of the selected backend (``numpy`` or ``cupy``). Every operation on
tensors that need gradients is a :class:`Function`: its ``forward`` computes the result from plain
arrays and saves what the gradient will need; its ``backward`` turns the gradient of the result into
gradients of the inputs (the chain rule for that one operation). Applying a Function links the
result to its inputs, so a computation leaves behind a directed acyclic graph.

Why a topological order? ``loss.backward()`` must hand each node the *complete* gradient of the loss
with respect to it before that node passes gradients on to its own inputs. A tensor used twice (the
diamond ``y = a * x; z = a + y``) receives one contribution per use; if it forwarded its gradient
after the first contribution, the second would be lost or double counted upstream. Visiting the nodes
in reverse topological order (every consumer before what it consumes) guarantees that all
contributions have been summed before a node is processed. The order is built with an explicit stack
rather than recursion, so a chain of 100,000 operations does not hit Python's recursion limit.

After ``backward()`` the graph's saved arrays are released (to free memory); a second ``backward()``
through the same graph raises a clear error unless the first call passed ``retain_graph=True``.
"""

from __future__ import annotations

import contextlib
import numbers
import operator
from collections.abc import Iterator, Sequence
from typing import Any

import numpy  # host-side dtype rules only (numpy.result_type); array math goes through the backend

from .. import backend

_grad_enabled = True


def is_grad_enabled() -> bool:
    """True unless inside a :func:`no_grad` block."""
    return _grad_enabled


class no_grad(contextlib.ContextDecorator):
    """Context manager (and decorator) in which operations build no graph: inference, optimizer steps."""

    def __enter__(self) -> no_grad:
        global _grad_enabled
        self._prev = _grad_enabled
        _grad_enabled = False
        return self

    def __exit__(self, *exc: Any) -> None:
        global _grad_enabled
        _grad_enabled = self._prev


class enable_grad(contextlib.ContextDecorator):
    """Turn graph building back on inside a :func:`no_grad` block."""

    def __enter__(self) -> enable_grad:
        global _grad_enabled
        self._prev = _grad_enabled
        _grad_enabled = True
        return self

    def __exit__(self, *exc: Any) -> None:
        global _grad_enabled
        _grad_enabled = self._prev


def _as_array(data: Any, dtype: Any = None) -> Any:
    if backend.is_array(data):
        if backend.get_array_module(data) is not backend.xp():
            data = backend.asarray(data)
        return data if dtype is None else data.astype(dtype, copy=False)
    return backend.xp().asarray(data, dtype=dtype)


class Tensor:
    """An array with an optional gradient.

    Args:
        data: array-like; stored as an array of the selected backend (no copy when it already is one).
        requires_grad: whether ``backward()`` should compute ``.grad`` for this tensor.

    Attributes:
        data: the array (any shape).
        grad: the gradient of the last ``backward()`` root with respect to ``data`` (same shape), or None.
    """

    # ``ndarray + Tensor`` must call Tensor.__radd__ (and build a graph) rather than let NumPy treat
    # the Tensor as an opaque object: __array_ufunc__ = None makes NumPy defer every binary operator
    # to the Tensor and refuse ufuncs such as numpy.exp(tensor) with a TypeError; __array_priority__
    # asks CuPy's operators for the same.
    __array_ufunc__ = None
    __array_priority__ = 1000

    def __init__(self, data: Any, requires_grad: bool = False) -> None:
        if isinstance(data, Tensor):
            data = data.data
        self.data = _as_array(data)
        self.grad: Any = None
        self.requires_grad = bool(requires_grad)
        self._ctx: Function | None = None

    # ----------------------------------------------------------------- basic properties
    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)

    @property
    def dtype(self) -> Any:
        return self.data.dtype

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def size(self) -> int:
        return int(self.data.size)

    @property
    def is_leaf(self) -> bool:
        """True for tensors created by the user rather than by an operation."""
        return self._ctx is None

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        extra = ", requires_grad=True" if self.requires_grad else ""
        return f"Tensor({backend.to_numpy(self.data)!r}{extra})"

    def item(self) -> float:
        """The value of a one-element tensor as a Python float."""
        if self.size != 1:
            raise ValueError(f"item(): expected a tensor with one element, got shape {self.shape}")
        return backend.to_float(self.data)

    def numpy(self) -> Any:
        """The data as a NumPy array on the host."""
        return backend.to_numpy(self.data)

    def detach(self) -> Tensor:
        """A tensor sharing the same data, cut from the graph (no gradient flows through it)."""
        return Tensor(self.data, requires_grad=False)

    def zero_grad(self) -> None:
        """Forget the accumulated gradient."""
        self.grad = None

    def astype(self, dtype: Any) -> Tensor:
        return Cast.apply(self, dtype=dtype)

    # ----------------------------------------------------------------- backward
    def backward(self, grad: Any = None, retain_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) into ``.grad`` of every leaf that requires a gradient.

        Gradients *accumulate*: a leaf's ``.grad`` is added to, not replaced, so call ``zero_grad()``
        between steps. Each leaf gets its own array with the leaf's shape and (floating) dtype.

        Args:
            grad: the upstream gradient, same shape as ``self``; may be omitted for a one-element tensor
                (it is then 1).
            retain_graph: keep the saved arrays so that ``backward()`` can run through the graph again.
                Without it the graph is freed as it is walked, and a second ``backward()`` through it
                raises ``RuntimeError`` before touching any ``.grad``. With it, a second call adds the
                same gradients again (``.grad`` doubles), exactly as two separate losses would.
        """
        if not self.requires_grad:
            raise RuntimeError(
                "backward(): this tensor does not require grad (no input had requires_grad=True, or it was "
                "computed inside no_grad())"
            )
        xp = backend.xp()
        if grad is None:
            if self.size != 1:
                raise RuntimeError(
                    f"backward(): grad can be omitted only for a one-element tensor, got shape {self.shape}"
                )
            grad = xp.ones_like(self.data)
        else:
            grad = _as_array(grad.data if isinstance(grad, Tensor) else grad, dtype=self.dtype)
            if tuple(grad.shape) != self.shape:
                raise ValueError(f"backward(grad): expected shape {self.shape}, got {tuple(grad.shape)}")

        order = _topological_order(self)
        # Check the whole graph before changing anything: finding a freed node halfway through would
        # leave some leaves with a new gradient and others without.
        for node in order:
            if node._ctx is not None and node._ctx.freed:
                raise RuntimeError(
                    f"backward(): the graph through {type(node._ctx).__name__} was already freed by an "
                    "earlier backward(); call backward(retain_graph=True) the first time to run it twice"
                )
        grads: dict[int, Any] = {id(self): grad}
        for node in reversed(order):
            g = grads.pop(id(node), None)
            if g is None:
                continue
            ctx = node._ctx
            if ctx is None:
                # A backward may hand the same array to several inputs (Add returns ``grad`` twice,
                # Reshape a view of it): copy, so that an in-place change to one leaf's .grad (an
                # optimizer, gradient clipping) cannot change another's.
                new = g.copy() if node.grad is None else node.grad + g
                # NumPy turns 0-d results into scalars (numpy.float64); .grad is always an array
                node.grad = backend.get_array_module(new).asarray(new)
                continue
            parent_grads = ctx.backward(g)
            if not isinstance(parent_grads, tuple):
                parent_grads = (parent_grads,)
            if len(parent_grads) != len(ctx.parents):
                raise RuntimeError(
                    f"{type(ctx).__name__}.backward returned {len(parent_grads)} gradients for "
                    f"{len(ctx.parents)} inputs"
                )
            for parent, pg in zip(ctx.parents, parent_grads):
                if pg is None or not parent.requires_grad:
                    continue
                if tuple(pg.shape) != parent.shape:
                    raise RuntimeError(
                        f"{type(ctx).__name__}.backward: gradient shape {tuple(pg.shape)} does not match "
                        f"input shape {parent.shape}"
                    )
                if pg.dtype != parent.dtype and parent.dtype.kind == "f":
                    # e.g. a float32 weight times a float64 constant: keep the weight's gradient float32
                    pg = pg.astype(parent.dtype)
                key = id(parent)
                grads[key] = pg if key not in grads else grads[key] + pg
            if not retain_graph:
                ctx.free()

    # ----------------------------------------------------------------- operators
    def __add__(self, other: Any) -> Tensor:
        return Add.apply(self, _lift(other, self))

    def __radd__(self, other: Any) -> Tensor:
        return Add.apply(_lift(other, self), self)

    def __sub__(self, other: Any) -> Tensor:
        return Sub.apply(self, _lift(other, self))

    def __rsub__(self, other: Any) -> Tensor:
        return Sub.apply(_lift(other, self), self)

    def __mul__(self, other: Any) -> Tensor:
        return Mul.apply(self, _lift(other, self))

    def __rmul__(self, other: Any) -> Tensor:
        return Mul.apply(_lift(other, self), self)

    def __truediv__(self, other: Any) -> Tensor:
        return Div.apply(self, _lift(other, self))

    def __rtruediv__(self, other: Any) -> Tensor:
        return Div.apply(_lift(other, self), self)

    def __pow__(self, exponent: Any) -> Tensor:
        if isinstance(exponent, Tensor) or backend.is_array(exponent):
            # an array exponent broadcasts like any other operand, so it goes through Pow
            return Pow.apply(self, _lift(exponent, self))
        if isinstance(exponent, numpy.generic):
            exponent = exponent.item()  # a NumPy float64 scalar would turn a float32 result float64
        return PowScalar.apply(self, exponent=exponent)

    def __rpow__(self, base: Any) -> Tensor:
        return Pow.apply(_lift(base, self), self)

    def __neg__(self) -> Tensor:
        return Neg.apply(self)

    def __matmul__(self, other: Any) -> Tensor:
        return MatMul.apply(self, _lift(other, self))

    def __rmatmul__(self, other: Any) -> Tensor:
        return MatMul.apply(_lift(other, self), self)

    def __getitem__(self, index: Any) -> Tensor:
        return GetItem.apply(self, index=_unwrap_index(index))

    # ----------------------------------------------------------------- methods
    def exp(self) -> Tensor:
        return Exp.apply(self)

    def log(self) -> Tensor:
        return Log.apply(self)

    def sqrt(self) -> Tensor:
        return Sqrt.apply(self)

    def abs(self) -> Tensor:
        return Abs.apply(self)

    def relu(self) -> Tensor:
        return ReLU.apply(self)

    def sigmoid(self) -> Tensor:
        return Sigmoid.apply(self)

    def softmax(self, axis: int = -1) -> Tensor:
        return Softmax.apply(self, axis=axis)

    def log_softmax(self, axis: int = -1) -> Tensor:
        return LogSoftmax.apply(self, axis=axis)

    def sum(self, axis: Any = None, keepdims: bool = False) -> Tensor:
        return Sum.apply(self, axis=axis, keepdims=keepdims)

    def mean(self, axis: Any = None, keepdims: bool = False) -> Tensor:
        return Mean.apply(self, axis=axis, keepdims=keepdims)

    def max(self, axis: Any = None, keepdims: bool = False) -> Tensor:
        return Max.apply(self, axis=axis, keepdims=keepdims)

    def reshape(self, *shape: Any) -> Tensor:
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return Reshape.apply(self, shape=tuple(int(s) for s in shape))

    def transpose(self, *axes: Any) -> Tensor:
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        return Transpose.apply(self, axes=tuple(axes) if axes else None)

    @property
    def T(self) -> Tensor:
        return self.transpose()


def _lift(value: Any, like: Tensor) -> Tensor:
    """Wrap a constant operand as a Tensor.

    A scalar (Python or NumPy) or a list of numbers takes ``like``'s dtype when that is a float, so
    ``float32 * 2.5`` stays float32 (a float64 constant would silently promote a whole float32
    network). Otherwise NumPy's promotion decides, so ``int tensor * 0.5`` becomes float64 rather
    than truncating 0.5 to 0. Arrays keep their own dtype.
    """
    if isinstance(value, Tensor):
        return value
    if backend.is_array(value):
        return Tensor(value)
    if isinstance(value, numpy.generic):
        value = value.item()
    host = numpy.asarray(value)
    if like.dtype.kind == "f" and host.dtype.kind in "biuf":
        dtype = like.dtype
    elif isinstance(value, numbers.Number):
        dtype = numpy.result_type(like.dtype, value)  # a Python scalar is "weak": int8 + 1 stays int8
    else:
        dtype = numpy.result_type(like.dtype, host.dtype)
    return Tensor(backend.xp().asarray(host, dtype=dtype))


def _unwrap_index(index: Any) -> Any:
    """An index with Tensors replaced by their arrays and lists/arrays moved to the backend.

    A list inside an index means an integer (or boolean) array, as in NumPy; turning it into an array
    here lets backward tell advanced from basic indexing, and CuPy wants device arrays anyway.
    """
    def part(p: Any) -> Any:
        if isinstance(p, Tensor):
            return p.data
        if isinstance(p, list) and len(p) == 0:
            return backend.asarray(p, dtype=numpy.intp)  # NumPy reads [] as an empty integer index
        if isinstance(p, list) or backend.is_array(p):
            return backend.asarray(p)
        return p

    if isinstance(index, tuple):
        # a tuple inside a tuple index is a sequence of integers, like a list
        return tuple(backend.asarray(p) if isinstance(p, tuple) else part(p) for p in index)
    return part(index)


def _topological_order(root: Tensor) -> list[Tensor]:
    """Tensors that ``root`` depends on (needing grad), inputs before outputs, without recursion."""
    order: list[Tensor] = []
    visited: set[int] = set()
    stack: list[tuple[Tensor, bool]] = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))
        if node._ctx is not None:
            for parent in node._ctx.parents:
                if parent.requires_grad and id(parent) not in visited:
                    stack.append((parent, False))
    return order


class Function:
    """One differentiable operation: ``forward`` and ``backward`` side by side.

    Subclasses implement ``forward(self, *arrays, **options) -> array`` on plain backend arrays and
    ``backward(self, grad) -> gradient or tuple of gradients`` (one per tensor input, ``None`` for an
    input that needs none). Anything the backward needs is stored on ``self`` in forward. Use it as
    ``MyOp.apply(tensor_a, tensor_b, option=...)``: positional arguments are the tensor inputs,
    keyword arguments are fixed options.
    """

    parents: tuple[Tensor, ...] = ()
    freed = False

    @classmethod
    def apply(cls, *inputs: Any, **options: Any) -> Tensor:
        fn = cls()
        tensors = tuple(x if isinstance(x, Tensor) else Tensor(x) for x in inputs)
        out = Tensor(fn.forward(*(t.data for t in tensors), **options))
        if _grad_enabled and any(t.requires_grad for t in tensors):
            out.requires_grad = True
            fn.parents = tensors
            out._ctx = fn
        return out

    def forward(self, *arrays: Any, **options: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def backward(self, grad: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def free(self) -> None:
        """Drop saved arrays after backward (keeps ``parents`` so the error on reuse can be raised)."""
        keep = {"parents"}
        for name in list(vars(self)):
            if name not in keep:
                delattr(self, name)
        self.freed = True


def unbroadcast(grad: Any, shape: Sequence[int]) -> Any:
    """Sum ``grad`` over the axes that broadcasting added or stretched, giving an array of ``shape``."""
    shape = tuple(shape)
    if tuple(grad.shape) == shape:
        return grad
    extra = grad.ndim - len(shape)
    if extra > 0:
        grad = grad.sum(axis=tuple(range(extra)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if stretched:
        grad = grad.sum(axis=stretched, keepdims=True)
    return grad.reshape(shape)


def _check_broadcast(name: str, a: Any, b: Any) -> None:
    """Raise a ValueError naming both shapes when ``a`` and ``b`` do not broadcast together."""
    try:
        # shape arithmetic on the host: CuPy has no broadcast_shapes, and none is needed
        numpy.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise ValueError(
            f"{name}: shapes {tuple(a.shape)} and {tuple(b.shape)} cannot be broadcast together"
        ) from None


# --------------------------------------------------------------------------- elementwise binary
class Add(Function):
    def forward(self, a: Any, b: Any) -> Any:
        _check_broadcast("add", a, b)
        self.shapes = (a.shape, b.shape)
        return a + b

    def backward(self, grad: Any) -> tuple[Any, Any]:
        sa, sb = self.shapes
        return unbroadcast(grad, sa), unbroadcast(grad, sb)


class Sub(Function):
    def forward(self, a: Any, b: Any) -> Any:
        _check_broadcast("sub", a, b)
        self.shapes = (a.shape, b.shape)
        return a - b

    def backward(self, grad: Any) -> tuple[Any, Any]:
        sa, sb = self.shapes
        return unbroadcast(grad, sa), unbroadcast(-grad, sb)


class Mul(Function):
    def forward(self, a: Any, b: Any) -> Any:
        _check_broadcast("mul", a, b)
        self.a, self.b = a, b
        return a * b

    def backward(self, grad: Any) -> tuple[Any, Any]:
        return unbroadcast(grad * self.b, self.a.shape), unbroadcast(grad * self.a, self.b.shape)


class Div(Function):
    def forward(self, a: Any, b: Any) -> Any:
        _check_broadcast("div", a, b)
        self.a, self.b = a, b
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
        _check_broadcast("pow", a, b)
        self.a, self.b = a, b
        self.out = a**b
        return self.out

    def backward(self, grad: Any) -> tuple[Any, Any]:
        xp = backend.get_array_module(self.a)
        ga = grad * self.b * self.a ** (self.b - 1)
        safe = xp.where(self.a > 0, self.a, 1)
        gb = grad * self.out * xp.log(safe)
        return unbroadcast(ga, self.a.shape), unbroadcast(gb, self.b.shape)


class PowScalar(Function):
    """``a ** p`` for a constant exponent ``p``."""

    def forward(self, a: Any, exponent: float) -> Any:
        self.a, self.p = a, exponent
        return a**exponent

    def backward(self, grad: Any) -> Any:
        if self.p == 0:
            # d(x**0)/dx = 0 everywhere; the general formula would give 0 * 0**-1 = nan at x = 0
            return backend.get_array_module(grad).zeros_like(grad * self.a)
        return grad * self.p * self.a ** (self.p - 1)


class MatMul(Function):
    """Matrix product with NumPy's rules (batched, broadcasting over leading axes)."""

    def forward(self, a: Any, b: Any) -> Any:
        if a.ndim == 0 or b.ndim == 0:
            raise ValueError(f"matmul: inputs must be at least 1-D, got shapes {a.shape} and {b.shape}")
        if a.shape[-1] != b.shape[0 if b.ndim == 1 else -2]:  # contracted axes must agree
            raise ValueError(f"matmul: shapes {tuple(a.shape)} and {tuple(b.shape)} are not aligned")
        self.a, self.b = a, b
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
        self.out = backend.get_array_module(a).exp(a)
        return self.out

    def backward(self, grad: Any) -> Any:
        # BEGIN SOLUTION autograd_ops
        return grad * self.out
        # END SOLUTION


class Log(Function):
    def forward(self, a: Any) -> Any:
        self.a = a
        return backend.get_array_module(a).log(a)

    def backward(self, grad: Any) -> Any:
        # BEGIN SOLUTION autograd_ops
        return grad / self.a
        # END SOLUTION


class Sqrt(Function):
    def forward(self, a: Any) -> Any:
        self.out = backend.get_array_module(a).sqrt(a)
        return self.out

    def backward(self, grad: Any) -> Any:
        return grad / (2 * self.out)


class Abs(Function):
    def forward(self, a: Any) -> Any:
        self.sign = backend.get_array_module(a).sign(a)
        return abs(a)

    def backward(self, grad: Any) -> Any:
        return grad * self.sign


class ReLU(Function):
    """max(0, x); the gradient at exactly 0 is taken as 0."""

    def forward(self, a: Any) -> Any:
        xp = backend.get_array_module(a)
        self.mask = a > 0
        # maximum(), not a * mask: -inf * 0 would be nan, but relu(-inf) is 0; a nan input stays nan
        # (so a diverging network is noticed) rather than being hidden as 0
        return xp.maximum(a, xp.zeros((), dtype=a.dtype))

    def backward(self, grad: Any) -> Any:
        xp = backend.get_array_module(grad)
        return xp.where(self.mask, grad, xp.zeros((), dtype=grad.dtype))


class Sigmoid(Function):
    def forward(self, a: Any) -> Any:
        xp = backend.get_array_module(a)
        # the two branches keep exp() from overflowing for large |a|
        e = xp.exp(-abs(a))
        self.out = xp.where(a >= 0, 1 / (1 + e), e / (1 + e))
        return self.out

    def backward(self, grad: Any) -> Any:
        return grad * self.out * (1 - self.out)


class Softmax(Function):
    """exp(x) / sum(exp(x)) along ``axis``, computed after subtracting the max (stable for +-1e4)."""

    def forward(self, a: Any, axis: int = -1) -> Any:
        xp = backend.get_array_module(a)
        e = xp.exp(a - a.max(axis=axis, keepdims=True))
        self.out = e / e.sum(axis=axis, keepdims=True)
        self.axis = axis
        return self.out

    def backward(self, grad: Any) -> Any:
        s = self.out
        return s * (grad - (grad * s).sum(axis=self.axis, keepdims=True))


class LogSoftmax(Function):
    """x - logsumexp(x) along ``axis``, stable for logits of +-1e4."""

    def forward(self, a: Any, axis: int = -1) -> Any:
        xp = backend.get_array_module(a)
        shifted = a - a.max(axis=axis, keepdims=True)
        out = shifted - xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))
        self.out, self.axis = out, axis
        return out

    def backward(self, grad: Any) -> Any:
        xp = backend.get_array_module(grad)
        return grad - xp.exp(self.out) * grad.sum(axis=self.axis, keepdims=True)


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
        self.weights = mask / mask.sum(axis=self.axes, keepdims=True)
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


# --------------------------------------------------------------------------- functional helpers
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


def tensor(data: Any, requires_grad: bool = False, dtype: Any = None) -> Tensor:
    """Create a Tensor from array-like ``data`` on the current backend, optionally cast to ``dtype``."""
    return Tensor(_as_array(data, dtype=dtype), requires_grad=requires_grad)
