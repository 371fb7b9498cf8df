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

from .data.synthetic import EVAL_SEED  # held-out ShapesDataset scenes (training uses seeds below it)


class CLIError(Exception):
    """A user-facing error: printed as one line, exit code 1."""


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
                 year: str = "2007", seed: int = 0, *, annotations: str | None = None, image_dir: str | None = None,
                 class_names: Sequence[str] | str | None = None, keep_difficult: bool = False) -> Any:
    """The dataset a command asked for: ShapesDataset (split 'train' or 'test'), VOCDataset or COCODataset.

    VOC: ``split`` 'train' means trainval, 'test' test, any other name that ImageSets/Main list;
    ``class_names`` a list (background first) or "auto" (read from the split's annotations).
    COCO: ``annotations`` (the JSON file) and ``image_dir``; ``split`` is not used.
    """
    from .data import COCODataset, ShapesDataset, VOCDataset  # noqa: PLC0415
    from .data.loader import ConcatDataset  # noqa: PLC0415

    if kind == "voc":
        if not root:
            raise CLIError("--data voc needs --data-root DIR (the VOCdevkit folder)")
        voc_split = {"train": "trainval", "test": "test"}.get(split, split)
        ds = VOCDataset(root, year=year, split=voc_split, keep_difficult=keep_difficult,
                        class_names=class_names if class_names is not None else "auto")
        return ds
    if kind == "coco":
        if not annotations or not image_dir:
            raise CLIError("--data coco needs --annotations FILE (the COCO JSON) and --images DIR (its images)")
        return COCODataset(annotations, image_dir)
    base = seed if split == "train" else EVAL_SEED + seed
    # ShapesDataset draws each image from its index, so a large training set costs no memory
    n = images if images is not None else (40000 if split == "train" else 200)
    if scene == "both":
        return ConcatDataset([ShapesDataset(n - n // 3, scene="mixed", seed=base),
                              ShapesDataset(n // 3, scene="flock", seed=base)])
    return ShapesDataset(n, scene=scene, seed=base)


def _num_classes(dataset: Any) -> int:
    return len(dataset.class_names)  # class_names lists background first


def _parse_classes(text: str | None) -> tuple[str, ...] | None:
    """--classes a,b,c -> ("background", "a", "b", "c")."""
    if text is None:
        return None
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names or len(set(names)) != len(names) or "background" in names:
        raise CLIError(f"--classes: expected distinct class names separated by commas, got {text!r}")
    return ("background", *names)


def _validation_set(args: argparse.Namespace, train_set: Any) -> tuple[Any, Any, str]:
    """(training set, validation set, a sentence saying where the validation images come from)."""
    if args.data == "shapes":
        val = make_dataset("shapes", "test", args.val_images, args.scene, seed=args.seed)
        return train_set, val, f"{len(val)} held-out ShapesDataset images (seed {EVAL_SEED + args.seed})"
    if args.val_split is not None and args.val_fraction is not None:
        raise CLIError("--val-split and --val-fraction: give one of them")
    if args.data == "voc" and args.val_fraction is None:
        years = args.year.split("+")
        split = args.val_split or "test"
        lists = [os.path.join(args.data_root, f"VOC{y}", "ImageSets", "Main", f"{split}.txt") for y in years]
        if args.val_split is not None or all(os.path.isfile(p) for p in lists):
            val = make_dataset("voc", split, None, root=args.data_root, year=args.year,
                               class_names=train_set.class_names, keep_difficult=True)
            return train_set, val, f"the VOC {split!r} split ({len(val)} images)"
    if args.val_split is not None:
        raise CLIError("--val-split: a COCO annotation file has no named splits; use --val-fraction")
    fraction = args.val_fraction if args.val_fraction is not None else 0.1
    from .data import split_off  # noqa: PLC0415

    try:
        train_part, held = split_off(train_set, fraction, args.seed)
    except ValueError as exc:
        raise CLIError(f"--val-fraction {fraction}: {exc}") from None
    return train_part, held, (f"a held-out slice of the training data: {len(held)} of {len(train_set)} images "
                              f"(--val-fraction {fraction:g}, seed {args.seed}); training on the other "
                              f"{len(train_part)}")


# ---------------------------------------------------------------------------- boxes
def _cmd_boxes(args: argparse.Namespace) -> int:
    from .models.registry import ssd_config  # noqa: PLC0415

    print(ssd_config(args.model).format_table())
    return 0


# ---------------------------------------------------------------------------- train
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
    from .models.registry import build_model, default_lr  # noqa: PLC0415
    from .train import TrainConfig, Trainer  # noqa: PLC0415

    _set_backend(args.backend, args.seed)
    if args.data != "shapes" and (args.train_images is not None or args.val_images is not None):
        raise CLIError("--train-images and --val-images count ShapesDataset images; with --data voc or coco "
                       "use --val-fraction or --val-split")
    if args.classes is not None and args.data != "voc":
        raise CLIError("--classes: only with --data voc (COCO files list their categories)")
    train_set = make_dataset(args.data, "train", args.train_images, args.scene, args.data_root, args.year,
                             args.seed, annotations=args.annotations, image_dir=args.images,
                             class_names=_parse_classes(args.classes))
    train_set, val_set, where = _validation_set(args, train_set)
    print(f"classes ({_num_classes(train_set) - 1}): {', '.join(train_set.class_names[1:])}")
    print(f"validation: {where}")
    model = build_model(args.model, num_classes=_num_classes(train_set))
    if args.resume:
        from .models.ssd import InputConvention  # noqa: PLC0415
        from .train import read_checkpoint  # noqa: PLC0415

        # the run's input convention and class names come from the checkpoint (set by --backbone or convert)
        described = read_checkpoint(args.resume)[0].get("model", {})
        if hasattr(model, "input_convention") and "input" in described:
            model.input_convention = InputConvention(**described["input"])
        if hasattr(model, "class_names") and described.get("class_names"):
            model.class_names = tuple(described["class_names"])
    elif args.backbone:
        from .train import load_backbone  # noqa: PLC0415

        if args.model not in ("ssd300", "ssd512"):
            raise CLIError(f"--backbone needs --model ssd300 or ssd512 (VGG16 at full width), got {args.model!r}")
        loaded, kept = load_backbone(model, args.backbone)
        print(f"backbone {args.backbone}: {len(loaded)} tensors loaded into the VGG16 base; {len(kept)} keep "
              f"their initialisation (extras, L2Norm, heads); input {model.input_convention}")
    steps = planned_steps(args.steps, args.epochs, args.minutes, len(train_set), args.batch_size)
    lr = args.lr if args.lr is not None else default_lr(args.model, args.optimizer)
    augment = args.augment if args.augment is not None else args.data != "shapes"
    cfg = TrainConfig(steps=steps, batch_size=args.batch_size, lr=lr, optimizer=args.optimizer,
                      seed=args.seed, eval_every=args.eval_every, checkpoint_every=args.checkpoint_every,
                      time_limit=args.minutes * 60 if args.minutes else None, warmup_steps=args.warmup,
                      num_workers=args.workers, augment=augment)
    model.class_names = tuple(train_set.class_names)  # recorded in every checkpoint, so detect prints them
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
    from .models.registry import shipped_weights  # noqa: PLC0415
    from .train import load_model  # noqa: PLC0415

    path = path or shipped_weights(model_name)
    if not os.path.isfile(path):
        raise CLIError(f"--weights: file {path!r} does not exist")
    return load_model(path), path


def _ground_truth(dataset: Any, i: int) -> tuple[numpy.ndarray, numpy.ndarray, numpy.ndarray, tuple[int, int]]:
    """Item i's boxes, labels, crowd flags and (H, W), from the annotations when the dataset has them."""
    if hasattr(dataset, "crowd") and hasattr(dataset, "image_size"):  # COCO: objects, then crowd regions
        ann = dataset.annotation(i)
        boxes = numpy.concatenate([ann["boxes"], ann["crowd_boxes"]])
        labels = numpy.concatenate([ann["labels"], ann["crowd_labels"]])
        crowd = numpy.arange(len(labels)) >= len(ann["labels"])
        return boxes, labels, crowd, (ann["height"], ann["width"])
    if hasattr(dataset, "annotation"):  # VOC: the size is in the XML
        ann = dataset.annotation(i)
        keep = ~ann["difficult"]  # COCO's rules know no difficult flag: those objects are left out
        return ann["boxes"][keep], ann["labels"][keep], numpy.zeros(int(keep.sum()), bool), (ann["height"],
                                                                                             ann["width"])
    image, boxes, labels = dataset[i]
    return boxes, labels, numpy.zeros(len(labels), bool), image.shape[:2]


def _print_coco(model: Any, dataset: Any, batch_size: int) -> None:
    from .evaluation import coco_metrics  # noqa: PLC0415
    from .train import evaluate_model  # noqa: PLC0415

    dets = evaluate_model(model, dataset, batch_size=batch_size, return_detections=True)["detections"]
    gt = [_ground_truth(dataset, i) for i in range(len(dataset))]
    out = coco_metrics([d[0] for d in dets], [d[1] for d in dets], [d[2] for d in dets], [g[0] for g in gt],
                       [g[1] for g in gt], [g[3] for g in gt], [g[2] for g in gt], per_class=True)
    names = dataset.class_names
    print(f"{'class':<14}{'AP':>8}{'AP50':>8}{'AP75':>8}")
    for c, row in sorted(out.pop("per_class").items()):
        print(f"{names[c]:<14}{row['AP']:>8.3f}{row['AP50']:>8.3f}{row['AP75']:>8.3f}")
    labels = {"AP": "AP @[IoU=0.50:0.95 | area=all | maxDets=100]", "AP50": "AP @[IoU=0.50 | area=all]",
              "AP75": "AP @[IoU=0.75 | area=all]", "APs": "AP small (area < 32^2)",
              "APm": "AP medium (32^2 .. 96^2)", "APl": "AP large (area > 96^2)", "AR1": "AR maxDets=1",
              "AR10": "AR maxDets=10", "AR100": "AR maxDets=100", "ARs": "AR small", "ARm": "AR medium",
              "ARl": "AR large"}
    print("COCO metrics:")
    for key, text in labels.items():
        print(f"  {key:<6}{out[key]:>7.3f}   {text}")


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from .train import evaluate_model  # noqa: PLC0415

    _set_backend(args.backend)
    model, path = _load_weights(args.weights)
    count, image_dir = None, None
    if args.data == "coco":
        image_dir = args.images
    elif args.images is not None:
        try:
            count = int(args.images)
        except ValueError:
            raise CLIError(f"--images: with --data {args.data} expected a number of images, got {args.images!r}") \
                from None
    if args.classes is not None and args.data != "voc":
        raise CLIError("--classes: only with --data voc (COCO files list their categories)")
    class_names = None
    if args.data == "voc":  # the label order the model was trained with, when known; else sorted names
        class_names = _parse_classes(args.classes) or _class_names_for(model)
    split = args.split if args.data == "voc" else "test"
    dataset = make_dataset(args.data, split, count, args.scene, args.data_root, args.year, args.seed,
                           annotations=args.annotations, image_dir=image_dir, class_names=class_names,
                           keep_difficult=True)
    if count is not None and args.data == "voc":
        from .data import Subset  # noqa: PLC0415

        dataset = Subset(dataset, range(min(count, len(dataset))))
    if _num_classes(dataset) != model.num_classes:
        raise CLIError(f"--weights {path} predicts {model.num_classes} classes but the data has "
                       f"{_num_classes(dataset)} (with background)")
    metric = args.metric or ("coco" if args.data == "coco" else "voc")
    if metric == "coco":
        _print_coco(model, dataset, args.batch_size)
        print(f"({len(dataset)} images, weights {path})")
        return 0
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
    from .detection import predict  # noqa: PLC0415
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

    if getattr(model, "class_names", None):  # recorded in the checkpoint (converted published weights)
        return model.class_names
    if model.num_classes == ShapesDataset.num_classes:
        return ShapesDataset.class_names
    if model.num_classes == 21:
        from .data.voc import VOC_CLASS_NAMES  # noqa: PLC0415

        return VOC_CLASS_NAMES
    return None


# ---------------------------------------------------------------------------- convert
def _cmd_convert(args: argparse.Namespace) -> int:
    from .pretrained import KINDS, convert  # noqa: PLC0415

    if args.kind is not None and args.kind not in KINDS:
        raise CLIError(f"--kind: expected one of {', '.join(KINDS)}, got {args.kind!r}")
    result = convert(args.source, args.out, args.kind)
    what = ("SSD checkpoint for detect/evaluate --weights" if result.model is not None
            else "backbone for train --backbone")
    print(f"{args.source}: {result.kind} ({KINDS[result.kind].description}), {len(result.arrays)} tensors")
    if result.model is not None:
        cfg = result.model.config
        print(f"  {cfg.name}: {cfg.num_classes} classes, {cfg.num_priors} default boxes, width {cfg.width:g}")
    print(f"  input: RGB, (pixel - mean {result.input.mean}) / std {result.input.std}, 0..255 scale")
    print(f"  changes: {result.source['changes']}")
    print(f"wrote {args.out} ({what})")
    return 0


# ---------------------------------------------------------------------------- demo
def _cmd_demo(args: argparse.Namespace) -> int:
    from . import backend  # noqa: PLC0415
    from .config import SSDConfig  # noqa: PLC0415
    from .data import ShapesDataset  # noqa: PLC0415
    from .models import ssd_mini  # noqa: PLC0415
    from .models.registry import default_lr, shipped_weights  # noqa: PLC0415
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
        from .detection import predict  # noqa: PLC0415

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
    from .models.registry import model_names, ssd_names  # noqa: PLC0415

    parser = argparse.ArgumentParser(prog="minissd", description="SSD from scratch on NumPy/CuPy.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser("demo", help="the main job on built-in synthetic data (about 5 minutes)",
                          description="Draw default boxes and matching, evaluate the shipped weights, train "
                                      "ssd_mini from scratch for a few minutes and report its mAP.")
    demo.add_argument("--minutes", type=float, default=3.0, help="training time in minutes (default 3)")
    demo.add_argument("--out", default="minissd-demo", help="output folder (default minissd-demo)")
    demo.add_argument("--backend", choices=["numpy", "cupy"], default="numpy")
    # 8, not 16: twice the steps for the same images, more mAP per minute (docs/benchmarks.md)
    demo.add_argument("--batch-size", type=int, default=8)
    demo.add_argument("--max-steps", type=int, default=100000, help=argparse.SUPPRESS)
    demo.add_argument("--train-images", type=int, default=4000, help=argparse.SUPPRESS)
    demo.add_argument("--eval-images", type=int, default=200, help="held-out images to evaluate on")
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(func=_cmd_demo)

    train = sub.add_parser("train", help="train a detector", description="Train a detector; checkpoints "
                           "go to OUT/checkpoint.npz (resumable with --resume).")
    train.add_argument("--model", choices=model_names(), default="ssd_mini")
    train.add_argument("--data", choices=["shapes", "voc", "coco"], default="shapes")
    train.add_argument("--data-root", help="VOCdevkit folder (with --data voc)")
    train.add_argument("--year", default="2007", help="VOC year (with --data voc)")
    train.add_argument("--classes", metavar="A,B,C",
                       help="VOC class names, in label order (default: read from the annotations, sorted)")
    train.add_argument("--annotations", metavar="FILE", help="COCO annotation JSON (with --data coco)")
    train.add_argument("--images", metavar="DIR", help="folder of the COCO images (with --data coco)")
    train.add_argument("--val-split", metavar="NAME",
                       help="VOC split to validate on (default: test if the tree has it, else a held-out slice)")
    train.add_argument("--val-fraction", type=float, metavar="F",
                       help="validate on a held-out fraction F of the training images (default 0.1 when the "
                            "data has no test split, as COCO files and VOC trees with only trainval)")
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
                       help="SSD augmentation (default: on for --data voc and coco, off for shapes, whose images "
                            "are new for every index)")
    train.add_argument("--optimizer", choices=["adam", "sgd"], default="adam")
    train.add_argument("--warmup", type=int, default=50, help="warm-up steps")
    train.add_argument("--eval-every", type=int, default=0, help="steps between evaluations (0: at the end)")
    train.add_argument("--checkpoint-every", type=int, default=100)
    train.add_argument("--workers", type=int, default=2, help="data loader threads")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--out", default="runs/train", help="output folder")
    train.add_argument("--resume", help="checkpoint to continue from")
    train.add_argument("--backbone", help="VGG16 base from `minissd convert` (ImageNet weights) to start from")
    train.add_argument("--backend", choices=["numpy", "cupy"], default="numpy")
    train.set_defaults(func=_cmd_train)

    ev = sub.add_parser("evaluate", help="per-class AP and mAP of a checkpoint",
                        description="Per-class AP table and the summary: mAP@0.5 (area and VOC07 11-point) "
                                    "with --metric voc, the twelve COCO numbers with --metric coco.")
    ev.add_argument("--weights", help="checkpoint (default: the shipped ssd_mini weights)")
    ev.add_argument("--data", choices=["shapes", "voc", "coco"], default="shapes")
    ev.add_argument("--data-root", help="VOCdevkit folder (with --data voc)")
    ev.add_argument("--year", default="2007")
    ev.add_argument("--split", default="test", help="VOC split to evaluate (default test)")
    ev.add_argument("--classes", metavar="A,B,C", help="VOC class names in label order (default: those the "
                    "checkpoint records, else read from the annotations, sorted)")
    ev.add_argument("--annotations", metavar="FILE", help="COCO annotation JSON (with --data coco)")
    ev.add_argument("--metric", choices=["voc", "coco"], default=None,
                    help="VOC AP@0.5 or the COCO metrics (default: coco for --data coco, else voc)")
    ev.add_argument("--scene", choices=["mixed", "flock", "both"], default="mixed")
    ev.add_argument("--images", default=None, metavar="N|DIR",
                    help="--data coco: the folder of the images; otherwise how many images to evaluate "
                         "(ShapesDataset default 200 held-out images)")
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

    conv = sub.add_parser("convert", help="convert published VGG16 / SSD300 weights (.pth, .safetensors)",
                          description="Read a published checkpoint without PyTorch (refusing any pickle that could "
                                      "run code) and write a minissd .npz. Kinds: torchvision-vgg16, "
                                      "torchvision-ssd300, ssdpytorch-ssd300, ssdpytorch-vgg16-reducedfc "
                                      "(detected from the key names when --kind is absent).")
    conv.add_argument("source", metavar="SOURCE", help="the published file (.pth, .pt or .safetensors)")
    conv.add_argument("out", metavar="OUT.npz", help="the minissd checkpoint to write")
    conv.add_argument("--kind", default=None, help="layout of SOURCE (default: detected from its key names)")
    conv.set_defaults(func=_cmd_convert)

    boxes = sub.add_parser("boxes", help="the default-box table of a preset",
                           description="Feature maps, sizes, ratios and default-box counts per map.")
    boxes.add_argument("--model", choices=ssd_names(), default="ssd300")
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
    except NotImplementedError:
        raise  # a classroom assignment still to write: its traceback says which function
    except (CLIError, ValueError, FileNotFoundError, RuntimeError, TypeError, OSError) as exc:
        print(f"minissd {args.command}: error: {exc}", file=sys.stderr)
        return 1
