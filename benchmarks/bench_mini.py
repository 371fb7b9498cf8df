"""ssd_mini (and the YOLOv1-style detector) forward + backward time for a batch, with and without BatchNorm,
and the same ssd_mini step in PyTorch for comparison.

    python benchmarks/bench_mini.py                 # batch 32, median of 3 after 1 warm-up, all cores
    python benchmarks/bench_mini.py --batch 16 --repeat 5 --threads 1

The PyTorch replica is the one of ``benchmarks/recipe_mini_torch.py`` (the same layers, with the weights
copied from the minissd model). Each SSD variant is timed alternately, one minissd step then one PyTorch
step, so that both see the same machine load; both run in training mode (BatchNorm with batch statistics)
and under the same thread count (``--threads``: NumPy's BLAS through threadpoolctl, PyTorch through
``torch.set_num_threads``). Without PyTorch the comparison is skipped with a message.

Prints seconds per step, images per second and, last, the ratio minissd / PyTorch. Never run as a test;
numbers go to docs/benchmarks.md with the command, machine, threads and date.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

from minissd import backend  # noqa: E402
from minissd.config import SSDConfig  # noqa: E402
from minissd.models import SSD, yolov1_mini  # noqa: E402


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def minissd_step(model: Any, x: np.ndarray) -> Callable[[], None]:
    """One forward + backward of ``model`` on ``x`` (the loss: the sum of the outputs)."""
    xb = backend.asarray(x)

    def step() -> None:
        for p in model.parameters():
            p.grad = None
        out = model(xb)
        loss = sum(o.sum() for o in out) if isinstance(out, tuple) else out.sum()
        loss.backward()
        backend.synchronize()

    return step


def torch_step(model: Any, x: np.ndarray, torch: Any) -> Callable[[], None]:
    """The same step in PyTorch, on a replica of ``model`` (an SSD) with its weights."""
    from recipe_mini_torch import replica  # noqa: PLC0415 - the one PyTorch replica of ssd_mini

    forward, params = replica(model, torch)
    xt = torch.from_numpy(x)
    # the replica must compute what minissd computes, or the comparison means nothing
    from minissd import no_grad  # noqa: PLC0415

    with no_grad():
        ours = [backend.to_numpy(o.data) for o in model(backend.asarray(x))]
    with torch.no_grad():
        theirs = [o.numpy() for o in forward(xt)]
    diff = max(float(np.abs(a - b).max() / (np.abs(a).max() + 1e-12)) for a, b in zip(ours, theirs))
    if diff > 1e-3:
        raise RuntimeError(f"the PyTorch replica disagrees with minissd: relative difference {diff:.2g}")

    def step() -> None:
        for p in params.values():
            p.grad = None
        loc, conf = forward(xt)
        (loc.sum() + conf.sum()).backward()

    return step


def median_times(steps: dict[str, Callable[[], None]], repeat: int) -> dict[str, float]:
    """Median seconds of each step over ``repeat`` rounds after one warm-up round; in each round the
    steps run one after the other, so that a change in machine load hits all of them alike."""
    times: dict[str, list[float]] = {name: [] for name in steps}
    for i in range(repeat + 1):
        for name, step in steps.items():
            t = time.perf_counter()
            step()
            if i:  # round 0 is the warm-up (allocations, caches)
                times[name].append(time.perf_counter() - t)
    return {name: statistics.median(ts) for name, ts in times.items()}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                   help="threads for NumPy's BLAS and for PyTorch (default: all cores)")
    p.add_argument("--no-torch", action="store_true", help="skip the PyTorch comparison")
    args = p.parse_args(argv)
    if args.batch < 2:
        p.error("--batch must be at least 2 (BatchNorm in training mode needs two values per channel on the 1x1 maps)")
    if args.repeat < 1 or args.threads < 1:
        p.error("--repeat and --threads must be positive")
    try:
        from threadpoolctl import threadpool_limits  # noqa: PLC0415
    except ImportError:
        threadpool_limits = None
        print("# threadpoolctl is not installed: NumPy's BLAS keeps its own thread count")
    torch = None
    if not args.no_torch:
        try:
            import torch  # noqa: PLC0415
        except ImportError:
            print("# PyTorch is not installed: the PyTorch comparison is skipped")
    if torch is not None:
        torch.set_num_threads(args.threads)

    backend.seed(0)
    num_classes = 8
    ssd_models = {
        "ssd_mini (BatchNorm)": SSD(SSDConfig.mini(num_classes=num_classes)),
        "ssd_mini without BatchNorm": SSD(SSDConfig.mini(num_classes=num_classes).replace(batch_norm=False)),
    }
    yolo = yolov1_mini(num_classes=num_classes)
    x = np.random.default_rng(0).standard_normal((args.batch, 3, 160, 160)).astype(np.float32)

    print(f"# forward + backward, batch {args.batch}, 160x160, training mode, {args.threads} thread(s), "
          f"median of {args.repeat} after 1 warm-up, {time.strftime('%Y-%m-%d')}")
    print(f"# {cpu_name()} ({os.cpu_count()} logical cores), backend {backend.get_backend()}, numpy {np.__version__}"
          + (f", torch {torch.__version__}" if torch is not None else ""))
    limits = threadpool_limits(limits=args.threads) if threadpool_limits is not None else None
    ratios = []
    try:
        for name, model in ssd_models.items():
            steps = {"minissd": minissd_step(model, x)}
            if torch is not None:
                steps["pytorch"] = torch_step(model, x, torch)
            t = median_times(steps, args.repeat)
            params = f"({model.num_parameters():,} parameters)"
            print(f"{name:<28} minissd {t['minissd']:7.3f} s/step  {args.batch / t['minissd']:6.1f} images/s  {params}",
                  flush=True)
            if "pytorch" in t:
                print(f"{'':<28} pytorch {t['pytorch']:7.3f} s/step  {args.batch / t['pytorch']:6.1f} images/s",
                      flush=True)
                ratios.append((name, t["minissd"] / t["pytorch"]))
        t = median_times({"minissd": minissd_step(yolo, x)}, args.repeat)
        print(f"{'yolov1_mini':<28} minissd {t['minissd']:7.3f} s/step  {args.batch / t['minissd']:6.1f} images/s  "
              f"({yolo.num_parameters():,} parameters)", flush=True)
    finally:
        if limits is not None:
            limits.unregister()
    for name, ratio in ratios:
        print(f"ratio minissd / PyTorch, {name}: {ratio:.2f} (minissd takes {ratio:.2f}x the time)")
    if torch is None:
        print("ratio minissd / PyTorch: not measured (no PyTorch)")


if __name__ == "__main__":
    main()
