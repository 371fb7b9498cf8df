"""Benchmark: SSD300 detection output (decode, softmax, per-class threshold + NMS, top-k) for a batch.

Times :func:`minissd.detection.detect` on SSD300's full output, loc (N, 8732, 4) and conf (N, 8732, 21),
for two kinds of scores:

* ``realistic``: what a trained detector produces: every default box is confidently background except
  those overlapping one of a few objects per image, whose class score grows with the overlap; logits get
  noise so that several hundred boxes per class pass the 0.01 threshold.
* ``untrained``: standard-normal logits, as from a freshly initialized network: every class probability is
  around 1/21 > 0.01, so all 8732 boxes are candidates for all 20 classes (the worst case: the per-class
  cap of 400 candidates is reached everywhere).

Usage::

    python benchmarks/bench_postprocess.py [--batch 8] [--repeats 7] [--backend numpy|cupy]

Prints the machine, the median and the spread of the timings, and a Markdown block for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import time

import numpy as np

import minissd
from minissd import backend
from minissd.boxes import center_to_corners, iou
from minissd.config import SSDConfig
from minissd.detection import detect
from minissd.nn import functional as F
from minissd.priors import default_boxes


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def realistic_output(rng: np.random.Generator, priors: np.ndarray, num_classes: int, objects: int = 5):
    """loc (P, 4) and conf (P, C) logits resembling a trained SSD300 on an image with a few objects."""
    p = priors.shape[0]
    corners = backend.to_numpy(center_to_corners(backend.asarray(priors)))
    conf = rng.normal(0.0, 1.0, (p, num_classes))
    conf[:, 0] += 7.0  # background wins by a wide margin almost everywhere
    xy = rng.random((objects, 2)) * 0.7
    wh = rng.uniform(0.1, 0.6, (objects, 2))
    gt = np.concatenate([xy, np.minimum(xy + wh, 1.0)], axis=1)
    overlap = backend.to_numpy(iou(backend.asarray(gt), backend.asarray(corners)))  # (objects, P)
    labels = rng.integers(1, num_classes, objects)
    for k in range(objects):
        # the object's class logit rises with IoU; boxes that overlap well also lose background confidence
        conf[:, labels[k]] += 12.0 * overlap[k]
        conf[:, 0] -= 6.0 * overlap[k]
    loc = rng.normal(0.0, 0.3, (p, 4))
    return loc.astype(np.float32), conf.astype(np.float32)


def time_detect(loc, conf, priors, repeats: int) -> list[float]:
    detect(loc, conf, priors)  # warm-up (allocations, CuPy kernel compilation)
    times = []
    for _ in range(repeats):
        backend.synchronize()
        t0 = time.perf_counter()
        dets = detect(loc, conf, priors)
        backend.synchronize()
        times.append(time.perf_counter() - t0)
    assert len(dets) == loc.shape[0]
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--backend", choices=["numpy", "cupy"], default="numpy")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    minissd.set_backend(args.backend)

    cfg = SSDConfig.ssd300()
    priors = default_boxes(cfg)
    priors_host = backend.to_numpy(priors)
    rng = np.random.default_rng(args.seed)
    c = cfg.num_classes

    pairs = [realistic_output(rng, priors_host, c) for _ in range(args.batch)]
    cases = {
        "realistic": (np.stack([lc for lc, _ in pairs]), np.stack([cf for _, cf in pairs])),
        "untrained": (rng.normal(0, 1, (args.batch, cfg.num_priors, 4)).astype(np.float32),
                      rng.normal(0, 1, (args.batch, cfg.num_priors, c)).astype(np.float32)),
    }

    device = cpu_name() if args.backend == "numpy" else "CuPy GPU"
    print(f"minissd {minissd.__version__}, backend {args.backend}, numpy {np.__version__}, "
          f"Python {platform.python_version()}")
    print(f"CPU: {cpu_name()} ({os.cpu_count()} logical cores); device: {device}")
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    print(f"date: {datetime.date.today().isoformat()}; load average before the run: {load[0]:.2f}")
    print(f"SSD300 output: batch {args.batch}, {cfg.num_priors} default boxes x {c} classes, "
          f"conf_threshold 0.01, nms 0.45, top_k 200, 400 candidates per class; median of {args.repeats}\n")

    rows = []
    for name, (loc, conf) in cases.items():
        with minissd.no_grad():
            probs = backend.to_numpy(F.softmax(conf).data)
        candidates = (probs[..., 1:] > 0.01).sum(axis=1).mean()  # per image and class
        loc_d, conf_d = backend.asarray(loc), backend.asarray(conf)
        times = time_detect(loc_d, conf_d, priors, args.repeats)
        dets = detect(loc_d, conf_d, priors)
        med = statistics.median(times)
        kept = np.mean([len(d.scores) for d in dets])
        rows.append((name, candidates, kept, med, min(times), max(times)))
        print(f"{name:10s} boxes > 0.01 per class and image: {candidates:7.1f}   detections per image: "
              f"{kept:5.1f}   batch time: median {med * 1000:7.1f} ms (min {min(times) * 1000:.1f}, "
              f"max {max(times) * 1000:.1f})   per image {med / args.batch * 1000:.1f} ms")

    print("\nMarkdown:\n")
    print("| scores | boxes > 0.01 per class | detections per image | batch of "
          f"{args.batch}, median | per image |")
    print("|---|---|---|---|---|")
    for name, candidates, kept, med, _, _ in rows:
        print(f"| {name} | {candidates:.0f} of {cfg.num_priors} | {kept:.0f} | {med * 1000:.0f} ms | "
              f"{med / args.batch * 1000:.1f} ms |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
