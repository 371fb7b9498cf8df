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
# # 08 · Inference: decoding, non-maximum suppression, precision-recall and mAP
#
# The network outputs, for each of its P default boxes, 4 offsets (`loc`) and C class scores (`conf`).
# Turning that into a short list of detections takes four steps (`minissd/detection.py`, as in the
# released SSD): **decode** the offsets into boxes, **softmax** the scores, per class keep the candidates
# above a score threshold, and **non-maximum suppression** (NMS) per class. Scoring the result over a test
# set gives **precision-recall curves**, **AP** per class and their mean, **mAP** (`minissd/evaluation.py`,
# the PASCAL VOC rules). Code: `minissd/boxes.py` (`decode`), `minissd/nms.py` (`nms`, `multiclass_nms`).
#
# The **shipped weights** (`minissd/weights/`, trained for much longer than a notebook can) are used when they
# exist; otherwise the notebook trains for a short while and says so. Short training on a CPU gives a weak
# detector: read its numbers as "the pipeline works", not as what SSD can do.

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

# %%
import os

from minissd.data import EVAL_SEED, ShapesDataset, eval_transform
from minissd.models import shipped_weights, ssd_mini
from minissd.train import TrainConfig, Trainer, load_model
from minissd.viz import class_colour, draw_boxes, show_detections, show_image

names = ShapesDataset.class_names
test_set = ShapesDataset(20 if FAST else 200, scene="mixed", seed=EVAL_SEED)   # the set of `minissd evaluate`
path = shipped_weights("ssd_mini")
if os.path.isfile(path):
    model = load_model(path)
    source = "shipped weights"
else:
    minissd.seed(0)
    model = ssd_mini(num_classes=ShapesDataset.num_classes)
    config = TrainConfig(steps=4 if FAST else 1000, batch_size=4 if FAST else 16, lr=1e-2, augment=False,
                         warmup_steps=1 if FAST else 10, time_limit=20 if FAST else 60, seed=0)
    Trainer(model, ShapesDataset(2000, scene="mixed", seed=0), None, config, progress=False).fit()
    source = "a short training run"
    print(f"no shipped weights at {path} yet: using {config.time_limit} s of training instead")
print(f"model: ssd_mini from {source}; test set: {len(test_set)} held-out mixed scenes (seed {EVAL_SEED})")

# %% [markdown]
# ## 1. The raw output and decoding
#
# One forward pass over the test set (in eval mode, without a graph) gives `loc` (N, P, 4) and `conf`
# (N, P, C); everything after that is post-processing on these arrays.

# %%
from IPython.display import Markdown

from minissd.boxes import center_to_corners, corners_to_center, decode
from minissd.detection import detect
from minissd.nn.functional import softmax

cfg = model.config
priors = to_numpy(model.default_boxes)                               # (P, 4) centre form
transform = eval_transform(cfg.input_size)
model.eval()
t0 = time.perf_counter()
locs, confs = [], []
for start in range(0, len(test_set), 25):
    x = np.stack([transform(*test_set[i])[0] for i in range(start, min(len(test_set), start + 25))])
    with minissd.no_grad():
        loc, conf = model(x)
    locs.append(to_numpy(loc.data))
    confs.append(to_numpy(conf.data))
loc_all, conf_all = np.concatenate(locs), np.concatenate(confs)     # (N, P, 4), (N, P, C)
print(f"forward of {len(test_set)} images: {time.perf_counter() - t0:.1f} s; "
      f"loc {loc_all.shape}, conf {conf_all.shape}")

index = int(np.argmax([len(test_set[i][1]) for i in range(min(10, len(test_set)))]))   # a busy image
image, gt_boxes, gt_labels = test_set[index]
boxes = to_numpy(decode(loc_all[index], priors, cfg.variances))    # (P, 4) corners, one per default box
prob = to_numpy(softmax(conf_all[index]))                          # (P, C)
best_class = prob[:, 1:].argmax(axis=1) + 1
best_score = prob[:, 1:].max(axis=1)
top = np.argsort(-best_score)[:6]
print(f"image {index}: {len(gt_boxes)} objects; the best default box, p = {top[0]}:")
print(f"  default box (cx, cy, w, h) = {np.round(priors[top[0]], 3)}")
print(f"  predicted offsets (l_cx, l_cy, l_w, l_h) = {np.round(loc_all[index, top[0]], 3)}, "
      f"variances {cfg.variances}")
