"""ShapesDataset: a procedurally generated detection dataset that needs no download.

Every image is drawn on the fly, in pure NumPy, from a generator seeded by ``(seed, index, scene)``:
item ``i`` of a dataset with a given seed is always the same image with the same boxes, whatever was
drawn before, and nothing is stored.

What is in an image
-------------------
* A background: a linear colour gradient in a random direction, smooth low-frequency blotches, and
  clutter that is *not* an object (thin line strokes and soft-edged blobs), plus pixel noise.
* Objects from seven classes, in random vivid colours chosen to stand out from what lies under them::

      class_names = ("background", "circle", "square", "triangle", "diamond", "star", "ring", "bird")

  ``class_names`` includes ``"background"`` at index 0, so ``class_names[label]`` is the name of any label
  and ``num_classes == len(class_names) == 8`` is what a model for this dataset needs
  (``ssd_mini(num_classes=dataset.num_classes)``). Object labels are 1..7, as everywhere in minissd.
* Scene kinds:
    - ``"mixed"``: 1 to 6 objects of all sizes, the longer side of each between about 4% and 80% of
      the image side (log-uniform, so small and large are equally common per octave);
    - ``"flock"``: 10 to 40 small objects (4% to 9% of the side) in one to three tight clusters -- the
      flock of birds that a coarse 7x7 grid (YOLOv1) cannot separate. Each cluster is one class,
      most often ``"bird"``; if a cluster is too crowded to hold its members, birds are added
      elsewhere until there are at least 10.

Honest boxes
------------
Objects are painted one after another, larger first, and a per-pixel instance map records which object
owns each pixel. A box is the tight bounding box of the pixels the object *still owns* at the end, i.e.
of its visible part -- the rule of the PASCAL VOC annotation guidelines ("mark the bounding box of the
visible area of the object, not the estimated total extent"). Overlaps are allowed, but a new object is
only accepted if every object already painted keeps at least half of its pixels visible
(``min_visible=0.5``); otherwise a new position is tried, and after a few failures the object is left out.
So no annotated object is more than half hidden, and no hidden object goes unannotated. Objects are
never cut by the image border (they are placed fully inside).

Box coordinates: pixel ``(row r, column c)`` covers ``[c, c + 1) x [r, r + 1)`` in pixel units, so an
object whose visible pixels span columns ``c0..c1`` and rows ``r0..r1`` (inclusive) has the normalised
box ``(c0 / W, r0 / H, (c1 + 1) / W, (r1 + 1) / H)`` -- always on the pixel grid, which is what makes the
VOC export read back bit-identically (see :mod:`minissd.data.voc`).

Default image size: 160 px, the input size of ``ssd_mini``, so the evaluation transform needs no
resampling; pass ``image_size=300`` for SSD300. Generation takes a few milliseconds per image
(``benchmarks/bench_data.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

#: The seed of the held-out scenes that evaluation uses (``minissd evaluate``, notebooks, benchmarks); training
#: draws its scenes with seeds below it, so the two never share an image.
EVAL_SEED = 1000

SHAPE_CLASS_NAMES: tuple[str, ...] = (
    "background",
    "circle",
    "square",
    "triangle",
    "diamond",
    "star",
    "ring",
    "bird",
)
_BIRD = SHAPE_CLASS_NAMES.index("bird")
_SCENES = ("mixed", "flock")

# Polygons in unit coordinates (u right, v down, the shape filling [-1, 1]^2 in both directions).
_STAR = np.array(
    [
        (r * math.cos(-math.pi / 2 + k * math.pi / 5), r * math.sin(-math.pi / 2 + k * math.pi / 5))
        for k, r in zip(range(10), [1.0, 0.45] * 5)
    ]
)
# A thick chevron, wings up: the silhouette of a bird seen from afar.
_BIRD_POLY = np.array([(-1.0, -1.0), (0.0, 0.2), (1.0, -1.0), (1.0, -0.4), (0.0, 1.0), (-1.0, -0.4)])
_TRIANGLE = np.array([(0.0, -1.0), (1.0, 1.0), (-1.0, 1.0)])
_RING_INNER2 = 0.55**2  # a ring is the unit disc minus a disc of radius 0.55


@dataclass
class ShapesSample:
    """Everything drawn for one item: the contract tuple plus what the pictures need.

    Attributes:
        image: (H, W, 3) uint8 RGB.
        boxes: (G, 4) float32 corners (xmin, ymin, xmax, ymax) normalised to [0, 1].
        labels: (G,) int64 in 1..num_classes-1.
        instance_map: (H, W) int32, the index (into boxes) of the object that owns each pixel, -1 for none.
        visible_fraction: (G,) float32, visible pixels / painted pixels of each object (>= min_visible).
    """

    image: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray
    instance_map: np.ndarray
    visible_fraction: np.ndarray


def _polygon_mask(u: np.ndarray, v: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """Even-odd point-in-polygon test for every point (u, v); poly is (K, 2). Vectorised over points."""
    inside = np.zeros(u.shape, dtype=bool)
    x1, y1 = poly[-1]
    for x2, y2 in poly:
        # The edge crosses the horizontal line through the point, and the crossing is to its right.
        crosses = (y1 > v) != (y2 > v)
        if y2 != y1:
            x_cross = x1 + (v - y1) * ((x2 - x1) / (y2 - y1))
            inside ^= crosses & (u < x_cross)
        x1, y1 = x2, y2
    return inside


def _unit_mask(label: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Mask of shape ``label`` at unit coordinates (u, v)."""
    name = SHAPE_CLASS_NAMES[label]
    if name == "circle":
        return u * u + v * v <= 1.0
    if name == "ring":
        r2 = u * u + v * v
        return (r2 <= 1.0) & (r2 >= _RING_INNER2)
    if name == "square":
        return (np.abs(u) <= 1.0) & (np.abs(v) <= 1.0)
    if name == "diamond":
        return np.abs(u) + np.abs(v) <= 1.0
    if name == "triangle":
        return _polygon_mask(u, v, _TRIANGLE)
    if name == "star":
        return _polygon_mask(u, v, _STAR)
    if name == "bird":
        return _polygon_mask(u, v, _BIRD_POLY)
    raise ValueError(f"unknown shape label {label}")


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """(size, size) smooth noise in about [-1, 1]: a random (cells+1)^2 grid, bilinearly upsampled."""
    grid = rng.uniform(-1.0, 1.0, (cells + 1, cells + 1))
    t = np.linspace(0.0, cells, size)
    i0 = np.minimum(t.astype(np.intp), cells - 1)
    f = t - i0
    rows = grid[i0] * (1 - f)[:, None] + grid[i0 + 1] * f[:, None]  # (size, cells+1)
    return rows[:, i0] * (1 - f)[None, :] + rows[:, i0 + 1] * f[None, :]


