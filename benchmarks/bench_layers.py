"""Speed and memory of every conv and pool layer of SSD300, minissd vs PyTorch CPU.

For each layer of SSD300 (VGG16 at 300x300, the extra layers and the loc/conf heads, 21 classes) and
each batch size it times the forward pass (no graph) and forward + backward, in float32, and reports
the median time, the achieved GFLOP/s and, when PyTorch is installed, the ratio minissd / PyTorch
(< 1 means minissd is faster), per layer and in total. The two libraries are measured alternately,
layer by layer, in the same process and with the same number of threads, so a machine shared with
other jobs slows both alike. A final part runs one training step (forward + backward) of the whole
SSD300 conv/pool stack, each library in a fresh subprocess, and reports the step time and the peak
resident memory above the process's baseline.

    python benchmarks/bench_layers.py                       # batch 1 and 8, everything
    python benchmarks/bench_layers.py --batch 8 --no-step   # the per-layer table only
    python benchmarks/bench_layers.py --layers conv4 --repeat 5

Runs without PyTorch too (the comparison columns are then left out). Never run as a test.
"""

from __future__ import annotations

import argparse
import os
import sys


def _parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, nargs="+", default=[1, 8], help="batch sizes (default: 1 8)")
    p.add_argument("--threads", type=int, default=None,
                   help="threads for BLAS, minissd's copies and PyTorch (default: all cores)")
    p.add_argument("--copy-threads", type=int, default=None,
                   help="threads for minissd's im2col/pooling copies (default: minissd's default, 1)")
    p.add_argument("--repeat", type=int, default=3, help="timed runs per measurement (median)")
    p.add_argument("--warmup", type=int, default=1, help="untimed runs first (page faults, caches)")
    p.add_argument("--layers", default="", help="only layers whose name contains this text")
    p.add_argument("--no-torch", action="store_true", help="do not compare with PyTorch")
    p.add_argument("--no-step", action="store_true", help="skip the whole-stack training step")
    p.add_argument("--step-batch", type=int, default=8, help="batch size of the whole-stack step")
    p.add_argument("--markdown", default="", help="also write the tables as Markdown to this file")
    p.add_argument("--_step", default="", help=argparse.SUPPRESS)  # internal: run one step in a subprocess
    return p.parse_args(argv)


# imported (by gpu_check.py, for the layer table), it leaves the process's settings alone
ARGS = _parse() if __name__ == "__main__" else _parse([])
THREADS = ARGS.threads or len(os.sched_getaffinity(0))
if __name__ == "__main__":
    # BLAS reads its thread count when NumPy is imported, so set it first
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(THREADS)
    if ARGS.copy_threads:
        os.environ["MINISSD_NUM_THREADS"] = str(ARGS.copy_threads)

import platform  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import minissd  # noqa: E402
import minissd.nn.functional as F  # noqa: E402
from minissd import Tensor, no_grad  # noqa: E402
from minissd.autograd import Function  # noqa: E402
from minissd.nn import Parameter  # noqa: E402
from minissd.nn.workspace import get_num_threads, release_workspace  # noqa: E402

try:
    if ARGS.no_torch:
        raise ImportError
    import torch  # noqa: E402
    import torch.nn.functional as TF  # noqa: E402

    if __name__ == "__main__":
        torch.set_num_threads(THREADS)
except ImportError:
    torch = None


@dataclass
class Layer:
    name: str
    kind: str  # "conv" or "pool"
    c: int
    h: int
    o: int = 0
    k: int = 3
    s: int = 1
    p: int = 0
    d: int = 1
    ceil: bool = False

    def out_hw(self) -> int:
        if self.kind == "conv":
            return (self.h + 2 * self.p - self.d * (self.k - 1) - 1) // self.s + 1
        return F.max_pool2d_output_shape((self.h, self.h), self.k, self.s, self.p, self.ceil)[0]

    def flops(self, n: int) -> float:
        """Multiply-adds x 2 of the forward pass (0 for pooling)."""
        if self.kind != "conv":
            return 0.0
        return 2.0 * n * self.o * self.out_hw() ** 2 * self.c * self.k * self.k


