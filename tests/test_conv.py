"""conv2d: im2col and col2im by hand, the textbook convolution, and the fast path against it.

The textbook version (pad, im2col, one matrix product) is checked by hand-worked examples, by
col2im being the adjoint of im2col, and by finite differences; the fast path must then agree with it
on every stride/padding/dilation case and every layer shape SSD300 and ssd_mini use. Every test runs
on the selected backend (``MINISSD_BACKEND``).
"""

from __future__ import annotations

import threading

import numpy
import pytest

import minissd.nn.functional as F
from minissd import Tensor, backend, to_numpy
from minissd.autograd import GradcheckError, gradcheck
from minissd.nn import conv, workspace

# (N, C, H, W, O, kernel, stride, padding, dilation)
CONFIGS = {
    "1x1": (2, 3, 5, 5, 4, 1, 1, 0, 1),
    "3x3 pad 1": (2, 3, 6, 6, 4, 3, 1, 1, 1),
    "stride 2": (2, 3, 7, 7, 4, 3, 2, 1, 1),
    "dilation 2 pad 2": (1, 2, 7, 7, 3, 3, 1, 2, 2),
    "dilation 6 pad 6 (fc6)": (1, 2, 8, 8, 2, 3, 1, 6, 6),
    "non-square input and kernel": (2, 2, 5, 8, 3, (2, 3), (1, 2), (1, 0), 1),
    "C=1 O=1": (2, 1, 5, 5, 1, 3, 1, 1, 1),
    "batch 1": (1, 3, 5, 5, 2, 3, 1, 1, 1),
    "batch 3": (3, 2, 5, 5, 2, 3, 1, 1, 1),
    "stride 2 no pad, odd": (2, 2, 6, 6, 2, 3, 2, 0, 1),
    "1x1 stride 2": (2, 3, 5, 5, 2, 1, 2, 0, 1),
    "1x1 pad 1": (2, 3, 4, 4, 2, 1, 1, 1, 1),
    "pad larger than the kernel reach": (1, 4, 4, 4, 1, 2, 1, 2, 1),
    # few output channels (SSD's loc/conf heads) take the output-side path; see test_each_path_...
    "narrow 3x3 pad 1": (2, 6, 5, 5, 2, 3, 1, 1, 1),
    "narrow dilation 2": (1, 8, 7, 7, 2, 3, 1, 2, 2),
    "narrow non-square": (2, 6, 5, 8, 1, (2, 3), 1, (1, 0), 1),
    "narrow no padding": (1, 8, 6, 6, 1, 3, 1, 0, 1),
}
NARROW = [name for name in CONFIGS if name.startswith("narrow")]
# stride 1 with no more output than input channels: only the backward pass takes the output side
OUTPUT_SIDE_BACKWARD = ["dilation 6 pad 6 (fc6)", "C=1 O=1", "batch 1", "batch 3"]

# (C, O, kernel, stride, padding, dilation) of every convolution of SSD300 (VGG16 with fc6/fc7 as
# convolutions, the extra layers conv8_1 to conv11_2, and the loc/conf heads for 21 classes)
SSD300_LAYERS = [
    (3, 64, 3, 1, 1, 1), (64, 64, 3, 1, 1, 1), (64, 128, 3, 1, 1, 1), (128, 128, 3, 1, 1, 1),
    (128, 256, 3, 1, 1, 1), (256, 256, 3, 1, 1, 1), (256, 512, 3, 1, 1, 1), (512, 512, 3, 1, 1, 1),
    (512, 1024, 3, 1, 6, 6), (1024, 1024, 1, 1, 0, 1),  # fc6 (dilated), fc7
    (1024, 256, 1, 1, 0, 1), (256, 512, 3, 2, 1, 1), (512, 128, 1, 1, 0, 1), (128, 256, 3, 2, 1, 1),
    (256, 128, 1, 1, 0, 1), (128, 256, 3, 1, 0, 1),  # conv8 to conv11
    (512, 16, 3, 1, 1, 1), (1024, 24, 3, 1, 1, 1), (512, 24, 3, 1, 1, 1), (256, 24, 3, 1, 1, 1),
    (256, 16, 3, 1, 1, 1), (512, 84, 3, 1, 1, 1), (1024, 126, 3, 1, 1, 1), (512, 126, 3, 1, 1, 1),
    (256, 126, 3, 1, 1, 1), (256, 84, 3, 1, 1, 1),  # heads
]


