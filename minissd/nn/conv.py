"""Convolution as one matrix product: the textbook im2col version first, then the fast path beside it.

A convolution with an (O, C, kh, kw) kernel slides a C x kh x kw window over the input. *im2col*
("image to columns") copies, for every output pixel, the window it sees into one column of a matrix;
the convolution is then a single matrix product ``weight.reshape(O, C*kh*kw) @ columns``, which BLAS
(or cuBLAS) computes at close to the machine's peak speed. The backward pass is two more products and
*col2im*, the adjoint of im2col: every column entry is added back onto the pixel it was copied from.

Part 1 (read it first) is that idea in about forty lines: :func:`im2col`, :func:`col2im` and
:class:`TextbookConv2d` (pad, im2col, one matrix product, reshape). Part 2, :class:`FastConv2d`, computes
the same thing with bounded memory and fewer passes over memory: cache-sized pieces of images, a reused
column buffer, the output side (windows of the output gradient instead of the input) for the backward
pass of layers with no more output than input channels and for both passes of narrow layers (SSD's
heads), no second im2col for the weight gradient of a 1x1 layer, and the pieces shared out over the
CPU's cores. Every one of its paths still calls :func:`im2col` or :func:`col2im` for the window copies,
so the two functions are the whole of the idea. The tests check that both parts agree on every shape
SSD uses.

Which one runs: :func:`conv2d` uses the fast path, unless ``MINISSD_CONV=textbook`` is set in the
environment or the code runs under ``with use_textbook():`` (``use_textbook(True)`` alone switches it
on until ``use_textbook(False)``).

Layout: the columns of ``nb`` images are one array ``(nb, C, kh, kw, Ho, Wo)``, which is ``(nb, K, L)``
with ``K = C*kh*kw`` (one row per weight) and ``L = Ho*Wo`` (one column per output pixel) without a copy.
Every image's product ``(O, K) @ (K, L) -> (O, L)`` is then already in NCHW order, and the copy for one
kernel offset ``(i, j)`` is one strided slice (the loops run over the kh*kw offsets, never over pixels).

The layer (the Module holding ``weight`` and ``bias``) is :class:`minissd.nn.layers.Conv2d`; this file
holds the autograd Functions and :func:`conv2d`.
"""

from __future__ import annotations

import os
from typing import Any

import numpy

from .. import backend
from ..autograd import Function, Tensor
from ..sizes import conv_output_size
from .workspace import (
    IntPair,
    for_blocks,
    for_images,
    get_buffer_bytes,
    get_num_threads,
    image_threads,
    pair,
    pieces_for,
    release_workspace,
    scratch,
    set_buffer_bytes,
    set_num_threads,
    workspace,
)

__all__ = [
    "FastConv2d",
    "TextbookConv2d",
    "col2im",
    "conv2d",
    "conv2d_output_shape",
    "get_buffer_bytes",
    "get_num_threads",
    "im2col",
    "release_workspace",
    "set_buffer_bytes",
    "set_num_threads",
    "textbook_enabled",
    "use_textbook",
]

Pair = tuple[int, int]


# =========================================================================== part 1: the textbook
def pad(x: Any, padding: Pair) -> Any:
    """``x`` (N, C, H, W) with ``ph`` rows of zeros above and below, ``pw`` columns left and right."""
    ph, pw = padding
    if ph == 0 and pw == 0:
        return x
    n, c, h, w = x.shape
    xpad = backend.get_array_module(x).zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=x.dtype)
    xpad[:, :, ph:ph + h, pw:pw + w] = x
    return xpad