def ssd300_layers(num_classes: int = 21) -> list[Layer]:
    """Every conv and pool layer of SSD300, in order (VGG16 base, extras, then the heads)."""
    L = []
    h = 300
    for stage, (c_in, c_out, reps) in enumerate([(3, 64, 2), (64, 128, 2), (128, 256, 3), (256, 512, 3),
                                                 (512, 512, 3)], start=1):
        c = c_in
        for r in range(1, reps + 1):
            L.append(Layer(f"conv{stage}_{r}", "conv", c, h, c_out, 3, 1, 1))
            c = c_out
        if stage < 5:
            L.append(Layer(f"pool{stage}", "pool", c_out, h, k=2, s=2, ceil=stage == 3))
            h = L[-1].out_hw()
    L.append(Layer("pool5", "pool", 512, 19, k=3, s=1, p=1))
    L.append(Layer("fc6 (d6)", "conv", 512, 19, 1024, 3, 1, 6, 6))
    L.append(Layer("fc7", "conv", 1024, 19, 1024, 1))
    L.append(Layer("conv8_1", "conv", 1024, 19, 256, 1))
    L.append(Layer("conv8_2", "conv", 256, 19, 512, 3, 2, 1))
    L.append(Layer("conv9_1", "conv", 512, 10, 128, 1))
    L.append(Layer("conv9_2", "conv", 128, 10, 256, 3, 2, 1))
    L.append(Layer("conv10_1", "conv", 256, 5, 128, 1))
    L.append(Layer("conv10_2", "conv", 128, 5, 256, 3))
    L.append(Layer("conv11_1", "conv", 256, 3, 128, 1))
    L.append(Layer("conv11_2", "conv", 128, 3, 256, 3))
    for src, c, h, boxes in [("conv4_3", 512, 38, 4), ("fc7", 1024, 19, 6), ("conv8_2", 512, 10, 6),
                             ("conv9_2", 256, 5, 6), ("conv10_2", 256, 3, 4), ("conv11_2", 256, 1, 4)]:
        L.append(Layer(f"loc {src}", "conv", c, h, boxes * 4, 3, 1, 1))
        L.append(Layer(f"conf {src}", "conv", c, h, boxes * num_classes, 3, 1, 1))
    return L


