"""Functional layers: convolution, max pooling, ReLU, L2 normalization, batch norm and the losses.

Each operation is an autograd :class:`~minissd.autograd.Function` whose ``forward`` and ``backward``
sit side by side, and a small function that checks the arguments and applies it. All of them take and
return :class:`~minissd.autograd.Tensor` objects (plain arrays are wrapped) and reach arrays only
through the backend, so the same code runs on NumPy and CuPy.

Shapes follow PyTorch: images are NCHW, a convolution weight is (O, C, kh, kw).
"""

from __future__ import annotations

import sys
from typing import Any

import numpy

from .. import backend
from ..autograd import Function, Tensor
from . import im2col as _cols
from .im2col import IntPair, conv_output_size, pair, pool_output_size, valid_range

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

_REDUCTIONS = ("none", "sum", "mean")


def _tensor(x: Any) -> Tensor:
    return x if isinstance(x, Tensor) else Tensor(x)


def _check_reduction(name: str, reduction: str) -> None:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{name}(reduction): expected one of {_REDUCTIONS}, got {reduction!r}")


# =========================================================================== convolution
def conv2d_output_shape(in_hw: tuple[int, int], kernel_size: IntPair, stride: IntPair = 1,
                        padding: IntPair = 0, dilation: IntPair = 1) -> tuple[int, int]:
    """(Ho, Wo) of a convolution: ``(H + 2p - d(k-1) - 1) // s + 1`` along each axis."""
    k, s, p, d = (pair(kernel_size, "kernel_size", 1), pair(stride, "stride", 1),
                  pair(padding, "padding", 0), pair(dilation, "dilation", 1))
    return (conv_output_size(in_hw[0], k[0], s[0], p[0], d[0]),
            conv_output_size(in_hw[1], k[1], s[1], p[1], d[1]))


