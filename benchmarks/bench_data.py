"""Speed of the data pipeline: ShapesDataset generation, the SSD transforms, the DataLoader, and how much
of an ssd_mini training step is spent waiting for data.

Parts (medians over repeated runs):

1. generation: milliseconds per ShapesDataset image, "mixed" and "flock" scenes;
2. transforms: milliseconds per image of each training transform and of the whole training and evaluation
   pipelines (input: ShapesDataset images);
3. data time per batch: building one batch (generation + training pipeline + stacking) in the calling
   thread, and the loader's throughput (ms per batch, nothing else running) with 1, 2, ... worker threads;
4. training: ssd_mini steps on ShapesDataset batches from the DataLoader; the time the loop waits in
   ``next(loader)`` as a fraction of the whole step (wait + forward/backward/update), per worker count.
   Skipped with ``--no-train`` or when the model code is not available.

    python benchmarks/bench_data.py                      # batch 32 at 160 px, everything
    python benchmarks/bench_data.py --workers 0 2 --train-steps 10
    python benchmarks/bench_data.py --no-train --repeat 5

Never run as a test.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from minissd import backend  # noqa: E402
from minissd.data import DataLoader, ShapesDataset, eval_transform, train_transform  # noqa: E402


def _parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=32, help="batch size (default 32)")
    p.add_argument("--size", type=int, default=160, help="network input size in pixels (default 160)")
    p.add_argument("--image-size", type=int, default=160, help="ShapesDataset image size (default 160)")
    p.add_argument("--images", type=int, default=256, help="images per measurement (default 256)")
    p.add_argument("--repeat", type=int, default=3, help="timed runs per measurement (median)")
    p.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2], help="loader worker counts")
    p.add_argument("--train-steps", type=int, default=6, help="timed ssd_mini steps per worker count")
    p.add_argument("--no-train", action="store_true", help="skip the training-step part")
    p.add_argument("--backend", choices=["numpy", "cupy"], default="numpy")
    return p.parse_args()


def _median_ms(fn, repeat: int, per: int) -> tuple[float, float]:
    """Median over ``repeat`` runs of fn() in milliseconds per unit (fn does ``per`` units): (wall, CPU).

    CPU is the calling thread's CPU time (``time.thread_time``): on a machine shared with other jobs it
    stays close to the cost of the work itself while the wall time grows with the contention.
    """
    walls, cpus = [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.thread_time()
        fn()
        walls.append((time.perf_counter() - t0) * 1e3 / per)
        cpus.append((time.thread_time() - c0) * 1e3 / per)
    return statistics.median(walls), statistics.median(cpus)


def main() -> None:
    args = _parse()
    backend.set_backend(args.backend)
    print(
        f"# bench_data: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"numpy {np.__version__}, backend {args.backend}, Python {platform.python_version()}"
    )
    # The machine may be shared: the load average says how much else was running.
    print(f"# load average at start: {os.getloadavg()[0]:.2f}")
    print(
        f"# batch {args.batch}, input {args.size} px, ShapesDataset images {args.image_size} px, "
        f"{args.images} images per measurement, median of {args.repeat}\n"
    )

    # 1. generation
    print("## ShapesDataset generation (ms per image: wall, thread CPU)")
    for scene in ("mixed", "flock"):
        ds = ShapesDataset(args.images, image_size=args.image_size, scene=scene, seed=0)
        wall, cpu = _median_ms(lambda ds=ds: [ds[i] for i in range(len(ds))], args.repeat, len(ds))
        print(f"  {scene:6s} {wall:6.2f} {cpu:6.2f}")

    # 2. transforms
    ds = ShapesDataset(args.images, image_size=args.image_size, seed=0)
    items = [ds[i] for i in range(len(ds))]
    train = train_transform(args.size)
    print("\n## Transforms (ms per image: wall, thread CPU; input: mixed ShapesDataset images)")
    # Each stage timed on the output of the stages before it, as in the pipeline.
    staged = items
    for k, t in enumerate(train.transforms):
        inputs = staged

        def run(t=t, inputs=inputs, k=k):
            rng = np.random.default_rng(k)
            return [t(*it, rng) for it in inputs]

        wall, cpu = _median_ms(run, args.repeat, len(inputs))
        staged = run()
        print(f"  {type(t).__name__:26s} {wall:6.2f} {cpu:6.2f}")

    def whole(t):
        def run():
            rng = np.random.default_rng(0)
            for it in items:
                t(*it, rng)

        return run

    for name, t in (("train_transform (whole)", train), ("eval_transform (whole)", eval_transform(args.size))):
        wall, cpu = _median_ms(whole(t), args.repeat, len(items))
        print(f"  {name:26s} {wall:6.2f} {cpu:6.2f}")

    # 3. per-batch data time
    print(f"\n## Data time per batch of {args.batch} (ms, wall): generation + train_transform + stacking")
    n_batches = max(1, args.images // args.batch)
    for workers in args.workers:
        loader = DataLoader(ds, args.batch, transform=train, seed=0, num_workers=workers, drop_last=True)

        def consume(loader=loader):
            for _ in loader:
                pass

        wall, cpu = _median_ms(consume, args.repeat, n_batches)
        label = f"in the calling thread, CPU {cpu:.1f} ms" if workers == 0 else f"{workers} worker thread(s)"
        print(f"  num_workers={workers}  {wall:7.1f}   ({label})")

    if args.no_train:
        return
    # 4. training-step wait fraction
    try:
        from minissd.models import ssd_mini  # noqa: PLC0415
        from minissd.train import TrainConfig, Trainer  # noqa: PLC0415
    except Exception as exc:  # the model code is another component; measure what exists
        print(f"\n(training part skipped: {type(exc).__name__}: {exc})")
        return
    print(f"\n## ssd_mini training steps, batch {args.batch}: time waiting for data")
    train_set = ShapesDataset(max(args.images, args.batch * (args.train_steps + 2)), image_size=args.image_size)
    for workers in args.workers:
        model = ssd_mini(num_classes=ShapesDataset.num_classes)
        trainer = Trainer(
            model,
            train_set,
            config=TrainConfig(steps=10**6, batch_size=args.batch, num_workers=workers),
            progress=False,
        )
        loader = DataLoader(train_set, args.batch, transform=train, seed=0, num_workers=workers, drop_last=True)
        it = iter(loader)
        trainer.train_step(*next(it))  # warm-up: first batch and first step (allocations)
        wait, step = [], []
        for _ in range(args.train_steps):
            t0 = time.perf_counter()
            batch = next(it)
            backend.synchronize()
            t1 = time.perf_counter()
            trainer.train_step(*batch)
            backend.synchronize()
            t2 = time.perf_counter()
            wait.append(t1 - t0)
            step.append(t2 - t1)
        it.close()
        total_wait, total_step = sum(wait), sum(step)
        print(
            f"  num_workers={workers}  step {statistics.median(step) * 1e3:7.0f} ms, "
            f"wait {statistics.median(wait) * 1e3:6.1f} ms (median), "
            f"waiting = {100 * total_wait / (total_wait + total_step):4.1f}% of the time"
        )


if __name__ == "__main__":
    main()
    print(f"\n# load average at end: {os.getloadavg()[0]:.2f}")
