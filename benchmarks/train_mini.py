"""Time to accuracy: mAP@0.5 (area) against wall time for ssd_mini and the YOLOv1-style detector.

Both are trained the same way (ShapesDataset mixed + flock scenes, no augmentation unless --augment, Adam with
warm-up and a cosine decay over the time budget, batch 8 by default) and evaluated at regular times on held-out
mixed scenes (500 by default) and flock scenes (200). Evaluation time is not counted as training time.

    python benchmarks/train_mini.py --minutes 15                  # both models, 15 min each
    python benchmarks/train_mini.py --models ssd_mini --minutes 10 --evals 5
    python benchmarks/train_mini.py --models ssd_mini --minutes 60 --save runs/ship   # keep the checkpoint

With ``--save DIR`` the final model goes to ``DIR/<model>.npz`` (a minissd checkpoint: ``minissd evaluate
--weights``, ``minissd.train.load_model``); that is how the shipped weights in ``minissd/weights/`` are made.

Prints a table per model (minutes, steps, images/s, mAP mixed, mAP flock), the share of the step spent
waiting for data, and the time to reach mAP mixed 0.3, 0.5 and 0.6: the training time of the first
evaluation at or above the target (so at most one evaluation interval late; more ``--evals`` resolve it
better), or "not reached". Never run as a test.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from minissd import backend  # noqa: E402
from minissd.data import EVAL_SEED, ConcatDataset, ShapesDataset  # noqa: E402
from minissd.models.registry import build_model  # noqa: E402
from minissd.train import TrainConfig, Trainer, evaluate_model, save_checkpoint  # noqa: E402

TARGETS = (0.3, 0.5, 0.6)


def time_to_map(rows: list[dict], targets: tuple[float, ...] = TARGETS) -> dict[float, float | None]:
    """For each target mAP (mixed scenes), the training minutes of the first evaluation that reached it."""
    return {t: next((r["minutes"] for r in rows if r["map_mixed"] >= t), None) for t in targets}


def run(name: str, minutes: float, evals: int, mixed: ShapesDataset, flock: ShapesDataset, batch: int,
        lr: float, seed: int, augment: bool, save: str | None, background_prior: float | None = None) -> list[dict]:
    backend.seed(seed)
    options = {} if background_prior is None else {"background_prior": background_prior}
    model = build_model(name, num_classes=ShapesDataset.num_classes, **options)
    # images are drawn on the fly, so a large set costs nothing; 3 mixed scenes per flock scene
    train = ConcatDataset([ShapesDataset(30000, scene="mixed", seed=seed),
                           ShapesDataset(10000, scene="flock", seed=seed)])
    cfg = TrainConfig(steps=10**6, batch_size=batch, lr=lr, warmup_steps=50, time_limit=minutes * 60, seed=seed,
                      augment=augment)
    trainer = Trainer(model, train, None, cfg, progress=False)
    rows = []
    for k in range(1, evals + 1):
        trainer.fit(until_seconds=minutes * 60 * k / evals)
        m = evaluate_model(model, mixed)["map"]
        f = evaluate_model(model, flock)["map"]
        steps = trainer.history.steps
        ips = len(steps) * batch / max(trainer.train_seconds, 1e-9)
        rows.append({"minutes": trainer.train_seconds / 60, "steps": trainer.step, "images_per_s": ips,
                     "map_mixed": m, "map_flock": f})
        print(f"{name:<9} {rows[-1]['minutes']:6.1f} min  step {trainer.step:5d}  {ips:5.1f} img/s  "
              f"mAP mixed {m:.3f}  flock {f:.3f}", flush=True)
    reached = time_to_map(rows)
    print(f"{name:<9} time to mAP mixed: " + ", ".join(
        f"{t:g}: {'not reached' if m is None else f'{m:.1f} min'}" for t, m in reached.items()), flush=True)
    waits = [r["wait"] for r in trainer.history.steps if "wait" in r]
    if waits:
        print(f"{name:<9} waiting for data: {100 * sum(waits) / max(trainer.train_seconds, 1e-9):.1f}% of the time")
    if save:
        path = save_checkpoint(os.path.join(save, f"{name}.npz"), model, step=trainer.step,
                               extra={"train_seconds": trainer.train_seconds, "evals": rows,
                                      "minutes_to_map": {str(t): m for t, m in reached.items()},
                                      "command": " ".join(sys.argv)})
        print(f"{name:<9} checkpoint {path}")
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=["ssd_mini", "yolov1"], choices=["ssd_mini", "yolov1"])
    p.add_argument("--minutes", type=float, default=15.0)
    p.add_argument("--evals", type=int, default=5, help="evaluations over the run")
    p.add_argument("--mixed", type=int, default=500)
    p.add_argument("--flock", type=int, default=200)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--augment", action="store_true",
                   help="use the SSD augmentation pipeline (off by default: see docs/benchmarks.md, Time to mAP)")
    p.add_argument("--save", default=None, help="folder for the final checkpoints (<model>.npz)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--background-prior", type=float, default=None,
                   help="initial background probability of the SSD conf heads (default: plain Xavier/zero init)")
    args = p.parse_args()
    cpu = platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    print(f"# time to mAP, {os.cpu_count()} cores ({cpu}), {time.strftime('%Y-%m-%d')}, "
          f"{args.minutes:g} min per model, batch {args.batch}, lr {args.lr}, augment {args.augment}, "
          f"background prior {args.background_prior}, threads {backend.get_num_threads()}")
    mixed = ShapesDataset(args.mixed, scene="mixed", seed=EVAL_SEED)
    flock = ShapesDataset(args.flock, scene="flock", seed=EVAL_SEED)
    for name in args.models:
        run(name, args.minutes, args.evals, mixed, flock, args.batch, args.lr, args.seed, args.augment, args.save,
            background_prior=args.background_prior if name != "yolov1" else None)


if __name__ == "__main__":
    main()
