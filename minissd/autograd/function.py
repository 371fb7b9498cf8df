"""Function: one differentiable operation, its forward and backward side by side.

A Function's ``forward`` computes the result from plain arrays and saves what the gradient will
need; its ``backward`` turns the gradient of the result into gradients of the inputs (the chain rule
for that one operation). ``MyOp.apply(tensors..., option=...)`` runs forward and links the result to
its inputs in the graph that ``Tensor.backward`` walks.

In-place safety. Every tensor carries a version counter that in-place operations bump (its views
and detached copies share it, since they share the memory). When a Function is recorded in the
graph, the version of every array it kept for backward (through ``save_for_backward`` or as a plain
attribute) that is an input's or the output's memory is recorded too; before ``backward()`` changes
any ``.grad`` it checks them all, and a kept array overwritten in place since (for example by
``relu(x, inplace=True)``) raises a RuntimeError naming both operations instead of silently giving a
wrong gradient. An in-place op calls ``mark_dirty`` on the input it overwrites; that
raises for a leaf that requires grad (or a view of one), whose values the gradient refers to.

Also here: ``unbroadcast`` (the reduction every broadcasting op's backward needs) and the rules that
turn Python constants and indices into operands.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import numpy  # host-side dtype and shape rules only; array math goes through the backend

from .. import backend
from .grad_mode import is_grad_enabled
from .tensor import Tensor


class Function:
    """One differentiable operation: ``forward`` and ``backward`` side by side.

    Subclasses implement ``forward(self, *arrays, **options) -> array`` on plain backend arrays and
    ``backward(self, grad) -> gradient or tuple of gradients`` (one per tensor input, ``None`` for an
    input that needs none). What the backward needs is kept on ``self``: the inputs and outputs it
    reads through ``self.save_for_backward(name=array)``, anything else (shapes, axes) as a plain
    attribute. Use it as ``MyOp.apply(tensor_a, tensor_b, option=...)``: positional arguments are the
    tensor inputs, keyword arguments are fixed options.
    """

    parents: tuple[Tensor, ...] = ()
    freed = False
    _watched: tuple[tuple[str, Any, int], ...] = ()  # (name, version counter, version when saved)

    @classmethod
    def apply(cls, *inputs: Any, **options: Any) -> Tensor:
        """Run ``forward`` on the inputs' arrays; when one of them needs a gradient, link the result
        into the graph (``out._ctx = fn``, ``fn.parents = inputs``) and note the versions it kept."""
        fn = cls()
        tensors = tuple(x if isinstance(x, Tensor) else Tensor(x) for x in inputs)
        record = is_grad_enabled() and any(t.requires_grad for t in tensors)
        if record:
            _check_not_overwritten(cls.__name__, tensors)
        fn.parents = tensors  # forward's mark_dirty looks its array up here
        out = Tensor(fn.forward(*(t.data for t in tensors), **options))
        _share_version_with_viewed_input(out, tensors)
        if record:
            out.requires_grad = True
            out._ctx = fn
            fn._watch_saved(out)
        return out

    def forward(self, *arrays: Any, **options: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def backward(self, grad: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def save_for_backward(self, **arrays: Any) -> None:
        """Keep ``arrays`` for backward as attributes: ``save_for_backward(out=y)`` sets ``self.out``.

        Call it in forward for the inputs and outputs the backward reads. Any array kept on ``self``
        that is an input's or the output's memory is watched (so Functions that simply write
        ``self.x = x`` are checked too): if it is overwritten in place before backward runs, backward
        raises instead of using the new values.
        """
        for name, value in arrays.items():
            setattr(self, name, value)

    def mark_dirty(self, array: Any) -> None:
        """Declare that forward overwrites the input ``array`` in place; call it before writing.

        Raises RuntimeError (before anything is written) when the input is a leaf that requires grad,
        or a view of one, while grad mode is on: its gradient would refer to values that are gone.
        """
        name = type(self).__name__
        t = next((t for t in self.parents if t.data is array), None)
        if t is None:
            raise ValueError(f"{name}.mark_dirty(array): expected one of the input arrays of forward")
        root = t if t._base is None else t._base
        if is_grad_enabled() and root.is_leaf and root.requires_grad:
            what = "a leaf tensor" if root is t else "a view of a leaf tensor"
            raise RuntimeError(
                f"{name}: cannot overwrite {what} that requires grad in place (its gradient is taken at the "
                "values that would be overwritten); use the out-of-place op, or work inside no_grad()"
            )
        t._version.count += 1
        t._version.writer = name

    def check_saved(self) -> None:
        """Raise RuntimeError if this node's graph was freed or an array it saved was overwritten since."""
        name = type(self).__name__
        if self.freed:
            raise RuntimeError(
                f"backward(): the graph through {name} was already freed by an earlier backward(); "
                "call backward(retain_graph=True) the first time to run it twice"
            )
        for saved, version, count in self._watched:
            if version.count != count:
                raise RuntimeError(
                    f"backward(): {name}.backward needs the array '{saved}' it saved in forward, but "
                    f"{version.writer} overwrote it in place afterwards (version {count}, now {version.count}); "
                    f"use the out-of-place {version.writer} (inplace=False) there"
                )

    def free(self) -> None:
        """Drop saved arrays after backward (keeps ``parents`` so the error on reuse can be raised)."""
        for name in list(vars(self)):
            if name != "parents":
                delattr(self, name)
        self.freed = True

    def _watch_saved(self, out: Tensor) -> None:
        """Record the version of every array kept on ``self`` that is an input's or the output's memory."""
        watched = []
        tensors = (*self.parents, out)
        for name, value in vars(self).items():
            if name == "parents":
                continue
            for item in value if isinstance(value, tuple) else (value,):  # self.a or self.ab = (a, b)
                if backend.is_array(item):
                    owner = next((t for t in tensors if _same_memory(item, t.data)), None)
                    if owner is not None:
                        watched.append((name, owner._version, owner._version.count))
        self._watched = tuple(watched)


