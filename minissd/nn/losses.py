"""The two losses SSD trains with: smooth L1 (localization) and softmax cross-entropy (confidence).

These are the only implementations in the package: :class:`minissd.loss.MultiBoxLoss` builds SSD's
loss from them (smooth L1 over the positive default boxes, cross-entropy per box for the hard
negative mining and over the selected boxes), and ``minissd.nn.functional`` re-exports them.

Both take a ``reduction``: "none" keeps one loss per element (smooth L1) or per row (cross-entropy),
"sum" adds them up, "mean" divides the sum by their number (for cross-entropy: the rows whose target
is not ``ignore_index``).
"""

from __future__ import annotations

from typing import Any

from .. import backend
from ..autograd import Function, Tensor

__all__ = ["SmoothL1", "cross_entropy", "smooth_l1", "smooth_l1_loss"]

REDUCTIONS = ("none", "sum", "mean")


def _tensor(x: Any) -> Tensor:
    return x if isinstance(x, Tensor) else Tensor(x)


def _check_reduction(name: str, reduction: str) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"{name}(reduction): expected one of {REDUCTIONS}, got {reduction!r}")


def _reduce(loss: Tensor, reduction: str, count: int) -> Tensor:
    if reduction == "none":
        return loss
    total = loss.sum()
    return total if reduction == "sum" else total * (1.0 / max(count, 1))


# =========================================================================== smooth L1
class SmoothL1(Function):
    """Elementwise smooth L1 of a difference d (Huber's loss): quadratic near 0, linear far away.

    forward:  0.5 d^2 / beta where |d| < beta, |d| - 0.5 beta elsewhere (beta = 1 in SSD; 0 gives |d|)
    backward: d / beta where |d| < beta, sign(d) elsewhere, i.e. clip(d / beta, -1, 1)
    Near 0 the gradient shrinks with the error; far away (a badly matched box) it stays bounded by 1.
    """

    def forward(self, d: Any, beta: float = 1.0) -> Any:
        # BEGIN SOLUTION multibox_loss
        xp = backend.get_array_module(d)
        self.d, self.beta = d, beta
        ad = xp.abs(d)
        if beta == 0:
            return ad
        return xp.where(ad < beta, (0.5 / beta) * d * d, ad - 0.5 * beta)
        # END SOLUTION

    def backward(self, grad: Any) -> Any:
        # BEGIN SOLUTION multibox_loss
        xp = backend.get_array_module(grad)
        if self.beta == 0:
            return grad * xp.sign(self.d)
        return grad * xp.clip(self.d / self.beta, -1, 1)
        # END SOLUTION


def smooth_l1(d: Tensor | Any, beta: float = 1.0) -> Tensor:
    """Elementwise smooth L1 of ``d`` (any shape), see :class:`SmoothL1`."""
    if not beta >= 0:
        raise ValueError(f"smooth_l1(beta): expected a number >= 0, got {beta!r}")
    return SmoothL1.apply(_tensor(d), beta=float(beta))


def smooth_l1_loss(input: Tensor | Any, target: Tensor | Any, beta: float = 1.0, reduction: str = "mean",
                   ) -> Tensor:
    """Smooth L1 loss between ``input`` and ``target`` of the same shape (SSD's localization loss).

    ``beta`` (>= 0) is where the quadratic part meets the linear part (0 gives plain L1);
    ``reduction`` is "none" (same shape as ``input``), "sum" or "mean" (over all elements).
    """
    _check_reduction("smooth_l1_loss", reduction)
    input, target = _tensor(input), _tensor(target)
    if input.shape != target.shape:
        raise ValueError(f"smooth_l1_loss: input {input.shape} and target {target.shape} "
                         "must have the same shape")
    if not beta >= 0:
        raise ValueError(f"smooth_l1_loss(beta): expected >= 0, got {beta}")
    return _reduce(smooth_l1(input - target, beta), reduction, input.size)


# =========================================================================== cross-entropy
def cross_entropy(logits: Tensor | Any, target: Any, reduction: str = "mean", ignore_index: int = -100,
                  ) -> Tensor:
    """Softmax cross-entropy ``-log softmax(logits)[target]`` between ``logits`` (..., C) and ``target`` (...).

    ``target`` holds integer classes in ``[0, C)``; rows whose target is ``ignore_index`` give 0 and no
    gradient. ``reduction``: "none" gives one loss per row (shape of ``target``), "sum" their sum,
    "mean" their mean over the rows that are not ignored. Built from ``log_softmax`` (stable for
    logits of +-1e4), so its gradient is ``softmax(logits) - onehot(target)`` per row.
    """
    _check_reduction("cross_entropy", reduction)
    logits = _tensor(logits)
    t = backend.asarray(target.data if isinstance(target, Tensor) else target)
    if logits.ndim < 1:
        raise ValueError("cross_entropy(logits): expected shape (..., C), got a scalar")
    if tuple(t.shape) != logits.shape[:-1]:
        raise ValueError(f"cross_entropy(target): expected shape {logits.shape[:-1]} for logits "
                         f"{logits.shape}, got {tuple(t.shape)}")
    if t.dtype.kind not in "iu":
        raise TypeError(f"cross_entropy(target): expected integer class indices, got {t.dtype}")
    c = logits.shape[-1]
    valid = t != ignore_index
    if t.size and bool((((t < 0) | (t >= c)) & valid).any()):
        raise ValueError(f"cross_entropy(target): class indices must be in [0, {c}) or {ignore_index}")
    xp = backend.get_array_module(logits.data)
    # one-hot of the target class, a row of zeros where the target is ignored
    onehot = ((t[..., None] == xp.arange(c)) & valid[..., None]).astype(logits.dtype)
    loss = -(logits.log_softmax(axis=-1) * Tensor(onehot)).sum(axis=-1)
    return _reduce(loss, reduction, int(valid.sum()))
