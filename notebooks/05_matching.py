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
# # 05 · Matching: which default boxes learn which object
#
# Training needs a target for every default box: a class (0 = background) and, for the matched ones
# (**positives**), the object's box as offsets. The paper matches in two steps:
#
# 1. **bipartite**: every ground-truth object takes the default box it overlaps most (highest IoU);
# 2. **threshold**: every other default box with IoU ≥ 0.5 with some object is matched to that object.
#
# This notebook shows the IoU that drives it, each step, which feature map each object ends up on, and the
# encoding of the targets. Code: `minissd/matching.py` and `minissd/boxes.py`.

# %%
import io
import os

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

# %%
from minissd.boxes import center_to_corners, corners_to_center, decode, encode, iou
from minissd.config import SSDConfig
from minissd.data import ShapesDataset
from minissd.matching import match, match_priors
from minissd.priors import best_overlaps, default_boxes, map_slices
from minissd.viz import MAP_COLOURS, draw_boxes, iou_heatmap, plot_matching, show_image

cfg = SSDConfig.mini()                                      # the detector trained in notebook 07
priors = to_numpy(default_boxes(cfg))                       # (P, 4) centre form
corners = to_numpy(center_to_corners(priors))               # (P, 4) corners, for drawing and IoU
slices = map_slices(cfg)
names = cfg.source_names
ds = ShapesDataset(60, image_size=cfg.input_size, scene="mixed", seed=1)

# the first image with a large object, a small one (8-20 px) and one without any IoU >= 0.5 default box
for index in range(len(ds)):
    image, boxes, labels = ds[index]
    side = np.sqrt((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])) * cfg.input_size  # px
    best = best_overlaps(boxes, priors)
    small_ok = (side >= 8) & (side <= 20) & (best >= 0.5)
    if len(boxes) >= 3 and small_ok.any() and side.max() > 70 and (best < 0.5).any():
        break
small, large = int(np.argmax(np.where(small_ok, best, -1))), int(side.argmax())
print(f"image {index}: {len(boxes)} objects, sizes √(w·h) = {np.round(side).astype(int)} px, "
      f"best IoU {np.round(best, 2)}")

# %% [markdown]
# ## 1. IoU with every default box, map by map
#
# `viz.iou_heatmap(box, cfg, k)` gives, for each location of map k, the best IoU among that location's
# default boxes. For the small object only the large maps have a high value; for the large object only
# the small maps.