class Conv2d(Function):
    """2-D cross-correlation (what deep learning calls convolution), by im2col and one matrix product.

    forward:  y[n, o] = sum_{c,i,j} w[o, c, i, j] * x[n, c, s*h + d*i - p, s*w + d*j - p] + b[o]
              computed per chunk of images as ``W (O, K) @ cols (K, L)`` with K = C*kh*kw, L = Ho*Wo.
    backward: dW = sum_n dy[n] (O, L) @ cols[n].T (L, K);  db = dy summed over N, Ho, Wo;
              dcols = W.T (K, O) @ dy[n] (O, L), scattered back to dx by col2im.

    Only ``x`` (held by the graph anyway) and ``w`` are kept for backward; the columns are recomputed
    chunk by chunk into the same reused buffer (caching them would cost kh*kw times the input).

    Narrow layers (stride 1 and far fewer output than input channels, such as SSD's loc/conf heads)
    use the same idea on the *output* side, whose copies are O/C times smaller: see ``_forward_narrow``.
    """

    def forward(self, x: Any, w: Any, b: Any = None, stride: tuple[int, int] = (1, 1),
                padding: tuple[int, int] = (0, 0), dilation: tuple[int, int] = (1, 1)) -> Any:
        xp = backend.get_array_module(x)
        n, c, h, wd = x.shape
        o, _, kh, kw = w.shape
        ho = conv_output_size(h, kh, stride[0], padding[0], dilation[0])
        wo = conv_output_size(wd, kw, stride[1], padding[1], dilation[1])
        self.x, self.w, self.has_bias = x, w, b is not None
        self.geom = ((kh, kw), stride, padding, dilation)
        self.out_hw = (ho, wo)
        w2 = w.reshape(o, c * kh * kw)
        y = xp.empty((n, o, ho, wo), dtype=x.dtype)
        if self._pointwise():
            # a 1x1 kernel with stride 1 and no padding: the input already is the column matrix
            _matmul_each(xp, w2, x.reshape(n, c, h * wd), y.reshape(n, o, ho * wo))
        elif self._narrow():
            self._forward_narrow(y)
        else:
            for n0, n1, h0, h1 in self._chunks():
                cols = self._columns(n0, n1, h0, h1)  # (nb, K, hb*Wo)
                if h1 - h0 == ho:
                    _matmul_each(xp, w2, cols, y[n0:n1].reshape(n1 - n0, o, ho * wo))
                else:  # a band of rows is not contiguous in y: write through a temporary
                    band = xp.empty((n1 - n0, o, (h1 - h0) * wo), dtype=y.dtype)
                    _matmul_each(xp, w2, cols, band)
                    y[n0:n1, :, h0:h1] = band.reshape(n1 - n0, o, h1 - h0, wo)
        if b is not None:
            y += b.reshape(1, o, 1, 1)
        return y

    def backward(self, grad: Any) -> tuple[Any, ...]:
        dx, dw, db = self._gradients(grad)
        return (dx, dw, db) if self.has_bias else (dx, dw)

    def _gradients(self, grad: Any) -> tuple[Any, Any, Any]:
        xp = backend.get_array_module(grad)
        x, w = self.x, self.w
        n, c, h, wd = x.shape
        o, _, kh, kw = w.shape
        ho, wo = self.out_hw
        k = c * kh * kw
        w2 = w.reshape(o, k)
        dw = xp.zeros((o, k), dtype=w.dtype)
        db = grad.sum(axis=(0, 2, 3)) if self.has_bias and self.parents[2].requires_grad else None
        # skip the work for inputs that need no gradient (the image; a frozen backbone's weights)
        need_dx, need_dw = self.parents[0].requires_grad, self.parents[1].requires_grad
        if self._pointwise():
            g3 = grad.reshape(n, o, ho * wo)
            x3 = x.reshape(n, c, h * wd)
            if need_dw:
                for i in range(n):
                    dw += g3[i] @ x3[i].T
            dx = None
            if need_dx:
                dx = xp.empty(x.shape, dtype=x.dtype)
                _matmul_each(xp, w2.T, g3, dx.reshape(n, c, h * wd))
            return dx, (dw.reshape(w.shape) if need_dw else None), db
        if self._narrow():
            dx, dw = self._backward_narrow(grad, need_dx, need_dw)
            return dx, dw, db
        dx = xp.zeros(x.shape, dtype=x.dtype) if need_dx else None
        kernel, stride, padding, dilation = self.geom
        for n0, n1, h0, h1 in self._chunks():
            if h1 - h0 == ho:
                g = grad[n0:n1].reshape(n1 - n0, o, ho * wo)
            else:
                g = xp.ascontiguousarray(grad[n0:n1, :, h0:h1]).reshape(n1 - n0, o, (h1 - h0) * wo)
            cols = None
            if need_dw:
                cols = self._columns(n0, n1, h0, h1)  # recomputed, (nb, K, hb*Wo)
                for i in range(n1 - n0):
                    dw += g[i] @ cols[i].T
            if need_dx:
                if cols is None:
                    cols = self._buffer(n0, n1, h0, h1).reshape(n1 - n0, k, (h1 - h0) * wo)
                # the columns are no longer needed: their buffer receives the column gradient
                _matmul_each(xp, w2.T, g, cols)
                cols6 = cols.reshape(n1 - n0, c, kh, kw, h1 - h0, wo)
                _cols.col2im(cols6, dx[n0:n1], kernel, stride, padding, dilation, rows=(h0, h1))
        return dx, (dw.reshape(w.shape) if need_dw else None), db

    def _pointwise(self) -> bool:
        kernel, stride, padding, _ = self.geom
        return kernel == (1, 1) and stride == (1, 1) and padding == (0, 0)

    # ----------------------------------------------------------------- narrow layers (output side)
    def _narrow(self) -> bool:
        """Stride 1, and the per-offset products P (kh*kw*O*H*W) are under half the columns (kh*kw*C*L)."""
        (kh, kw), stride, _, _ = self.geom
        n, c, h, w = self.x.shape
        o = self.w.shape[0]
        ho, wo = self.out_hw
        per_image = kh * kw * o * h * w * self.x.dtype.itemsize
        return (stride == (1, 1) and 2 * o * h * w < c * ho * wo
                and per_image <= _cols.get_buffer_bytes())

    def _offset_products(self) -> tuple[Any, list[Any], int]:
        """W as (kh*kw*O, C) (row block (i, j) is w[:, :, i, j]), the offsets, and images per chunk."""
        (kh, kw), stride, padding, dilation = self.geom
        n, c, h, w = self.x.shape
        o = self.w.shape[0]
        wk = self.w.transpose(2, 3, 0, 1).reshape(kh * kw * o, c)
        offsets = [t for t in _cols._offsets((kh, kw), stride, padding, dilation, (h, w), (0, self.out_hw[0]),
                                             self.out_hw[1]) if t[6] is not None]
        per_image = kh * kw * o * h * w * self.x.dtype.itemsize
        step = max(1, _cols.get_buffer_bytes() // per_image)
        return wk, offsets, step

    def _forward_narrow(self, y: Any) -> None:
        """y = sum over offsets (i, j) of P_ij shifted, where P_ij = w[:, :, i, j] @ x (all pixels).

        One matrix product ``(kh*kw*O, C) @ (C, H*W)`` per image gives every P_ij; then, like im2col
        in reverse, each offset adds its slice of P into the output.
        """
        xp = backend.get_array_module(self.x)
        (kh, kw), _, _, _ = self.geom
        n, c, h, w = self.x.shape
        o = self.w.shape[0]
        wk, offsets, step = self._offset_products()
        y.fill(0)
        for n0 in range(0, n, step):
            n1 = min(n, n0 + step)
            p = _cols.workspace(xp, (n1 - n0, kh, kw, o, h, w), self.x.dtype)
            _matmul_each(xp, wk, self.x[n0:n1].reshape(n1 - n0, c, h * w), p.reshape(n1 - n0, kh * kw * o, h * w))
            for i, j, ylo, yhi, xlo, xhi, ys, xs in offsets:
                y[n0:n1, :, ylo:yhi, xlo:xhi] += p[:, i, j, :, ys, xs]

    def _backward_narrow(self, grad: Any, need_dx: bool, need_dw: bool) -> tuple[Any, Any]:
        """dP_ij = dy shifted back (zeros where the window saw padding); then two matrix products:
        dW (kh*kw*O, C) = sum_n dP (kh*kw*O, H*W) @ x.T  and  dx = W.T (C, kh*kw*O) @ dP.
        """
        xp = backend.get_array_module(grad)
        (kh, kw), _, _, _ = self.geom
        n, c, h, w = self.x.shape
        o = self.w.shape[0]
        wk, offsets, step = self._offset_products()
        dwk = xp.zeros((kh * kw * o, c), dtype=self.w.dtype) if need_dw else None
        dx = xp.empty(self.x.shape, dtype=self.x.dtype) if need_dx else None
        for n0 in range(0, n, step):
            n1 = min(n, n0 + step)
            dp = _cols.workspace(xp, (n1 - n0, kh, kw, o, h, w), self.x.dtype)
            dp.fill(0)
            for i, j, ylo, yhi, xlo, xhi, ys, xs in offsets:
                dp[:, i, j, :, ys, xs] = grad[n0:n1, :, ylo:yhi, xlo:xhi]
            dp3 = dp.reshape(n1 - n0, kh * kw * o, h * w)
            if need_dw:
                x3 = self.x[n0:n1].reshape(n1 - n0, c, h * w)
                for i in range(n1 - n0):
                    dwk += dp3[i] @ x3[i].T
            if need_dx:
                _matmul_each(xp, wk.T, dp3, dx[n0:n1].reshape(n1 - n0, c, h * w))
        dw = dwk.reshape(kh, kw, o, c).transpose(2, 3, 0, 1).copy() if need_dw else None
        return dx, dw

    def _chunks(self) -> Any:
        c = self.x.shape[1]
        (kh, kw), _, _, _ = self.geom
        ho, wo = self.out_hw
        return _cols.plan_chunks(self.x.shape[0], ho, c * kh * kw * wo * self.x.dtype.itemsize)

    def _buffer(self, n0: int, n1: int, h0: int, h1: int) -> Any:
        """The shared workspace shaped (nb, C, kh, kw, hb, Wo) for images n0:n1, output rows h0:h1."""
        c = self.x.shape[1]
        kernel, wo = self.geom[0], self.out_hw[1]
        shape = (n1 - n0, c, kernel[0], kernel[1], h1 - h0, wo)
        return _cols.workspace(backend.get_array_module(self.x), shape, self.x.dtype)

    def _columns(self, n0: int, n1: int, h0: int, h1: int) -> Any:
        """im2col of images n0:n1, output rows h0:h1, in the shared workspace, as (nb, K, hb*Wo)."""
        kernel, stride, padding, dilation = self.geom
        cols = self._buffer(n0, n1, h0, h1)
        _cols.im2col(self.x[n0:n1], cols, kernel, stride, padding, dilation, rows=(h0, h1))
        nb, c, kh, kw, hb, wo = cols.shape
        return cols.reshape(nb, c * kh * kw, hb * wo)


def _matmul_each(xp: Any, a: Any, b: Any, out: Any) -> None:
    """``out[i] = a @ b[i]`` for each i: one BLAS call per image.

    (NumPy's batched ``matmul`` with a broadcast ``a`` may not call BLAS at all, and was 3x slower
    than this loop; CuPy gets one batched call.)
    """
    if xp is not numpy:
        xp.matmul(a, b, out=out)
        return
    for i in range(b.shape[0]):
        xp.matmul(a, b[i], out=out[i])


def conv2d(x: Tensor | Any, weight: Tensor | Any, bias: Tensor | Any | None = None, stride: IntPair = 1,
           padding: IntPair = 0, dilation: IntPair = 1) -> Tensor:
    """2-D convolution of ``x`` (N, C, H, W) with ``weight`` (O, C, kh, kw) and optional ``bias`` (O,).

    ``stride``, ``padding`` (zeros, in pixels on each side) and ``dilation`` (spacing between kernel
    taps; SSD's fc6 uses 3x3 with dilation 6 and padding 6) are ints or (row, column) pairs.

    Returns a Tensor of shape (N, O, Ho, Wo) with ``Ho = (H + 2p - d(kh-1) - 1) // s + 1`` (same for W).
    """
    x, weight = _tensor(x), _tensor(weight)
    s, p, d = pair(stride, "stride", 1), pair(padding, "padding", 0), pair(dilation, "dilation", 1)
    if x.ndim != 4:
        raise ValueError(f"conv2d(x): expected a 4-D tensor (N, C, H, W), got shape {x.shape}")
    if weight.ndim != 4:
        raise ValueError(f"conv2d(weight): expected a 4-D tensor (O, C, kh, kw), got shape {weight.shape}")
    if weight.shape[1] != x.shape[1]:
        raise ValueError(f"conv2d: weight {weight.shape} expects {weight.shape[1]} input channels, "
                         f"but x {x.shape} has {x.shape[1]}")
    if x.dtype != weight.dtype:
        raise TypeError(f"conv2d: x is {x.dtype} but weight is {weight.dtype}; convert x with "
                        f"x.astype({weight.dtype}) (networks use float32)")
    ho, wo = conv2d_output_shape(x.shape[2:], weight.shape[2:], s, p, d)
    if ho < 1 or wo < 1:
        raise ValueError(f"conv2d: the kernel {weight.shape[2:]} (dilation {d}) does not fit the input "
                         f"{x.shape[2:]} with padding {p}: output would be {ho}x{wo}")
    if bias is None:
        return Conv2d.apply(x, weight, stride=s, padding=p, dilation=d)
    bias = _tensor(bias)
    if bias.shape != (weight.shape[0],):
        raise ValueError(f"conv2d(bias): expected shape ({weight.shape[0]},), got {bias.shape}")
    return Conv2d.apply(x, weight, bias, stride=s, padding=p, dilation=d)


# =========================================================================== max pooling
def max_pool2d_output_shape(in_hw: tuple[int, int], kernel_size: IntPair, stride: IntPair | None = None,
                            padding: IntPair = 0, ceil_mode: bool = False) -> tuple[int, int]:
    """(Ho, Wo) of max pooling (see :func:`minissd.nn.im2col.pool_output_size` for ceil mode)."""
    k = pair(kernel_size, "kernel_size", 1)
    s = k if stride is None else pair(stride, "stride", 1)
    p = pair(padding, "padding", 0)
    return (pool_output_size(in_hw[0], k[0], s[0], p[0], ceil_mode),
            pool_output_size(in_hw[1], k[1], s[1], p[1], ceil_mode))


class MaxPool2d(Function):
    """Max over each kh x kw window, by a loop over the kernel offsets on strided slices.

    forward:  y[n, c, h, w] = max_{i,j} x[n, c, s*h + i - p, s*w + j - p]  (padding counts as -inf),
              one ``maximum`` per offset; nothing extra is stored (x and y are kept by the graph).
    backward: each output's gradient goes to the input that produced the max, found again by comparing
              each offset's slice of x with y; an input that wins several (overlapping) windows
              receives the sum.
    Ties: the first maximum in row-major kernel order takes the whole gradient (as in PyTorch); a
    ``claimed`` mask stops later equal values from taking it again. NaN propagates to the output
    (its window then passes no gradient).
    """

    def forward(self, x: Any, kernel: tuple[int, int] = (2, 2), stride: tuple[int, int] = (2, 2),
                padding: tuple[int, int] = (0, 0), out_hw: tuple[int, int] = (1, 1)) -> Any:
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

        _cols.for_blocks(xp, run, (x, y))
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

        _cols.for_blocks(xp, run, (self.x, self.y, grad, dx))
        return dx


def _pool_offsets(kernel: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int],
                  in_hw: tuple[int, int], out_hw: tuple[int, int]) -> list[tuple[Any, ...]]:
    """(k, ylo, yhi, xlo, xhi, ys, xs) for each kernel offset that touches the image at all."""
    offsets = []
    for i in range(kernel[0]):
        ylo, yhi = valid_range(0, out_hw[0], in_hw[0], i - padding[0], stride[0])
        for j in range(kernel[1]):
            xlo, xhi = valid_range(0, out_hw[1], in_hw[1], j - padding[1], stride[1])
            if yhi > ylo and xhi > xlo:
                ys = _cols.input_slice(ylo, yhi, i - padding[0], stride[0])
                xs = _cols.input_slice(xlo, xhi, j - padding[1], stride[1])
                offsets.append((i * kernel[1] + j, ylo, yhi, xlo, xhi, ys, xs))
    return offsets


