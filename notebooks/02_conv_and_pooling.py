# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 02 · Convolution and pooling: im2col, stride, padding, dilation, ceil_mode
#
# SSD is built from two operations: the **3x3 convolution** (VGG16's thirteen layers, fc6, the extra
# layers and every loc/conf head) and **max pooling**. This notebook opens them up: how a convolution
# becomes one matrix product (**im2col**), what **stride**, **padding** and **dilation** do (fc6's
# atrous 3x3 that sees 13x13), why SSD's pool3 rounds up (**ceil_mode**, 75 → 38) and why pool5 is
# 3x3 with stride 1. Every layer ends with a gradient check.
# Code: `minissd/nn/conv.py` (the textbook im2col convolution first, then the fast path) and `minissd/nn/pool.py`.

# %%
import os
import time

import matplotlib.pyplot as plt
import numpy as np

import minissd
from minissd import to_numpy

FAST = os.environ.get("MINISSD_FAST") == "1"  # CI sets it: smaller sizes, the same pictures
# %config InlineBackend.figure_format = "png"
plt.rcParams.update({"figure.dpi": 100, "savefig.dpi": 100, "font.size": 10})  # 9 in = 900 px
print(f"minissd {minissd.__version__}, backend {minissd.get_backend()}, FAST={FAST}")

# %% [markdown]
# ## 1. im2col on a small example
#
# A convolution slides a C x kh x kw window over the input. **im2col** copies the window seen by each
# output position into one **column** of a matrix: K = C·kh·kw rows (one per weight), L = Ho·Wo columns
# (one per output pixel). Here: one channel, a 4x4 input, a 3x3 kernel, so 2x2 outputs and a 9 x 4
# matrix. `minissd.nn.conv.im2col` returns an array shaped (N, C, kh, kw, Ho, Wo).

# %%
from matplotlib.patches import Rectangle

import minissd.nn.functional as F
from minissd import Tensor
from minissd.nn.conv import im2col, use_textbook

x_small = np.arange(16, dtype=np.float64).reshape(1, 1, 4, 4)     # (N, C, H, W)
kh = kw = 3
ho, wo = F.conv2d_output_shape((4, 4), (kh, kw))
cols = im2col(x_small, (kh, kw))                                  # (N, C, kh, kw, Ho, Wo)
K, L = 1 * kh * kw, ho * wo
matrix = cols.reshape(K, L)
print(f"input 4x4, kernel 3x3 -> output {ho}x{wo}; column matrix {K} x {L}:")
print(matrix.astype(int))

colours = ["C0", "C1", "C2", "C3"]
fig, axes = plt.subplots(1, 2, figsize=(9, 4), gridspec_kw={"width_ratios": [1, 1.1]})
ax = axes[0]
ax.imshow(np.zeros((4, 4)), cmap="Greys", vmin=0, vmax=1)
for (r, c), v in np.ndenumerate(x_small[0, 0]):
    ax.text(c, r, f"{v:g}", ha="center", va="center", fontsize=12)
for k, (r, c) in enumerate(np.ndindex(ho, wo)):
    d = 0.06 * (k - 1.5)  # offset the outlines so the overlapping windows stay visible
    ax.add_patch(Rectangle((c - 0.5 + d, r - 0.5 + d), kw, kh, fill=False, ec=colours[k], lw=2.5))
ax.set_title("input: the window of each output position", fontsize=10)
ax.set_xticks([])
ax.set_yticks([])
ax = axes[1]
ax.imshow(np.zeros((K, L)), cmap="Greys", vmin=0, vmax=1, aspect="auto")
for (r, c), v in np.ndenumerate(matrix):
    ax.text(c, r, f"{v:g}", ha="center", va="center", fontsize=11, color=colours[c])