def im2col(x: Any, kernel: IntPair, stride: IntPair = 1, padding: IntPair = 0, dilation: IntPair = 1,
           out: Any = None) -> Any:
    """The window of every output pixel of ``x`` (N, C, H, W) as columns: an array (N, C, kh, kw, Ho, Wo).

    ``cols[n, c, i, j, ho, wo] = xpad[n, c, ho*sh + i*dh, wo*sw + j*dw]``, where ``xpad`` is ``x`` with
    ``padding`` zeros on each side. ``reshape(N, C*kh*kw, Ho*Wo)`` (free) gives one column per output
    pixel, in the order of ``weight.reshape(O, C*kh*kw)``. ``out``, when given, is the array of that
    shape to fill (its old contents do not matter).
    """
    (kh, kw), (sh, sw), (dh, dw) = pair(kernel, "kernel", 1), pair(stride, "stride", 1), pair(dilation, "dilation", 1)
    xpad = pad(x, pair(padding, "padding"))
    n, c, hp, wp = xpad.shape
    ho, wo = conv_output_size(hp, kh, sh, 0, dh), conv_output_size(wp, kw, sw, 0, dw)
    cols = backend.get_array_module(x).empty((n, c, kh, kw, ho, wo), dtype=x.dtype) if out is None else out
    # BEGIN SOLUTION conv2d
    for i in range(kh):
        rows = slice(i * dh, i * dh + sh * (ho - 1) + 1, sh)  # the padded rows tap i reads, one per output row
        for j in range(kw):
            columns = slice(j * dw, j * dw + sw * (wo - 1) + 1, sw)
            cols[:, :, i, j] = xpad[:, :, rows, columns]
    # END SOLUTION
    return cols


def col2im(cols: Any, x_shape: tuple[int, ...], stride: IntPair = 1, padding: IntPair = 0,
           dilation: IntPair = 1, out: Any = None) -> Any:
    """The adjoint of :func:`im2col`: add each entry of ``cols`` (N, C, kh, kw, Ho, Wo) onto its pixel.

    Returns the gradient (N, C, H, W) for ``x_shape`` = (N, C, H, W): pixels seen by several windows
    receive the sum, entries that were copied from the padding are dropped. ``out``, when given, is the
    padded accumulator (N, C, H + 2ph, W + 2pw) to add into (zeros otherwise).
    """
    (sh, sw), (ph, pw), (dh, dw) = pair(stride, "stride", 1), pair(padding, "padding"), pair(dilation, "dilation", 1)
    n, c, h, w = x_shape
    kh, kw, ho, wo = cols.shape[2:]
    xp = backend.get_array_module(cols)
    dxpad = xp.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=cols.dtype) if out is None else out
    # BEGIN SOLUTION conv2d
    for i in range(kh):
        rows = slice(i * dh, i * dh + sh * (ho - 1) + 1, sh)
        for j in range(kw):
            columns = slice(j * dw, j * dw + sw * (wo - 1) + 1, sw)
            # one pixel per window for tap (i, j), all distinct, so += adds each entry once
            dxpad[:, :, rows, columns] += cols[:, :, i, j]
    # END SOLUTION
    return dxpad[:, :, ph:ph + h, pw:pw + w]


class TextbookConv2d(Function):
    """conv2d by the book: pad, im2col, one matrix product, reshape; and back for the gradients.

    forward:  y[n] = W (O, K) @ cols[n] (K, L) + b   with K = C*kh*kw, L = Ho*Wo
    backward: dW = sum_n dy[n] @ cols[n].T;  db = dy summed over N, Ho, Wo;  dx = col2im(W.T @ dy[n])
    The columns are kept for the backward pass (kh*kw times the input's memory: fine for a textbook).
    """

    def forward(self, x: Any, w: Any, b: Any = None, stride: Pair = (1, 1), padding: Pair = (0, 0),
                dilation: Pair = (1, 1)) -> Any:
        n, (o, c, kh, kw) = x.shape[0], w.shape
        cols = im2col(x, (kh, kw), stride, padding, dilation)  # (N, C, kh, kw, Ho, Wo)
        ho, wo = cols.shape[-2:]
        self.cols = cols.reshape(n, c * kh * kw, ho * wo)
        y = w.reshape(o, c * kh * kw) @ self.cols  # (O, K) @ (N, K, L) -> (N, O, L)
        if b is not None:
            y = y + b.reshape(1, o, 1)
        self.w, self.x_shape, self.has_bias, self.geom = w, x.shape, b is not None, (stride, padding, dilation)
        return y.reshape(n, o, ho, wo)

    def backward(self, grad: Any) -> tuple[Any, ...]:
        n, o, ho, wo = grad.shape
        _, c, kh, kw = self.w.shape
        g = grad.reshape(n, o, ho * wo)
        dw = (g @ self.cols.transpose(0, 2, 1)).sum(axis=0).reshape(self.w.shape)
        dcols = self.w.reshape(o, c * kh * kw).T @ g  # (K, O) @ (N, O, L) -> (N, K, L)
        dx = col2im(dcols.reshape(n, c, kh, kw, ho, wo), self.x_shape, *self.geom)
        return (dx, dw, g.sum(axis=(0, 2))) if self.has_bias else (dx, dw)