print(f"  decoded corners = {np.round(boxes[top[0]], 3)}; class {names[best_class[top[0]]]}, "
      f"p = {best_score[top[0]]:.3f}")

# %%
prior_corners = to_numpy(center_to_corners(priors))
S = cfg.input_size
small = np.nonzero(priors[:, 2] * S < 50)[0]               # a default box narrower than 50 px
p0 = small[np.argmax(best_score[small])] if len(small) else top[0]   # ... the most confident one
d_cx, d_cy, d_w, d_h = priors[p0] * S                                # px
l_cx, l_cy, l_w, l_h = loc_all[index, p0]
v0, v1 = cfg.variances
b_cx, b_cy, b_w, b_h = to_numpy(corners_to_center(boxes[p0:p0 + 1]))[0] * S   # decode()'s box, centre form
fig, axes = plt.subplots(1, 2, figsize=(13, 6.3), gridspec_kw={"width_ratios": [1, 1]})
for ax, zoom in zip(axes, (False, True)):
    show_image(ax, image, "default box, offsets and decoded box" if not zoom else "zoom on the box")
    ax.add_patch(plt.Rectangle((d_cx - d_w / 2, d_cy - d_h / 2), d_w, d_h, fc="none", ec="cyan", lw=2.5, ls="--"))
    ax.add_patch(plt.Rectangle((b_cx - b_w / 2, b_cy - b_h / 2), b_w, b_h, fc="none", ec="magenta", lw=2.5))
    ax.annotate("", xy=(b_cx, b_cy), xytext=(d_cx, d_cy),
                arrowprops={"arrowstyle": "-|>", "color": "yellow", "lw": 2.5})
    ax.plot([d_cx], [d_cy], "o", color="cyan", ms=7)
    ax.plot([b_cx], [b_cy], "o", color="magenta", ms=7)
    draw_boxes(ax, gt_boxes, color="white", linewidth=1, linestyle=":", show_text=False)
    if zoom:
        lo = min(d_cx - d_w / 2, b_cx - b_w / 2) - 6, min(d_cy - d_h / 2, b_cy - b_h / 2) - 6
        hi = max(d_cx + d_w / 2, b_cx + b_w / 2) + 6, max(d_cy + d_h / 2, b_cy + b_h / 2) + 6
        ax.set_xlim(lo[0], hi[0])
        ax.set_ylim(hi[1], lo[1])
axes[1].legend(handles=[plt.Line2D([], [], color="cyan", ls="--", lw=2.5, label=f"default box {p0}"),
                        plt.Line2D([], [], color="magenta", lw=2.5, label="decoded box"),
                        plt.Line2D([], [], color="yellow", lw=2.5, label="centre offset"),
                        plt.Line2D([], [], color="white", ls=":", label="ground truth")],
               loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=9, facecolor="lightgrey")
fig.tight_layout()
show_jpeg(fig)
display(Markdown(
    f"Default box {p0} (cyan): centre ({d_cx:.1f}, {d_cy:.1f}) px, {d_w:.1f} x {d_h:.1f} px. The network's "
    f"offsets for it: l = ({l_cx:.3f}, {l_cy:.3f}, {l_w:.3f}, {l_h:.3f}), variances ({v0}, {v1}). `decode` "
    f"(notebook 05's formulas, inverted) moves the centre to ({b_cx:.1f}, {b_cy:.1f}) px (yellow arrow) and "
    f"scales the size to {b_w:.1f} x {b_h:.1f} px (magenta): the centre moves by l_cx · {v0} = "
    f"{l_cx * v0:.3f} default-box widths, and the width changes by a factor {b_w / d_w:.3f}."))

