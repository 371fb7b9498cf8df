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
# ## 0. A case small enough to check by hand: 5 default boxes, 2 objects
#
# Before the real detector, five default boxes d0..d4 and two objects g0, g1 on a unit image (corners
# (xmin, ymin, xmax, ymax)). `iou` gives the table; `match_priors` the assignment (−1 = background).
# Every number can be checked on paper: IoU = intersection area / (area a + area b − intersection).

# %%
from IPython.display import Markdown

toy_defaults = np.array([[0.00, 0.00, 0.40, 0.40], [0.10, 0.10, 0.50, 0.50], [0.45, 0.45, 0.85, 0.85],
                         [0.60, 0.50, 1.00, 0.90], [0.30, 0.60, 0.50, 0.80]], np.float32)   # (5, 4) corners
toy_objects = np.array([[0.08, 0.08, 0.46, 0.46], [0.64, 0.55, 0.90, 0.80]], np.float32)      # (2, 4) corners
toy_iou = to_numpy(iou(toy_objects, toy_defaults))                                            # (2, 5)
toy_match, _ = match_priors(toy_objects, corners_to_center(toy_defaults))
toy_bipartite, _ = match_priors(toy_objects, corners_to_center(toy_defaults), iou_threshold=1.0)
print("IoU      " + " ".join(f"{f'd{j}':>6s}" for j in range(5)))
for g, row in enumerate(toy_iou):
    print(f"g{g}       " + " ".join(f"{v:6.3f}" for v in row))
print("step 1   " + " ".join(f"{v:6d}" for v in to_numpy(toy_bipartite)))
print("match    " + " ".join(f"{v:6d}" for v in to_numpy(toy_match)))
toy_match = to_numpy(toy_match)
fig, ax = plt.subplots(figsize=(11, 6.5))
for j, d in enumerate(toy_defaults):
    colour = ["C0", "C1", "grey"][toy_match[j]]
    ax.add_patch(plt.Rectangle(d[:2], *(d[2:] - d[:2]), fc="none", ec=colour, lw=1.5, ls="--"))
    ax.text(d[0] + 0.01, d[1] + 0.04, f"d{j}", color=colour, fontsize=10)
for g, b in enumerate(toy_objects):
    ax.add_patch(plt.Rectangle(b[:2], *(b[2:] - b[:2]), fc=f"C{g}", alpha=0.25, ec=f"C{g}", lw=2))
    ax.text(b[0] + 0.01, b[3] - 0.02, f"g{g}", color=f"C{g}", fontsize=11, weight="bold")
ax.set_xlim(-0.02, 1.5)
ax.set_ylim(1.02, -0.02)
ax.set_aspect("equal")
ax.legend(handles=[plt.Rectangle((0, 0), 1, 1, fc="none", ec=c, ls="--") for c in ("C0", "C1", "grey")],
          labels=["matched to g0", "matched to g1", "background"], loc="center right", fontsize=9)
ax.set_title("5 default boxes (dashed, coloured by their match) and 2 objects (filled)")
plt.show()
best_g1 = int(toy_iou[1].argmax())
display(Markdown(
    f"g0's best box is d{int(toy_iou[0].argmax())} (IoU {toy_iou[0].max():.3f}, step 1) and "
    f"{', '.join(f'd{j}' for j in np.nonzero(toy_iou[0] >= 0.5)[0])} pass 0.5 (step 2). g1's best IoU is only "
    f"{toy_iou[1].max():.3f} (d{best_g1}): without the bipartite step g1 would have no positive at all. "
    f"Result: {int((toy_match >= 0).sum())} positives, {int((toy_match < 0).sum())} background."))

# %% [markdown]
# ## 1. IoU with every default box, map by map
#
# `viz.iou_heatmap(box, cfg, k)` gives, for each location of map k, the best IoU among that location's
# default boxes. For the small object only the large maps have a high value; for the large object only
# the small maps.

# %%
fig, axes = plt.subplots(2, len(names) + 1, figsize=(15, 6))
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
fig.suptitle("best IoU per location with one ground-truth box", fontsize=10)
fig.colorbar(plt.cm.ScalarMappable(cmap="viridis"), ax=axes, fraction=0.02, label="best IoU at the location")
show_jpeg(fig)

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
        draw_boxes(ax, corners[idx], color=MAP_COLOURS[k], linewidth=1.2, show_text=False)
    draw_boxes(ax, boxes, color="white", linewidth=1.5, linestyle="--", show_text=False)


