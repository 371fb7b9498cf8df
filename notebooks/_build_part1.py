"""Generate notebooks 00, 01, 04, 05 and 06 (issue 8, part 1) from Python with nbformat.

Usage (from the repository root)::

    .venv/bin/python notebooks/_build_part1.py                 # write all five, without outputs
    .venv/bin/python notebooks/_build_part1.py --execute       # ... and run them (full setting) in place
    .venv/bin/python notebooks/_build_part1.py 04 05 --execute # only some

The notebooks are stored with their outputs (so a reader on a code host sees the pictures); ``--execute``
runs each in a fresh ``python3`` kernel with ``MINISSD_FAST`` unset. CI runs them with ``MINISSD_FAST=1``
through ``pytest --nbmake``. Edit the cells here, not in the .ipynb files, then regenerate.
"""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent


def md(text: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_markdown_cell(textwrap.dedent(text).strip())


def code(text: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_code_cell(textwrap.dedent(text).strip())


SETUP = r'''
import os
import time

import matplotlib.pyplot as plt
import numpy as np

import minissd
from minissd import to_numpy

FAST = os.environ.get("MINISSD_FAST") == "1"  # CI sets it: smaller sizes, the same pictures
%config InlineBackend.figure_format = "png"
plt.rcParams["figure.dpi"] = 72
print(f"minissd {minissd.__version__}, backend {minissd.get_backend()}, FAST={FAST}")
'''


# ============================================================================================ 00 overview
def nb_00() -> list:
    return [
        md(r'''
        # 00 · Overview: from YOLOv1's 98 boxes to SSD's 8732 default boxes

        SSD (Single Shot MultiBox Detector, Liu et al., ECCV 2016) is a one-stage detector: one network pass
        gives boxes and classes. It started from YOLOv1's weak spots:

        * YOLOv1 splits the image into a **7x7 grid**; each cell predicts **2 boxes** and **one** class
          distribution. That is very few candidates, and crowded small objects (a flock of birds) collide
          in one cell.
        * YOLOv1 predicts from the **last, coarse feature map** only; the detail of earlier maps is lost.

        SSD's answer: predict on **several feature maps** (early, fine ones for small objects; late, coarse ones
        for large objects), and put **default boxes** (Faster R-CNN's anchors) of several shapes at every
        location. This notebook measures that contrast and maps out the rest of the series.
        '''),
        code(SETUP),
        md(r'''
        ## 1. Counting candidates

        YOLOv1's output is one S x S grid with B boxes per cell. SSD300's default boxes come from
        `minissd.priors.default_boxes(SSDConfig.ssd300())`.
        '''),
        code(r'''
        from minissd.config import SSDConfig
        from minissd.models import YOLOv1
        from minissd.priors import default_boxes, map_slices

        yolo = YOLOv1(num_classes=8)          # the grid detector of notebook 09 (a small backbone)
        S, B = yolo.grid, yolo.boxes_per_cell
        cfg = SSDConfig.ssd300()
        priors = to_numpy(default_boxes(cfg))  # (P, 4) centre form (cx, cy, w, h), normalized

        print(f"YOLOv1: {S} x {S} cells x {B} boxes = {S * S * B} candidates, from one {S}x{S} map")
        print(f"SSD300: {priors.shape[0]} default boxes, from {len(cfg.feature_maps)} maps of sides {cfg.feature_maps}")
        print(f"        {priors.shape[0] / (S * S * B):.0f} times as many candidates")
        '''),
        code(r'''
        from minissd.viz import MAP_COLOURS

        fig, axes = plt.subplots(1, 2, figsize=(10, 4.6))
        ax = axes[0]
        c = (np.arange(S) + 0.5) / S
        cx, cy = np.meshgrid(c, c)
        ax.scatter(cx.ravel(), cy.ravel(), s=25, color="black")
        for t in range(1, S):
            ax.axhline(t / S, color="grey", lw=0.5)
            ax.axvline(t / S, color="grey", lw=0.5)
        ax.set_title(f"YOLOv1: {S * S} cell centres, {S * S * B} boxes", fontsize=10)
        ax = axes[1]
        for k, sl in enumerate(map_slices(cfg)):
            per_loc = cfg.num_priors_per_location[k]
            centres = priors[sl][::per_loc, :2]  # one point per location
            ax.scatter(centres[:, 0], centres[:, 1], s=3 + 6 * k, color=MAP_COLOURS[k],
                       label=f"{cfg.source_names[k]} {cfg.feature_maps[k]}x{cfg.feature_maps[k]}: "
                             f"{sl.stop - sl.start} boxes")
        ax.set_title(f"SSD300: {len(priors)} default boxes at {sum(f * f for f in cfg.feature_maps)} locations",
                     fontsize=10)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        for ax in axes:
            ax.set_xlim(0, 1)
            ax.set_ylim(1, 0)
            ax.set_aspect("equal")
            ax.set_xticks([])
            ax.set_yticks([])
        fig.tight_layout()
        plt.show()
        '''),
        md(r'''
        ## 2. A flock of birds on the 7x7 grid

        A `ShapesDataset` "flock" scene: small objects in tight clusters. In YOLOv1 the cell that holds an
        object's centre is responsible for it, and a cell has only B = 2 boxes. Red cells hold more than two
        centres; the objects beyond the first two of a cell cannot be represented at all.
        '''),
        code(r'''
        from matplotlib.patches import Rectangle

        from minissd.data import ShapesDataset
        from minissd.matching import match_priors
        from minissd.priors import best_overlaps
        from minissd.viz import draw_boxes, plot_grid, show_image

        flock = ShapesDataset(8, scene="flock", seed=0)
        counts_objects = [len(flock[i][1]) for i in range(len(flock))]
        image, boxes, labels = flock[int(np.argmax(counts_objects))]  # the most crowded of 8 scenes
        H, W = image.shape[:2]

        centre = (boxes[:, :2] + boxes[:, 2:]) / 2
        cell = np.minimum((centre * S).astype(int), S - 1)        # (G, 2) column, row of each centre
        per_cell = np.zeros((S, S), int)
        np.add.at(per_cell, (cell[:, 1], cell[:, 0]), 1)
        lost = np.maximum(per_cell - B, 0).sum()
        print(f"{len(boxes)} objects; {(per_cell > B).sum()} cells hold more than {B} centres; "
              f"{lost} objects ({lost / len(boxes):.0%}) cannot be represented by the 7x7x{B} grid")
        '''),
        md(r'''
        SSD matches every object to its own default boxes (notebook 05): the small `SSDConfig.mini()` detector
        of this project (the one trained in notebook 07) gives each bird at least one default box, drawn here in
        the colour of its feature map.
        '''),
        code(r'''
        mini = SSDConfig.mini()
        mini_priors = to_numpy(default_boxes(mini))
        gt_index, _ = match_priors(boxes, mini_priors)
        matched_objects = len(np.unique(gt_index[gt_index >= 0]))
        good = (best_overlaps(boxes, mini_priors) >= 0.5).sum()
        print(f"SSD mini ({mini.input_size} px input, {len(mini_priors)} default boxes): "
              f"{matched_objects} of {len(boxes)} objects have matched default boxes "
              f"({(gt_index >= 0).sum()} positives in all); {good} of them have one with IoU >= 0.5")

        fig, axes = plt.subplots(1, 2, figsize=(9, 4.6))
        ax = axes[0]
        show_image(ax, image, f"YOLOv1 grid: {lost} of {len(boxes)} objects lost")
        plot_grid(ax, S, (W, H))
        for r, c_ in zip(*np.nonzero(per_cell > B)):
            ax.add_patch(Rectangle((c_ * W / S - 0.5, r * H / S - 0.5), W / S, H / S, color="red", alpha=0.35))
        for r, c_ in zip(*np.nonzero(per_cell)):
            ax.text((c_ + 0.5) * W / S, (r + 0.5) * H / S, str(per_cell[r, c_]), color="white", fontsize=9,
                    ha="center", va="center", weight="bold")
        ax = axes[1]
        show_image(ax, image, f"SSD mini: {matched_objects} of {len(boxes)} objects matched")
        corners = np.concatenate([mini_priors[:, :2] - mini_priors[:, 2:] / 2,
                                  mini_priors[:, :2] + mini_priors[:, 2:] / 2], axis=1)
        for k, sl in enumerate(map_slices(mini)):
            idx = np.nonzero(gt_index[sl] >= 0)[0] + sl.start
            draw_boxes(ax, corners[idx], color=MAP_COLOURS[k], linewidth=0.7, show_text=False)
        draw_boxes(ax, boxes, color="white", linewidth=1.0, linestyle="--", show_text=False)
        fig.tight_layout()
        plt.show()
        '''),
        md(r'''
        ## 3. The pipeline in one figure

        SSD300: a 300x300 image goes through VGG16 up to conv5_3, with fc6/fc7 turned into convolutions, then
        four extra blocks that halve the map. Six of these maps are **sources**: a 3x3 convolution on each
        predicts, for every default box, 4 offsets (loc) and C class scores (conf). All numbers below come
        from `SSDConfig.ssd300()` and the built `ssd300()` model.
        '''),
        code(r'''
        from matplotlib.patches import FancyBboxPatch

        from minissd.models import ssd300

        model = ssd300()            # 21 classes (VOC); built, not trained: we only read its shapes
        C = model.num_classes
        n_params = sum(p.data.size for p in model.parameters())
        rows = cfg.table()
        print(f"SSD300: {n_params / 1e6:.1f} M parameters, source channels {model.source_channels}")
        print("smallest default box per map (px of 300):",
              ", ".join(f"{r['source']} {r['min_size']:g}" for r in rows))

        fig, ax = plt.subplots(figsize=(14, 5.4))
        ax.set_xlim(-0.1, 15.2)
        ax.set_ylim(-0.1, 5.5)
        ax.axis("off")

        def block(x, y, w, h, text, fc, fontsize=8):
            ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.04", fc=fc, ec="black", lw=0.8))
            ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=fontsize)

        def arrow(x0, y0, x1, y1, text=None):
            ax.annotate("", xy=(x1, y1), xytext=(x0, y0), arrowprops={"arrowstyle": "->", "lw": 0.8})
            if text:
                ax.text((x0 + x1) / 2, y0 + 0.1, text, ha="center", va="bottom", fontsize=7)

        block(0.0, 3.75, 1.1, 1.1, f"image\n{cfg.input_size}x{cfg.input_size}x3", "#dddddd")
        links = ["VGG16 to\nconv4_3", "pool4 ...\nfc6, fc7", "conv8", "conv9", "conv10", "conv11"]
        x_prev, xs, bw = 1.1, [], 1.3
        for k, r in enumerate(rows):
            x = 2.2 + 2.15 * k
            h = 0.5 + 1.4 * r["size"] / rows[0]["size"]  # height grows with the map's side
            block(x, 4.3 - h / 2, bw, h, f"{r['source']}\n{r['size']}x{r['size']}x{model.source_channels[k]}",
                  MAP_COLOURS[k])
            arrow(x_prev, 4.3, x, 4.3, links[k])
            n = r["boxes_per_location"]
            block(x, 1.7, bw, 1.25, f"3x3 conv heads\nloc {n * 4} ch\nconf {n * C} ch\n"
                  f"{r['size']}x{r['size']}x{n} = {r['boxes']}", "#f4f4f4", fontsize=7.5)
            arrow(x + bw / 2, 4.3 - h / 2, x + bw / 2, 2.95)
            arrow(x + bw / 2, 1.7, x + bw / 2, 1.05)
            x_prev = x + bw
            xs.append(x)
        P = cfg.num_priors
        block(xs[0], 0.15, xs[-1] + bw - xs[0], 0.85,
              f"concatenate over the {len(rows)} maps:  loc ({P}, 4)  and  conf ({P}, {C})", "#fff3c4", fontsize=9)
        block(0.0, 0.15, 1.5, 0.85, "detections:\ndecode, softmax,\nper-class NMS", "#c8f0c8", fontsize=7.5)
        arrow(xs[0], 0.57, 1.5, 0.57)
        ax.set_title("SSD300: detection on six feature maps, largest first", fontsize=11)
        plt.show()
        '''),
        md(r'''
        A large map (conv4_3) has small default boxes and finds small objects; the 1x1 map (conv11_2) has one
        location whose boxes are nearly as large as the image (sizes printed above). Notebook 04 shows the sizes, notebook 05
        shows which map each object ends up on.

        ## 4. The series

        | notebook | what it shows |
        | --- | --- |
        | 00_overview | this one: YOLOv1's 98 boxes vs SSD's 8732, the pipeline |
        | 01_autograd | a computational graph differentiated by hand and by `minissd`; gradient checks |
        | 02_conv_and_pooling | im2col, convolution as a matrix product, stride/padding/dilation, pooling |
        | 03_vgg_backbone | the modified VGG16 layer by layer; fc6/fc7 as convolutions; real feature maps |
        | 04_default_boxes | the default boxes of every map, the sizes table, the paper's scale rule |
        | 05_matching | IoU heat maps, the bipartite and threshold steps, which map gets which object |
        | 06_multibox_loss | smooth L1, softmax cross-entropy, hard negative mining, the loss on a batch |
        | 07_training | training `ssd_mini` on ShapesDataset: loss and mAP curves, detections |
        | 08_inference_nms_map | decoding, NMS step by step, precision-recall, AP and mAP |
        | 09_ssd_vs_yolov1 | the seed's claim measured: YOLOv1 vs SSD on mixed and flock scenes |

        See also `docs/notebooks.md` (reading order) and `docs/autograd.md`.
        '''),
    ]


# ============================================================================================ 01 autograd
def nb_01() -> list:
    return [
        md(r'''
        # 01 · Autograd: a computational graph, by hand and by minissd

        Training SSD needs the gradient of the loss with respect to millions of weights. minissd computes it
        by **reverse-mode automatic differentiation**: every operation records itself in a graph, and
        `backward()` applies the chain rule from the loss back to the inputs. This notebook differentiates
        small graphs by hand, checks that `minissd` agrees, shows why the walk must follow a **topological
        order**, and ends with **gradient checks** against finite differences.
        The code is in `minissd/autograd/tensor.py`; `docs/autograd.md` is the written companion.
        '''),
        code(SETUP),
        md(r'''
        ## 1. A graph by hand: f = (x + y) · z

        Forward: q = x + y, f = q · z. Backward, one operation at a time (chain rule): the multiplication
        passes df/dq = z and df/dz = q; the addition passes its upstream gradient unchanged to x and y.
        '''),
        code(r'''
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
        '''),
        md(r'''
        The graph `minissd` recorded can be read back: every result keeps the `Function` that made it
        (`_ctx`), and the Function keeps its inputs (`parents`). The helper below only *draws* that graph
        (boxes: tensors with value and gradient; circles: Functions). It lays nodes out with the library's
        own `_topological_order`, which section 3 explains.
        '''),
        code(r'''
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


        fig, ax = plt.subplots(figsize=(7, 3.4))
        draw_graph(tf, {"x": tx, "y": ty, "z": tz, "q": tq, "f": tf}, hand, ax,
                   "f = (x + y) · z: values (black) and gradients df/d· (green)")
        plt.show()
        '''),
        md(r'''
        ## 2. A neuron and a vector example

        s = sigmoid(w·x + b). The sigmoid's local derivative is s(1 − s); the chain rule multiplies it into
        every input's gradient.
        '''),
        code(r'''
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
        '''),
        md(r'''
        The same works for arrays. Linear regression, L = mean((X w + b − y)²), has the hand-derived
        gradients dL/dw = (2/n) Xᵀ r and dL/db = (2/n) Σ r with residual r = X w + b − y.
        '''),
        code(r'''
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
        '''),
        md(r'''
        ## 3. The diamond, and why the order of the walk matters

        A tensor used twice gets one gradient contribution per use, and they **add up**. Here x feeds two
        branches: a = 2x, b = x + 1, c = a · b. So c = 2x² + 2x and dc/dx = 4x + 2.
        '''),
        code(r'''
        tx = Tensor(np.array(3.0), requires_grad=True)
        ta = tx * 2.0
        tb = tx + 1.0
        tc = ta * tb
        tc.backward()
        xv = 3.0
        via_a, via_b = tb.data.item() * 2.0, ta.data.item() * 1.0   # dc/da · da/dx and dc/db · db/dx
        print(f"c = {tc.item():g};  dc/dx = 4x + 2 = {4 * xv + 2:g}")
        print(f"contributions: via a {via_a:g} + via b {via_b:g} = {via_a + via_b:g};  minissd: {tx.grad.item():g}")

        fig, ax = plt.subplots(figsize=(7, 3.4))
        draw_graph(tc, {"x": tx, "a": ta, "b": tb, "c": tc},
                   {"x": via_a + via_b, "a": tb.data.item(), "b": ta.data.item(), "c": 1.0}, ax,
                   "the diamond: x's gradient is the sum of two paths")
        plt.show()
        '''),
        md(r'''
        A node may pass its gradient on only after **all** its consumers have sent theirs. If x were not a
        leaf but an intermediate result (x = 3w), and the walk visited x after a but before b, x would pass on
        only the contribution via a, not the sum. `backward()` avoids this by walking the graph in reverse **topological order**
        (every consumer before what it consumes):
        '''),
        code(r'''
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
        '''),
        md(r'''
        An experiment (not library code): the loop of `Tensor.backward` without its sort, fed a given visiting
        order. Each node passes on whatever it has received when it is visited.
        '''),
        code(r'''
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
        '''),
        md(r'''
        The order is built with an explicit stack, not recursion, so very deep graphs work even though Python's
        recursion limit is small:
        '''),
        code(r'''
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
        '''),
        md(r'''
        ## 4. Gradient checks

        Every `Function` in minissd is tested against **central finite differences**,
        (f(x + ε) − f(x − ε)) / 2ε. First by hand, for one function, element by element:
        '''),
        code(r'''
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

        fig, ax = plt.subplots(figsize=(3.6, 3.4))
        ax.plot(numeric.ravel(), to_numpy(xt.grad).ravel(), "o", ms=4)
        lim = np.abs(numeric).max() * 1.1
        ax.plot([-lim, lim], [-lim, lim], "k--", lw=0.6)
        ax.set_xlabel("finite differences")
        ax.set_ylabel("backward()")
        ax.set_title("log_softmax gradient, 20 elements", fontsize=10)
        plt.show()
        '''),
        md(r'''
        Why float64: the finite difference subtracts two nearly equal numbers. Too large an ε and the
        curvature spoils it; too small and rounding does. In float32 (7 significant digits) no ε is good enough
        to check a gradient to 1e-5, which is why `gradcheck` refuses float32 inputs.
        '''),
        code(r'''
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

        fig, ax = plt.subplots(figsize=(5, 3.2))
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
        '''),
        md(r'''
        `minissd.autograd.gradcheck(fn, inputs)` does this for every input that requires a gradient (a
        random sample of up to 200 elements for large inputs) and returns True or raises `GradcheckError`.
        A few of the operations SSD is built from:
        '''),
        code(r'''
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
        '''),
        md(r'''
        A gradient check earns its keep when the backward is wrong. Break the sigmoid's backward (forget the
        factor 1 − s) and the check names the worst element:
        '''),
        code(r'''
        from minissd.autograd.ops import Sigmoid


        class BadSigmoid(Sigmoid):
            def backward(self, grad):
                return grad * self.out          # wrong: should be grad * out * (1 - out)


        try:
            gradcheck(lambda a: BadSigmoid.apply(a), [T(5)])
        except GradcheckError as err:
            print("GradcheckError:", err)
        '''),
        md(r'''
        ## Summary

        * Operations on tensors with `requires_grad=True` record a graph of `Function`s.
        * `backward()` applies each Function's local chain rule from the output back, in reverse topological
          order, so a node used twice passes on the **sum** of its contributions.
        * `gradcheck` compares `backward()` with finite differences in float64; every op in minissd has one
          (`tests/test_autograd.py`). Next: convolution and pooling (02).
        '''),
    ]


# ============================================================================================ 04 default boxes
def nb_04() -> list:
    return [
        md(r'''
        # 04 · Default boxes: a fixed set of boxes on every feature map

        SSD never predicts a box from nothing. At every location of every source feature map it places the same
        few **default boxes** (the paper's name; Faster R-CNN calls them anchors), and the network predicts
        offsets from each of them plus class scores. This notebook lays them out for SSD300: the sizes table and
        the **8732** count, the boxes of each map on a photograph, the paper's **scale rule** against the released
        sizes, and why **large maps serve small objects and small maps large objects**.
        Code: `minissd/config.py` (`SSDConfig`) and `minissd/priors.py`.
        '''),
        code(SETUP),
        md(r'''
        ## 1. The sizes table and the 8732 count

        Per map k: side f_k, step (pixels between neighbouring centres), box sizes in pixels and aspect ratios.
        Each location gets two squares (sides min_k and √(min_k·max_k)) and, per ratio r, a box r:1 and 1:r.
        '''),
        code(r'''
        from minissd.config import SSDConfig
        from minissd.priors import default_boxes, default_boxes_per_map, feature_map_boxes, map_slices

        cfg = SSDConfig.ssd300()
        print(cfg.format_table())
        rows = cfg.table()
        priors = to_numpy(default_boxes(cfg))  # (P, 4) centre form (cx, cy, w, h), normalized to [0, 1]
        print()
        print(" + ".join(f"{r['size']}²·{r['boxes_per_location']}" for r in rows),
              "=", " + ".join(str(r["boxes"]) for r in rows), "=", priors.shape[0])
        '''),
        md(r'''
        The boxes of one location, here on conv9_2 (order fixed by `DESIGN.md`: the two squares, then each
        ratio and its inverse):
        '''),
        code(r'''
        k = cfg.source_names.index("conv9_2")
        r = rows[k]
        one_map = to_numpy(feature_map_boxes(r["size"], r["step"], r["min_size"], r["max_size"],
                                             r["aspect_ratios"], cfg.input_size))  # (f, f, A, 4)
        names = ["1", "1'"] + [n for a in r["aspect_ratios"] for n in (f"{a:g}", f"1/{a:g}")]
        print(f"{r['source']}: {r['size']}x{r['size']} map, step {r['step']:g} px; boxes at row 0, column 0:")
        for name, (cx, cy, w, h) in zip(names, one_map[0, 0] * cfg.input_size):
            print(f"  ratio {name:>3s}: centre ({cx:5.1f}, {cy:5.1f}) px, {w:6.1f} x {h:6.1f} px, "
                  f"w/h = {w / h:.2f}, area = {w * h:7.0f} px²")
        '''),
        md(r'''
        ## 2. The default boxes of every map, on a photograph

        `viz.plot_default_boxes` draws each map's grid of cells (one cell per location), the centres of all its
        locations, and the boxes of the centre location. The photograph is the sample image that ships with
        matplotlib, cropped square and resized to 300x300.
        '''),
        code(r'''
        import matplotlib.cbook as cbook

        from minissd.data import resize_image
        from minissd.viz import MAP_COLOURS, draw_boxes, plot_default_boxes

        with cbook.get_sample_data("grace_hopper.jpg") as fh:
            photo = plt.imread(fh)
        h, w = photo.shape[:2]
        side = min(h, w)
        square = photo[(h - side) // 2:(h - side) // 2 + side, (w - side) // 2:(w - side) // 2 + side]
        photo300 = np.clip(np.rint(resize_image(square, cfg.input_size)), 0, 255).astype(np.uint8)
        print(f"photo {photo.shape} -> {photo300.shape}")
        with plt.rc_context({"figure.dpi": 60}):                 # a photo: keep the stored PNG small
            fig = plot_default_boxes(cfg, image=photo300, locations="all")
            fig.set_size_inches(fig.get_size_inches() * [1, 1.1])  # room for the second row's titles
            fig.tight_layout()
            plt.show()
        '''),
        md(r'''
        The same for `SSDConfig.mini()`, the 160 px detector this project trains on a CPU, on a `ShapesDataset`
        image:
        '''),
        code(r'''
        from minissd.data import ShapesDataset

        mini = SSDConfig.mini()
        print(mini.format_table())
        shapes = ShapesDataset(1, image_size=mini.input_size, seed=0)
        image, boxes, labels = shapes[0]
        with plt.rc_context({"figure.dpi": 60}):
            fig = plot_default_boxes(mini, image=image, locations="all")
            fig.set_size_inches(fig.get_size_inches() * [1, 1.1])
            fig.tight_layout()
            plt.show()
        '''),
        md(r'''
        ## 3. The paper's scale rule next to the released sizes

        The paper spreads the scales of m maps evenly: s_k = s_min + (s_max − s_min)(k − 1)/(m − 1), with
        s_min = 0.2 and s_max = 0.9, so min_k = s_k · 300. The released SSD300 uses explicit sizes instead, with
        a smaller first scale for conv4_3. `cfg.replace(min_sizes=None, max_sizes=None)` gives the rule's
        version of the same network.
        '''),
        code(r'''
        paper = cfg.replace(min_sizes=None, max_sizes=None, name="paper scale rule")
        pmin, pmax = paper.resolved_sizes()
        rmin, rmax = cfg.resolved_sizes()
        m = len(cfg.feature_maps)
        print(f"s_min = {paper.s_min}, s_max = {paper.s_max}, m = {m} maps")
        print(f"{'map':9s} {'s_k':>5s} | {'rule: min':>9s} {'sqrt(min·max)':>13s} | {'released: min':>13s} "
              f"{'sqrt(min·max)':>13s} {'scale':>6s}")
        for k, name in enumerate(cfg.source_names):
            print(f"{name:9s} {pmin[k] / paper.input_size:5.2f} | {pmin[k]:9.0f} {np.sqrt(pmin[k] * pmax[k]):13.1f} | "
                  f"{rmin[k]:13.0f} {np.sqrt(rmin[k] * rmax[k]):13.1f} {rmin[k] / cfg.input_size:6.2f}")
        print(f"default boxes: rule {paper.num_priors}, released {cfg.num_priors} (same count, other sizes)")
        '''),
        code(r'''
        fig, axes = plt.subplots(1, 3, figsize=(12, 3.8), gridspec_kw={"width_ratios": [1.3, 1, 1]}, dpi=60)
        ax = axes[0]
        x = np.arange(m)
        ax.plot(x, pmin, "o-", label="paper rule: min_k = s_k · 300")
        ax.plot(x, rmin, "s-", label="released min_sizes")
        ax.plot(x, np.sqrt(np.multiply(pmin, pmax)), "o:", color="C0", alpha=0.6, label="rule: √(min·max)")
        ax.plot(x, np.sqrt(np.multiply(rmin, rmax)), "s:", color="C1", alpha=0.6, label="released: √(min·max)")
        ax.set_xticks(x, cfg.source_names, rotation=30, fontsize=8)
        ax.set_ylabel("square box side (px of 300)")
        ax.legend(fontsize=7)
        ax.set_title("box size per feature map", fontsize=10)
        for ax, (title, mins) in zip(axes[1:], [("paper rule", pmin), ("released", rmin)]):
            ax.imshow(photo300)
            for k, s in enumerate(mins):  # the min square of every map, centred in the image
                b = np.array([[0.5 - s / 600, 0.5 - s / 600, 0.5 + s / 600, 0.5 + s / 600]])
                draw_boxes(ax, b, color=MAP_COLOURS[k], linewidth=2, show_text=False)
            ax.set_axis_off()
            ax.set_title(f"{title}: min square of each map", fontsize=10)
        fig.tight_layout()
        plt.show()
        '''),
        md(r'''
        ## 4. Large maps for small objects, small maps for large objects

        A default box can match an object only if their IoU is high, and IoU is high only when the two have a
        similar size. Put square objects of many sizes at random positions and ask each map for its best IoU
        (`priors.best_overlaps`): each map's curve peaks near its own box size.
        '''),
        code(r'''
        from minissd.priors import best_overlaps

        rng = np.random.default_rng(0)
        sides = np.geomspace(0.03, 1.0, 16 if FAST else 32)     # object side, fraction of the image
        trials = 20 if FAST else 100                              # random positions per size
        per_map = [to_numpy(p) for p in default_boxes_per_map(cfg)]
        mean_best = np.zeros((m, len(sides)))
        for i, s in enumerate(sides):
            c = rng.uniform(s / 2, 1 - s / 2, size=(trials, 2))
            gt = np.concatenate([c - s / 2, c + s / 2], axis=1).astype(np.float32)
            for k, pk in enumerate(per_map):
                mean_best[k, i] = best_overlaps(gt, pk).mean()

        fig, ax = plt.subplots(figsize=(7, 3.6))
        for k, name in enumerate(cfg.source_names):
            ax.semilogx(sides * cfg.input_size, mean_best[k], "o-", ms=3, color=MAP_COLOURS[k],
                        label=f"{name} ({cfg.feature_maps[k]}x{cfg.feature_maps[k]})")
        ax.axhline(0.5, color="grey", ls="--", lw=0.8)
        ax.set_xlabel("object side (px of 300, square objects at random positions)")
        ax.set_ylabel("mean best IoU on this map")
        ax.set_title("SSD300: which map fits which object size", fontsize=10)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        fig.tight_layout()
        plt.show()
        for k, name in enumerate(cfg.source_names):
            i = int(mean_best[k].argmax())
            print(f"{name:9s} best for objects of about {sides[i] * cfg.input_size:5.0f} px "
                  f"(mean best IoU {mean_best[k, i]:.2f}); its squares: {rmin[k]:.0f} and "
                  f"{np.sqrt(rmin[k] * rmax[k]):.0f} px")
        '''),
        md(r'''
        The same question on real training data: `ShapesDataset` objects (mixed scenes, 160 px) against the mini
        detector's maps. For every object, which map holds its best default box?
        '''),
        code(r'''
        data = ShapesDataset(150 if FAST else 600, image_size=mini.input_size, scene="mixed", seed=1)
        gts = np.concatenate([data[i][1] for i in range(len(data))])                      # (G, 4)
        size_px = np.sqrt((gts[:, 2] - gts[:, 0]) * (gts[:, 3] - gts[:, 1])) * mini.input_size
        best = np.stack([best_overlaps(gts, to_numpy(p)) for p in default_boxes_per_map(mini)], axis=1)  # (G, m)
        best_map = best.argmax(axis=1)

        edges = [0, 12, 24, 48, 96, mini.input_size]
        bins = [f"{lo}-{hi}" for lo, hi in zip(edges, edges[1:])]
        table = np.zeros((len(bins), len(mini.feature_maps)), int)
        for b, (lo, hi) in enumerate(zip(edges, edges[1:])):
            table[b] = np.bincount(best_map[(size_px >= lo) & (size_px < hi)], minlength=len(mini.feature_maps))

        fig, ax = plt.subplots(figsize=(7, 3.4))
        bottom = np.zeros(len(bins))
        for k, name in enumerate(mini.source_names):
            share = table[:, k] / np.maximum(table.sum(1), 1)
            ax.bar(bins, share, bottom=bottom, color=MAP_COLOURS[k], label=f"{name} ({mini.feature_maps[k]}x{mini.feature_maps[k]})")
            bottom += share
        ax.set_xlabel("object size √(w·h), px of 160")
        ax.set_ylabel("share of objects")
        ax.set_title(f"map of each object's best default box ({len(gts)} objects)", fontsize=10)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        fig.tight_layout()
        plt.show()
        print(f"{'size px':>8s} " + " ".join(f"{n:>9s}" for n in mini.source_names) + "   best IoU >= 0.5")
        for b, name in enumerate(bins):
            sel = (size_px >= edges[b]) & (size_px < edges[b + 1])
            print(f"{name:>8s} " + " ".join(f"{v:9d}" for v in table[b]) +
                  f"   {(best[sel].max(1) >= 0.5).mean():.0%}")
        '''),
        md(r'''
        Small objects find their best box on conv4_3, the largest map; the largest objects on the last, 1x1 map.
        The smallest objects rarely reach IoU 0.5 with any default box: the 8 px step of the first map is too
        coarse for them. Matching (notebook 05) still gives each of them its best box.

        ## Summary

        * SSD300: six maps, 4 or 6 boxes per location, 8732 default boxes (`SSDConfig.ssd300().num_priors`).
        * Box sizes grow from map to map, either by the paper's scale rule (0.2 to 0.9) or as released (a smaller
          first scale); `SSDConfig.table()` lists both.
        * A box size suits an object size: the early, large maps serve small objects and the late, small maps
          large objects. Next: matching ground truth to default boxes (05).
        '''),
    ]


# ============================================================================================ 05 matching
def nb_05() -> list:
    return [
        md(r'''
        # 05 · Matching: which default boxes learn which object

        Training needs a target for every default box: a class (0 = background) and, for the matched ones
        (**positives**), the object's box as offsets. The paper matches in two steps:

        1. **bipartite**: every ground-truth object takes the default box it overlaps most (highest IoU);
        2. **threshold**: every other default box with IoU ≥ 0.5 with some object is matched to that object.

        This notebook shows the IoU that drives it, each step, which feature map each object ends up on, and the
        encoding of the targets. Code: `minissd/matching.py` and `minissd/boxes.py`.
        '''),
        code(SETUP),
        code(r'''
        from minissd.boxes import center_to_corners, corners_to_center, decode, encode, iou
        from minissd.config import SSDConfig
        from minissd.data import ShapesDataset
        from minissd.matching import match, match_priors
        from minissd.priors import best_overlaps, default_boxes, map_slices
        from minissd.viz import MAP_COLOURS, draw_boxes, iou_heatmap, plot_matching, show_image

        cfg = SSDConfig.mini()                                      # the detector trained in notebook 07
        priors = to_numpy(default_boxes(cfg))                       # (P, 4) centre form
        corners = to_numpy(center_to_corners(priors))               # (P, 4) corners, for drawing and IoU
        slices = map_slices(cfg)
        names = cfg.source_names
        ds = ShapesDataset(60, image_size=cfg.input_size, scene="mixed", seed=1)

        # the first image with a large object, a small one (8-20 px) and one without any IoU >= 0.5 default box
        for index in range(len(ds)):
            image, boxes, labels = ds[index]
            side = np.sqrt((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])) * cfg.input_size  # px
            best = best_overlaps(boxes, priors)
            small_ok = (side >= 8) & (side <= 20) & (best >= 0.5)
            if len(boxes) >= 3 and small_ok.any() and side.max() > 70 and (best < 0.5).any():
                break
        small, large = int(np.argmax(np.where(small_ok, best, -1))), int(side.argmax())
        print(f"image {index}: {len(boxes)} objects, sizes √(w·h) = {np.round(side).astype(int)} px, "
              f"best IoU {np.round(best, 2)}")
        '''),
        md(r'''
        ## 1. IoU with every default box, map by map

        `viz.iou_heatmap(box, cfg, k)` gives, for each location of map k, the best IoU among that location's
        default boxes. For the small object only the large maps have a high value; for the large object only
        the small maps.
        '''),
        code(r'''
        fig, axes = plt.subplots(2, len(names) + 1, figsize=(14, 5.6))
        for row, (obj, what) in enumerate([(small, "small"), (large, "large")]):
            ax = axes[row, 0]
            show_image(ax, image, f"{what} object: {ds.class_names[labels[obj]]}")
            draw_boxes(ax, boxes[obj:obj + 1], color="white", linewidth=2, show_text=False)
            for k, name in enumerate(names):
                heat = iou_heatmap(boxes[obj], cfg, k)                      # (f, f)
                ax = axes[row, k + 1]
                ax.imshow(heat, vmin=0, vmax=1, cmap="viridis")
                f = cfg.feature_maps[k]
                draw_boxes(ax, boxes[obj:obj + 1], image_size=(f, f), color="white", linewidth=1, show_text=False)
                ax.set_title(f"{name} {f}x{f}: max {heat.max():.2f}", fontsize=9)
                ax.set_xticks([])
                ax.set_yticks([])
        fig.suptitle("best IoU per location with one ground-truth box (0 dark, 1 yellow)", fontsize=10)
        fig.tight_layout()
        plt.show()
        '''),
        md(r'''
        ## 2. The bipartite step and the threshold step

        `match_priors(gt_boxes, priors, iou_threshold)` returns, per default box, the index of its object (or −1).
        With `iou_threshold=1.0` no default box passes the threshold step (an IoU of 1 needs an exact copy),
        so only the bipartite step is left. The threshold step alone is the IoU matrix compared with 0.5.
        '''),
        code(r'''
        overlaps = to_numpy(iou(boxes, corners))                            # (G, P)
        step1, _ = match_priors(boxes, priors, iou_threshold=1.0)          # bipartite only
        step2 = np.where(overlaps.max(0) >= 0.5, overlaps.argmax(0), -1)    # threshold only
        both, _ = match_priors(boxes, priors)                               # the paper's rule (0.5)

        print(f"{'object':>10s} {'size px':>8s} {'best IoU':>9s} {'step 1':>7s} {'step 2':>7s} {'both':>5s}")
        for g in range(len(boxes)):
            print(f"{ds.class_names[labels[g]]:>10s} {side[g]:8.0f} {overlaps[g].max():9.2f} "
                  f"{(step1 == g).sum():7d} {(step2 == g).sum():7d} {(both == g).sum():5d}")
        print(f"positives: step 1 {(step1 >= 0).sum()}, step 2 {(step2 >= 0).sum()}, both {(both >= 0).sum()} "
              f"of {len(priors)} default boxes")
        '''),
        code(r'''
        def draw_matches(ax, gt_index, title):
            show_image(ax, image, title)
            for k, sl in enumerate(slices):
                idx = np.nonzero(gt_index[sl] >= 0)[0] + sl.start
                draw_boxes(ax, corners[idx], color=MAP_COLOURS[k], linewidth=0.8, show_text=False)
            draw_boxes(ax, boxes, color="white", linewidth=1.5, linestyle="--", show_text=False)


        fig, axes = plt.subplots(1, 3, figsize=(12, 4.3), dpi=60)
        draw_matches(axes[0], step1, f"step 1, bipartite: {(step1 >= 0).sum()} positives")
        draw_matches(axes[1], step2, f"step 2, IoU >= 0.5: {(step2 >= 0).sum()} positives")
        plot_matching(image, boxes, labels, cfg, class_names=ds.class_names, ax=axes[2])
        fig.tight_layout()
        plt.show()
        '''),
        md(r'''
        Step 1 alone gives each object exactly one positive, too few to learn from. Step 2 alone gives more, but
        an object without any IoU ≥ 0.5 box (best IoU below 0.5 in the table) gets none there and would never be
        trained on.
        Together (right, `viz.plot_matching`, colours by feature map): every object has positives, most of them
        several.

        ## 3. Which feature map each object ends up on

        Over many images, count each object's positives per map, by object size.
        '''),
        code(r'''
        many = ShapesDataset(100 if FAST else 400, image_size=cfg.input_size, scene="mixed", seed=2)
        sizes, per_map, targets = [], [], []
        for i in range(len(many)):
            _, b, _ = many[i]
            gi, _ = match_priors(b, priors)
            counts = np.stack([np.bincount(gi[sl][gi[sl] >= 0], minlength=len(b)) for sl in slices], axis=1)
            sizes.append(np.sqrt((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])) * cfg.input_size)
            per_map.append(counts)                                             # (G, maps)
            pos = gi >= 0
            targets.append(encode(b[gi[pos]], priors[pos]))                   # offsets of the positives
        sizes, per_map, targets = np.concatenate(sizes), np.concatenate(per_map), np.concatenate(targets)

        edges = [0, 12, 24, 48, 96, cfg.input_size]
        bins = [f"{lo}-{hi}" for lo, hi in zip(edges, edges[1:])]
        share = np.zeros((len(bins), len(names)))
        print(f"{len(sizes)} objects in {len(many)} images; positives per object by size and map:")
        print(f"{'size px':>8s} {'objects':>8s} " + " ".join(f"{n:>9s}" for n in names) + f" {'mean pos':>9s}")
        for b_, (lo, hi) in enumerate(zip(edges, edges[1:])):
            sel = (sizes >= lo) & (sizes < hi)
            tot = per_map[sel].sum(0)
            share[b_] = tot / max(tot.sum(), 1)
            print(f"{bins[b_]:>8s} {sel.sum():8d} " + " ".join(f"{v:9d}" for v in tot) +
                  f" {per_map[sel].sum(1).mean():9.1f}")

        fig, ax = plt.subplots(figsize=(7, 3.4))
        bottom = np.zeros(len(bins))
        for k, name in enumerate(names):
            ax.bar(bins, share[:, k], bottom=bottom, color=MAP_COLOURS[k],
                   label=f"{name} ({cfg.feature_maps[k]}x{cfg.feature_maps[k]})")
            bottom += share[:, k]
        ax.set_xlabel("object size √(w·h), px of 160")
        ax.set_ylabel("share of its positives")
        ax.set_title("where the positives of each object size live", fontsize=10)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        fig.tight_layout()
        plt.show()
        '''),
        md(r'''
        Small objects are matched on the large maps (conv4_3, fc7), large objects on the small ones. A flock of
        small birds therefore lives almost entirely on the first map:
        '''),
        code(r'''
        flock = ShapesDataset(10 if FAST else 40, image_size=cfg.input_size, scene="flock", seed=2)
        counts, n_obj = np.zeros(len(names), int), 0
        for i in range(len(flock)):
            _, b, _ = flock[i]
            gi, _ = match_priors(b, priors)
            counts += np.array([(gi[sl] >= 0).sum() for sl in slices])
            n_obj += len(b)
        print(f"flock scenes: {n_obj} objects, {counts.sum()} positives; share per map: " +
              ", ".join(f"{n} {c / counts.sum():.0%}" for n, c in zip(names, counts)))
        '''),
        md(r'''
        ## 4. Encoding the targets, and decoding them back

        A positive's target is its object's box as **offsets** from the default box d (paper, eq. 2), divided by
        the variances 0.1 and 0.2: l_cx = (g_cx − d_cx)/(0.1·d_w), l_w = log(g_w/d_w)/0.2 (same for y, h).
        `match` returns these offsets for all P default boxes (zeros for background) and the class targets.
        '''),
        code(r'''
        loc_t, conf_t = match(boxes, labels, priors)                       # (P, 4), (P,)
        gi, _ = match_priors(boxes, priors)
        pos = np.nonzero(conf_t > 0)[0]
        p = pos[int(np.argmax(overlaps.max(0)[pos]))]                      # the best-overlapping positive
        d, g = priors[p], corners_to_center(boxes[gi[p]])
        print(f"default box {p} ({names[next(k for k, sl in enumerate(slices) if sl.start <= p < sl.stop)]}): "
              f"d = {np.round(d, 4)} (cx, cy, w, h)")
        print(f"its object: g = {np.round(g, 4)}, class {ds.class_names[conf_t[p]]}")
        hand = [(g[0] - d[0]) / (0.1 * d[2]), (g[1] - d[1]) / (0.1 * d[3]),
                np.log(g[2] / d[2]) / 0.2, np.log(g[3] / d[3]) / 0.2]
        print(f"by hand:  l = {np.round(hand, 4)}")
        print(f"match():  l = {np.round(loc_t[p], 4)}")

        back = decode(loc_t[pos], priors[pos])                             # corners again
        err = np.abs(back - boxes[gi[pos]]).max()
        print(f"decode(encode(.)) over all {len(pos)} positives: largest error {err:.1e} (float32)")
        print(f"decode of zero offsets is the default box itself: "
              f"{np.allclose(decode(np.zeros((1, 4), np.float32), priors[p:p + 1]), corners[p:p + 1])}")
        '''),
        md(r'''
        Why the variances: they scale the offsets of matched boxes to about unit size, the range where the
        smooth L1 loss (notebook 06) is quadratic. The offsets of all positives of section 3:
        '''),
        code(r'''
        fig, axes = plt.subplots(1, 4, figsize=(12, 2.8), sharey=True)
        for j, (ax, label) in enumerate(zip(axes, ["l_cx", "l_cy", "l_w", "l_h"])):
            ax.hist(targets[:, j], bins=40, color="C0")
            ax.set_title(f"{label}: std {targets[:, j].std():.2f}", fontsize=10)
        fig.suptitle(f"encoded targets of {len(targets)} positives, variances (0.1, 0.2)", fontsize=10)
        fig.tight_layout()
        plt.show()
        unscaled = targets * np.array([0.1, 0.1, 0.2, 0.2])     # what variances (1, 1) would give
        print("with variances (1, 1) the same offsets would have std", np.round(unscaled.std(0), 3))
        '''),
        md(r'''
        ## Summary

        * IoU decides everything: a default box is a candidate for an object only if their sizes and positions
          agree, so small objects meet the boxes of the large maps.
        * Bipartite step: every object gets its best default box. Threshold step: every box with IoU ≥ 0.5 joins.
        * `match` turns the assignment into targets: class per box, offsets per positive, and `decode` inverts
          `encode` exactly. Next: the loss that trains on these targets (06).
        '''),
    ]


# ============================================================================================ 06 multibox loss
def nb_06() -> list:
    return [
        md(r'''
        # 06 · The MultiBox loss: smooth L1, cross-entropy and hard negative mining

        SSD's training loss (paper, eq. 1), for N matched default boxes (positives):

        L = (1/N) (L_conf + α L_loc), α = 1

        * L_loc: **smooth L1** between predicted and target offsets, on the positives only;
        * L_conf: **softmax cross-entropy** on the positives (their class) and on the **hard negatives**
          (background), at most 3 negatives per positive.

        Code: `minissd/loss.py` (`MultiBoxLoss`, `smooth_l1`, `hard_negative_mining`).
        '''),
        code(SETUP),
        md(r'''
        ## 1. Smooth L1 vs L2

        Smooth L1 is 0.5x² for |x| < 1 and |x| − 0.5 beyond: quadratic near the target, linear far away, so its
        gradient never exceeds 1. Both curves and their gradients, computed by `backward()`:
        '''),
        code(r'''
        from minissd import Tensor
        from minissd.loss import smooth_l1

        xs = np.linspace(-3, 3, 601)
        x1 = Tensor(xs, requires_grad=True)
        smooth_l1(x1).sum().backward()
        x2 = Tensor(xs, requires_grad=True)
        (x2 * x2 * 0.5).sum().backward()
        sl1 = to_numpy(smooth_l1(Tensor(xs)).data)

        fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
        axes[0].plot(xs, sl1, label="smooth L1")
        axes[0].plot(xs, 0.5 * xs ** 2, "--", label="L2: 0.5 x²")
        axes[0].set_title("loss", fontsize=10)
        axes[1].plot(xs, to_numpy(x1.grad), label="smooth L1")
        axes[1].plot(xs, to_numpy(x2.grad), "--", label="L2")
        axes[1].set_title("gradient (from backward())", fontsize=10)
        for ax in axes:
            ax.set_xlabel("x = prediction − target")
            ax.legend(fontsize=8)
            ax.grid(alpha=0.3)
        fig.tight_layout()
        plt.show()
        '''),
        md(r'''
        Why it matters: one badly matched box (error 10) among good ones. With L2 its gradient dominates the
        update; with smooth L1 it is capped at 1.
        '''),
        code(r'''
        errors = np.array([0.1, -0.2, 0.3, -0.1, 10.0])
        for name, fn in [("L2", lambda t: t * t * 0.5), ("smooth L1", smooth_l1)]:
            t = Tensor(errors, requires_grad=True)
            fn(t).sum().backward()
            g = to_numpy(t.grad)
            print(f"{name:9s}: gradient {np.round(g, 2)}, the outlier's share of |gradient|: "
                  f"{abs(g[-1]) / np.abs(g).sum():.0%}")
        '''),
        md(r'''
        ## 2. Softmax cross-entropy

        Each default box gets C scores (logits); softmax turns them into probabilities and the loss is
        −log p(target). Its gradient with respect to the logits is p − onehot(target).
        '''),
        code(r'''
        import minissd.nn.functional as F
        from minissd.data import ShapesDataset

        classes = ShapesDataset.class_names                     # background first
        logits = Tensor(np.array([[2.0, 0.5, -1.0, 0.0, 0.3, -0.5, 1.0, 0.2]]), requires_grad=True)
        target = np.array([2])                                  # "square"
        loss = F.cross_entropy(logits, target)
        loss.backward()
        p = to_numpy(logits.softmax(axis=-1).data)[0]
        print("classes:       ", classes)
        print("softmax p:     ", np.round(p, 3))
        print(f"loss = -log p[{classes[2]}] = {-np.log(p[2]):.4f};  F.cross_entropy: {loss.item():.4f}")
        print("gradient:      ", np.round(to_numpy(logits.grad)[0], 3))
        print("p - onehot:    ", np.round(p - np.eye(len(p))[2], 3))

        margins = np.linspace(-6, 6, 121)    # target logit minus every other logit (all others equal)
        C = len(classes)
        ce = [F.cross_entropy(Tensor(np.array([[m_] + [0.0] * (C - 1)])), np.array([0])).item() for m_ in margins]
        fig, ax = plt.subplots(figsize=(5, 3))
        ax.plot(margins, ce)
        ax.axhline(np.log(C), color="grey", ls=":", lw=1)
        ax.text(-6, np.log(C) + 0.1, f"log C = {np.log(C):.2f} (all equal)", fontsize=8)
        ax.set_xlabel("target logit − other logits")
        ax.set_ylabel("cross-entropy")
        ax.set_title(f"cross-entropy over C = {C} classes", fontsize=10)
        plt.show()
        '''),
        md(r'''
        ## 3. Hard negative mining, on one image

        After matching, almost every default box is background. Counting them all would drown the positives,
        and most are easy. So per image the negatives are **ranked by their background loss −log p(background)**
        and only the top 3 × (number of positives) are kept. Here with an untrained `ssd_mini` (its scores are
        arbitrary, which makes the ranking easy to see) on one `ShapesDataset` image.
        '''),
        code(r'''
        from minissd.data import eval_transform
        from minissd.loss import MultiBoxLoss
        from minissd.matching import match_batch
        from minissd.models import ssd_mini
        from minissd.priors import map_slices
        from minissd.viz import MAP_COLOURS, draw_boxes, show_image

        minissd.seed(0)
        model = ssd_mini(num_classes=ShapesDataset.num_classes)
        cfg = model.config
        names, slices = cfg.source_names, map_slices(cfg)
        priors = to_numpy(model.default_boxes)
        corners = np.concatenate([priors[:, :2] - priors[:, 2:] / 2, priors[:, :2] + priors[:, 2:] / 2], axis=1)

        ds = ShapesDataset(8, image_size=cfg.input_size, scene="mixed", seed=4)
        index = int(np.argmax([len(ds[i][1]) for i in range(len(ds))]))   # the busiest of 8 images
        image, boxes, labels = ds[index]
        x, _, _ = eval_transform(cfg.input_size)(image, boxes, labels)   # (3, 160, 160) normalized
        model.eval()
        t0 = time.perf_counter()
        with minissd.no_grad():
            loc, conf = model(x[None])                                    # (1, P, 4), (1, P, C)
        print(f"forward of one image: {time.perf_counter() - t0:.2f} s; loc {loc.shape}, conf {conf.shape}")

        loc_t, conf_t = match_batch([boxes], [labels], model.default_boxes)
        criterion = MultiBoxLoss(neg_pos_ratio=3)
        loss_loc, loss_conf = criterion(loc, conf, loc_t, conf_t)
        positives = to_numpy(criterion.last_positives)[0]
        negatives = to_numpy(criterion.last_negatives)[0]
        bg_loss = -to_numpy(conf.log_softmax(axis=-1).data)[0, :, 0]      # -log p(background) per default box
        P = len(priors)
        print(f"{P} default boxes: {positives.sum()} positives, {negatives.sum()} mined negatives "
              f"(3 x {positives.sum()}), {P - positives.sum() - negatives.sum()} ignored")
        print(f"{'map':9s} {'negatives':>9s} {'mined':>6s} {'mean -log p(bg)':>16s}")
        for n, sl in zip(names, slices):
            neg_k = ~positives[sl]
            print(f"{n:9s} {neg_k.sum():9d} {negatives[sl].sum():6d} {bg_loss[sl][neg_k].mean():16.2f}")
        '''),
        code(r'''
        fig, axes = plt.subplots(1, 3, figsize=(13, 4.3), gridspec_kw={"width_ratios": [1, 1, 1.3]})
        show_image(axes[0], image, f"{positives.sum()} positives (colour: feature map)")
        show_image(axes[1], image, f"{negatives.sum()} mined negatives (colour: feature map)")
        for k, sl in enumerate(slices):
            for ax, mask in [(axes[0], positives), (axes[1], negatives)]:
                idx = np.nonzero(mask[sl])[0] + sl.start
                draw_boxes(ax, corners[idx], color=MAP_COLOURS[k], linewidth=0.8, show_text=False)
        for ax in axes[:2]:
            draw_boxes(ax, boxes, color="white", linewidth=1.5, linestyle="--", show_text=False)

        ax = axes[2]
        neg_sorted = np.sort(bg_loss[~positives])[::-1]
        n_mined = int(negatives.sum())
        ax.plot(np.arange(1, len(neg_sorted) + 1), neg_sorted, color="grey", label="all negatives, hardest first")
        ax.plot(np.arange(1, n_mined + 1), neg_sorted[:n_mined], color="red", lw=3, label="mined (3 per positive)")
        ax.axvline(n_mined, color="red", ls=":", lw=1)
        pos_sorted = np.sort(bg_loss[positives])[::-1]
        ax.plot(np.arange(1, len(pos_sorted) + 1), pos_sorted, "o", ms=3, color="green",
                label="positives (for comparison)")
        ax.set_xscale("log")
        ax.set_xlabel("rank")
        ax.set_ylabel("−log p(background)")
        ax.set_title("why these: the highest background loss", fontsize=10)
        ax.legend(fontsize=8)
        fig.tight_layout()
        plt.show()
        '''),
        md(r'''
        The mined negatives are the boxes where the network is most wrong about "background" (here, untrained,
        the map with the largest scores, as the table shows). Without mining, every negative would enter the
        confidence loss:
        '''),
        code(r'''
        neg_all = bg_loss[~positives].sum()
        neg_mined = bg_loss[negatives].sum()
        pos_part = (loss_conf.item() * max(positives.sum(), 1)) - neg_mined
        print(f"confidence loss, summed: positives {pos_part:.1f}, mined negatives {neg_mined:.1f}, "
              f"all {(~positives).sum()} negatives {neg_all:.1f}")
        print(f"negatives per positive: with mining {negatives.sum() / positives.sum():.0f}, "
              f"without {(~positives).sum() / positives.sum():.0f}")
        print(f"negatives' share of the confidence loss: with mining {neg_mined / (neg_mined + pos_part):.0%}, "
              f"without {neg_all / (neg_all + pos_part):.1%}")
        '''),
        md(r'''
        ## 4. The loss on a batch

        `MultiBoxLoss` returns `(loss_loc, loss_conf)`, each divided by the number of positives in the batch.
        The mining is per image; the gradient reaches only the positives (loc and conf) and the mined negatives
        (conf). A check with leaf tensors in place of the network's output:
        '''),
        code(r'''
        batch = 2 if FAST else 8
        items = [ds[i] for i in range(batch)]
        loc_t, conf_t = match_batch([b for _, b, _ in items], [l for _, _, l in items], model.default_boxes)
        rng = np.random.default_rng(0)
        loc_leaf = Tensor(rng.standard_normal((batch, P, 4)).astype(np.float32), requires_grad=True)
        conf_leaf = Tensor(rng.standard_normal((batch, P, cfg.num_classes)).astype(np.float32), requires_grad=True)
        ll, lc = criterion(loc_leaf, conf_leaf, loc_t, conf_t)
        (ll + lc).backward()
        pos, neg = to_numpy(criterion.last_positives), to_numpy(criterion.last_negatives)
        has_loc_grad = np.abs(to_numpy(loc_leaf.grad)).sum(-1) > 0
        has_conf_grad = np.abs(to_numpy(conf_leaf.grad)).sum(-1) > 0
        for n in range(batch):
            print(f"image {n}: {len(items[n][1])} objects, {pos[n].sum():3d} positives, {neg[n].sum():3d} negatives; "
                  f"boxes with a loc gradient {has_loc_grad[n].sum():3d}, with a conf gradient {has_conf_grad[n].sum():3d}")
        print("loc gradient exactly on the positives:", np.array_equal(has_loc_grad, pos),
              "| conf gradient exactly on positives + mined negatives:", np.array_equal(has_conf_grad, pos | neg))
        '''),
        md(r'''
        And the real thing: a batch through `ssd_mini` in training mode, the two loss terms, and `backward()` into
        every weight.
        '''),
        code(r'''
        x = np.stack([eval_transform(cfg.input_size)(*item)[0] for item in items])   # (N, 3, 160, 160)
        model.train()
        t0 = time.perf_counter()
        loc, conf = model(x)
        loss_loc, loss_conf = criterion(loc, conf, loc_t, conf_t)
        loss = loss_loc + loss_conf
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        n_pos = int(to_numpy(criterion.last_positives).sum())
        print(f"batch of {batch}: {n_pos} positives, {int(to_numpy(criterion.last_negatives).sum())} mined negatives")
        print(f"loss_loc = {loss_loc.item():.3f}, loss_conf = {loss_conf.item():.3f}, L = {loss.item():.3f}")
        n_sel = n_pos + int(to_numpy(criterion.last_negatives).sum())
        print(f"untrained: cross-entropy per selected box {loss_conf.item() * n_pos / n_sel:.2f}, "
              f"vs log C = {np.log(cfg.num_classes):.2f} for uniform scores")
        print(f"forward {t1 - t0:.1f} s, backward {t2 - t1:.1f} s")
        grads = {name: float(np.linalg.norm(to_numpy(p_.grad))) for name, p_ in model.named_parameters()
                 if p_.grad is not None}
        print(f"{len(grads)} of {len(list(model.parameters()))} parameter tensors got a gradient; the largest norms:")
        for name in sorted(grads, key=grads.get, reverse=True)[:5]:
            print(f"  {name:28s} {grads[name]:.3f}")
        '''),
        md(r'''
        ## Summary

        * Smooth L1 regresses the offsets of positives, with a gradient capped at 1 for badly matched boxes.
        * Softmax cross-entropy scores every selected box; its gradient is p − onehot.
        * Hard negative mining keeps, per image, the 3 × positives negatives with the highest background loss:
          at most 3 negatives per positive instead of hundreds, and those are the confusing ones.
        * `MultiBoxLoss` divides both terms by the number of positives. Next: training (07).
        '''),
    ]


NOTEBOOKS = {
    "00_overview": nb_00,
    "01_autograd": nb_01,
    "04_default_boxes": nb_04,
    "05_matching": nb_05,
    "06_multibox_loss": nb_06,
}


def build(name: str) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata = {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"},
    }
    nb.cells = NOTEBOOKS[name]()
    for k, cell in enumerate(nb.cells):
        cell.id = f"{name[:2]}-{k:02d}"  # stable ids: regenerating gives a small diff
    path = HERE / f"{name}.ipynb"
    nbformat.write(nb, path)
    return path


def execute(path: Path) -> float:
    import time

    from nbclient import NotebookClient

    env_fast = os.environ.pop("MINISSD_FAST", None)  # stored outputs use the full setting
    try:
        nb = nbformat.read(path, as_version=4)
        t0 = time.perf_counter()
        NotebookClient(nb, timeout=600, kernel_name="python3", record_timing=False,
                       resources={"metadata": {"path": str(HERE)}}).execute()
        seconds = time.perf_counter() - t0
        nbformat.write(nb, path)
    finally:
        if env_fast is not None:
            os.environ["MINISSD_FAST"] = env_fast
    return seconds


def main(argv: list[str]) -> None:
    run = "--execute" in argv
    wanted = [a for a in argv if not a.startswith("--")]
    names = [n for n in NOTEBOOKS if not wanted or any(n.startswith(w) for w in wanted)]
    for name in names:
        path = build(name)
        if run:
            seconds = execute(path)
            print(f"{path.name}: executed in {seconds:.0f} s, {path.stat().st_size / 1e6:.2f} MB")
        else:
            print(f"{path.name}: written")


if __name__ == "__main__":
    main(sys.argv[1:])
