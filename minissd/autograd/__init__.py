"""Reverse-mode automatic differentiation: Tensor, Function, no_grad, gradcheck.

See ``docs/autograd.md`` for the walk-through and ``tensor.py`` for why backward needs a
topological order.
"""

from . import ops
from .gradcheck import GradcheckError, gradcheck, rel_error
from .tensor import (
    Function,
    Tensor,
    concatenate,
    enable_grad,
    is_grad_enabled,
    no_grad,
    stack,
    tensor,
    unbroadcast,
)

__all__ = [
    "Function",
    "GradcheckError",
    "Tensor",
    "concatenate",
    "enable_grad",
    "gradcheck",
    "is_grad_enabled",
    "no_grad",
    "ops",
    "rel_error",
    "stack",
    "tensor",
    "unbroadcast",
]
