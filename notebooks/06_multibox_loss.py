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
# # 06 · The MultiBox loss: smooth L1, cross-entropy and hard negative mining
#
# SSD's training loss (paper, eq. 1), for N matched default boxes (positives):
#
# L = (1/N) (L_conf + α L_loc), α = 1
#
# * L_loc: **smooth L1** between predicted and target offsets, on the positives only;
# * L_conf: **softmax cross-entropy** on the positives (their class) and on the **hard negatives**
#   (background), at most 3 negatives per positive.
#
# Code: `minissd/loss.py` (`MultiBoxLoss`, `smooth_l1`, `hard_negative_mining`).

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
# ## 1. Smooth L1 vs L2
#
# Smooth L1 is 0.5x² for |x| < 1 and |x| − 0.5 beyond: quadratic near the target, linear far away, so its
# gradient never exceeds 1. Both curves and their gradients, computed by `backward()`:

# %%
from minissd import Tensor
from minissd.loss import smooth_l1

xs = np.linspace(-3, 3, 601)
x1 = Tensor(xs, requires_grad=True)
smooth_l1(x1).sum().backward()
x2 = Tensor(xs, requires_grad=True)
(x2 * x2 * 0.5).sum().backward()
sl1 = to_numpy(smooth_l1(Tensor(xs)).data)

fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
axes[0].plot(xs, sl1, label="smooth L1")
axes[0].plot(xs, 0.5 * xs ** 2, "--", label="L2: 0.5 x²")
axes[0].set_title("loss", fontsize=10)
axes[1].plot(xs, to_numpy(x1.grad), label="smooth L1")
axes[1].plot(xs, to_numpy(x2.grad), "--", label="L2")
axes[1].set_title("gradient (from backward())", fontsize=10)
for ax in axes:
    ax.set_xlabel("x = prediction − target")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
fig.tight_layout()
plt.show()

# %% [markdown]
# Why it matters: one badly matched box (error 10) among good ones. With L2 its gradient dominates the
# update; with smooth L1 it is capped at 1.

# %%
errors = np.array([0.1, -0.2, 0.3, -0.1, 10.0])
for name, fn in [("L2", lambda t: t * t * 0.5), ("smooth L1", smooth_l1)]:
    t = Tensor(errors, requires_grad=True)
    fn(t).sum().backward()
    g = to_numpy(t.grad)
    print(f"{name:9s}: gradient {np.round(g, 2)}, the outlier's share of |gradient|: "
          f"{abs(g[-1]) / np.abs(g).sum():.0%}")

# %% [markdown]
# ## 2. Softmax cross-entropy
#
# Each default box gets C scores (logits); softmax turns them into probabilities and the loss is
# −log p(target). Its gradient with respect to the logits is p − onehot(target).

# %%
import minissd.nn.functional as F
from minissd.data import ShapesDataset

classes = ShapesDataset.class_names                     # background first
logits = Tensor(np.array([[2.0, 0.5, -1.0, 0.0, 0.3, -0.5, 1.0, 0.2]]), requires_grad=True)
target = np.array([2])                                  # "square"
loss = F.cross_entropy(logits, target)
loss.backward()
p = to_numpy(logits.softmax(axis=-1).data)[0]
print("classes:       ", classes)
print("softmax p:     ", np.round(p, 3))
print(f"loss = -log p[{classes[2]}] = {-np.log(p[2]):.4f};  F.cross_entropy: {loss.item():.4f}")
print("gradient:      ", np.round(to_numpy(logits.grad)[0], 3))
print("p - onehot:    ", np.round(p - np.eye(len(p))[2], 3))

margins = np.linspace(-6, 6, 121)    # target logit minus every other logit (all others equal)
C = len(classes)
ce = [F.cross_entropy(Tensor(np.array([[m_] + [0.0] * (C - 1)])), np.array([0])).item() for m_ in margins]
fig, ax = plt.subplots(figsize=(10, 4))
ax.plot(margins, ce)
ax.axhline(np.log(C), color="grey", ls=":", lw=1)
ax.text(-6, np.log(C) + 0.1, f"log C = {np.log(C):.2f} (all equal)", fontsize=8)
ax.set_xlabel("target logit − other logits")
ax.set_ylabel("cross-entropy")
ax.set_title(f"cross-entropy over C = {C} classes", fontsize=10)
plt.show()

