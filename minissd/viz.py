"""Pictures: boxes on images, default boxes per feature map, matches, YOLO grids, training curves.

Everything takes host or device arrays (moved to the host here) and normalized corner boxes
``(xmin, ymin, xmax, ymax)`` in [0, 1], scaled to the image drawn. Functions draw into a given matplotlib
``Axes`` or return a new ``Figure``; nothing is shown or saved implicitly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy

from . import backend
from .boxes import center_to_corners, iou
from .config import SSDConfig
from .priors import default_boxes, map_slices

# a colour per class index (1..), cycling; class 0 (background) is grey
_PALETTE = ("#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#bfef45",
            "#fabed4", "#469990", "#dcbeff", "#9a6324", "#800000", "#aaffc3", "#808000", "#000075")
MAP_COLOURS = ("#e6194b", "#f58231", "#ffe119", "#3cb44b", "#42d4f4", "#4363d8", "#911eb4")


def class_colour(label: int) -> str:
    return "#888888" if label <= 0 else _PALETTE[(label - 1) % len(_PALETTE)]


def _plt() -> Any:
    import matplotlib.pyplot as plt  # noqa: PLC0415 - keep matplotlib out of `import minissd`

    return plt


def draw_boxes(ax: Any, boxes: Any, labels: Any = None, scores: Any = None,
               class_names: Sequence[str] | None = None, image_size: tuple[int, int] | None = None,
               color: str | None = None, linewidth: float = 1.5, linestyle: str = "-",
               show_text: bool = True) -> None:
    """Draw normalized corner boxes (K, 4) on ``ax``, scaled to ``image_size`` (width, height) in pixels.

    ``image_size`` defaults to the extent of the image already shown on ``ax``. Labels pick colours and
    captions (``class_names[label]``); scores are appended to the captions.
    """
    from matplotlib.patches import Rectangle  # noqa: PLC0415

    boxes = backend.to_numpy(boxes).reshape(-1, 4)
    if image_size is None:
        images = ax.get_images()
        if images:
            h, w = images[0].get_array().shape[:2]
        else:
            w = h = 1
    else:
        w, h = image_size
    labels_np = None if labels is None else backend.to_numpy(labels).reshape(-1)
    scores_np = None if scores is None else backend.to_numpy(scores).reshape(-1)
    for k, (x0, y0, x1, y1) in enumerate(boxes):
        lab = int(labels_np[k]) if labels_np is not None else 0
        col = color or class_colour(lab)
        ax.add_patch(Rectangle((x0 * w - 0.5, y0 * h - 0.5), (x1 - x0) * w, (y1 - y0) * h, fill=False,
                               edgecolor=col, linewidth=linewidth, linestyle=linestyle))
        if show_text and (labels_np is not None or scores_np is not None):
            text = class_names[lab] if class_names is not None and labels_np is not None else (
                str(lab) if labels_np is not None else "")
            if scores_np is not None:
                text = f"{text} {scores_np[k]:.2f}".strip()
            # the caption's background is the class colour even when the outline has a fixed colour
            face = class_colour(lab) if labels_np is not None else col
            ax.text(x0 * w, y0 * h - 1, text, color="white", fontsize=7, va="bottom",
                    bbox={"facecolor": face, "alpha": 0.8, "pad": 1, "edgecolor": "none"})


def show_image(ax: Any, image: Any, title: str | None = None) -> None:
    """Show an (H, W, 3) uint8 image without axes."""
    ax.imshow(backend.to_numpy(image))
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9)


def show_detections(image: Any, boxes: Any, labels: Any, scores: Any = None,
                    class_names: Sequence[str] | None = None, gt_boxes: Any = None, ax: Any = None,
                    title: str | None = None) -> Any:
    """Image with detections (solid) and, if given, ground truth (dashed white). Returns the Axes.

    ``boxes`` are normalized corners (D, 4); they are drawn clipped to the image, because a barely trained
    network decodes boxes far outside it (exp of large offsets) and a saved figure would grow to hold them.
    """
    plt = _plt()
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 4))
    show_image(ax, image, title)
    if gt_boxes is not None:
        draw_boxes(ax, gt_boxes, color="white", linestyle="--", linewidth=1.0, show_text=False)
    boxes = numpy.nan_to_num(numpy.asarray(backend.to_numpy(boxes), dtype=numpy.float64).reshape(-1, 4))
    draw_boxes(ax, numpy.clip(boxes, 0.0, 1.0), labels, scores, class_names)
    return ax


def plot_default_boxes(config: SSDConfig, image: Any = None, locations: str = "centre",
                       max_cols: int = 3) -> Any:
    """One panel per feature map: its grid of cells and the default boxes of one location.

    ``locations="centre"`` draws the boxes of the centre cell only (readable); ``"all"`` draws the centres
    of every location as dots as well. Returns the Figure.
    """
    plt = _plt()
    s = config.input_size
    rows = config.table()
    per_map = [backend.to_numpy(b) for b in _per_map_boxes(config)]
    n = len(rows)
    cols = min(max_cols, n)
    nrows = (n + cols - 1) // cols
    fig, axes = plt.subplots(nrows, cols, figsize=(3.2 * cols, 3.8 * nrows), layout="constrained")
    axes = numpy.atleast_1d(axes).ravel()
    for k, (row, ax) in enumerate(zip(rows, axes)):
        if image is not None:
            ax.imshow(backend.to_numpy(image), extent=(0, s, s, 0))
        else:
            ax.imshow(numpy.full((s, s, 3), 235, numpy.uint8), extent=(0, s, s, 0))
        f = row["size"]
        step = row["step"]
        for t in range(1, f):  # the grid of cells of this map
            ax.axhline(t * step, color="white", linewidth=0.4, alpha=0.8)
            ax.axvline(t * step, color="white", linewidth=0.4, alpha=0.8)
        boxes = per_map[k].reshape(f, f, -1, 4)
        i = j = f // 2
        cell = center_to_corners(boxes[i, j])
        draw_boxes(ax, cell, color=MAP_COLOURS[k % len(MAP_COLOURS)], image_size=(s, s), show_text=False)
        if locations == "all":
            c = boxes[:, :, 0, :2].reshape(-1, 2) * s
            ax.plot(c[:, 0], c[:, 1], ".", color=MAP_COLOURS[k % len(MAP_COLOURS)], markersize=2)
        ax.set_xlim(0, s)
        ax.set_ylim(s, 0)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"{row['source']}: {f}x{f}, {row['boxes_per_location']}/loc, {row['boxes']} boxes",
                     fontsize=8)
    for ax in axes[n:]:
        ax.set_axis_off()
    fig.suptitle(f"{config.name}: {config.num_priors} default boxes", fontsize=10)
    return fig


def _per_map_boxes(config: SSDConfig) -> list[Any]:
    priors = default_boxes(config)
    return [priors[sl] for sl in map_slices(config)]


def plot_matching(image: Any, gt_boxes: Any, gt_labels: Any, config: SSDConfig, iou_threshold: float = 0.5,
                  class_names: Sequence[str] | None = None, ax: Any = None, show_text: bool = True) -> Any:
    """The default boxes matched to each ground truth, coloured by the feature map they belong to.

    Uses :func:`minissd.matching.match_priors`' rule (best box per object, then IoU >= threshold).
    Returns the Axes; its title counts matches per feature map.
    """
    from .matching import match_priors  # noqa: PLC0415

    plt = _plt()
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 5))
    priors = default_boxes(config)
    gt = backend.asarray(numpy.asarray(backend.to_numpy(gt_boxes), numpy.float32).reshape(-1, 4))
    matched_gt, _ = match_priors(gt, priors, iou_threshold)
    matched_gt = backend.to_numpy(matched_gt)
    show_image(ax, image)
    corners = backend.to_numpy(center_to_corners(priors))
    counts = []
    for k, sl in enumerate(map_slices(config)):
        idx = numpy.nonzero(matched_gt[sl] >= 0)[0] + sl.start
        counts.append(len(idx))
        if len(idx):
            draw_boxes(ax, corners[idx], color=MAP_COLOURS[k % len(MAP_COLOURS)], linewidth=0.8, show_text=False)
    draw_boxes(ax, gt, backend.to_numpy(gt_labels), class_names=class_names, color="white", linewidth=2.0,
               show_text=show_text)
    names = config.source_names
    ax.set_title("matched default boxes: " + ", ".join(f"{names[k]} {c}" for k, c in enumerate(counts) if c),
                 fontsize=8)
    return ax


def plot_grid(ax: Any, grid: int, image_size: tuple[int, int], color: str = "white") -> None:
    """Draw a YOLO-style ``grid`` x ``grid`` cell grid over an image of ``image_size`` (width, height)."""
    w, h = image_size
    for t in range(1, grid):
        ax.axvline(t * w / grid - 0.5, color=color, linewidth=0.8)
        ax.axhline(t * h / grid - 0.5, color=color, linewidth=0.8)


def plot_history(history: Any, ax_loss: Any = None, ax_map: Any = None, smooth: int = 10) -> Any:
    """Loss parts against step (moving average over ``smooth`` steps) and mAP against step. Returns the Figure."""
    plt = _plt()
    if ax_loss is None:
        fig, (ax_loss, ax_map) = plt.subplots(1, 2, figsize=(9, 3.2))
    else:
        fig = ax_loss.figure
    steps = history.column("step")
    for name in ("loss_loc", "loss_conf", "loss"):
        if not history.steps:
            break
        y = history.column(name)
        if smooth > 1 and len(y) >= smooth:
            y = numpy.convolve(y, numpy.ones(smooth) / smooth, mode="valid")
            x = steps[smooth - 1 :]
        else:
            x = steps
        ax_loss.plot(x, y, label=name)
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel("loss")
    ax_loss.set_yscale("log")
    ax_loss.legend(fontsize=8)
    if ax_map is not None:
        if history.evals:
            ax_map.plot(history.column("step", evals=True), history.column("map", evals=True), "o-")
        ax_map.set_xlabel("step")
        ax_map.set_ylabel("mAP@0.5")
        ax_map.set_ylim(0, 1)
    fig.tight_layout()
    return fig


def iou_heatmap(gt_box: Any, config: SSDConfig, map_index: int) -> numpy.ndarray:
    """(f, f) best IoU, over the boxes of each location of map ``map_index``, with one ground-truth box."""
    f = config.feature_maps[map_index]
    priors = _per_map_boxes(config)[map_index]
    gt = backend.asarray(numpy.asarray(backend.to_numpy(gt_box), numpy.float32).reshape(1, 4))
    overlaps = backend.to_numpy(iou(gt, center_to_corners(priors)))[0]
    return overlaps.reshape(f, f, -1).max(axis=2)