# %% [markdown]
# ## 2. Candidates and non-maximum suppression, step by step
#
# Every default box is a candidate for every class. `detect` keeps, per class, those with probability
# above `conf_threshold` (0.01), at most `pre_nms_top_k` (400) of them. Neighbouring default boxes see the
# same object, so a found object comes with a cluster of overlapping candidates:

# %%
threshold, nms_threshold = 0.01, 0.45
per_class = {c: int((prob[:, c] > threshold).sum()) for c in range(1, cfg.num_classes)}
print(f"{len(priors)} default boxes x {cfg.num_classes - 1} classes = {len(priors) * (cfg.num_classes - 1)} "
      f"scores; above {threshold}: " + ", ".join(f"{names[c]} {n}" for c, n in per_class.items()))
c_star = int(best_class[top[0]])                      # the class of the best box in the image
cand = np.nonzero(prob[:, c_star] > threshold)[0]
cand = cand[np.argsort(-prob[cand, c_star], kind="stable")][:400]
print(f"class {names[c_star]}: {len(cand)} candidates, scores {prob[cand[0], c_star]:.3f} ... "
      f"{prob[cand[-1], c_star]:.3f}")

# %% [markdown]
# Greedy NMS (`boxes.nms`): take the best remaining candidate, keep it, and remove every remaining
# candidate whose IoU with it is above `nms_threshold`; repeat. First on four boxes small enough to check by
# hand (corners in pixels; `nms` works in any common unit):

# %%
from minissd.boxes import iou, nms

four = np.array([[10, 10, 50, 50], [14, 12, 54, 52], [40, 40, 80, 80], [60, 10, 90, 40]], np.float32)
four_scores = np.array([0.9, 0.8, 0.7, 0.6], np.float32)
print("IoU   " + " ".join(f"{f'b{j}':>6s}" for j in range(4)))
for i_, row in enumerate(to_numpy(iou(four, four))):
    print(f"b{i_}    " + " ".join(f"{v:6.3f}" for v in row))
kept4 = to_numpy(nms(four, four_scores, nms_threshold))
print(f"scores {four_scores.tolist()}; nms(..., {nms_threshold}) keeps {kept4.tolist()}")
fig, ax = plt.subplots(figsize=(11, 7))
for j, (bx, sc) in enumerate(zip(four, four_scores)):
    keep = j in kept4
    ax.add_patch(plt.Rectangle(bx[:2], *(bx[2:] - bx[:2]), fc="C2" if keep else "none", alpha=0.3 if keep else 1,
                               ec="C2" if keep else "C3", lw=2, ls="-" if keep else "--"))
    ax.text(bx[0] + 1, bx[1] + 4, f"b{j} {sc:.1f}", color="C2" if keep else "C3", fontsize=11)
ax.set_xlim(0, 100)
ax.set_ylim(90, 0)
ax.set_aspect("equal")
ax.legend(handles=[plt.Rectangle((0, 0), 1, 1, fc="C2", alpha=0.3, ec="C2"),
                   plt.Rectangle((0, 0), 1, 1, fc="none", ec="C3", ls="--")],
          labels=["kept", "suppressed"], loc="upper left", bbox_to_anchor=(1.0, 1.0))
ax.set_title(f"greedy NMS at IoU {nms_threshold} on four boxes (label: name and score)")
plt.show()

# %% [markdown]
# ### Exercise: NMS by hand (classroom assignment `nms_ap`)
#
# With the IoU table above, which boxes does NMS keep at `iou_threshold=0.1`? Work it out in score order, then
# run the check (it calls `boxes.nms`).

# %%
my_kept = None   # e.g. [0, 3]

# %%
truth_kept = to_numpy(nms(four, four_scores, 0.1)).tolist()
if my_kept is None:
    print("not answered yet: set my_kept in the cell above")
elif sorted(my_kept) == sorted(truth_kept):
    print(f"right: {truth_kept}")
