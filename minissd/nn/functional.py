"""The functional layers under one name, as ``import minissd.nn.functional as F``: F.conv2d, F.relu, ...

This module only gathers the functions; each lives in the file named after its idea:

* ``conv.py``: :func:`conv2d`, :func:`conv2d_output_shape` (im2col, the textbook and the fast path)
* ``pool.py``: :func:`max_pool2d`, :func:`max_pool2d_output_shape`
* ``activation.py``: :func:`relu`, :func:`softmax`, :func:`log_softmax`
* ``norm.py``: :func:`l2_norm`, :func:`batch_norm`
* ``losses.py``: :func:`smooth_l1_loss`, :func:`cross_entropy`

All take and return :class:`~minissd.autograd.Tensor` objects (plain arrays are wrapped) and reach
arrays only through the backend, so the same code runs on NumPy and CuPy. Shapes follow PyTorch:
images are NCHW, a convolution weight is (O, C, kh, kw).
"""

from __future__ import annotations

from .activation import log_softmax, relu, softmax
from .conv import conv2d, conv2d_output_shape
from .losses import cross_entropy, smooth_l1_loss
from .norm import batch_norm, l2_norm
from .pool import max_pool2d, max_pool2d_output_shape

__all__ = [
    "batch_norm",
    "conv2d",
    "conv2d_output_shape",
    "cross_entropy",
    "l2_norm",
    "log_softmax",
    "max_pool2d",
    "max_pool2d_output_shape",
    "relu",
    "smooth_l1_loss",
    "softmax",
]
