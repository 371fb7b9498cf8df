"""The machinery the fast convolution and pooling share: a reused column buffer, chunks, cache blocks, threads.

None of this changes a result; it only decides how much memory a convolution holds and in which order
the copies run. The ideas themselves (im2col, col2im, max pooling) are in ``conv.py`` and ``pool.py``.

Bounded memory. The column matrix of im2col is ``kh*kw`` times larger than the input (for conv1_2 of
SSD300 it is 207 MB per image), so the batch is processed in chunks whose buffer stays under
:func:`get_buffer_bytes` (256 MB by default; :func:`plan_chunks`); an image whose columns alone exceed
it is processed in bands of output rows. On NumPy the buffer is reused between calls (a fresh 200 MB
array costs page faults that make the first use 2-3x slower; :func:`workspace`), and
:func:`release_workspace` frees it.

Pieces of images and threads. On the CPU a layer works through the batch in pieces of whole images
(:func:`pieces_for`): each piece's columns (about :data:`_PIECE_BYTES`) are still in the cache when
the matrix product reads them back. NumPy and BLAS release the GIL, and whole images are independent
work, so :func:`for_images` shares the pieces out over ``minissd.set_num_threads`` threads, each
running BLAS on one thread: at ssd_mini's 8 to 64 channels a single product is too small for BLAS to
split well over cores. A piece too large for its thread's share of the buffer becomes bands of rows,
which run one after the other with BLAS on all threads (SSD300's first layers at full resolution).

Cache blocks. A loop over kernel offsets reads the input kh*kw times (col2im updates the input gradient
kh*kw times), so it runs on blocks of about :data:`_BLOCK_BYTES` (one image, a few channels:
:func:`for_blocks`) and the later passes hit the cache. Those blocks can also be shared over a second,
internal knob (:func:`set_num_threads` here; off by default, measured slower on 2 cores) — never
inside a :func:`for_images` worker, whose siblings already keep the cores busy.

On CuPy the whole arrays go to each operation (one GPU kernel each) and no threads are used.
"""
from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy

from .. import backend

__all__ = [
    "IntPair",
    "for_blocks",
    "for_images",
    "get_buffer_bytes",
    "get_num_threads",
    "image_pieces",
    "image_threads",
    "pair",
    "pieces_for",
    "plan_chunks",
    "release_workspace",
    "scratch",
    "set_buffer_bytes",
    "set_num_threads",
    "workspace",
]

IntPair = int | Sequence[int]

_DEFAULT_BUFFER_BYTES = 256 * 2**20
_buffer_bytes = _DEFAULT_BUFFER_BYTES
# below this many elements a copy is faster than handing it to threads
_MIN_PARALLEL_ELEMENTS = 1 << 18
# the piece of an image that loops over kernel offsets work on at a time: about half an L2 cache
_BLOCK_BYTES = 256 * 1024
# the column buffer one image group fills before its products read it back: small enough to stay in the
# last-level cache between the copy and the product, big enough that per-call overheads do not show
_PIECE_BYTES = 8 * 2**20


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
_image_pool: ThreadPoolExecutor | None = None
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

    An internal knob for measuring: the default is 1, or ``MINISSD_NUM_THREADS`` (see
    :func:`_default_threads` for why). The setting users want is :func:`minissd.set_num_threads`,
    which sets the threads of BLAS (the matrix products) and of minissd's own loops together.
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
    """This module's copy-thread knob; the copies use at most ``minissd.get_num_threads()`` of them."""
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


def scratch(xp: Any, shape: tuple[int, ...], dtype: Any) -> Any:
    """A fresh array of ``shape`` with undefined contents, for a small per-block copy.

    Callers write every element they read (the tests replace this function with one that fills the
    array with NaN, so a forgotten zero shows up as NaN in the result).
    """
    return xp.empty(shape, dtype=dtype)


def _get_pool() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=_num_threads, thread_name_prefix="minissd-copy")
        return _pool


def _get_image_pool(workers: int) -> ThreadPoolExecutor:
    """The pool :func:`for_images` shares work out to (re-made when the user's thread count grows)."""
    global _image_pool
    with _pool_lock:
        if _image_pool is None or _image_pool._max_workers < workers:
            if _image_pool is not None:
                _image_pool.shutdown(wait=True)
            _image_pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="minissd-images")
        return _image_pool


def image_threads(xp: Any) -> int:
    """How many threads :func:`for_images` would use on ``xp``: the user's count on NumPy, 1 on CuPy."""
    if xp is not numpy or getattr(_local, "in_worker", False):
        return 1
    return backend.num_threads()


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