# %% [markdown]
# ## 3. Hard negative mining, on one image
#
# After matching, almost every default box is background. Counting them all would drown the positives,
# and most are easy. So per image the negatives are **ranked by their background loss −log p(background)**
# and only the top 3 × (number of positives) are kept. Here with an untrained `ssd_mini` (its scores are
# arbitrary, which makes the ranking easy to see) on one `ShapesDataset` image.

# %%
from minissd.data import eval_transform
from minissd.loss import MultiBoxLoss
from minissd.matching import match_batch
from minissd.models import ssd_mini
from minissd.priors import map_slices
from minissd.viz import MAP_COLOURS, draw_boxes, show_image

minissd.seed(0)
model = ssd_mini(num_classes=ShapesDataset.num_classes)
cfg = model.config
names, slices = cfg.source_names, map_slices(cfg)
priors = to_numpy(model.default_boxes)
corners = np.concatenate([priors[:, :2] - priors[:, 2:] / 2, priors[:, :2] + priors[:, 2:] / 2], axis=1)

ds = ShapesDataset(8, image_size=cfg.input_size, scene="mixed", seed=4)
index = int(np.argmax([len(ds[i][1]) for i in range(len(ds))]))   # the busiest of 8 images
image, boxes, labels = ds[index]
x, _, _ = eval_transform(cfg.input_size)(image, boxes, labels)   # (3, 160, 160) normalized
model.eval()
t0 = time.perf_counter()
with minissd.no_grad():
    loc, conf = model(x[None])                                    # (1, P, 4), (1, P, C)
print(f"forward of one image: {time.perf_counter() - t0:.2f} s; loc {loc.shape}, conf {conf.shape}")

loc_t, conf_t = match_batch([boxes], [labels], model.default_boxes)
criterion = MultiBoxLoss(neg_pos_ratio=3)
loss_loc, loss_conf = criterion(loc, conf, loc_t, conf_t)
positives = to_numpy(criterion.last_positives)[0]
negatives = to_numpy(criterion.last_negatives)[0]
bg_loss = -to_numpy(conf.log_softmax(axis=-1).data)[0, :, 0]      # -log p(background) per default box
P = len(priors)
print(f"{P} default boxes: {positives.sum()} positives, {negatives.sum()} mined negatives "
      f"(3 x {positives.sum()}), {P - positives.sum() - negatives.sum()} ignored")
print(f"{'map':9s} {'negatives':>9s} {'mined':>6s} {'mean -log p(bg)':>16s} {'of the mined':>13s}")
mined_per_map, mean_bg_per_map = [], []
for n, sl in zip(names, slices):
    neg_k = ~positives[sl]
    mined_k = negatives[sl]
    mined_per_map.append(int(mined_k.sum()))
    mean_bg_per_map.append(float(bg_loss[sl][neg_k].mean()))
    mined_mean = f"{bg_loss[sl][mined_k].mean():13.2f}" if mined_k.any() else f"{'-':>13s}"
    print(f"{n:9s} {neg_k.sum():9d} {mined_k.sum():6d} {mean_bg_per_map[-1]:16.2f} {mined_mean}")

# %%
fig, axes = plt.subplots(1, 3, figsize=(14, 4.8), gridspec_kw={"width_ratios": [1, 1, 1.3]})
show_image(axes[0], image, f"{positives.sum()} positives (colour: feature map)")
show_image(axes[1], image, f"{negatives.sum()} mined negatives (colour: feature map)")
for k, sl in enumerate(slices):
    for ax, mask in [(axes[0], positives), (axes[1], negatives)]:
        idx = np.nonzero(mask[sl])[0] + sl.start
        draw_boxes(ax, corners[idx], color=MAP_COLOURS[k], linewidth=0.8, show_text=False)
for ax in axes[:2]:
    draw_boxes(ax, boxes, color="white", linewidth=1.5, linestyle="--", show_text=False)

