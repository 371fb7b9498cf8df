"""Check minissd on an NVIDIA GPU: CuPy against NumPy layer by layer, then time SSD300 training steps.

1. conv2d (3x3, stride 2, dilation 6, narrow head, 1x1, chunked), max_pool2d (ceil mode, 3x3/s1/p1),
   L2Norm, ReLU, batch norm, cross-entropy and smooth L1: forward and backward on CuPy and on NumPy
   with the same inputs and upstream gradients; the largest difference relative to the largest value
   must stay below 1e-4 (float32).
2. One SSD300 training step (forward, MultiBoxLoss, backward, SGD) at batch 8 on CuPy: median time,
   memory held by CuPy's pool, and the loss (must be finite).
3. With PyTorch and CUDA present: the SSD300 conv/pool stack forward + backward at the same batch on
   both, as a ratio minissd-CuPy / PyTorch-CUDA.

    python benchmarks/gpu_check.py                 # needs CuPy and a GPU; takes under 5 minutes
    python benchmarks/gpu_check.py --batch 8 --steps 5
    python benchmarks/gpu_check.py --dry-run       # the same code on NumPy, tiny sizes (no GPU needed)

Exits with status 2 and a message when CuPy or a GPU is missing, 1 when a comparison fails.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)

import minissd  # noqa: E402
import minissd.nn.functional as F  # noqa: E402
from minissd import Tensor, backend  # noqa: E402
from minissd.nn import workspace  # noqa: E402

TOLERANCE = 1e-4
START = time.perf_counter()


def _parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=8, help="batch size of the SSD300 step (default 8)")
    p.add_argument("--steps", type=int, default=5, help="timed training steps (median)")
    p.add_argument("--budget", type=float, default=270.0, help="seconds; later parts are skipped past it")
    p.add_argument("--dry-run", action="store_true", help="run everything on NumPy with tiny sizes")
    return p.parse_args()


# =========================================================================== 1. CuPy vs NumPy
def _cases(rng: np.random.Generator) -> list[tuple[str, Callable[..., Tensor], list[np.ndarray], dict]]:
    """(name, fn(*tensors) -> Tensor, host inputs (all get gradients), settings)."""
    def a(*shape: int, scale: float = 1.0) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    labels = rng.integers(0, 21, (2, 300))
    labels[0, :50] = -100  # some ignored rows
    return [
        ("conv2d 3x3 pad 1", lambda x, w, b: F.conv2d(x, w, b, 1, 1),
         [a(4, 64, 38, 38), a(64, 64, 3, 3, scale=0.05), a(64)], {}),
        ("conv2d 3x3 stride 2", lambda x, w, b: F.conv2d(x, w, b, 2, 1),
         [a(2, 32, 19, 19), a(64, 32, 3, 3, scale=0.05), a(64)], {}),
        ("conv2d fc6 dilation 6", lambda x, w, b: F.conv2d(x, w, b, 1, 6, 6),
         [a(2, 64, 19, 19), a(128, 64, 3, 3, scale=0.05), a(128)], {}),
        ("conv2d narrow head", lambda x, w, b: F.conv2d(x, w, b, 1, 1),
         [a(2, 256, 19, 19), a(24, 256, 3, 3, scale=0.03), a(24)], {}),
        ("conv2d 1x1", lambda x, w, b: F.conv2d(x, w, b),
         [a(2, 128, 10, 10), a(64, 128, 1, 1, scale=0.1), a(64)], {}),
        ("conv2d chunked (64 KB buffer)", lambda x, w, b: F.conv2d(x, w, b, 1, 1),
         [a(3, 16, 20, 20), a(32, 16, 3, 3, scale=0.1), a(32)], {"buffer": 64 * 1024}),
        ("max_pool2d 2x2/s2 ceil", lambda x: F.max_pool2d(x, 2, 2, 0, True), [a(2, 16, 75, 75)], {}),
        ("max_pool2d 3x3/s1/p1", lambda x: F.max_pool2d(x, 3, 1, 1), [a(2, 16, 19, 19)], {}),
        ("L2Norm", lambda x, w: F.l2_norm(x, w), [a(2, 64, 38, 38), np.full(64, 20.0, np.float32)], {}),
        ("relu", F.relu, [a(2, 8, 16, 16)], {}),
        ("batch_norm (train)", lambda x, g, b: F.batch_norm(x, g, b),
         [a(4, 8, 10, 10), np.ones(8, np.float32), np.zeros(8, np.float32)], {}),
        ("cross_entropy (sum, ignore_index)", lambda z: F.cross_entropy(z, backend.asarray(labels), "sum"),
         [a(2, 300, 21)], {}),
        ("smooth_l1_loss (mean)", lambda x, t: F.smooth_l1_loss(x, t), [a(2, 300, 4), a(2, 300, 4)], {}),
    ]


def _run_case(name: str, fn: Callable[..., Tensor], inputs: list[np.ndarray], settings: dict,
              on: str, upstream: np.ndarray | None) -> tuple[list[np.ndarray], np.ndarray]:
    backend.set_backend(on)
    limit = workspace.get_buffer_bytes()
    if "buffer" in settings:
        workspace.set_buffer_bytes(settings["buffer"])
    try:
        tensors = [Tensor(backend.asarray(v), requires_grad=True) for v in inputs]
        out = fn(*tensors)
        g = upstream if upstream is not None else \
            np.random.default_rng(1).standard_normal(out.shape).astype(np.float32)
        out.backward(backend.asarray(g))
        backend.synchronize()
        results = [backend.to_numpy(out.data)] + [backend.to_numpy(t.grad) for t in tensors]
    finally:
        workspace.set_buffer_bytes(limit)
    return results, g


def compare_layers(gpu: str) -> bool:
    print(f"== 1. {gpu} vs numpy, forward and backward (max |difference| / max |value|, limit {TOLERANCE:g})")
    rng = np.random.default_rng(0)
    ok = True
    for name, fn, inputs, settings in _cases(rng):
        ref, g = _run_case(name, fn, inputs, settings, "numpy", None)
        got, _ = _run_case(name, fn, inputs, settings, gpu, g)
        worst = 0.0
        for r, o in zip(ref, got):
            if r.shape != o.shape:
                worst = math.inf
                break
            scale = max(float(np.abs(r).max()), 1e-6)
            worst = max(worst, float(np.abs(r.astype(np.float64) - o).max()) / scale)
        good = worst <= TOLERANCE
        ok &= good
        print(f"  {'ok  ' if good else 'FAIL'} {name:36s} {worst:.2e}")
    backend.set_backend("numpy")
    return ok


# =========================================================================== 2. SSD300 training step
def _targets(n: int, priors: Any, rng: np.random.Generator) -> tuple[Any, Any]:
    from minissd.matching import match  # noqa: PLC0415 - written by the boxes issue

    xp = backend.xp()
    locs, confs = [], []
    for _ in range(n):
        g = int(rng.integers(1, 5))
        xy = rng.uniform(0.0, 0.6, (g, 2))
        wh = rng.uniform(0.1, 0.4, (g, 2))
        boxes = np.concatenate([xy, xy + wh], axis=1).astype(np.float32)
        labels = rng.integers(1, 21, g)
        loc_t, conf_t = match(xp.asarray(boxes), xp.asarray(labels), priors)
        locs.append(loc_t)
        confs.append(conf_t)
    return xp.stack(locs), xp.stack(confs)


def time_ssd300_step(gpu: str, batch: int, steps: int) -> float | None:
    print(f"\n== 2. SSD300 training step on {gpu}, batch {batch} (forward, MultiBoxLoss, backward, SGD)")
    backend.set_backend(gpu)
    try:
        from minissd.loss import MultiBoxLoss  # noqa: PLC0415
        from minissd.models import ssd300  # noqa: PLC0415
        from minissd.optim import SGD  # noqa: PLC0415
    except ImportError as exc:
        print(f"  skipped: {exc}")
        return None
    rng = np.random.default_rng(0)
    minissd.seed(0)
    model = ssd300(num_classes=21)
    loss_fn = MultiBoxLoss()
    opt = SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=5e-4)
    x = Tensor(backend.asarray(rng.standard_normal((batch, 3, 300, 300)).astype(np.float32)))
    loc_t, conf_t = _targets(batch, model.default_boxes, rng)

    def step() -> float:
        loc, conf = model(x)
        loss_loc, loss_conf = loss_fn(loc, conf, loc_t, conf_t)
        loss = loss_loc + loss_conf
        opt.zero_grad()
        loss.backward()
        opt.step()
        backend.synchronize()
        return loss.item()

    losses, times = [step(), step()], []  # warm-up: CuPy compiles its kernels on first use
    for _ in range(steps):
        t0 = time.perf_counter()
        losses.append(step())
        times.append(time.perf_counter() - t0)
    t = statistics.median(times)
    mem = ""
    if gpu == "cupy":
        import cupy  # noqa: PLC0415

        mem = f", CuPy memory pool holds {cupy.get_default_memory_pool().total_bytes() / 2**20:.0f} MB"
    finite = all(math.isfinite(v) for v in losses)
    print(f"  median {t * 1e3:.0f} ms per step ({batch / t:.1f} images/s){mem}")
    print(f"  losses {', '.join(f'{v:.3f}' for v in losses)} {'(finite)' if finite else '(NOT FINITE)'}")
    backend.set_backend("numpy")
    return t if finite else None


# =========================================================================== 3. vs PyTorch CUDA
def _stack_step(lib: str, n: int, steps: int, on: str = "cupy") -> float:
    """Forward + backward of the SSD300 conv/pool stack (see bench_layers.py); median seconds."""
    from bench_layers import _inputs, ssd300_layers  # noqa: PLC0415

    layers = ssd300_layers()
    rng = np.random.default_rng(0)
    heads = [ly for ly in layers if ly.name.startswith(("loc", "conf"))]
    body = [ly for ly in layers if ly not in heads]
    sources = {"conv4_3", "fc7", "conv8_2", "conv9_2", "conv10_2", "conv11_2"}
    params = {ly.name: _inputs(ly, 1, rng) for ly in layers if ly.kind == "conv"}
    x_np = rng.standard_normal((n, 3, 300, 300)).astype(np.float32)
    if lib == "torch":
        import torch  # noqa: PLC0415
        import torch.nn.functional as TF  # noqa: PLC0415

        dev = torch.device("cuda")
        P = {k: tuple(torch.from_numpy(v[key]).to(dev).requires_grad_() for key in "wb") for k, v in params.items()}
        x = torch.from_numpy(x_np).to(dev)
        conv = lambda ly, h, act: (TF.relu if act else (lambda t: t))(  # noqa: E731
            TF.conv2d(h, *P[ly.name], ly.s, ly.p, ly.d))
        pool = lambda ly, h: TF.max_pool2d(h, ly.k, ly.s, ly.p, ceil_mode=ly.ceil)  # noqa: E731
        sync = torch.cuda.synchronize
    else:
        backend.set_backend(on)
        P = {k: tuple(Tensor(backend.asarray(v[key]), requires_grad=True) for key in "wb") for k, v in params.items()}
        x = Tensor(backend.asarray(x_np))
        conv = lambda ly, h, act: (  # noqa: E731
            F.relu(F.conv2d(h, *P[ly.name], ly.s, ly.p, ly.d), inplace=True) if act
            else F.conv2d(h, *P[ly.name], ly.s, ly.p, ly.d))
        pool = lambda ly, h: F.max_pool2d(h, ly.k, ly.s, ly.p, ly.ceil)  # noqa: E731
        sync = backend.synchronize

    def step() -> None:
        h, feats = x, {}
        for ly in body:
            h = conv(ly, h, True) if ly.kind == "conv" else pool(ly, h)
            if ly.name in sources:
                feats[ly.name] = h
        total = None
        for ly in heads:
            out = conv(ly, feats[ly.name.split(" ")[1]], False).sum()
            total = out if total is None else total + out
        total.backward()
        sync()

    step()
    step()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    backend.set_backend("numpy")
    return statistics.median(times)


def compare_torch(batch: int, steps: int) -> None:
    print(f"\n== 3. SSD300 conv/pool stack, forward + backward, batch {batch}: minissd-CuPy vs PyTorch-CUDA")
    try:
        import torch  # noqa: PLC0415
    except ImportError:
        print("  skipped: PyTorch is not installed")
        return
    if not torch.cuda.is_available():
        print("  skipped: PyTorch has no CUDA device")
        return
    ours = _stack_step("minissd", batch, steps)
    theirs = _stack_step("torch", batch, steps)
    print(f"  minissd {ours * 1e3:.0f} ms, PyTorch {theirs * 1e3:.0f} ms (torch {torch.__version__}), "
          f"ratio {ours / theirs:.2f}")


# =========================================================================== main
def main() -> int:
    args = _parse()
    if args.dry_run:
        gpu, batch, steps = "numpy", 1, 1
        print("gpu_check --dry-run: the GPU code paths on NumPy with batch 1 (no timing meaning)")
    else:
        if not backend.cupy_available():
            try:
                import cupy  # noqa: F401, PLC0415

                why = "CuPy is installed but sees no usable CUDA GPU"
            except ImportError:
                why = "CuPy is not installed (pip install cupy-cuda12x, or cupy-cuda11x for CUDA 11)"
            print(f"gpu_check: cannot run: {why}. This script is for a machine with an NVIDIA GPU.",
                  file=sys.stderr)
            return 2
        import cupy  # noqa: PLC0415

        props = cupy.cuda.runtime.getDeviceProperties(0)
        name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
        print(f"GPU: {name}, CuPy {cupy.__version__}, minissd {minissd.__version__}, "
              f"{time.strftime('%Y-%m-%d')}")
        gpu, batch, steps = "cupy", args.batch, args.steps
    ok = compare_layers(gpu)
    if time.perf_counter() - START < args.budget:
        time_ssd300_step(gpu, batch, steps)
    else:
        print("\n== 2. skipped: time budget spent")
    if gpu == "cupy" and time.perf_counter() - START < args.budget:
        compare_torch(batch, steps)
    elif args.dry_run:
        print(f"\n== 3. (dry run) minissd stack step on numpy: {_stack_step('minissd', 1, 1, 'numpy'):.1f} s")
    print(f"\n{'all comparisons passed' if ok else 'SOME COMPARISONS FAILED'}; "
          f"{time.perf_counter() - START:.0f} s in all")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
