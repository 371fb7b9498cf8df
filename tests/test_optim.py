"""Optimizers and schedules against values computed by hand; exact resume from a state dict."""

from __future__ import annotations

import math

import numpy
import pytest

import minissd.nn as nn
from minissd import backend, to_numpy
from minissd.nn import Parameter
from minissd.optim import SGD, Adam, LRSchedule


def _param(values):
    return Parameter(numpy.asarray(values, dtype=numpy.float64))


def _grad(p, values):
    p.grad = backend.asarray(numpy.asarray(values, dtype=numpy.float64))


def _value(p):
    return to_numpy(p.data).tolist()


def test_plain_sgd():
    p = _param([1.0, -2.0])
    opt = SGD([p], lr=0.1)
    _grad(p, [0.5, -1.0])
    opt.step()
    assert _value(p) == pytest.approx([0.95, -1.9])


def test_sgd_momentum_two_steps():
    p = _param([1.0])
    opt = SGD([p], lr=0.1, momentum=0.9)
    _grad(p, [1.0])
    opt.step()  # buffer = g = 1            -> p = 1 - 0.1
    assert _value(p) == pytest.approx([0.9])
    _grad(p, [1.0])
    opt.step()  # buffer = 0.9 * 1 + 1 = 1.9 -> p = 0.9 - 0.19
    assert _value(p) == pytest.approx([0.71])


def test_sgd_weight_decay_adds_to_the_gradient():
    p = _param([2.0])
    opt = SGD([p], lr=0.1, weight_decay=0.5)
    _grad(p, [1.0])
    opt.step()  # g = 1 + 0.5 * 2 = 2 -> p = 2 - 0.2
    assert _value(p) == pytest.approx([1.8])


def test_sgd_nesterov():
    p = _param([0.0])
    opt = SGD([p], lr=1.0, momentum=0.9, nesterov=True)
    _grad(p, [1.0])
    opt.step()  # b = 1; step = g + 0.9 b = 1.9
    assert _value(p) == pytest.approx([-1.9])
    _grad(p, [1.0])
    opt.step()  # b = 0.9 + 1 = 1.9; step = 1 + 0.9 * 1.9 = 2.71
    assert _value(p) == pytest.approx([-4.61])


def test_adam_bias_correction():
    p = _param([1.0, 1.0])
    opt = Adam([p], lr=0.1, betas=(0.9, 0.999), eps=1e-8)
    _grad(p, [2.0, -0.5])
    opt.step()  # m_hat = g, v_hat = g^2: the first step is lr * sign(g), whatever |g|
    assert _value(p) == pytest.approx([0.9, 1.1], abs=1e-7)
    _grad(p, [1.0, 1.0])
    opt.step()
    # by hand for element 0: m = 0.9*0.2 + 0.1*1 = 0.28, v = 0.999*0.004 + 0.001*1 = 0.004996
    m_hat, v_hat = 0.28 / (1 - 0.9**2), 0.004996 / (1 - 0.999**2)
    assert _value(p)[0] == pytest.approx(0.9 - 0.1 * m_hat / (math.sqrt(v_hat) + 1e-8), rel=1e-9)


def test_adam_weight_decay():
    p = _param([2.0])
    opt = Adam([p], lr=0.1, weight_decay=1.0)
    _grad(p, [-1.0])  # g = -1 + 1 * 2 = 1 > 0: the step goes down although the raw gradient says up
    opt.step()
    assert _value(p) == pytest.approx([1.9], abs=1e-7)


def test_parameters_without_gradient_are_left_alone():
    a, b = _param([1.0]), _param([1.0])
    opt = SGD([a, b], lr=0.1, momentum=0.9, weight_decay=0.1)
    _grad(a, [1.0])
    opt.step()
    assert _value(b) == [1.0]
    opt.zero_grad()
    assert a.grad is None


def test_parameter_groups_have_their_own_settings():
    a, b = _param([1.0]), _param([1.0])
    opt = SGD([{"params": [a]}, {"params": [b], "lr": 1.0}], lr=0.1)
    _grad(a, [1.0])
    _grad(b, [1.0])
    opt.step()
    assert _value(a) == pytest.approx([0.9]) and _value(b) == pytest.approx([0.0])


@pytest.mark.parametrize("make", [
    lambda ps: SGD(ps, lr=0.05, momentum=0.9, weight_decay=1e-3, nesterov=True),
    lambda ps: Adam(ps, lr=0.01, weight_decay=1e-4),
])
def test_resume_from_a_saved_state_is_exact(make, tmp_path):
    rng = numpy.random.default_rng(0)
    grads = [[rng.standard_normal(3), rng.standard_normal((2, 2))] for _ in range(5)]

    def run(params, opt, steps):
        for g in steps:
            for p, gv in zip(params, g):
                _grad(p, gv)
            opt.step()

    start = [numpy.array([1.0, 2.0, 3.0]), numpy.eye(2)]
    ref = [_param(s) for s in start]
    run(ref, make(ref), grads)

    first = [_param(s) for s in start]
    opt = make(first)
    run(first, opt, grads[:3])
    nn.save_npz(tmp_path / "opt.npz", opt.state_dict())  # through a checkpoint file, as in training
    resumed = [_param(to_numpy(p.data)) for p in first]
    opt2 = make(resumed)
    opt2.load_state_dict(nn.load_npz(tmp_path / "opt.npz"))
    run(resumed, opt2, grads[3:])
    for a, b in zip(ref, resumed):
        numpy.testing.assert_array_equal(to_numpy(a.data), to_numpy(b.data))
    assert opt2.step_count == 5


