"""Finite-difference gradient checking (float64), the test every Function must pass.

``gradcheck(fn, inputs)`` compares the gradient that ``backward()`` computes with central differences
``(f(x + eps) - f(x - eps)) / (2 eps)`` for each element of each input that requires a gradient. A
random upstream gradient (fixed seed) is used by default: an all-ones upstream would hide mistakes
such as a missing transpose that only permutes equal values.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy

from .. import backend
from .grad_mode import no_grad
from .tensor import Tensor


class GradcheckError(AssertionError):
    """Raised when analytic and numeric gradients disagree."""


def rel_error(a: Any, b: Any) -> float:
    """max |a - b| / max(|a| + |b|, 1e-8), elementwise, as in CS231n's gradient checks."""
    a = backend.to_numpy(a).astype(numpy.float64)
    b = backend.to_numpy(b).astype(numpy.float64)
    if a.shape != b.shape:
        raise ValueError(f"rel_error: shapes {a.shape} and {b.shape} differ")
    if a.size == 0:
        return 0.0
    return float(numpy.max(numpy.abs(a - b) / numpy.maximum(numpy.abs(a) + numpy.abs(b), 1e-8)))


def _output_dot(out: Any, upstream: Any) -> float:
    data = out.data if isinstance(out, Tensor) else out
    return float(backend.to_numpy((data * upstream).sum()))


def gradcheck(
    fn: Callable[..., Tensor],
    inputs: Sequence[Tensor],
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    grad_output: Any = None,
    max_samples: int | None = 200,
    seed: int = 0,
) -> bool:
    """Check ``fn``'s gradients against central finite differences.

    Args:
        fn: maps the ``inputs`` tensors to one output tensor (any shape).
        inputs: tensors; those with ``requires_grad=True`` are checked and must be float64.
        eps: the finite-difference step.
        atol, rtol: an element passes when ``|analytic - numeric| <= atol + rtol * |numeric|``.
        grad_output: the upstream gradient (shape of the output); a fixed random one if omitted.
        max_samples: check at most this many elements per input (chosen at random); None checks all.
        seed: seeds the upstream gradient and the sampling.

    Returns:
        True. Raises :class:`GradcheckError` naming the worst element, its analytic and numeric values
        and the relative error when a check fails.
    """
    rng = numpy.random.default_rng(seed)
    inputs = list(inputs)
    checked = [i for i, t in enumerate(inputs) if isinstance(t, Tensor) and t.requires_grad]
    if not checked:
        raise ValueError("gradcheck(inputs): no input has requires_grad=True")
    for i in checked:
        if inputs[i].dtype != numpy.float64:
            # float32 has ~7 significant digits: (f(x+eps) - f(x-eps)) / 2eps with eps=1e-6 is mostly
            # rounding noise, so a correct backward would "fail" and a wrong one could "pass".
            raise ValueError(
                f"gradcheck(inputs): input {i} must be float64 for finite differences, got "
                f"{inputs[i].dtype}; pass Tensor(x.astype('float64'), requires_grad=True)"
            )
        if not inputs[i].is_leaf:
            # backward() stores .grad on leaves only, so a computed input would never get one
            raise ValueError(
                f"gradcheck(inputs): input {i} was computed by {type(inputs[i]._ctx).__name__}, not "
                "created by the user; pass Tensor(x.data, requires_grad=True) instead"
            )
    for i in checked:
        inputs[i].grad = None
        # perturbation below writes through a flat view, which needs contiguous data
        inputs[i].data = backend.get_array_module(inputs[i].data).ascontiguousarray(inputs[i].data)
    out = fn(*inputs)
    if not isinstance(out, Tensor):
        raise TypeError(f"gradcheck(fn): fn must return a Tensor, got {type(out).__name__}")
    xp = backend.get_array_module(out.data)
    if grad_output is None:
        upstream = xp.asarray(rng.standard_normal(out.shape))
    else:
        upstream = xp.asarray(backend.to_numpy(grad_output), dtype=xp.float64)
        if tuple(upstream.shape) != out.shape:
            raise ValueError(
                f"gradcheck(grad_output): expected shape {out.shape}, got {tuple(upstream.shape)}"
            )
    out.backward(upstream.astype(out.dtype))

    for i in checked:
        t = inputs[i]
        analytic = backend.to_numpy(t.grad) if t.grad is not None else numpy.zeros(t.shape)
        flat_count = t.size
        if max_samples is not None and flat_count > max_samples:
            idx = rng.choice(flat_count, size=max_samples, replace=False)
        else:
            idx = numpy.arange(flat_count)
        numeric = numpy.empty(len(idx))
        flat = t.data.reshape(-1)  # a view: perturbing it perturbs t.data
        with no_grad():
            for k, j in enumerate(idx):
                j = int(j)
                orig = float(backend.to_numpy(flat[j]))
                flat[j] = orig + eps
                plus = _output_dot(fn(*inputs), upstream)
                flat[j] = orig - eps
                minus = _output_dot(fn(*inputs), upstream)
                flat[j] = orig
                numeric[k] = (plus - minus) / (2 * eps)
        a = analytic.reshape(-1)[idx]
        err = numpy.abs(a - numeric)
        bad = err > atol + rtol * numpy.abs(numeric)
        if bad.any():
            worst = int(numpy.argmax(err - (atol + rtol * numpy.abs(numeric))))
            pos = numpy.unravel_index(int(idx[worst]), t.shape)
            rel = err[worst] / max(abs(a[worst]) + abs(numeric[worst]), 1e-12)
            raise GradcheckError(
                f"gradcheck: input {i} (shape {t.shape}) fails at {int(bad.sum())} of {len(idx)} checked "
                f"elements; worst at index {tuple(int(p) for p in pos)}: analytic {a[worst]:.8g}, "
                f"numeric {numeric[worst]:.8g}, relative error {rel:.3g}"
            )
    return True
