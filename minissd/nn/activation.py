"""Activations as functions of Tensors: relu, softmax and log_softmax.

Each is one autograd operation of :mod:`minissd.autograd.ops` (also ``Tensor.relu``, ``Tensor.softmax``,
``Tensor.log_softmax``), the only implementation in the package; this module gives them the names of
``minissd.nn.functional``, and they accept plain arrays too. ``relu(x, inplace=True)`` overwrites ``x``'s
array, which autograd's version counters make safe (a backward that needed the old values raises). The
ReLU layer (a Module with the ``inplace`` flag) is :class:`minissd.nn.layers.ReLU`.
"""

from __future__ import annotations

from ..autograd.ops import log_softmax, relu, softmax

__all__ = ["log_softmax", "relu", "softmax"]
