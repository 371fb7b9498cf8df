"""minissd.nn.losses (smooth L1, cross-entropy) and minissd.loss (hard negative mining, the MultiBox loss).

By hand-worked values and finite differences.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minissd.nn.functional as F
from minissd import Tensor, backend
from minissd.autograd import gradcheck
from minissd.loss import MultiBoxLoss, hard_negative_mining, smooth_l1

FAST = settings(max_examples=30, deadline=None)
L2, L3 = math.log(2), math.log(3)


def A(x, dtype=np.float64):
    return backend.asarray(np.asarray(x, dtype=dtype))


def H(x):
    return backend.to_numpy(x)


def T(x, grad=True):
    return Tensor(A(x), requires_grad=grad)


def _t(a, grad=False):
    return T(a, grad)


# One image, P = 4 default boxes, C = 2 classes (background, object). Worked on paper:
#   box 0: positive (class 1), logits (0, 0)      -> p = (1/2, 1/2), cross-entropy -log(1/2) = log 2
#   box 1: negative, logits (0, log 3)            -> p(bg) = 1/4,   background loss log 4 = 1.386 (hardest)
#   box 2: negative, logits (0, 0)                -> p(bg) = 1/2,   background loss log 2 = 0.693
#   box 3: negative, logits (log 3, 0)            -> p(bg) = 3/4,   background loss log(4/3) = 0.288 (easiest)
# With neg_pos_ratio 2: 2 x 1 positive = 2 negatives, the hardest: boxes 1 and 2.
#   loss_conf = (log 2 + log 4 + log 2) / 1 positive = log 16 = 2.7726
# Localization of box 0: prediction (0.5, -2, 0, 0.1) against target 0:
#   smooth L1 = 0.5 * 0.5^2 + (2 - 0.5) + 0 + 0.5 * 0.1^2 = 0.125 + 1.5 + 0 + 0.005 = 1.63
# Boxes 1-3 are background: their (large) loc predictions must not count.
CONF = [[[0.0, 0.0], [0.0, L3], [0.0, 0.0], [L3, 0.0]]]
LOC = [[[0.5, -2.0, 0.0, 0.1], [9.0, 9.0, 9.0, 9.0], [-7.0, 3.0, 1.0, 2.0], [5.0, 5.0, 5.0, 5.0]]]
LOC_T = np.zeros((1, 4, 4))
CONF_T = np.array([[1, 0, 0, 0]])


@pytest.mark.multibox_loss
def test_multibox_loss_by_hand():
    crit = MultiBoxLoss(neg_pos_ratio=2)
    loss_loc, loss_conf = crit(T(LOC), T(CONF), A(LOC_T), A(CONF_T, np.int64))
    assert loss_loc.item() == pytest.approx(1.63)
    assert loss_conf.item() == pytest.approx(math.log(16))
    assert H(crit.last_negatives).tolist() == [[False, True, True, False]]
    assert H(crit.last_positives).tolist() == [[True, False, False, False]]
    # with ratio 3 every negative is mined: + log(4/3) -> log 16 + log(4/3) = log(64/3)
    _, loss_conf3 = MultiBoxLoss(neg_pos_ratio=3)(T(LOC), T(CONF), A(LOC_T), A(CONF_T, np.int64))
    assert loss_conf3.item() == pytest.approx(math.log(64 / 3))
    # alpha weighs the localization term only
    loc2, conf2 = MultiBoxLoss(neg_pos_ratio=2, alpha=2.0)(T(LOC), T(CONF), A(LOC_T), A(CONF_T, np.int64))
    assert loc2.item() == pytest.approx(3.26) and conf2.item() == pytest.approx(math.log(16))


@pytest.mark.multibox_loss
def test_gradients_by_hand():
    loc, conf = T(LOC), T(CONF)
    loss_loc, loss_conf = MultiBoxLoss(neg_pos_ratio=2)(loc, conf, A(LOC_T), A(CONF_T, np.int64))
    (loss_loc + loss_conf).backward()
    # d smoothL1 / dx = clip(x, -1, 1): (0.5, -1, 0, 0.1) for the positive, 0 for background boxes
    np.testing.assert_allclose(H(loc.grad)[0], [[0.5, -1, 0, 0.1]] + [[0, 0, 0, 0]] * 3, atol=1e-12)
    # d CE / d logits = p - onehot(target) on selected boxes: box 0 (1/2 - 0, 1/2 - 1); box 1 (1/4 - 1, 3/4);
    # box 2 (1/2 - 1, 1/2); box 3 not selected: 0
    np.testing.assert_allclose(H(conf.grad)[0], [[0.5, -0.5], [-0.75, 0.75], [-0.5, 0.5], [0, 0]], atol=1e-12)


@pytest.mark.multibox_loss
def test_normalized_by_positives_of_the_whole_batch():
    crit = MultiBoxLoss(neg_pos_ratio=2)
    one = crit(T(LOC), T(CONF), A(LOC_T), A(CONF_T, np.int64))
    # the same image twice: sums double and so does the number of positives -> the same values
    loc_t2, conf_t2 = A(np.concatenate([LOC_T] * 2)), A(np.concatenate([CONF_T] * 2), np.int64)
    two = crit(T(LOC * 2), T(CONF * 2), loc_t2, conf_t2)
    assert two[0].item() == pytest.approx(one[0].item()) and two[1].item() == pytest.approx(one[1].item())


@pytest.mark.multibox_loss
def test_mining_is_per_image():
    # image 1 has no positive: it contributes no negatives, although image 0 has one positive
    conf = CONF + [[[0.0, 5.0]] * 4]  # very wrong background scores in image 1: would be "hardest"
    crit = MultiBoxLoss(neg_pos_ratio=2)
    conf_t = A([[1, 0, 0, 0], [0, 0, 0, 0]], np.int64)
    loss_loc, loss_conf = crit(T(LOC * 2), T(conf), A(np.zeros((2, 4, 4))), conf_t)
    assert H(crit.last_negatives)[1].tolist() == [False] * 4
    assert H(crit.last_negatives)[0].tolist() == [False, True, True, False]
    assert loss_conf.item() == pytest.approx(math.log(16)) and loss_loc.item() == pytest.approx(1.63)


@pytest.mark.multibox_loss
def test_no_positives_gives_finite_zero_loss_and_zero_gradients():
    loc, conf = T(np.ones((2, 5, 4))), T(np.ones((2, 5, 3)))
    loss_loc, loss_conf = MultiBoxLoss()(loc, conf, A(np.zeros((2, 5, 4))), A(np.zeros((2, 5)), np.int64))
    assert loss_loc.item() == 0.0 and loss_conf.item() == 0.0
    (loss_loc + loss_conf).backward()
    assert np.isfinite(H(loc.grad)).all() and (H(loc.grad) == 0).all() and (H(conf.grad) == 0).all()


@pytest.mark.multibox_loss
def test_float32_stays_float32():
    loc = Tensor(A(LOC, np.float32), requires_grad=True)
    conf = Tensor(A(CONF, np.float32), requires_grad=True)
    loss_loc, loss_conf = MultiBoxLoss(neg_pos_ratio=2)(loc, conf, A(LOC_T, np.float32), A(CONF_T, np.int64))
    assert loss_loc.dtype == np.float32 and loss_conf.dtype == np.float32
    assert loss_conf.item() == pytest.approx(math.log(16), rel=1e-6)


@pytest.mark.multibox_loss
def test_smooth_l1_values_and_gradcheck():
    x = T([-3.0, -0.5, 0.0, 0.3, 2.0])
    # |x| >= 1: |x| - 0.5; |x| < 1: x^2 / 2
    np.testing.assert_allclose(H(smooth_l1(x).data), [2.5, 0.125, 0.0, 0.045, 1.5], atol=1e-12)
    rng = np.random.default_rng(0)
    v = rng.uniform(-3, 3, (4, 5))
    v[np.abs(np.abs(v) - 1) < 0.05] = 0.5  # keep away from the kink at |x| = 1 (finite differences)
    assert gradcheck(smooth_l1, [T(v)])


def _random_problem(rng, n=2, p=7, c=3):
    conf_t = rng.integers(0, c, (n, p)) * (rng.random((n, p)) < 0.3)
    conf_t[0, 0] = 1  # at least one positive
    loc_t = rng.normal(size=(n, p, 4))
    # predictions away from target +-1 (the smooth L1 kink), logits without ties (the ranking)
    loc = loc_t + rng.choice([-1, 1], (n, p, 4)) * rng.uniform(0.1, 0.8, (n, p, 4))
    loc[..., 0] += np.where(rng.random((n, p)) < 0.5, 2.0, 0.0)  # some errors in the linear part
    conf = rng.normal(size=(n, p, c)) * 2
    return loc, conf, loc_t, conf_t


@pytest.mark.multibox_loss
def test_gradcheck_multibox_loss():
    rng = np.random.default_rng(1)
    loc, conf, loc_t, conf_t = _random_problem(rng)
    crit = MultiBoxLoss(neg_pos_ratio=2, alpha=1.5)

    def total(loc_, conf_):
        a, b = crit(loc_, conf_, A(loc_t), A(conf_t, np.int64))
        return a + b

    assert gradcheck(total, [T(loc), T(conf)], max_samples=None)
    assert gradcheck(lambda x: crit(x, T(conf, False), A(loc_t), A(conf_t, np.int64))[0], [T(loc)])
    assert gradcheck(lambda x: crit(T(loc, False), x, A(loc_t), A(conf_t, np.int64))[1], [T(conf)])


@FAST
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 4), p=st.integers(1, 40),
       ratio=st.sampled_from([0, 1, 3, 2.5]), pos_rate=st.floats(0, 0.5))
@pytest.mark.multibox_loss
def test_mined_negatives_never_exceed_ratio_times_positives_and_are_the_hardest(seed, n, p, ratio, pos_rate):
    rng = np.random.default_rng(seed)
    positives = rng.random((n, p)) < pos_rate
    bg_loss = rng.random((n, p))
    neg = H(hard_negative_mining(A(bg_loss), A(positives, bool), ratio))
    for i in range(n):
        npos = int(positives[i].sum())
        assert not (neg[i] & positives[i]).any()
        assert neg[i].sum() == min(math.floor(ratio * npos), p - npos)  # at most ratio x positives
        unmined = ~neg[i] & ~positives[i]
        if neg[i].any() and unmined.any():
            assert bg_loss[i][neg[i]].min() >= bg_loss[i][unmined].max()


@FAST
@given(seed=st.integers(0, 2**32 - 1))
@pytest.mark.multibox_loss
def test_loss_masks_match_the_mining_rule(seed):
    rng = np.random.default_rng(seed)
    loc, conf, loc_t, conf_t = _random_problem(rng, n=3, p=20, c=4)
    crit = MultiBoxLoss()
    crit(T(loc, False), T(conf, False), A(loc_t), A(conf_t, np.int64))
    pos, neg = H(crit.last_positives), H(crit.last_negatives)
    np.testing.assert_array_equal(pos, conf_t > 0)
    assert (neg.sum(1) <= 3 * pos.sum(1)).all() and not (neg & pos).any()


@pytest.mark.parametrize(
    "loc_shape, conf_shape, loc_t_shape, conf_t, pattern",
    [
        ((1, 4, 4), (1, 4), (1, 4, 4), [[1, 0, 0, 0]], r"MultiBoxLoss\(conf\).*\(N, P, C\)"),
        ((1, 3, 4), (1, 4, 2), (1, 4, 4), [[1, 0, 0, 0]], r"MultiBoxLoss\(loc\).*\(1, 4, 4\)"),
        ((1, 4, 4), (1, 4, 2), (1, 4), [[1, 0, 0, 0]], r"MultiBoxLoss\(loc_t\).*\(1, 4, 4\)"),
        ((1, 4, 4), (1, 4, 2), (1, 4, 4), [[1, 0, 0]], r"MultiBoxLoss\(conf_t\).*\(1, 4\)"),
        ((1, 4, 4), (1, 4, 2), (1, 4, 4), [[2, 0, 0, 0]], r"MultiBoxLoss\(conf_t\).*\[0, 1\].*from 0 to 2"),
    ],
)
def test_bad_inputs_raise_clear_errors(loc_shape, conf_shape, loc_t_shape, conf_t, pattern):
    with pytest.raises(ValueError, match=pattern):
        MultiBoxLoss()(T(np.zeros(loc_shape)), T(np.zeros(conf_shape)), A(np.zeros(loc_t_shape)),
                       A(conf_t, np.int64))


def test_constructor_validates():
    with pytest.raises(ValueError, match=r"MultiBoxLoss\(neg_pos_ratio\)"):
        MultiBoxLoss(neg_pos_ratio=-1)
    with pytest.raises(ValueError, match=r"MultiBoxLoss\(alpha\)"):
        MultiBoxLoss(alpha=float("nan"))


# =========================================================================== nn.losses: cross-entropy
def test_cross_entropy_hand_values():
    logits = _t([[0.0, 0.0], [0.0, math.log(3.0)]])
    target = np.array([0, 1])
    loss = F.cross_entropy(logits, target, reduction="none")
    np.testing.assert_allclose(H(loss.data), [math.log(2), -math.log(0.75)])
    np.testing.assert_allclose(F.cross_entropy(logits, target, reduction="sum").item(),
                               math.log(2) - math.log(0.75))
    np.testing.assert_allclose(F.cross_entropy(logits, target).item(), (math.log(2) - math.log(0.75)) / 2)


def test_cross_entropy_is_stable_for_huge_logits():
    loss = F.cross_entropy(_t([[1e4, -1e4, 0.0]]), np.array([1]))
    np.testing.assert_allclose(loss.item(), 2e4)


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_cross_entropy_gradients(reduction, rng):
    logits = _t(rng.standard_normal((2, 4, 3)), grad=True)  # (N, P, C) as in SSD's conf output
    target = rng.integers(0, 3, (2, 4))
    assert gradcheck(lambda z: F.cross_entropy(z, target, reduction=reduction), [logits])


def test_cross_entropy_ignore_index(rng):
    logits = _t(rng.standard_normal((4, 3)), grad=True)
    target = np.array([0, -100, 2, -100])
    loss = F.cross_entropy(logits, target)
    kept = F.cross_entropy(_t(H(logits.data)[[0, 2]]), np.array([0, 2]))
    np.testing.assert_allclose(loss.item(), kept.item())
    loss.backward()
    assert np.all(H(logits.grad)[[1, 3]] == 0)
    assert gradcheck(lambda z: F.cross_entropy(z, target), [logits])


def test_cross_entropy_rejects_bad_targets():
    with pytest.raises(ValueError, match="target"):
        F.cross_entropy(_t(np.zeros((2, 3))), np.array([0, 3]))
    with pytest.raises(ValueError, match="shape"):
        F.cross_entropy(_t(np.zeros((2, 3))), np.array([0, 1, 2]))
    with pytest.raises(TypeError, match="integer"):
        F.cross_entropy(_t(np.zeros((2, 3))), np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="reduction"):
        F.cross_entropy(_t(np.zeros((2, 3))), np.array([0, 1]), reduction="avg")


# =========================================================================== nn.losses: smooth L1
@pytest.mark.multibox_loss
def test_smooth_l1_loss_hand_values():
    x, t = _t([0.5, -2.0, 0.0]), _t([0.0, 0.0, 0.0])
    # |d| < 1: 0.5 d^2;  else |d| - 0.5
    np.testing.assert_allclose(H(F.smooth_l1_loss(x, t, reduction="none").data), [0.125, 1.5, 0.0])
    np.testing.assert_allclose(F.smooth_l1_loss(x, t, reduction="sum").item(), 1.625)
    np.testing.assert_allclose(F.smooth_l1_loss(x, t).item(), 1.625 / 3)
    # beta = 2: |d| < 2 -> 0.5 d^2 / 2;  else |d| - 1
    np.testing.assert_allclose(H(F.smooth_l1_loss(_t([1.0, 3.0]), _t([0.0, 0.0]), beta=2.0,
                                                  reduction="none").data), [0.25, 2.0])


@pytest.mark.multibox_loss
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("beta", [1.0, 0.5, 0.0])
def test_smooth_l1_loss_gradients(reduction, beta, rng):
    # differences kept away from +-beta and 0, where the loss has kinks
    d = rng.uniform(0.1, 0.4, (3, 4)) * rng.choice([-1, 1], (3, 4))
    d[0] *= 8
    t = rng.standard_normal((3, 4))
    x, tt = _t(t + d, grad=True), _t(t, grad=True)
    assert gradcheck(lambda x, t: F.smooth_l1_loss(x, t, beta=beta, reduction=reduction), [x, tt])