# %%
fig, axes = plt.subplots(2, len(names) + 1, figsize=(14, 5.6))
for row, (obj, what) in enumerate([(small, "small"), (large, "large")]):
    ax = axes[row, 0]
    show_image(ax, image, f"{what} object: {ds.class_names[labels[obj]]}")
    draw_boxes(ax, boxes[obj:obj + 1], color="white", linewidth=2, show_text=False)
    for k, name in enumerate(names):
        heat = iou_heatmap(boxes[obj], cfg, k)                      # (f, f)
        ax = axes[row, k + 1]
        ax.imshow(heat, vmin=0, vmax=1, cmap="viridis")
        f = cfg.feature_maps[k]
        draw_boxes(ax, boxes[obj:obj + 1], image_size=(f, f), color="white", linewidth=1, show_text=False)
        ax.set_title(f"{name} {f}x{f}: max {heat.max():.2f}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
fig.suptitle("best IoU per location with one ground-truth box (0 dark, 1 yellow)", fontsize=10)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 2. The bipartite step and the threshold step
#
# `match_priors(gt_boxes, priors, iou_threshold)` returns, per default box, the index of its object (or −1).
# With `iou_threshold=1.0` no default box passes the threshold step (an IoU of 1 needs an exact copy),
# so only the bipartite step is left. The threshold step alone is the IoU matrix compared with 0.5.

# %%
overlaps = to_numpy(iou(boxes, corners))                            # (G, P)
step1, _ = match_priors(boxes, priors, iou_threshold=1.0)          # bipartite only
step2 = np.where(overlaps.max(0) >= 0.5, overlaps.argmax(0), -1)    # threshold only
both, _ = match_priors(boxes, priors)                               # the paper's rule (0.5)

print(f"{'object':>10s} {'size px':>8s} {'best IoU':>9s} {'step 1':>7s} {'step 2':>7s} {'both':>5s}")
for g in range(len(boxes)):
    print(f"{ds.class_names[labels[g]]:>10s} {side[g]:8.0f} {overlaps[g].max():9.2f} "
          f"{(step1 == g).sum():7d} {(step2 == g).sum():7d} {(both == g).sum():5d}")
print(f"positives: step 1 {(step1 >= 0).sum()}, step 2 {(step2 >= 0).sum()}, both {(both >= 0).sum()} "
      f"of {len(priors)} default boxes")


# %%
def draw_matches(ax, gt_index, title):
    show_image(ax, image, title)
    for k, sl in enumerate(slices):
        idx = np.nonzero(gt_index[sl] >= 0)[0] + sl.start
        draw_boxes(ax, corners[idx], color=MAP_COLOURS[k], linewidth=0.8, show_text=False)
    draw_boxes(ax, boxes, color="white", linewidth=1.5, linestyle="--", show_text=False)


fig, axes = plt.subplots(1, 3, figsize=(12, 4.3), dpi=60)
draw_matches(axes[0], step1, f"step 1, bipartite: {(step1 >= 0).sum()} positives")
draw_matches(axes[1], step2, f"step 2, IoU >= 0.5: {(step2 >= 0).sum()} positives")
plot_matching(image, boxes, labels, cfg, class_names=ds.class_names, ax=axes[2])
fig.tight_layout()
plt.show()

# %% [markdown]
# Step 1 alone gives each object exactly one positive, too few to learn from. Step 2 alone gives more, but
# an object without any IoU ≥ 0.5 box (best IoU below 0.5 in the table) gets none there and would never be
# trained on.
# Together (right, `viz.plot_matching`, colours by feature map): every object has positives, most of them
# several.
#
# ## 3. Which feature map each object ends up on
#
# Over many images, count each object's positives per map, by object size.

# %%
many = ShapesDataset(100 if FAST else 400, image_size=cfg.input_size, scene="mixed", seed=2)
sizes, per_map, targets = [], [], []
for i in range(len(many)):
    _, b, _ = many[i]
    gi, _ = match_priors(b, priors)
    counts = np.stack([np.bincount(gi[sl][gi[sl] >= 0], minlength=len(b)) for sl in slices], axis=1)
    sizes.append(np.sqrt((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])) * cfg.input_size)
    per_map.append(counts)                                             # (G, maps)
    pos = gi >= 0
    targets.append(encode(b[gi[pos]], priors[pos]))                   # offsets of the positives
sizes, per_map, targets = np.concatenate(sizes), np.concatenate(per_map), np.concatenate(targets)

edges = [0, 12, 24, 48, 96, cfg.input_size]
bins = [f"{lo}-{hi}" for lo, hi in zip(edges, edges[1:])]
share = np.zeros((len(bins), len(names)))
print(f"{len(sizes)} objects in {len(many)} images; positives per object by size and map:")
print(f"{'size px':>8s} {'objects':>8s} " + " ".join(f"{n:>9s}" for n in names) + f" {'mean pos':>9s}")
for b_, (lo, hi) in enumerate(zip(edges, edges[1:])):
    sel = (sizes >= lo) & (sizes < hi)
    tot = per_map[sel].sum(0)
    share[b_] = tot / max(tot.sum(), 1)
    print(f"{bins[b_]:>8s} {sel.sum():8d} " + " ".join(f"{v:9d}" for v in tot) +
          f" {per_map[sel].sum(1).mean():9.1f}")

fig, ax = plt.subplots(figsize=(7, 3.4))
bottom = np.zeros(len(bins))
for k, name in enumerate(names):
    ax.bar(bins, share[:, k], bottom=bottom, color=MAP_COLOURS[k],
           label=f"{name} ({cfg.feature_maps[k]}x{cfg.feature_maps[k]})")
    bottom += share[:, k]
ax.set_xlabel("object size √(w·h), px of 160")
ax.set_ylabel("share of its positives")
ax.set_title("where the positives of each object size live", fontsize=10)
ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
fig.tight_layout()
plt.show()

