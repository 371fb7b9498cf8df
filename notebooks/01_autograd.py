# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 01 · Autograd: a computational graph, by hand and by minissd
#
# Training SSD needs the gradient of the loss with respect to millions of weights. minissd computes it
# by **reverse-mode automatic differentiation**: every operation records itself in a graph, and
# `backward()` applies the chain rule from the loss back to the inputs. This notebook differentiates
# small graphs by hand, checks that `minissd` agrees, shows why the walk must follow a **topological
# order**, and ends with **gradient checks** against finite differences.
# The code is in `minissd/autograd/` (`tensor.py`: the Tensor and `backward()`; `function.py`; `ops.py`);
# `docs/autograd.md` is the written companion.

# %%
import os
import time

import matplotlib.pyplot as plt
import numpy as np

import minissd
from minissd import to_numpy

FAST = os.environ.get("MINISSD_FAST") == "1"  # CI sets it: smaller sizes, the same pictures
# %config InlineBackend.figure_format = "png"
plt.rcParams.update({"figure.dpi": 100, "savefig.dpi": 100, "font.size": 10})  # 9 in = 900 px
print(f"minissd {minissd.__version__}, backend {minissd.get_backend()}, FAST={FAST}")

# %% [markdown]
# ## 1. A graph by hand: f = (x + y) · z
#
# Forward: q = x + y, f = q · z. Backward, one operation at a time (chain rule): the multiplication
# passes df/dq = z and df/dz = q; the addition passes its upstream gradient unchanged to x and y.

# %%
# by hand, with plain floats
x, y, z = -2.0, 5.0, -4.0
q = x + y
f = q * z
df_df = 1.0
df_dq, df_dz = z * df_df, q * df_df      # Mul: each input gets the other one times upstream
df_dx, df_dy = 1.0 * df_dq, 1.0 * df_dq  # Add: passes upstream through
hand = {"x": df_dx, "y": df_dy, "z": df_dz, "q": df_dq, "f": df_df}
print(f"forward: q = {q}, f = {f}")
print("by hand: ", {k: hand[k] for k in "xyz"})

# by minissd
from minissd import Tensor

tx, ty, tz = (Tensor(np.array(v), requires_grad=True) for v in (x, y, z))
tq = tx + ty
tf = tq * tz
tf.backward()
print("minissd: ", {"x": tx.grad.item(), "y": ty.grad.item(), "z": tz.grad.item()})
assert (tx.grad.item(), ty.grad.item(), tz.grad.item()) == (df_dx, df_dy, df_dz)

# %% [markdown]
# The graph `minissd` recorded can be read back: every result keeps the `Function` that made it
# (`_ctx`), and the Function keeps its inputs (`parents`). The helper below only *draws* that graph
# (boxes: tensors with value and gradient; circles: Functions). It lays nodes out with the library's
# own `_topological_order`, which section 3 explains.

# %%
from matplotlib.patches import FancyBboxPatch

from minissd.autograd.tensor import _topological_order


def draw_graph(root, names, grads, ax, title):
    """Draw the graph behind `root`: tensors (boxes) left to right towards root, Functions (circles)."""
    order = _topological_order(root)               # inputs first, root last
    depth = {id(root): 0}
    for t in reversed(order):                      # every consumer before what it consumes
        if t._ctx is not None:
            for p in t._ctx.parents:
                if p.requires_grad:
                    depth[id(p)] = max(depth.get(id(p), 0), depth[id(t)] + 2)
    top = max(depth.values())
    levels = {}
    for t in order:
        levels.setdefault(depth[id(t)], []).append(t)
    pos = {}
    for d, ts in levels.items():
        for k, t in enumerate(ts):
            pos[id(t)] = (top - d, (len(ts) - 1) / 2 - k)
    label = {id(t): n for n, t in names.items()}
    for t in order:
        x_, y_ = pos[id(t)]
        n = label.get(id(t), "?")
        ax.add_patch(FancyBboxPatch((x_ - 0.42, y_ - 0.22), 0.84, 0.44, boxstyle="round,pad=0.02",
                                    fc="#e8f0ff", ec="black"))
        ax.text(x_, y_ + 0.06, f"{n} = {t.data.item():g}", ha="center", va="center", fontsize=9)
        ax.text(x_, y_ - 0.11, f"grad {grads[n]:g}", ha="center", va="center", fontsize=8,
                color="green")
        if t._ctx is not None:
            ox, oy = x_ - 1, y_
            op = type(t._ctx).__name__
            sym = {"Add": "+", "Mul": "×", "Sub": "−", "Div": "/"}.get(op, "")
            consts = [f"{sym}{p.data.item():g}" for p in t._ctx.parents if not p.requires_grad]
            ax.add_patch(plt.Circle((ox, oy), 0.27, fc="#fff3c4", ec="black"))
            ax.text(ox, oy, op + "".join(f"\n{c}" for c in consts), ha="center",
                    va="center", fontsize=7)
            ax.annotate("", xy=(x_ - 0.42, y_), xytext=(ox + 0.27, oy), arrowprops={"arrowstyle": "->"})
            for p in t._ctx.parents:
                if p.requires_grad:
                    px, py = pos[id(p)]
                    ax.annotate("", xy=(ox - 0.27, oy), xytext=(px + 0.42, py),
                                arrowprops={"arrowstyle": "->"})
    ys = [p[1] for p in pos.values()]
    ax.set_xlim(-0.6, top + 0.6)
    ax.set_ylim(min(ys) - 0.6, max(ys) + 0.6)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(title, fontsize=10)


