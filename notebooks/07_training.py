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
# # 07 · Training ssd_mini on ShapesDataset
#
# Everything so far comes together in one loop: a batch of images → `ssd_mini` → matching
# against the default boxes (05) → MultiBox loss (06) → `backward()` (01) → an Adam step. This notebook
# trains the small detector (`SSDConfig.mini()`: 160x160 input, 1/8 of VGG's widths, BatchNorm) on the
# synthetic `ShapesDataset`, with a progress bar, the loss and mAP curves and the detections before and
# after; then it evaluates the **shipped weights**. Code: `minissd/train.py` (`Trainer`, `TrainConfig`).
#
# The NumPy detector is slow on a CPU, so the run here is **short**; the shipped weights come from a much
# longer run.

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
# ## 1. The data
#
# `ShapesDataset` draws its images on the fly from a seed: seven shape classes on cluttered backgrounds
# (class 0 is background). Training uses seeds below `EVAL_SEED` and evaluation the held-out seed
# `EVAL_SEED` (`minissd.cli`), so the test images are never seen in training. SSD's augmentation
# (`train_transform`: photometric distortion, zoom out, random IoU crop, flip, resize) is what a finite
# set such as VOC needs; it is shown below. ShapesDataset draws a new image for every index, so a short
# run sees each image about once and trains faster without it (`TrainConfig(augment=False)`: measured in
# `docs/benchmarks.md`, "Time to mAP").

# %%
import os

from minissd.data import EVAL_SEED, Normalize, ShapesDataset, train_transform
from minissd.models import shipped_weights
from minissd.viz import draw_boxes, plot_history, show_detections, show_image

names = ShapesDataset.class_names
train_set = ShapesDataset(2000, scene="mixed", seed=0)
test_set = ShapesDataset(20 if FAST else 200, scene="mixed", seed=EVAL_SEED)   # the set of `minissd evaluate`
print(f"classes: {names} (num_classes = {ShapesDataset.num_classes})")
print(f"train: {len(train_set)} images, seed 0; held-out test: {len(test_set)} images, seed {EVAL_SEED}")

augment, unnormalize = train_transform(160), Normalize()
rng = np.random.default_rng(0)
fig, axes = plt.subplots(2, 3, figsize=(10, 7))
for col in range(3):
    image, boxes, labels = train_set[col]
    show_image(axes[0, col], image, f"train[{col}]: {len(boxes)} objects")
    draw_boxes(axes[0, col], boxes, labels, class_names=names)
    x, b, l = augment(image, boxes, labels, rng)
    show_image(axes[1, col], unnormalize.inverse(x), f"augmented: {len(b)} objects")
    draw_boxes(axes[1, col], b, l, class_names=names)
fig.tight_layout()
show_jpeg(fig)

# %% [markdown]
# ## 2. Before training
#
# A freshly initialised `ssd_mini` knows nothing, but it need not be uniformly unsure: the table gives, per
# source map, the mean over default boxes of the highest class probability (uniform scores would give
# 1/C). conv4_3's features pass through L2Norm (notebook 03), which sets the length of every location's
# feature vector to the initial scale `cfg.l2norm_scale`; the other maps have no such rescaling. Below, the
# five highest-scoring detections on three test images (solid; ground truth dashed white).

# %%
from minissd.detection import predict
from minissd.models import ssd_mini
from minissd.train import History, TrainConfig, Trainer, evaluate_model, load_model, read_checkpoint

minissd.seed(0)
model = ssd_mini(num_classes=ShapesDataset.num_classes)
print(f"ssd_mini: {sum(p.data.size for p in model.parameters()):,d} parameters, "
      f"{len(model.default_boxes)} default boxes, {model.num_classes} classes")
shown = [test_set[i] for i in range(3)]

from IPython.display import Markdown

from minissd.config import SSDConfig
from minissd.data import eval_transform
from minissd.nn.functional import softmax
from minissd.priors import map_slices

cfg = model.config
x = np.stack([eval_transform(cfg.input_size)(*item)[0] for item in shown])      # (3, 3, 160, 160)
model.eval()
with minissd.no_grad():
    _, conf = model(x)                                                          # (3, P, C) logits
prob = to_numpy(softmax(conf.data))
print(f"mean highest class probability per map, 3 test images "
      f"(uniform: 1/{cfg.num_classes} = {1 / cfg.num_classes:.3f}):")