else:
    print("wrong: keep the best remaining box, drop those with IoU above 0.1 with it, repeat")

# %% [markdown]
# Now on the real output: `nms(..., top_k=k)`, keep it, and remove every remaining
# stops after k kept boxes, which shows the steps one at a time (the counts cover all candidates; only the
# 30 best are drawn).

# %%
cb, cs = boxes[cand], prob[cand, c_star]                         # candidates, best first
final = to_numpy(nms(cb, cs, nms_threshold))
steps = min(3, len(final))
alive = np.ones(len(cand), bool)
drawn = np.arange(len(cand)) < 30                                 # draw the 30 best candidates only
fig, axes = plt.subplots(1, steps + 2, figsize=(3.6 * (steps + 2), 4.4))
show_image(axes[0], image, f"{drawn.sum()} best of {len(cand)} candidates")
draw_boxes(axes[0], cb[drawn], color="yellow", linewidth=0.6, show_text=False)
for k in range(1, steps + 1):
    kept = to_numpy(nms(cb, cs, nms_threshold, top_k=k))           # the first k kept boxes
    new = kept[-1]
    alive[kept] = False
    removed = alive & (to_numpy(iou(cb[new:new + 1], cb))[0] > nms_threshold)
    alive &= ~removed
    ax = axes[k]
    show_image(ax, image, f"step {k}: keep 1, remove {removed.sum()}, {alive.sum()} left")
    draw_boxes(ax, cb[alive & drawn], color="yellow", linewidth=0.5, show_text=False)
    draw_boxes(ax, cb[removed & drawn], color="red", linewidth=0.8, linestyle="--", show_text=False)
    draw_boxes(ax, cb[kept], np.full(len(kept), c_star), cs[kept], names, color="lime", linewidth=1.8)
ax = axes[-1]
final_drawn = final[drawn[final]]
show_image(ax, image, f"after NMS: {len(final)} kept, {len(final_drawn)} of them drawn")
draw_boxes(ax, cb[final_drawn], np.full(len(final_drawn), c_star), cs[final_drawn], names, color="lime",
           linewidth=1.8)
draw_boxes(ax, gt_boxes, color="white", linewidth=1, linestyle="--", show_text=False)
fig.suptitle(f"NMS for class {names[c_star]} at IoU {nms_threshold}: kept (green), removed in this step "
             "(red dashed), left (yellow); ground truth dashed white", fontsize=10)
fig.tight_layout()
show_jpeg(fig)

det = detect(loc_all[index:index + 1], conf_all[index:index + 1], priors, cfg.variances,
             conf_threshold=threshold, nms_threshold=nms_threshold, top_k=len(priors))[0]
mine = to_numpy(det.labels) == c_star
same = len(final) == mine.sum() and np.allclose(np.sort(cs[final]), np.sort(to_numpy(det.scores)[mine]))
print(f"detect() keeps {mine.sum()} {names[c_star]} boxes, the same as the steps above: {same}; "
      f"{len(det.labels)} detections of all classes in this image (detect's default top_k = 200 keeps "
      f"the {min(200, len(det.labels))} best)")

# %% [markdown]
# Without NMS every object would be reported many times, and every copy after the first counts as a false
# positive. The NMS threshold trades duplicates against neighbouring objects suppressing each other;
# `nms_threshold=1.0` switches NMS off (no IoU is above 1). All on the stored outputs of the test set:

# %%
from minissd.evaluation import evaluate_detections, voc_ap

gts = [test_set[i] for i in range(len(test_set))]
gt_b, gt_l = [g[1] for g in gts], [g[2] for g in gts]


def run_detect(**kw):
    dets = detect(loc_all, conf_all, priors, cfg.variances, **kw)
    return ([to_numpy(d.boxes) for d in dets], [to_numpy(d.labels) for d in dets],
            [to_numpy(d.scores) for d in dets])


