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
from collections.abc import Iterator, Sequence
from typing import Any

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

    __array_priority__ = 1000  # make ``ndarray + Tensor`` call Tensor.__radd__

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

        Args:
            grad: the upstream gradient, same shape as ``self``; may be omitted for a one-element tensor
                (it is then 1).
            retain_graph: keep the saved arrays so that ``backward()`` can run through the graph again.
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
        grads: dict[int, Any] = {id(self): grad}
        for node in reversed(order):
            g = grads.pop(id(node), None)
            if g is None:
                continue
            ctx = node._ctx
            if ctx is None:
                node.grad = g if node.grad is None else node.grad + g
                continue
            if ctx.freed:
                raise RuntimeError(
                    f"backward(): the graph through {type(ctx).__name__} was already freed by an earlier "
                    "backward(); call backward(retain_graph=True) the first time to run it twice"
                )
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
        if isinstance(exponent, Tensor):
            return Pow.apply(self, exponent)
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
    """Wrap a constant operand as a Tensor of ``like``'s dtype (so float32 stays float32)."""
    if isinstance(value, Tensor):
        return value
    if backend.is_array(value):
        return Tensor(value)
    return Tensor(backend.xp().asarray(value, dtype=like.dtype))


def _unwrap_index(index: Any) -> Any:
    if isinstance(index, Tensor):
        return index.data
    if isinstance(index, tuple):
        return tuple(i.data if isinstance(i, Tensor) else i for i in index)
    return index


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
    try:
        backend.get_array_module(a).broadcast_shapes(a.shape, b.shape)
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
        ga = grad / self.b
        gb = -grad * self.a / (self.b * self.b)
        return unbroadcast(ga, self.a.shape), unbroadcast(gb, self.b.shape)


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
        return grad * self.p * self.a ** (self.p - 1)


class MatMul(Function):
    """Matrix product with NumPy's rules (batched, broadcasting over leading axes)."""

    def forward(self, a: Any, b: Any) -> Any:
        if a.ndim == 0 or b.ndim == 0:
            raise ValueError(f"matmul: inputs must be at least 1-D, got shapes {a.shape} and {b.shape}")
        if a.shape[-1] != b.shape[0 if b.ndim == 1 else -2]:
            raise ValueError(f"matmul: shapes {tuple(a.shape)} and {tuple(b.shape)} are not aligned")
        self.a, self.b = a, b
        return a @ b

    def backward(self, grad: Any) -> tuple[Any, Any]:
        xp = backend.get_array_module(grad)
        a, b = self.a, self.b
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        g = grad
        if a.ndim == 1:
            g = xp.expand_dims(g, -2)
        if b.ndim == 1:
            g = xp.expand_dims(g, -1)
        ga = g @ xp.swapaxes(b2, -1, -2)
        gb = xp.swapaxes(a2, -1, -2) @ g
        ga = unbroadcast(ga, a2.shape).reshape(a.shape)
        gb = unbroadcast(gb, b2.shape).reshape(b.shape)
        return ga, gb


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
        return grad * self.out


class Log(Function):
    def forward(self, a: Any) -> Any:
        self.a = a
        return backend.get_array_module(a).log(a)

    def backward(self, grad: Any) -> Any:
        return grad / self.a


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
        self.mask = a > 0
        return a * self.mask

    def backward(self, grad: Any) -> Any:
        return grad * self.mask


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
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    out = []
    for ax in axes:
        if not -ndim <= ax < max(ndim, 1):
            raise ValueError(f"axis {ax} is out of range for a tensor with {ndim} dimensions")
        out.append(ax % ndim if ndim else 0)
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
        xp = backend.get_array_module(grad)
        g = _expand_reduced(grad, self.axes, self.keepdims, self.shape)
        return xp.broadcast_to(g / self.count, self.shape).copy()


class Max(Function):
    """Maximum along ``axis``. On ties the gradient is split equally among the tied elements."""

    def forward(self, a: Any, axis: Any = None, keepdims: bool = False) -> Any:
        self.axes = _normalize_axis(axis, a.ndim)
        self.keepdims, self.shape = keepdims, a.shape
        m = a.max(axis=self.axes, keepdims=True)
        mask = (a == m).astype(a.dtype)
        self.weights = mask / mask.sum(axis=self.axes, keepdims=True)
        return m if keepdims else m.reshape([n for i, n in enumerate(a.shape) if i not in self.axes])

    def backward(self, grad: Any) -> Any:
        return _expand_reduced(grad, self.axes, self.keepdims, self.shape) * self.weights


# --------------------------------------------------------------------------- shape
class Reshape(Function):
    def forward(self, a: Any, shape: tuple[int, ...]) -> Any:
        self.shape = a.shape
        try:
            return a.reshape(shape)
        except ValueError:
            raise ValueError(f"reshape: cannot reshape a tensor of shape {tuple(a.shape)} to {shape}") from None

    def backward(self, grad: Any) -> Any:
        return grad.reshape(self.shape)


class Transpose(Function):
    def forward(self, a: Any, axes: tuple[int, ...] | None = None) -> Any:
        if axes is None:
            axes = tuple(reversed(range(a.ndim)))
        if len(axes) != a.ndim or sorted(ax % max(a.ndim, 1) for ax in axes) != list(range(a.ndim)):
            raise ValueError(f"transpose: axes {axes} are not a permutation for a {a.ndim}-D tensor")
        self.axes = axes
        return a.transpose(axes)

    def backward(self, grad: Any) -> Any:
        xp = backend.get_array_module(grad)
        return grad.transpose(xp.argsort(xp.asarray(self.axes)).tolist())


def _has_array_index(index: Any) -> bool:
    parts = index if isinstance(index, tuple) else (index,)
    return any(backend.is_array(p) or isinstance(p, (list, tuple)) for p in parts)


class GetItem(Function):
    """``a[index]`` with basic or integer-array indexing; repeated integer indices accumulate."""

    def forward(self, a: Any, index: Any) -> Any:
        self.index, self.shape, self.dtype = index, a.shape, a.dtype
        return a[index]

    def backward(self, grad: Any) -> Any:
        xp = backend.get_array_module(grad)
        out = xp.zeros(self.shape, dtype=grad.dtype)
        if _has_array_index(self.index) and not _is_bool_index(self.index):
            backend.scatter_add(out, self.index, grad)
        else:
            out[self.index] = grad
        return out


def _is_bool_index(index: Any) -> bool:
    parts = index if isinstance(index, tuple) else (index,)
    arrays = [p for p in parts if backend.is_array(p)]
    return len(arrays) == 1 and arrays[0].dtype == bool and not any(isinstance(p, (list, tuple)) for p in parts)


class Concatenate(Function):
    def forward(self, *arrays: Any, axis: int = 0) -> Any:
        xp = backend.get_array_module(*arrays)
        self.axis = axis
        self.sizes = [a.shape[axis] for a in arrays]
        try:
            return xp.concatenate(arrays, axis=axis)
        except ValueError:
            shapes = [tuple(a.shape) for a in arrays]
            raise ValueError(f"concatenate(axis={axis}): incompatible shapes {shapes}") from None

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
