"""The training loop shared by notebooks and the CLI: loss, optimizer, schedule, checkpoints, resume.

One step: a batch of augmented images -> ``outputs = model(images)`` -> ``model.loss(outputs, boxes,
labels)`` (each detector knows its targets: SSD matches the ground truth to its default boxes, YOLOv1
assigns it to grid cells) -> ``backward()`` -> an optimizer step -> a learning-rate schedule step.
The loop needs only what every detector offers: ``model.input_size``, ``model.loss``, ``model.detect``
and ``model.describe()``.

Checkpoints are ``.npz`` files (read with ``allow_pickle=False``) holding the model's parameters and
buffers, the optimizer's and the schedule's state, the step, and ``model.describe()`` (so
``minissd evaluate --weights`` can rebuild it, :func:`load_model`). They are written with
:func:`minissd.nn.serialization.save_npz` (a temporary file, then a rename), so a crash never leaves half
a checkpoint. The data order and every augmentation are functions of
(seed, epoch, index), so step + seed fix the random state: a run resumed from a checkpoint continues
exactly as if it had not stopped.

A NaN or Inf loss stops training with :class:`TrainingDiverged` naming the step; the last good
checkpoint stays on disk. Ctrl-C saves a checkpoint before stopping.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy

from . import backend
from .autograd import Tensor
from .data.loader import DataLoader
from .data.transforms import eval_transform, train_transform
from .detection import predict
from .evaluation import evaluate_detections
from .models.registry import model_from_description
from .models.ssd import InputConvention
from .nn import Module
from .nn.serialization import load_npz, save_npz
from .optim import SGD, Adam, LRSchedule, Optimizer

CHECKPOINT_FORMAT = 1


class TrainingDiverged(RuntimeError):
    """The loss became NaN or Inf."""


@dataclass
class TrainConfig:
    """Settings of one training run.

    steps: optimizer steps to run (the run may stop earlier at ``time_limit``).
    batch_size: images per step.
    optimizer: ``"adam"`` or ``"sgd"`` (momentum and weight decay as in the paper: 0.9, 5e-4).
    lr: peak learning rate, reached after ``warmup_steps`` of linear warm-up.
    schedule: after warm-up, ``"cosine"`` decay to ``min_lr_factor * lr`` at ``steps``, ``"multistep"``
        (x ``gamma`` at each of ``milestones``), or ``"constant"``.
    time_limit: stop after this many seconds of training (None: no limit); the schedule still follows
        ``steps``, so set ``steps`` to what fits in the time.
    eval_every / checkpoint_every: steps between evaluations / checkpoints (0: only at the end).
    augment: use the SSD augmentation pipeline (else only resize + normalise).
    loss_options: keyword arguments of ``model.loss`` (SSD: ``neg_pos_ratio``, ``alpha``; YOLOv1:
        ``lambda_coord``, ``lambda_noobj``); empty: the paper's values.
    """

    steps: int = 1000
    batch_size: int = 32
    optimizer: str = "adam"
    lr: float = 3e-3
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup_steps: int = 50
    schedule: str = "cosine"
    milestones: tuple[int, ...] = ()
    gamma: float = 0.1
    min_lr_factor: float = 0.02
    seed: int = 0
    time_limit: float | None = None
    eval_every: int = 0
    checkpoint_every: int = 0
    eval_images: int | None = None
    augment: bool = True
    num_workers: int = 2
    loss_options: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.steps, int) or self.steps < 1:
            raise ValueError(f"TrainConfig(steps): expected a positive integer, got {self.steps!r}")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ValueError(f"TrainConfig(batch_size): expected a positive integer, got {self.batch_size!r}")
        if self.optimizer not in ("adam", "sgd"):
            raise ValueError(f"TrainConfig(optimizer): expected 'adam' or 'sgd', got {self.optimizer!r}")
        if self.schedule not in ("cosine", "multistep", "constant"):
            raise ValueError(f"TrainConfig(schedule): expected 'cosine', 'multistep' or 'constant', "
                             f"got {self.schedule!r}")
        if not (isinstance(self.lr, (int, float)) and self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"TrainConfig(lr): expected a positive number, got {self.lr!r}")
        if self.time_limit is not None and not self.time_limit > 0:
            raise ValueError(f"TrainConfig(time_limit): expected seconds > 0 or None, got {self.time_limit!r}")
        self.milestones = tuple(int(m) for m in self.milestones)
        if not isinstance(self.loss_options, dict):
            raise ValueError(f"TrainConfig(loss_options): expected a dict of keyword arguments of model.loss, "
                             f"got {self.loss_options!r}")


@dataclass
class History:
    """What a run measured: one row per step and one per evaluation (lists of dicts, easy to plot)."""

    steps: list[dict[str, float]] = field(default_factory=list)
    evals: list[dict[str, float]] = field(default_factory=list)

    def column(self, name: str, evals: bool = False) -> numpy.ndarray:
        rows = self.evals if evals else self.steps
        return numpy.array([r[name] for r in rows], dtype=numpy.float64)


def input_convention_of(model: Module) -> InputConvention:
    """How images are normalised for ``model``'s weights (recorded in its checkpoint; minissd's default)."""
    convention = getattr(model, "input_convention", None)
    return convention if isinstance(convention, InputConvention) else InputConvention()



# ---------------------------------------------------------------------------- checkpoints
def _description(model: Module) -> dict[str, Any]:
    describe = getattr(model, "describe", None)
    if describe is None:
        raise TypeError(f"save_checkpoint(model): expected a detector with describe() (SSD, YOLOv1), "
                        f"got {type(model).__name__}")
    return describe()


def save_checkpoint(path: str, model: Module, optimizer: Optimizer | None = None, scheduler: Any = None,
                    step: int = 0, extra: dict[str, Any] | None = None) -> str:
    """Write model (+ optimizer, schedule, step) to ``path`` atomically; returns ``path``.

    ``extra`` adds JSON-able entries to the checkpoint's description; it may not replace the ones the
    checkpoint needs to be read back (``format``, ``step``, ``model``).
    """
    clash = sorted(set(extra or {}) & {"format", "step", "model"})
    if clash:
        raise ValueError(f"save_checkpoint(extra): keys {clash} are reserved for the checkpoint itself; "
                         f"rename them")
    arrays: dict[str, Any] = {}
    for prefix, part in (("model", model), ("optim", optimizer), ("sched", scheduler)):
        if part is not None:
            arrays.update({f"{prefix}/{name}": value for name, value in part.state_dict().items()})
    meta = {"format": CHECKPOINT_FORMAT, "step": int(step), "model": _description(model)}
    meta.update(extra or {})
    arrays["meta"] = numpy.array(json.dumps(meta))
    save_npz(path, arrays)
    return path


def read_checkpoint(path: str) -> tuple[dict[str, Any], dict[str, dict[str, numpy.ndarray]]]:
    """(meta, {"model": ..., "optim": ..., "sched": ...}) from a checkpoint file."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint {path!r} does not exist")
    try:
        data = load_npz(path)
    except Exception as exc:
        raise ValueError(f"checkpoint {path!r} is not a readable .npz file ({exc})") from None
    if "meta" not in data:
        raise ValueError(f"checkpoint {path!r} has no 'meta' entry: not a minissd training checkpoint")
    meta = json.loads(str(data.pop("meta")))
    parts: dict[str, dict[str, numpy.ndarray]] = {"model": {}, "optim": {}, "sched": {}}
    for key, value in data.items():
        head, _, name = key.partition("/")
        if head in parts:
            parts[head][name] = value
    return meta, parts


