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
# # 04 · Default boxes: a fixed set of boxes on every feature map
#
# SSD never predicts a box from nothing. At every location of every source feature map it places the same
# few **default boxes** (the paper's name; Faster R-CNN calls them anchors), and the network predicts
# offsets from each of them plus class scores. This notebook lays them out for SSD300: the sizes table and
# the **8732** count, the boxes of each map on a photograph, the paper's **scale rule** against the released
# sizes, and why **large maps serve small objects and small maps large objects**.
# Code: `minissd/config.py` (`SSDConfig`) and `minissd/priors.py`.

# %%
import os

import matplotlib.pyplot as plt
import numpy as np

import minissd
from minissd import to_numpy

FAST = os.environ.get("MINISSD_FAST") == "1"  # CI sets it: smaller sizes, the same pictures
# %config InlineBackend.figure_format = "png"
plt.rcParams["figure.dpi"] = 72
print(f"minissd {minissd.__version__}, backend {minissd.get_backend()}, FAST={FAST}")

# %% [markdown]
# ## 1. The sizes table and the 8732 count
#
# Per map k: side f_k, step (pixels between neighbouring centres), box sizes in pixels and aspect ratios.
# Each location gets two squares (sides min_k and √(min_k·max_k)) and, per ratio r, a box r:1 and 1:r.

# %%
from minissd.config import SSDConfig
from minissd.priors import default_boxes, default_boxes_per_map, feature_map_boxes

cfg = SSDConfig.ssd300()
print(cfg.format_table())
rows = cfg.table()
priors = to_numpy(default_boxes(cfg))  # (P, 4) centre form (cx, cy, w, h), normalized to [0, 1]
print()
print(" + ".join(f"{r['size']}²·{r['boxes_per_location']}" for r in rows),
      "=", " + ".join(str(r["boxes"]) for r in rows), "=", priors.shape[0])

# %% [markdown]
# The boxes of one location, here on conv9_2 (order fixed by `DESIGN.md`: the two squares, then each
# ratio and its inverse):

# %%
k = cfg.source_names.index("conv9_2")
r = rows[k]
one_map = to_numpy(feature_map_boxes(r["size"], r["step"], r["min_size"], r["max_size"],
                                     r["aspect_ratios"], cfg.input_size))  # (f, f, A, 4)
names = ["1", "1'"] + [n for a in r["aspect_ratios"] for n in (f"{a:g}", f"1/{a:g}")]
print(f"{r['source']}: {r['size']}x{r['size']} map, step {r['step']:g} px; boxes at row 0, column 0:")
for name, (cx, cy, w, h) in zip(names, one_map[0, 0] * cfg.input_size):
    print(f"  ratio {name:>3s}: centre ({cx:5.1f}, {cy:5.1f}) px, {w:6.1f} x {h:6.1f} px, "
          f"w/h = {w / h:.2f}, area = {w * h:7.0f} px²")

# %% [markdown]
# ## 2. The default boxes of every map, on a photograph
#
# `viz.plot_default_boxes` draws each map's grid of cells (one cell per location), the centres of all its
# locations, and the boxes of the centre location. The photograph is the sample image that ships with
# matplotlib, cropped square and resized to 300x300.

# %%
import matplotlib.cbook as cbook

from minissd.data import resize_image
from minissd.viz import MAP_COLOURS, draw_boxes, plot_default_boxes

with cbook.get_sample_data("grace_hopper.jpg") as fh:
    photo = plt.imread(fh)