# =========================================================================== part 2: the fast path
def _band_rows(rows: Pair, kernel: Pair, stride: int, dilation: int) -> Pair:
    """Padded input rows ``[r0, r1)`` that the output rows ``rows = (h0, h1)`` read."""
    h0, h1 = rows
    return h0 * stride, (h1 - 1) * stride + (kernel - 1) * dilation + 1


def _inside(r0: int, r1: int, ph: int, h: int) -> Pair:
    """Of the padded rows ``[r0, r1)``, the input rows ``[lo, hi)`` that lie inside the image."""
    lo = min(max(r0 - ph, 0), h)
    return lo, max(lo, min(r1 - ph, h))


def _padded_band(x: Any, padding: Pair, r0: int, r1: int) -> Any:
    """Rows ``r0:r1`` of ``x`` (nb, C, H, W) zero-padded by ``padding``: a view when they need no padding."""
    (ph, pw), (n, c, h, w) = padding, x.shape
    lo, hi = _inside(r0, r1, ph, h)
    if pw == 0 and lo == r0 - ph and hi == r1 - ph:
        return x[:, :, lo:hi]
    band = scratch(backend.get_array_module(x), (n, c, r1 - r0, w + 2 * pw), x.dtype)
    top, bottom = lo - (r0 - ph), lo - (r0 - ph) + hi - lo  # the band rows that hold image rows
    band[:, :, :top] = 0
    band[:, :, bottom:] = 0
    band[:, :, top:bottom, :pw] = 0
    band[:, :, top:bottom, pw + w:] = 0
    band[:, :, top:bottom, pw:pw + w] = x[:, :, lo:hi]
    return band


def _im2col_blocks(x: Any, cols: Any, stride: Pair, padding: Pair, dilation: Pair, rows: Pair) -> None:
    """:func:`im2col` of ``x`` (nb, C, H, W) for output rows ``rows`` into ``cols`` (nb, C, kh, kw, hb, Wo).

    Works on cache-sized blocks (one image, a few channels), each padded on its own.
    """
    kernel = cols.shape[2:4]
    r0, r1 = _band_rows(rows, kernel[0], stride[0], dilation[0])

    def fill(xc: Any, cc: Any) -> None:
        im2col(_padded_band(xc, padding, r0, r1), kernel, stride, 0, dilation, out=cc)

    for_blocks(backend.get_array_module(x), fill, (x, cols), key=0)


def _col2im_blocks(cols: Any, dx: Any, stride: Pair, padding: Pair, dilation: Pair, rows: Pair) -> None:
    """Add :func:`col2im` of ``cols`` (nb, C, kh, kw, hb, Wo), output rows ``rows``, into ``dx`` (nb, C, H, W)."""
    kh = cols.shape[2]
    (ph, pw), (h, w) = padding, dx.shape[2:]
    r0, r1 = _band_rows(rows, kh, stride[0], dilation[0])
    lo, hi = _inside(r0, r1, ph, h)
    xp = backend.get_array_module(dx)

    def add(cc: Any, dc: Any) -> None:
        nb, c = dc.shape[:2]
        if pw == 0 and lo == r0 - ph and hi == r1 - ph:  # no padding in this band: add in place
            col2im(cc, (nb, c, r1 - r0, w), stride, 0, dilation, out=dc[:, :, lo:hi])
            return
        band = scratch(xp, (nb, c, r1 - r0, w + 2 * pw), dc.dtype)
        band.fill(0)
        col2im(cc, band.shape, stride, 0, dilation, out=band)
        top = lo - (r0 - ph)
        dc[:, :, lo:hi] += band[:, :, top:top + hi - lo, pw:pw + w]

    for_blocks(xp, add, (cols, dx), key=1)