def _same_memory(a: Any, b: Any) -> bool:
    """True when ``a`` is ``b`` or a view that may overlap it (a bounds check: cheap, never misses)."""
    if a is b:
        return True
    if a.base is None and b.base is None:
        return False  # two arrays owning their memory never share it
    return bool(backend.get_array_module(a).may_share_memory(a, b))


def _share_version_with_viewed_input(out: Tensor, inputs: Sequence[Tensor]) -> None:
    """Let ``out`` share the version counter of the input whose memory it is (a view, or in place)."""
    if out.data.base is None and not any(out.data is t.data for t in inputs):
        return
    for t in inputs:
        if _same_memory(out.data, t.data):
            out._version, out._version_seen = t._version, t._version.count
            out._base = t if t._base is None else t._base
            return


def _check_not_overwritten(op: str, tensors: Sequence[Tensor]) -> None:
    """Refuse a non-leaf input whose memory was overwritten in place after it was computed.

    Its graph describes the old values, so gradients through it would be wrong; the tensor the in-place
    op returned is the one to use.
    """
    for t in tensors:
        if t.requires_grad and t._ctx is not None and t._version_seen != t._version.count:
            raise RuntimeError(
                f"{op}: an input was overwritten in place by {t._version.writer} after it was computed; use "
                f"the tensor that {t._version.writer} returned, or its out-of-place form"
            )


def checked_grads(fn: Function, grads: Any) -> tuple[Any, ...]:
    """What ``fn.backward`` returned, as one gradient per input (None where none is needed), checked.

    A gradient must have its input's shape; a float input gets its gradient in its own dtype (a float32
    weight times a float64 constant keeps a float32 gradient).
    """
    name = type(fn).__name__
    if not isinstance(grads, tuple):
        grads = (grads,)
    if len(grads) != len(fn.parents):
        raise RuntimeError(f"{name}.backward returned {len(grads)} gradients for {len(fn.parents)} inputs")
    out = []
    for parent, g in zip(fn.parents, grads):
        if g is None or not parent.requires_grad:
            out.append(None)
            continue
        if tuple(g.shape) != parent.shape:
            raise RuntimeError(
                f"{name}.backward: gradient shape {tuple(g.shape)} does not match input shape {parent.shape}"
            )
        out.append(g.astype(parent.dtype) if g.dtype != parent.dtype and parent.dtype.kind == "f" else g)
    return tuple(out)


def initial_grad(root: Tensor, grad: Any) -> Any:
    """The gradient ``root.backward(grad)`` starts from: ``grad`` checked, or 1 for a one-element root."""
    if not root.requires_grad:
        raise RuntimeError(
            "backward(): this tensor does not require grad (no input had requires_grad=True, or it was "
            "computed inside no_grad())"
        )
    if grad is None:
        if root.size != 1:
            raise RuntimeError(
                f"backward(): grad can be omitted only for a one-element tensor, got shape {root.shape}"
            )
        return backend.xp().ones_like(root.data)
    grad = backend.asarray(grad, dtype=root.dtype)  # unwraps a Tensor
    if tuple(grad.shape) != root.shape:
        raise ValueError(f"backward(grad): expected shape {root.shape}, got {tuple(grad.shape)}")
    return grad


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


def check_broadcast(name: str, a: Any, b: Any) -> None:
    """Raise a ValueError naming both shapes when ``a`` and ``b`` do not broadcast together."""
    try:
        # shape arithmetic on the host: CuPy has no broadcast_shapes, and none is needed
        numpy.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise ValueError(
            f"{name}: shapes {tuple(a.shape)} and {tuple(b.shape)} cannot be broadcast together"
        ) from None


def lift(value: Any, like: Tensor) -> Tensor:
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


def unwrap_index(index: Any) -> Any:
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