# ... and of ssd_mini (VGG at width 1/8 with BatchNorm, its extras and heads for 8 classes); listed rather
# than read from the model, whose construction needs the default boxes of another assignment
SSD_MINI_LAYERS = [
    (3, 8, 3, 1, 1, 1), (8, 8, 3, 1, 1, 1), (8, 16, 3, 1, 1, 1), (16, 16, 3, 1, 1, 1), (16, 32, 3, 1, 1, 1),
    (32, 32, 3, 1, 1, 1), (32, 64, 3, 1, 1, 1), (64, 64, 3, 1, 1, 1), (64, 128, 3, 1, 6, 6),  # ..., fc6
    (128, 128, 1, 1, 0, 1), (128, 32, 1, 1, 0, 1), (32, 64, 3, 2, 1, 1), (64, 16, 1, 1, 0, 1),  # fc7, extras
    (16, 32, 3, 1, 0, 1), (32, 16, 1, 1, 0, 1),
    (64, 16, 3, 1, 1, 1), (128, 24, 3, 1, 1, 1), (64, 24, 3, 1, 1, 1), (32, 16, 3, 1, 1, 1),  # loc heads
    (64, 32, 3, 1, 1, 1), (128, 48, 3, 1, 1, 1), (64, 48, 3, 1, 1, 1), (32, 32, 3, 1, 1, 1),  # conf heads
]


def _arrays(cfg, rng, dtype=numpy.float64):
    n, c, h, w, o, k, s, p, d = cfg
    kh, kw = (k, k) if isinstance(k, int) else k
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    wt = rng.standard_normal((o, c, kh, kw)).astype(dtype)
    b = rng.standard_normal(o).astype(dtype)
    return x, wt, b


def _run(x, w, b, s, p, d, textbook):
    """y, dx, dw, db (host arrays) for a fixed upstream gradient, by the textbook or the fast path."""
    with conv.use_textbook(textbook):
        xt, wt, bt = (Tensor(backend.asarray(a), requires_grad=True) for a in (x, w, b))
        y = F.conv2d(xt, wt, bt, s, p, d)
        assert type(y._ctx) is (conv.TextbookConv2d if textbook else conv.FastConv2d)
        y.backward(backend.asarray(numpy.cos(numpy.arange(y.size)).reshape(y.shape)))
        return [to_numpy(a) for a in (y.data, xt.grad, wt.grad, bt.grad)]


def _assert_paths_agree(cfg, rng, tol=1e-10):
    x, w, b = _arrays(cfg, rng)
    s, p, d = cfg[6:]
    for fast, book in zip(_run(x, w, b, s, p, d, False), _run(x, w, b, s, p, d, True)):
        assert fast.shape == book.shape
        numpy.testing.assert_allclose(fast, book, rtol=tol, atol=tol)


