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
#         The network outputs, for each of its P default boxes, 4 offsets (`loc`) and C class scores (`conf`).
#         Turning that into a short list of detections takes four steps (`minissd/detection.py`, as in the
#         released SSD): **decode** the offsets into boxes, **softmax** the scores, per class keep the candidates
#         above a score threshold, and **non-maximum suppression** (NMS) per class. Scoring the result over a test
#         set gives **precision-recall curves**, **AP** per class and their mean, **mAP** (`minissd/evaluation.py`,
#         the PASCAL VOC rules). Code: `minissd/boxes.py` (`decode`, `nms`, `multiclass_nms`).
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

from minissd.cli import EVAL_SEED, shipped_weights
from minissd.data import ShapesDataset, eval_transform
from minissd.models import ssd_mini
from minissd.train import TrainConfig, Trainer, load_model
from minissd.viz import class_colour, draw_boxes, show_detections, show_image

names = ShapesDataset.class_names
test_set = ShapesDataset(20 if FAST else 100, scene="mixed", seed=EVAL_SEED)
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
print(f"model: ssd_mini from {source}; test set: {len(test_set)} held-out mixed scenes")

# %% [markdown]
# ## 1. The raw output and decoding
#
# One forward pass over the test set (in eval mode, without a graph) gives `loc` (N, P, 4) and `conf`
# (N, P, C); everything after that is post-processing on these arrays.

# %%
from minissd.boxes import center_to_corners, decode
from minissd.detection import detect, softmax

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
fig, ax = plt.subplots(figsize=(4.4, 4.6), dpi=60)
show_image(ax, image, "6 best default boxes (dashed)\nand their decoded boxes (solid)")
S = cfg.input_size
for p in top:
    col = class_colour(best_class[p])
    draw_boxes(ax, prior_corners[p:p + 1], color=col, linewidth=1, linestyle="--", show_text=False)
    draw_boxes(ax, boxes[p:p + 1], best_class[p:p + 1], best_score[p:p + 1], names, color=col)
    c0 = priors[p, :2] * S
    c1 = (boxes[p, :2] + boxes[p, 2:]) / 2 * S
    ax.annotate("", xy=c1, xytext=c0, arrowprops={"arrowstyle": "->", "color": col})
plt.show()

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
# candidate whose IoU with it is above `nms_threshold` (0.45); repeat. `nms(..., top_k=k)` stops after k
# kept boxes, which shows the steps one at a time (the counts cover all candidates; only the 30 best are
# drawn).

# %%
from minissd.boxes import iou, nms

cb, cs = boxes[cand], prob[cand, c_star]                         # candidates, best first
final = to_numpy(nms(cb, cs, nms_threshold))
steps = min(3, len(final))
alive = np.ones(len(cand), bool)
drawn = np.arange(len(cand)) < 30                                 # draw the 30 best candidates only
fig, axes = plt.subplots(1, steps + 2, figsize=(3.1 * (steps + 2), 3.7), dpi=60)
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
plt.show()

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
print(f"mAP@0.5 = {result['map']:.3f} over {len(result['ap'])} classes, {len(test_set)} images")
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
# for drawing only: the envelope, and its value at the 11 recall points (0 where the curve never gets there)
envelope = np.maximum.accumulate(prec[::-1])[::-1]
ts = np.linspace(0, 1, 11)
at_t = np.array([prec[rec >= t].max() if (rec >= t).any() else 0.0 for t in ts])

fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
for ax, title in zip(axes, [f"area under the envelope: AP = {ap_area:.3f}",
                            f"11-point: AP = mean of 11 values = {ap_11:.3f}"]):
    ax.plot(rec, prec, color="grey", lw=0.8, label="precision after each detection")
    ax.step(np.concatenate([[0], rec]), np.concatenate([[envelope[0]], envelope]), where="pre",
            color=class_colour(c), lw=2, label="interpolated (envelope)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("recall")
    ax.set_title(title, fontsize=10)
axes[0].fill_between(np.concatenate([[0], rec]), np.concatenate([[envelope[0]], envelope]), step="pre",
                     color=class_colour(c), alpha=0.25)
axes[1].vlines(ts, 0, at_t, color="black", lw=1)
axes[1].plot(ts, at_t, "ko", ms=5, label="11 sampled values")
axes[0].set_ylabel("precision")
axes[0].legend(fontsize=8, loc="lower left")
axes[1].legend(fontsize=8, loc="lower left")
fig.suptitle(f"class {names[c]}: {len(rec)} detections, {result['num_positives'][c]} objects", fontsize=10)
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
# ## 5. What comes out
#
# The final detections (score ≥ 0.4) of a few test images:

# %%
fig, axes = plt.subplots(2, 3, figsize=(8.4, 6), dpi=60)
for ax, i in zip(axes.ravel(), range(6)):
    keep = ps[i] >= 0.4
    show_detections(gts[i][0], pb[i][keep], pl[i][keep], ps[i][keep], names, gt_boxes=gt_b[i], ax=ax,
                    title=f"{keep.sum()} detections, {len(gt_b[i])} objects")
fig.suptitle(f"ssd_mini ({source}): detections with score >= 0.4, ground truth dashed white", fontsize=10)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Summary
#
# * Decoding turns each default box's 4 offsets into a box; softmax turns its C logits into probabilities.
# * Per class, a score threshold and greedy NMS reduce thousands of candidates to a few detections; without
#   NMS the duplicates are false positives and mAP drops.
# * AP summarises a class's precision-recall curve (area, or the VOC2007 11-point mean); mAP averages over
#   classes. Next: SSD against YOLOv1 (09).