ax.set_xticks(range(L), [f"out ({r},{c})" for r, c in np.ndindex(ho, wo)], fontsize=8)
ax.set_yticks(range(K), [f"w[{i},{j}]" for i, j in np.ndindex(kh, kw)], fontsize=8)
ax.set_title(f"im2col: {K} x {L} column matrix", fontsize=10)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 2. Convolution as a matrix product
#
# With the columns in hand, the convolution of O filters is **one matrix product**:
# W (O, K) @ cols (K, L) → (O, L), reshaped to (O, Ho, Wo). Below: 3 input channels, 2 filters, and the
# product checked against `F.conv2d`'s textbook path (`use_textbook()`: pad, im2col, one product, the
# code of `minissd/nn/conv.py` a reader sees first) and its default fast path (the same columns, in
# chunks that reuse one buffer).

# %%
rng = np.random.default_rng(0)
C, O, H = 3, 2, 6
x = rng.standard_normal((1, C, H, H))
w = rng.standard_normal((O, C, 3, 3))
ho, wo = F.conv2d_output_shape((H, H), (3, 3), padding=1)
cols = im2col(x, (3, 3), padding=1)
y_matmul = (w.reshape(O, C * 9) @ cols.reshape(C * 9, ho * wo)).reshape(1, O, ho, wo)
y_conv = to_numpy(F.conv2d(x, w, padding=1).data)
with use_textbook():
    y_textbook = to_numpy(F.conv2d(x, w, padding=1).data)
print(f"W {w.reshape(O, -1).shape} @ cols {cols.reshape(C * 9, -1).shape} -> {y_matmul.shape}")
print(f"max |matmul - F.conv2d (fast)| = {np.abs(y_matmul - y_conv).max():.1e}, "
      f"max |matmul - F.conv2d (textbook)| = {np.abs(y_matmul - y_textbook).max():.1e}")

# %% [markdown]
# The price of one big product is memory: the column matrix holds every pixel kh·kw times. For SSD300's
# layers (shapes of the built `ssd300()` model, 300x300 input, float32, one image):

# %%
from minissd.models import ssd300
from minissd.models.vgg import VGGBase

base = ssd300().base                                     # built, untrained: only its layer shapes are read
conv4_3_side, fc7_side = VGGBase.feature_sizes(300)
print(f"{'layer':8s} {'input':>14s} {'K = C·kh·kw':>12s} {'L = Ho·Wo':>10s} {'columns MB':>11s} "
      f"{'input MB':>9s}")
for name, side in [("conv1_2", 300), ("conv3_3", 75), ("conv4_3", conv4_3_side), ("fc6", fc7_side)]:
    layer = getattr(base, name)
    c_in, (k_h, k_w) = layer.in_channels, layer.kernel_size
    ho, wo = F.conv2d_output_shape((side, side), layer.kernel_size, layer.stride, layer.padding,
                                   layer.dilation)
    K, L = c_in * k_h * k_w, ho * wo
    print(f"{name:8s} {c_in:>5d}x{side}x{side:<4d} {K:12d} {L:10d} {K * L * 4 / 2**20:11.1f} "
          f"{c_in * side * side * 4 / 2**20:9.1f}")


# %% [markdown]
# That is why the fast path of `conv.py` processes a batch in chunks whose buffer stays under a limit
# (`get_buffer_bytes()`), and recomputes the columns in the backward pass instead of keeping them.
#
# ## 3. Stride, padding, dilation
#
# Output side: Ho = ⌊(H + 2p − d(k − 1) − 1) / s⌋ + 1 (`F.conv2d_output_shape`). Which input pixels
# does one output pixel read? Ask autograd: the gradient of that output with respect to the input is
# non-zero exactly at its taps.

# %%
def taps(side, out_rc, kernel=3, stride=1, padding=0, dilation=1):
    """Input pixels read by output pixel out_rc: where d out / d x is non-zero (all-ones kernel)."""
    x = Tensor(np.zeros((1, 1, side, side)), requires_grad=True)
    y = F.conv2d(x, np.ones((1, 1, kernel, kernel)), stride=stride, padding=padding, dilation=dilation)
    y[0, 0, out_rc[0], out_rc[1]].backward()
    return to_numpy(x.grad)[0, 0] != 0, y.shape[2:]