# =========================================================================== im2col, col2im by hand
@pytest.mark.conv2d
def test_im2col_by_hand():
    # a 3x3 image 1..9, zero-padded to 5x5, 2x2 windows with stride 1: a 4x4 grid of windows
    x = backend.asarray(numpy.arange(1.0, 10.0).reshape(1, 1, 3, 3))
    cols = to_numpy(conv.im2col(x, 2, 1, 1))
    assert cols.shape == (1, 1, 2, 2, 4, 4)
    # tap (0, 0) of every window is the padded image's rows 0..3, columns 0..3
    assert cols[0, 0, 0, 0].tolist() == [[0, 0, 0, 0], [0, 1, 2, 3], [0, 4, 5, 6], [0, 7, 8, 9]]
    # tap (1, 1): rows and columns 1..4
    assert cols[0, 0, 1, 1].tolist() == [[1, 2, 3, 0], [4, 5, 6, 0], [7, 8, 9, 0], [0, 0, 0, 0]]
    # stride 2, dilation 2 on a 5x5 image 0..24: one 3x3 window whose taps are 2 apart
    y = to_numpy(conv.im2col(backend.asarray(numpy.arange(25.0).reshape(1, 1, 5, 5)), 3, 2, 0, 2))
    assert y.shape == (1, 1, 3, 3, 1, 1)
    assert y.reshape(3, 3).tolist() == [[0, 2, 4], [10, 12, 14], [20, 22, 24]]


@pytest.mark.conv2d
def test_col2im_counts_the_windows_that_see_each_pixel():
    # 3x3 windows, padding 1, on a 3x3 image: 9 windows; a corner is in 4, an edge pixel in 6, the centre in 9
    cols = backend.asarray(numpy.ones((1, 1, 3, 3, 3, 3)))
    dx = to_numpy(conv.col2im(cols, (1, 1, 3, 3), 1, 1))
    assert dx.reshape(3, 3).tolist() == [[4, 6, 4], [6, 9, 6], [4, 6, 4]]


@pytest.mark.conv2d
@pytest.mark.parametrize("name", list(CONFIGS))
def test_col2im_is_the_adjoint_of_im2col(name, rng):
    # <im2col(x), c> == <x, col2im(c)> for all x and c: what the backward pass relies on
    n, c, h, w, _, k, s, p, d = CONFIGS[name]
    x = rng.standard_normal((n, c, h, w))
    cols = to_numpy(conv.im2col(backend.asarray(x), k, s, p, d))
    other = rng.standard_normal(cols.shape)
    back = to_numpy(conv.col2im(backend.asarray(other), x.shape, s, p, d))
    assert back.shape == x.shape
    numpy.testing.assert_allclose((cols * other).sum(), (x * back).sum(), rtol=1e-10)


@pytest.mark.conv2d
def test_hand_worked_convolutions():
    # a 3x3 image 1..9, a 2x2 kernel of ones: each output is the sum of a 2x2 block
    x = Tensor(numpy.arange(1.0, 10.0).reshape(1, 1, 3, 3))
    for textbook in (True, False):
        with conv.use_textbook(textbook):
            y = to_numpy(F.conv2d(x, Tensor(numpy.ones((1, 1, 2, 2))), Tensor(numpy.array([0.5]))).data)
            assert y.reshape(2, 2).tolist() == [[12.5, 16.5], [24.5, 28.5]]
            # 3x3 ones with dilation 2 on 0..24: the sum of the 9 pixels two apart, 0 + 2 + ... + 24 = 108
            big = Tensor(numpy.arange(25.0).reshape(1, 1, 5, 5))
            assert F.conv2d(big, Tensor(numpy.ones((1, 1, 3, 3))), dilation=2).item() == 108
            # a 1x1 kernel of 2 with stride 2 keeps every second pixel, doubled
            y = to_numpy(F.conv2d(big, Tensor(numpy.full((1, 1, 1, 1), 2.0)), stride=2).data).reshape(3, 3)
            assert y.tolist() == [[0, 4, 8], [20, 24, 28], [40, 44, 48]]
            # narrow (1 output from 8 channels): channel sums of a 3x3 neighbourhood, zero-padded
            ones = Tensor(numpy.ones((1, 8, 3, 3)))
            y = to_numpy(F.conv2d(ones, Tensor(numpy.ones((1, 8, 3, 3))), padding=1).data).reshape(3, 3)
            assert y.tolist() == [[32, 48, 32], [48, 72, 48], [32, 48, 32]]


