"""Activations as functions of Tensors: relu, softmax and log_softmax.

Each is one autograd operation of :mod:`minissd.autograd` (``Tensor.relu``, ``Tensor.softmax``,
``Tensor.log_softmax``), the only implementation in the package; these functions accept plain arrays
too and give the names of ``minissd.nn.functional``. The ReLU layer (a Module with the ``inplace``
flag) is :class:`minissd.nn.layers.ReLU`.
"""

from __future__ import annotations

from typing import Any

from ..autograd import Tensor

__all__ = ["log_softmax", "relu", "softmax"]


def _tensor(x: Any) -> Tensor:
    return x if isinstance(x, Tensor) else Tensor(x)


def relu(x: Tensor | Any, inplace: bool = False) -> Tensor:
    """Rectified linear unit, elementwise ``max(x, 0)``; any shape. The gradient at exactly 0 is 0.

    ``inplace=True`` asks for the result to be written over ``x``'s array, to save one activation of
    memory after a convolution. It is a request: the operation may copy, and the result is the same.
    """
    if not isinstance(inplace, bool):
        raise TypeError(f"relu(inplace): expected a bool, got {type(inplace).__name__}")
    return _tensor(x).relu()


def log_softmax(x: Tensor | Any, axis: int = -1) -> Tensor:
    """``x - logsumexp(x)`` along ``axis`` (stable for large logits); any shape."""
    return _tensor(x).log_softmax(axis=axis)


def softmax(x: Tensor | Any, axis: int = -1) -> Tensor:
    """``exp(x) / sum(exp(x))`` along ``axis``; any shape."""
    return _tensor(x).softmax(axis=axis)
