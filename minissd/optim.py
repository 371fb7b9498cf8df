"""Optimizers (SGD with momentum and weight decay, Adam) and learning-rate schedules.

An optimizer holds the model's Parameters in *parameter groups* (a list of dicts with ``"params"`` and
the hyper-parameters, as in PyTorch, so that a schedule can change ``"lr"``), and ``step()`` updates
every parameter that has a gradient, in place, from ``p.grad``.

The update rules follow PyTorch exactly, so results and hyper-parameters carry over:

SGD:   g = grad + weight_decay * p
       b = g on the first step, then b = momentum * b + (1 - dampening) * g
       p -= lr * (g + momentum * b if nesterov else b)          (b is g itself when momentum == 0)
Adam:  g = grad + weight_decay * p;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
       p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)   (t = the step count, from 1)

``state_dict()`` returns a flat dict of host arrays (hyper-parameters, step counts and buffers), so that it
can be written into the same ``.npz`` checkpoint as the weights and a resumed run continues exactly.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy

from . import backend
from .autograd import Tensor, no_grad

__all__ = ["SGD", "Adam", "LRScheduler", "LambdaLR", "LinearWarmupLR", "MultiStepLR", "Optimizer",
           "WarmupMultiStepLR"]


class Optimizer:
    """Base class: parameter groups, ``zero_grad()``, ``step()`` and the state dict.

    Args:
        params: an iterable of Parameters, or of dicts ``{"params": [...], "lr": ..., ...}`` whose keys
            override the defaults for that group.
        defaults: the hyper-parameters of every group.
    """

    #: names of the per-parameter buffers kept in ``self.state[i]`` (for the state dict)
    buffer_names: tuple[str, ...] = ()

    def __init__(self, params: Iterable[Any], defaults: dict[str, Any]) -> None:
        params = list(params)
        if not params:
            raise ValueError(f"{type(self).__name__}(params): got no parameters to optimize")
        groups = params if isinstance(params[0], Mapping) else [{"params": params}]
        self.defaults = dict(defaults)
        self.param_groups: list[dict[str, Any]] = []
        seen: set[int] = set()
        for g in groups:
            if not isinstance(g, Mapping) or "params" not in g:
                raise TypeError(f"{type(self).__name__}(params): mix of parameter groups and tensors")
            group = {**self.defaults, **g, "params": list(g["params"])}
            for p in group["params"]:
                if not isinstance(p, Tensor):
                    raise TypeError(f"{type(self).__name__}(params): expected Parameters, "
                                    f"got {type(p).__name__}")
                if id(p) in seen:
                    raise ValueError(f"{type(self).__name__}(params): a parameter appears twice")
                seen.add(id(p))
            group.setdefault("initial_lr", group["lr"])
            self.param_groups.append(group)
        # per-parameter state by position across the groups (0, 1, ...), so that it can be saved
        self.state: dict[int, dict[str, Any]] = {}
        self.step_count = 0

    def _indexed(self) -> Iterable[tuple[int, dict[str, Any], Tensor]]:
        i = 0
        for group in self.param_groups:
            for p in group["params"]:
                yield i, group, p
                i += 1

    def zero_grad(self) -> None:
        """Forget the gradients of all parameters (sets ``.grad`` to None)."""
        for _, _, p in self._indexed():
            p.grad = None

    @no_grad()
    def step(self) -> None:
        """Update every parameter that has a gradient (parameters with ``grad is None`` are skipped)."""
        self.step_count += 1
        for i, group, p in self._indexed():
            if p.grad is None:
                continue
            grad = p.grad
            if tuple(grad.shape) != p.shape:
                raise ValueError(f"{type(self).__name__}.step: parameter {i} has shape {p.shape} "
                                 f"but its gradient has shape {tuple(grad.shape)}")
            self._update(p, grad, self.state.setdefault(i, {}), group)

    def _update(self, p: Tensor, grad: Any, state: dict[str, Any], group: dict[str, Any]) -> None:
        raise NotImplementedError  # pragma: no cover

    # ----------------------------------------------------------------- state
    def state_dict(self) -> dict[str, numpy.ndarray]:
        """A flat dict of host arrays: ``group.G.NAME`` (hyper-parameters), ``state.I.NAME`` (buffers)."""
        out: dict[str, numpy.ndarray] = {"step_count": numpy.asarray(self.step_count)}
        for g, group in enumerate(self.param_groups):
            for name, value in group.items():
                if name != "params":
                    out[f"group.{g}.{name}"] = numpy.asarray(value, dtype=numpy.float64)
        for i, st in self.state.items():
            for name, value in st.items():
                out[f"state.{i}.{name}"] = backend.to_numpy(value) if backend.is_array(value) else \
                    numpy.asarray(value)
        return out

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (into an optimizer over the same parameters)."""
        count = sum(1 for _ in self._indexed())
        shapes = {i: p.shape for i, _, p in self._indexed()}
        new_state: dict[int, dict[str, Any]] = {}
        for key, value in state.items():
            parts = key.split(".")
            if key == "step_count":
                continue
            if parts[0] == "group" and len(parts) == 3:
                g = int(parts[1])
                if g >= len(self.param_groups):
                    raise KeyError(f"load_state_dict: {key!r} names group {g}, but there are "
                                   f"{len(self.param_groups)} groups")
            elif parts[0] == "state" and len(parts) == 3:
                i = int(parts[1])
                if i >= count:
                    raise KeyError(f"load_state_dict: {key!r} names parameter {i}, but there are {count}")
                arr = backend.to_numpy(value)
                if parts[2] in self.buffer_names and tuple(arr.shape) != shapes[i]:
                    raise ValueError(f"load_state_dict: {key!r} has shape {tuple(arr.shape)}, "
                                     f"parameter {i} has shape {shapes[i]}")
                new_state.setdefault(i, {})[parts[2]] = arr
            else:
                raise KeyError(f"load_state_dict: unexpected key {key!r}")
        for key, value in state.items():
            parts = key.split(".")
            if parts[0] == "group":
                group = self.param_groups[int(parts[1])]
                old = group.get(parts[2], self.defaults.get(parts[2]))
                v = float(backend.to_numpy(value))
                group[parts[2]] = type(old)(v) if isinstance(old, (bool, int)) else v
        self.step_count = int(backend.to_numpy(state.get("step_count", 0)))
        params = {i: p for i, _, p in self._indexed()}
        self.state = {}
        for i, st in new_state.items():
            # buffers go back to the parameter's backend and dtype; counters become ints again
            self.state[i] = {
                k: backend.asarray(v, dtype=params[i].dtype) if k in self.buffer_names else int(v)
                for k, v in st.items()
            }