def load_model(path: str, model: Module | None = None) -> Module:
    """The model stored in checkpoint ``path`` (built from its description, or loaded into ``model``).

    Raises ValueError naming the checkpoint when it does not fit ``model``.
    """
    meta, parts = read_checkpoint(path)
    if meta.get("kind") == "backbone":
        raise ValueError(f"checkpoint {path!r} holds only a backbone (VGG16 base); start training from it with "
                         "`minissd train --backbone` (minissd.train.load_backbone)")
    if model is None:
        model = model_from_description(meta["model"])
    try:
        model.load_state_dict(parts["model"], strict=True)
    except (KeyError, ValueError) as exc:
        raise ValueError(f"checkpoint {path!r} does not fit this model: {exc}") from None
    return model


def load_backbone(model: Module, path: str) -> tuple[list[str], list[str]]:
    """Load the VGG16 base of a backbone checkpoint (``minissd convert``) into an SSD ``model``.

    Every tensor of the checkpoint must exist in ``model.base`` with the same shape (else ValueError naming
    them); the layers the backbone lacks (extras, L2Norm, heads) keep their initialisation. The model takes
    on the backbone's input convention. Returns (loaded keys, keys left at their initialisation).
    """
    if not hasattr(model, "input_convention") or not hasattr(model, "base"):
        raise TypeError(f"load_backbone(model): expected an SSD (a VGG16 base and an input convention), "
                        f"got {type(model).__name__}")
    meta, parts = read_checkpoint(path)
    if meta.get("kind") != "backbone":
        raise ValueError(f"--backbone {path!r}: not a backbone checkpoint (made by `minissd convert` from an ImageNet "
                         f"VGG16); it holds {meta.get('model', {}).get('kind', meta.get('kind'))!r}")
    own = model.state_dict()
    state = parts["model"]
    unexpected = sorted(k for k in state if k not in own)
    misshaped = [f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}"
                 for k, v in state.items() if k in own and tuple(v.shape) != tuple(own[k].shape)]
    if unexpected or misshaped or not state:
        width = meta.get("backbone", {}).get("width")
        raise ValueError(f"--backbone {path!r} (VGG16 at width {width}) does not fit {model.config.name} at width "
                         f"{model.config.width}: " + " | ".join(
                             ([f"keys the model lacks: {', '.join(unexpected)}"] if unexpected else [])
                             + ([f"mis-shaped: {'; '.join(misshaped)}"] if misshaped else [])
                             + (["it holds no tensors"] if not state else [])))
    model.load_state_dict(state, strict=False)
    if "input" in meta:
        model.input_convention = InputConvention(**meta["input"])
    return sorted(state), sorted(k for k in own if k not in state)


