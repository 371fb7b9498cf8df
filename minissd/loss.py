"""The MultiBox loss with hard negative mining (SSD paper, section 2.2, eq. 1).

    L = (1 / N) (L_conf + alpha * L_loc),     N = number of positive default boxes in the batch

* ``L_loc``: smooth L1 between predicted and target offsets, over the positives only (a background box
  has no box to regress to).
* ``L_conf``: softmax cross-entropy over the positives (target: their class) and over the *hard
  negatives* (target: background).

Why mine negatives: after matching, nearly all of the ~8732 default boxes are background. Training on
all of them would drown the few positives, and most are trivially easy. So, per image, the negatives
are ranked by their background loss ``-log p(background)`` (the ones the network most wrongly thinks
are objects come first) and only the top ``neg_pos_ratio`` x (positives in that image) are kept: at most
3:1. The ranking is a selection, not a computation to differentiate: it runs on plain arrays, without
gradient; the cross-entropy is then taken on the selected boxes through autograd.

Built from the two losses of :mod:`minissd.nn.losses` (as ChainerCV builds its MultiBox loss from its
functions): ``smooth_l1_loss(..., reduction="none")`` masked to the positives, and
``cross_entropy(..., reduction="none")``, whose value on a negative box is its background loss (what
the mining ranks) and whose masked sum is ``L_conf``.
"""

from __future__ import annotations

from typing import Any

from . import backend
from .autograd import Tensor
from .nn.losses import cross_entropy, smooth_l1, smooth_l1_loss

__all__ = ["MultiBoxLoss", "hard_negative_mining", "smooth_l1"]


def hard_negative_mining(background_loss: Any, positives: Any, neg_pos_ratio: float = 3) -> Any:
    """Choose the hardest negatives of each image.

    Args:
        background_loss: (N, P) array, ``-log p(background)`` of every default box (no gradient needed).
        positives: (N, P) boolean array, the matched default boxes.
        neg_pos_ratio: keep at most this many negatives per positive, per image.

    Returns:
        (N, P) boolean array of mined negatives: in image n, the ``min(floor(ratio * pos_n), P - pos_n)``
        non-positive boxes with the largest background loss (ties: lower index first). An image without
        positives gets no negatives.
    """
    # BEGIN SOLUTION multibox_loss
    xp = backend.get_array_module(background_loss, positives)
    num_pos = positives.sum(axis=1)  # (N,)
    num_neg = xp.minimum(xp.floor(neg_pos_ratio * num_pos), positives.shape[1] - num_pos)  # (N,)
    # positives must never be picked: give them the lowest possible loss so they rank last
    loss = xp.where(positives, -xp.inf, background_loss)
    order = xp.argsort(-loss, axis=1, kind="stable")  # (N, P) hardest first
    rank = xp.argsort(order, axis=1, kind="stable")  # (N, P) rank of each box in that order
    return (rank < num_neg[:, None]) & ~positives
    # END SOLUTION