print(f"{'nms_threshold':>13s} {'detections/image':>17s} {'mAP@0.5':>8s}")
for t in [0.3, 0.45, 0.6, 0.8, 1.0]:
    pb, pl, ps = run_detect(nms_threshold=t)
    m_ = evaluate_detections(pb, pl, ps, gt_b, gt_l)["map"]
    print(f"{t:13.2f} {np.mean([len(b) for b in pb]):17.1f} {m_:8.3f}")

# %% [markdown]
# ## 3. Precision, recall, AP and mAP
#
# For one class, sort all its detections over the test set by score and walk down the list: a detection
# is a **true positive** if it overlaps an unclaimed ground-truth object of its class with IoU ≥ 0.5, else
# a **false positive** (duplicates included). After k detections, recall = TP / #objects and
# precision = TP / k. `evaluate_detections` returns these curves in `"pr"`; **AP** summarises each curve,
# **mAP** is their mean over classes.

# %%
pb, pl, ps = run_detect(conf_threshold=threshold, nms_threshold=nms_threshold)
result = evaluate_detections(pb, pl, ps, gt_b, gt_l)
which = "all 200 that `minissd evaluate` scores" if len(test_set) == 200 else "the first of those it scores"
print(f"mAP@0.5 = {result['map']:.3f} over {len(result['ap'])} classes, on {len(test_set)} held-out mixed "
      f"scenes of seed {EVAL_SEED} ({which})")
fig, axes = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [1.3, 1]})
for c, (rec, prec, _) in result["pr"].items():
    axes[0].plot(rec, prec, color=class_colour(c), lw=1.5,
                 label=f"{names[c]} AP {result['ap'][c]:.2f} ({result['num_positives'][c]} obj.)")
axes[0].set_xlabel("recall")
axes[0].set_ylabel("precision")
axes[0].set_xlim(0, 1)
axes[0].set_ylim(0, 1.02)
axes[0].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
axes[0].set_title("precision-recall per class", fontsize=10)
classes = list(result["ap"])
axes[1].barh([names[c] for c in classes], [result["ap"][c] for c in classes],
             color=[class_colour(c) for c in classes])
axes[1].axvline(result["map"], color="black", ls="--", lw=1)
axes[1].text(result["map"], len(classes) - 0.5, f" mAP {result['map']:.3f}", fontsize=9)
axes[1].set_xlim(0, 1)
axes[1].set_title("AP per class (IoU ≥ 0.5)", fontsize=10)
fig.tight_layout()
plt.show()
strict = evaluate_detections(pb, pl, ps, gt_b, gt_l, iou_threshold=0.75)
print(f"with a stricter IoU >= 0.75 for a true positive: mAP = {strict['map']:.3f}")

# %% [markdown]
# ## 4. 11-point AP (VOC2007) vs area under the curve (VOC2010+)
#
# Both first make the curve monotone: the **interpolated** precision at recall r is the highest precision at
# any recall ≥ r (the envelope). The VOC2007 metric averages it at the 11 recalls 0, 0.1, ..., 1; the later
# metric takes the exact area under it. `voc_ap(recall, precision, use_07_metric=True / False)`, on the
# class with the most detections:

# %%
c = max(result["pr"], key=lambda k: len(result["pr"][k][0]))
rec, prec, _ = result["pr"][c]
if len(rec) == 0:                       # no detection at all: a flat curve at 0
    rec, prec = np.zeros(1), np.zeros(1)
ap_area, ap_11 = voc_ap(rec, prec, use_07_metric=False), voc_ap(rec, prec, use_07_metric=True)
fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
for ax, title in zip(axes, [f"area under the interpolated curve: AP = {ap_area:.3f}",
                            f"11-point interpolated: AP = {ap_11:.3f}"]):
    ax.plot(rec, prec, color=class_colour(c), lw=1.5, label="precision after each detection")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("recall")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
axes[1].set_xticks(np.linspace(0, 1, 11))
axes[0].set_ylabel("precision")
axes[0].legend(fontsize=9, loc="lower left")
fig.suptitle(f"class {names[c]}: {len(rec)} detections, {result['num_positives'][c]} objects (voc_ap's two "
             "values; drawing the envelope is part of the nms_ap assignment)", fontsize=10)
