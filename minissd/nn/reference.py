"""Slow, obviously-correct reference implementations, used only by the tests to check the fast ones.

They loop over output pixels in Python and read the definition straight off the page; use them on
tiny inputs only. They work on host NumPy arrays (any float dtype) and know nothing of autograd.
"""

from __future__ import annotations

import numpy

from .im2col import IntPair, conv_output_size, pair, pool_output_size

__all__ = ["conv2d_reference", "max_pool2d_reference"]


def conv2d_reference(x: numpy.ndarray, weight: numpy.ndarray, bias: numpy.ndarray | None = None,
                     stride: IntPair = 1, padding: IntPair = 0, dilation: IntPair = 1) -> numpy.ndarray:
    """y[n, o, h, w] = sum_{c,i,j} weight[o, c, i, j] * xpad[n, c, h*sh + i*dh, w*sw + j*dw] + bias[o]."""
    sh, sw = pair(stride, "stride")
    ph, pw = pair(padding, "padding")
    dh, dw = pair(dilation, "dilation")
    n, c, h, w = x.shape
    o, _, kh, kw = weight.shape
    ho, wo = conv_output_size(h, kh, sh, ph, dh), conv_output_size(w, kw, sw, pw, dw)
    xpad = numpy.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=x.dtype)
    xpad[:, :, ph:ph + h, pw:pw + w] = x
    y = numpy.zeros((n, o, ho, wo), dtype=x.dtype)
    for b in range(n):
        for oc in range(o):
            for r in range(ho):
                for q in range(wo):
                    total = 0.0
                    for ch in range(c):
                        for i in range(kh):
                            for j in range(kw):
                                total += weight[oc, ch, i, j] * xpad[b, ch, r * sh + i * dh, q * sw + j * dw]
                    y[b, oc, r, q] = total + (bias[oc] if bias is not None else 0.0)
    return y


def max_pool2d_reference(x: numpy.ndarray, kernel_size: IntPair, stride: IntPair | None = None,
                         padding: IntPair = 0, ceil_mode: bool = False) -> numpy.ndarray:
    """y[n, c, h, w] = max of the window at (h*sh - ph, w*sw - pw) over the pixels inside the image."""
    kh, kw = pair(kernel_size, "kernel_size")
    sh, sw = (kh, kw) if stride is None else pair(stride, "stride")
    ph, pw = pair(padding, "padding")
    n, c, h, w = x.shape
    ho, wo = pool_output_size(h, kh, sh, ph, ceil_mode), pool_output_size(w, kw, sw, pw, ceil_mode)
    y = numpy.empty((n, c, ho, wo), dtype=x.dtype)
    for b in range(n):
        for ch in range(c):
            for r in range(ho):
                for q in range(wo):
                    best = -numpy.inf
                    for i in range(kh):
                        for j in range(kw):
                            yy, xx = r * sh - ph + i, q * sw - pw + j
                            if 0 <= yy < h and 0 <= xx < w:
                                best = max(best, x[b, ch, yy, xx])
                    y[b, ch, r, q] = best
    return y