fig, ax = plt.subplots(figsize=(9.5, 4.6))
draw_graph(tf, {"x": tx, "y": ty, "z": tz, "q": tq, "f": tf}, hand, ax,
           "f = (x + y) · z: values (black) and gradients df/d· (green)")
plt.show()

# %% [markdown]
# ## 2. A neuron and a vector example
#
# s = sigmoid(w·x + b). The sigmoid's local derivative is s(1 − s); the chain rule multiplies it into
# every input's gradient.

# %%
w, xv, b = -3.0, 2.0, 1.0
s = 1 / (1 + np.exp(-(w * xv + b)))
ds_dz = s * (1 - s)
hand = {"w": ds_dz * xv, "x": ds_dz * w, "b": ds_dz}

tw, txv, tb = (Tensor(np.array(v), requires_grad=True) for v in (w, xv, b))
ts = (tw * txv + tb).sigmoid()
ts.backward()
auto = {"w": tw.grad.item(), "x": txv.grad.item(), "b": tb.grad.item()}
print(f"s = {s:.6f}, local derivative s(1-s) = {ds_dz:.6f}")
for k in hand:
    print(f"  ds/d{k}: by hand {hand[k]: .6f}   minissd {auto[k]: .6f}")

# %% [markdown]
# The same works for arrays. Linear regression, L = mean((X w + b − y)²), has the hand-derived
# gradients dL/dw = (2/n) Xᵀ r and dL/db = (2/n) Σ r with residual r = X w + b − y.

# %%
rng = np.random.default_rng(0)
n, d = 50, 3
X, yv = rng.standard_normal((n, d)), rng.standard_normal(n)
w0, b0 = rng.standard_normal(d), 0.3

r = X @ w0 + b0 - yv
hand_w, hand_b = 2 / n * X.T @ r, 2 / n * r.sum()

tw, tb = Tensor(w0, requires_grad=True), Tensor(np.array(b0), requires_grad=True)
loss = ((Tensor(X) @ tw + tb - Tensor(yv)) ** 2).mean()
loss.backward()
print(f"L = {loss.item():.4f}")
print("dL/dw by hand:", np.round(hand_w, 6), " minissd:", np.round(to_numpy(tw.grad), 6))
print(f"largest difference: {max(np.abs(hand_w - to_numpy(tw.grad)).max(), abs(hand_b - tb.grad.item())):.1e}")

# %% [markdown]
# ## 3. The diamond, and why the order of the walk matters
#
# A tensor used twice gets one gradient contribution per use, and they **add up**. Here x feeds two
# branches: a = 2x, b = x + 1, c = a · b. So c = 2x² + 2x and dc/dx = 4x + 2.

# %%
tx = Tensor(np.array(3.0), requires_grad=True)
ta = tx * 2.0
tb = tx + 1.0
tc = ta * tb
tc.backward()
xv = 3.0
via_a, via_b = tb.data.item() * 2.0, ta.data.item() * 1.0   # dc/da · da/dx and dc/db · db/dx
print(f"c = {tc.item():g};  dc/dx = 4x + 2 = {4 * xv + 2:g}")
print(f"contributions: via a {via_a:g} + via b {via_b:g} = {via_a + via_b:g};  minissd: {tx.grad.item():g}")

fig, ax = plt.subplots(figsize=(9.5, 4.6))
draw_graph(tc, {"x": tx, "a": ta, "b": tb, "c": tc},
           {"x": via_a + via_b, "a": tb.data.item(), "b": ta.data.item(), "c": 1.0}, ax,
           "the diamond: x's gradient is the sum of two paths")
plt.show()


# %% [markdown]
# A node may pass its gradient on only after **all** its consumers have sent theirs. If x were not a
# leaf but an intermediate result (x = 3w), and the walk visited x after a but before b, x would pass on
# only the contribution via a, not the sum. `backward()` avoids this by walking the graph in reverse
# **topological order** (every consumer before what it consumes):

