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
# The boxes of one location, here on conv9_2, in the order `minissd.priors` always uses: the two squares,
# then each ratio and its inverse:

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
fig = plot_default_boxes(cfg, image=photo300, locations="all")
fig.set_size_inches(fig.get_size_inches() * [1, 1.1])  # room for the second row's titles
fig.tight_layout()
show_jpeg(fig)                                          # a photograph: JPEG keeps the notebook small

# %% [markdown]
# The same for `SSDConfig.mini()`, the 160 px detector this project trains on a CPU, on a `ShapesDataset`
# image:

# %%
from minissd.data import ShapesDataset

mini = SSDConfig.mini()
print(mini.format_table())
shapes = ShapesDataset(1, image_size=mini.input_size, seed=0)
image, boxes, labels = shapes[0]
fig = plot_default_boxes(mini, image=image, locations="all")
fig.set_size_inches(fig.get_size_inches() * [1, 1.1])
fig.tight_layout()
show_jpeg(fig)

# %% [markdown]
# ## 3. The paper's scale rule and the released sizes
#
# The paper spreads the scales of m maps evenly: s_k = s_min + (s_max − s_min)(k − 1)/(m − 1), with
# s_min = 0.2 and s_max = 0.9, so min_k = s_k · 300; the extra square uses √(s_k · s_{k+1}). For PASCAL VOC
# it also gives conv4_3 a scale of its own, 0.1. The released SSD300 follows that recipe, with one detail of
# the authors' script: the rule is applied to the **five later maps** in whole percent, so the step
# (90 − 20)/(5 − 1) = 17.5 % is floored to 17 %, and conv4_3 gets 10 % (min) and 20 % (max). The cell
# rebuilds the released sizes that way and compares them with `SSDConfig.ssd300()`, and with the rule run
# over all six maps (`cfg.replace(min_sizes=None, max_sizes=None)`, what `SSDConfig` computes without
# explicit sizes).

# %%
from IPython.display import Markdown

m = len(cfg.feature_maps)
s_min, s_max = 20, 90                                     # percent, as in the authors' script
step = (s_max - s_min) // (m - 2)                         # five later maps: 70 // 4 = 17 (not 17.5)
later = [s_min + step * k for k in range(m)]              # 20, 37, ..., one past the last for the max
rebuilt_min = [10 * cfg.input_size / 100] + [p_ * cfg.input_size / 100 for p_ in later[:m - 1]]
rebuilt_max = [20 * cfg.input_size / 100] + [p_ * cfg.input_size / 100 for p_ in later[1:m]]
rmin, rmax = cfg.resolved_sizes()
paper = cfg.replace(min_sizes=None, max_sizes=None, name="paper scale rule")
pmin, pmax = paper.resolved_sizes()
print(f"{'map':9s} | {'released min':>12s} {'max':>5s} | {'rebuilt min':>11s} {'max':>5s} | "
      f"{'rule on 6 maps: min':>19s} {'max':>5s}")
for k, name in enumerate(cfg.source_names):
    print(f"{name:9s} | {rmin[k]:12.0f} {rmax[k]:5.0f} | {rebuilt_min[k]:11.0f} {rebuilt_max[k]:5.0f} | "
          f"{pmin[k]:19.0f} {pmax[k]:5.0f}")
same = np.allclose(rebuilt_min, rmin) and np.allclose(rebuilt_max, rmax)
display(Markdown(
    f"The rebuilt sizes {'equal' if same else 'differ from'} the released ones: scales "
    f"{', '.join(f'{v / cfg.input_size:.2f}' for v in rebuilt_min)} (step {step / 100:.2f} instead of "
    f"{(s_max - s_min) / (m - 2) / 100:.3f} after conv4_3's 0.10). The rule over all six maps starts at "
    f"{pmin[0]:.0f} px instead of {rmin[0]:.0f} px on conv4_3; both give {paper.num_priors} default boxes, "
    f"since the count depends on the maps and ratios, not on the sizes."))

# %%
fig, axes = plt.subplots(1, 3, figsize=(13, 4.2), gridspec_kw={"width_ratios": [1.3, 1, 1]})
ax = axes[0]
x = np.arange(m)
ax.plot(x, pmin, "o-", label="rule on 6 maps: min_k = s_k · 300")
ax.plot(x, rmin, "s-", label="released min_sizes")
ax.plot(x, np.sqrt(np.multiply(pmin, pmax)), "o:", color="C0", alpha=0.6, label="rule: √(min·max)")
ax.plot(x, np.sqrt(np.multiply(rmin, rmax)), "s:", color="C1", alpha=0.6, label="released: √(min·max)")
ax.set_xticks(x, cfg.source_names, rotation=30, fontsize=8)
ax.set_ylabel("square box side (px of 300)")
ax.legend(fontsize=7)
ax.set_title("box size per feature map", fontsize=10)
for ax, (title, mins) in zip(axes[1:], [("rule on 6 maps", pmin), ("released", rmin)]):
    ax.imshow(photo300)
    for k, s in enumerate(mins):  # the min square of every map, centred in the image
        b = np.array([[0.5 - s / 600, 0.5 - s / 600, 0.5 + s / 600, 0.5 + s / 600]])
        draw_boxes(ax, b, color=MAP_COLOURS[k], linewidth=2, show_text=False)
    ax.set_axis_off()
    ax.set_title(f"{title}: min square of each map", fontsize=10)