# --------------------------------------------------------------------------- chunk planning
def plan_chunks(n: int, rows: int, bytes_per_row: int, threads: int = 1,
                cache: bool = False) -> Iterator[tuple[int, int, int, int]]:
    """Split ``n`` images of ``rows`` output rows into pieces whose column buffer fits the limit.

    Yields ``(n0, n1, h0, h1)``: images ``n0:n1``, output rows ``h0:h1``. Whole images are grouped while
    they fit; an image that does not fit alone is cut into bands of rows (at least one row).

    ``threads`` > 1: each of that many threads holds one piece's buffer, so whole images are grouped
    under ``limit / threads``, and into at least ``threads`` pieces. ``cache`` (the CPU): groups stay
    under :data:`_PIECE_BYTES` (at least one image each), so that the copy and the product that reads
    it back meet in the cache. Without it (CuPy) pieces are as large as the limit allows: one large
    kernel is what a GPU is fast at.
    """
    per_image = rows * bytes_per_row
    limit = _buffer_bytes // threads
    if per_image <= limit:
        fit = min(limit // max(per_image, 1), -(-n // threads))
        if cache:
            fit = min(fit, _PIECE_BYTES // max(per_image, 1))
        step = max(1, min(n, fit))
        for n0 in range(0, n, step):
            yield n0, min(n, n0 + step), 0, rows
    else:
        band = max(1, limit // max(bytes_per_row, 1))
        for n0 in range(n):
            for h0 in range(0, rows, band):
                yield n0, n0 + 1, h0, min(rows, h0 + band)


def for_blocks(xp: Any, fn: Callable[..., None], arrays: Sequence[Any], key: int = 0) -> None:
    """Call ``fn`` on cache-sized pieces of ``arrays`` (all shaped (N, C, ...)), spread over threads.

    A loop over kernel offsets reads (or updates) the same input once per offset. Done on a whole
    batch at once, every pass streams hundreds of MB through memory; done piece by piece (about
    :data:`_BLOCK_BYTES` of ``arrays[key]``: one image and a few channels, or several small images),
    the later passes find the piece in the CPU cache. ``fn`` must only write inside its pieces. On CuPy
    ``fn`` gets the whole arrays (one GPU kernel per operation is what is fast there).
    """
    n, c = arrays[0].shape[:2]
    if xp is not numpy:
        fn(*arrays)
        return
    ref = arrays[key]
    per_image = max(1, int(ref[:1].nbytes))
    if per_image <= _BLOCK_BYTES:  # whole images, as many as fit (small maps: few calls)
        step = _BLOCK_BYTES // per_image
        pieces = [(i, min(n, i + step), 0, c) for i in range(0, n, step)]
    else:  # one image, a few channels
        cb = max(1, min(c, _BLOCK_BYTES // max(1, int(ref[:1, :1].nbytes))))
        pieces = [(i, i + 1, c0, min(c, c0 + cb)) for i in range(n) for c0 in range(0, c, cb)]

    def run(group: Sequence[tuple[int, int, int, int]]) -> None:
        for i0, i1, c0, c1 in group:
            fn(*(a[i0:i1, c0:c1] for a in arrays))

    # never more than the user's thread count (minissd.set_num_threads), whatever this module's knob says;
    # none inside a for_images worker, whose siblings already keep the other cores busy
    parts = min(_num_threads, image_threads(xp), len(pieces))
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


def pieces_for(xp: Any, n: int, rows: int, bytes_per_row: int) -> list[tuple[int, int, int, int]]:
    """:func:`plan_chunks` for arrays of ``xp``: for the threads of :func:`for_images`, cache-sized on the CPU."""
    return list(plan_chunks(n, rows, bytes_per_row, image_threads(xp), cache=xp is numpy))


def image_pieces(x: Any) -> list[tuple[int, int, int, int]]:
    """Groups of whole images of ``x`` (N, ...) for :func:`for_images` (one group on CuPy)."""
    xp = backend.get_array_module(x)
    return pieces_for(xp, x.shape[0], 1, int(x[:1].nbytes))


def for_images(xp: Any, fn: Callable[[int, int, int, int], Any],
               pieces: Sequence[tuple[int, int, int, int]]) -> list[Any]:
    """``[fn(n0, n1, h0, h1) for each piece]``, the pieces shared out over the user's threads.

    The pieces come from :func:`plan_chunks`; ``fn`` must write only to its own images. When every
    piece holds whole images (``h0 == 0`` and the same ``h1`` for all) and there are several threads
    (:func:`image_threads`), the threads take turns at the pieces, with BLAS on one thread each: at the
    small shapes of ssd_mini (8 to 64 channels) one matrix product is too short for BLAS to share out
    over cores, while whole images are independent work that needs no barrier. Otherwise the pieces run
    one after the other in the calling thread, with BLAS using all the threads. The results come back in
    the order of ``pieces`` (the weight gradient's partial sums are added by the caller).
    """
    pieces = list(pieces)
    parts = min(image_threads(xp), len(pieces))
    whole = len({p[2:] for p in pieces}) == 1 and pieces[0][2] == 0
    if parts < 2 or not whole:
        return [fn(*p) for p in pieces]

    def run(k: int) -> list[Any]:  # thread k takes pieces k, k + parts, ... (neighbours cost alike)
        _local.in_worker = True
        try:
            return [fn(*p) for p in pieces[k::parts]]
        finally:
            _local.in_worker = False

    with backend.blas_threads(1):
        pool = _get_image_pool(parts - 1)
        futures = [pool.submit(run, k) for k in range(1, parts)]
        mine = run(0)  # the calling thread takes a share too
        shares = [mine] + [f.result() for f in futures]
    out: list[Any] = [None] * len(pieces)
    for k, share in enumerate(shares):
        out[k::parts] = share
    return out
