"""Optimizers (SGD with momentum and weight decay, Adam) and the learning-rate schedule.

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
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy

from . import backend
from .autograd import Tensor, no_grad

__all__ = ["SGD", "Adam", "LRSchedule", "Optimizer"]


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


# =========================================================================== schedule
class LRSchedule:
    """The learning-rate schedule of a training run: linear warm-up, then a decay; one ``step()`` per iteration.

    ``lr = initial_lr * factor(step)`` in every parameter group, where ``step`` counts the calls to
    :meth:`step` (0 right after construction, which already applies ``factor(0)``):

    * warm-up: ``(step + 1) / warmup_steps`` for the first ``warmup_steps`` steps (avoids the large,
      badly aimed first updates of a freshly initialised detector);
    * then ``decay``: ``"cosine"`` from 1 down to ``min_factor`` at ``total_steps``,
      ``"multistep"`` (x ``gamma`` at each of ``milestones``: SSD300's 80k and 100k), or ``"constant"``.

    ``progress`` (passed to :meth:`step`, e.g. elapsed / time limit) lets a time-limited run finish its
    cosine decay when the time is up rather than at ``total_steps``: the decay follows whichever is
    further along. ``state_dict()`` / ``load_state_dict()`` save and restore the step and the progress.
    """

    DECAYS = ("cosine", "multistep", "constant")

    def __init__(self, optimizer: Optimizer, total_steps: int, warmup_steps: int = 0, decay: str = "cosine",
                 min_factor: float = 0.0, milestones: Sequence[int] = (), gamma: float = 0.1) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"LRSchedule(optimizer): expected an Optimizer, got {type(optimizer).__name__}")
        if decay not in self.DECAYS:
            raise ValueError(f"LRSchedule(decay): expected one of {', '.join(self.DECAYS)}, got {decay!r}")
        if total_steps < 1 or warmup_steps < 0:
            raise ValueError(f"LRSchedule: expected total_steps >= 1 and warmup_steps >= 0, got {total_steps}, "
                             f"{warmup_steps}")
        self.optimizer = optimizer
        self.total_steps, self.warmup_steps = int(total_steps), int(warmup_steps)
        self.decay, self.min_factor = decay, float(min_factor)
        self.milestones, self.gamma = sorted(int(m) for m in milestones), float(gamma)
        self.last_step = 0
        self.progress = 0.0
        self._apply()

    def factor(self, step: int, progress: float = 0.0) -> float:
        """Multiplier of the initial learning rate at ``step`` (0-based)."""
        if self.warmup_steps > 0 and step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        if self.decay == "cosine":
            span = max(1, self.total_steps - self.warmup_steps)
            t = min(1.0, max((step - self.warmup_steps) / span, progress))
            lo = self.min_factor
            return lo + (1 - lo) * 0.5 * (1 + math.cos(math.pi * t))
        if self.decay == "multistep":
            return self.gamma ** bisect.bisect_right(self.milestones, step)
        return 1.0

    def _apply(self) -> None:
        f = self.factor(self.last_step, self.progress)
        for group in self.optimizer.param_groups:
            group["lr"] = group["initial_lr"] * f

    def step(self, progress: float | None = None) -> None:
        """Advance one iteration (``progress``: the fraction of the run done by another measure) and set the
        new learning rates."""
        self.last_step += 1
        if progress is not None:
            self.progress = float(progress)
        self._apply()

    def get_lr(self) -> list[float]:
        """The current learning rate of each group."""
        return [g["lr"] for g in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, numpy.ndarray]:
        return {"last_step": numpy.asarray(self.last_step), "progress": numpy.asarray(self.progress)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.last_step = int(backend.to_numpy(state["last_step"]))
        # checkpoints from before the progress was saved restart the time-based decay at 0
        self.progress = float(backend.to_numpy(state["progress"])) if "progress" in state else 0.0
        self._apply()