class ShapesDataset:
    """Synthetic shapes-and-flocks detection dataset, generated on the fly and deterministic per seed.

    Args:
        num_images: number of items (``len(dataset)``).
        image_size: side S of the square images in pixels (default 160, ssd_mini's input size).
        scene: ``"mixed"`` (1-6 objects of all sizes) or ``"flock"`` (10-40 small objects in clusters).
        seed: item ``i`` is generated from ``numpy.random.default_rng([seed, i, scene])`` (scene 0 or 1).
        min_visible: an object is only kept in the scene if at least this fraction of its pixels stays
            visible once all later objects are painted (see the module docstring).

    ``dataset[i]`` -> ``(image (S, S, 3) uint8, boxes (G, 4) float32 normalised corners, labels (G,) int64)``.
    ``dataset.render(i)`` returns a :class:`ShapesSample` with the instance map as well.
    """

    class_names: tuple[str, ...] = SHAPE_CLASS_NAMES
    num_classes: int = len(SHAPE_CLASS_NAMES)

    def __init__(
        self,
        num_images: int,
        image_size: int = 160,
        scene: str = "mixed",
        seed: int = 0,
        min_visible: float = 0.5,
    ) -> None:
        if not isinstance(num_images, (int, np.integer)) or num_images < 0:
            raise ValueError(f"ShapesDataset(num_images): expected an integer >= 0, got {num_images!r}")
        if not isinstance(image_size, (int, np.integer)) or image_size < 32:
            raise ValueError(
                f"ShapesDataset(image_size): expected an integer >= 32 pixels, got {image_size!r}"
            )
        if scene not in ("mixed", "flock"):
            raise ValueError(f"ShapesDataset(scene): expected 'mixed' or 'flock', got {scene!r}")
        if not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"ShapesDataset(seed): expected an integer >= 0, got {seed!r}")
        if not 0.0 < min_visible <= 1.0:
            raise ValueError(
                f"ShapesDataset(min_visible): expected a fraction in (0, 1], got {min_visible!r}"
            )
        self.num_images = int(num_images)
        self.image_size = int(image_size)
        self.scene = scene
        self.seed = int(seed)
        self.min_visible = float(min_visible)
        self._counts: dict[int, int] = {}  # index -> number of objects, filled by render()

    def __len__(self) -> int:
        return self.num_images

    def __repr__(self) -> str:
        return (
            f"ShapesDataset(num_images={self.num_images}, image_size={self.image_size}, "
            f"scene={self.scene!r}, seed={self.seed})"
        )

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        s = self.render(index)
        return s.image, s.boxes, s.labels

    def difficult(self, index: int) -> np.ndarray:
        """(G,) bool difficult flags of item ``index``: none are difficult (same interface as VOCDataset)."""
        i = self._index(index)
        count = self._counts.get(i)
        if count is None:  # an item not drawn yet; normally dataset[i] came first and this is free
            count = len(self.render(i).labels)
        return np.zeros(count, dtype=bool)

    def export_voc(
        self, root: str | Path, year: str = "2007", split: str = "trainval", **kwargs: Any
    ) -> Path:
        """Write this dataset to disk in VOC layout; see :func:`minissd.data.voc.export_voc`."""
        from .voc import export_voc  # noqa: PLC0415 - voc imports nothing from here; avoids a cycle later

        return export_voc(self, root, year=year, split=split, **kwargs)

    # ------------------------------------------------------------------ drawing

    def _index(self, index: int) -> int:
        if not isinstance(index, (int, np.integer)):
            raise TypeError(f"ShapesDataset index: expected an integer, got {type(index).__name__}")
        i = int(index) + (self.num_images if index < 0 else 0)
        if not 0 <= i < self.num_images:
            raise IndexError(f"ShapesDataset index {index} out of range for {self.num_images} images")
        return i

    def render(self, index: int) -> ShapesSample:
        """Draw item ``index`` (same result on every call); see :class:`ShapesSample`."""
        i = self._index(index)
        rng = np.random.default_rng([self.seed, i, _SCENES.index(self.scene)])
        size = self.image_size
        canvas = self._background(rng)  # (S, S, 3) float32, 0..255
        if self.scene == "mixed":
            plan = self._plan_mixed(rng)
        else:
            plan = self._plan_flock(rng)
        inst, labels, painted, visible = self._paint(rng, canvas, plan)

        # Pixel noise last, over objects too, so that objects are not flat colour.
        sigma = rng.uniform(2.0, 8.0)
        canvas += rng.standard_normal(canvas.shape, dtype=np.float32) * np.float32(sigma)
        image = np.clip(canvas, 0.0, 255.0).astype(np.uint8)

        # Tight boxes around the visible pixels, searched inside each object's own patch.
        boxes = np.zeros((len(labels), 4), dtype=np.float64)
        for k, (y0, y1, x0, x1) in enumerate(painted):
            own = inst[y0:y1, x0:x1] == k
            rows = np.flatnonzero(own.any(axis=1))
            cols = np.flatnonzero(own.any(axis=0))
            boxes[k] = (x0 + cols[0], y0 + rows[0], x0 + cols[-1] + 1, y0 + rows[-1] + 1)
        boxes /= size
        self._counts[i] = len(labels)
        return ShapesSample(
            image=image,
            boxes=boxes.astype(np.float32),
            labels=np.asarray(labels, dtype=np.int64),
            instance_map=inst,
            visible_fraction=np.asarray(visible, dtype=np.float32),
        )

    def _background(self, rng: np.random.Generator) -> np.ndarray:
        size = self.image_size
        c1 = rng.uniform(30.0, 225.0, 3)
        c2 = rng.uniform(30.0, 225.0, 3)
        angle = rng.uniform(0.0, 2.0 * math.pi)
        coords = (np.arange(size, dtype=np.float32) + 0.5) / size - 0.5
        t = (
            math.cos(angle) * coords[None, :] + math.sin(angle) * coords[:, None]
        )  # (S, S) in about [-0.7, 0.7]
        t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
        # Low-frequency blotches (a cloudy sky, a wall) so the background is not a clean gradient.
        t = t[..., None].astype(np.float32)
        blotch = (rng.uniform(5.0, 30.0) * _smooth_noise(rng, size, int(rng.integers(2, 6))))[..., None]
        img = c1.astype(np.float32) + (c2 - c1).astype(np.float32) * t + blotch.astype(np.float32)
        # Clutter that is not an object: thin strokes with no closed outline and soft-edged blobs.
        # Each is drawn only inside its own bounding window, which keeps the background cheap.
        for _ in range(int(rng.integers(0, 5))):
            x0, y0, x1, y1 = rng.uniform(0, size, 4)
            width = rng.uniform(0.5, 1.5)
            colour = rng.uniform(0.0, 255.0, 3)
            c0, c1 = int(max(min(x0, x1) - 2, 0)), int(min(max(x0, x1) + 3, size))
            r0, r1 = int(max(min(y0, y1) - 2, 0)), int(min(max(y0, y1) + 3, size))
            xx = np.arange(c0, c1, dtype=np.float32)[None, :] + 0.5
            yy = np.arange(r0, r1, dtype=np.float32)[:, None] + 0.5
            dx, dy = x1 - x0, y1 - y0
            # Distance of each pixel centre to the segment.
            tt = np.clip(((xx - x0) * dx + (yy - y0) * dy) / (dx * dx + dy * dy + 1e-6), 0.0, 1.0)
            dist = np.hypot(xx - (x0 + tt * dx), yy - (y0 + tt * dy))
            img[r0:r1, c0:c1][dist <= width] = colour
        for _ in range(int(rng.integers(0, 4))):
            cx, cy = rng.uniform(0, size, 2)
            sigma = rng.uniform(0.03, 0.15) * size
            amplitude = rng.uniform(-50.0, 50.0)
            c0, c1 = int(max(cx - 3 * sigma, 0)), int(min(cx + 3 * sigma + 1, size))
            r0, r1 = int(max(cy - 3 * sigma, 0)), int(min(cy + 3 * sigma + 1, size))
            xx = np.arange(c0, c1, dtype=np.float32)[None, :] + 0.5
            yy = np.arange(r0, r1, dtype=np.float32)[:, None] + 0.5
            blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / np.float32(2 * sigma**2))
            img[r0:r1, c0:c1] += np.float32(amplitude) * blob[..., None]
        return img

    def _plan_mixed(
        self, rng: np.random.Generator
    ) -> list[tuple[int, float, tuple[float, float, float] | None]]:
        """(label, size in px, cluster or None) for each object, larger first."""
        n = int(rng.integers(1, 7))
        frac = np.exp(rng.uniform(math.log(0.04), math.log(0.8), n))
        labels = rng.integers(1, len(SHAPE_CLASS_NAMES), n)
        order = np.argsort(-frac, kind="stable")
        return [(int(labels[k]), float(frac[k]) * self.image_size, None) for k in order]

    def _plan_flock(
        self, rng: np.random.Generator
    ) -> list[tuple[int, float, tuple[float, float, float] | None]]:
        size = self.image_size
        n = int(rng.integers(10, 41))
        n_clusters = int(rng.integers(1, 4))
        # Split n objects among the clusters (each gets at least 3).
        cuts = np.sort(rng.choice(np.arange(1, n), n_clusters - 1, replace=False)) if n_clusters > 1 else []
        counts = np.diff(np.concatenate([[0], cuts, [n]])).astype(int)
        plan = []
        for count in counts:
            label = _BIRD if rng.random() < 0.6 else int(rng.integers(1, _BIRD))
            cluster = (
                rng.uniform(0.2, 0.8) * size,
                rng.uniform(0.2, 0.8) * size,
                rng.uniform(0.04, 0.11) * size,
            )
            for _ in range(count):
                plan.append((label, float(rng.uniform(0.04, 0.09)) * size, cluster))
        return plan

    def _paint(
        self,
        rng: np.random.Generator,
        canvas: np.ndarray,
        plan: list[tuple[int, float, tuple[float, float, float] | None]],
    ) -> tuple[np.ndarray, list[int], list[tuple[int, int, int, int]], list[float]]:
        """Paint the planned objects onto canvas (in place) under the visibility rule.

        Returns the instance map (S, S) int32, the accepted labels, each object's patch (y0, y1, x0, x1)
        and each object's visible fraction.
        """
        size = self.image_size
        inst = np.full((size, size), -1, dtype=np.int32)
        labels: list[int] = []
        patches: list[tuple[int, int, int, int]] = []
        painted_area: list[int] = []
        visible = np.zeros(0, dtype=np.int64)
        min_pixels = 6
        tries = 8 if self.scene == "mixed" else 12

        def place(label: int, side: float, cluster: tuple[float, float, float] | None) -> bool:
            nonlocal visible
            side = max(side, 5.0)
            half = side / 2.0
            if label == _BIRD:
                rx, ry = half, half * rng.uniform(0.35, 0.55)
            else:
                aspect = math.exp(rng.uniform(-0.35, 0.35))  # width / height in about [0.7, 1.4]
                rx, ry = half * min(1.0, aspect), half * min(1.0, 1.0 / aspect)
            theta = rng.uniform(-math.pi / 12, math.pi / 12)
            cos, sin = math.cos(theta), math.sin(theta)
            # Half extents of the rotated box [-rx, rx] x [-ry, ry]: the shape lies inside it.
            ex = min(abs(rx * cos) + abs(ry * sin), size / 2.0)
            ey = min(abs(rx * sin) + abs(ry * cos), size / 2.0)
            if cluster is None:
                cx, cy = rng.uniform(ex, size - ex), rng.uniform(ey, size - ey)
            else:
                gx, gy = rng.standard_normal(2)
                cx = min(max(cluster[0] + cluster[2] * gx, ex), size - ex)
                cy = min(max(cluster[1] + cluster[2] * gy, ey), size - ey)
            x0, x1 = max(int(math.floor(cx - ex)), 0), min(int(math.ceil(cx + ex)) + 1, size)
            y0, y1 = max(int(math.floor(cy - ey)), 0), min(int(math.ceil(cy + ey)) + 1, size)
            # Pixel centres relative to the shape centre, (h, 1) and (1, w), broadcast below.
            dx = np.arange(x0, x1, dtype=np.float32)[None, :] + np.float32(0.5 - cx)
            dy = np.arange(y0, y1, dtype=np.float32)[:, None] + np.float32(0.5 - cy)
            u = (cos * dx + sin * dy) / rx  # rotate by -theta, then scale to the unit square
            v = (-sin * dx + cos * dy) / ry
            mask = _unit_mask(label, u, v)
            area = int(mask.sum())
            if area < min_pixels:
                return False
            under = inst[y0:y1, x0:x1][mask]
            covered = np.bincount(under[under >= 0], minlength=len(labels))
            if len(labels) and np.any(visible - covered < self.min_visible * np.asarray(painted_area)):
                return False
            # A colour that stands out from what it is painted on (L1 distance over RGB >= 120 of 765).
            below = canvas[y0:y1, x0:x1][mask].mean(axis=0)
            best, best_dist = None, -1.0
            for _ in range(8):
                colour = rng.uniform(0.0, 255.0, 3)
                dist = float(np.abs(colour - below).sum())
                if dist > best_dist:
                    best, best_dist = colour, dist
                if dist >= 120.0:
                    break
            canvas[y0:y1, x0:x1][mask] = best
            inst[y0:y1, x0:x1][mask] = len(labels)
            visible = np.concatenate([visible - covered, [area]])
            labels.append(label)
            patches.append((y0, y1, x0, x1))
            painted_area.append(area)
            return True

        for label, side, cluster in plan:
            for _ in range(tries):
                if place(label, side, cluster):
                    break
        if self.scene == "flock":
            # A flock has at least 10 members: if the clusters were too crowded, add birds anywhere.
            for _ in range(200):
                if len(labels) >= 10:
                    break
                place(_BIRD, float(rng.uniform(0.04, 0.09)) * size, None)
        fractions = (visible / np.maximum(np.asarray(painted_area), 1)).tolist()
        return inst, labels, patches, fractions