top_prob = [float(prob[:, sl].max(axis=-1).mean()) for sl in map_slices(cfg)]
for name, sl, tp in zip(cfg.source_names, map_slices(cfg), top_prob):
    print(f"  {name:9s} {tp:.3f}  (background {prob[:, sl, 0].mean():.3f})")
most = int(np.argmax(top_prob))
display(Markdown(
    f"The most confident map is {cfg.source_names[most]} (mean highest probability {top_prob[most]:.3f}, "
    f"{top_prob[most] * cfg.num_classes:.1f} times uniform); the least is "
    f"{cfg.source_names[int(np.argmin(top_prob))]} ({min(top_prob):.3f}). L2Norm's initial scale here is "
    f"{cfg.l2norm_scale:g}, the paper's SSD300 uses {SSDConfig.ssd300().l2norm_scale:g}."))


def show_top(model, title, top=5):
    dets = predict(model, [im for im, _, _ in shown], conf_threshold=0.01)
    fig, axes = plt.subplots(1, 3, figsize=(11, 4))
    for ax, (im, gt, _), det in zip(axes, shown, dets):
        b, l, s = (to_numpy(a)[:top] for a in det)
        show_detections(im, b, l, s, names, gt_boxes=gt, ax=ax,
                        title=f"best score {s.max() if len(s) else 0:.2f}")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    show_jpeg(fig)


show_top(model, "untrained: the 5 best detections per image")

# %% [markdown]
# ## 3. Training, with a progress bar
#
# `TrainConfig` holds the run's settings; `Trainer.fit` runs the loop. Adam at lr 1e-2 with a short linear
# warm-up and a cosine decay; `time_limit` stops the run after a fixed time (the schedule then decays
# over that time). `fit(until_seconds=...)` pauses the run to evaluate on the test set along the way,
# which gives the mAP curve.

# %%
config = TrainConfig(
    steps=4 if FAST else 1000,          # an upper bound; the time limit ends the full run first
    batch_size=4 if FAST else 8,        # 8 learns more per minute than 16 (docs/benchmarks.md)
    lr=1e-2,                            # Adam; measured best for ssd_mini (docs/benchmarks.md)
    augment=False,                      # every image is new in a short run: no need to augment
    warmup_steps=1 if FAST else 10,
    schedule="cosine",
    time_limit=20 if FAST else 90,      # seconds of training
    seed=0,
)
trainer = Trainer(model, train_set, test_set, config, progress=True)
trainer.evaluate()                     # step 0: the untrained model's mAP
for part in (1, 2, 3):                 # train a third of the time, evaluate, and so on
    if trainer.step < config.steps:
        trainer.fit(until_seconds=config.time_limit * part / 3)
history = trainer.history

