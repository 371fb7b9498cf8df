"""The autograd operations, one Function class each (forward and backward side by side).

They are defined in ``tensor.py`` next to the Tensor that uses them as operators; this module is the
place to import them from (``from minissd.autograd.ops import Add, LogSoftmax``) and the list a
student reads to see which operations exist.
"""

from .tensor import (
    Abs,
    Add,
    Cast,
    Concatenate,
    Div,
    Exp,
    GetItem,
    Log,
    LogSoftmax,
    MatMul,
    Max,
    Mean,
    Mul,
    Neg,
    Pow,
    PowScalar,
    ReLU,
    Reshape,
    Sigmoid,
    Softmax,
    Sqrt,
    Stack,
    Sub,
    Sum,
    Transpose,
)

__all__ = [
    "Abs", "Add", "Cast", "Concatenate", "Div", "Exp", "GetItem", "Log", "LogSoftmax", "MatMul", "Max",
    "Mean", "Mul", "Neg", "Pow", "PowScalar", "ReLU", "Reshape", "Sigmoid", "Softmax", "Sqrt", "Stack",
    "Sub", "Sum", "Transpose",
]