def max_pool2d(x: Tensor | Any, kernel_size: IntPair, stride: IntPair | None = None, padding: IntPair = 0,
               ceil_mode: bool = False) -> Tensor:
    """Max pooling of ``x`` (N, C, H, W) -> (N, C, Ho, Wo).

    ``stride`` defaults to ``kernel_size``; ``padding`` counts as -inf (it never wins) and may be at most
    half the kernel; ``ceil_mode`` rounds the output size up (SSD's pool3: 75 -> 38). On ties the
    gradient goes to the first maximum in row-major window order.
    """
    x = _tensor(x)
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
    return MaxPool2d.apply(x, kernel=k, stride=s, padding=p, out_hw=(ho, wo))


# =========================================================================== activations
class ReLU(Function):
    """max(x, 0). Saves only the output (which the next layer keeps anyway): dx = dy where y > 0.

    With ``inplace`` the result is written over the input array, so a conv + ReLU pair holds one
    activation instead of two (as ``nn.ReLU(inplace=True)`` in PyTorch's VGG). The gradient at exactly
    0 is taken as 0.
    """

    def forward(self, a: Any, inplace: bool = False) -> Any:
        xp = backend.get_array_module(a)
        zero = a.dtype.type(0)
        self.out = xp.maximum(a, zero, out=a) if inplace else xp.maximum(a, zero)
        return self.out

    def backward(self, grad: Any) -> Any:
        return grad * (self.out > 0)  # 3x faster than where(out > 0, grad, 0) on NumPy