class SGD(Optimizer):
    """Stochastic gradient descent with momentum, dampening, Nesterov momentum and L2 weight decay.

    Args:
        params: Parameters or parameter groups.
        lr: learning rate (> 0).
        momentum: heavy-ball coefficient in [0, 1).
        weight_decay: L2 penalty coefficient (adds ``weight_decay * p`` to the gradient).
        nesterov: use Nesterov momentum (needs momentum > 0 and no dampening).
        dampening: scales the new gradient in the momentum buffer by ``1 - dampening``.
    """

    buffer_names = ("momentum_buffer",)

    def __init__(self, params: Iterable[Any], lr: float, momentum: float = 0.0, weight_decay: float = 0.0,
                 nesterov: bool = False, dampening: float = 0.0) -> None:
        if not lr > 0:
            raise ValueError(f"SGD(lr): expected a positive learning rate, got {lr}")
        if not 0 <= momentum < 1:
            raise ValueError(f"SGD(momentum): expected a value in [0, 1), got {momentum}")
        if weight_decay < 0:
            raise ValueError(f"SGD(weight_decay): expected >= 0, got {weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("SGD(nesterov=True): needs momentum > 0 and dampening = 0")
        super().__init__(params, {"lr": lr, "momentum": momentum, "weight_decay": weight_decay,
                                  "nesterov": bool(nesterov), "dampening": dampening})

    def _update(self, p: Tensor, grad: Any, state: dict[str, Any], group: dict[str, Any]) -> None:
        wd, mom = group["weight_decay"], group["momentum"]
        g = grad + wd * p.data if wd else grad
        if mom:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = g.copy()
            else:
                buf *= mom
                buf += (1 - group["dampening"]) * g
            g = g + mom * buf if group["nesterov"] else buf
        p.data -= group["lr"] * g


class Adam(Optimizer):
    """Adam (Kingma and Ba, 2015) with bias correction and optional L2 weight decay.

    Args:
        params: Parameters or parameter groups.
        lr: learning rate (default 1e-3).
        betas: decay rates (b1, b2) of the first and second moment estimates.
        eps: added to the denominator for numerical stability.
        weight_decay: L2 penalty coefficient (added to the gradient, as in PyTorch's Adam).
    """

    buffer_names = ("exp_avg", "exp_avg_sq")

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0) -> None:
        if not lr > 0:
            raise ValueError(f"Adam(lr): expected a positive learning rate, got {lr}")
        if not (0 <= betas[0] < 1 and 0 <= betas[1] < 1):
            raise ValueError(f"Adam(betas): expected two values in [0, 1), got {betas}")
        if eps <= 0 or weight_decay < 0:
            raise ValueError(f"Adam: expected eps > 0 and weight_decay >= 0, got {eps}, {weight_decay}")
        super().__init__(params, {"lr": lr, "beta1": betas[0], "beta2": betas[1], "eps": eps,
                                  "weight_decay": weight_decay})

    def _update(self, p: Tensor, grad: Any, state: dict[str, Any], group: dict[str, Any]) -> None:
        xp = backend.get_array_module(p.data)
        b1, b2, wd = group["beta1"], group["beta2"], group["weight_decay"]
        g = grad + wd * p.data if wd else grad
        if "exp_avg" not in state:
            state["exp_avg"] = xp.zeros_like(p.data)
            state["exp_avg_sq"] = xp.zeros_like(p.data)
            state["step"] = 0
        state["step"] += 1
        t = state["step"]
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m *= b1
        m += (1 - b1) * g
        v *= b2
        v += (1 - b2) * (g * g)
        # bias correction: m and v start at 0, so early averages are too small by (1 - b^t)
        step_size = group["lr"] / (1 - b1**t)
        denom = xp.sqrt(v / (1 - b2**t)) + group["eps"]
        p.data -= step_size * (m / denom)


