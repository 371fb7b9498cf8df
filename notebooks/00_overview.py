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
# # 00 · Overview: from YOLOv1's 98 boxes to SSD's 8732 default boxes
#
# SSD (Single Shot MultiBox Detector, Liu et al., ECCV 2016) is a one-stage detector: one network pass
# gives boxes and classes. It started from YOLOv1's weak spots:
#
# * YOLOv1 splits the image into a **7x7 grid**; each cell predicts **2 boxes** and **one** class
#   distribution. That is very few candidates, and crowded small objects (a flock of birds) collide
#   in one cell.
# * YOLOv1 predicts from the **last, coarse feature map** only; the detail of earlier maps is lost.
#
# SSD's answer: predict on **several feature maps** (early, fine ones for small objects; late, coarse ones
# for large objects), and put **default boxes** (Faster R-CNN's anchors) of several shapes at every
# location. This notebook measures that contrast and maps out the rest of the series.

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
# ## 1. Counting candidates
#
# YOLOv1's output is one S x S grid with B boxes per cell. SSD300's default boxes come from
# `minissd.priors.default_boxes(SSDConfig.ssd300())`.

# %%
from matplotlib.patches import Rectangle

from minissd.config import SSDConfig
from minissd.models import YOLOv1
from minissd.priors import default_boxes, map_slices

yolo = YOLOv1(num_classes=8)          # the grid detector of notebook 09 (a small backbone)
S, B = yolo.grid, yolo.boxes_per_cell
cfg = SSDConfig.ssd300()
priors = to_numpy(default_boxes(cfg))  # (P, 4) centre form (cx, cy, w, h), normalized

print(f"YOLOv1: {S} x {S} cells x {B} boxes = {S * S * B} candidates, from one {S}x{S} map")
print(f"SSD300: {priors.shape[0]} default boxes, from {len(cfg.feature_maps)} maps of sides {cfg.feature_maps}")
print(f"        {priors.shape[0] / (S * S * B):.0f} times as many candidates")

# %% [markdown]
# Where those boxes sit and how large they are: YOLOv1's grid (left) and, for each of SSD300's maps, the
# centres of all its locations (dots) and every default box of one location (its centre one), drawn to scale
# on the 300x300 input.

# %%
from minissd.viz import MAP_COLOURS

fig, axes = plt.subplots(2, 4, figsize=(13, 6.9))
ax = axes[0, 0]
c = (np.arange(S) + 0.5) / S
cx, cy = np.meshgrid(c, c)
ax.scatter(cx.ravel(), cy.ravel(), s=12, color="black")
for t in range(1, S):
    ax.plot([0, 1], [t / S, t / S], color="grey", lw=0.5)
    ax.plot([t / S, t / S], [0, 1], color="grey", lw=0.5)