# Functions whose backward does not read their own output: overwriting that output is harmless to them
_OUTPUT_NOT_SAVED = ("Conv2d", "BatchNorm", "Add", "Sub")


def _can_overwrite(x: Tensor) -> bool:
    """True when nothing but ``x`` itself holds ``x.data``, and x's producer does not need it.

    A leaf (an input, a parameter) is never overwritten. Otherwise the array's reference count tells
    whether another Function saved it for its backward, or a view of it exists: then we must copy.
    (References: ``x.data``, the local name below and getrefcount's own argument.)
    """
    if x.is_leaf or type(x._ctx).__name__ not in _OUTPUT_NOT_SAVED:
        return False
    data = x.data
    return sys.getrefcount(data) <= 3


def relu(x: Tensor | Any, inplace: bool = False) -> Tensor:
    """Rectified linear unit, elementwise ``max(x, 0)``; any shape.

    ``inplace=True`` overwrites ``x``'s array to save memory, when that is safe: ``x`` must be the
    output of a layer that does not need it for its own gradient (conv2d, batch_norm, an addition) and
    nothing else may hold it; otherwise a new array is made as without ``inplace``.
    """
    x = _tensor(x)
    return ReLU.apply(x, inplace=bool(inplace) and _can_overwrite(x))


def log_softmax(x: Tensor | Any, axis: int = -1) -> Tensor:
    """``x - logsumexp(x)`` along ``axis`` (stable for large logits); any shape."""
    return _tensor(x).log_softmax(axis=axis)


