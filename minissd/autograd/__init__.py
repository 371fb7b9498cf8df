"""Reverse-mode automatic differentiation: Tensor, Function, no_grad, gradcheck.

Read it in this order (``docs/autograd.md`` walks through it): ``tensor.py`` (Tensor and
``backward()``: why it needs a topological order), ``function.py`` (Function: forward and backward side
by side, the version check that makes in-place ops safe, ``unbroadcast``), ``ops.py`` (every operation),
``gradcheck.py`` (the finite-difference test each op passes), ``grad_mode.py`` (``no_grad``).
"""

from . import ops
from .function import Function, unbroadcast
from .grad_mode import enable_grad, is_grad_enabled, no_grad
from .gradcheck import GradcheckError, gradcheck, rel_error
from .ops import concatenate, log_softmax, log_softmax_array, relu, softmax, softmax_array, stack
from .tensor import Tensor, tensor

__all__ = [
    "Function",
    "GradcheckError",
    "Tensor",
    "concatenate",
    "enable_grad",
    "gradcheck",
    "is_grad_enabled",
    "log_softmax",
    "log_softmax_array",
    "no_grad",
    "ops",
    "rel_error",
    "relu",
    "softmax",
    "softmax_array",
    "stack",
    "tensor",
    "unbroadcast",
]