ax = axes[2]
neg_sorted = np.sort(bg_loss[~positives])[::-1]
n_mined = int(negatives.sum())
ax.plot(np.arange(1, len(neg_sorted) + 1), neg_sorted, color="grey", label="all negatives, hardest first")
ax.plot(np.arange(1, n_mined + 1), neg_sorted[:n_mined], color="red", lw=3, label="mined (3 per positive)")
ax.axvline(n_mined, color="red", ls=":", lw=1)
pos_sorted = np.sort(bg_loss[positives])[::-1]
ax.plot(np.arange(1, len(pos_sorted) + 1), pos_sorted, "o", ms=3, color="green",
        label="positives (for comparison)")
ax.set_xscale("log")
ax.set_xlabel("rank")
ax.set_ylabel("−log p(background)")
ax.set_title("why these: the highest background loss", fontsize=10)
ax.legend(fontsize=8)
handles = [plt.Line2D([], [], color=MAP_COLOURS[k], lw=2, label=f"{n} {cfg.feature_maps[k]}x{cfg.feature_maps[k]}")
           for k, n in enumerate(names)]
axes[1].legend(handles=handles, fontsize=8, loc="lower right", title="feature map", title_fontsize=8)
fig.tight_layout()
show_jpeg(fig)

# %%
from IPython.display import Markdown

threshold_loss = np.sort(bg_loss[~positives])[::-1][n_mined - 1]      # the last mined negative's loss
hardest_map = int(np.argmax(mean_bg_per_map))
display(Markdown(
    "The mined negatives are the boxes where the network is most wrong about \"background\": every one has "
    f"−log p(background) ≥ {threshold_loss:.2f}. Here (untrained) they come from "
    + ", ".join(f"{n} ({c})" for n, c in zip(names, mined_per_map) if c)
    + f". The map whose negatives have the highest mean background loss is {names[hardest_map]} "
    f"({mean_bg_per_map[hardest_map]:.2f}); mining ranks single boxes, so any map with a few very wrong boxes "
    "contributes."))

# %% [markdown]
# Without mining, every negative would enter the confidence loss:

# %%
neg_all = bg_loss[~positives].sum()
neg_mined = bg_loss[negatives].sum()
pos_part = (loss_conf.item() * max(positives.sum(), 1)) - neg_mined
print(f"confidence loss, summed: positives {pos_part:.1f}, mined negatives {neg_mined:.1f}, "
      f"all {(~positives).sum()} negatives {neg_all:.1f}")
print(f"negatives per positive: with mining {negatives.sum() / positives.sum():.0f}, "
      f"without {(~positives).sum() / positives.sum():.0f}")
print(f"negatives' share of the confidence loss: with mining {neg_mined / (neg_mined + pos_part):.0%}, "
      f"without {neg_all / (neg_all + pos_part):.1%}")

# %% [markdown]
# ### Exercise: mining with another ratio (classroom assignment `multibox_loss`)
#
# With `neg_pos_ratio=5` instead of 3, how many negatives does the image of this section get, and what is
# the smallest −log p(background) among them? Reason from the sorted curve above (`neg_sorted`,
# `positives.sum()`), then check: the cell below runs `MultiBoxLoss(neg_pos_ratio=5)`.

# %%
my_mined, my_threshold = None, None   # your number of mined negatives and the smallest mined loss

# %%
loc_t1, conf_t1 = match_batch([boxes], [labels], model.default_boxes)
ratio5 = MultiBoxLoss(neg_pos_ratio=5)
ratio5(loc, conf, loc_t1, conf_t1)
mined5 = to_numpy(ratio5.last_negatives)[0]
if my_mined is None or my_threshold is None:
    print("not answered yet: set my_mined and my_threshold in the cell above")
elif my_mined == mined5.sum() and np.isclose(my_threshold, bg_loss[mined5].min(), atol=1e-2):
    print(f"right: {mined5.sum()} negatives, the last with -log p(bg) = {bg_loss[mined5].min():.2f}")
else:
    print("wrong: ratio x positives, taken from the top of the sorted negatives")

# %% [markdown]
# ## 4. The loss on a batch
#
# `MultiBoxLoss` returns `(loss_loc, loss_conf)`, each divided by the number of positives in the batch.
# The mining is per image; the gradient reaches only the positives (loc and conf) and the mined negatives
# (conf). A check with leaf tensors in place of the network's output:

# %%
batch = 2 if FAST else 8
items = [ds[i] for i in range(batch)]
loc_t, conf_t = match_batch([b for _, b, _ in items], [l for _, _, l in items], model.default_boxes)
rng = np.random.default_rng(0)
loc_leaf = Tensor(rng.standard_normal((batch, P, 4)).astype(np.float32), requires_grad=True)
conf_leaf = Tensor(rng.standard_normal((batch, P, cfg.num_classes)).astype(np.float32), requires_grad=True)
ll, lc = criterion(loc_leaf, conf_leaf, loc_t, conf_t)
(ll + lc).backward()
pos, neg = to_numpy(criterion.last_positives), to_numpy(criterion.last_negatives)
has_loc_grad = np.abs(to_numpy(loc_leaf.grad)).sum(-1) > 0
has_conf_grad = np.abs(to_numpy(conf_leaf.grad)).sum(-1) > 0
for n in range(batch):
    print(f"image {n}: {len(items[n][1])} objects, {pos[n].sum():3d} positives, {neg[n].sum():3d} negatives; "
          f"boxes with a loc gradient {has_loc_grad[n].sum():3d}, "
          f"with a conf gradient {has_conf_grad[n].sum():3d}")
print("loc gradient exactly on the positives:", np.array_equal(has_loc_grad, pos),
      "| conf gradient exactly on positives + mined negatives:", np.array_equal(has_conf_grad, pos | neg))

# %% [markdown]
# And the real thing: a batch through `ssd_mini` in training mode, the two loss terms, and `backward()` into
# every weight.

# %%
x = np.stack([eval_transform(cfg.input_size)(*item)[0] for item in items])   # (N, 3, 160, 160)
model.train()
t0 = time.perf_counter()
loc, conf = model(x)
loss_loc, loss_conf = criterion(loc, conf, loc_t, conf_t)
loss = loss_loc + loss_conf
t1 = time.perf_counter()
loss.backward()
t2 = time.perf_counter()
n_pos = int(to_numpy(criterion.last_positives).sum())
print(f"batch of {batch}: {n_pos} positives, {int(to_numpy(criterion.last_negatives).sum())} mined negatives")
print(f"loss_loc = {loss_loc.item():.3f}, loss_conf = {loss_conf.item():.3f}, L = {loss.item():.3f}")
n_sel = n_pos + int(to_numpy(criterion.last_negatives).sum())
ce_per_box, log_c = loss_conf.item() * n_pos / n_sel, np.log(cfg.num_classes)
print(f"untrained: cross-entropy per selected box {ce_per_box:.2f}, "
      f"vs log C = {log_c:.2f} for uniform scores")
print(f"forward {t1 - t0:.1f} s, backward {t2 - t1:.1f} s")
grads = {name: float(np.linalg.norm(to_numpy(p_.grad))) for name, p_ in model.named_parameters()
         if p_.grad is not None}
print(f"{len(grads)} of {len(list(model.parameters()))} parameter tensors got a gradient; the largest norms:")
for name in sorted(grads, key=grads.get, reverse=True)[:5]:
    print(f"  {name:28s} {grads[name]:.3f}")
display(Markdown(
    f"The untrained network's cross-entropy per selected box, {ce_per_box:.2f}, is "
    + (f"{ce_per_box / log_c:.1f} times log C = {log_c:.2f}, the value of uniform scores: its random scores are "
       "confidently wrong on the selected boxes (mining picked the worst negatives)." if ce_per_box > 1.2 * log_c
       else f"close to log C = {log_c:.2f}, the value of uniform scores: its random scores are nearly uniform.")))

# %% [markdown]
# ## Summary
#
# * Smooth L1 regresses the offsets of positives, with a gradient capped at 1 for badly matched boxes.
# * Softmax cross-entropy scores every selected box; its gradient is p − onehot.
# * Hard negative mining keeps, per image, the 3 × positives negatives with the highest background loss:
#   at most 3 negatives per positive instead of hundreds, and those are the confusing ones.
# * `MultiBoxLoss` divides both terms by the number of positives. Next: training (07).