def _matmul_each(xp: Any, a: Any, b: Any, out: Any, bias: Any = None) -> None:
    """``out[i] = a @ b[i] (+ bias[:, None])`` for each i: one BLAS call per image.

    (NumPy's batched ``matmul`` with a broadcast ``a`` may not call BLAS at all, and was 3x slower
    than this loop; CuPy gets one batched call.) The bias is added to each image right after its
    product, while that image's output is still in the cache.
    """
    if xp is not numpy:
        xp.matmul(a, b, out=out)
        if bias is not None:
            out += bias.reshape(1, -1, 1)
        return
    for i in range(b.shape[0]):
        xp.matmul(a, b[i], out=out[i])
        if bias is not None:
            out[i] += bias[:, None]


def _weight_grad_each(g: Any, cols: Any, dw: Any) -> Any:
    """``dw += g[i] @ cols[i].T`` summed over i, one product per image, with BLAS on one thread; returns dw.

    The output (O, K) is small and the inner dimension (Ho*Wo, up to 90,000) long: split over two
    threads, each thread still streams the whole of ``g`` and the threads wait at barriers, which
    measured slower than one thread on 2 cores (docs/benchmarks.md). Inside :func:`for_images` BLAS is
    on one thread already. No-op limit on CuPy.
    """
    xp = backend.get_array_module(g)
    if xp is not numpy:
        dw += xp.matmul(g, cols.transpose(0, 2, 1)).sum(axis=0)
        return dw
    if image_threads(xp) == 1:  # in a for_images worker, or one thread in all
        for i in range(g.shape[0]):
            dw += g[i] @ cols[i].T
        return dw
    with backend.blas_threads(1):
        for i in range(g.shape[0]):
            dw += g[i] @ cols[i].T
    return dw


def _add_partial_sums(parts: list[Any]) -> Any:
    """The sum of the pieces' partial weight gradients (the first one is reused as the total)."""
    total = parts[0]
    for p in parts[1:]:
        total += p
    return total