# %%
def diamond():
    w = Tensor(np.array(1.0), requires_grad=True)
    x = w * 3.0                 # now x is an intermediate result
    a, b = x * 2.0, x + 1.0
    return w, x, a, b, a * b

w, x, a, b, c = diamond()
names = {id(w): "w", id(x): "x", id(a): "a", id(b): "b", id(c): "c"}
order = _topological_order(c)
print("topological order:     ", [names[id(t)] for t in order])
print("backward() visits:     ", [names[id(t)] for t in reversed(order)])
c.backward()
print(f"minissd: dc/dw = {w.grad.item():g}  (= 3 · (4x + 2) with x = 3)")


# %% [markdown]
# An experiment (not library code): the loop of `Tensor.backward` without its sort, fed a given visiting
# order. Each node passes on whatever it has received when it is visited.

# %%
def backward_in_order(root, visit):
    """Visit `visit` in that order; each node hands what it has so far to its Function's backward."""
    pending, leaf_grad = {id(root): root.data * 0 + 1}, {}     # d root / d root = 1
    for node in visit:
        g = pending.pop(id(node), None)
        if g is None:
            continue
        if node._ctx is None:
            leaf_grad[id(node)] = leaf_grad.get(id(node), 0) + g
            continue
        gs = node._ctx.backward(g)
        gs = gs if isinstance(gs, tuple) else (gs,)
        for parent, pg in zip(node._ctx.parents, gs):
            if parent.requires_grad:
                pending[id(parent)] = pending.get(id(parent), 0) + pg
    return leaf_grad, pending

for label, pick in [("reverse topological", lambda w, x, a, b, c: list(reversed(_topological_order(c)))),
                    ("x before b         ", lambda w, x, a, b, c: [c, a, x, b, w])]:
    nodes = diamond()
    w, c = nodes[0], nodes[-1]
    got, left = backward_in_order(c, pick(*nodes))
    print(f"{label}: dc/dw = {got[id(w)].item():g}; gradient never passed on: "
          f"{sum(v.item() for v in left.values()):g}")

# %% [markdown]
# The order is built with an explicit stack, not recursion, so very deep graphs work even though Python's
# recursion limit is small:

# %%
import sys

depth = 10_000 if FAST else 100_000
t0 = time.perf_counter()
x0 = Tensor(np.array(1.0), requires_grad=True)
y0 = x0
for _ in range(depth):
    y0 = y0 * 1.0
y0.backward()
print(f"chain of {depth} multiplications: dy/dx = {x0.grad.item():g}, "
      f"{time.perf_counter() - t0:.1f} s; Python's recursion limit is {sys.getrecursionlimit()}")

# %% [markdown]
# ## 4. Gradient checks
#
# Every `Function` in minissd is tested against **central finite differences**,
# (f(x + ε) − f(x − ε)) / 2ε. First by hand, for one function, element by element:

# %%
from minissd.autograd import GradcheckError, gradcheck, rel_error

rng = np.random.default_rng(1)
x_np = rng.standard_normal((4, 5))
up = rng.standard_normal((4, 5))            # a random upstream gradient


def fn(t):
    return (t.log_softmax(axis=1) * Tensor(up)).sum()


xt = Tensor(x_np.copy(), requires_grad=True)
fn(xt).backward()
eps = 1e-6
numeric = np.zeros_like(x_np)
for idx in np.ndindex(*x_np.shape):
    xp_, xm_ = x_np.copy(), x_np.copy()
    xp_[idx] += eps
    xm_[idx] -= eps
    numeric[idx] = (fn(Tensor(xp_)).item() - fn(Tensor(xm_)).item()) / (2 * eps)
print(f"log_softmax: relative error between backward() and finite differences: {rel_error(xt.grad, numeric):.1e}")

fig, ax = plt.subplots(figsize=(9.5, 5.5))
ax.plot(numeric.ravel(), to_numpy(xt.grad).ravel(), "o", ms=4)
lim = np.abs(numeric).max() * 1.1
ax.plot([-lim, lim], [-lim, lim], "k--", lw=0.6)
ax.set_xlabel("finite differences")
ax.set_ylabel("backward()")
ax.set_title("log_softmax gradient, 20 elements", fontsize=10)
plt.show()

# %% [markdown]
# Why float64: the finite difference subtracts two nearly equal numbers. Too large an ε and the
# curvature spoils it; too small and rounding does. In float32 (7 significant digits) no ε is good enough
# to check a gradient to 1e-5, which is why `gradcheck` refuses float32 inputs.