ax.add_patch(Rectangle((3 / S, 3 / S), 1 / S, 1 / S, fc="none", ec="C3", lw=2))
ax.set_title(f"YOLOv1: {S}x{S} cells, {B} boxes each\n= {S * S * B} boxes (one cell in red)")
for k, sl in enumerate(map_slices(cfg)):
    ax = axes.ravel()[k + 1]
    f, per_loc = cfg.feature_maps[k], cfg.num_priors_per_location[k]
    boxes_k = priors[sl].reshape(f, f, per_loc, 4)                 # (f, f, A, 4), row-major locations
    centres = boxes_k[:, :, 0, :2].reshape(-1, 2)
    ax.scatter(centres[:, 0], centres[:, 1], s=max(1, 30 / f), color=MAP_COLOURS[k])
    for cx_, cy_, w_, h_ in boxes_k[f // 2, f // 2]:
        ax.add_patch(Rectangle((cx_ - w_ / 2, cy_ - h_ / 2), w_, h_, fc="none", ec=MAP_COLOURS[k], lw=1.5))
    sides = boxes_k[0, 0, :2, 2] * cfg.input_size                  # the two squares, px
    ax.set_title(f"{cfg.source_names[k]} {f}x{f}: {sl.stop - sl.start} boxes\n"
                 f"{per_loc} per location, squares {sides[0]:.0f} and {sides[1]:.0f} px")
ax = axes[1, 3]
ax.barh(["YOLOv1"] + list(cfg.source_names), [S * S * B] + [sl.stop - sl.start for sl in map_slices(cfg)],
        color=["black"] + list(MAP_COLOURS[:len(cfg.source_names)]))
ax.set_xscale("log")
ax.invert_yaxis()
ax.set_xlabel("boxes (log scale)")
ax.set_title(f"SSD300: {len(priors)} in all")
for ax in axes.ravel()[:-1]:
    ax.set_xlim(-0.15, 1.15)   # boxes of the coarse maps reach past the image
    ax.set_ylim(1.15, -0.15)
    ax.add_patch(Rectangle((0, 0), 1, 1, fc="none", ec="black", lw=0.8))
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 2. A flock of birds on the 7x7 grid
#
# A `ShapesDataset` "flock" scene: small objects in tight clusters. In YOLOv1 the cell that holds an
# object's centre is responsible for it, and a cell has only B = 2 boxes. Red cells hold more than two
# centres; the objects beyond the first two of a cell cannot be represented at all.

# %%
from minissd.data import ShapesDataset
from minissd.matching import match_priors
from minissd.priors import best_overlaps
from minissd.viz import draw_boxes, plot_grid, show_image

flock = ShapesDataset(8, scene="flock", seed=0)
counts_objects = [len(flock[i][1]) for i in range(len(flock))]
image, boxes, labels = flock[int(np.argmax(counts_objects))]  # the most crowded of 8 scenes
H, W = image.shape[:2]

centre = (boxes[:, :2] + boxes[:, 2:]) / 2
cell = np.minimum((centre * S).astype(int), S - 1)        # (G, 2) column, row of each centre
per_cell = np.zeros((S, S), int)
np.add.at(per_cell, (cell[:, 1], cell[:, 0]), 1)
lost = np.maximum(per_cell - B, 0).sum()
print(f"{len(boxes)} objects; {(per_cell > B).sum()} cells hold more than {B} centres; "
      f"{lost} objects ({lost / len(boxes):.0%}) cannot be represented by the 7x7x{B} grid")

# %% [markdown]
# SSD matches every object to its own default boxes (notebook 05): the small `SSDConfig.mini()` detector
# of this project (the one trained in notebook 07) gives each bird at least one default box, drawn here in
# the colour of its feature map.

# %%
mini = SSDConfig.mini()
mini_priors = to_numpy(default_boxes(mini))
gt_index, _ = match_priors(boxes, mini_priors)
matched_objects = len(np.unique(gt_index[gt_index >= 0]))
good = (best_overlaps(boxes, mini_priors) >= 0.5).sum()
print(f"SSD mini ({mini.input_size} px input, {len(mini_priors)} default boxes): "
      f"{matched_objects} of {len(boxes)} objects have matched default boxes "
      f"({(gt_index >= 0).sum()} positives in all); {good} of them have one with IoU >= 0.5")

fig, axes = plt.subplots(1, 2, figsize=(11, 5.6))
ax = axes[0]
show_image(ax, image, f"YOLOv1 grid: {lost} of {len(boxes)} objects lost")
plot_grid(ax, S, (W, H))
for r, c_ in zip(*np.nonzero(per_cell > B)):
    ax.add_patch(Rectangle((c_ * W / S - 0.5, r * H / S - 0.5), W / S, H / S, color="red", alpha=0.35))
for r, c_ in zip(*np.nonzero(per_cell)):
    ax.text((c_ + 0.5) * W / S, (r + 0.5) * H / S, str(per_cell[r, c_]), color="white", fontsize=9,
            ha="center", va="center", weight="bold")
ax = axes[1]
show_image(ax, image, f"SSD mini: {matched_objects} of {len(boxes)} objects matched")
corners = np.concatenate([mini_priors[:, :2] - mini_priors[:, 2:] / 2,
                          mini_priors[:, :2] + mini_priors[:, 2:] / 2], axis=1)
for k, sl in enumerate(map_slices(mini)):
    idx = np.nonzero(gt_index[sl] >= 0)[0] + sl.start
    draw_boxes(ax, corners[idx], color=MAP_COLOURS[k], linewidth=0.7, show_text=False)
draw_boxes(ax, boxes, color="white", linewidth=1.0, linestyle="--", show_text=False)
fig.tight_layout()
show_jpeg(fig)

# %% [markdown]
# ## 3. The pipeline in one figure
#
# SSD300: a 300x300 image goes through VGG16 up to conv5_3, with fc6/fc7 turned into convolutions, then
# four extra blocks that halve the map. Six of these maps are **sources**: a 3x3 convolution on each
# predicts, for every default box, 4 offsets (loc) and C class scores (conf). All numbers below come
# from `SSDConfig.ssd300()` and the built `ssd300()` model.

# %%
from matplotlib.patches import FancyBboxPatch

from minissd.models import ssd300

model = ssd300()            # 21 classes (VOC); built, not trained: we only read its shapes
C = model.num_classes
n_params = sum(p.data.size for p in model.parameters())
rows = cfg.table()
print(f"SSD300: {n_params / 1e6:.1f} M parameters, source channels {model.source_channels}")
print("smallest default box per map (px of 300):",
      ", ".join(f"{r['source']} {r['min_size']:g}" for r in rows))

fig, ax = plt.subplots(figsize=(14, 5.4))
ax.set_xlim(-0.1, 15.2)
ax.set_ylim(-0.1, 5.5)
ax.axis("off")

def block(x, y, w, h, text, fc, fontsize=8):
    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.04", fc=fc, ec="black", lw=0.8))
    ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=fontsize)