# %%
steps = history.column("step")
loss = history.column("loss")
n5 = max(1, min(5, len(loss) // 2))
first, last = loss[:n5].mean(), loss[-n5:].mean()
print(f"{trainer.step} steps x {config.batch_size} images in {trainer.train_seconds:.0f} s "
      f"({trainer.step * config.batch_size / trainer.train_seconds:.1f} images/s)")
print(f"loss (mean of the first / last {n5} steps): {first:.2f} -> {last:.2f}")
for row in history.evals:
    print(f"  step {row['step']:4.0f}: mAP@0.5 = {row['map']:.3f} on {len(test_set)} test images")
fig = plot_history(history, smooth=1 if FAST else 5)
fig.axes[1].set_ylim(0, max(0.05, 1.2 * history.column("map", evals=True).max()))
plt.show()

# %% [markdown]
# The loss falls fast at first. One of the first things the network learns is that almost every default
# box is background: the mean background probability per map, on the same three test images, before and
# after training.
# Good boxes take far longer; the mAP of such a short run stays low.

# %%
model.eval()
with minissd.no_grad():
    _, conf_after = model(x)
prob_after = to_numpy(softmax(conf_after.data))
print(f"{'map':9s} {'p(background) before':>20s} {'after':>6s}")
for name, sl in zip(cfg.source_names, map_slices(cfg)):
    print(f"{name:9s} {prob[:, sl, 0].mean():20.3f} {prob_after[:, sl, 0].mean():6.3f}")
show_top(model, f"after {trainer.step} steps ({trainer.train_seconds:.0f} s): the 5 best detections per image")

# %% [markdown]
# ## 4. The shipped weights
#
# `minissd.models.shipped_weights("ssd_mini")` is the checkpoint that ships with the package, trained the same
# way for much longer (its step count and training time are printed below). `load_model` rebuilds the
# model from the description stored in the checkpoint. Evaluated on the same held-out images:

# %%
path = shipped_weights("ssd_mini")
shipped = None
if os.path.isfile(path):
    shipped = load_model(path)
    meta, _ = read_checkpoint(path)
    trained = f", {meta['train_seconds'] / 60:.0f} min of training" if "train_seconds" in meta else ""
    print(f"loaded {os.path.relpath(path, minissd.__path__[0])}: step {meta.get('step')}{trained}")
    result = evaluate_model(shipped, test_set)
    which = "all 200 that `minissd evaluate` scores" if len(test_set) == 200 else "the first of those it scores"
    print(f"mAP@0.5 on {len(test_set)} held-out mixed scenes (seed {EVAL_SEED}; {which}): {result['map']:.3f} "
          f"(this notebook's short run: {history.evals[-1]['map']:.3f})")
    for c, ap in result["ap"].items():
        print(f"  {names[c]:9s} AP {ap:.3f}  ({result['num_positives'][c]} objects)")
    long_run = meta.get("history")
    if long_run and long_run.get("steps"):
        fig = plot_history(History(long_run["steps"], long_run.get("evals", [])), smooth=20)
        fig.suptitle("the training run of the shipped weights", fontsize=10)
        fig.tight_layout()
        plt.show()
else:
    print(f"no shipped weights at {path} yet: the pictures below use this notebook's short run")

# %%
if shipped is not None:
    images = [test_set[i] for i in range(3, 9)]
    dets = predict(shipped, [im for im, _, _ in images], conf_threshold=0.4)
    fig, axes = plt.subplots(2, 3, figsize=(11, 8))
    for ax, (im, gt, _gl), det in zip(axes.ravel(), images, dets):
        b, l, s = (to_numpy(a) for a in det)
        show_detections(im, b, l, s, names, gt_boxes=gt, ax=ax,
                        title=f"{len(b)} detections, {len(gt)} objects")
    fig.suptitle("shipped weights: detections with score >= 0.4 (ground truth dashed white)", fontsize=10)
    fig.tight_layout()
    show_jpeg(fig)
else:
    print("(no shipped weights: see the short run's detections above)")

# %% [markdown]
# ## Exercise: which term of the loss dominates? (classroom assignment `multibox_loss`)
#
# The training loss is loss_loc + loss_conf (notebook 06). For the trained detector (the shipped weights if
# present, else this notebook's model) on a batch of 8 test images, which of the two is larger? Set
# `my_answer` to "loc" or "conf"; the check computes both with `MultiBoxLoss`.

# %%
my_answer = None   # "loc" or "conf"

# %%
from minissd.loss import MultiBoxLoss
from minissd.matching import match_batch

trained = shipped if shipped is not None else model
batch_items = [test_set[i] for i in range(8)]
xb = np.stack([eval_transform(cfg.input_size)(*item)[0] for item in batch_items])
loc_t, conf_t = match_batch([b for _, b, _ in batch_items], [l for _, _, l in batch_items], trained.default_boxes)
trained.eval()
with minissd.no_grad():
    loc_b, conf_b = trained(xb)
    terms = MultiBoxLoss()(loc_b, conf_b, loc_t, conf_t)
larger = "loc" if terms[0].item() > terms[1].item() else "conf"
if my_answer is None:
    print("not answered yet: set my_answer in the cell above")
elif my_answer == larger:
    print(f"right: loss_loc {terms[0].item():.3f}, loss_conf {terms[1].item():.3f}")
else:
    print("wrong: compute both terms, or think about how many boxes each term is summed over")

# %% [markdown]
# ## Summary
#
# * `Trainer` runs the SSD training step: (augment →) forward → match → MultiBox loss → backward → Adam step,
#   with warm-up, cosine decay, a time limit, evaluations along the way and checkpoints.
# * A short CPU run lowers the loss quickly; accurate boxes need the long run of the shipped weights.
# * Next: what happens after the network, from raw outputs to detections and to mAP (08).
