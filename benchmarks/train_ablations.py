"""Each claim of the SSD story gets its own trained model: the checkpoints notebook 09 compares.

Four detectors, trained the same way on the same budget (the same number of steps of the same batch size,
so the same images in the same order; the recipe of ``benchmarks/train_mini.py``: ShapesDataset mixed +
flock scenes, no augmentation, Adam 1e-2, warm-up then cosine decay):

* ``ssd_mini``: the mini preset as shipped (detection on conv4_3, fc7 and three extra maps);
* ``ssd_mini_no_conv4_3``: the same without its finest source map, so detection from fc7 and the coarser
  maps only (the first map's default boxes go with it: the smallest box is then fc7's);
* ``ssd_mini_ratio1``: the same maps with aspect ratio 1 only (the two square boxes per location);
* ``yolov1``: the YOLOv1-style detector on the same backbone (7x7 grid, 2 boxes per cell).

An equal budget of images, not of wall time, keeps the comparison fair on a busy machine; each checkpoint
records its steps, wall time and mAP. Never run as a test.

    python benchmarks/train_ablations.py --steps 600 --save runs/ablations
    cp runs/ablations/<model>.npz minissd/weights/ablation_<model>.npz
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from minissd import backend  # noqa: E402
from minissd.config import SSDConfig  # noqa: E402
from minissd.data import (  # noqa: E402
    EVAL_SEED,  # noqa: E402
    ConcatDataset,
    ShapesDataset,
)
from minissd.models import SSD, build_model  # noqa: E402
from minissd.train import TrainConfig, Trainer, evaluate_model, save_checkpoint  # noqa: E402

MODELS = ("ssd_mini", "ssd_mini_no_conv4_3", "ssd_mini_ratio1", "yolov1")


def ablation_config(name: str, num_classes: int) -> SSDConfig:
    """The mini preset, or one of its two ablations."""
    c = SSDConfig.mini(num_classes)
    if name == "ssd_mini":
        return c
    if name == "ssd_mini_no_conv4_3":
        return c.replace(sources=("fc7",), feature_maps=c.feature_maps[1:], min_sizes=c.min_sizes[1:],
                         max_sizes=c.max_sizes[1:], aspect_ratios=c.aspect_ratios[1:], name="mini-no-conv4_3")
    if name == "ssd_mini_ratio1":
        return c.replace(aspect_ratios=((),) * len(c.feature_maps), name="mini-ratio1")
    raise ValueError(f"ablation_config(name): expected one of {MODELS[:3]}, got {name!r}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--eval-images", type=int, default=200, help="held-out mixed and flock scenes each")
    p.add_argument("--save", required=True, help="folder for <model>.npz")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    mixed = ShapesDataset(args.eval_images, scene="mixed", seed=EVAL_SEED)
    flock = ShapesDataset(args.eval_images, scene="flock", seed=EVAL_SEED)
    for name in args.models:
        backend.seed(args.seed)
        classes = ShapesDataset.num_classes
        model = build_model("yolov1", num_classes=classes) if name == "yolov1" else SSD(ablation_config(name, classes))
        train = ConcatDataset([ShapesDataset(30000, scene="mixed", seed=args.seed),
                               ShapesDataset(10000, scene="flock", seed=args.seed)])
        cfg = TrainConfig(steps=args.steps, batch_size=args.batch, lr=args.lr, warmup_steps=50, seed=args.seed,
                          augment=False)  # the recipe of the shipped weights: every ShapesDataset image is new
        trainer = Trainer(model, train, None, cfg, progress=False)
        start = time.time()
        trainer.fit()
        row = {"name": name, "steps": trainer.step, "batch": args.batch, "wall_s": time.time() - start,
               "train_s": trainer.train_seconds, "map_mixed": evaluate_model(model, mixed)["map"],
               "map_flock": evaluate_model(model, flock)["map"]}
        print(json.dumps(row), flush=True)
        save_checkpoint(os.path.join(args.save, f"{name}.npz"), model, step=trainer.step,
                        extra={"command": " ".join(sys.argv), **row})


if __name__ == "__main__":
    main()