# %%
epss = np.logspace(-12, -1, 23)
errors = {}
for dtype in (np.float64, np.float32):
    errs = []
    for e in epss:
        num = np.zeros_like(x_np)
        xd = x_np.astype(dtype)
        for idx in np.ndindex(*x_np.shape):
            xp_, xm_ = xd.copy(), xd.copy()
            xp_[idx] += dtype(e)
            xm_[idx] -= dtype(e)
            step = float(xp_[idx]) - float(xm_[idx])          # the step actually taken
            num[idx] = (fn(Tensor(xp_)).item() - fn(Tensor(xm_)).item()) / step if step else np.nan
        errs.append(rel_error(xt.grad, np.nan_to_num(num, nan=1e9)))
    errors[np.dtype(dtype).name] = errs

fig, ax = plt.subplots(figsize=(9.5, 6.1))
for name, errs in errors.items():
    ax.loglog(epss, errs, "o-", ms=3, label=name)
    print(f"{name}: best relative error {min(errs):.1e} at eps = {epss[int(np.argmin(errs))]:.0e}")
ax.axvline(1e-6, color="grey", ls=":", lw=1)
ax.text(1e-6, ax.get_ylim()[1], " gradcheck's eps", fontsize=8, va="top")
ax.set_xlabel("eps")
ax.set_ylabel("relative error")
ax.set_title("finite differences: float64 vs float32", fontsize=10)
ax.legend()
plt.show()

# %% [markdown]
# `minissd.autograd.gradcheck(fn, inputs)` does this for every input that requires a gradient (a
# random sample of up to 200 elements for large inputs) and returns True or raises `GradcheckError`.
# A few of the operations SSD is built from:

# %%
import minissd.nn.functional as F
from minissd.loss import MultiBoxLoss, smooth_l1

rng = np.random.default_rng(2)


def T(*shape):
    return Tensor(rng.standard_normal(shape), requires_grad=True)


targets = (rng.standard_normal((2, 12, 4)), rng.integers(0, 3, (2, 12)))
cases = {
    "matmul + sigmoid": (lambda a, b: (a @ b).sigmoid(), [T(3, 4), T(4, 2)]),
    "log_softmax": (lambda a: a.log_softmax(axis=-1), [T(3, 5)]),
    "conv2d stride 2, pad 1, dilation 2": (
        lambda x, w: F.conv2d(x, w, stride=2, padding=1, dilation=2), [T(1, 2, 7, 7), T(3, 2, 3, 3)]),
    "max_pool2d 2x2 ceil_mode": (lambda x: F.max_pool2d(x, 2, ceil_mode=True), [T(1, 2, 5, 5)]),
    "smooth_l1": (smooth_l1, [T(6)]),
    "MultiBoxLoss": (lambda loc, conf: sum(MultiBoxLoss()(loc, conf, *targets), Tensor(0.0)),
                     [T(2, 12, 4), T(2, 12, 3)]),
}
for name, (f_, inputs) in cases.items():
    t0 = time.perf_counter()
    ok = gradcheck(f_, inputs)
    print(f"{name:36s} {ok}   ({time.perf_counter() - t0:.2f} s)")

# %% [markdown]
# A gradient check earns its keep when the backward is wrong. Break the sigmoid's backward (forget the
# factor 1 − s) and the check names the worst element:

# %%
from minissd.autograd.ops import Sigmoid


class BadSigmoid(Sigmoid):
    def backward(self, grad):
        return grad * self.out          # wrong: should be grad * out * (1 - out)


try:
    gradcheck(lambda a: BadSigmoid.apply(a), [T(5)])
except GradcheckError as err:
    print("GradcheckError:", err)

# %% [markdown]
# ## Exercise: a gradient by hand (classroom assignment `autograd_ops`)
#
# For f(x) = log(x) / x, what is df/dx at x = 2? Derive it on paper (quotient rule, or the chain rule through
# `Div` and `Log`, two of the Functions whose backward the assignment asks for), replace `None` by your
# number, and run the check: it compares with `backward()`.

# %%
my_gradient = None   # df/dx at x = 2, a float

# %%
tx2 = Tensor(np.array(2.0), requires_grad=True)
(tx2.log() / tx2).backward()
if my_gradient is None:
    print("not answered yet: set my_gradient in the cell above")
elif np.isclose(my_gradient, tx2.grad.item(), rtol=1e-4):
    print(f"right: df/dx(2) = {tx2.grad.item():.6f}")
else:
    print("wrong: d(u/v) = (u' v - u v') / v², with u = log x and v = x")

# %% [markdown]
# ## Summary
#
# * Operations on tensors with `requires_grad=True` record a graph of `Function`s.
# * `backward()` applies each Function's local chain rule from the output back, in reverse topological
#   order, so a node used twice passes on the **sum** of its contributions.
# * `gradcheck` compares `backward()` with finite differences in float64; every op in minissd has one
#   (`tests/test_autograd.py`). Next: convolution and pooling (02).