# =========================================================================== the two paths
@pytest.mark.conv2d
@pytest.mark.parametrize("name", list(CONFIGS))
def test_fast_path_matches_the_textbook(name, rng):
    _assert_paths_agree(CONFIGS[name], rng)


@pytest.mark.conv2d
@pytest.mark.parametrize("layer", SSD300_LAYERS, ids=lambda t: "{}->{} k{} s{} p{} d{}".format(*t))
def test_fast_path_matches_the_textbook_on_ssd300_layers(layer, rng):
    c, o, k, s, p, d = layer
    _assert_paths_agree((1, c, 5, 6, o, k, s, p, d), rng, tol=1e-9)


@pytest.mark.conv2d
@pytest.mark.parametrize("layer", SSD_MINI_LAYERS, ids=lambda t: "{}->{} k{} s{} p{} d{}".format(*t))
def test_fast_path_matches_the_textbook_on_ssd_mini_layers(layer, rng):
    c, o, k, s, p, d = layer
    _assert_paths_agree((2, c, 6, 5, o, k, s, p, d), rng, tol=1e-9)


@pytest.mark.conv2d
@pytest.mark.parametrize("textbook", [False, True], ids=["fast", "textbook"])
@pytest.mark.parametrize("name", list(CONFIGS))
def test_gradients_match_finite_differences(name, textbook, rng):
    cfg = CONFIGS[name]
    x, w, b = (Tensor(a, requires_grad=True) for a in _arrays(cfg, rng))
    s, p, d = cfg[6:]
    with conv.use_textbook(textbook):
        assert gradcheck(lambda x, w, b: F.conv2d(x, w, b, s, p, d), [x, w, b], max_samples=25)


@pytest.mark.conv2d
def test_matches_pytorch_when_installed(rng):
    torch = pytest.importorskip("torch", reason="PyTorch is optional; this cross-check needs it")
    for name in ("3x3 pad 1", "stride 2", "dilation 6 pad 6 (fc6)", "non-square input and kernel", "narrow dilation 2"):
        cfg = CONFIGS[name]
        x, w, b = _arrays(cfg, rng)
        s, p, d = cfg[6:]
        want = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b),
                                          s, p, d).numpy()
        for textbook in (True, False):
            with conv.use_textbook(textbook):
                got = to_numpy(F.conv2d(Tensor(backend.asarray(x)), Tensor(backend.asarray(w)),
                                        Tensor(backend.asarray(b)), s, p, d).data)
            numpy.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10, err_msg=name)


def test_every_path_copies_windows_with_im2col_or_col2im(rng, monkeypatch):
    # what the student copy does to the two functions: every convolution must then fail (no marker:
    # this test replaces the student's code itself, so it passes in the student copy too)
    def missing(*args, **kwargs):
        raise NotImplementedError("conv2d: write im2col")

    monkeypatch.setattr(conv, "im2col", missing)
    monkeypatch.setattr(conv, "col2im", missing)
    for name, cfg in CONFIGS.items():
        x, w, b = _arrays(cfg, rng)
        for textbook in (True, False):
            with conv.use_textbook(textbook), pytest.raises(NotImplementedError):
                F.conv2d(Tensor(x), Tensor(w), Tensor(b), *cfg[6:])
                pytest.fail(f"{name} (textbook={textbook}) convolved without im2col/col2im")


@pytest.mark.conv2d
def test_each_path_is_used_for_its_layers(rng, monkeypatch):
    used = []
    for method in ("_forward_narrow", "_backward_narrow", "_backward_pointwise", "_backward_columns"):
        original = getattr(conv.FastConv2d, method)
        monkeypatch.setattr(conv.FastConv2d, method,
                            lambda self, *a, _m=method, _f=original: used.append(_m) or _f(self, *a))
    for name, cfg in CONFIGS.items():
        used.clear()
        x, w, b = _arrays(cfg, rng)
        with conv.use_textbook(False):
            F.conv2d(Tensor(x, requires_grad=True), Tensor(w), Tensor(b), *cfg[6:]).sum().backward()
        if name in NARROW:
            assert used == ["_forward_narrow", "_backward_narrow"], name
        elif name in OUTPUT_SIDE_BACKWARD:
            assert used == ["_backward_narrow"], name
        elif name == "1x1":
            assert used == ["_backward_pointwise"], name
        else:
            assert used == ["_backward_columns"], name