fig.tight_layout()
plt.show()

r07 = evaluate_detections(pb, pl, ps, gt_b, gt_l, use_07_metric=True)
print(f"{'class':9s} {'area AP':>8s} {'11-point AP':>11s}")
for k in result["ap"]:
    print(f"{names[k]:9s} {result['ap'][k]:8.3f} {r07['ap'][k]:11.3f}")
print(f"{'mAP':9s} {result['map']:8.3f} {r07['map']:11.3f}")

# %% [markdown]
# The 11-point value samples the envelope at coarse steps; it can be above or below the area. Papers on
# VOC2007 (SSD's included) report the 11-point mAP; VOC2010 and later, and `evaluate_detections` by
# default, use the area.
#
# ## 5. COCO's numbers: stricter boxes, and AP by object size
#
# COCO reports twelve numbers instead of one mAP (`minissd.evaluation.coco_metrics`, the rules of
# pycocotools' `COCOeval`). **AP** (written AP@[.5:.95]) is the mean of the AP at the ten IoU thresholds
# 0.50, 0.55, ..., 0.95, so a detection counts fully only if its box is tight; **AP50** uses IoU 0.5 alone,
# like VOC (but with precision sampled at 101 recalls and at most 100 detections per image), and AP75
# IoU 0.75. **APs, APm, APl** are AP over small, medium and large objects: areas below 32² px, between 32²
# and 96², above 96², in pixels of the image. AR1/AR10/AR100 are the recalls (averaged over the same
# thresholds) with at most 1, 10, 100 detections per image and class, ARs/ARm/ARl by size.

# %%
from minissd.evaluation import coco_metrics

image_sizes = [gts[i][0].shape[:2] for i in range(len(test_set))]                 # (H, W) px
coco = coco_metrics(pb, pl, ps, gt_b, gt_l, image_sizes)
rows12 = [("AP", "IoU 0.50:0.95"), ("AP50", "IoU 0.50"), ("AP75", "IoU 0.75"), ("APs", "small, < 32²"),
          ("APm", "medium, 32²-96²"), ("APl", "large, > 96²"), ("AR1", "1 det./image"), ("AR10", "10 det./image"),
          ("AR100", "100 det./image"), ("ARs", "small"), ("ARm", "medium"), ("ARl", "large")]


def fmt(v):
    return "n/a (no object of that size)" if np.isnan(v) else f"{v:.3f}"


display(Markdown("| metric | what | value |\n|---|---|---|\n"
                 + "\n".join(f"| {k} | {what} | {fmt(coco[k])} |" for k, what in rows12)))

areas = np.concatenate([np.prod(b[:, 2:] - b[:, :2], axis=1) * h * w for b, (h, w) in zip(gt_b, image_sizes)])
size_share = {"small": (areas < 32**2).mean(), "medium": ((areas >= 32**2) & (areas < 96**2)).mean(),
              "large": (areas >= 96**2).mean()}
sides_img = sorted({int(h) for h, _ in image_sizes})
display(Markdown(
    f"On these {len(test_set)} images ({' / '.join(map(str, sides_img))} px square, {len(areas)} objects): "
    + ", ".join(f"**{share:.0%}** {k}" for k, share in size_share.items())
    + f". A {sides_img[-1]} px image is {sides_img[-1] ** 2 / 96**2:.1f} times the 96² px of a large object, so "
    f"COCO's size ranges, made for its larger photographs, put most ShapesDataset objects in small and medium. "
    f"AP@[.5:.95] = {coco['AP']:.3f} against AP50 = {coco['AP50']:.3f} (the VOC mAP@0.5 of section 3 is "
    f"{result['map']:.3f}) and AP75 = {coco['AP75']:.3f}: the gap is how much of what is found at IoU 0.5 "
    f"is not tight at stricter thresholds."))

# %% [markdown]
# ## 6. What comes out
#
# The final detections (score ≥ 0.4) of a few test images:

