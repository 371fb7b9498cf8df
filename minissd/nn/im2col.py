"""im2col / col2im: how a convolution becomes one matrix product, and the workspace it needs.

A convolution with an (O, C, kh, kw) kernel slides a C x kh x kw window over the input. *im2col*
("image to columns") copies, for every output position, the window it sees into one column of a matrix;
the convolution is then a single matrix product ``weight.reshape(O, C*kh*kw) @ columns``, which BLAS
(or cuBLAS) computes at close to the machine's peak speed.

Layout. For a chunk of ``nb`` images the column buffer has shape ``(nb, C, kh, kw, Ho, Wo)``, which is
``(nb, K, L)`` with ``K = C*kh*kw`` (one row per weight) and ``L = Ho*Wo`` (one column per output
pixel). This keeps every image's product ``(O, K) @ (K, L) -> (O, L)`` already in NCHW order, so no
layout transpose of the output is needed, and the copy for one kernel offset ``(i, j)``,

    cols[:, :, i, j, ho, wo] = x[:, :, ho*sh + i*dh - ph, wo*sw + j*dw - pw],

is a plain strided slice of ``x`` (rows of ``Wo`` elements), the same code on NumPy and CuPy. The loop
runs over the kh*kw offsets (9 for a 3x3 kernel), never over pixels.

Padding without a padded copy. Instead of building a zero-padded copy of the input, each offset copies
only the output positions whose input pixel lies inside the image and writes zeros at the others
(:func:`valid_range` computes that range). The backward (*col2im*) adds each offset's slice of the
column gradient into the input gradient the same way; overlapping windows simply add up, which is what
the chain rule asks for. No ``np.add.at`` (slow, and spelled differently on CuPy) is needed.

Bounded memory. The column matrix is ``kh*kw`` times larger than the input (for conv1_2 of SSD300 it is
207 MB per image), so the batch is processed in chunks whose buffer stays under
:func:`get_buffer_bytes` (256 MB by default); an image whose columns alone exceed it is processed in
bands of output rows. Nothing is cached for the backward pass: it recomputes the columns from the input,
which the layer keeps anyway. On NumPy the buffer is reused between calls (a fresh 200 MB array costs
page faults that make the first use 2-3x slower); :func:`release_workspace` frees it.

Cache blocks and threads. The offset loop reads the input kh*kw times (col2im updates the input
gradient kh*kw times). On a whole batch every pass would stream hundreds of MB through memory, so on
the CPU the loop runs on cache-sized pieces (one image, a few channels: :func:`for_blocks`) and the
later passes hit the cache. NumPy releases the GIL while it copies, so the pieces can be shared out
over a small thread pool (:func:`set_num_threads`; off by default, measured to be slower on 2 cores
where BLAS threads compete for the same cores); the matrix products already use all cores via BLAS.
On CuPy the whole arrays go to each operation (one GPU kernel each) and no threads are used.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy

IntPair = int | Sequence[int]

_DEFAULT_BUFFER_BYTES = 256 * 2**20
_buffer_bytes = _DEFAULT_BUFFER_BYTES
# below this many elements a copy is faster than handing it to threads
_MIN_PARALLEL_ELEMENTS = 1 << 18
# the piece of an image that loops over kernel offsets work on at a time: about half an L2 cache
_BLOCK_BYTES = 256 * 1024


def _default_threads() -> int:
    """``MINISSD_NUM_THREADS``, else 1.

    Measured on a 2-core machine (docs/benchmarks.md): splitting the copies over 2 threads made each
    copy up to 1.7x faster on its own, yet a whole SSD300 training step 12% slower, because BLAS's
    worker threads keep spinning between matrix products and the copy threads then fight them for
    the cores. Cache blocking already makes one thread fast; try more on a machine with many cores.
    """
    env = os.environ.get("MINISSD_NUM_THREADS", "").strip()
    return max(1, int(env)) if env else 1


_num_threads = _default_threads()
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()
_local = threading.local()


# --------------------------------------------------------------------------- configuration
def set_buffer_bytes(n: int) -> None:
    """Limit the im2col column buffer to ``n`` bytes (default 256 MB); larger batches run in chunks."""
    global _buffer_bytes
    if not isinstance(n, (int, numpy.integer)) or n < 1:
        raise ValueError(f"set_buffer_bytes(n): expected a positive number of bytes, got {n!r}")
    _buffer_bytes = int(n)
    release_workspace()


def get_buffer_bytes() -> int:
    """The current limit of the im2col column buffer in bytes."""
    return _buffer_bytes


def set_num_threads(n: int) -> None:
    """Use ``n`` threads for the im2col/col2im/pooling copies on NumPy (1 turns threading off).

    The default is 1, or ``MINISSD_NUM_THREADS`` (see :func:`_default_threads` for why).
    BLAS has its own setting (``OPENBLAS_NUM_THREADS``, read when NumPy is imported).
    """
    global _num_threads, _pool
    if not isinstance(n, (int, numpy.integer)) or n < 1:
        raise ValueError(f"set_num_threads(n): expected a positive integer, got {n!r}")
    with _pool_lock:
        _num_threads = int(n)
        if _pool is not None:
            _pool.shutdown(wait=True)
            _pool = None


def get_num_threads() -> int:
    """The number of threads used for copies on NumPy."""
    return _num_threads


def release_workspace() -> None:
    """Free the cached column buffer of the calling thread (it is re-created on the next convolution)."""
    _local.buffer = None


def workspace(xp: Any, shape: tuple[int, ...], dtype: Any) -> Any:
    """A scratch array of ``shape`` whose contents are undefined; reused between calls on NumPy.

    The array is only valid until the next call from the same thread, so callers must never return it
    or keep it. On CuPy the memory pool already recycles device memory, so a fresh array is returned.
    """
    if xp is not numpy:
        return xp.empty(shape, dtype=dtype)
    size = 1
    for s in shape:
        size *= int(s)
    buf = getattr(_local, "buffer", None)
    if buf is None or buf.dtype != numpy.dtype(dtype) or buf.size < size:
        _local.buffer = None  # drop the old one first so two never coexist
        buf = numpy.empty(size, dtype=dtype)
        _local.buffer = buf
    return buf[:size].reshape(shape)


def _get_pool() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=_num_threads, thread_name_prefix="minissd-copy")
        return _pool


# --------------------------------------------------------------------------- shapes
def pair(value: IntPair, name: str, minimum: int = 0) -> tuple[int, int]:
    """``3 -> (3, 3)``, ``(3, 1) -> (3, 1)``; raises a ValueError naming ``name`` for anything else."""
    if isinstance(value, (int, numpy.integer)) and not isinstance(value, bool):
        out = (int(value), int(value))
    elif (
        isinstance(value, (tuple, list))
        and len(value) == 2
        and all(isinstance(v, (int, numpy.integer)) and not isinstance(v, bool) for v in value)
    ):
        out = (int(value[0]), int(value[1]))
    else:
        raise ValueError(f"{name}: expected an int or a pair of ints, got {value!r}")
    if min(out) < minimum:
        raise ValueError(f"{name}: expected values >= {minimum}, got {value!r}")
    return out


def conv_output_size(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    """Output length of a convolution along one axis: ``(size + 2p - d(k-1) - 1) // s + 1``."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def pool_output_size(size: int, kernel: int, stride: int, padding: int, ceil_mode: bool) -> int:
    """Output length of max pooling along one axis (PyTorch's rule).

    ``floor`` (or ``ceil`` with ``ceil_mode``) of ``(size + 2p - k) / s`` plus one; in ceil mode a last
    window that would start inside the right padding is dropped, so every window sees at least one
    real element. SSD's pool3 uses ceil mode to go from 75 to 38 (floor mode would give 37).
    """
    span = size + 2 * padding - kernel
    out = (-(-span // stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    return out


def valid_range(out_lo: int, out_hi: int, in_size: int, offset: int, stride: int) -> tuple[int, int]:
    """Output indices ``o`` in ``[out_lo, out_hi)`` whose input index ``o*stride + offset`` is in the image.

    ``offset`` is ``i*dilation - padding`` for kernel row (or column) ``i``. Returns ``(lo, hi)`` with
    ``lo <= hi``; the other outputs see padding.
    """
    lo = max(out_lo, -(offset // stride))  # smallest o with o*stride + offset >= 0
    hi = min(out_hi, (in_size - 1 - offset) // stride + 1)  # one past the largest o inside the image
    return lo, max(lo, hi)


def input_slice(lo: int, hi: int, offset: int, stride: int) -> slice:
    """The input indices ``o*stride + offset`` for ``o`` in ``[lo, hi)`` as a slice (``hi > lo``)."""
    return slice(lo * stride + offset, (hi - 1) * stride + offset + 1, stride)


# --------------------------------------------------------------------------- chunk planning
def plan_chunks(n: int, rows: int, bytes_per_row: int) -> Iterator[tuple[int, int, int, int]]:
    """Split ``n`` images of ``rows`` output rows into pieces whose column buffer fits the limit.

    Yields ``(n0, n1, h0, h1)``: images ``n0:n1``, output rows ``h0:h1``. Whole images are grouped while
    they fit; an image that does not fit alone is cut into bands of rows (at least one row).
    """
    per_image = rows * bytes_per_row
    limit = _buffer_bytes
    if per_image <= limit:
        step = max(1, min(n, limit // max(per_image, 1)))
        for n0 in range(0, n, step):
            yield n0, min(n, n0 + step), 0, rows
    else:
        band = max(1, limit // max(bytes_per_row, 1))
        for n0 in range(n):
            for h0 in range(0, rows, band):
                yield n0, n0 + 1, h0, min(rows, h0 + band)


# --------------------------------------------------------------------------- im2col / col2im
def _offsets(kernel: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int],
             dilation: tuple[int, int], in_hw: tuple[int, int], rows: tuple[int, int], wo: int,
             ) -> Iterator[tuple[int, int, int, int, int, int, slice, slice]]:
    """For each kernel offset (i, j): the valid output ranges and the input slices they read.

    Yields ``(i, j, ylo, yhi, xlo, xhi, ys, xs)`` with ``ylo..yhi`` relative to the first row of the
    band ``rows``; ``ys``/``xs`` are None when the range is empty.
    """
    (kh, kw), (sh, sw), (ph, pw), (dh, dw), (h, w) = kernel, stride, padding, dilation, in_hw
    h0, h1 = rows
    for i in range(kh):
        oy = i * dh - ph
        ylo, yhi = valid_range(h0, h1, h, oy, sh)
        for j in range(kw):
            ox = j * dw - pw
            xlo, xhi = valid_range(0, wo, w, ox, sw)
            if yhi > ylo and xhi > xlo:
                ys, xs = input_slice(ylo, yhi, oy, sh), input_slice(xlo, xhi, ox, sw)
            else:
                ys = xs = None
            yield i, j, ylo - h0, yhi - h0, xlo, xhi, ys, xs


def im2col(x: Any, cols: Any, kernel: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int],
           dilation: tuple[int, int], rows: tuple[int, int] | None = None) -> Any:
    """Fill ``cols`` (nb, C, kh, kw, hb, Wo) with the windows of ``x`` (nb, C, H, W); returns ``cols``.

    ``rows = (h0, h1)`` selects a band of output rows (all rows by default); ``hb = h1 - h0``.
    Positions that fall into the padding are set to zero.
    """
    xp = _module_of(x)
    wo = cols.shape[-1]
    if rows is None:
        rows = (0, cols.shape[-2])
    in_hw = (x.shape[2], x.shape[3])
    offsets = list(_offsets(kernel, stride, padding, dilation, in_hw, rows, wo))

    def fill(xc: Any, cc: Any) -> None:
        """For each offset (i, j): cc[:, :, i, j] = the strided slice of xc it sees, 0 where it sees padding."""
        # BEGIN SOLUTION conv2d
        for i, j, ylo, yhi, xlo, xhi, ys, xs in offsets:
            dst = cc[:, :, i, j]  # (nb, c, hb, Wo)
            if ys is None:
                dst[...] = 0
                continue
            dst[:, :, ylo:yhi, xlo:xhi] = xc[:, :, ys, xs]
            # zero only the border that reads padding (empty slices cost nothing)
            dst[:, :, :ylo] = 0
            dst[:, :, yhi:] = 0
            dst[:, :, ylo:yhi, :xlo] = 0
            dst[:, :, ylo:yhi, xhi:] = 0
        # END SOLUTION

    _split_for_copy(xp, fill, x, cols)
    return cols


def col2im(cols: Any, dx: Any, kernel: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int],
           dilation: tuple[int, int], rows: tuple[int, int] | None = None) -> Any:
    """Add the column gradient ``cols`` (nb, C, kh, kw, hb, Wo) into ``dx`` (nb, C, H, W); returns ``dx``.

    The adjoint of :func:`im2col`: every column entry goes back to the input pixel it was copied from;
    entries that came from padding are dropped. ``dx`` must be initialised (zeros) by the caller, so
    that bands of rows can accumulate into it.
    """
    xp = _module_of(dx)
    wo = cols.shape[-1]
    if rows is None:
        rows = (0, cols.shape[-2])
    in_hw = (dx.shape[2], dx.shape[3])
    offsets = [o for o in _offsets(kernel, stride, padding, dilation, in_hw, rows, wo) if o[6] is not None]

    def add(cc: Any, dc: Any) -> None:
        """For each offset (i, j): add cc[:, :, i, j] (its valid part) into the pixels of dc it came from."""
        # BEGIN SOLUTION conv2d
        for i, j, ylo, yhi, xlo, xhi, ys, xs in offsets:
            dc[:, :, ys, xs] += cc[:, :, i, j, ylo:yhi, xlo:xhi]
        # END SOLUTION

    _split_for_copy(xp, add, cols, dx)
    return dx


def for_blocks(xp: Any, fn: Callable[..., None], arrays: Sequence[Any], key: int = 0) -> None:
    """Call ``fn`` on cache-sized pieces of ``arrays`` (all shaped (N, C, ...)), spread over threads.

    A loop over kernel offsets reads (or updates) the same input once per offset. Done on a whole
    batch at once, every pass streams hundreds of MB through memory; done piece by piece (one image,
    a few channels, about :data:`_BLOCK_BYTES` of ``arrays[key]``), the later passes find the piece in
    the CPU cache. ``fn`` must only write inside its pieces. On CuPy ``fn`` gets the whole arrays
    (one GPU kernel per operation is what is fast there).
    """
    n, c = arrays[0].shape[:2]
    if xp is not numpy:
        fn(*arrays)
        return
    ref = arrays[key]
    per_channel = max(1, int(ref[:1, :1].nbytes))
    cb = max(1, min(c, _BLOCK_BYTES // per_channel))
    pieces = [(i, c0, min(c, c0 + cb)) for i in range(n) for c0 in range(0, c, cb)]

    def run(group: Sequence[tuple[int, int, int]]) -> None:
        for i, c0, c1 in group:
            fn(*(a[i:i + 1, c0:c1] for a in arrays))

    parts = min(_num_threads, len(pieces))
    work = sum(int(a.size) for a in arrays)
    if parts < 2 or work < _MIN_PARALLEL_ELEMENTS:
        run(pieces)
        return
    bounds = [len(pieces) * k // parts for k in range(parts + 1)]
    pool = _get_pool()
    futures = [pool.submit(run, pieces[bounds[k]:bounds[k + 1]]) for k in range(1, parts)]
    run(pieces[bounds[0]:bounds[1]])  # the calling thread takes the first group
    for f in futures:
        f.result()


def _split_for_copy(xp: Any, fn: Callable[[Any, Any], None], a: Any, b: Any) -> None:
    """Run ``fn(a, b)`` on cache-sized (image, channel) blocks, over threads; blocks sized by the image."""
    image = b if b.ndim == 4 else a  # the (N, C, H, W) side: read (im2col) or updated (col2im) per offset
    for_blocks(xp, fn, (a, b), key=0 if image is a else 1)


def _module_of(a: Any) -> Any:
    if isinstance(a, numpy.ndarray):
        return numpy
    from .. import backend  # noqa: PLC0415 - avoid a cycle at import time

    return backend.get_array_module(a)