fig.tight_layout()
show_jpeg(fig)

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

fig, ax = plt.subplots(figsize=(9, 4))
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

fig, ax = plt.subplots(figsize=(9, 3.8))
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

# %% [markdown]
# ## 5. From the heads' outputs to one row per default box
#
# On a map of side f with A boxes per location, the loc head is a 3x3 convolution with A·4 output channels
# and the conf head one with A·C: their outputs are (N, A·4, f, f) and (N, A·C, f, f). `SSD.forward` turns
# each into one row per default box: transpose to (N, f, f, A·4) so that the A boxes of one location are
# adjacent, reshape to (N, f·f·A, 4), then concatenate the maps, largest first. The result is (N, P, 4),
# and row p must describe **the same box as `default_boxes(cfg)[p]`**: map by map, locations row-major,
# then the A boxes of the location. Any other order (for instance reshaping NCHW directly) would pair
# each prediction with another default box, and the network would learn offsets from the wrong boxes.
# The trace on `ssd_mini` (untrained; a random image):

# %%
from minissd.models import ssd_mini
from minissd.priors import map_slices

minissd.seed(0)
net = ssd_mini(num_classes=ShapesDataset.num_classes)
net.eval()
xb = np.random.default_rng(0).standard_normal((2, 3, mini.input_size, mini.input_size)).astype(np.float32)
with minissd.no_grad():
    srcs = net.sources(xb)
    loc, conf = net(xb)                                                    # (N, P, 4), (N, P, C)
    rows_per_map, raws = [], []
    for k, (src, head) in enumerate(zip(srcs, net.loc_heads)):
        raw = head(src)                                                    # (N, A*4, f, f)
        nhwc = raw.transpose(0, 2, 3, 1)                                   # (N, f, f, A*4)
        per_box = nhwc.reshape(raw.shape[0], -1, 4)                        # (N, f*f*A, 4)
        raws.append(to_numpy(raw.data))
        rows_per_map.append(to_numpy(per_box.data))
        A = mini.num_priors_per_location[k]
        print(f"{mini.source_names[k]:9s} source {src.shape} -> loc head {raw.shape} (A*4 = {A}*4) "
              f"-> {nhwc.shape} -> {per_box.shape}")
stacked = np.concatenate(rows_per_map, axis=1)
print(f"concatenated: {stacked.shape}; model output loc {loc.shape}, conf {conf.shape}; "
      f"default boxes {net.default_boxes.shape}")
print("the concatenation is the model's loc output:", np.array_equal(stacked, to_numpy(loc.data)))

# one prediction followed through: map k, location (i, j), box a
k, i, j, a = 1, 3, 7, 2
f, A = mini.feature_maps[k], mini.num_priors_per_location[k]
p = map_slices(mini)[k].start + (i * f + j) * A + a
print(f"map {mini.source_names[k]}, location ({i}, {j}), box {a} -> row p = {p}")
print(f"  loc head channels {4 * a}..{4 * a + 3} at ({i}, {j}): {np.round(raws[k][0, 4 * a:4 * a + 4, i, j], 4)}")
print(f"  loc[0, p]:                     {np.round(to_numpy(loc.data)[0, p], 4)}")
cx, cy = to_numpy(net.default_boxes)[p, :2] * mini.input_size
print(f"  default box p: centre ({cx:.0f}, {cy:.0f}) px = ((j + 0.5), (i + 0.5)) x step "
      f"{mini.resolved_steps()[k]:g} px")

# %% [markdown]
# ## Exercise: which default box is row p? (classroom assignment `default_boxes`)
#
# Using only `cfg.table()` (each map's `first_index`, `size`, `step`, `boxes_per_location`) and the order
# above, find which map default box **p = 6000** of SSD300 belongs to and its centre in pixels. Replace the
# `None`s and run the check.

# %%
p_ex = 6000
my_map = None      # e.g. "fc7"
my_centre = None   # (cx, cy) in pixels of the 300x300 input

# %%
owner = [r for r in cfg.table() if r["first_index"] <= p_ex][-1]["source"]
true_centre = priors[p_ex, :2] * cfg.input_size
if my_map is None or my_centre is None:
    print("not answered yet: set my_map and my_centre in the cell above")
elif my_map == owner and np.allclose(my_centre, true_centre, atol=0.5):
    print(f"right: box {p_ex} is on {owner}, centred at ({true_centre[0]:.0f}, {true_centre[1]:.0f}) px")
else:
    print("wrong: subtract the map's first_index, divide by boxes per location, then row-major (i, j)")

# %% [markdown]
# ## Summary
#
# * SSD300: six maps, 4 or 6 boxes per location, 8732 default boxes (`SSDConfig.ssd300().num_priors`).
# * Box sizes grow from map to map: the paper's scale rule (0.2 to 0.9) over the later maps, with a scale of
#   its own (0.1) for conv4_3; the released sizes are that rule with the step floored to whole percent.
# * A box size suits an object size: the early, large maps serve small objects and the late, small maps
#   large objects. Next: matching ground truth to default boxes (05).