class MultiBoxLoss:
    """SSD's training loss: ``loss_loc, loss_conf = MultiBoxLoss()(loc, conf, loc_t, conf_t)``.

    Args:
        neg_pos_ratio: hard negatives kept per positive, per image (3 in the paper).
        alpha: weight of the localization term (1 in the paper).

    Call with:
        loc: (N, P, 4) Tensor, predicted offsets.
        conf: (N, P, C) Tensor, class logits (softmax is applied here).
        loc_t: (N, P, 4) array, target offsets from :func:`minissd.matching.match_batch`.
        conf_t: (N, P) integer array, target classes (0 = background).

    Returns:
        ``(loss_loc, loss_conf)``: scalar Tensors, ``alpha * sum of smooth L1 over positives / N_pos`` and
        ``cross-entropy summed over positives and mined negatives / N_pos``, N_pos counted over the whole
        batch; ``loss_loc + loss_conf`` is the paper's L. A batch without positives gives 0 and 0 (the sums
        are empty, and the division uses max(N_pos, 1)), still connected to the graph so backward() works.

    After a call, ``last_positives`` and ``last_negatives`` hold the (N, P) boolean masks of the positive and
    of the mined negative default boxes (for drawing them, e.g. in notebook 06).
    """

    def __init__(self, neg_pos_ratio: float = 3, alpha: float = 1.0) -> None:
        number = (int, float)
        if isinstance(neg_pos_ratio, bool) or not isinstance(neg_pos_ratio, number) or not neg_pos_ratio >= 0:
            raise ValueError(f"MultiBoxLoss(neg_pos_ratio): expected a number >= 0, got {neg_pos_ratio!r}")
        if isinstance(alpha, bool) or not isinstance(alpha, number) or not alpha >= 0:
            raise ValueError(f"MultiBoxLoss(alpha): expected a number >= 0, got {alpha!r}")
        self.neg_pos_ratio = neg_pos_ratio
        self.alpha = float(alpha)
        self.last_positives: Any = None
        self.last_negatives: Any = None

    def __repr__(self) -> str:
        return f"MultiBoxLoss(neg_pos_ratio={self.neg_pos_ratio}, alpha={self.alpha})"

    def __call__(self, loc: Tensor, conf: Tensor, loc_t: Any, conf_t: Any) -> tuple[Tensor, Tensor]:
        return self.forward(loc, conf, loc_t, conf_t)

    def forward(self, loc: Tensor, conf: Tensor, loc_t: Any, conf_t: Any) -> tuple[Tensor, Tensor]:
        """See the class docstring."""
        loc = loc if isinstance(loc, Tensor) else Tensor(loc)
        conf = conf if isinstance(conf, Tensor) else Tensor(conf)
        loc_t, conf_t = backend.asarray(loc_t), backend.asarray(conf_t)  # targets may come from the host
        _check_inputs(loc, conf, loc_t, conf_t)

        # BEGIN SOLUTION multibox_loss
        positives = conf_t > 0  # (N, P)
        num_pos = int(positives.sum())
        scale = 1.0 / max(num_pos, 1)

        # localization: smooth L1 over the positives (the mask zeroes every other box's terms)
        pos_mask = Tensor(positives[..., None].astype(loc.dtype))  # (N, P, 1)
        loc_loss = smooth_l1_loss(loc, Tensor(loc_t.astype(loc.dtype)), reduction="none")  # (N, P, 4)
        loss_loc = (loc_loss * pos_mask).sum() * (self.alpha * scale)

        # confidence: -log p(target) of every box; on a negative box (target 0) that is its background
        # loss, which the mining ranks (values only); the selected boxes' losses are summed through autograd
        conf_loss = cross_entropy(conf, conf_t, reduction="none")  # (N, P)
        negatives = hard_negative_mining(conf_loss.data, positives, self.neg_pos_ratio)
        selected = positives | negatives  # (N, P)
        loss_conf = (conf_loss * Tensor(selected.astype(conf.dtype))).sum() * scale

        self.last_positives, self.last_negatives = positives, negatives
        return loss_loc, loss_conf
        # END SOLUTION


def _check_inputs(loc: Tensor, conf: Tensor, loc_t: Any, conf_t: Any) -> None:
    if conf.ndim != 3:
        raise ValueError(f"MultiBoxLoss(conf): expected class logits of shape (N, P, C), got {conf.shape}")
    n, p, c = conf.shape
    if loc.shape != (n, p, 4):
        raise ValueError(f"MultiBoxLoss(loc): expected shape ({n}, {p}, 4) to match conf {conf.shape}, "
                         f"got {loc.shape}")
    if tuple(loc_t.shape) != (n, p, 4):
        raise ValueError(f"MultiBoxLoss(loc_t): expected shape ({n}, {p}, 4), got {tuple(loc_t.shape)}")
    if tuple(conf_t.shape) != (n, p):
        raise ValueError(f"MultiBoxLoss(conf_t): expected shape ({n}, {p}), got {tuple(conf_t.shape)}")
    if conf_t.dtype.kind not in "iu":
        raise ValueError(f"MultiBoxLoss(conf_t): expected integer class targets, got dtype {conf_t.dtype}")
    if conf_t.size:
        lo, hi = int(conf_t.min()), int(conf_t.max())
        if lo < 0 or hi >= c:
            raise ValueError(f"MultiBoxLoss(conf_t): expected classes in [0, {c - 1}] for {c} logits, "
                             f"got values from {lo} to {hi}")