def softmax(x: Tensor | Any, axis: int = -1) -> Tensor:
    """``exp(x) / sum(exp(x))`` along ``axis``; any shape."""
    return _tensor(x).softmax(axis=axis)


# =========================================================================== normalization
class L2Norm(Function):
    """Scale each pixel's channel vector to unit length, then by a learned per-channel weight.

    forward:  r = sqrt(sum_c x_c^2 + eps);  xhat = x / r;  y = w[c] * xhat
    backward: dw = sum_{n,h,w} dy * xhat;  dx = (g - xhat * sum_c(g * xhat)) / r  with g = dy * w[c]
    (``eps`` sits inside the square root, so an all-zero pixel gives zeros instead of NaN.)
    """

    def forward(self, x: Any, w: Any, eps: float = 1e-10) -> Any:
        xp = backend.get_array_module(x)
        self.r = xp.sqrt((x * x).sum(axis=1, keepdims=True) + x.dtype.type(eps))  # (N, 1, H, W)
        self.xhat = x / self.r
        self.w = w
        return self.xhat * w.reshape(1, -1, 1, 1)

    def backward(self, grad: Any) -> tuple[Any, Any]:
        dw = (grad * self.xhat).sum(axis=(0, 2, 3))
        g = grad * self.w.reshape(1, -1, 1, 1)
        dx = (g - self.xhat * (g * self.xhat).sum(axis=1, keepdims=True)) / self.r
        return dx, dw


