"""SSD300 forward (batch 1, eval) and full training step (batch 8), minissd vs a plain PyTorch SSD300.

The training step is: forward, matching (done once, outside the timing, as targets), MultiBox loss
with hard negative mining, backward, SGD step (momentum 0.9, weight decay 5e-4). PyTorch runs the
same architecture (VGG16 with pool3 ceil mode, pool5 3x3/s1, dilated fc6, fc7, L2Norm, the extra
layers, 3x3 heads; 26,285,486 parameters for 21 classes) with the same thread count. Each
measurement runs in a fresh subprocess so that its peak resident memory (ru_maxrss) is its own.

    python benchmarks/bench_ssd300.py                 # both libraries, forward and step
    python benchmarks/bench_ssd300.py --no-torch      # minissd only
    python benchmarks/bench_ssd300.py --repeat 2 --step-batch 8

Never run as a test.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def _parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=None, help="threads (default: all cores)")
    p.add_argument("--repeat", type=int, default=3, help="timed runs per measurement (median)")
    p.add_argument("--step-batch", type=int, default=8)
    p.add_argument("--no-torch", action="store_true")
    p.add_argument("--_run", default="", help=argparse.SUPPRESS)
    p.add_argument("--_what", default="", help=argparse.SUPPRESS)
    return p.parse_args()


def _targets(batch: int, seed: int = 0):
    """Random ground truth for ``batch`` images matched to SSD300's default boxes (host arrays)."""
    import numpy as np  # noqa: PLC0415

    from minissd.config import SSDConfig  # noqa: PLC0415
    from minissd.matching import match_batch  # noqa: PLC0415
    from minissd.priors import default_boxes  # noqa: PLC0415

    rng = np.random.default_rng(seed)
    boxes, labels = [], []
    for _ in range(batch):
        g = int(rng.integers(1, 6))
        xy = rng.uniform(0, 0.6, (g, 2))
        wh = rng.uniform(0.1, 0.4, (g, 2))
        boxes.append(np.concatenate([xy, xy + wh], 1).astype(np.float32))
        labels.append(rng.integers(1, 21, g))
    priors = default_boxes(SSDConfig.ssd300())
    loc_t, conf_t = match_batch(boxes, labels, priors)
    return np.asarray(loc_t), np.asarray(conf_t)


def _run_minissd(what: str, repeat: int, batch: int) -> dict:
    import numpy as np  # noqa: PLC0415

    from minissd import backend, no_grad  # noqa: PLC0415
    from minissd.loss import MultiBoxLoss  # noqa: PLC0415
    from minissd.models import ssd300  # noqa: PLC0415
    from minissd.optim import SGD  # noqa: PLC0415

    backend.seed(0)
    model = ssd300(21)
    rng = np.random.default_rng(0)
    times = []
    if what == "forward":
        model.eval()
        x = rng.standard_normal((1, 3, 300, 300)).astype(np.float32)
        for i in range(repeat + 1):
            t = time.perf_counter()
            with no_grad():
                model(x)
            if i:
                times.append(time.perf_counter() - t)
    else:
        x = rng.standard_normal((batch, 3, 300, 300)).astype(np.float32)
        loc_t, conf_t = _targets(batch)
        opt = SGD(list(model.parameters()), lr=1e-4, momentum=0.9, weight_decay=5e-4)
        crit = MultiBoxLoss()
        for i in range(repeat + 1):
            t = time.perf_counter()
            opt.zero_grad()
            a, b = crit(*model(x), loc_t, conf_t)
            (a + b).backward()
            opt.step()
            if i:
                times.append(time.perf_counter() - t)
    return {"times": times}