settings = [("k=3, s=1, p=0", dict()), ("k=3, s=2, p=1", dict(stride=2, padding=1)),
            ("k=3, s=1, p=2, d=2", dict(padding=2, dilation=2))]
side = 7
fig, axes = plt.subplots(1, 3, figsize=(11, 4))
for ax, (title, kw_) in zip(axes, settings):
    p = kw_.get("padding", 0)
    ax.add_patch(Rectangle((-0.5 - p, -0.5 - p), side + 2 * p, side + 2 * p, fc="#eeeeee", ec="grey",
                           ls="--"))
    ax.add_patch(Rectangle((-0.5, -0.5), side, side, fc="white", ec="black"))
    for t in range(1, side):                               # pixel grid
        ax.axhline(t - 0.5, color="#dddddd", lw=0.5, zorder=0)
        ax.axvline(t - 0.5, color="#dddddd", lw=0.5, zorder=0)
    s_, d_ = kw_.get("stride", 1), kw_.get("dilation", 1)
    extent = d_ * (3 - 1) + 1                                 # the window's span in pixels
    for k, rc in enumerate([(0, 0), (0, 1)]):
        hit, out_hw = taps(side, rc, **kw_)
        ax.add_patch(Rectangle((rc[1] * s_ - p - 0.5 + 0.08 * k, rc[0] * s_ - p - 0.5 + 0.08 * k),
                               extent, extent, fill=False, ec=f"C{k}", lw=1.5))
        rr, cc = np.nonzero(hit)
        ax.plot(cc + 0.12 * (2 * k - 1), rr, "s", color=f"C{k}", ms=9, alpha=0.8,
                label=f"output {rc}")
    ax.set_xlim(-3.5, side + 2.5)
    ax.set_ylim(side + 2.5, -3.5)
    ax.set_xticks(range(side))
    ax.set_yticks(range(side))
    ax.tick_params(labelsize=7)
    ax.set_aspect("equal")
    ax.set_title(f"{title}: {side}x{side} -> {out_hw[0]}x{out_hw[1]}", fontsize=10)
    ax.legend(fontsize=7, loc="lower right")
fig.suptitle("input pixels read by two neighbouring outputs (squares), their windows (outlines); "
             "grey: zero padding", fontsize=10)
fig.tight_layout()
plt.show()

# %% [markdown]
# * **stride 2** moves the window two pixels per output: the map halves (SSD's conv8_2 and conv9_2);
# * **padding** adds zeros around the input, so a 3x3 with p = 1 keeps the size (every VGG convolution);
# * **dilation d** spaces the taps d apart: a 3x3 kernel spans d(k − 1) + 1 pixels with only 9 weights.
#
# ### fc6: the atrous 3x3 with dilation 6
#
# SSD turns VGG's fc6 into a 3x3 convolution with **dilation 6** and padding 6 on the 19x19 map of
# conv5_3/pool5. The same autograd question, for the centre output of fc6's map:

# %%
fc6 = base.fc6
side = fc7_side
hit, out_hw = taps(side, (side // 2, side // 2), kernel=fc6.kernel_size[0], padding=fc6.padding[0],
                   dilation=fc6.dilation[0])
rr, cc = np.nonzero(hit)
span = rr.max() - rr.min() + 1
d, k = fc6.dilation[0], fc6.kernel_size[0]
print(f"fc6: kernel {fc6.kernel_size}, dilation {fc6.dilation}, padding {fc6.padding}: "
      f"{side}x{side} -> {out_hw[0]}x{out_hw[1]}")
print(f"{hit.sum()} taps spanning {span}x{span} pixels (d(k-1)+1 = {d * (k - 1) + 1}); "
      f"a dense {span}x{span} kernel would need {span * span} weights per channel pair, "
      f"{span * span / hit.sum():.0f}x more")

fig, ax = plt.subplots(figsize=(8.5, 8.5))
ax.imshow(np.zeros((side, side)), cmap="Greys", vmin=0, vmax=1)
ax.add_patch(Rectangle((cc.min() - 0.5, rr.min() - 0.5), span, span, fc="C1", alpha=0.25, ec="C1", lw=2))
ax.plot(cc, rr, "s", color="C0", ms=10)
ax.plot([side // 2], [side // 2], "x", color="black", ms=10)
ax.set_xticks(range(0, side, 3))
ax.set_yticks(range(0, side, 3))
ax.set_title(f"fc6 on the {side}x{side} map: {hit.sum()} taps cover {span}x{span}", fontsize=10)
plt.show()

# VGG16's original fc6 (ImageNet, 224x224 input): a dense 7x7 layer on pool5
vgg_pool5 = 224 // 2**5                        # five 2x2/s2 pools
print(f"VGG16 at 224x224: fc6 sees the whole {vgg_pool5}x{vgg_pool5} pool5 map ({vgg_pool5 ** 2} taps); "
      f"pool5 halves conv5_3, so that is a {2 * vgg_pool5}x{2 * vgg_pool5} window at conv5_3's resolution")

# %% [markdown]
# SSD keeps conv5_3's resolution (pool5 with stride 1, below), and the dilated 3x3 covers nearly the
# window that the original, dense fc6 saw, with 9 taps instead of 49 (the last line above).
#
# ## 4. Max pooling: ceil_mode (75 → 38) and pool5 3x3/s1
#
# Max pooling takes the maximum of each window. Output side: ⌊(H + 2p − k)/s⌋ + 1, or with **ceil_mode**
# ⌈(H + 2p − k)/s⌉ + 1: a last, partial window at the border is kept. On a 5x5 input with 2x2/s2:

# %%
x5 = np.arange(25, dtype=np.float64).reshape(1, 1, 5, 5)
fig, axes = plt.subplots(1, 2, figsize=(9.5, 4.5))
for ax, ceil in zip(axes, [False, True]):
    y = to_numpy(F.max_pool2d(x5, 2, ceil_mode=ceil).data)
    # by hand: each window's maximum is its bottom-right entry; ceil mode adds the cut windows of row 4 / col 4
    by_hand = [[6, 8, 9], [16, 18, 19], [21, 23, 24]] if ceil else [[6, 8], [16, 18]]
    assert np.array_equal(y[0, 0], by_hand)
    ax.imshow(np.zeros((5, 5)), cmap="Greys", vmin=0, vmax=1)
    for (r, c), v in np.ndenumerate(x5[0, 0]):
        ax.text(c, r, f"{v:g}", ha="center", va="center", fontsize=10)
    for k, (r, c) in enumerate(np.ndindex(*y.shape[2:])):
        hgt, wid = min(2, 5 - 2 * r), min(2, 5 - 2 * c)   # a window at the border is cut by the image
        ax.add_patch(Rectangle((2 * c - 0.45, 2 * r - 0.45), wid - 0.1, hgt - 0.1, fill=False,
                               ec=f"C{k % 10}", lw=2))
    ax.set_xlim(-0.6, 4.6)
    ax.set_ylim(4.6, -0.6)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"2x2/s2, ceil_mode={ceil}: 5x5 -> {y.shape[2]}x{y.shape[3]}\n"
                 f"output {y[0, 0].astype(int).tolist()}", fontsize=9)
fig.tight_layout()
plt.show()

# %% [markdown]
# VGG16 on a 300x300 input: the first two pools give 150 and 75. pool3 on 75 gives 37 by floor and **38**
# with ceil_mode, the side of conv4_3, SSD's first detection map (`VGGBase` sets `ceil_mode` on pool3 only):

# %%
side_floor = side_ceil = 300
print(f"{'':6s} {'floor':>6s} {'ceil (SSD)':>10s}")
for name in ["pool1", "pool2", "pool3", "pool4"]:
    pool = getattr(base, name)
    x_floor = np.zeros((1, 1, side_floor, side_floor), np.float32)
    x_ceil = np.zeros((1, 1, side_ceil, side_ceil), np.float32)
    side_floor = F.max_pool2d(x_floor, 2, 2, ceil_mode=False).shape[2]
    side_ceil = F.max_pool2d(x_ceil, pool.kernel_size, pool.stride, ceil_mode=pool.ceil_mode).shape[2]
    print(f"{name:6s} {side_floor:6d} {side_ceil:10d}   ceil_mode={pool.ceil_mode}")
print(f"VGGBase.feature_sizes(300) = {VGGBase.feature_sizes(300)} (conv4_3, fc7)")

# %% [markdown]
# **pool5** in VGG16 is 2x2 with stride 2, which halves the map (rounding down). SSD makes it **3x3, stride 1,
# padding 1**: it still takes local maxima but keeps conv5_3's resolution, so fc6/fc7 (a detection map of
# stride 16) stay fine enough for mid-sized objects. A map with three bright spots through both versions:

# %%
from IPython.display import Markdown, display

m = np.random.default_rng(0).uniform(0, 0.3, (1, 1, 19, 19)).astype(np.float32)   # weak background
m[0, 0, 4, 4], m[0, 0, 4, 6], m[0, 0, 13, 10] = 1.0, 0.7, 0.9      # two close spots and one apart
pool5 = base.pool5
outputs = {
    "conv5_3 map": m,
    "VGG16 pool5 2x2/s2": to_numpy(F.max_pool2d(m, 2, 2).data),
    f"SSD pool5 {pool5.kernel_size[0]}x{pool5.kernel_size[1]}/s{pool5.stride[0]}/p{pool5.padding[0]}":
        to_numpy(pool5(Tensor(m)).data),
}
fig, axes = plt.subplots(1, 3, figsize=(12, 4.2))
for ax, (title, a) in zip(axes, outputs.items()):
    im = ax.imshow(a[0, 0], cmap="magma", vmin=0, vmax=1)
    ax.set_title(f"{title}: {a.shape[2]}x{a.shape[3]}", fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
fig.colorbar(im, ax=list(axes), fraction=0.02, label="value (max of the window)")
plt.show()
sides_out = {title: a.shape[2] for title, a in outputs.items()}
vgg_side, ssd_side = list(sides_out.values())[1:]
display(Markdown(f"On this {m.shape[2]}x{m.shape[3]} map, VGG16's pool5 gives **{vgg_side}x{vgg_side}** "
                 f"(⌊({m.shape[2]} − 2)/2⌋ + 1; the last row and column are dropped) and SSD's keeps "
                 f"**{ssd_side}x{ssd_side}**."))

# %% [markdown]
# ## 5. Gradients
#
# Max pooling passes each output's gradient to the input that won the window (the first maximum on
# ties). With 2x2/s2 every input gets at most one output's gradient; with pool5's overlapping 3x3/s1
# windows a local maximum wins up to 9 windows and collects all their gradients:

# %%
fig, axes = plt.subplots(1, 2, figsize=(9.5, 4.6))
for ax, (title, kw_) in zip(axes, [("2x2/s2", dict(kernel_size=2)),
                                   ("3x3/s1/p1", dict(kernel_size=3, stride=1, padding=1))]):
    xt = Tensor(m.astype(np.float64), requires_grad=True)
    F.max_pool2d(xt, **kw_).sum().backward()                 # upstream gradient 1 for every output
    g = to_numpy(xt.grad)[0, 0]
    im = ax.imshow(g, cmap="viridis")
    fig.colorbar(im, ax=ax, fraction=0.046)
    ax.set_title(f"d sum(pool)/dx, {title}: max {g.max():g}", fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
    print(f"{title}: gradient {g[4, 4]:g} at the brightest spot, {g[13, 10]:g} at the lone spot, "
          f"sum {g.sum():g} = number of outputs {np.prod(F.max_pool2d(m, **kw_).shape)}")
fig.tight_layout()
plt.show()

# %% [markdown]
# Every case above, and SSD's own settings, checked against finite differences in float64 with
# `minissd.autograd.gradcheck` (small shapes; it raises on a mismatch):

# %%
from minissd.autograd import gradcheck

rng = np.random.default_rng(1)


def T(*shape):
    return Tensor(rng.standard_normal(shape), requires_grad=True)


cases = {
    "conv2d 3x3, p=1 (VGG)": (lambda x, w, b: F.conv2d(x, w, b, padding=1),
                              [T(2, 3, 6, 6), T(4, 3, 3, 3), T(4)]),
    "conv2d 3x3, s=2, p=1 (conv8_2)": (lambda x, w: F.conv2d(x, w, stride=2, padding=1),
                                       [T(1, 3, 7, 7), T(2, 3, 3, 3)]),
    "conv2d 3x3, d=6, p=6 (fc6)": (lambda x, w: F.conv2d(x, w, padding=6, dilation=6),
                                   [T(1, 2, 13, 13), T(2, 2, 3, 3)]),
    "conv2d 1x1 (fc7, conv8_1)": (lambda x, w: F.conv2d(x, w), [T(2, 4, 5, 5), T(3, 4, 1, 1)]),
    "conv2d 3x3 valid (conv10_2)": (lambda x, w: F.conv2d(x, w), [T(1, 3, 5, 5), T(2, 3, 3, 3)]),
    "conv2d 2x3, s=(1,2), p=(0,1), d=(2,1)": (
        lambda x, w: F.conv2d(x, w, stride=(1, 2), padding=(0, 1), dilation=(2, 1)),
        [T(1, 2, 7, 6), T(2, 2, 2, 3)]),
    "max_pool2d 2x2/s2 (pool1)": (lambda x: F.max_pool2d(x, 2), [T(2, 3, 6, 6)]),
    "max_pool2d 2x2/s2 ceil_mode (pool3)": (lambda x: F.max_pool2d(x, 2, ceil_mode=True), [T(1, 2, 7, 7)]),
    "max_pool2d 3x3/s1/p1 (pool5)": (lambda x: F.max_pool2d(x, 3, 1, 1), [T(1, 2, 6, 6)]),
}
for name, (fn, inputs) in cases.items():
    t0 = time.perf_counter()
    ok = gradcheck(fn, inputs)
    print(f"{name:40s} {ok}   ({time.perf_counter() - t0:.2f} s)")

# %% [markdown]
# ## Exercise: the size of the column matrix (classroom assignment `conv2d`)
#
# For an input of shape (2, 3, 9, 9) and a 3x3 convolution with stride 2 and padding 1, how many rows K and
# columns L per image does im2col's column matrix have? Replace `None` by (K, L); the check uses
# `F.conv2d_output_shape` and the shape of the array `im2col` returns.

# %%
my_K_L = None   # (K, L)

# %%
ho9, wo9 = F.conv2d_output_shape((9, 9), (3, 3), stride=2, padding=1)
cols9 = im2col(np.zeros((2, 3, 9, 9)), (3, 3), stride=2, padding=1)   # (N, C, kh, kw, Ho, Wo)
truth_KL = (int(np.prod(cols9.shape[1:4])), int(np.prod(cols9.shape[4:])))
if my_K_L is None:
    print("not answered yet: set my_K_L in the cell above")
elif tuple(my_K_L) == truth_KL:
    print(f"right: K = {truth_KL[0]} (C·kh·kw), L = {truth_KL[1]} (Ho·Wo)")
else:
    print("wrong: K counts the weights of one filter, L the output positions")

# %% [markdown]
# ## Summary
#
# * im2col turns a convolution into one matrix product W (O, C·kh·kw) @ columns (C·kh·kw, Ho·Wo), at the
#   cost of a buffer kh·kw times the input (hence chunks).
# * Stride shrinks the map, padding keeps it, dilation widens the window without adding weights: fc6's
#   3x3 with dilation 6 covers 13x13.
# * ceil_mode on pool3 gives conv4_3 its 38x38; pool5 3x3/s1/p1 keeps fc7 at 19x19.
# * Every one of them passes a float64 gradient check. Next: the VGG16 backbone (03).