class FastConv2d(Function):
    """The same convolution as :class:`TextbookConv2d`, with bounded memory and fewer memory passes.

    * Columns path (every layer but the ones below): per piece of images (:func:`pieces_for`) the
      columns go into a reused buffer, ``W (O, K) @ cols (K, L)`` per image. Only ``x`` (held by the
      graph anyway) and ``w`` are kept; the backward pass recomputes the columns piece by piece, and the
      same buffer then receives the column gradient ``W.T @ dy`` for col2im.
    * 1x1 layers with stride 1 and no padding: the input already is the column matrix, so the backward
      pass uses it directly (dW = dy @ x.T, dx = W.T @ dy) instead of a second im2col and a col2im.
    * Output side (stride 1, no more output than input channels): the backward pass copies windows of
      the output gradient instead of the input (one im2col, no col2im), see :meth:`_narrow`; narrow
      layers (far fewer output channels: SSD's loc/conf heads) run their forward pass that way too.
    * Pieces of whole images are shared out over the user's threads (:func:`for_images`).
    """

    def forward(self, x: Any, w: Any, b: Any = None, stride: Pair = (1, 1), padding: Pair = (0, 0),
                dilation: Pair = (1, 1)) -> Any:
        xp = backend.get_array_module(x)
        n, c, h, wd = x.shape
        o, _, kh, kw = w.shape
        ho = conv_output_size(h, kh, stride[0], padding[0], dilation[0])
        wo = conv_output_size(wd, kw, stride[1], padding[1], dilation[1])
        self.x, self.w, self.has_bias = x, w, b is not None
        self.geom = ((kh, kw), stride, padding, dilation)
        self.out_hw = (ho, wo)
        if self._narrow(forward=True):
            y = self._forward_narrow()
            if b is not None:
                y += b.reshape(1, o, 1, 1)
            return y
        w2 = w.reshape(o, c * kh * kw)
        y = xp.empty((n, o, ho, wo), dtype=x.dtype)

        def piece(n0: int, n1: int, h0: int, h1: int) -> None:
            cols = self._columns(n0, n1, h0, h1)  # (nb, K, hb*Wo)
            if h1 - h0 == ho:
                _matmul_each(xp, w2, cols, y[n0:n1].reshape(n1 - n0, o, ho * wo), b)
            else:  # a band of rows is not contiguous in y: write through a temporary
                band = xp.empty((n1 - n0, o, (h1 - h0) * wo), dtype=y.dtype)
                _matmul_each(xp, w2, cols, band, b)
                y[n0:n1, :, h0:h1] = band.reshape(n1 - n0, o, h1 - h0, wo)

        for_images(xp, piece, self._chunks())
        return y

    def backward(self, grad: Any) -> tuple[Any, ...]:
        # skip the work for inputs that need no gradient (the image; a frozen backbone's weights)
        need_dx, need_dw = self.parents[0].requires_grad, self.parents[1].requires_grad
        db = grad.sum(axis=(0, 2, 3)) if self.has_bias and self.parents[2].requires_grad else None
        if self._narrow(forward=False):
            dx, dw = self._backward_narrow(grad, need_dx, need_dw)
        elif self._pointwise():
            dx, dw = self._backward_pointwise(grad, need_dx, need_dw)
        else:
            dx, dw = self._backward_columns(grad, need_dx, need_dw)
        return (dx, dw, db) if self.has_bias else (dx, dw)

    def _backward_columns(self, grad: Any, need_dx: bool, need_dw: bool) -> tuple[Any, Any]:
        xp = backend.get_array_module(grad)
        x, w = self.x, self.w
        n, c = x.shape[:2]
        o, _, kh, kw = w.shape
        ho, wo = self.out_hw
        k = c * kh * kw
        w2 = w.reshape(o, k)
        dx = xp.zeros(x.shape, dtype=x.dtype) if need_dx else None
        _, stride, padding, dilation = self.geom

        def piece(n0: int, n1: int, h0: int, h1: int) -> Any:
            nb, hb = n1 - n0, h1 - h0
            if hb == ho:
                g = grad[n0:n1].reshape(nb, o, ho * wo)
            else:
                g = xp.ascontiguousarray(grad[n0:n1, :, h0:h1]).reshape(nb, o, hb * wo)
            cols = dw = None
            if need_dw:
                cols = self._columns(n0, n1, h0, h1)  # recomputed, (nb, K, hb*Wo)
                dw = _weight_grad_each(g, cols, xp.zeros((o, k), dtype=w.dtype))
            if need_dx:
                if cols is None:
                    cols = self._buffer(n0, n1, h0, h1).reshape(nb, k, hb * wo)
                # the columns are no longer needed: their buffer receives the column gradient
                _matmul_each(xp, w2.T, g, cols)
                cols6 = cols.reshape(nb, c, kh, kw, hb, wo)
                _col2im_blocks(cols6, dx[n0:n1], stride, padding, dilation, (h0, h1))
            return dw

        parts = for_images(xp, piece, self._chunks())
        return dx, (_add_partial_sums(parts).reshape(w.shape) if need_dw else None)

    def _pointwise(self) -> bool:
        kernel, stride, padding, _ = self.geom
        return kernel == (1, 1) and stride == (1, 1) and padding == (0, 0)

    def _backward_pointwise(self, grad: Any, need_dx: bool, need_dw: bool) -> tuple[Any, Any]:
        """A 1x1 kernel with stride 1 and no padding: im2col(x) is x itself, col2im the identity."""
        xp = backend.get_array_module(grad)
        n, c, h, wd = self.x.shape
        o = self.w.shape[0]
        g3 = grad.reshape(n, o, h * wd)
        x3 = self.x.reshape(n, c, h * wd)
        dx = xp.empty(self.x.shape, dtype=self.x.dtype) if need_dx else None
        w2t = self.w.reshape(o, c).T

        def piece(n0: int, n1: int, h0: int, h1: int) -> Any:
            if need_dx:
                _matmul_each(xp, w2t, g3[n0:n1], dx[n0:n1].reshape(n1 - n0, c, h * wd))
            if need_dw:
                return _weight_grad_each(g3[n0:n1], x3[n0:n1], xp.zeros((o, c), dtype=self.w.dtype))
            return None

        parts = for_images(xp, piece, pieces_for(xp, n, 1, (o + c) * h * wd * self.x.dtype.itemsize))
        return dx, (_add_partial_sums(parts).reshape(self.w.shape) if need_dw else None)

    # ----------------------------------------------------------------- narrow layers (output side)
    def _transposed_padding(self) -> Pair:
        """The padding ``(k-1)*d - p`` per axis under which the output-side product is a col2im."""
        (kh, kw), _, (ph, pw), (dh, dw) = self.geom
        return (kh - 1) * dh - ph, (kw - 1) * dw - pw

    def _narrow(self, forward: bool) -> bool:
        """Whether the pass runs on the output side: stride 1, not 1x1, and its copies are the smaller.

        Then ``y = col2im(P)``: with P[n, o, i, j] = w[o, :, kh-1-i, kw-1-j] @ x[n] (every pixel, one
        product for all offsets), col2im with padding ``(k-1)*d - p`` adds the taps of each output
        pixel together (a convolution is a col2im of the products with the flipped kernel). The
        backward pass is the adjoint: dP = im2col(dy) with that padding, then two products, and needs
        neither an im2col of x nor a col2im. The backward pass takes this side when P (kh*kw*O*H*W)
        is no larger than the columns of x (kh*kw*C*Ho*Wo); the forward pass only when P is under
        half of them, because its col2im adds where the columns path only copies.
        """
        (kh, kw), stride, _, _ = self.geom
        n, c, h, w = self.x.shape
        o = self.w.shape[0]
        ho, wo = self.out_hw
        per_image = kh * kw * o * h * w * self.x.dtype.itemsize
        smaller = 2 * o * h * w < c * ho * wo if forward else o * h * w <= c * ho * wo
        # P is never cut into bands: one image's P must fit each thread's share of the buffer
        share = get_buffer_bytes() // image_threads(backend.get_array_module(self.x))
        return (stride == (1, 1) and min(self._transposed_padding()) >= 0 and smaller
                and per_image <= share and not self._pointwise())

    def _flipped_weight(self) -> Any:
        """W as (O*kh*kw, C), row (o, i, j) = w[o, :, kh-1-i, kw-1-j]."""
        o, c, kh, kw = self.w.shape
        return self.w[:, :, ::-1, ::-1].transpose(0, 2, 3, 1).reshape(o * kh * kw, c)

    def _narrow_chunks(self) -> Any:
        """Pieces of whole images whose products P (kh*kw*O*H*W each) fit the buffer."""
        (kh, kw) = self.geom[0]
        n, _, h, w = self.x.shape
        o = self.w.shape[0]
        per_image = kh * kw * o * h * w * self.x.dtype.itemsize
        return pieces_for(backend.get_array_module(self.x), n, 1, per_image)

    def _forward_narrow(self) -> Any:
        xp = backend.get_array_module(self.x)
        (kh, kw), _, _, dilation = self.geom
        n, c, h, w = self.x.shape
        o = self.w.shape[0]
        wk = self._flipped_weight()
        y = xp.zeros((n, o, *self.out_hw), dtype=self.x.dtype)

        def piece(n0: int, n1: int, h0: int, h1: int) -> None:
            p = workspace(xp, (n1 - n0, o, kh, kw, h, w), self.x.dtype)
            _matmul_each(xp, wk, self.x[n0:n1].reshape(n1 - n0, c, h * w), p.reshape(n1 - n0, o * kh * kw, h * w))
            _col2im_blocks(p, y[n0:n1], (1, 1), self._transposed_padding(), dilation, (0, h))

        for_images(xp, piece, self._narrow_chunks())
        return y

    def _backward_narrow(self, grad: Any, need_dx: bool, need_dw: bool) -> tuple[Any, Any]:
        """dP = im2col(dy); dW (O*kh*kw, C) = sum_n dP @ x.T;  dx = W.T (C, O*kh*kw) @ dP."""
        xp = backend.get_array_module(grad)
        (kh, kw), _, _, dilation = self.geom
        n, c, h, w = self.x.shape
        o = self.w.shape[0]
        wkt = self._flipped_weight().T
        dx = xp.empty(self.x.shape, dtype=self.x.dtype) if need_dx else None

        def piece(n0: int, n1: int, h0: int, h1: int) -> Any:
            dp = workspace(xp, (n1 - n0, o, kh, kw, h, w), self.x.dtype)
            _im2col_blocks(grad[n0:n1], dp, (1, 1), self._transposed_padding(), dilation, (0, h))
            dp3 = dp.reshape(n1 - n0, o * kh * kw, h * w)
            dwk = None
            if need_dw:
                x3 = self.x[n0:n1].reshape(n1 - n0, c, h * w)
                dwk = _weight_grad_each(dp3, x3, xp.zeros((o * kh * kw, c), dtype=self.w.dtype))
            if need_dx:
                _matmul_each(xp, wkt, dp3, dx[n0:n1].reshape(n1 - n0, c, h * w))
            return dwk

        parts = for_images(xp, piece, self._narrow_chunks())
        if not need_dw:
            return dx, None
        dwk = _add_partial_sums(parts)
        return dx, dwk.reshape(o, kh, kw, c).transpose(0, 3, 1, 2)[:, :, ::-1, ::-1].copy()

    # ----------------------------------------------------------------- the columns buffer
    def _chunks(self) -> Any:
        c = self.x.shape[1]
        (kh, kw), _, _, _ = self.geom
        ho, wo = self.out_hw
        xp = backend.get_array_module(self.x)
        return pieces_for(xp, self.x.shape[0], ho, c * kh * kw * wo * self.x.dtype.itemsize)

    def _buffer(self, n0: int, n1: int, h0: int, h1: int) -> Any:
        """The shared workspace shaped (nb, C, kh, kw, hb, Wo) for images n0:n1, output rows h0:h1."""
        c = self.x.shape[1]
        kernel, wo = self.geom[0], self.out_hw[1]
        shape = (n1 - n0, c, kernel[0], kernel[1], h1 - h0, wo)
        return workspace(backend.get_array_module(self.x), shape, self.x.dtype)

    def _columns(self, n0: int, n1: int, h0: int, h1: int) -> Any:
        """im2col of images n0:n1, output rows h0:h1, in the shared workspace, as (nb, K, hb*Wo)."""
        _, stride, padding, dilation = self.geom
        cols = self._buffer(n0, n1, h0, h1)
        _im2col_blocks(self.x[n0:n1], cols, stride, padding, dilation, (h0, h1))
        nb, c, kh, kw, hb, wo = cols.shape
        return cols.reshape(nb, c * kh * kw, hb * wo)