# ---------------------------------------------------------------------------- evaluation
def evaluate_model(model: Module, dataset: Any, batch_size: int = 32, conf_threshold: float = 0.01,
                   use_07_metric: bool = False, max_images: int | None = None,
                   return_detections: bool = False) -> dict[str, Any]:
    """VOC mAP@0.5 of ``model`` on ``dataset`` (items as in the API contract; difficult flags if it has them).

    Returns evaluate_detections' dict ({"ap": {class: ap}, "map": float, ...}), plus "detections" (one
    (boxes, labels, scores) host tuple per image) when ``return_detections``.
    """
    n = len(dataset) if max_images is None else min(len(dataset), max_images)
    pred_b, pred_l, pred_s, gt_b, gt_l, gt_d = [], [], [], [], [], []
    difficult = getattr(dataset, "difficult", None)
    for start in range(0, n, batch_size):
        images = []
        for i in range(start, min(n, start + batch_size)):
            image, boxes, labels = dataset[i]
            images.append(image)
            gt_b.append(numpy.asarray(boxes, numpy.float32).reshape(-1, 4))
            gt_l.append(numpy.asarray(labels, numpy.int64).reshape(-1))
            if callable(difficult):
                gt_d.append(numpy.asarray(difficult(i), bool).reshape(-1))
        for det in predict(model, images, conf_threshold=conf_threshold, batch_size=batch_size):
            pred_b.append(backend.to_numpy(det.boxes))
            pred_l.append(backend.to_numpy(det.labels))
            pred_s.append(backend.to_numpy(det.scores))
    result = evaluate_detections(pred_b, pred_l, pred_s, gt_b, gt_l, gt_difficult=gt_d or None,
                                 use_07_metric=use_07_metric)
    if return_detections:
        result["detections"] = list(zip(pred_b, pred_l, pred_s))
    return result