# =========================================================================== one layer
def _inputs(layer: Layer, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    x = rng.standard_normal((n, layer.c, layer.h, layer.h), dtype=np.float32)
    out = {"x": x}
    if layer.kind == "conv":
        std = np.sqrt(2.0 / (layer.c * layer.k * layer.k))
        out["w"] = (rng.standard_normal((layer.o, layer.c, layer.k, layer.k)) * std).astype(np.float32)
        out["b"] = np.zeros(layer.o, np.float32)
    ho = layer.out_hw()
    co = layer.o if layer.kind == "conv" else layer.c
    out["g"] = rng.standard_normal((n, co, ho, ho), dtype=np.float32)
    return out


def _first(layer: Layer) -> bool:
    return layer.name == "conv1_1"  # the image needs no gradient (both libraries then skip dx)


class _Sink(Function):
    """Identity whose backward drops the gradient: makes x a non-leaf, as inside a network.

    (A leaf's .grad gets its own copy of the gradient; PyTorch hands its leaf the array itself. Inside
    a network neither happens, so the per-layer numbers leave that copy out.)
    """

    def forward(self, a):
        return a

    def backward(self, grad):
        return None


def run_minissd(layer: Layer, a: dict[str, np.ndarray], backward: bool) -> None:
    x = Tensor(a["x"], requires_grad=backward and not _first(layer))
    if x.requires_grad:
        x = _Sink.apply(x)
    if layer.kind == "conv":
        w, b = Parameter(a["w"]), Parameter(a["b"])
        fn = lambda: F.conv2d(x, w, b, layer.s, layer.p, layer.d)  # noqa: E731
    else:
        fn = lambda: F.max_pool2d(x, layer.k, layer.s, layer.p, layer.ceil)  # noqa: E731
    if backward:
        fn().backward(a["g"])
    else:
        with no_grad():
            fn()


def run_torch(layer: Layer, a: dict, backward: bool) -> None:
    x = a["x"].detach().requires_grad_(backward and not _first(layer))
    if layer.kind == "conv":
        w, b = a["w"].detach().requires_grad_(True), a["b"].detach().requires_grad_(True)
        fn = lambda: TF.conv2d(x, w, b, layer.s, layer.p, layer.d)  # noqa: E731
    else:
        fn = lambda: TF.max_pool2d(x, layer.k, layer.s, layer.p, ceil_mode=layer.ceil)  # noqa: E731
    if backward:
        fn().backward(a["g"])
    else:
        with torch.no_grad():
            fn()


def _time(fn, *args) -> float:
    t0 = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0


def bench_layer(layer: Layer, n: int, backward: bool) -> dict[str, float]:
    rng = np.random.default_rng(0)
    a = _inputs(layer, n, rng)
    ta = {k: torch.from_numpy(v) for k, v in a.items()} if torch is not None else None
    ours, theirs = [], []
    for r in range(ARGS.warmup + ARGS.repeat):
        t_ours = _time(run_minissd, layer, a, backward)
        t_theirs = _time(run_torch, layer, ta, backward) if ta is not None else float("nan")
        if r >= ARGS.warmup:
            ours.append(t_ours)
            theirs.append(t_theirs)
    return {"ours": statistics.median(ours), "torch": statistics.median(theirs)}


# =========================================================================== whole-stack step
def _vmrss_kb(field: str = "VmRSS") -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as f:  # "5" resets the peak resident size (VmHWM)
        f.write("5")


def step_subprocess(lib: str, n: int) -> None:
    """Run the SSD300 conv/pool stack forward + backward; print 'seconds peak_MB' (runs in a child)."""
    layers = ssd300_layers()
    rng = np.random.default_rng(0)
    params = {}
    for layer in layers:
        if layer.kind == "conv":
            a = _inputs(layer, 1, rng)
            params[layer.name] = (a["w"], a["b"])
    x_np = rng.standard_normal((n, 3, 300, 300), dtype=np.float32)
    heads = [layer for layer in layers if layer.name.startswith(("loc", "conf"))]
    body = [layer for layer in layers if layer not in heads]
    sources = {"conv4_3", "fc7", "conv8_2", "conv9_2", "conv10_2", "conv11_2"}
    scale_np = np.full(512, 20.0, np.float32)

    if lib == "torch":
        P = {k: (torch.from_numpy(w).requires_grad_(), torch.from_numpy(b).requires_grad_())
             for k, (w, b) in params.items()}
        scale = torch.from_numpy(scale_np).requires_grad_()

        def conv(layer, h):
            w, b = P[layer.name]
            return TF.relu(TF.conv2d(h, w, b, layer.s, layer.p, layer.d), inplace=True)

        def head(layer, h):
            w, b = P[layer.name]
            return TF.conv2d(h, w, b, layer.s, layer.p, layer.d)

        def pool(layer, h):
            return TF.max_pool2d(h, layer.k, layer.s, layer.p, ceil_mode=layer.ceil)

        def l2norm(h):
            return h / (h.pow(2).sum(1, keepdim=True).sqrt() + 1e-10) * scale.view(1, -1, 1, 1)

        x = torch.from_numpy(x_np)
    else:
        P = {k: (Parameter(w), Parameter(b)) for k, (w, b) in params.items()}
        scale = Parameter(scale_np)

        def conv(layer, h):
            w, b = P[layer.name]
            return F.relu(F.conv2d(h, w, b, layer.s, layer.p, layer.d), inplace=True)

        def head(layer, h):
            w, b = P[layer.name]
            return F.conv2d(h, w, b, layer.s, layer.p, layer.d)

        def pool(layer, h):
            return F.max_pool2d(h, layer.k, layer.s, layer.p, layer.ceil)

        def l2norm(h):
            return F.l2_norm(h, scale)

        x = Tensor(x_np)

    def step() -> None:
        h, feats = x, {}
        for layer in body:
            h = conv(layer, h) if layer.kind == "conv" else pool(layer, h)
            if layer.name in sources:
                feats[layer.name] = l2norm(h) if layer.name == "conv4_3" else h
        loss = None
        for layer in heads:
            out = head(layer, feats[layer.name.split(" ")[1]]).sum()
            loss = out if loss is None else loss + out
        loss.backward()

    step()  # warm-up
    if lib != "torch":
        release_workspace()  # the peak below includes re-creating the column buffer
    base = _vmrss_kb()
    _reset_peak()
    times = []
    for _ in range(ARGS.repeat):
        times.append(_time(step))
    peak = _vmrss_kb("VmHWM")
    print(f"{statistics.median(times):.4f} {(peak - base) / 1024:.1f}")


def run_step(lib: str, n: int) -> tuple[float, float]:
    """One fresh subprocess: warm-up step, then one timed step; returns (seconds, peak MB)."""
    cmd = [sys.executable, os.path.abspath(__file__), "--_step", lib, "--step-batch", str(n),
           "--threads", str(THREADS), "--repeat", "1"]
    if ARGS.copy_threads:
        cmd += ["--copy-threads", str(ARGS.copy_threads)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    t, mb = out.stdout.split()[-2:]
    return float(t), float(mb)


def run_steps(libs: list[str], n: int) -> dict[str, tuple[float, float]]:
    """Alternate the libraries ``--repeat`` times (so a busy spell hits both); medians."""
    runs: dict[str, list[tuple[float, float]]] = {lib: [] for lib in libs}
    for _ in range(ARGS.repeat):
        for lib in libs:
            runs[lib].append(run_step(lib, n))
    return {lib: (statistics.median(t for t, _ in r), statistics.median(m for _, m in r)) for lib, r in runs.items()}


# =========================================================================== report
def main() -> int:
    if ARGS._step:
        step_subprocess(ARGS._step, ARGS.step_batch)
        return 0
    layers = [layer for layer in ssd300_layers() if ARGS.layers in layer.name]
    lines: list[str] = []

    def emit(s: str = "") -> None:
        print(s, flush=True)
        lines.append(s)

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    emit(f"minissd {minissd.__version__} (NumPy {np.__version__}), "
         f"PyTorch {torch.__version__ if torch is not None else 'not installed'}; {cpu}, "
         f"{THREADS} threads for both; {time.strftime('%Y-%m-%d')}")
    emit(f"median of {ARGS.repeat} after {ARGS.warmup} warm-up; times in ms; ratio = minissd / PyTorch; "
         f"minissd copy threads: {get_num_threads()}")
    for n in ARGS.batch:
        emit()
        emit(f"### batch {n}")
        emit()
        head = "| layer | shape in -> out | fwd ms | fwd GFLOP/s | fwd+bwd ms | fwd+bwd GFLOP/s |"
        rule = "|---|---|--:|--:|--:|--:|"
        if torch is not None:
            head += " torch fwd ms | torch fwd+bwd ms | ratio fwd | ratio fwd+bwd |"
            rule += "--:|--:|--:|--:|"
        emit(head)
        emit(rule)
        tot = {"f": 0.0, "b": 0.0, "tf": 0.0, "tb": 0.0, "flops": 0.0}
        for layer in layers:
            fw = bench_layer(layer, n, backward=False)
            fb = bench_layer(layer, n, backward=True)
            fl = layer.flops(n)
            # forward + backward costs 3x the forward multiply-adds (dx and dW), 2x for conv1_1 (no dx)
            fl_b = fl * (2 if _first(layer) else 3)
            tot["f"] += fw["ours"]
            tot["b"] += fb["ours"]
            tot["tf"] += fw["torch"]
            tot["tb"] += fb["torch"]
            tot["flops"] += fl
            ho = layer.out_hw()
            co = layer.o if layer.kind == "conv" else layer.c
            desc = f"{layer.c}x{layer.h}² -> {co}x{ho}²"
            g1 = f"{fl / fw['ours'] / 1e9:.0f}" if fl else "-"
            g2 = f"{fl_b / fb['ours'] / 1e9:.0f}" if fl else "-"
            row = f"| {layer.name} | {desc} | {fw['ours'] * 1e3:.1f} | {g1} | {fb['ours'] * 1e3:.1f} | {g2} |"
            if torch is not None:
                row += (f" {fw['torch'] * 1e3:.1f} | {fb['torch'] * 1e3:.1f} | "
                        f"{fw['ours'] / fw['torch']:.2f} | {fb['ours'] / fb['torch']:.2f} |")
            emit(row)
        row = f"| **total** | | {tot['f'] * 1e3:.0f} | | {tot['b'] * 1e3:.0f} | |"
        if torch is not None:
            row += (f" {tot['tf'] * 1e3:.0f} | {tot['tb'] * 1e3:.0f} | **{tot['f'] / tot['tf']:.2f}** | "
                    f"**{tot['b'] / tot['tb']:.2f}** |")
        emit(row)
        emit(f"\nforward GFLOP/s over all conv layers: minissd {tot['flops'] / tot['f'] / 1e9:.0f}"
             + (f", PyTorch {tot['flops'] / tot['tf'] / 1e9:.0f}" if torch is not None else ""))
    if not ARGS.no_step:
        n = ARGS.step_batch
        emit()
        emit(f"### one training step of the whole SSD300 conv/pool stack (batch {n}, forward + backward)")
        emit()
        emit("| library | step s | peak memory above baseline, MB |")
        emit("|---|--:|--:|")
        res = run_steps(["minissd", "torch"] if torch is not None else ["minissd"], n)
        res = {("PyTorch" if k == "torch" else k): v for k, v in res.items()}
        for lib, (t, mb) in res.items():
            emit(f"| {lib} | {t:.2f} | {mb:.0f} |")
        if torch is not None:
            (t1, m1), (t2, m2) = res["minissd"], res["PyTorch"]
            emit(f"\nratio minissd / PyTorch: time {t1 / t2:.2f}, peak memory {m1 / m2:.2f}")
    if ARGS.markdown:
        with open(ARGS.markdown, "w") as f:
            f.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
