"""The layers SSD is built from, as Modules: Conv2d, MaxPool2d, ReLU, L2Norm and BatchNorm2d.

Each is a thin :class:`~minissd.nn.Module` that holds the layer's settings and parameters and calls a
function of :mod:`minissd.nn.functional`. The Modules are gathered here, apart from the operations
(``conv.py``, ``pool.py``, ``activation.py``, ``norm.py``), so that those files show the computation
and this one what a layer stores. Weights are float32 on the selected backend.
"""

from __future__ import annotations

import numpy

from .. import backend
from ..autograd import Tensor
from . import functional as F
from . import init
from .module import Module, Parameter
from .workspace import IntPair, pair

__all__ = ["BatchNorm2d", "Conv2d", "L2Norm", "MaxPool2d", "ReLU"]


def _float_param(shape: tuple[int, ...]) -> Parameter:
    return Parameter(backend.xp().zeros(shape, dtype=backend.default_float()))


class Conv2d(Module):
    """2-D convolution layer: (N, in_channels, H, W) -> (N, out_channels, Ho, Wo).

    Args:
        in_channels, out_channels: C and O.
        kernel_size, stride, padding, dilation: ints or (row, column) pairs, as in :func:`F.conv2d`.
        bias: learn a per-output-channel bias.
        rng: the ``numpy.random.Generator`` for the initial weights (NumPy's global state if None).

    Attributes:
        weight: Parameter (O, C, kh, kw), initialised with Kaiming-normal (fan_in, ReLU gain), which keeps
            the activations' scale through ReLU networks trained from scratch.
        bias: Parameter (O,) of zeros, or None.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntPair, stride: IntPair = 1,
                 padding: IntPair = 0, dilation: IntPair = 1, bias: bool = True, *,
                 rng: numpy.random.Generator | None = None) -> None:
        super().__init__()
        if in_channels < 1 or out_channels < 1:
            raise ValueError(f"Conv2d: channels must be positive, got in_channels={in_channels}, "
                             f"out_channels={out_channels}")
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size = pair(kernel_size, "Conv2d(kernel_size)", 1)
        self.stride = pair(stride, "Conv2d(stride)", 1)
        self.padding = pair(padding, "Conv2d(padding)", 0)
        self.dilation = pair(dilation, "Conv2d(dilation)", 1)
        self.weight = _float_param((self.out_channels, self.in_channels, *self.kernel_size))
        init.kaiming_normal(self.weight, rng=rng)
        self.bias = _float_param((self.out_channels,)) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation)

    def extra_repr(self) -> str:
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.bias is None:
            s += ", bias=False"
        return s


class MaxPool2d(Module):
    """Max pooling layer (no parameters); see :func:`F.max_pool2d` for padding, ceil_mode and ties."""

    def __init__(self, kernel_size: IntPair, stride: IntPair | None = None, padding: IntPair = 0,
                 ceil_mode: bool = False) -> None:
        super().__init__()
        self.kernel_size = pair(kernel_size, "MaxPool2d(kernel_size)", 1)
        self.stride = self.kernel_size if stride is None else pair(stride, "MaxPool2d(stride)", 1)
        self.padding = pair(padding, "MaxPool2d(padding)", 0)
        self.ceil_mode = bool(ceil_mode)

    def forward(self, x: Tensor) -> Tensor:
        return F.max_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode)

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"ceil_mode={self.ceil_mode}")


class ReLU(Module):
    """Elementwise ``max(x, 0)`` (no parameters).

    ``inplace=True`` asks for the result to be written over the input's array (see :func:`F.relu`):
    after a Conv2d this halves the activation memory of a VGG, as PyTorch's ``ReLU(inplace=True)`` does.
    """

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = bool(inplace)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(x, inplace=self.inplace)

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""


class L2Norm(Module):
    """Normalize each pixel's channel vector to length 1, then scale channel c by ``weight[c]``.

    SSD applies it to conv4_3, whose activations are much larger than those of the later maps; the
    learned scale starts at ``scale`` (20 in the paper). (N, channels, H, W) -> same shape.
    """

    def __init__(self, channels: int, scale: float = 20.0, eps: float = 1e-10) -> None:
        super().__init__()
        self.channels, self.eps = int(channels), float(eps)
        self.weight = _float_param((self.channels,))
        init.constant(self.weight, scale)

    def forward(self, x: Tensor) -> Tensor:
        return F.l2_norm(x, self.weight, self.eps)

    def extra_repr(self) -> str:
        return f"{self.channels}"


class BatchNorm2d(Module):
    """Batch normalization over (N, H, W) per channel, with learned ``weight`` (1s) and ``bias`` (0s).

    In training mode it normalizes with the batch statistics and updates the buffers ``running_mean``
    and ``running_var`` (``r = (1 - momentum) r + momentum * batch``); in eval mode it uses them.
    Both buffers are in ``state_dict()``. (N, num_features, H, W) -> same shape.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1) -> None:
        super().__init__()
        self.num_features, self.eps, self.momentum = int(num_features), float(eps), float(momentum)
        self.weight = _float_param((self.num_features,))
        init.ones(self.weight)
        self.bias = _float_param((self.num_features,))
        xp = backend.xp()
        self.register_buffer("running_mean", xp.zeros(self.num_features, dtype=backend.default_float()))
        self.register_buffer("running_var", xp.ones(self.num_features, dtype=backend.default_float()))

    def forward(self, x: Tensor) -> Tensor:
        return F.batch_norm(x, self.weight, self.bias, self.running_mean, self.running_var,
                            training=self.training, momentum=self.momentum, eps=self.eps)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"