# %% [markdown]
# Small objects are matched on the large maps (conv4_3, fc7), large objects on the small ones. A flock of
# small birds therefore lives almost entirely on the first map:

# %%
flock = ShapesDataset(10 if FAST else 40, image_size=cfg.input_size, scene="flock", seed=2)
counts, n_obj = np.zeros(len(names), int), 0
for i in range(len(flock)):
    _, b, _ = flock[i]
    gi, _ = match_priors(b, priors)
    counts += np.array([(gi[sl] >= 0).sum() for sl in slices])
    n_obj += len(b)
print(f"flock scenes: {n_obj} objects, {counts.sum()} positives; share per map: " +
      ", ".join(f"{n} {c / counts.sum():.0%}" for n, c in zip(names, counts)))

# %% [markdown]
# ## 4. Encoding the targets, and decoding them back
#
# A positive's target is its object's box as **offsets** from the default box d (paper, eq. 2), divided by
# the variances 0.1 and 0.2: l_cx = (g_cx − d_cx)/(0.1·d_w), l_w = log(g_w/d_w)/0.2 (same for y, h).
# `match` returns these offsets for all P default boxes (zeros for background) and the class targets.

# %%
loc_t, conf_t = match(boxes, labels, priors)                       # (P, 4), (P,)
gi, _ = match_priors(boxes, priors)
pos = np.nonzero(conf_t > 0)[0]
p = pos[int(np.argmax(overlaps.max(0)[pos]))]                      # the best-overlapping positive
d, g = priors[p], corners_to_center(boxes[gi[p]])
print(f"default box {p} ({names[next(k for k, sl in enumerate(slices) if sl.start <= p < sl.stop)]}): "
      f"d = {np.round(d, 4)} (cx, cy, w, h)")
print(f"its object: g = {np.round(g, 4)}, class {ds.class_names[conf_t[p]]}")
hand = [(g[0] - d[0]) / (0.1 * d[2]), (g[1] - d[1]) / (0.1 * d[3]),
        np.log(g[2] / d[2]) / 0.2, np.log(g[3] / d[3]) / 0.2]
print(f"by hand:  l = {np.round(hand, 4)}")
print(f"match():  l = {np.round(loc_t[p], 4)}")

back = decode(loc_t[pos], priors[pos])                             # corners again
err = np.abs(back - boxes[gi[pos]]).max()
print(f"decode(encode(.)) over all {len(pos)} positives: largest error {err:.1e} (float32)")
print(f"decode of zero offsets is the default box itself: "
      f"{np.allclose(decode(np.zeros((1, 4), np.float32), priors[p:p + 1]), corners[p:p + 1])}")

# %% [markdown]
# Why the variances: they scale the offsets of matched boxes to about unit size, the range where the
# smooth L1 loss (notebook 06) is quadratic. The offsets of all positives of section 3:

# %%
fig, axes = plt.subplots(1, 4, figsize=(12, 2.8), sharey=True)
for j, (ax, label) in enumerate(zip(axes, ["l_cx", "l_cy", "l_w", "l_h"])):
    ax.hist(targets[:, j], bins=40, color="C0")
    ax.set_title(f"{label}: std {targets[:, j].std():.2f}", fontsize=10)
fig.suptitle(f"encoded targets of {len(targets)} positives, variances (0.1, 0.2)", fontsize=10)
fig.tight_layout()
plt.show()
unscaled = targets * np.array([0.1, 0.1, 0.2, 0.2])     # what variances (1, 1) would give
print("with variances (1, 1) the same offsets would have std", np.round(unscaled.std(0), 3))

# %% [markdown]
# ## Summary
#
# * IoU decides everything: a default box is a candidate for an object only if their sizes and positions
#   agree, so small objects meet the boxes of the large maps.
# * Bipartite step: every object gets its best default box. Threshold step: every box with IoU ≥ 0.5 joins.
# * `match` turns the assignment into targets: class per box, offsets per positive, and `decode` inverts
#   `encode` exactly. Next: the loss that trains on these targets (06).