def test_textbook_switch_restores_and_reads_the_environment(monkeypatch):
    start = conv.textbook_enabled()  # False unless the session runs with MINISSD_CONV=textbook
    with conv.use_textbook():
        assert conv.textbook_enabled()
        with conv.use_textbook(False):
            assert not conv.textbook_enabled()
        assert conv.textbook_enabled()
    assert conv.textbook_enabled() == start
    try:
        conv.use_textbook(not start)  # without "with": stays switched until the next call
        assert conv.textbook_enabled() != start
    finally:
        conv.use_textbook(start)
    assert conv.textbook_enabled() == start
    monkeypatch.setenv("MINISSD_CONV", "textbook")
    assert conv._textbook_from_environment()
    monkeypatch.setenv("MINISSD_CONV", "fast")
    assert not conv._textbook_from_environment()
    monkeypatch.setenv("MINISSD_CONV", "fastest")
    with pytest.raises(ValueError, match="MINISSD_CONV.*'fastest'"):
        conv._textbook_from_environment()


# =========================================================================== the fast path's machinery
@pytest.mark.conv2d
def test_no_result_depends_on_the_old_contents_of_a_buffer(rng, monkeypatch):
    """Scratch arrays and the column buffer start full of NaN: every zero the code needs is written."""
    def nan_scratch(xp, shape, dtype):
        return xp.full(shape, numpy.nan, dtype=dtype)

    monkeypatch.setattr(conv, "scratch", nan_scratch)
    for name, cfg in CONFIGS.items():
        x, w, b = _arrays(cfg, rng)
        book = _run(x, w, b, *cfg[6:], True)
        workspace.release_workspace()
        workspace.workspace(backend.xp(), (1 << 16,), numpy.float64)[...] = numpy.nan  # the reused buffer
        fast = _run(x, w, b, *cfg[6:], False)
        for a, b_ in zip(fast, book):
            assert numpy.isfinite(a).all(), name
            numpy.testing.assert_allclose(a, b_, rtol=1e-10, atol=1e-10, err_msg=name)