# ---------------------------------------------------------------------------- the trainer
class Trainer:
    """Train ``model`` on ``train_set``; optionally evaluate on ``val_set`` and write checkpoints to ``out_dir``.

    Example::

        model = ssd_mini(num_classes=ShapesDataset.num_classes)
        trainer = Trainer(model, ShapesDataset(4000), ShapesDataset(200, seed=1), TrainConfig(steps=500))
        history = trainer.fit()
    """

    def __init__(self, model: Module, train_set: Any, val_set: Any = None, config: TrainConfig | None = None,
                 out_dir: str | None = None, progress: bool = True) -> None:
        self.model = model
        self.config = config or TrainConfig()
        self.train_set, self.val_set = train_set, val_set
        self.out_dir = out_dir
        self.progress = progress
        cfg = self.config
        params = list(model.parameters())
        if cfg.optimizer == "sgd":
            self.optimizer: Optimizer = SGD(params, lr=cfg.lr, momentum=cfg.momentum,
                                            weight_decay=cfg.weight_decay)
        else:
            self.optimizer = Adam(params, lr=cfg.lr)
        self.train_seconds = 0.0
        self.scheduler = LRSchedule(self.optimizer, total_steps=cfg.steps, warmup_steps=cfg.warmup_steps,
                                    decay=cfg.schedule, min_factor=cfg.min_lr_factor, milestones=cfg.milestones,
                                    gamma=cfg.gamma)
        size, convention = model.input_size, input_convention_of(model)
        transform = (train_transform(size, convention.mean, convention.std) if cfg.augment
                     else eval_transform(size, convention.mean, convention.std))
        self.loader = DataLoader(train_set, cfg.batch_size, shuffle=True, transform=transform, seed=cfg.seed,
                                 drop_last=len(train_set) >= cfg.batch_size, num_workers=cfg.num_workers)
        if len(self.loader) == 0:
            raise ValueError(f"Trainer(train_set): it has {len(train_set)} images, fewer than one batch")
        self.step = 0
        self.history = History()

    def _time_progress(self) -> float:
        """Fraction of ``time_limit`` used so far (0 without a limit): the schedule's clock."""
        limit = self.config.time_limit
        return self.train_seconds / limit if limit else 0.0

    # ------------------------------------------------------------ one step
    def compute_loss(self, images: Any, boxes: list[Any], labels: list[Any]) -> tuple[Tensor, Tensor]:
        """(localisation loss, confidence loss) of the model on one batch."""
        return self.model.loss(self.model(images), boxes, labels, **self.config.loss_options)

    def train_step(self, images: Any, boxes: list[Any], labels: list[Any]) -> dict[str, float]:
        self.model.train()
        self.optimizer.zero_grad()
        loss_loc, loss_conf = self.compute_loss(images, boxes, labels)
        total = loss_loc + loss_conf
        value = total.item()
        if not math.isfinite(value):
            raise TrainingDiverged(
                f"training diverged at step {self.step}: the loss is {value} (loc {loss_loc.item()}, conf "
                f"{loss_conf.item()}); lower the learning rate. The last good checkpoint is "
                f"{self.checkpoint_path() if self.out_dir else '(none: no out_dir)'}"
            )
        total.backward()
        self.optimizer.step()
        self.scheduler.step(progress=self._time_progress())
        return {"loss": value, "loss_loc": loss_loc.item(), "loss_conf": loss_conf.item()}

    # ------------------------------------------------------------ checkpoints
    def checkpoint_path(self) -> str:
        if not self.out_dir:
            raise ValueError("Trainer: no out_dir was given, so there is nowhere to write checkpoints")
        return os.path.join(self.out_dir, "checkpoint.npz")

    def save(self, path: str | None = None) -> str:
        """Write a resumable checkpoint (model, optimizer, schedule, step, history) atomically."""
        extra = {"train_config": asdict(self.config), "train_seconds": self.train_seconds,
                 "history": {"steps": self.history.steps, "evals": self.history.evals}}
        return save_checkpoint(path or self.checkpoint_path(), self.model, self.optimizer, self.scheduler,
                               self.step, extra)

    def resume(self, path: str) -> None:
        """Continue from checkpoint ``path``: the next step is exactly the one that would have followed."""
        meta, parts = read_checkpoint(path)
        if meta.get("model") != json.loads(json.dumps(self.model.describe())):
            raise ValueError(f"checkpoint {path!r} was written for a different model "
                             f"({meta.get('model', {}).get('kind')}); build the same model to resume")
        self.model.load_state_dict(parts["model"], strict=True)
        self.optimizer.load_state_dict(parts["optim"])
        self.scheduler.load_state_dict(parts["sched"])
        self.step = int(meta["step"])
        self.train_seconds = float(meta.get("train_seconds", 0.0))
        hist = meta.get("history", {})
        self.history = History(list(hist.get("steps", [])), list(hist.get("evals", [])))

    # ------------------------------------------------------------ the loop
    def _batches(self) -> Iterator[tuple[Any, list[Any], list[Any]]]:
        per_epoch = len(self.loader)
        epoch, start = divmod(self.step, per_epoch)
        while True:
            yield from self.loader.iter_epoch(epoch, start=start)
            epoch, start = epoch + 1, 0

    def evaluate(self) -> dict[str, Any]:
        """mAP on ``val_set`` (recorded in the history)."""
        result = evaluate_model(self.model, self.val_set, max_images=self.config.eval_images)
        self.history.evals.append({"step": self.step, "map": float(result["map"]), "time": self.train_seconds})
        return result

    def fit(self, until_seconds: float | None = None) -> History:
        """Train until ``config.steps`` or ``config.time_limit`` seconds of training in all (a resumed run
        counts its earlier time), or until ``until_seconds`` of training in all if given (to evaluate
        along the way); returns the history."""
        cfg = self.config
        bar = None
        if self.progress:
            from tqdm.auto import tqdm  # noqa: PLC0415 - only needed with a progress bar

            if cfg.time_limit is not None:
                # a time-limited run: the bar fills with seconds, the postfix shows the step
                bar = tqdm(total=round(cfg.time_limit), initial=round(self.train_seconds), desc="train", unit="s",
                           dynamic_ncols=True,
                           bar_format="{l_bar}{bar}| {n:.0f}/{total_fmt} s{postfix}")
            else:
                bar = tqdm(total=cfg.steps, initial=self.step, desc="train", unit="step", dynamic_ncols=True)
        start_seconds = self.train_seconds
        t0 = time.perf_counter()
        batches = self._batches()
        try:
            while self.step < cfg.steps:
                if cfg.time_limit is not None and self.train_seconds >= cfg.time_limit:
                    break
                if until_seconds is not None and self.train_seconds >= until_seconds:
                    break
                t_wait = time.perf_counter()
                images, boxes, labels = next(batches)
                t_step = time.perf_counter()
                lr = self.scheduler.get_lr()[0]
                row = self.train_step(images, boxes, labels)
                self.step += 1
                now = time.perf_counter()
                self.train_seconds = start_seconds + (now - t0)
                row.update(step=self.step, lr=lr, time=self.train_seconds, wait=t_step - t_wait,
                           images_per_s=images.shape[0] / max(now - t_step, 1e-9))
                self.history.steps.append(row)
                if bar is not None:
                    if cfg.time_limit is not None:
                        bar.n = min(self.train_seconds, cfg.time_limit)
                        bar.refresh()
                    else:
                        bar.update(1)
                    bar.set_postfix(step=self.step, loc=f"{row['loss_loc']:.3f}", conf=f"{row['loss_conf']:.3f}",
                                    lr=f"{lr:.2g}", img_s=f"{row['images_per_s']:.1f}")
                if self.val_set is not None and cfg.eval_every and self.step % cfg.eval_every == 0:
                    self.evaluate()
                if self.out_dir and cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0:
                    self.save()
        except KeyboardInterrupt:
            if self.out_dir:
                path = self.save()
                print(f"\ninterrupted at step {self.step}: checkpoint saved to {path}")
            raise
        finally:
            if bar is not None:
                bar.close()
            batches.close()
        if self.val_set is not None and (not self.history.evals or self.history.evals[-1]["step"] != self.step):
            self.evaluate()
        if self.out_dir:
            self.save()
        return self.history
