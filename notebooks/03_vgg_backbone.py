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
# # 03 · The VGG16 backbone, modified for SSD
#
# SSD300 takes **VGG16** (ImageNet's classification network) up to conv5_3 as its feature extractor, turns
# the fully connected **fc6 and fc7 into convolutions**, drops fc8, and adds **extra layers** that keep
# halving the map. This notebook goes through the built `ssd300()` layer by layer at 300x300 (output shape,
# parameters, FLOPs, receptive field), counts what the fc → conv change saves, and shows the feature maps of
# a photograph. Code: `minissd/models/vgg.py` (`VGGBase`) and `minissd/models/ssd.py`.

# %%
import io
import os
import time

import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Image, display

import minissd
from minissd import to_numpy

FAST = os.environ.get("MINISSD_FAST") == "1"  # CI sets it: smaller sizes, the same pictures
# %config InlineBackend.figure_format = "png"
plt.rcParams.update({"figure.dpi": 100, "savefig.dpi": 100, "font.size": 10})  # 9 in = 900 px
print(f"minissd {minissd.__version__}, backend {minissd.get_backend()}, FAST={FAST}")


def show_jpeg(fig, quality=85):
    """Show a photo-like figure as JPEG (a PNG of it would be several times larger in the stored notebook)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="jpeg", dpi=100, bbox_inches="tight", pil_kwargs={"quality": quality})
    plt.close(fig)
    display(Image(buffer.getvalue()))

# %% [markdown]
# ## 1. Layer by layer at 300x300
#
# The table walks the modules of `ssd300()` in forward order and computes, from each layer's settings
# alone (no forward pass): the output side (`F.conv2d_output_shape`, `F.max_pool2d_output_shape`), the
# parameters (weights + biases), the FLOPs (2 per multiply-add: 2·Ho·Wo·O·C·kh·kw) and the theoretical
# receptive field (how many input pixels one output pixel can see). ★ marks the six **source maps** the
# detection heads read.

# %%
import minissd.nn.functional as F
from minissd.models import ssd300
from minissd.models.vgg import VGG16_LAYERS
from minissd.nn import Conv2d

t0 = time.perf_counter()
model = ssd300()                    # 21 classes (VOC); built with random weights, never trained here
cfg = model.config
print(f"built ssd300() in {time.perf_counter() - t0:.1f} s")

layers = [(name, getattr(model.base, name), "VGG16") for name, _ in VGG16_LAYERS]
layers += [("fc6", model.base.fc6, "fc6/fc7"), ("fc7", model.base.fc7, "fc6/fc7")]
for source, block in zip(cfg.source_names[2:], model.extras):          # conv8_2 -> conv8_1, conv8_2
    layers += [(source[:-1] + "1", block[0], "extras"), (source, block[1], "extras")]

rows, side, jump, rf = [], cfg.input_size, 1, 1
for name, layer, group in layers:
    k, s, p = layer.kernel_size, layer.stride, layer.padding
    if isinstance(layer, Conv2d):
        d = layer.dilation
        out = F.conv2d_output_shape((side, side), k, s, p, d)[0]
        params = layer.weight.data.size + (layer.bias.data.size if layer.bias is not None else 0)
        flops = 2 * out * out * layer.out_channels * layer.in_channels * k[0] * k[1]
        channels = layer.out_channels
    else:
        d = (1, 1)
        out = F.max_pool2d_output_shape((side, side), k, s, p, layer.ceil_mode)[0]
        params = flops = 0
    rf += (d[0] * (k[0] - 1)) * jump        # a window of d(k-1)+1 taps, each `jump` input pixels apart
    jump *= s[0]
    side = out
    rows.append(dict(name=name, group=group, out=out, channels=channels, params=params, flops=flops,
                     stride=jump, rf=rf, source=name in cfg.source_names))

# L2Norm on conv4_3, then one loc and one conf 3x3 head per source map
heads = {"l2norm": sum(p_.data.size for p_ in model.l2norm.parameters())}
source_rows = [r for r in rows if r["source"]]
head_flops = 0
for r, loc, conf in zip(source_rows, model.loc_heads, model.conf_heads):
    key = f"heads on {r['name']}"
    for h in (loc, conf):
        heads[key] = heads.get(key, 0) + h.weight.data.size + h.bias.data.size
        head_flops += 2 * r["out"] ** 2 * h.out_channels * h.in_channels * 9

print(f"{'layer':9s} {'output':>15s} {'params':>11s} {'GFLOPs':>7s} {'stride':>6s} {'recept. field':>13s}")
for r in rows:
    shape = f"{r['out']}x{r['out']}x{r['channels']}"
    print(f"{r['name']:9s} {shape:>15s} {r['params']:11,d} {r['flops'] / 1e9:7.2f} {r['stride']:6d} "
          f"{r['rf']:10d} px {'★' if r['source'] else ''}")
total_params = sum(r["params"] for r in rows) + sum(heads.values())
total_flops = sum(r["flops"] for r in rows) + head_flops
print(f"{'L2Norm + loc/conf heads':27s} {sum(heads.values()):11,d} {head_flops / 1e9:7.2f}")
print(f"{'total':27s} {total_params:11,d} {total_flops / 1e9:7.1f}")
print(f"check: model.parameters() holds {sum(p_.data.size for p_ in model.parameters()):,d} numbers")

# %% [markdown]
# Where the parameters and the computation sit (log scale). The early layers work on large maps and cost
# the most FLOPs with few parameters; fc6/fc7 and conv5 hold many parameters on a small map.

# %%
group_colour = {"VGG16": "C0", "fc6/fc7": "C3", "extras": "C2"}
conv_rows = [r for r in rows if r["params"]]
fig, axes = plt.subplots(2, 1, figsize=(12, 5.6), sharex=True)
xs = np.arange(len(conv_rows))
for ax, key, label in [(axes[0], "params", "parameters"), (axes[1], "flops", "FLOPs")]:
    ax.bar(xs, [r[key] for r in conv_rows], color=[group_colour[r["group"]] for r in conv_rows])
    ax.set_yscale("log")
    ax.set_ylabel(label)
for g, c in group_colour.items():
    axes[0].bar([0], [0], color=c, label=g)
axes[0].legend(fontsize=8, ncol=3)
axes[1].set_xticks(xs, [r["name"] + (" ★" if r["source"] else "") for r in conv_rows], rotation=60, fontsize=8)
by_group = {g: (sum(r["params"] for r in rows if r["group"] == g),
                sum(r["flops"] for r in rows if r["group"] == g)) for g in group_colour}
axes[0].set_title("SSD300 convolutions: " + ", ".join(f"{g} {p_ / 1e6:.1f} M params / {f / 1e9:.1f} GFLOPs"
                                                      for g, (p_, f) in by_group.items()), fontsize=9)
fig.tight_layout()
plt.show()

# %% [markdown]
# The receptive field grows with depth; from fc7 on it is larger than the 300x300 image, which is why the
# deep, small maps can judge large objects while conv4_3 (stride 8) looks at a small neighbourhood.
#
# ## 2. Why fc6 and fc7 become convolutions
#
# In VGG16, fc6 is a dense layer on the flattened 7x7x512 pool5 output (224x224 input), fc7 a 4096 x 4096
# dense layer. A dense layer gives one answer per image; a detector needs an answer at every location.
# Written as convolutions (fc6 = 7x7 kernel, fc7 = 1x1) they slide over the map and do exactly that, but at
# full size they are huge. SSD (following DeepLab-LargeFOV) **subsamples** them: fc6 becomes a 3x3 kernel
# with dilation 6 and 1024 filters, fc7 a 1x1 with 1024.

# %%
side = 224
for name, _ in VGG16_LAYERS:                  # original VGG16: every pool 2x2/s2, floor
    if name.startswith("pool"):
        side = F.max_pool2d_output_shape((side, side), 2, 2)[0]
c5 = model.base.conv5_3.out_channels
before = {"fc6": (side * side * c5, 4096), "fc7": (4096, 4096)}        # (inputs, outputs) of the dense layers
n_before = {k: i * o + o for k, (i, o) in before.items()}
after = {"fc6": model.base.fc6, "fc7": model.base.fc7}
n_after = {k: m_.weight.data.size + m_.bias.data.size for k, m_ in after.items()}
fc_side = source_rows[1]["out"]                 # 19: the map fc6/fc7 run on in SSD300
print(f"VGG16 pool5 at 224x224: {side}x{side}x{c5} = {side * side * c5:,d} inputs to fc6")
print(f"{'':4s} {'VGG16 (dense)':>28s} {'params':>13s} | {'SSD300 (conv)':>26s} {'params':>11s}")
for k in before:
    w = after[k].weight.shape
    print(f"{k:4s} {before[k][0]:>13,d} x {before[k][1]:<12,d} {n_before[k]:13,d} | "
          f"{str(w):>26s} {n_after[k]:11,d}")
nb, na = sum(n_before.values()), sum(n_after.values())
print(f"fc6 + fc7: {nb / 1e6:.1f} M -> {na / 1e6:.2f} M parameters ({nb / na:.0f}x fewer); "
      f"the whole SSD300 has {total_params / 1e6:.1f} M")

# computation on SSD300's 19x19 map, the dense layers run as convolutions (7x7 and 1x1) vs SSD's
dense_conv = 2 * fc_side**2 * (before["fc6"][0] * 4096 + 4096 * 4096)
ssd_conv = sum(r["flops"] for r in rows if r["name"] in ("fc6", "fc7"))
print(f"on the {fc_side}x{fc_side} map: full fc6/fc7 as convolutions {dense_conv / 1e9:.0f} GFLOPs vs "
      f"SSD's {ssd_conv / 1e9:.1f} GFLOPs ({dense_conv / ssd_conv:.0f}x); "
      f"all of SSD300: {total_flops / 1e9:.0f} GFLOPs")
print(f"subsampling: every {4096 // model.base.fc7_channels}th filter, kernel taps {list(range(0, 7, 3))} "
      f"of 0..6 in each direction (a 3x3 out of the 7x7)")

# %%
fig, axes = plt.subplots(1, 2, figsize=(9.5, 3.4))
panels = [("parameters of fc6 + fc7", (nb, na), 1e6),
          (f"GFLOPs of fc6 + fc7 on {fc_side}x{fc_side}", (dense_conv, ssd_conv), 1e9)]
for ax, (title, vals, unit) in zip(axes, panels):
    bars = ax.bar(["VGG16 fc6/fc7\nas convolutions", "SSD300 fc6/fc7\n(3x3 d6, 1x1)"], vals,
                  color=["grey", "C3"])
    ax.bar_label(bars, [f"{v / unit:.1f}" + (" M" if unit == 1e6 else "") for v in vals], fontsize=9)
    ax.set_title(title, fontsize=10)
    ax.set_yticks([])
fig.tight_layout()
plt.show()

# %% [markdown]
# ### The subsampling on VGG16's real shapes
#
# `minissd.pretrained.subsample_fc` is the function that turns ImageNet's fc6/fc7 into SSD's (the
# paper's and DeepLab-LargeFOV's recipe): it keeps **every 4th filter** of fc6 and fc7 (and every 4th input
# of fc7, to match), and of fc6's 7x7 kernel **every 3rd tap** in each direction (rows and columns 0, 3, 6).
# Here it runs on arrays of VGG16's shapes filled with float32 random numbers (no real weights are needed
# to see which entries survive). fc6 alone is 4096 x 25088 float32, 411 MB, so the FAST setting uses a
# network 1/8 as wide (the same layout with every channel count divided by 8).

# %%
from minissd.pretrained import subsample_fc
from minissd.sizes import scaled_channels

fc_width = 1 / 8 if FAST else 1.0
O, C = scaled_channels(4096, fc_width), scaled_channels(c5, fc_width)   # fc6/fc7 outputs, pool5 channels
rng = np.random.default_rng(0)
dense = {"fc6_weight": rng.standard_normal((O, C * side * side), dtype=np.float32),   # (O, C*7*7)
         "fc6_bias": rng.standard_normal(O, dtype=np.float32),
         "fc7_weight": rng.standard_normal((O, O), dtype=np.float32),
         "fc7_bias": rng.standard_normal(O, dtype=np.float32)}
t0 = time.perf_counter()
w6, b6, w7, b7 = (to_numpy(a) for a in subsample_fc(**dense))
print(f"subsample_fc in {time.perf_counter() - t0:.2f} s, width {fc_width:g} of VGG16 "
      f"({'FAST: 1/8 of the channels' if FAST else 'the real shapes'}), random float32 values")
n_dense = sum(a.size for a in dense.values())
n_sub = sum(a.size for a in (w6, b6, w7, b7))
for name, a in dense.items():
    print(f"  in  {name:10s} {str(a.shape):>15s} {a.size:13,d} numbers, {a.nbytes / 2**20:7.1f} MiB")
for name, a in zip(("fc6_weight", "fc6_bias", "fc7_weight", "fc7_bias"), (w6, b6, w7, b7)):
    print(f"  out {name:10s} {str(a.shape):>15s} {a.size:13,d} numbers, {a.nbytes / 2**20:7.1f} MiB")
print(f"fc6 + fc7: {n_dense:,d} -> {n_sub:,d} parameters ({n_dense / n_sub:.0f}x fewer)")

# which entries survive: output filter o of the new fc6 is old filter 4o, tap (i, j) is old tap (3i, 3j)
w6_full = dense["fc6_weight"].reshape(O, C, side, side)       # PyTorch flattens pool5 as (C, 7, 7)
o_, c_, i_, j_ = O // 4 - 1, C - 1, 2, 1
print(f"new fc6[{o_}, {c_}, {i_}, {j_}] = {w6[o_, c_, i_, j_]:.6f} = old fc6[{4 * o_}, {c_}, {3 * i_}, {3 * j_}] "
      f"= {w6_full[4 * o_, c_, 3 * i_, 3 * j_]:.6f}")
assert np.array_equal(w6, w6_full[::4, :, ::3, ::3])
assert np.array_equal(w7[:, :, 0, 0], dense["fc7_weight"][::4, ::4])
assert FAST or (w6.shape == model.base.fc6.weight.shape and w7.shape == model.base.fc7.weight.shape)  # SSD300's
del dense, w6_full

# %% [markdown]
# Where the kept taps fall on the image. In VGG16, fc6's 7x7 kernel reads the 7x7 pool5 map, whose cells are
# 32 px apart (five 2x2 pools). SSD's pool5 is 3x3 with stride 1, so its map (19x19 at 300 px) keeps conv5's
# stride of 16 px: one old cell is two new ones, and the kept taps 0, 3, 6 (3 old cells apart) are
# 3 x 2 = 6 new cells apart. That is fc6's **dilation 6**: the 3x3 kernel spans the same window of the
# image as the original 7x7 did, with 9 of its 49 taps.

# %%
vgg_stride = 2 ** sum(name.startswith("pool") for name, _ in VGG16_LAYERS)   # 32 px between pool5 cells
ssd_stride = next(r["stride"] for r in rows if r["name"] == "fc6")           # 16 px: pool5 at stride 1
dil = model.base.fc6.dilation[0]
kept_taps = np.arange(7)[::3]
assert dil * ssd_stride == 3 * vgg_stride
fig, axes = plt.subplots(1, 3, figsize=(14, 4.6))
ax = axes[0]
for r in range(7):
    for q in range(7):
        keep = r in kept_taps and q in kept_taps
        ax.add_patch(plt.Rectangle((q, r), 1, 1, fc="C3" if keep else "white", ec="grey"))
ax.set_xlim(0, 7)
ax.set_ylim(7, 0)
ax.set_aspect("equal")
ax.set_xticks(np.arange(7) + 0.5, range(7))
ax.set_yticks(np.arange(7) + 0.5, range(7))
ax.set_title(f"fc6's 7x7 kernel: {len(kept_taps)}x{len(kept_taps)} taps kept (red)", fontsize=10)
span = 6 * vgg_stride                      # between the outer taps, in input pixels
panels = [(axes[1], vgg_stride, (np.arange(7) - 3) * vgg_stride, np.isin(np.arange(7), kept_taps),
           f"VGG16: 7x7 taps on pool5, {vgg_stride} px apart"),
          (axes[2], ssd_stride, np.arange(-1, 2) * dil * ssd_stride, np.ones(3, bool),
           f"SSD: 3x3 taps, dilation {dil} on a {ssd_stride} px grid")]
for ax, stride, offsets, kept, title in panels:
    for a in np.arange(-span // 2 - 2 * stride, span // 2 + 3 * stride, stride):   # the map's cell grid
        ax.axvline(a, color="lightgrey", lw=0.5)
        ax.axhline(a, color="lightgrey", lw=0.5)
    xx, yy = np.meshgrid(offsets, offsets)
    colour = np.where(np.outer(kept, kept), "C3", "grey").ravel()
    ax.scatter(xx.ravel(), yy.ravel(), c=colour, s=60, zorder=3)
    ax.add_patch(plt.Rectangle((-span / 2, -span / 2), span, span, fc="none", ec="C0", lw=1.5, ls="--"))
    ax.set_xlim(-span / 2 - 2 * stride, span / 2 + 2 * stride)
    ax.set_ylim(span / 2 + 2 * stride, -span / 2 - 2 * stride)
    ax.set_aspect("equal")
    ax.set_xlabel("pixels of the input image, from the output's centre")
    ax.set_title(title, fontsize=10)
fig.suptitle(f"the outer taps are {span} px apart in both (dashed): dilation {dil} x {ssd_stride} px "
             f"= 3 x {vgg_stride} px", fontsize=10)
fig.tight_layout(rect=(0, 0, 1, 0.94))
plt.show()

# %% [markdown]
# With the real ImageNet file the same function produces SSD's starting fc6/fc7: `minissd convert
# vgg16-397923af.pth vgg16.npz` (docs/pretrained.md; fetch the file yourself, minissd downloads nothing)
# reads torchvision's VGG16, copies conv1_1 .. conv5_3 and calls `subsample_fc` on `classifier.0` and
# `classifier.3`; `minissd train --backbone vgg16.npz` starts from it. If the environment variable
# `MINISSD_VGG16` names such a file (the original `.pth` or the converted `.npz`), the cell below shows its
# conv1_1 filters, the ImageNet-trained colour and edge detectors that the random network of section 3 lacks.

# %%
from minissd.pretrained import read_state_dict
from minissd.train import read_checkpoint

vgg_file = os.environ.get("MINISSD_VGG16", "")
if vgg_file and os.path.isfile(vgg_file):
    if vgg_file.endswith(".npz"):
        conv1_1 = read_checkpoint(vgg_file)[1]["model"]["base.conv1_1.weight"]
    else:
        conv1_1 = read_state_dict(vgg_file)["features.0.weight"]
    conv1_1 = np.asarray(conv1_1, np.float32)                        # (64, 3, 3, 3), RGB input channels
    print(f"{vgg_file}: conv1_1 {conv1_1.shape}")
    fig, axes = plt.subplots(4, 16, figsize=(12, 3.3))
    for ax, f in zip(axes.ravel(), conv1_1):
        tile = f.transpose(1, 2, 0)
        ax.imshow((tile - tile.min()) / (np.ptp(tile) + 1e-12), interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("conv1_1 of the ImageNet VGG16: 64 filters, 3x3 RGB, each scaled to its own range", fontsize=10)
    fig.tight_layout()
    plt.show()
else:
    print("MINISSD_VGG16 is not set or names no file: no ImageNet VGG16 present, so no filters to show "
          "(set it to vgg16-397923af.pth or its converted .npz to see them)")

# %% [markdown]
# ## 3. Feature maps of a photograph
#
# The sample photograph that ships with matplotlib, cropped square and resized to 300x300, through the
# six source maps (`model.sources`, one forward pass at batch 1). **The network here is untrained**
# (random weights; minissd has no ImageNet weights to load), so the maps show what random 3x3 filters
# pick up: colour and edges, blurred more and more by depth. What they do *not* show is semantics; with
# ImageNet weights the deep maps respond to parts and objects. Each panel is the mean over channels.

# %%
import matplotlib.cbook as cbook

from minissd.data import eval_transform, resize_image

with cbook.get_sample_data("grace_hopper.jpg") as fh:
    photo = plt.imread(fh)
h, w = photo.shape[:2]
s0 = min(h, w)
square = photo[(h - s0) // 2:(h - s0) // 2 + s0, (w - s0) // 2:(w - s0) // 2 + s0]
photo300 = np.clip(np.rint(resize_image(square, cfg.input_size)), 0, 255).astype(np.uint8)
x, _, _ = eval_transform(cfg.input_size)(photo300, np.zeros((0, 4), np.float32), np.zeros(0, np.int64))

model.eval()
t0 = time.perf_counter()
with minissd.no_grad():
    maps = [to_numpy(m_.data)[0] for m_ in model.sources(x[None])]       # each (C, f, f)
print(f"one forward pass of SSD300 at batch 1: {time.perf_counter() - t0:.1f} s")
for name, a, r in zip(cfg.source_names, maps, source_rows):
    assert a.shape[1] == r["out"] and a.shape[0] == r["channels"]
    print(f"{name:9s} {str(a.shape):>16s}  one cell = {cfg.input_size / a.shape[1]:5.1f} px of the input, "
          f"{(a > 0).mean():.0%} of activations > 0")

fig, axes = plt.subplots(1, 7, figsize=(15, 2.8))
axes[0].imshow(photo300)
axes[0].set_title("input 300x300", fontsize=9)
for ax, name, a in zip(axes[1:], cfg.source_names, maps):
    ax.imshow(a.mean(axis=0), cmap="magma")
    ax.set_title(f"{name} {a.shape[1]}x{a.shape[2]}x{a.shape[0]}", fontsize=9)
for ax in axes:
    ax.set_xticks([])
    ax.set_yticks([])
fig.suptitle("channel mean of each source map (untrained network)", fontsize=10)
fig.tight_layout()
show_jpeg(fig)

# %% [markdown]
# Single channels show more than the mean: the six channels of conv4_3 and of fc7 with the most spatial
# variation. The blocks in fc7 come from fc6's dilation: its taps are 6 pixels apart, so for outputs within
# 6 pixels of the border some taps fall into the zero padding, and the map splits into bands.

# %%
fig, axes = plt.subplots(2, 6, figsize=(13, 4.6))
for row, k in zip(axes, [0, 1]):
    a = maps[k]
    top = np.argsort(a.reshape(a.shape[0], -1).std(axis=1))[::-1][:6]
    for ax, c in zip(row, top):
        ax.imshow(a[c], cmap="magma")
        ax.set_title(f"{cfg.source_names[k]} channel {c}", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
fig.suptitle("single channels (untrained network)", fontsize=10)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 4. L2Norm on conv4_3: why the first source map is rescaled
#
# conv4_3 is read by a detection head directly, like fc7, but it sits much earlier in the network. The
# paper (following ParseNet) notes that its features have a different, larger scale than those of later
# layers, so one head's weights would have to work on very different magnitudes. SSD therefore puts an
# **L2Norm** layer on conv4_3 (`minissd.nn.L2Norm`, `model.l2norm`): at every location it divides the
# channel vector by its length, then multiplies channel c by a **learned** scale γ_c, initialised to
# `config.l2norm_scale`. So after L2Norm each location's feature vector has length about γ, whatever the
# image, and training can still raise or lower the scale of each channel.
#
# Measured below: the length of the channel vector at every location of conv4_3 and fc7 (`model.base`
# returns both, before any normalization) for the untrained SSD300 on the photograph, and for the trained,
# shipped `ssd_mini` on a `ShapesDataset` image when its weights are present.

# %%
from IPython.display import Markdown

from minissd.data import ShapesDataset
from minissd.models import shipped_weights
from minissd.train import load_model


def location_norms(net, image_batch):
    """Length of the channel vector at each location: conv4_3 and fc7 before L2Norm, conv4_3 after it."""
    with minissd.no_grad():
        conv4_3, fc7 = net.base(image_batch)
        normed = net.l2norm(conv4_3)
    return [np.linalg.norm(to_numpy(t.data)[0], axis=0) for t in (conv4_3, fc7, normed)]   # each (f, f)


cases = [("SSD300, untrained, photograph", model, x[None])]
mini_path = shipped_weights("ssd_mini")
if os.path.isfile(mini_path):
    mini = load_model(mini_path)
    mini.eval()
    shapes_image = ShapesDataset(1, image_size=mini.config.input_size, seed=3)[0]
    xm, _, _ = eval_transform(mini.config.input_size)(*shapes_image)
    cases.append(("ssd_mini, shipped weights, ShapesDataset image", mini, xm[None]))

fig, axes = plt.subplots(len(cases), 3, figsize=(11, 3.4 * len(cases)), squeeze=False)
lines = []
for row, (title, net, xb) in zip(axes, cases):
    n43, n7, n43_after = location_norms(net, xb)
    gamma = to_numpy(net.l2norm.weight.data)
    for ax, a, what in zip(row, (n43, n7, n43_after), ("conv4_3", "fc7", "conv4_3 after L2Norm")):
        flat = np.ptp(a) < 1e-3 * a.mean()          # a constant map: show it as one colour, not as noise
        im = ax.imshow(a, cmap="viridis", vmin=0.9 * a.mean() if flat else None, vmax=1.1 * a.mean() if flat else None)
        fig.colorbar(im, ax=ax, fraction=0.046, label="channel-vector length")
        ax.set_title(f"{what}: median length {np.median(a):.3g}", fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    row[0].set_ylabel(title, fontsize=9)
    lines.append(f"* {title}: median length **{np.median(n43):.3g}** on conv4_3 and **{np.median(n7):.3g}** "
                 f"on fc7 (ratio {np.median(n43) / np.median(n7):.2g}); after L2Norm every conv4_3 location has "
                 f"length {np.median(n43_after):.3g} (γ starts at {net.config.l2norm_scale:g}; now mean "
                 f"{gamma.mean():.3g}, range {gamma.min():.3g} to {gamma.max():.3g} over {gamma.size} channels).")
fig.tight_layout()
plt.show()
display(Markdown("\n".join(lines)))

# %% [markdown]
# The raw scales depend on the weights: the paper's observation is about ImageNet-trained VGG16, and the
# measurements above (random weights; `ssd_mini`, whose BatchNorm already standardizes every channel) give
# the ratios printed, not the paper's. Whatever the two raw scales are, after
# L2Norm the conv4_3 head sees vectors of one fixed length, set by γ. The initial γ matters: the head's
# first outputs grow with it, which is why `SSDConfig.mini()` (BatchNorm, 1/8 of the channels) starts from
# a smaller `l2norm_scale` than the paper's SSD300 (each model's starting γ is printed above).
#
# ## Exercise: the side of conv4_3 and fc7 at 512 px (classroom assignment `max_pool`)
#
# SSD512 feeds a 512x512 image to the same backbone. Using only `F.conv2d_output_shape` and
# `F.max_pool2d_output_shape` (with the kernel, stride, padding and `ceil_mode` of `model.base`'s layers,
# in `VGG16_LAYERS` order), compute the side of conv4_3 and of fc7 for a 512 px input. Replace `None` and run
# the check.

# %%
my_sides = None  # your answer: (conv4_3 side, fc7 side) at 512x512, computed layer by layer

# %%
from minissd.models.vgg import VGGBase

if my_sides is None:
    print("not answered yet: set my_sides in the cell above")
elif tuple(my_sides) == tuple(VGGBase.feature_sizes(512)):
    print(f"right: conv4_3 and fc7 are {my_sides[0]}x{my_sides[0]} and {my_sides[1]}x{my_sides[1]} at 512 px")
else:
    print(f"wrong: {my_sides}; which pools round up (ceil_mode), and what does pool5 do to the side?")

# %% [markdown]
# ## Summary
#
# * SSD300's backbone is VGG16 to conv5_3 with pool3 in ceil mode (38x38 conv4_3) and pool5 at stride 1
#   (19x19 fc7); extras halve the map down to 1x1. The table above gives every shape, parameter and FLOP.
# * fc6/fc7 as subsampled convolutions: a fraction of the parameters and FLOPs of the dense layers, and
#   one prediction per location instead of one per image.
# * The six source maps go from stride 8 to the whole image. Next: the default boxes placed on them (04).