def test_load_state_dict_checks_shapes():
    p = _param([1.0, 2.0])
    opt = SGD([p], lr=0.1, momentum=0.9)
    _grad(p, [1.0, 1.0])
    opt.step()
    other = SGD([_param([1.0, 2.0, 3.0])], lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match="shape"):
        other.load_state_dict(opt.state_dict())


def test_bad_hyperparameters_are_rejected():
    p = _param([1.0])
    with pytest.raises(ValueError, match="lr"):
        SGD([p], lr=0.0)
    with pytest.raises(ValueError, match="momentum"):
        SGD([p], lr=0.1, momentum=1.0)
    with pytest.raises(ValueError, match="nesterov"):
        SGD([p], lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="betas"):
        Adam([p], betas=(1.0, 0.9))
    with pytest.raises(ValueError, match="no parameters"):
        SGD([], lr=0.1)


# =========================================================================== schedules
def _lrs(sched, steps):
    out = []
    for _ in range(steps):
        out.append(sched.get_lr()[0])
        sched.step()
    return out


def test_multistep_schedule():
    opt = SGD([_param([0.0])], lr=1.0)
    sched = LRSchedule(opt, total_steps=6, decay="multistep", milestones=[2, 4], gamma=0.1)
    assert _lrs(sched, 6) == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01])


def test_linear_warmup_schedule():
    # step s of 3 warm-up steps runs at (s + 1) / 3 of the peak, then the peak holds
    opt = SGD([_param([0.0])], lr=0.9)
    assert _lrs(LRSchedule(opt, total_steps=5, warmup_steps=3, decay="constant"), 5) == pytest.approx(
        [0.3, 0.6, 0.9, 0.9, 0.9])


def test_warmup_then_cosine_and_the_clock():
    sched = LRSchedule(SGD([_param([0.0])], lr=1.0), total_steps=110, warmup_steps=10, decay="cosine")
    # linear warm-up: step 0 -> 1/10, step 9 -> 10/10
    assert sched.factor(0) == pytest.approx(0.1)
    assert sched.factor(9) == pytest.approx(1.0)
    # cosine over the 100 steps after warm-up: halfway (step 60) -> 0.5, the end -> min_factor 0
    assert sched.factor(60) == pytest.approx(0.5)
    assert sched.factor(110) == pytest.approx(0.0, abs=1e-12)
    # with a time limit, the decay follows the clock when it is further along
    assert sched.factor(20, progress=0.5) == pytest.approx(0.5)
    floor = LRSchedule(SGD([_param([0.0])], lr=1.0), total_steps=10, decay="cosine", min_factor=0.02)
    assert floor.factor(10) == pytest.approx(0.02)
    ms = LRSchedule(SGD([_param([0.0])], lr=1.0), total_steps=100, decay="multistep", milestones=(50, 80))
    assert [ms.factor(s) for s in (49, 50, 80)] == pytest.approx([1.0, 0.1, 0.01])


def test_warmup_then_multistep_and_resume():
    def make():
        return LRSchedule(SGD([_param([0.0])], lr=1.0), total_steps=10, warmup_steps=2, decay="multistep",
                          milestones=[3], gamma=0.5)

    sched = make()
    assert _lrs(sched, 5) == pytest.approx([0.5, 1.0, 1.0, 0.5, 0.5])
    sched2 = make()
    sched2.load_state_dict(sched.state_dict())
    assert sched2.last_step == 5 and sched2.optimizer.param_groups[0]["lr"] == pytest.approx(0.5)


def test_schedule_resume_keeps_the_clock():
    # a time-limited run saved half-way through its time resumes at the learning rate it had
    def make():
        return LRSchedule(SGD([_param([0.0])], lr=1.0), total_steps=1000, decay="cosine")

    sched = make()
    sched.step(progress=0.5)
    assert sched.get_lr()[0] == pytest.approx(0.5)
    resumed = make()
    resumed.load_state_dict(sched.state_dict())
    assert resumed.get_lr()[0] == pytest.approx(0.5) and resumed.last_step == 1


def test_bad_schedule_is_a_clear_error():
    opt = SGD([_param([0.0])], lr=1.0)
    with pytest.raises(ValueError, match=r"LRSchedule\(decay\).*'linear'"):
        LRSchedule(opt, total_steps=10, decay="linear")
    with pytest.raises(ValueError, match="total_steps"):
        LRSchedule(opt, total_steps=0)
    with pytest.raises(TypeError, match="Optimizer"):
        LRSchedule([_param([0.0])], total_steps=10)
