"""The ``minissd`` command line (also ``python -m minissd``).

Commands: ``demo`` (the main job on built-in data), ``train``, ``evaluate``, ``detect``, ``boxes`` and
``assignment`` (classroom copies and grading). Every error prints one line and exits non-zero.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy

WEIGHTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "weights")
SHIPPED = {"ssd_mini": "ssd_mini_shapes.npz", "yolov1": "yolov1_mini_shapes.npz"}
MODELS = ("ssd_mini", "ssd300", "ssd512", "yolov1")
# held-out ShapesDataset seeds: training uses seeds below 1000, evaluation these
EVAL_SEED = 1000


class CLIError(Exception):
    """A user-facing error: printed as one line, exit code 1."""


def shipped_weights(model: str = "ssd_mini") -> str:
    """Path of the weights shipped inside the package for ``model`` ("ssd_mini" or "yolov1")."""
    return os.path.join(WEIGHTS_DIR, SHIPPED[model])


def _set_backend(name: str, seed: int | None = None) -> None:
    from . import backend  # noqa: PLC0415

    backend.set_backend(name)
    if seed is not None:
        backend.seed(seed)  # the initial weights come from the seeded global state


def _matplotlib() -> Any:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    return plt


# ---------------------------------------------------------------------------- datasets
def make_dataset(kind: str, split: str, images: int | None, scene: str = "mixed", root: str | None = None,
                 year: str = "2007", seed: int = 0) -> Any:
    """The dataset a command asked for: ShapesDataset (split 'train' or 'test') or VOCDataset."""
    from .data import ShapesDataset, VOCDataset  # noqa: PLC0415
    from .data.loader import ConcatDataset  # noqa: PLC0415

    if kind == "voc":
        if not root:
            raise CLIError("--data voc needs --data-root DIR (the VOCdevkit folder)")
        voc_split = {"train": "trainval", "test": "test"}.get(split, split)
        ds = VOCDataset(root, year=year, split=voc_split)
        return ds
    base = seed if split == "train" else EVAL_SEED + seed
    # ShapesDataset draws each image from its index, so a large training set costs no memory
    n = images if images is not None else (40000 if split == "train" else 200)
    if scene == "both":
        return ConcatDataset([ShapesDataset(n - n // 3, scene="mixed", seed=base),
                              ShapesDataset(n // 3, scene="flock", seed=base)])
    return ShapesDataset(n, scene=scene, seed=base)


def _num_classes(dataset: Any) -> int:
    return len(dataset.class_names)  # class_names lists background first


def build_named_model(name: str, num_classes: int) -> Any:
    from .models import ssd300, ssd512, ssd_mini, yolov1_mini  # noqa: PLC0415

    builders = {"ssd_mini": ssd_mini, "ssd300": ssd300, "ssd512": ssd512, "yolov1": yolov1_mini}
    if name not in builders:
        raise CLIError(f"--model: expected one of {', '.join(builders)}, got {name!r}")
    return builders[name](num_classes=num_classes)


# ---------------------------------------------------------------------------- boxes
def _cmd_boxes(args: argparse.Namespace) -> int:
    from .config import SSDConfig  # noqa: PLC0415

    presets = {"ssd300": SSDConfig.ssd300, "ssd512": SSDConfig.ssd512, "ssd_mini": SSDConfig.mini}
    cfg = presets[args.model]()
    print(cfg.format_table())
    return 0


# ---------------------------------------------------------------------------- train
def default_lr(model: str, optimizer: str) -> float:
    """The learning rate ``minissd train`` uses without ``--lr``: Adam 1e-2 for the mini detectors (the best of
    3e-3, 1e-2 and 2e-2 measured in docs/benchmarks.md), 1e-3 otherwise (the paper's SGD rate for SSD300)."""
    return 1e-2 if optimizer == "adam" and model in ("ssd_mini", "yolov1") else 1e-3


def planned_steps(steps: int | None, epochs: int | None, minutes: float | None, images: int, batch_size: int) -> int:
    """Optimizer steps of a ``minissd train`` run: ``--steps``, else ``--epochs`` passes, else (with only
    ``--minutes``) no step limit, so the time limit ends the run and drives the cosine decay; one epoch when
    nothing is given."""
    if steps is not None:
        return steps
    if epochs is None and minutes:
        return 10**9
    return max(1, images // batch_size) * (epochs or 1)


def _cmd_train(args: argparse.Namespace) -> int:
    from .train import TrainConfig, Trainer  # noqa: PLC0415

    _set_backend(args.backend, args.seed)
    train_set = make_dataset(args.data, "train", args.train_images, args.scene, args.data_root, args.year,
                             args.seed)
    val_set = make_dataset(args.data, "test", args.val_images, args.scene, args.data_root, args.year,
                           args.seed)
    model = build_named_model(args.model, _num_classes(train_set))
    steps = planned_steps(args.steps, args.epochs, args.minutes, len(train_set), args.batch_size)
    lr = args.lr if args.lr is not None else default_lr(args.model, args.optimizer)
    augment = args.augment if args.augment is not None else args.data == "voc"
    cfg = TrainConfig(steps=steps, batch_size=args.batch_size, lr=lr, optimizer=args.optimizer,
                      seed=args.seed, eval_every=args.eval_every, checkpoint_every=args.checkpoint_every,
                      time_limit=args.minutes * 60 if args.minutes else None, warmup_steps=args.warmup,
                      num_workers=args.workers, augment=augment)
    trainer = Trainer(model, train_set, val_set, cfg, out_dir=args.out)
    if args.resume:
        trainer.resume(args.resume)
        print(f"resumed from {args.resume} at step {trainer.step}")
    history = trainer.fit()
    last = history.evals[-1]["map"] if history.evals else float("nan")
    print(f"trained {args.model} for {trainer.step} steps in {trainer.train_seconds / 60:.1f} min; "
          f"mAP@0.5 {last:.3f} on {len(val_set)} held-out images; checkpoint {trainer.checkpoint_path()}")
    return 0


# ---------------------------------------------------------------------------- evaluate
def _load_weights(path: str | None, model_name: str = "ssd_mini") -> Any:
    from .train import load_model  # noqa: PLC0415

    path = path or shipped_weights(model_name)
    if not os.path.isfile(path):
        raise CLIError(f"--weights: file {path!r} does not exist")
    return load_model(path), path


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from .train import evaluate_model  # noqa: PLC0415

    _set_backend(args.backend)
    model, path = _load_weights(args.weights)
    dataset = make_dataset(args.data, "test", args.images, args.scene, args.data_root, args.year, args.seed)
    if _num_classes(dataset) != model.num_classes:
        raise CLIError(f"--weights {path} predicts {model.num_classes} classes but the data has "
                       f"{_num_classes(dataset)} (with background)")
    area = evaluate_model(model, dataset, batch_size=args.batch_size)
    voc07 = evaluate_model(model, dataset, batch_size=args.batch_size, use_07_metric=True)
    names = dataset.class_names
    print(f"{'class':<14}{'AP (area)':>10}{'AP (VOC07)':>12}")
    for c, ap in sorted(area["ap"].items()):
        print(f"{names[c]:<14}{ap:>10.3f}{voc07['ap'][c]:>12.3f}")
    print(f"{'mAP':<14}{area['map']:>10.3f}{voc07['map']:>12.3f}")
    print(f"({len(dataset)} images, weights {path})")
    return 0


# ---------------------------------------------------------------------------- detect
def _read_image(path: str) -> numpy.ndarray:
    from PIL import Image  # noqa: PLC0415

    if not os.path.isfile(path):
        raise CLIError(f"IMAGE: file {path!r} does not exist")
    try:
        with Image.open(path) as im:
            return numpy.asarray(im.convert("RGB"))
    except OSError as exc:
        raise CLIError(f"IMAGE: {path!r} is not a readable image ({exc})") from None


def _cmd_detect(args: argparse.Namespace) -> int:
    from .train import predict  # noqa: PLC0415
    from .viz import show_detections  # noqa: PLC0415

    _set_backend(args.backend)
    model, path = _load_weights(args.weights)
    images = [_read_image(p) for p in args.images]
    plt = _matplotlib()
    os.makedirs(args.out, exist_ok=True)
    names = _class_names_for(model)
    results = []
    for image_path, image, det in zip(args.images, images, predict(model, images, args.threshold)):
        from . import backend  # noqa: PLC0415

        boxes, labels, scores = (backend.to_numpy(a) for a in det)
        h, w = image.shape[:2]
        fig, ax = plt.subplots(figsize=(5, 5 * h / w))
        show_detections(image, boxes, labels, scores, names, ax=ax, title=os.path.basename(image_path))
        out_png = os.path.join(args.out, os.path.splitext(os.path.basename(image_path))[0] + "_detections.png")
        fig.savefig(out_png, dpi=100, bbox_inches="tight")
        plt.close(fig)
        results.append({
            "image": image_path, "annotated": out_png, "width": w, "height": h,
            "detections": [
                {"label": int(lab), "class": names[int(lab)] if names else str(int(lab)),
                 "score": round(float(s), 4),
                 # clipped to the image: an undertrained model can decode boxes far outside it
                 "box_pixels": [round(float(min(max(v, 0.0), size)), 1)
                                for v, size in zip((b[0] * w, b[1] * h, b[2] * w, b[3] * h), (w, h, w, h))]}
                for b, lab, s in zip(boxes, labels, scores)
            ],
        })
        print(f"{image_path}: {len(boxes)} detections -> {out_png}")
    with open(os.path.join(args.out, "detections.json"), "w") as f:
        json.dump({"weights": path, "threshold": args.threshold, "images": results}, f, indent=2)
    print(f"detections written to {os.path.join(args.out, 'detections.json')}")
    return 0


def _class_names_for(model: Any) -> Sequence[str] | None:
    from .data import ShapesDataset  # noqa: PLC0415

    if model.num_classes == ShapesDataset.num_classes:
        return ShapesDataset.class_names
    if model.num_classes == 21:
        from .data.voc import VOC_CLASS_NAMES  # noqa: PLC0415

        return VOC_CLASS_NAMES
    return None


# ---------------------------------------------------------------------------- demo
def _cmd_demo(args: argparse.Namespace) -> int:
    from . import backend  # noqa: PLC0415
    from .config import SSDConfig  # noqa: PLC0415
    from .data import ShapesDataset  # noqa: PLC0415
    from .models import ssd_mini  # noqa: PLC0415
    from .train import TrainConfig, Trainer, evaluate_model  # noqa: PLC0415
    from .viz import plot_default_boxes, plot_history, plot_matching, show_detections  # noqa: PLC0415

    _set_backend(args.backend, args.seed)
    plt = _matplotlib()
    out = args.out
    os.makedirs(out, exist_ok=True)
    t_start = time.perf_counter()
    names = ShapesDataset.class_names
    num_classes = ShapesDataset.num_classes
    written: list[str] = []

    def save(fig: Any, name: str) -> None:
        path = os.path.join(out, name)
        fig.savefig(path, dpi=90, bbox_inches="tight")
        plt.close(fig)
        written.append(path)

    # 1. default boxes and matching
    print("[1/3] default boxes of every feature map and the matching of one training image")
    cfg = SSDConfig.mini(num_classes=num_classes)
    train_set = ShapesDataset(args.train_images, scene="mixed", seed=args.seed)
    image, boxes, labels = train_set[0]
    save(plot_default_boxes(cfg, image), "default_boxes.png")
    fig, ax = plt.subplots(figsize=(5, 5))
    plot_matching(image, boxes, labels, cfg, class_names=names, ax=ax)
    save(fig, "matching.png")
    print(cfg.format_table())

    test_mixed = ShapesDataset(args.eval_images, scene="mixed", seed=EVAL_SEED)

    def detections_figure(model: Any, title: str) -> Any:
        fig, axes = plt.subplots(2, 3, figsize=(10, 6.8))
        imgs = [test_mixed[i][0] for i in range(6)]
        from .train import predict  # noqa: PLC0415

        for ax, im, det, i in zip(axes.ravel(), imgs, predict(model, imgs, 0.4), range(6)):
            show_detections(im, *(backend.to_numpy(a) for a in det), names, gt_boxes=test_mixed[i][1], ax=ax)
        fig.suptitle(title, fontsize=10)
        fig.tight_layout()
        return fig

    # 2. shipped weights
    shipped_map = None
    weights = shipped_weights("ssd_mini")
    print(f"\n[2/3] shipped ssd_mini weights on {len(test_mixed)} held-out mixed scenes")
    if os.path.isfile(weights):
        model, _ = _load_weights(weights)
        shipped_map = evaluate_model(model, test_mixed)["map"]
        print(f"      mAP@0.5 = {shipped_map:.3f}")
        save(detections_figure(model, f"shipped weights: mAP@0.5 {shipped_map:.3f}"), "shipped_detections.png")
    else:
        print(f"      (no shipped weights at {weights}; skipped)")

    # 3. a short training run from scratch
    print(f"\n[3/3] training ssd_mini from scratch for {args.minutes:g} min on {args.backend}")
    model = ssd_mini(num_classes=num_classes)
    seconds = args.minutes * 60
    tcfg = TrainConfig(steps=args.max_steps, batch_size=args.batch_size, lr=default_lr("ssd_mini", "adam"),
                       warmup_steps=20, schedule="cosine", time_limit=seconds, seed=args.seed, augment=False)
    trainer = Trainer(model, train_set, None, tcfg, out_dir=out)
    history = trainer.fit()
    trained_map = evaluate_model(model, test_mixed)["map"]
    history.evals.append({"step": trainer.step, "map": trained_map, "time": trainer.train_seconds})
    save(plot_history(history), "training.png")
    save(detections_figure(model, f"after {trainer.train_seconds / 60:.1f} min of training: mAP@0.5 "
                                  f"{trained_map:.3f}"), "trained_detections.png")

    images_per_s = trainer.step * args.batch_size / max(trainer.train_seconds, 1e-9)
    first = numpy.mean([r["loss"] for r in history.steps[:5]]) if history.steps else float("nan")
    last = numpy.mean([r["loss"] for r in history.steps[-5:]]) if history.steps else float("nan")
    print("\nminissd demo: what it measured")
    print(f"  default boxes (ssd_mini):     {cfg.num_priors}")
    if shipped_map is not None:
        print(f"  shipped weights, mAP@0.5:     {shipped_map:.3f}  ({len(test_mixed)} held-out mixed scenes)")
    print(f"  training from scratch:        {trainer.step} steps x {args.batch_size} images in "
          f"{trainer.train_seconds / 60:.1f} min ({images_per_s:.1f} images/s)")
    print(f"  loss:                         {first:.3f} -> {last:.3f}")
    print(f"  mAP@0.5 after training:       {trained_map:.3f}")
    print(f"  total time:                   {(time.perf_counter() - t_start) / 60:.1f} min")
    print(f"  pictures in {out}/: " + ", ".join(os.path.basename(p) for p in written))
    return 0


# ---------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="minissd", description="SSD from scratch on NumPy/CuPy.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser("demo", help="the main job on built-in synthetic data (about 5 minutes)",
                          description="Draw default boxes and matching, evaluate the shipped weights, train "
                                      "ssd_mini from scratch for a few minutes and report its mAP.")
    demo.add_argument("--minutes", type=float, default=3.0, help="training time in minutes (default 3)")
    demo.add_argument("--out", default="minissd-demo", help="output folder (default minissd-demo)")
    demo.add_argument("--backend", choices=["numpy", "cupy"], default="numpy")
    demo.add_argument("--batch-size", type=int, default=16)
    demo.add_argument("--max-steps", type=int, default=100000, help=argparse.SUPPRESS)
    demo.add_argument("--train-images", type=int, default=4000, help=argparse.SUPPRESS)
    demo.add_argument("--eval-images", type=int, default=200, help="held-out images to evaluate on")
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(func=_cmd_demo)

    train = sub.add_parser("train", help="train a detector", description="Train a detector; checkpoints "
                           "go to OUT/checkpoint.npz (resumable with --resume).")
    train.add_argument("--model", choices=MODELS, default="ssd_mini")
    train.add_argument("--data", choices=["shapes", "voc"], default="shapes")
    train.add_argument("--data-root", help="VOCdevkit folder (with --data voc)")
    train.add_argument("--year", default="2007", help="VOC year (with --data voc)")
    train.add_argument("--scene", choices=["mixed", "flock", "both"], default="both",
                       help="ShapesDataset scenes (default both)")
    train.add_argument("--train-images", type=int, default=None, help="ShapesDataset training images (40000)")
    train.add_argument("--val-images", type=int, default=None, help="held-out images for evaluation (200)")
    group = train.add_mutually_exclusive_group()
    group.add_argument("--steps", type=int, help="optimizer steps")
    group.add_argument("--epochs", type=int, help="passes over the training set")
    train.add_argument("--minutes", type=float, default=None, help="stop after this much training time")
    train.add_argument("--batch-size", type=int, default=32)
    train.add_argument("--lr", type=float, default=None,
                       help="peak learning rate (default: 1e-2 with Adam for ssd_mini and yolov1, else 1e-3)")
    train.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None,
                       help="SSD augmentation (default: on for --data voc, off for shapes, whose images are new "
                            "for every index)")
    train.add_argument("--optimizer", choices=["adam", "sgd"], default="adam")
    train.add_argument("--warmup", type=int, default=50, help="warm-up steps")
    train.add_argument("--eval-every", type=int, default=0, help="steps between evaluations (0: at the end)")
    train.add_argument("--checkpoint-every", type=int, default=100)
    train.add_argument("--workers", type=int, default=2, help="data loader threads")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--out", default="runs/train", help="output folder")
    train.add_argument("--resume", help="checkpoint to continue from")
    train.add_argument("--backend", choices=["numpy", "cupy"], default="numpy")
    train.set_defaults(func=_cmd_train)

    ev = sub.add_parser("evaluate", help="per-class AP and mAP of a checkpoint",
                        description="Per-class AP table and mAP@0.5 (area and VOC07 11-point).")
    ev.add_argument("--weights", help="checkpoint (default: the shipped ssd_mini weights)")
    ev.add_argument("--data", choices=["shapes", "voc"], default="shapes")
    ev.add_argument("--data-root")
    ev.add_argument("--year", default="2007")
    ev.add_argument("--scene", choices=["mixed", "flock", "both"], default="mixed")
    ev.add_argument("--images", type=int, default=None, help="held-out ShapesDataset images (200)")
    ev.add_argument("--batch-size", type=int, default=32)
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--backend", choices=["numpy", "cupy"], default="numpy")
    ev.set_defaults(func=_cmd_evaluate)

    det = sub.add_parser("detect", help="detect objects in image files",
                         description="Annotated images and a detections.json for each IMAGE.")
    det.add_argument("images", nargs="+", metavar="IMAGE")
    det.add_argument("--weights", help="checkpoint (default: the shipped ssd_mini weights)")
    det.add_argument("--out", default="detections", help="output folder")
    det.add_argument("--threshold", type=float, default=0.4, help="minimum score (default 0.4)")
    det.add_argument("--backend", choices=["numpy", "cupy"], default="numpy")
    det.set_defaults(func=_cmd_detect)

    boxes = sub.add_parser("boxes", help="the default-box table of a preset",
                           description="Feature maps, sizes, ratios and default-box counts per map.")
    boxes.add_argument("--model", choices=["ssd300", "ssd512", "ssd_mini"], default="ssd300")
    boxes.set_defaults(func=_cmd_boxes)

    try:
        from .classroom.cli import add_subparser  # noqa: PLC0415
    except ImportError:  # pragma: no cover - the assignment tooling is optional in a stripped copy
        add_subparser = None
    if add_subparser is not None:
        add_subparser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(f"minissd {args.command}: interrupted", file=sys.stderr)
        return 130
    except (CLIError, ValueError, FileNotFoundError, RuntimeError, TypeError, OSError) as exc:
        print(f"minissd {args.command}: error: {exc}", file=sys.stderr)
        return 1
