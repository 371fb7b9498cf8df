"""Weight initialisation, in place on a Parameter (or Tensor): xavier_uniform, kaiming_normal, zeros, ...

Why it matters: with random weights of the wrong size, the signal shrinks or grows by a constant
factor at every layer, so a 16-layer VGG trained from scratch starts with vanishing or exploding
activations. Xavier/Glorot keeps the variance constant for linear layers (``Var(w) = 2 / (fan_in +
fan_out)``); Kaiming/He compensates for ReLU zeroing half of its inputs (``Var(w) = 2 / fan_in``).

Random numbers come from ``rng`` (a ``numpy.random.Generator``) when given, else from NumPy's global
random state, which ``minissd.seed(n)`` seeds; they are drawn on the host in float64 and then copied to
the tensor's backend and dtype, so the same seed gives the same weights on NumPy and CuPy.
"""

from __future__ import annotations

import math
from typing import Any

import numpy

from .. import backend
from ..autograd import Tensor

__all__ = [
    "calculate_gain",
    "constant",
    "fan_in_and_fan_out",
    "kaiming_normal",
    "kaiming_uniform",
    "normal",
    "ones",
    "uniform",
    "xavier_uniform",
    "zeros",
]


def fan_in_and_fan_out(shape: tuple[int, ...]) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight: for a conv weight (O, C, kh, kw) that is (C*kh*kw, O*kh*kw)."""
    if len(shape) < 2:
        raise ValueError(f"fan_in_and_fan_out: needs a weight with at least 2 dimensions, got shape {shape}")
    receptive = 1
    for s in shape[2:]:
        receptive *= int(s)
    return int(shape[1]) * receptive, int(shape[0]) * receptive


def calculate_gain(nonlinearity: str, a: float = 0.0) -> float:
    """The factor that keeps activations' scale through ``nonlinearity`` (linear, relu, leaky_relu, tanh)."""
    if nonlinearity in ("linear", "conv2d", "sigmoid"):
        return 1.0
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        return math.sqrt(2.0 / (1 + a * a))
    if nonlinearity == "tanh":
        return 5.0 / 3
    raise ValueError(f"calculate_gain(nonlinearity): unknown {nonlinearity!r}")


def _fill(t: Tensor, values: numpy.ndarray) -> Tensor:
    if not isinstance(t, Tensor):
        raise TypeError(f"init: expected a Parameter or Tensor, got {type(t).__name__}")
    t.data[...] = backend.asarray(values.reshape(t.shape), dtype=t.dtype)
    return t


def _rng(rng: numpy.random.Generator | None) -> Any:
    return numpy.random if rng is None else rng


def uniform(t: Tensor, low: float = 0.0, high: float = 1.0, rng: numpy.random.Generator | None = None,
            ) -> Tensor:
    """Fill ``t`` with draws from U(low, high); returns ``t``."""
    return _fill(t, _rng(rng).uniform(low, high, size=t.shape))


def normal(t: Tensor, mean: float = 0.0, std: float = 1.0, rng: numpy.random.Generator | None = None,
           ) -> Tensor:
    """Fill ``t`` with draws from N(mean, std^2); returns ``t``."""
    return _fill(t, _rng(rng).normal(mean, std, size=t.shape))


def constant(t: Tensor, value: float) -> Tensor:
    """Fill ``t`` with ``value``; returns ``t``."""
    t.data[...] = value
    return t


def zeros(t: Tensor) -> Tensor:
    """Fill ``t`` with zeros (biases); returns ``t``."""
    return constant(t, 0.0)


def ones(t: Tensor) -> Tensor:
    """Fill ``t`` with ones; returns ``t``."""
    return constant(t, 1.0)


def xavier_uniform(t: Tensor, gain: float = 1.0, rng: numpy.random.Generator | None = None) -> Tensor:
    """Glorot/Xavier: U(-a, a) with ``a = gain * sqrt(6 / (fan_in + fan_out))``; returns ``t``.

    The original SSD initialises its extra layers and heads this way.
    """
    fan_in, fan_out = fan_in_and_fan_out(t.shape)
    a = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform(t, -a, a, rng=rng)


def kaiming_normal(t: Tensor, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "relu",
                   rng: numpy.random.Generator | None = None) -> Tensor:
    """He/Kaiming: N(0, std^2) with ``std = gain / sqrt(fan)`` (``sqrt(2 / fan_in)`` for ReLU); returns ``t``.

    ``mode`` "fan_in" preserves the forward signal's scale, "fan_out" the backward gradient's.
    """
    std = _kaiming_std(t, a, mode, nonlinearity)
    return normal(t, 0.0, std, rng=rng)


def kaiming_uniform(t: Tensor, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "relu",
                    rng: numpy.random.Generator | None = None) -> Tensor:
    """He/Kaiming with a uniform distribution of the same variance: U(-sqrt(3) std, sqrt(3) std)."""
    bound = math.sqrt(3.0) * _kaiming_std(t, a, mode, nonlinearity)
    return uniform(t, -bound, bound, rng=rng)


def _kaiming_std(t: Tensor, a: float, mode: str, nonlinearity: str) -> float:
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"kaiming init (mode): expected 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = fan_in_and_fan_out(t.shape)
    fan = fan_in if mode == "fan_in" else fan_out
    return calculate_gain(nonlinearity, a) / math.sqrt(fan)