def l2_norm(x: Tensor | Any, weight: Tensor | Any, eps: float = 1e-10) -> Tensor:
    """L2-normalize ``x`` (N, C, H, W) over channels and multiply by ``weight`` (C,) (SSD's conv4_3)."""
    x, weight = _tensor(x), _tensor(weight)
    if x.ndim != 4:
        raise ValueError(f"l2_norm(x): expected a 4-D tensor (N, C, H, W), got shape {x.shape}")
    if weight.shape != (x.shape[1],):
        raise ValueError(f"l2_norm(weight): expected shape ({x.shape[1]},), got {weight.shape}")
    return L2Norm.apply(x, weight, eps=eps)


class BatchNorm(Function):
    """Batch normalization over (N, H, W) for each channel.

    training: mu, var = mean and biased variance of the batch;  xhat = (x - mu) / sqrt(var + eps)
              y = gamma * xhat + beta
              dx = (gamma / sqrt(var + eps)) * (dy - mean(dy) - xhat * mean(dy * xhat))
    eval:     mu, var are the running statistics (constants), so y is affine in x.
    """

    def forward(self, x: Any, gamma: Any, beta: Any, mean: Any = None, var: Any = None,
                eps: float = 1e-5) -> Any:
        xp = backend.get_array_module(x)
        self.train_stats = mean is None
        if self.train_stats:
            mean = x.mean(axis=(0, 2, 3))
            var = x.var(axis=(0, 2, 3))
        shape = (1, -1, 1, 1)
        self.invstd = (1.0 / xp.sqrt(var + eps)).astype(x.dtype)
        self.xhat = (x - mean.reshape(shape)) * self.invstd.reshape(shape)
        self.gamma = gamma
        self.batch_mean, self.batch_var = mean, var
        return self.xhat * gamma.reshape(shape) + beta.reshape(shape)

    def backward(self, grad: Any) -> tuple[Any, Any, Any]:
        shape = (1, -1, 1, 1)
        dbeta = grad.sum(axis=(0, 2, 3))
        dgamma = (grad * self.xhat).sum(axis=(0, 2, 3))
        scale = (self.gamma * self.invstd).reshape(shape)
        if not self.train_stats:
            return grad * scale, dgamma, dbeta
        m = grad.size // grad.shape[1]
        dx = scale * (grad - (dbeta / m).reshape(shape) - self.xhat * (dgamma / m).reshape(shape))
        return dx, dgamma, dbeta