@pytest.mark.conv2d
def test_chunks_and_row_bands_give_the_same_result(rng):
    x, w, b = _arrays((3, 2, 9, 7, 3, 3, 1, 2, 2), rng)
    whole = _run(x, w, b, 1, 2, 2, False)
    per_image = x[0].size * 9 * 8  # column bytes of one image: C*kh*kw*Ho*Wo*8
    for limit in (per_image, per_image // 3, 1):  # one image per chunk, bands of rows, one row per band
        try:
            workspace.set_buffer_bytes(limit)
            chunked = _run(x, w, b, 1, 2, 2, False)
            cached = workspace._local.buffer
            assert cached is None or cached.nbytes <= max(limit, x.shape[1] * 9 * 7 * 8)
        finally:
            workspace.set_buffer_bytes(256 * 2**20)
        for a, b_ in zip(whole, chunked):
            numpy.testing.assert_allclose(a, b_, rtol=1e-12, atol=1e-12)


@pytest.mark.needs("conv2d", "max_pool")
def test_threaded_copies_match_single_thread(rng, monkeypatch):
    x, w, b = _arrays((4, 6, 9, 9, 3, 3, 2, 1, 1), rng)
    monkeypatch.setattr(workspace, "_MIN_PARALLEL_ELEMENTS", 0)  # thread even tiny copies
    monkeypatch.setattr(workspace, "_BLOCK_BYTES", 512)  # and cut them into many pieces
    monkeypatch.setattr(backend, "_num_threads", 3)  # the user's count caps the copy threads

    def run(threads):
        workspace.set_num_threads(threads)
        xt, wt = Tensor(x, requires_grad=True), Tensor(w, requires_grad=True)
        y = F.conv2d(xt, wt, Tensor(b), 2, 1)
        y.backward(numpy.ones(y.shape))
        pooled = F.max_pool2d(xt, 3, 2, 1, True)
        return [to_numpy(a) for a in (y.data, xt.grad, wt.grad, pooled.data)]

    before = workspace.get_num_threads()
    try:
        one, three = run(1), run(3)
    finally:
        workspace.set_num_threads(before)
    for a, b_ in zip(one, three):
        numpy.testing.assert_array_equal(a, b_)


@pytest.mark.conv2d
@pytest.mark.parametrize("name", ["3x3 pad 1", "stride 2", "1x1", "narrow 3x3 pad 1", "batch 3",
                                  "dilation 6 pad 6 (fc6)"])
def test_image_threads_match_one_thread(name, rng, monkeypatch):
    # every path (columns, 1x1, output side, narrow), the weight gradient summed from per-thread parts
    n, *rest = CONFIGS[name]
    x, w, b = _arrays((5, *rest), rng)  # 5 images: pieces of unequal size over the threads
    monkeypatch.setattr(backend, "_num_threads", 1)
    one = _run(x, w, b, *CONFIGS[name][6:], False)
    monkeypatch.setattr(backend, "_num_threads", 3)
    three = _run(x, w, b, *CONFIGS[name][6:], False)
    for a, b_ in zip(one, three):
        numpy.testing.assert_allclose(a, b_, rtol=1e-12, atol=1e-12)


def test_for_images_shares_whole_images_out_and_keeps_their_order(monkeypatch):
    monkeypatch.setattr(backend, "_num_threads", 3)
    barrier = threading.Barrier(3, timeout=10)  # passes only if three threads run pieces at once
    used = []

    def piece(n0, n1, h0, h1):
        if n0 < 3:
            barrier.wait()
        used.append(threading.get_ident())
        return n0 * 10 + n1

    pieces = [(i, i + 1, 0, 4) for i in range(7)]
    assert workspace.for_images(numpy, piece, pieces) == [i * 10 + i + 1 for i in range(7)]
    assert len(set(used)) == 3
    # bands of rows of one image may share halo rows in a backward pass: they stay in the calling thread
    used.clear()
    bands = [(0, 1, 0, 2), (0, 1, 2, 4)]
    assert workspace.for_images(numpy, lambda *p: used.append(threading.get_ident()), bands) == [None, None]
    assert used == [threading.get_ident()] * 2
    # one thread: the pieces run in order in the calling thread
    monkeypatch.setattr(backend, "_num_threads", 1)
    order = []
    workspace.for_images(numpy, lambda n0, *_: order.append((n0, threading.get_ident())), pieces)
    assert order == [(i, threading.get_ident()) for i in range(7)]


def test_pieces_fit_each_threads_share_of_the_buffer(monkeypatch):
    monkeypatch.setattr(workspace, "_buffer_bytes", 1000)
    monkeypatch.setattr(workspace, "_PIECE_BYTES", 300)
    # 10 images of 100 bytes: the cache limit groups 3, and 2 threads each hold at most 500
    pieces = list(workspace.plan_chunks(10, 4, 25, threads=2, cache=True))
    assert pieces == [(0, 3, 0, 4), (3, 6, 0, 4), (6, 9, 0, 4), (9, 10, 0, 4)]
    # without the cache limit (the GPU): as large as each thread's share allows, at least one piece each
    assert list(workspace.plan_chunks(10, 4, 25, threads=2)) == [(0, 5, 0, 4), (5, 10, 0, 4)]
    assert list(workspace.plan_chunks(3, 4, 25, threads=1)) == [(0, 3, 0, 4)]
    # an image over a thread's share is cut into bands of rows
    assert list(workspace.plan_chunks(1, 4, 200, threads=2)) == [(0, 1, 0, 2), (0, 1, 2, 4)]


@pytest.mark.conv2d
def test_float32_forward_is_accurate(rng):
    x, w, b = _arrays(CONFIGS["stride 2"], rng, numpy.float32)
    got = F.conv2d(Tensor(x), Tensor(w), Tensor(b), 2, 1)
    assert got.dtype == numpy.float32
    want = _run(x.astype(numpy.float64), w.astype(numpy.float64), b.astype(numpy.float64), 2, 1, 1, True)[0]
    numpy.testing.assert_allclose(to_numpy(got.data), want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    ("in_hw", "k", "s", "p", "d", "out_hw"),
    [
        ((300, 300), 3, 1, 1, 1, (300, 300)),  # VGG's 3x3 "same" convolutions
        ((19, 19), 3, 1, 6, 6, (19, 19)),  # fc6: dilation 6 with padding 6 keeps 19x19
        ((19, 19), 3, 2, 1, 1, (10, 10)),  # conv8_2
        ((5, 5), 3, 1, 0, 1, (3, 3)),  # conv10_2
        ((3, 3), 3, 1, 0, 1, (1, 1)),  # conv11_2
        ((7, 10), (3, 5), (2, 1), (0, 2), 1, (3, 10)),  # non-square: (7-3)//2+1, (10+4-5)//1+1
    ],
)
@pytest.mark.conv2d
def test_output_shape_formula(in_hw, k, s, p, d, out_hw):
    assert F.conv2d_output_shape(in_hw, k, s, p, d) == out_hw
    kh, kw = (k, k) if isinstance(k, int) else k
    x = Tensor(backend.xp().zeros((1, 1, *in_hw), dtype=numpy.float32))
    w = Tensor(backend.xp().zeros((2, 1, kh, kw), dtype=numpy.float32))
    assert F.conv2d(x, w, stride=s, padding=p, dilation=d).shape == (1, 2, *out_hw)


@pytest.mark.conv2d
def test_frozen_weight_and_constant_input_get_no_gradient(rng):
    x, w, b = _arrays(CONFIGS["3x3 pad 1"], rng)
    xt, wt, bt = Tensor(x, requires_grad=True), Tensor(w, requires_grad=False), Tensor(b, requires_grad=True)
    F.conv2d(xt, wt, bt, 1, 1).sum().backward()
    assert wt.grad is None
    full_x = Tensor(x, requires_grad=True)
    F.conv2d(full_x, Tensor(w, requires_grad=True), Tensor(b), 1, 1).sum().backward()
    numpy.testing.assert_allclose(to_numpy(xt.grad), to_numpy(full_x.grad))
    # the image itself needs no gradient: only the weights get one
    img, w2 = Tensor(x), Tensor(w, requires_grad=True)
    F.conv2d(img, w2, None, 1, 1).sum().backward()
    assert img.grad is None and w2.grad is not None


@pytest.mark.conv2d
def test_gradcheck_catches_a_broken_backward(rng, monkeypatch):
    x, w, b = (Tensor(a, requires_grad=True) for a in _arrays(CONFIGS["stride 2"], rng))
    original = conv.FastConv2d.backward

    def flipped_kernel(self, grad):  # a classic mistake: dW with the kernel flipped
        dx, dw, db = original(self, grad)
        return dx, dw[:, :, ::-1, ::-1], db

    monkeypatch.setattr(conv.FastConv2d, "backward", flipped_kernel)
    monkeypatch.setattr(conv, "_textbook", False)  # the fast path, whatever MINISSD_CONV says
    with pytest.raises(GradcheckError):
        gradcheck(lambda x, w, b: F.conv2d(x, w, b, 2, 1), [x, w, b], max_samples=25)

    def forgot_bias(self, grad):
        dx, dw, db = original(self, grad)
        return dx, dw, db * 0

    monkeypatch.setattr(conv.FastConv2d, "backward", forgot_bias)
    with pytest.raises(GradcheckError):
        gradcheck(lambda x, w, b: F.conv2d(x, w, b, 2, 1), [x, w, b], max_samples=25)


def test_bad_arguments_name_the_problem():
    xp = backend.xp()
    x = Tensor(xp.zeros((1, 3, 5, 5), dtype=numpy.float32))
    with pytest.raises(ValueError, match="input channels"):
        F.conv2d(x, Tensor(xp.zeros((2, 4, 3, 3), dtype=numpy.float32)))
    with pytest.raises(ValueError, match="4-D"):
        F.conv2d(Tensor(xp.zeros((3, 5, 5), dtype=numpy.float32)), Tensor(xp.zeros((2, 3, 3, 3), numpy.float32)))
    with pytest.raises(ValueError, match="does not fit"):
        F.conv2d(x, Tensor(xp.zeros((2, 3, 7, 7), dtype=numpy.float32)))
    with pytest.raises(TypeError, match="float64"):
        F.conv2d(Tensor(xp.zeros((1, 3, 5, 5))), Tensor(xp.zeros((2, 3, 3, 3), dtype=numpy.float32)))
    with pytest.raises(ValueError, match="stride"):
        F.conv2d(x, Tensor(xp.zeros((2, 3, 3, 3), dtype=numpy.float32)), stride=0)
    with pytest.raises(ValueError, match="bias"):
        F.conv2d(x, Tensor(xp.zeros((2, 3, 3, 3), dtype=numpy.float32)), Tensor(xp.zeros(3, numpy.float32)))


@pytest.mark.needs("conv2d", "max_pool", "default_boxes")
def test_ssd_mini_step_stays_float32(monkeypatch):
    """No silent float64 upcast: every conv, pool and BatchNorm output and gradient of a step is float32."""
    from minissd.config import SSDConfig
    from minissd.models import SSD
    from minissd.nn import norm, pool

    seen = []

    def recording(cls, name):
        original = getattr(cls, name)

        def wrapped(self, *args, **kwargs):
            out = original(self, *args, **kwargs)
            seen.extend((cls.__name__, name, a.dtype) for a in (out if isinstance(out, tuple) else (out,))
                        if a is not None)
            return out
        monkeypatch.setattr(cls, name, wrapped)

    used = (conv.TextbookConv2d if conv.textbook_enabled() else conv.FastConv2d, pool.MaxPool2dFunction,
            norm.BatchNormFunction)
    for cls in used:
        recording(cls, "forward")
        recording(cls, "backward")
    backend.seed(0)
    model = SSD(SSDConfig.mini())
    x = backend.asarray(numpy.random.default_rng(0).standard_normal((2, 3, 160, 160)), dtype=numpy.float32)
    out = model(Tensor(x, requires_grad=True))
    sum(o.sum() for o in out).backward()
    kinds = {(c, n) for c, n, _ in seen}
    assert {(c.__name__, n) for c in used for n in ("forward", "backward")} <= kinds
    assert [s for s in seen if s[2] != numpy.float32] == []
    assert all(o.dtype == numpy.float32 for o in out)
    assert all(p.grad is not None and p.grad.dtype == numpy.float32 for p in model.parameters())


def test_copy_threads_are_capped_by_the_user_thread_count(rng, monkeypatch):
    monkeypatch.setattr(workspace, "_MIN_PARALLEL_ELEMENTS", 0)
    monkeypatch.setattr(workspace, "_BLOCK_BYTES", 512)
    monkeypatch.setattr(backend, "_num_threads", 1)  # as after minissd.set_num_threads(1)
    used = set()
    x = rng.standard_normal((4, 6, 9, 9)).astype(numpy.float32)
    before = workspace.get_num_threads()
    try:
        workspace.set_num_threads(3)
        workspace.for_blocks(numpy, lambda a: used.add(threading.get_ident()), (x,))
    finally:
        workspace.set_num_threads(before)
    assert used == {threading.get_ident()}