h, w = photo.shape[:2]
side = min(h, w)
square = photo[(h - side) // 2:(h - side) // 2 + side, (w - side) // 2:(w - side) // 2 + side]
photo300 = np.clip(np.rint(resize_image(square, cfg.input_size)), 0, 255).astype(np.uint8)
print(f"photo {photo.shape} -> {photo300.shape}")
with plt.rc_context({"figure.dpi": 60}):                 # a photo: keep the stored PNG small
    fig = plot_default_boxes(cfg, image=photo300, locations="all")
    fig.set_size_inches(fig.get_size_inches() * [1, 1.1])  # room for the second row's titles
    fig.tight_layout()
    plt.show()

# %% [markdown]
# The same for `SSDConfig.mini()`, the 160 px detector this project trains on a CPU, on a `ShapesDataset`
# image:

# %%
from minissd.data import ShapesDataset

mini = SSDConfig.mini()
print(mini.format_table())
shapes = ShapesDataset(1, image_size=mini.input_size, seed=0)
image, boxes, labels = shapes[0]
with plt.rc_context({"figure.dpi": 60}):
    fig = plot_default_boxes(mini, image=image, locations="all")
    fig.set_size_inches(fig.get_size_inches() * [1, 1.1])
    fig.tight_layout()
    plt.show()

# %% [markdown]
# ## 3. The paper's scale rule next to the released sizes
#
# The paper spreads the scales of m maps evenly: s_k = s_min + (s_max − s_min)(k − 1)/(m − 1), with
# s_min = 0.2 and s_max = 0.9, so min_k = s_k · 300. The released SSD300 uses explicit sizes instead, with
# a smaller first scale for conv4_3. `cfg.replace(min_sizes=None, max_sizes=None)` gives the rule's
# version of the same network.

# %%
paper = cfg.replace(min_sizes=None, max_sizes=None, name="paper scale rule")
pmin, pmax = paper.resolved_sizes()
rmin, rmax = cfg.resolved_sizes()
m = len(cfg.feature_maps)
print(f"s_min = {paper.s_min}, s_max = {paper.s_max}, m = {m} maps")
print(f"{'map':9s} {'s_k':>5s} | {'rule: min':>9s} {'sqrt(min·max)':>13s} | {'released: min':>13s} "
      f"{'sqrt(min·max)':>13s} {'scale':>6s}")
for k, name in enumerate(cfg.source_names):
    print(f"{name:9s} {pmin[k] / paper.input_size:5.2f} | {pmin[k]:9.0f} {np.sqrt(pmin[k] * pmax[k]):13.1f} | "
          f"{rmin[k]:13.0f} {np.sqrt(rmin[k] * rmax[k]):13.1f} {rmin[k] / cfg.input_size:6.2f}")
print(f"default boxes: rule {paper.num_priors}, released {cfg.num_priors} (same count, other sizes)")

# %%
fig, axes = plt.subplots(1, 3, figsize=(12, 3.8), gridspec_kw={"width_ratios": [1.3, 1, 1]}, dpi=60)
ax = axes[0]
x = np.arange(m)
ax.plot(x, pmin, "o-", label="paper rule: min_k = s_k · 300")
ax.plot(x, rmin, "s-", label="released min_sizes")
ax.plot(x, np.sqrt(np.multiply(pmin, pmax)), "o:", color="C0", alpha=0.6, label="rule: √(min·max)")
ax.plot(x, np.sqrt(np.multiply(rmin, rmax)), "s:", color="C1", alpha=0.6, label="released: √(min·max)")
ax.set_xticks(x, cfg.source_names, rotation=30, fontsize=8)
ax.set_ylabel("square box side (px of 300)")
ax.legend(fontsize=7)
ax.set_title("box size per feature map", fontsize=10)
for ax, (title, mins) in zip(axes[1:], [("paper rule", pmin), ("released", rmin)]):
    ax.imshow(photo300)
    for k, s in enumerate(mins):  # the min square of every map, centred in the image
        b = np.array([[0.5 - s / 600, 0.5 - s / 600, 0.5 + s / 600, 0.5 + s / 600]])
        draw_boxes(ax, b, color=MAP_COLOURS[k], linewidth=2, show_text=False)
    ax.set_axis_off()
    ax.set_title(f"{title}: min square of each map", fontsize=10)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 4. Large maps for small objects, small maps for large objects
#
# A default box can match an object only if their IoU is high, and IoU is high only when the two have a
# similar size. Put square objects of many sizes at random positions and ask each map for its best IoU
# (`priors.best_overlaps`): each map's curve peaks near its own box size.

# %%
from minissd.priors import best_overlaps

rng = np.random.default_rng(0)
sides = np.geomspace(0.03, 1.0, 16 if FAST else 32)     # object side, fraction of the image
trials = 20 if FAST else 100                              # random positions per size
per_map = [to_numpy(p) for p in default_boxes_per_map(cfg)]
mean_best = np.zeros((m, len(sides)))
for i, s in enumerate(sides):
    c = rng.uniform(s / 2, 1 - s / 2, size=(trials, 2))
    gt = np.concatenate([c - s / 2, c + s / 2], axis=1).astype(np.float32)
    for k, pk in enumerate(per_map):
        mean_best[k, i] = best_overlaps(gt, pk).mean()

fig, ax = plt.subplots(figsize=(7, 3.6))
for k, name in enumerate(cfg.source_names):
    ax.semilogx(sides * cfg.input_size, mean_best[k], "o-", ms=3, color=MAP_COLOURS[k],
                label=f"{name} ({cfg.feature_maps[k]}x{cfg.feature_maps[k]})")
ax.axhline(0.5, color="grey", ls="--", lw=0.8)
ax.set_xlabel("object side (px of 300, square objects at random positions)")
ax.set_ylabel("mean best IoU on this map")
ax.set_title("SSD300: which map fits which object size", fontsize=10)
ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
fig.tight_layout()
plt.show()
for k, name in enumerate(cfg.source_names):
    i = int(mean_best[k].argmax())
    print(f"{name:9s} best for objects of about {sides[i] * cfg.input_size:5.0f} px "
          f"(mean best IoU {mean_best[k, i]:.2f}); its squares: {rmin[k]:.0f} and "
          f"{np.sqrt(rmin[k] * rmax[k]):.0f} px")

# %% [markdown]
# The same question on real training data: `ShapesDataset` objects (mixed scenes, 160 px) against the mini
# detector's maps. For every object, which map holds its best default box?

# %%
data = ShapesDataset(150 if FAST else 600, image_size=mini.input_size, scene="mixed", seed=1)
gts = np.concatenate([data[i][1] for i in range(len(data))])                      # (G, 4)
size_px = np.sqrt((gts[:, 2] - gts[:, 0]) * (gts[:, 3] - gts[:, 1])) * mini.input_size
best = np.stack([best_overlaps(gts, to_numpy(p)) for p in default_boxes_per_map(mini)], axis=1)  # (G, m)
best_map = best.argmax(axis=1)

edges = [0, 12, 24, 48, 96, mini.input_size]
bins = [f"{lo}-{hi}" for lo, hi in zip(edges, edges[1:])]
table = np.zeros((len(bins), len(mini.feature_maps)), int)
for b, (lo, hi) in enumerate(zip(edges, edges[1:])):
    table[b] = np.bincount(best_map[(size_px >= lo) & (size_px < hi)], minlength=len(mini.feature_maps))

fig, ax = plt.subplots(figsize=(7, 3.4))
bottom = np.zeros(len(bins))
for k, name in enumerate(mini.source_names):
    share = table[:, k] / np.maximum(table.sum(1), 1)
    side = mini.feature_maps[k]
    ax.bar(bins, share, bottom=bottom, color=MAP_COLOURS[k], label=f"{name} ({side}x{side})")
    bottom += share
ax.set_xlabel("object size √(w·h), px of 160")
ax.set_ylabel("share of objects")
ax.set_title(f"map of each object's best default box ({len(gts)} objects)", fontsize=10)
ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
fig.tight_layout()
plt.show()
print(f"{'size px':>8s} " + " ".join(f"{n:>9s}" for n in mini.source_names) + "   best IoU >= 0.5")
for b, name in enumerate(bins):
    sel = (size_px >= edges[b]) & (size_px < edges[b + 1])
    print(f"{name:>8s} " + " ".join(f"{v:9d}" for v in table[b]) +
          f"   {(best[sel].max(1) >= 0.5).mean():.0%}")

# %% [markdown]
# Small objects find their best box on conv4_3, the largest map; the largest objects on the last, 1x1 map.
# The smallest objects rarely reach IoU 0.5 with any default box: the 8 px step of the first map is too
# coarse for them. Matching (notebook 05) still gives each of them its best box.
#
# ## Summary
#
# * SSD300: six maps, 4 or 6 boxes per location, 8732 default boxes (`SSDConfig.ssd300().num_priors`).
# * Box sizes grow from map to map, either by the paper's scale rule (0.2 to 0.9) or as released (a smaller
#   first scale); `SSDConfig.table()` lists both.
# * A box size suits an object size: the early, large maps serve small objects and the late, small maps
#   large objects. Next: matching ground truth to default boxes (05).