def arrow(x0, y0, x1, y1, text=None):
    ax.annotate("", xy=(x1, y1), xytext=(x0, y0), arrowprops={"arrowstyle": "->", "lw": 0.8})
    if text:
        ax.text((x0 + x1) / 2, y0 + 0.1, text, ha="center", va="bottom", fontsize=7)

block(0.0, 3.75, 1.1, 1.1, f"image\n{cfg.input_size}x{cfg.input_size}x3", "#dddddd")
links = ["VGG16 to\nconv4_3", "pool4 ...\nfc6, fc7", "conv8", "conv9", "conv10", "conv11"]
x_prev, xs, bw = 1.1, [], 1.3
for k, r in enumerate(rows):
    x = 2.2 + 2.15 * k
    h = 0.5 + 1.4 * r["size"] / rows[0]["size"]  # height grows with the map's side
    block(x, 4.3 - h / 2, bw, h, f"{r['source']}\n{r['size']}x{r['size']}x{model.source_channels[k]}",
          MAP_COLOURS[k])
    arrow(x_prev, 4.3, x, 4.3, links[k])
    n = r["boxes_per_location"]
    block(x, 1.7, bw, 1.25, f"3x3 conv heads\nloc {n * 4} ch\nconf {n * C} ch\n"
          f"{r['size']}x{r['size']}x{n} = {r['boxes']}", "#f4f4f4", fontsize=7.5)
    arrow(x + bw / 2, 4.3 - h / 2, x + bw / 2, 2.95)
    arrow(x + bw / 2, 1.7, x + bw / 2, 1.05)
    x_prev = x + bw
    xs.append(x)
P = cfg.num_priors
block(xs[0], 0.15, xs[-1] + bw - xs[0], 0.85,
      f"concatenate over the {len(rows)} maps:  loc ({P}, 4)  and  conf ({P}, {C})", "#fff3c4", fontsize=9)
block(0.0, 0.15, 1.5, 0.85, "detections:\ndecode, softmax,\nper-class NMS", "#c8f0c8", fontsize=7.5)
arrow(xs[0], 0.57, 1.5, 0.57)
ax.set_title("SSD300: detection on six feature maps, largest first", fontsize=11)
plt.show()

# %% [markdown]
# A large map (conv4_3) has small default boxes and finds small objects; the 1x1 map (conv11_2) has one
# location whose boxes are nearly as large as the image (sizes printed above). Notebook 04 shows the sizes,
# notebook 05 shows which map each object ends up on.
#
# ## 4. The series
#
# | notebook | what it shows |
# | --- | --- |
# | 00_overview | this one: YOLOv1's 98 boxes vs SSD's 8732, the pipeline |
# | 01_autograd | a computational graph differentiated by hand and by `minissd`; gradient checks |
# | 02_conv_and_pooling | im2col, convolution as a matrix product, stride/padding/dilation, pooling |
# | 03_vgg_backbone | the modified VGG16 layer by layer; fc6/fc7 as convolutions; real feature maps |
# | 04_default_boxes | the default boxes of every map, the sizes table, the paper's scale rule |
# | 05_matching | IoU heat maps, the bipartite and threshold steps, which map gets which object |
# | 06_multibox_loss | smooth L1, softmax cross-entropy, hard negative mining, the loss on a batch |
# | 07_training | training `ssd_mini` on ShapesDataset: loss and mAP curves, detections |
# | 08_inference_nms_map | decoding, NMS step by step, precision-recall, AP and mAP |
# | 09_ssd_vs_yolov1 | the seed's claim measured: YOLOv1 vs SSD on mixed and flock scenes |
#
# See also `docs/notebooks.md` (reading order) and `docs/autograd.md`.