# =========================================================================== schedules
class LRScheduler:
    """Sets ``lr = initial_lr * factor(step)`` in every group; call ``step()`` once per iteration.

    ``step`` counts the calls to :meth:`step` (0 right after construction, which already applies
    ``factor(0)``). ``state_dict()`` / ``load_state_dict()`` save and restore the count.
    """

    def __init__(self, optimizer: Optimizer) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(self).__name__}(optimizer): expected an Optimizer, "
                            f"got {type(optimizer).__name__}")
        self.optimizer = optimizer
        self.last_step = 0
        self._apply()

    def factor(self, step: int) -> float:
        raise NotImplementedError  # pragma: no cover

    def _apply(self) -> None:
        f = self.factor(self.last_step)
        for group in self.optimizer.param_groups:
            group["lr"] = group["initial_lr"] * f

    def step(self) -> None:
        """Advance one iteration and set the new learning rates."""
        self.last_step += 1
        self._apply()

    def get_lr(self) -> list[float]:
        """The current learning rate of each group."""
        return [g["lr"] for g in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, numpy.ndarray]:
        return {"last_step": numpy.asarray(self.last_step)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.last_step = int(backend.to_numpy(state["last_step"]))
        self._apply()


class LambdaLR(LRScheduler):
    """``lr = initial_lr * fn(step)`` for any function ``fn``."""

    def __init__(self, optimizer: Optimizer, fn: Callable[[int], float]) -> None:
        self.fn = fn
        super().__init__(optimizer)

    def factor(self, step: int) -> float:
        return float(self.fn(step))


class MultiStepLR(LRScheduler):
    """Multiply the learning rate by ``gamma`` at each milestone: factor ``gamma ** (#milestones <= step)``.

    SSD300 on VOC: lr 1e-3, milestones (80k, 100k), gamma 0.1.
    """

    def __init__(self, optimizer: Optimizer, milestones: Sequence[int], gamma: float = 0.1) -> None:
        self.milestones = sorted(int(m) for m in milestones)
        self.gamma = float(gamma)
        super().__init__(optimizer)

    def factor(self, step: int) -> float:
        return self.gamma ** bisect.bisect_right(self.milestones, step)


class LinearWarmupLR(LRScheduler):
    """Ramp the learning rate linearly from ``start_factor * lr`` to ``lr`` over ``warmup_steps`` steps.

    Warm-up avoids the large, badly-aimed first updates of a freshly initialised detector.
    """

    def __init__(self, optimizer: Optimizer, warmup_steps: int, start_factor: float = 1.0 / 3) -> None:
        if warmup_steps < 0 or not 0 < start_factor <= 1:
            raise ValueError(f"LinearWarmupLR: expected warmup_steps >= 0 and 0 < start_factor <= 1, "
                             f"got {warmup_steps}, {start_factor}")
        self.warmup_steps, self.start_factor = int(warmup_steps), float(start_factor)
        super().__init__(optimizer)

    def factor(self, step: int) -> float:
        if self.warmup_steps == 0 or step >= self.warmup_steps:
            return 1.0
        return self.start_factor + (1 - self.start_factor) * step / self.warmup_steps


class WarmupMultiStepLR(LRScheduler):
    """Linear warm-up followed by multi-step decay (the product of the two factors)."""

    def __init__(self, optimizer: Optimizer, milestones: Sequence[int], gamma: float = 0.1,
                 warmup_steps: int = 0, start_factor: float = 1.0 / 3) -> None:
        self.milestones = sorted(int(m) for m in milestones)
        self.gamma = float(gamma)
        self.warmup_steps, self.start_factor = int(warmup_steps), float(start_factor)
        super().__init__(optimizer)

    def factor(self, step: int) -> float:
        warm = 1.0
        if self.warmup_steps and step < self.warmup_steps:
            warm = self.start_factor + (1 - self.start_factor) * step / self.warmup_steps
        return warm * self.gamma ** bisect.bisect_right(self.milestones, step)
