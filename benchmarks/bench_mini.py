"""ssd_mini (and the YOLOv1-style detector) forward + backward time for a batch, with and without BatchNorm.

    python benchmarks/bench_mini.py                 # batch 32, median of 3 after 1 warm-up
    python benchmarks/bench_mini.py --batch 16 --repeat 5

Prints seconds per step and images per second. Never run as a test.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import numpy as np  # noqa: E402

from minissd import backend  # noqa: E402
from minissd.config import SSDConfig  # noqa: E402
from minissd.models import SSD, yolov1_mini  # noqa: E402


def step_time(model, batch: int, repeat: int) -> float:
    x = np.random.default_rng(0).standard_normal((batch, 3, 160, 160)).astype(np.float32)
    times = []
    for i in range(repeat + 1):
        t = time.perf_counter()
        out = model(x)
        loss = sum(o.sum() for o in out) if isinstance(out, tuple) else out.sum()
        loss.backward()
        if i:
            times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    backend.seed(0)
    models = {
        "ssd_mini (BatchNorm)": SSD(SSDConfig.mini()),
        "ssd_mini without BatchNorm": SSD(SSDConfig.mini().replace(batch_norm=False)),
        "yolov1_mini": yolov1_mini(),
    }
    print(f"# forward + backward, batch {args.batch}, 160x160, {time.strftime('%Y-%m-%d')}")
    for name, model in models.items():
        t = step_time(model, args.batch, args.repeat)
        print(f"{name:<28} {t:7.2f} s/step  {args.batch / t:6.1f} images/s  ({model.num_parameters():,} parameters)",
              flush=True)


if __name__ == "__main__":
    main()