def batch_norm(x: Tensor | Any, weight: Tensor | Any, bias: Tensor | Any, running_mean: Any = None,
               running_var: Any = None, training: bool = True, momentum: float = 0.1,
               eps: float = 1e-5) -> Tensor:
    """Batch normalization of ``x`` (N, C, H, W) with per-channel ``weight`` and ``bias`` (C,).

    In training the batch statistics are used and, when given, the arrays ``running_mean`` and
    ``running_var`` (C,) are updated in place: ``r = (1 - momentum) r + momentum * batch`` (the variance
    unbiased, as in PyTorch). In evaluation the running statistics are used.
    """
    x, weight, bias = _tensor(x), _tensor(weight), _tensor(bias)
    if x.ndim != 4:
        raise ValueError(f"batch_norm(x): expected a 4-D tensor (N, C, H, W), got shape {x.shape}")
    c = x.shape[1]
    if weight.shape != (c,) or bias.shape != (c,):
        raise ValueError(f"batch_norm: weight and bias must have shape ({c},), "
                         f"got {weight.shape} and {bias.shape}")
    if not training:
        if running_mean is None or running_var is None:
            raise ValueError("batch_norm(training=False): running_mean and running_var are required")
        return BatchNorm.apply(x, weight, bias, mean=running_mean, var=running_var, eps=eps)
    m = x.size // c
    if m < 2:
        raise ValueError(f"batch_norm: training needs more than one value per channel, got shape {x.shape}")
    out = BatchNorm.apply(x, weight, bias, eps=eps)
    if running_mean is not None and running_var is not None:
        fn = out._ctx
        if fn is None:  # no graph (no_grad): recompute the statistics directly
            mean, var = x.data.mean(axis=(0, 2, 3)), x.data.var(axis=(0, 2, 3))
        else:
            mean, var = fn.batch_mean, fn.batch_var
        running_mean *= 1 - momentum
        running_mean += momentum * mean.astype(running_mean.dtype)
        running_var *= 1 - momentum
        running_var += momentum * (var * (m / (m - 1))).astype(running_var.dtype)
    return out


# =========================================================================== losses
def _reduce(loss: Any, reduction: str, count: int) -> Any:
    if reduction == "none":
        return loss
    total = loss.sum()
    return total if reduction == "sum" else total / max(count, 1)


class CrossEntropy(Function):
    """-log softmax(logits)[target] for each row; rows whose target is ``ignore_index`` give 0.

    backward: d/dlogits = (softmax(logits) - onehot(target)) * upstream (zero for ignored rows).
    """

    def forward(self, logits: Any, target: Any = None, reduction: str = "mean",
                ignore_index: int = -100) -> Any:
        xp = backend.get_array_module(logits)
        c = logits.shape[-1]
        z = logits.reshape(-1, c)
        t = target.reshape(-1)
        self.valid = t != ignore_index
        t = xp.where(self.valid, t, 0)
        shifted = z - z.max(axis=1, keepdims=True)
        lse = xp.log(xp.exp(shifted).sum(axis=1))
        rows = xp.arange(z.shape[0])
        loss = xp.where(self.valid, lse - shifted[rows, t], z.dtype.type(0))
        self.shifted, self.lse, self.t, self.rows = shifted, lse, t, rows
        self.shape, self.reduction = logits.shape, reduction
        self.count = int(self.valid.sum()) if reduction == "mean" else 1
        return _reduce(loss.reshape(logits.shape[:-1]), reduction, self.count)

    def backward(self, grad: Any) -> Any:
        xp = backend.get_array_module(grad)
        g = grad.reshape(-1) if self.reduction == "none" else grad / self.count
        p = xp.exp(self.shifted - self.lse[:, None])  # softmax, (M, C)
        p[self.rows, self.t] -= 1
        p *= (xp.where(self.valid, g, 0) if self.reduction == "none" else self.valid * g)[:, None]
        return p.reshape(self.shape)


