"""ssd_mini forward + backward (batch 32, 160x160): this tree vs an older tree and the PyTorch replica.

Each measurement is a fresh subprocess (one warm-up step, then ``--steps`` timed steps, their median);
the variants take turns round by round, so a machine shared with other jobs slows all of them alike;
medians are printed.

    git worktree add ../minissd-old 95169a7     # any older commit
    python benchmarks/bench_conv_paths.py --baseline ../minissd-old --threads 2 1 --repeat 5

``--threads`` are given to ``minissd.set_num_threads`` (and ``torch.set_num_threads``); 0 means the
library default. Needs PyTorch only for the replica column (left out when it is missing). Never run as a test.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")

CHILD = r"""
import sys, time, numpy as np
import minissd
print("# minissd from", minissd.__file__, file=sys.stderr)
kind, threads, batch, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
from minissd import backend
from minissd.config import SSDConfig
from minissd.models import SSD
if threads and kind != "torch":
    backend.set_num_threads(threads)
backend.seed(0)
model = SSD(SSDConfig.mini())
x = np.random.default_rng(0).standard_normal((batch, 3, 160, 160)).astype(np.float32)
if kind == "torch":
    import torch
    sys.path.insert(0, "benchmarks")
    from recipe_mini_torch import replica
    if threads:
        torch.set_num_threads(threads)
    forward, _ = replica(model, torch)
    xt = torch.from_numpy(x)
    def step():
        loc, conf = forward(xt)
        (loc.sum() + conf.sum()).backward()
else:
    def step():
        out = model(x)
        sum(o.sum() for o in out).backward()
step()
times = []
for _ in range(steps):
    t = time.perf_counter(); step(); times.append(time.perf_counter() - t)
print(sorted(times)[len(times) // 2])
"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--baseline", default="", help="another minissd tree to compare with")
    p.add_argument("--threads", type=int, nargs="+", default=[0, 1])
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=1, help="timed steps per subprocess (their median counts)")
    p.add_argument("--no-torch", action="store_true")
    args = p.parse_args()
    trees = {"this tree": os.path.abspath(ROOT)}
    if args.baseline:
        trees["baseline"] = os.path.abspath(args.baseline)
    kinds = [(name, "minissd", path) for name, path in trees.items()]
    if not args.no_torch:
        try:
            import torch  # noqa: F401
            kinds.append(("pytorch", "torch", os.path.abspath(ROOT)))
        except ImportError:
            print("# PyTorch not installed: no replica column")
    print(f"# nproc {os.cpu_count()}, load average at start {os.getloadavg()}")
    for threads in args.threads:
        times: dict[str, list[float]] = {name: [] for name, _, _ in kinds}
        for _ in range(args.repeat):
            for name, kind, path in kinds:
                env = dict(os.environ, PYTHONPATH=path)
                argv = [sys.executable, "-c", CHILD, kind, str(threads), str(args.batch), str(args.steps)]
                # the child's working directory comes first on its sys.path ("-c"): it must be the tree
                # measured, or every tree would import this one's minissd
                out = subprocess.run(argv, env=env, cwd=path, capture_output=True, text=True, check=True)
                times[name].append(float(out.stdout.split()[-1]))
        med = {name: statistics.median(v) for name, v in times.items()}
        print(f"threads {threads or 'default'}: " + ", ".join(f"{k} {v:.2f} s" for k, v in med.items())
              + f"  (all runs: {times}; load average {os.getloadavg()})", flush=True)


if __name__ == "__main__":
    main()