counts = np.array([[(m_ == g).sum() for m_ in (step1, step2, both)] for g in range(len(boxes))])  # (G, 3)
differ = np.nonzero((counts != counts[:, :1]).any(axis=1))[0]           # objects whose positives differ
S = cfg.input_size
fig, axes = plt.subplots(2, 3, figsize=(13, 9))
for row in range(2):
    draw_matches(axes[row, 0], step1, f"step 1, bipartite: {(step1 >= 0).sum()} positives")
    draw_matches(axes[row, 1], step2, f"step 2, IoU >= 0.5: {(step2 >= 0).sum()} positives")
    plot_matching(image, boxes, labels, cfg, class_names=ds.class_names, ax=axes[row, 2])
if len(differ):
    region = boxes[differ]
    lo, hi = region[:, :2].min(0) * S, region[:, 2:].max(0) * S
    half = max(hi - lo) / 2 + 12                                       # px; a square window with a margin
    mid = (lo + hi) / 2
    for ax in axes[1]:
        ax.set_xlim(mid[0] - half, mid[0] + half)
        ax.set_ylim(mid[1] + half, mid[1] - half)
        ax.set_title(ax.get_title().split("\n")[0] + "\n(zoom on the objects whose positives differ)", fontsize=9)
else:
    for ax in axes[1]:
        ax.set_visible(False)
handles = [plt.Line2D([], [], color=MAP_COLOURS[k], lw=2, label=f"{n} {cfg.feature_maps[k]}x{cfg.feature_maps[k]}")
           for k, n in enumerate(names)]
fig.legend(handles=handles, loc="lower center", ncol=len(names), fontsize=9, title="positives, by feature map")
fig.tight_layout(rect=(0, 0.06, 1, 1))
show_jpeg(fig)

n_pos = counts[:, 2]
one = int((n_pos == 1).sum())
most = int(n_pos.argmax())
display(Markdown(
    f"Step 1 alone gives each object exactly one positive. Step 2 alone gives {counts[:, 1].sum()} positives, but "
    f"{int((counts[:, 1] == 0).sum())} of the {len(boxes)} objects (best IoU below 0.5 in the table) get none "
    f"there and would never be trained on. Together (right, `viz.plot_matching`, colours by feature map): "
    f"every object has at least {n_pos.min()} positive; {one} of {len(boxes)} have exactly one, and the "
    f"{ds.class_names[labels[most]]} of {side[most]:.0f} px has the most, {n_pos[most]}. On this image, most "
    f"objects are learned from {'a single default box' if one > len(boxes) / 2 else 'several default boxes'}."))

# %% [markdown]
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

fig, ax = plt.subplots(figsize=(9, 3.8))
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
print(f"match():  l = {np.round(loc_t[p], 4)}")

back = decode(loc_t[pos], priors[pos])                             # corners again
err = np.abs(back - boxes[gi[pos]]).max()
print(f"decode(encode(.)) over all {len(pos)} positives: largest error {err:.1e} (float32)")
print(f"decode of zero offsets is the default box itself: "
      f"{np.allclose(decode(np.zeros((1, 4), np.float32), priors[p:p + 1]), corners[p:p + 1])}")

# %% [markdown]
# ### Exercise: encode one box by hand (classroom assignment `box_coding`)
#
# With d and g printed above and the formulas of this section (variances 0.1 and 0.2), compute the four
# offsets (l_cx, l_cy, l_w, l_h) yourself, on paper or with NumPy, and compare with `match()`. Replace `None`.

# %%
my_offsets = None   # your (l_cx, l_cy, l_w, l_h) for default box p and its object

# %%
if my_offsets is None:
    print("not answered yet: set my_offsets in the cell above")
elif np.allclose(my_offsets, loc_t[p], atol=1e-3):
    print("right: these are the offsets match() stores for this default box")
else:
    print("wrong: centre offsets are divided by 0.1 times the default box's size; sizes use log(g / d) / 0.2")

# %% [markdown]
# ### Exercise: match the five boxes of section 0 by hand (classroom assignment `matching`)
#
# Change one object of section 0: g1 becomes (0.55, 0.5, 0.95, 0.9). Without running `match_priors`, write the
# object index (or −1) each of d0..d4 gets; the check runs the library on the changed boxes.

# %%
my_toy_match = None   # e.g. [0, 0, -1, 1, -1]

# %%
changed = toy_objects.copy()
changed[1] = [0.55, 0.5, 0.95, 0.9]
truth, _ = match_priors(changed, corners_to_center(toy_defaults))
if my_toy_match is None:
    print("not answered yet: set my_toy_match in the cell above")
elif list(my_toy_match) == to_numpy(truth).tolist():
    print("right: that is the bipartite step followed by the 0.5 threshold")
else:
    print("wrong: first give each object its best box, then add every box with IoU >= 0.5")

# %% [markdown]
# Why the variances: they scale the offsets of matched boxes to about unit size, the range where the
# smooth L1 loss (notebook 06) is quadratic. The offsets of all positives of section 3:

# %%
fig, axes = plt.subplots(1, 4, figsize=(12, 3), sharey=True)
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
