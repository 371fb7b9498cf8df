"""Tensor and the backward pass: reverse-mode automatic differentiation.

A :class:`Tensor` wraps an array of the selected backend (``numpy`` or ``cupy``). Every operation on
tensors that need gradients is a :class:`~minissd.autograd.function.Function` (``function.py``; the
operations themselves are in ``ops.py``): applying one links the result to its inputs, so a
computation leaves behind a directed acyclic graph, and ``backward()`` walks it from the result back
to the leaves, applying each Function's chain rule.

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

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .. import backend
from .grad_mode import enable_grad, is_grad_enabled, no_grad  # noqa: F401 - also importable from here

if TYPE_CHECKING:
    from .function import Function


class _Version:
    """How many times an array was overwritten in place; shared by a tensor, its views and detached copies."""

    __slots__ = ("count", "writer")

    def __init__(self) -> None:
        self.count = 0
        self.writer = ""  # the Function that wrote last, for error messages


def _binary(op: str, reflected: bool = False) -> Callable[[Tensor, Any], Tensor]:
    """The method behind a binary operator: ``a <op> b``, or ``b <op> a`` for the reflected form."""

    def method(self: Tensor, other: Any) -> Tensor:
        other = _function.lift(other, self)
        return getattr(_ops, op).apply(*((other, self) if reflected else (self, other)))

    return method


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
        # Same memory, same version counter: an in-place write through either is seen by both.
        self._version = data._version if isinstance(data, Tensor) else _Version()
        self._version_seen = self._version.count  # the version this tensor's value belongs to
        self._base: Tensor | None = None  # the tensor whose memory this one views (see Function.apply)
        self.data = backend.asarray(data)  # unwraps a Tensor
        self.grad: Any = None
        self.requires_grad = bool(requires_grad)
        self._ctx: Function | None = None  # the Function that computed this tensor (None for a leaf)

    shape = property(lambda self: tuple(self.data.shape), doc="The array's shape.")
    dtype = property(lambda self: self.data.dtype, doc="The array's dtype.")
    ndim = property(lambda self: self.data.ndim, doc="The number of dimensions.")
    size = property(lambda self: int(self.data.size), doc="The number of elements.")
    is_leaf = property(lambda self: self._ctx is None, doc="True for tensors created by the user, not by an op.")
    version = property(lambda self: self._version.count, doc="How many in-place writes the data has seen.")

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
        return Tensor(self, requires_grad=False)

    def zero_grad(self) -> None:
        """Forget the accumulated gradient."""
        self.grad = None

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

        Raises:
            RuntimeError: the graph was freed, or an array some Function saved for its backward was
                overwritten in place since (checked for the whole graph before any ``.grad`` changes).
        """
        grads: dict[int, Any] = {id(self): _function.initial_grad(self, grad)}
        order = _topological_order(self)
        for node in order:
            if node._ctx is not None:
                node._ctx.check_saved()  # freed, or modified in place: fail before changing anything
        for node in reversed(order):  # every consumer before what it consumes
            g = grads.pop(id(node), None)  # the sum of all contributions to d(self)/d(node)
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
            # the chain rule for one operation: d(self)/d(input) from d(self)/d(output)
            parent_grads = _function.checked_grads(ctx, ctx.backward(g))
            for parent, pg in zip(ctx.parents, parent_grads):
                if pg is not None:
                    key = id(parent)
                    grads[key] = pg if key not in grads else grads[key] + pg
            if not retain_graph:
                ctx.free()

    # ----------------------------------------------------------------- operators
    # ``t + 2`` and ``2 + t`` alike: the constant becomes a Tensor first (function.lift: dtype rules)
    __add__, __radd__ = _binary("Add"), _binary("Add", reflected=True)
    __sub__, __rsub__ = _binary("Sub"), _binary("Sub", reflected=True)
    __mul__, __rmul__ = _binary("Mul"), _binary("Mul", reflected=True)
    __truediv__, __rtruediv__ = _binary("Div"), _binary("Div", reflected=True)
    __matmul__, __rmatmul__ = _binary("MatMul"), _binary("MatMul", reflected=True)

    def __pow__(self, exponent: Any) -> Tensor:
        return _ops.power(self, exponent)

    def __rpow__(self, base: Any) -> Tensor:
        return _ops.Pow.apply(_function.lift(base, self), self)

    def __neg__(self) -> Tensor:
        return _ops.Neg.apply(self)

    def __getitem__(self, index: Any) -> Tensor:
        return _ops.GetItem.apply(self, index=_function.unwrap_index(index))

    # ----------------------------------------------------------------- methods (see ops.py)
    def astype(self, dtype: Any) -> Tensor:
        return _ops.Cast.apply(self, dtype=dtype)

    def exp(self) -> Tensor:
        return _ops.Exp.apply(self)

    def log(self) -> Tensor:
        return _ops.Log.apply(self)

    def sqrt(self) -> Tensor:
        return _ops.Sqrt.apply(self)

    def abs(self) -> Tensor:
        return _ops.Abs.apply(self)

    def relu(self) -> Tensor:
        return _ops.relu(self)

    def sigmoid(self) -> Tensor:
        return _ops.Sigmoid.apply(self)

    def softmax(self, axis: int = -1) -> Tensor:
        return _ops.Softmax.apply(self, axis=axis)

    def log_softmax(self, axis: int = -1) -> Tensor:
        return _ops.LogSoftmax.apply(self, axis=axis)

    def sum(self, axis: Any = None, keepdims: bool = False) -> Tensor:
        return _ops.Sum.apply(self, axis=axis, keepdims=keepdims)

    def mean(self, axis: Any = None, keepdims: bool = False) -> Tensor:
        return _ops.Mean.apply(self, axis=axis, keepdims=keepdims)

    def max(self, axis: Any = None, keepdims: bool = False) -> Tensor:
        return _ops.Max.apply(self, axis=axis, keepdims=keepdims)

    def reshape(self, *shape: Any) -> Tensor:
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return _ops.Reshape.apply(self, shape=tuple(int(s) for s in shape))

    def transpose(self, *axes: Any) -> Tensor:
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        return _ops.Transpose.apply(self, axes=tuple(axes) if axes else None)

    @property
    def T(self) -> Tensor:
        return self.transpose()


backend.register_tensor_type(Tensor)


def _topological_order(root: Tensor) -> list[Tensor]:
    """Tensors that ``root`` depends on (needing grad), inputs before outputs, without recursion."""
    order: list[Tensor] = []
    visited: set[int] = set()
    stack: list[tuple[Tensor, bool]] = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:  # all of node's inputs are in ``order`` already
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


def tensor(data: Any, requires_grad: bool = False, dtype: Any = None) -> Tensor:
    """Create a Tensor from array-like ``data`` on the current backend, optionally cast to ``dtype``."""
    return Tensor(backend.asarray(data, dtype=dtype), requires_grad=requires_grad)


# Function and the ops build on Tensor, so they are imported last (the package imports this module
# first; by the time an operator runs, both modules are complete).
from . import function as _function  # noqa: E402
from . import ops as _ops  # noqa: E402
