"""Max pooling: the maximum of every kh x kw window, by a loop over the kernel offsets on strided slices.

Like im2col (``conv.py``), the loops run over the kh*kw offsets of the window, never over pixels: for
offset ``(i, j)`` the inputs ``x[:, :, h*sh + i - ph, w*sw + j - pw]`` of all outputs form one strided
slice of ``x``. Padding counts as -inf (it never wins), so instead of padding the input, each offset
only visits the outputs whose input lies inside the image (:func:`valid_range`).

The layer (a Module without parameters) is :class:`minissd.nn.layers.MaxPool2d`; this file holds the
autograd Function and :func:`max_pool2d`.
"""

from __future__ import annotations

from typing import Any

from .. import backend
from ..autograd import Function, Tensor
from ..sizes import conv_output_size
from .workspace import IntPair, for_blocks, pair

__all__ = ["MaxPool2dFunction", "input_slice", "max_pool2d", "max_pool2d_output_shape", "valid_range"]

Pair = tuple[int, int]


def valid_range(out_lo: int, out_hi: int, in_size: int, offset: int, stride: int) -> Pair:
    """Output indices ``o`` in ``[out_lo, out_hi)`` whose input index ``o*stride + offset`` is in the image.

    ``offset`` is ``i - padding`` for kernel row (or column) ``i``. Returns ``(lo, hi)`` with
    ``lo <= hi``; the other outputs see padding.
    """
    lo = max(out_lo, -(offset // stride))  # smallest o with o*stride + offset >= 0
    hi = min(out_hi, (in_size - 1 - offset) // stride + 1)  # one past the largest o inside the image
    return lo, max(lo, hi)


def input_slice(lo: int, hi: int, offset: int, stride: int) -> slice:
    """The input indices ``o*stride + offset`` for ``o`` in ``[lo, hi)`` as a slice (``hi > lo``)."""
    return slice(lo * stride + offset, (hi - 1) * stride + offset + 1, stride)


def _pool_offsets(kernel: Pair, stride: Pair, padding: Pair, in_hw: Pair, out_hw: Pair) -> list[tuple[Any, ...]]:
    """(k, ylo, yhi, xlo, xhi, ys, xs) for each kernel offset that touches the image at all."""
    offsets = []
    for i in range(kernel[0]):
        ylo, yhi = valid_range(0, out_hw[0], in_hw[0], i - padding[0], stride[0])
        for j in range(kernel[1]):
            xlo, xhi = valid_range(0, out_hw[1], in_hw[1], j - padding[1], stride[1])
            if yhi > ylo and xhi > xlo:
                ys = input_slice(ylo, yhi, i - padding[0], stride[0])
                xs = input_slice(xlo, xhi, j - padding[1], stride[1])
                offsets.append((i * kernel[1] + j, ylo, yhi, xlo, xhi, ys, xs))
    return offsets


class MaxPool2dFunction(Function):
    """Max over each kh x kw window, one ``maximum`` per kernel offset.

    forward:  y[n, c, h, w] = max_{i,j} x[n, c, s*h + i - p, s*w + j - p]  (padding counts as -inf);
              nothing extra is stored (x and y are kept by the graph).
    backward: each output's gradient goes to the input that produced the max, found again by comparing
              each offset's slice of x with y; an input that wins several (overlapping) windows
              receives the sum.
    Ties: the first maximum in row-major kernel order takes the whole gradient (as in PyTorch); a
    ``claimed`` mask stops later equal values from taking it again. NaN propagates to the output
    (its window then passes no gradient).
    """

    def forward(self, x: Any, kernel: Pair = (2, 2), stride: Pair = (2, 2), padding: Pair = (0, 0),
                out_hw: Pair = (1, 1)) -> Any:
        xp = backend.get_array_module(x)
        n, c, h, w = x.shape
        ho, wo = out_hw
        self.geom = (kernel, stride, padding)
        self.offsets = _pool_offsets(kernel, stride, padding, (h, w), (ho, wo))
        y = xp.empty((n, c, ho, wo), dtype=x.dtype)
        first = self.offsets[0]
        covers_all = first[1:5] == (0, ho, 0, wo)

        def run(xc: Any, yc: Any) -> None:
            """yc = the maximum over the kernel offsets of xc's strided slices (padding never wins)."""
            # BEGIN SOLUTION max_pool
            rest = self.offsets
            if covers_all:  # the first tap is inside the image for every output: start from it
                yc[...] = xc[:, :, first[5], first[6]]
                rest = rest[1:]
            else:
                yc.fill(-xp.inf)
            for _, ylo, yhi, xlo, xhi, ys, xs in rest:
                ysub = yc[:, :, ylo:yhi, xlo:xhi]
                xp.maximum(ysub, xc[:, :, ys, xs], out=ysub)  # maximum() also carries NaN through
            # END SOLUTION

        for_blocks(xp, run, (x, y))
        self.x, self.y = x, y
        return y

    def backward(self, grad: Any) -> Any:
        xp = backend.get_array_module(grad)
        (kh, kw), (sh, sw), _ = self.geom
        dx = xp.zeros(self.x.shape, dtype=grad.dtype)
        # windows that do not overlap write disjoint parts of dx: assign instead of read-add-write
        disjoint = sh >= kh and sw >= kw
        last = len(self.offsets) - 1

        def run(xc: Any, yc: Any, gc: Any, dc: Any) -> None:
            """dc = each output's gradient gc sent to the first input of its window equal to yc."""
            # BEGIN SOLUTION max_pool
            claimed = xp.zeros(yc.shape, dtype=bool)  # outputs whose gradient has been handed out
            for step, (_, ylo, yhi, xlo, xhi, ys, xs) in enumerate(self.offsets):
                sub = (slice(None), slice(None), slice(ylo, yhi), slice(xlo, xhi))
                hit = xc[:, :, ys, xs] == yc[sub]
                if step:
                    hit = xp.greater(hit, claimed[sub])  # hit and not yet claimed (bools: a > b)
                if step < last:
                    claimed[sub] |= hit
                if disjoint:
                    xp.multiply(gc[sub], hit, out=dc[:, :, ys, xs])
                else:
                    dc[:, :, ys, xs] += gc[sub] * hit
            # END SOLUTION

        for_blocks(xp, run, (self.x, self.y, grad, dx))
        return dx


def max_pool2d_output_shape(in_hw: Pair, kernel_size: IntPair, stride: IntPair | None = None,
                            padding: IntPair = 0, ceil_mode: bool = False) -> Pair:
    """(Ho, Wo) of max pooling (see :func:`minissd.sizes.conv_output_size` for ceil mode)."""
    k = pair(kernel_size, "kernel_size", 1)
    s = k if stride is None else pair(stride, "stride", 1)
    p = pair(padding, "padding", 0)
    return (conv_output_size(in_hw[0], k[0], s[0], p[0], ceil_mode=ceil_mode),
            conv_output_size(in_hw[1], k[1], s[1], p[1], ceil_mode=ceil_mode))


def max_pool2d(x: Tensor | Any, kernel_size: IntPair, stride: IntPair | None = None, padding: IntPair = 0,
               ceil_mode: bool = False) -> Tensor:
    """Max pooling of ``x`` (N, C, H, W) -> (N, C, Ho, Wo).

    ``stride`` defaults to ``kernel_size``; ``padding`` counts as -inf (it never wins) and may be at most
    half the kernel; ``ceil_mode`` rounds the output size up (SSD's pool3: 75 -> 38). On ties the
    gradient goes to the first maximum in row-major window order.
    """
    x = x if isinstance(x, Tensor) else Tensor(x)
    if x.ndim != 4:
        raise ValueError(f"max_pool2d(x): expected a 4-D tensor (N, C, H, W), got shape {x.shape}")
    k = pair(kernel_size, "kernel_size", 1)
    s = k if stride is None else pair(stride, "stride", 1)
    p = pair(padding, "padding", 0)
    if p[0] > k[0] // 2 or p[1] > k[1] // 2:
        raise ValueError(f"max_pool2d(padding): must be at most half the kernel {k}, got {p}")
    ho, wo = max_pool2d_output_shape(x.shape[2:], k, s, p, ceil_mode)
    if ho < 1 or wo < 1:
        raise ValueError(f"max_pool2d: kernel {k} with padding {p} does not fit the input {x.shape[2:]}")
    return MaxPool2dFunction.apply(x, kernel=k, stride=s, padding=p, out_hw=(ho, wo))