def _torch_ssd300(torch):  # noqa: ANN001 - the torch module
    nn = torch.nn

    class L2Norm(nn.Module):
        def __init__(self, c: int) -> None:
            super().__init__()
            self.weight = nn.Parameter(torch.full((c,), 20.0))

        def forward(self, x):  # noqa: ANN001, ANN202
            return x / (x.pow(2).sum(1, keepdim=True).sqrt() + 1e-10) * self.weight.view(1, -1, 1, 1)

    layers, c = [], 3
    cfg = [64, 64, "M", 128, 128, "M", 256, 256, 256, "C", 512, 512, 512, "M", 512, 512, 512]
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        elif v == "C":
            layers.append(nn.MaxPool2d(2, 2, ceil_mode=True))
        else:
            layers += [nn.Conv2d(c, v, 3, padding=1), nn.ReLU(inplace=True)]
            c = v
    layers += [nn.MaxPool2d(3, 1, 1), nn.Conv2d(512, 1024, 3, padding=6, dilation=6), nn.ReLU(inplace=True),
               nn.Conv2d(1024, 1024, 1), nn.ReLU(inplace=True)]

    class SSD300(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.vgg = nn.ModuleList(layers)
            self.l2 = L2Norm(512)
            spec = [(1024, 256, 512, 2, 1), (512, 128, 256, 2, 1), (256, 128, 256, 1, 0), (256, 128, 256, 1, 0)]
            self.extras = nn.ModuleList(
                [nn.Sequential(nn.Conv2d(i, m, 1), nn.ReLU(inplace=True), nn.Conv2d(m, o, 3, s, p),
                               nn.ReLU(inplace=True)) for i, m, o, s, p in spec])
            chans, per = [512, 1024, 512, 256, 256, 256], [4, 6, 6, 6, 4, 4]
            self.loc = nn.ModuleList([nn.Conv2d(ch, n * 4, 3, padding=1) for ch, n in zip(chans, per)])
            self.conf = nn.ModuleList([nn.Conv2d(ch, n * 21, 3, padding=1) for ch, n in zip(chans, per)])

        def forward(self, x):  # noqa: ANN001, ANN202
            srcs = []
            for k, layer in enumerate(self.vgg):
                x = layer(x)
                if k == 22:  # ReLU after conv4_3
                    srcs.append(self.l2(x))
            srcs.append(x)
            for e in self.extras:
                x = e(x)
                srcs.append(x)
            n = x.shape[0]
            loc = torch.cat([h(s).permute(0, 2, 3, 1).reshape(n, -1, 4) for s, h in zip(srcs, self.loc)], 1)
            conf = torch.cat([h(s).permute(0, 2, 3, 1).reshape(n, -1, 21) for s, h in zip(srcs, self.conf)], 1)
            return loc, conf

    return SSD300()


def _run_torch(what: str, repeat: int, batch: int, threads: int) -> dict:
    import numpy as np  # noqa: PLC0415
    import torch  # noqa: PLC0415

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = _torch_ssd300(torch)
    params = sum(p.numel() for p in model.parameters())
    times = []
    if what == "forward":
        model.eval()
        x = torch.randn(1, 3, 300, 300)
        for i in range(repeat + 1):
            t = time.perf_counter()
            with torch.no_grad():
                model(x)
            if i:
                times.append(time.perf_counter() - t)
    else:
        x = torch.randn(batch, 3, 300, 300)
        loc_t, conf_t = (torch.from_numpy(np.ascontiguousarray(a)) for a in _targets(batch))
        opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9, weight_decay=5e-4)
        F = torch.nn.functional
        for i in range(repeat + 1):
            t = time.perf_counter()
            opt.zero_grad()
            loc, conf = model(x)
            pos = conf_t > 0
            num_pos = pos.sum().clamp(min=1)
            loss_l = F.smooth_l1_loss(loc[pos], loc_t[pos], reduction="sum")
            ce = F.cross_entropy(conf.reshape(-1, 21), conf_t.reshape(-1), reduction="none").view(batch, -1)
            with torch.no_grad():  # hard negative mining: the 3 x positives hardest background boxes
                bg = ce.clone()
                bg[pos] = 0
                rank = bg.argsort(1, descending=True).argsort(1)
                neg = rank < (3 * pos.sum(1, keepdim=True)).clamp(max=pos.shape[1] - 1)
            loss_c = ce[pos | neg].sum()
            ((loss_l + loss_c) / num_pos).backward()
            opt.step()
            if i:
                times.append(time.perf_counter() - t)
    return {"times": times, "params": params}


def _child(args: argparse.Namespace, threads: int) -> None:
    if args._run == "minissd":
        out = _run_minissd(args._what, args.repeat, args.step_batch)
    else:
        out = _run_torch(args._what, args.repeat, args.step_batch, threads)
    # ru_maxrss is in KiB on Linux: the peak resident memory of this whole process
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps(out))


def _spawn(lib: str, what: str, args: argparse.Namespace, threads: int) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--_run", lib, "--_what", what, "--repeat", str(args.repeat),
           "--step-batch", str(args.step_batch), "--threads", str(threads)]
    p = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
    for line in p.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"{lib} {what} failed:\n{p.stderr[-2000:]}")


def main() -> None:
    args = _parse()
    threads = args.threads or len(os.sched_getaffinity(0))
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "MINISSD_NUM_THREADS"):
        os.environ[var] = str(threads)
    sys.path.insert(0, os.path.join(HERE, ".."))
    if args._run:
        _child(args, threads)
        return
    have_torch = False
    if not args.no_torch:
        try:
            import torch  # noqa: F401, PLC0415

            have_torch = True
        except ImportError:
            print("PyTorch is not installed: minissd only")
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    print(f"# SSD300, {threads} threads, {cpu}, {time.strftime('%Y-%m-%d')}")
    print(f"{'measurement':<34}{'minissd':>12}{'PyTorch':>12}{'ratio':>8}")
    for what, label in (("forward", "forward, batch 1 (s)"), ("step", f"training step, batch {args.step_batch} (s)")):
        ours = _spawn("minissd", what, args, threads)
        theirs = _spawn("torch", what, args, threads) if have_torch else None
        m = statistics.median(ours["times"])
        if theirs:
            t = statistics.median(theirs["times"])
            print(f"{label:<34}{m:>12.2f}{t:>12.2f}{m / t:>8.2f}")
            print(f"{'  peak RSS (MB)':<34}{ours['peak_rss_mb']:>12.0f}{theirs['peak_rss_mb']:>12.0f}"
                  f"{ours['peak_rss_mb'] / theirs['peak_rss_mb']:>8.2f}")
        else:
            print(f"{label:<34}{m:>12.2f}")
            print(f"{'  peak RSS (MB)':<34}{ours['peak_rss_mb']:>12.0f}")


if __name__ == "__main__":
    main()