# %%
fig, axes = plt.subplots(2, 3, figsize=(11, 8))
for ax, i in zip(axes.ravel(), range(6)):
    keep = ps[i] >= 0.4
    show_detections(gts[i][0], pb[i][keep], pl[i][keep], ps[i][keep], names, gt_boxes=gt_b[i], ax=ax,
                    title=f"{keep.sum()} detections, {len(gt_b[i])} objects")
fig.suptitle(f"ssd_mini ({source}): detections with score >= 0.4, ground truth dashed white", fontsize=10)
fig.tight_layout()
show_jpeg(fig)

# %% [markdown]
# ## 7. Where it fails
#
# mAP is one number; the failures behind it are pictures. Per image, walk the detections with score ≥ 0.3 in
# score order and mark each a true positive when it overlaps a not yet claimed object of its class with
# IoU ≥ 0.5 (the rule of section 3), else a false positive; an object no detection claims is **missed**.
# First the recall by object size, then the most confident false positives and the missed objects.

# %%
score_min = 0.3
fp_list, missed, found, sizes_px = [], [], [], []
for i in range(len(test_set)):
    keep = ps[i] >= score_min
    db, dl, ds_ = pb[i][keep], pl[i][keep], ps[i][keep]
    claimed = np.zeros(len(gt_b[i]), bool)
    overl = to_numpy(iou(db, gt_b[i])) if len(db) and len(gt_b[i]) else np.zeros((len(db), len(gt_b[i])))
    for j in np.argsort(-ds_, kind="stable"):
        cand_gt = np.nonzero((gt_l[i] == dl[j]) & ~claimed & (overl[j] >= 0.5))[0]
        if len(cand_gt):
            claimed[cand_gt[np.argmax(overl[j, cand_gt])]] = True
        else:
            best = overl[j].max() if overl.shape[1] else 0.0
            fp_list.append((ds_[j], i, db[j], dl[j], best))
    for g in range(len(gt_b[i])):
        sizes_px.append(np.sqrt(np.prod(gt_b[i][g, 2:] - gt_b[i][g, :2])) * cfg.input_size)
        found.append(claimed[g])
        if not claimed[g]:
            missed.append((i, gt_b[i][g], gt_l[i][g]))
sizes_px, found = np.array(sizes_px), np.array(found)
edges = [0, 12, 24, 48, 96, cfg.input_size + 1]
labels_bins = [f"{lo}-{min(hi, cfg.input_size)}" for lo, hi in zip(edges, edges[1:])]
rec_bins = [found[(sizes_px >= lo) & (sizes_px < hi)].mean() if ((sizes_px >= lo) & (sizes_px < hi)).any()
            else np.nan for lo, hi in zip(edges, edges[1:])]
n_bins = [int(((sizes_px >= lo) & (sizes_px < hi)).sum()) for lo, hi in zip(edges, edges[1:])]
fig, ax = plt.subplots(figsize=(9, 3.8))
bars = ax.bar(labels_bins, rec_bins, color="C0")
ax.bar_label(bars, [f"{r:.0%}\n({n} obj.)" if n else "" for r, n in zip(rec_bins, n_bins)], fontsize=9)
ax.set_ylim(0, 1.25)
ax.set_xlabel(f"object size √(w·h), px of {cfg.input_size}")
ax.set_ylabel(f"recall at score ≥ {score_min}")
ax.set_title(f"found objects by size: {found.sum()} of {len(found)}, {len(fp_list)} false positives")
fig.tight_layout()
plt.show()
worst = int(np.nanargmin(rec_bins))
display(Markdown(
    f"At score ≥ {score_min}: {found.sum()} of {len(found)} objects found ({found.mean():.0%}); the lowest recall "
    f"is for objects of {labels_bins[worst]} px ({rec_bins[worst]:.0%} of {n_bins[worst]}). "
    f"{len(fp_list)} false positives, of which {sum(f[4] >= 0.5 for f in fp_list)} overlap some object with IoU "
    f"≥ 0.5 (a wrong class or a duplicate) and {sum(f[4] < 0.1 for f in fp_list)} overlap none (IoU < 0.1)."))