# =========================================================================== choosing, and the entry point
def _textbook_from_environment() -> bool:
    value = os.environ.get("MINISSD_CONV", "").strip().lower()
    if value not in ("", "fast", "textbook"):
        raise ValueError(f"MINISSD_CONV: expected 'fast' or 'textbook', got {value!r}")
    return value == "textbook"


_textbook = _textbook_from_environment()


class use_textbook:  # noqa: N801 - used like a function, as no_grad is
    """Route every :func:`conv2d` through :class:`TextbookConv2d` (``enabled=True``) or the fast path.

    ``with use_textbook(): ...`` switches for the block and restores the previous choice afterwards;
    ``use_textbook(True)`` on its own switches until the next call. Not thread-local.
    """

    def __init__(self, enabled: bool = True) -> None:
        global _textbook
        self.previous = _textbook
        _textbook = bool(enabled)

    def __enter__(self) -> use_textbook:
        return self

    def __exit__(self, *exc: object) -> None:
        global _textbook
        _textbook = self.previous


def textbook_enabled() -> bool:
    """True when :func:`conv2d` runs the textbook version."""
    return _textbook


def conv2d_output_shape(in_hw: tuple[int, int], kernel_size: IntPair, stride: IntPair = 1,
                        padding: IntPair = 0, dilation: IntPair = 1) -> tuple[int, int]:
    """(Ho, Wo) of a convolution: ``(H + 2p - d(k-1) - 1) // s + 1`` along each axis."""
    k, s, p, d = (pair(kernel_size, "kernel_size", 1), pair(stride, "stride", 1),
                  pair(padding, "padding", 0), pair(dilation, "dilation", 1))
    return (conv_output_size(in_hw[0], k[0], s[0], p[0], d[0]),
            conv_output_size(in_hw[1], k[1], s[1], p[1], d[1]))


def _tensor(x: Any) -> Tensor:
    return x if isinstance(x, Tensor) else Tensor(x)


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
    fn = TextbookConv2d if _textbook else FastConv2d
    if bias is None:
        return fn.apply(x, weight, stride=s, padding=p, dilation=d)
    bias = _tensor(bias)
    if bias.shape != (weight.shape[0],):
        raise ValueError(f"conv2d(bias): expected shape ({weight.shape[0]},), got {bias.shape}")
    return fn.apply(x, weight, bias, stride=s, padding=p, dilation=d)