def cross_entropy(logits: Tensor | Any, target: Any, reduction: str = "mean", ignore_index: int = -100,
                  ) -> Tensor:
    """Softmax cross-entropy between ``logits`` (..., C) and integer class ``target`` (...).

    ``reduction``: "none" gives one loss per row (shape of ``target``), "sum" their sum, "mean" their
    mean over the rows whose target is not ``ignore_index``.
    """
    _check_reduction("cross_entropy", reduction)
    logits = _tensor(logits)
    t = target.data if isinstance(target, Tensor) else target
    t = backend.asarray(t)
    if logits.ndim < 1:
        raise ValueError("cross_entropy(logits): expected shape (..., C), got a scalar")
    if tuple(t.shape) != logits.shape[:-1]:
        raise ValueError(f"cross_entropy(target): expected shape {logits.shape[:-1]} for logits "
                         f"{logits.shape}, got {tuple(t.shape)}")
    if t.dtype.kind not in "iu":
        raise TypeError(f"cross_entropy(target): expected integer class indices, got {t.dtype}")
    c = logits.shape[-1]
    bad = ((t < 0) | (t >= c)) & (t != ignore_index)
    if t.size and bool(bad.any()):
        raise ValueError(f"cross_entropy(target): class indices must be in [0, {c}) or {ignore_index}")
    return CrossEntropy.apply(logits, target=t, reduction=reduction, ignore_index=ignore_index)


class SmoothL1(Function):
    """Huber-style loss: 0.5 d^2 / beta where |d| < beta, else |d| - 0.5 beta, with d = input - target.

    backward: d/d input = d / beta where |d| < beta, else sign(d); d/d target is its negative.
    """

    def forward(self, a: Any, b: Any, beta: float = 1.0, reduction: str = "mean") -> Any:
        xp = backend.get_array_module(a)
        d = a - b
        ad = abs(d)
        self.small = ad < beta
        self.d, self.beta, self.reduction, self.shape = d, beta, reduction, a.shape
        if beta > 0:
            loss = xp.where(self.small, 0.5 * d * d / beta, ad - 0.5 * beta)
        else:
            loss = ad
        return _reduce(loss, reduction, int(d.size))

    def backward(self, grad: Any) -> tuple[Any, Any]:
        xp = backend.get_array_module(grad)
        d = self.d
        slope = xp.where(self.small, d / self.beta, xp.sign(d)) if self.beta > 0 else xp.sign(d)
        if self.reduction == "mean":
            grad = grad / max(int(d.size), 1)
        g = slope * grad
        return g, -g


def smooth_l1_loss(input: Tensor | Any, target: Tensor | Any, beta: float = 1.0, reduction: str = "mean",
                   ) -> Tensor:
    """Smooth L1 loss between ``input`` and ``target`` of the same shape (SSD's localization loss).

    ``beta`` (>= 0) is where the quadratic part meets the linear part (0 gives plain L1);
    ``reduction`` is "none", "sum" or "mean" (over all elements).
    """
    _check_reduction("smooth_l1_loss", reduction)
    input, target = _tensor(input), _tensor(target)
    if input.shape != target.shape:
        raise ValueError(f"smooth_l1_loss: input {input.shape} and target {target.shape} "
                         "must have the same shape")
    if beta < 0:
        raise ValueError(f"smooth_l1_loss(beta): expected >= 0, got {beta}")
    return SmoothL1.apply(input, target, beta=float(beta), reduction=reduction)