small_obj = sizes_px < 32          # √(w·h) < 32 px: COCO's small (area < 32²), when the image is the input size
rec_small = found[small_obj].mean() if small_obj.any() else np.nan
rec_rest = found[~small_obj].mean() if (~small_obj).any() else np.nan
display(Markdown(
    f"The same split as COCO's sizes (section 5; here √(w·h) < 32 px of {cfg.input_size}): "
    f"{small_obj.sum()} small objects, recall {rec_small:.0%} at score ≥ {score_min}, against {rec_rest:.0%} for "
    f"the {(~small_obj).sum()} others. COCO's APs = {fmt(coco['APs'])} and APm = {fmt(coco['APm'])} say the same "
    f"in one number each, over all scores and the ten IoU thresholds"
    + (": small objects are the weak point, in recall and in AP." if rec_small < rec_rest and coco["APs"] < coco["APm"]
       else "; here the two do not point the same way, so neither alone tells where the small objects stand.")))

# %%
def crop(ax, box, margin=12):
    (x0, y0), (x1, y1) = box[:2] * cfg.input_size - margin, box[2:] * cfg.input_size + margin
    ax.set_xlim(x0, x1)
    ax.set_ylim(y1, y0)


fp_list.sort(key=lambda f: -f[0])
n_show = 4
fig, axes = plt.subplots(2, n_show, figsize=(13, 7))
for ax, (score, i, box, label, best) in zip(axes[0], fp_list[:n_show]):
    show_image(ax, gts[i][0], f"FP: {names[label]} {score:.2f}\n(best IoU with an object {best:.2f})")
    draw_boxes(ax, gt_b[i], gt_l[i], class_names=names, color="white", linewidth=1, linestyle="--")
    draw_boxes(ax, box[None], color="red", linewidth=2.5, show_text=False)
    crop(ax, box)
for ax, (i, box, label) in zip(axes[1], missed[:n_show]):
    near = pb[i][np.argmax(to_numpy(iou(box[None], pb[i]))[0])] if len(pb[i]) else None
    show_image(ax, gts[i][0], f"missed: {names[label]}, "
                              f"{np.sqrt(np.prod(box[2:] - box[:2])) * cfg.input_size:.0f} px")
    draw_boxes(ax, box[None], color="yellow", linewidth=2.5, show_text=False)
    if near is not None:
        draw_boxes(ax, near[None], color="cyan", linewidth=1, linestyle=":", show_text=False)
    crop(ax, box)
for ax in axes.ravel()[len(fp_list[:n_show]):n_show]:
    ax.set_visible(False)
for ax in axes[1, len(missed[:n_show]):]:
    ax.set_visible(False)
fig.legend(handles=[plt.Line2D([], [], color="red", lw=2.5, label="false positive"),
                    plt.Line2D([], [], color="white", ls="--", label="ground truth"),
                    plt.Line2D([], [], color="yellow", lw=2.5, label="missed object"),
                    plt.Line2D([], [], color="cyan", ls=":", label="nearest detection (any score)")],
           loc="lower center", ncol=4, fontsize=9, facecolor="lightgrey")
fig.suptitle(f"the {min(n_show, len(fp_list))} most confident false positives (top) and "
             f"{min(n_show, len(missed))} of {len(missed)} missed objects (bottom), zoomed", fontsize=10)
fig.tight_layout(rect=(0, 0.05, 1, 1))
show_jpeg(fig)

# %% [markdown]
# ## Summary
#
# * Decoding turns each default box's 4 offsets into a box; softmax turns its C logits into probabilities.
# * Per class, a score threshold and greedy NMS reduce thousands of candidates to a few detections; without
#   NMS the duplicates are false positives and mAP drops.
# * AP summarises a class's precision-recall curve (area, or the VOC2007 11-point mean); mAP averages over
#   classes. Next: SSD against YOLOv1 (09).
