"""SSDConfig: everything that fixes a detector's geometry and shape, as plain data.

An SSD detects on several feature maps ("sources") of decreasing size. At every location of a map of
size f x f it places the same few default boxes, centred on the cell; a large map (small step) holds
small boxes for small objects, a small map holds large boxes. A config says, per map: its size, its
step (pixels between neighbouring centres), the box sizes and the aspect ratios; and, for the network
that produces the maps, the backbone's width and the extra layers after fc7.

Box sizes can be given in two ways (:meth:`SSDConfig.resolved_sizes` turns either into pixels):

* **explicit** ``min_sizes`` / ``max_sizes`` in pixels, as in the authors' released models. On map k
  the two square boxes have sides ``min_k`` and ``sqrt(min_k * max_k)``; the released SSD300 uses
  min 30, 60, 111, 162, 213, 264 and max 60, 111, 162, 213, 264, 315.
* **the paper's scale rule** (``min_sizes = max_sizes = None``): m maps get scales
  ``s_k = s_min + (s_max - s_min) (k - 1) / (m - 1)``, k = 1..m (0.2 .. 0.9 by default), i.e.
  ``min_k = s_k * input_size``; the extra square box uses ``sqrt(s_k s_(k+1))`` where ``s_(m+1)``
  continues the same arithmetic sequence one step past s_max (as the released sizes do: 315 = 264 + 51).

Each aspect ratio r > 1 listed for a map adds two boxes, of width ``min_k sqrt(r)`` and height
``min_k / sqrt(r)`` and the transpose (ratio 1/r). So a map with ratios (2,) has 4 boxes per location
and one with (2, 3) has 6.

Centres of map k are ``((j + 0.5) * step_k, (i + 0.5) * step_k) / input_size`` for row i and column j;
``steps = None`` uses ``step_k = input_size / f_k``, the paper's ``(j + 0.5) / f_k``.

The backbone is the modified VGG16 (:mod:`minissd.models.vgg`): 3x3 convolutions that keep the size,
2x2 max pools at pool1..pool4 (pool3 rounds up, Caffe's ceil mode: 75 -> 38 at 300 px input), a 3x3
stride-1 pool5 and the convolutional fc6/fc7. So conv4_3 is ``ceil(floor(floor(S/2)/2)/2)`` and fc7
half of that (rounded down). Each extra block is a 1x1 convolution to ``mid_channels`` then a
``kernel_size`` convolution with ``stride`` and ``padding`` to ``out_channels``; like VGG's, their
channel counts are given at width 1.0 and multiplied by ``width``. The config checks that the
feature-map sizes it lists are the ones this network produces.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from .sizes import conv_output_size

#: the backbone layers that can serve as sources, in the order they appear in the network
BACKBONE_SOURCES = ("conv4_3", "fc7")
#: the ways ``SSDConfig.clip`` can clip default boxes (see SSDConfig.clip_mode)
CLIP_MODES = ("corners", "size")


class ExtraBlock(NamedTuple):
    """One extra block after fc7: a 1x1 conv to ``mid_channels``, then a ``kernel_size`` conv to
    ``out_channels``.

    Channel counts are given at width 1.0, as released (256 -> 512 for SSD300's conv8); the network
    multiplies them by the config's ``width`` like VGG's (:func:`minissd.sizes.scaled_channels`).
    Output size: ``floor((f + 2 * padding - kernel_size) / stride) + 1``.
    """

    mid_channels: int
    out_channels: int
    stride: int = 1
    padding: int = 0
    kernel_size: int = 3

    def output_size(self, size: int) -> int:
        """Spatial size after this block for an input of ``size`` x ``size`` (the 1x1 conv keeps it)."""
        return conv_output_size(size, self.kernel_size, stride=self.stride, padding=self.padding)


def vgg_feature_sizes(input_size: int) -> tuple[int, int]:
    """Sides of conv4_3 and fc7 of the modified VGG16 for a square input of ``input_size`` pixels.

    Its 3x3 convolutions keep the size; pool1 .. pool4 are 2x2 with stride 2, pool3 in ceil mode;
    pool5 (3x3, stride 1, padding 1), fc6 (3x3, dilation 6, padding 6) and fc7 (1x1) keep the size.
    300 -> 150 -> 75 -> 38 (conv4_3) -> 19 (fc7).
    """
    size = input_size
    for pool in ("pool1", "pool2", "pool3"):
        size = conv_output_size(size, 2, stride=2, ceil_mode=(pool == "pool3"))
    conv4_3 = size
    fc7 = conv_output_size(conv4_3, 2, stride=2)  # pool4
    return conv4_3, fc7


def _fmt(x: float) -> str:
    """A number without a useless '.0' (30.0 -> '30', 53.333 -> '53.33')."""
    return f"{x:.2f}".rstrip("0").rstrip(".")


@dataclass(frozen=True)
class SSDConfig:
    """The geometry of an SSD detector. Frozen: derive variants with ``dataclasses.replace(cfg, ...)``.

    Attributes:
        input_size: side S of the square input image, pixels.
        num_classes: number of classes including background (class 0); 21 for VOC.
        feature_maps: side f_k of each source feature map, largest first, e.g. (38, 19, 10, 5, 3, 1).
        aspect_ratios: per map, the ratios r > 1 (each adds r and 1/r), e.g. ((2,), (2, 3), ...).
        steps: per map, pixels between neighbouring box centres; None: ``input_size / f_k``.
        min_sizes, max_sizes: per map, box sizes in pixels (increasing, max_k > min_k); both None to use
            the scale rule with ``s_min`` / ``s_max``.
        s_min, s_max: the paper's scale range, fractions of the image side (used only without sizes).
        variances: (centre, size) scaling of the box offsets, (0.1, 0.2) as released.
        clip: clip default boxes to the image; False as in the released SSD300.
        clip_mode: how ``clip`` clips: ``"corners"`` (corners into [0, 1], Caffe's PriorBox) or ``"size"``
            (width and height clamped to [0, 1], centres unchanged: torchvision's DefaultBoxGenerator and
            ssd.pytorch's PriorBox, whose clamp of all four centre-form numbers amounts to the same).
        width: channel multiplier of the whole network, VGG and extra blocks (1.0: 64 .. 512, 1024 for
            fc6/fc7, the extras as listed).
        batch_norm: BatchNorm after every backbone and extra convolution.
        sources: which backbone maps are detection sources, a subset of ("conv4_3", "fc7") in that order.
        extras: the extra blocks after fc7, in order; each output is one more source map.
        l2norm_scale: initial scale of the L2Norm on conv4_3 (20 in the paper).
        name: a label for tables and checkpoints.
    """

    input_size: int
    num_classes: int
    feature_maps: tuple[int, ...]
    aspect_ratios: tuple[tuple[float, ...], ...]
    steps: tuple[float, ...] | None = None
    min_sizes: tuple[float, ...] | None = None
    max_sizes: tuple[float, ...] | None = None
    s_min: float = 0.2
    s_max: float = 0.9
    variances: tuple[float, float] = (0.1, 0.2)
    clip: bool = False
    clip_mode: str = "corners"
    width: float = 1.0
    batch_norm: bool = False
    sources: tuple[str, ...] = BACKBONE_SOURCES
    extras: tuple[ExtraBlock, ...] = ()
    l2norm_scale: float = 20.0
    name: str = "custom"

    # ------------------------------------------------------------------ validation
    def __post_init__(self) -> None:
        def fail(field: str, expected: str, got: Any) -> None:
            raise ValueError(f"SSDConfig({field}): expected {expected}, got {got!r}")

        def set_(field: str, value: Any) -> None:
            object.__setattr__(self, field, value)  # frozen dataclass: normalize once, here

        def as_tuple(field: str, value: Any, expected: str) -> tuple:
            if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
                fail(field, expected, value)
            return tuple(value)

        def is_int(v: Any) -> bool:
            return isinstance(v, int) and not isinstance(v, bool)

        def is_num(v: Any) -> bool:
            return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

        if not is_int(self.input_size) or self.input_size < 1:
            fail("input_size", "a positive integer (pixels)", self.input_size)
        if not is_int(self.num_classes) or self.num_classes < 2:
            fail("num_classes", "an integer >= 2 (background + at least one class)", self.num_classes)

        maps = as_tuple("feature_maps", self.feature_maps, "a sequence of positive integers")
        if not maps or not all(is_int(f) and f >= 1 for f in maps):
            fail("feature_maps", "a non-empty sequence of positive integers", self.feature_maps)
        set_("feature_maps", maps)
        m = len(maps)

        ratios = as_tuple("aspect_ratios", self.aspect_ratios, f"one sequence of ratios per map ({m})")
        if len(ratios) != m:
            fail("aspect_ratios", f"one sequence of ratios per feature map ({m} maps)", self.aspect_ratios)
        normalized = []
        for k, rs in enumerate(ratios):
            rs = as_tuple("aspect_ratios", rs, f"a sequence of ratios for map {k}, e.g. (2,) or (2, 3)")
            if not all(is_num(r) and r > 1 for r in rs) or len(set(rs)) != len(rs):
                fail(f"aspect_ratios[{k}]", "distinct ratios r > 1 (each adds the boxes r and 1/r; ratio 1 "
                     "is always present)", rs)
            normalized.append(tuple(float(r) for r in rs))
        set_("aspect_ratios", tuple(normalized))

        if self.steps is not None:
            steps = as_tuple("steps", self.steps, f"{m} positive numbers (pixels) or None")
            if len(steps) != m or not all(is_num(s) and s > 0 for s in steps):
                fail("steps", f"{m} positive numbers (pixels, one per feature map) or None", self.steps)
            set_("steps", tuple(steps))

        if (self.min_sizes is None) != (self.max_sizes is None):
            fail("min_sizes/max_sizes", "both given (pixels) or both None (scale rule)",
                 (self.min_sizes, self.max_sizes))
        if self.min_sizes is not None:
            mins = as_tuple("min_sizes", self.min_sizes, f"{m} increasing positive numbers (pixels)")
            maxs = as_tuple("max_sizes", self.max_sizes, f"{m} increasing positive numbers (pixels)")
            for field, sizes in (("min_sizes", mins), ("max_sizes", maxs)):
                if len(sizes) != m or not all(is_num(s) and s > 0 for s in sizes):
                    fail(field, f"{m} positive numbers (pixels, one per feature map)", sizes)
                if any(b <= a for a, b in zip(sizes, sizes[1:])):
                    fail(field, "strictly increasing sizes (larger boxes on smaller maps)", sizes)
            for k, (lo, hi) in enumerate(zip(mins, maxs)):
                if hi <= lo:
                    fail("max_sizes", f"max_sizes[{k}] > min_sizes[{k}] = {lo}", maxs)
            set_("min_sizes", mins)
            set_("max_sizes", maxs)
        else:
            if not (is_num(self.s_min) and is_num(self.s_max) and 0 < self.s_min < self.s_max):
                fail("s_min/s_max", "0 < s_min < s_max (fractions of the image side)",
                     (self.s_min, self.s_max))

        v = as_tuple("variances", self.variances, "two positive numbers (centre, size)")
        if len(v) != 2 or not all(is_num(x) and x > 0 for x in v):
            fail("variances", "two positive numbers (centre, size), e.g. (0.1, 0.2)", self.variances)
        set_("variances", (float(v[0]), float(v[1])))
        if not isinstance(self.clip, bool):
            fail("clip", "True or False", self.clip)
        if self.clip_mode not in CLIP_MODES:
            fail("clip_mode", f"one of {CLIP_MODES}", self.clip_mode)
        if not is_num(self.width) or self.width <= 0:
            fail("width", "a positive channel multiplier, e.g. 1.0 or 0.125", self.width)
        if not isinstance(self.batch_norm, bool):
            fail("batch_norm", "True or False", self.batch_norm)
        if not is_num(self.l2norm_scale) or self.l2norm_scale <= 0:
            fail("l2norm_scale", "a positive number", self.l2norm_scale)

        sources = as_tuple("sources", self.sources, f"a non-empty subset of {BACKBONE_SOURCES}, in order")
        if not sources or list(sources) != [s for s in BACKBONE_SOURCES if s in sources]:
            fail("sources", f"a non-empty subset of {BACKBONE_SOURCES}, in that order", self.sources)
        set_("sources", sources)

        extras = as_tuple("extras", self.extras, "a sequence of ExtraBlock(mid, out, stride, pad, kernel)")
        blocks = []
        for k, e in enumerate(extras):
            try:
                block = ExtraBlock(*e)
            except TypeError:
                fail(f"extras[{k}]", "(mid_channels, out_channels[, stride, padding, kernel_size])", e)
            positive = (block.mid_channels, block.out_channels, block.stride, block.kernel_size)
            if not all(is_int(x) for x in block) or min(positive) < 1 or block.padding < 0:
                fail(f"extras[{k}]", "positive integers (mid_channels, out_channels, stride, kernel_size) "
                     "and padding >= 0", e)
            blocks.append(block)
        set_("extras", tuple(blocks))

        expected = self.expected_feature_maps()
        if maps != expected:
            fail("feature_maps",
                 f"{expected}, the sizes that sources {self.source_names} produce at input {self.input_size} "
                 "(conv4_3 = ceil(floor(floor(S/2)/2)/2), fc7 = conv4_3 // 2, then each extra block)", maps)

    # ------------------------------------------------------------------ derived data
    @property
    def source_names(self) -> tuple[str, ...]:
        """Name of the layer behind each feature map: conv4_3, fc7, conv8_2, conv9_2, ..."""
        return self.sources + tuple(f"conv{8 + k}_2" for k in range(len(self.extras)))

    def expected_feature_maps(self) -> tuple[int, ...]:
        """Feature-map sizes the modified VGG16 and the extra blocks produce at ``input_size``."""
        conv4_3, fc7 = vgg_feature_sizes(self.input_size)
        sizes = {"conv4_3": conv4_3, "fc7": fc7}
        out = [sizes[name] for name in self.sources]
        f = fc7
        for block in self.extras:
            f = block.output_size(f)
            out.append(f)
        return tuple(out)

    @property
    def num_priors_per_location(self) -> tuple[int, ...]:
        """Default boxes per location of each map: 2 squares + 2 per aspect ratio (4 or 6 for SSD300)."""
        return tuple(2 + 2 * len(r) for r in self.aspect_ratios)

    @property
    def num_priors(self) -> int:
        """Total number of default boxes P (8732 for SSD300)."""
        return sum(f * f * n for f, n in zip(self.feature_maps, self.num_priors_per_location))

    def resolved_steps(self) -> tuple[float, ...]:
        """Step of each map in pixels (``steps``, or ``input_size / f_k`` when steps is None)."""
        if self.steps is not None:
            return tuple(float(s) for s in self.steps)
        return tuple(self.input_size / f for f in self.feature_maps)

    def resolved_sizes(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """(min_sizes, max_sizes) in pixels, explicit or from the scale rule (see the module docstring)."""
        if self.min_sizes is not None and self.max_sizes is not None:
            return tuple(float(s) for s in self.min_sizes), tuple(float(s) for s in self.max_sizes)
        m = len(self.feature_maps)
        delta = (self.s_max - self.s_min) / (m - 1) if m > 1 else self.s_max - self.s_min
        scales = [self.s_min + delta * k for k in range(m + 1)]  # s_1 .. s_m, and s_(m+1) one step further
        return (tuple(s * self.input_size for s in scales[:m]),
                tuple(s * self.input_size for s in scales[1:]))

    def table(self) -> list[dict[str, Any]]:
        """One row per feature map, as plain data (for ``minissd boxes``, notebooks and docs).

        Keys: ``source``, ``size`` (f_k), ``step`` (px), ``min_size`` / ``max_size`` (px), ``scale``
        (min_size / input_size), ``aspect_ratios`` (the listed r > 1), ``boxes_per_location``, ``boxes``
        (f_k^2 x per location), ``first_index`` (index of the map's first box in ``default_boxes(config)``).
        """
        mins, maxs = self.resolved_sizes()
        rows, first = [], 0
        for k, f in enumerate(self.feature_maps):
            n = self.num_priors_per_location[k]
            rows.append({
                "source": self.source_names[k],
                "size": f,
                "step": self.resolved_steps()[k],
                "min_size": mins[k],
                "max_size": maxs[k],
                "scale": mins[k] / self.input_size,
                "aspect_ratios": self.aspect_ratios[k],
                "boxes_per_location": n,
                "boxes": f * f * n,
                "first_index": first,
            })
            first += f * f * n
        return rows

    def format_table(self) -> str:
        """The :meth:`table` as aligned text, with the total number of default boxes."""
        header = ("source", "map", "step", "min", "max", "ratios", "per loc", "boxes")
        lines = [header]
        for r in self.table():
            ratios = ", ".join(["1", "1'"] + [f"{_fmt(a)}, 1/{_fmt(a)}" for a in r["aspect_ratios"]])
            lines.append((r["source"], f"{r['size']}x{r['size']}", _fmt(r["step"]), _fmt(r["min_size"]),
                          _fmt(r["max_size"]), ratios, str(r["boxes_per_location"]), str(r["boxes"])))
        lines.append(("total", "", "", "", "", "", "", str(self.num_priors)))
        widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
        title = f"{self.name}: input {self.input_size}x{self.input_size}, {self.num_classes} classes"
        left = (0, 5)  # text columns are left-aligned, numbers right-aligned
        body = []
        for line in lines:
            cells = [c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths))]
            body.append("  ".join(cells).rstrip())
        legend = "ratios: 1 = min x min; 1' = square of side sqrt(min*max); r = min*sqrt(r) x min/sqrt(r)"
        return "\n".join([title, *body, legend])

    def replace(self, **changes: Any) -> SSDConfig:
        """A copy with some fields changed (validated again), e.g. ``cfg.replace(num_classes=6)``."""
        return dataclasses.replace(self, **changes)

    # ------------------------------------------------------------------ presets
    @classmethod
    def ssd300(cls, num_classes: int = 21) -> SSDConfig:
        """SSD300 as released by the authors (VOC07+12): 8732 default boxes on 6 maps."""
        return cls(
            name="ssd300",
            input_size=300,
            num_classes=num_classes,
            feature_maps=(38, 19, 10, 5, 3, 1),
            steps=(8, 16, 32, 64, 100, 300),
            min_sizes=(30, 60, 111, 162, 213, 264),
            max_sizes=(60, 111, 162, 213, 264, 315),
            aspect_ratios=((2,), (2, 3), (2, 3), (2, 3), (2,), (2,)),
            extras=(
                ExtraBlock(256, 512, stride=2, padding=1),  # conv8:  19 -> 10
                ExtraBlock(128, 256, stride=2, padding=1),  # conv9:  10 -> 5
                ExtraBlock(128, 256, stride=1, padding=0),  # conv10:  5 -> 3
                ExtraBlock(128, 256, stride=1, padding=0),  # conv11:  3 -> 1
            ),
        )

    @classmethod
    def ssd512(cls, num_classes: int = 21) -> SSDConfig:
        """SSD512 as released (VOC07+12): 24564 default boxes on 7 maps."""
        return cls(
            name="ssd512",
            input_size=512,
            num_classes=num_classes,
            feature_maps=(64, 32, 16, 8, 4, 2, 1),
            steps=(8, 16, 32, 64, 128, 256, 512),
            # the released rule: 7% then 15%, 30%, ..., 90% of 512 (and one step more for the last max)
            min_sizes=(35.84, 76.8, 153.6, 230.4, 307.2, 384.0, 460.8),
            max_sizes=(76.8, 153.6, 230.4, 307.2, 384.0, 460.8, 537.6),
            aspect_ratios=((2,), (2, 3), (2, 3), (2, 3), (2, 3), (2,), (2,)),
            extras=(
                ExtraBlock(256, 512, stride=2, padding=1),  # conv8:  32 -> 16
                ExtraBlock(128, 256, stride=2, padding=1),  # conv9:  16 -> 8
                ExtraBlock(128, 256, stride=2, padding=1),  # conv10:  8 -> 4
                ExtraBlock(128, 256, stride=2, padding=1),  # conv11:  4 -> 2
                ExtraBlock(128, 256, stride=1, padding=1, kernel_size=4),  # conv12: 2 -> 1
            ),
        )

    @classmethod
    def mini(cls, num_classes: int = 8) -> SSDConfig:
        """The small detector a class trains on a CPU: 160 px, 1/8 of VGG's widths, BatchNorm, 2390 boxes.

        Maps 20, 10, 5, 3, 1 (conv4_3, fc7, conv8_2, conv9_2, conv10_2) with 4, 6, 6, 4, 4 boxes per
        location; steps 160 / f = 8, 16, 32, 53.3, 160 px. ``num_classes`` defaults to 8, ShapesDataset's
        ``len(class_names)`` (background and seven shapes).

        Box sizes (:data:`MINI_MIN_SIZES`, :data:`MINI_MAX_SIZES`, pixels of 160) are chosen for
        ShapesDataset, whose objects span about 4% to 80% of the image side (6 to 128 px), many of them
        small and clustered:

        * reasoning: a default box reaches IoU 0.5 with an object only if their sizes are within a factor
          of about 1.4 and their centres are close, so the two squares of consecutive maps should tile the
          size range without gaps (10, 18 | 32, 45 | 64, 76 | 90, 104 | 120, 135 px, plus the 2:1, 1:2,
          3:1, 1:3 boxes), and the smallest must come down to the smallest objects. SSD300's proportions
          (16 px smallest box at 160 px) leave objects under 8% of the side almost uncovered.
        * measurement: :func:`minissd.priors.best_overlaps` gives the share of objects whose best default box
          reaches IoU 0.5; with these sizes it is higher than with the other sets tried and with SSD300's
          proportions, on both "mixed" and "flock" scenes (docs/benchmarks.md, "Default boxes of the mini
          preset").
        * the limit is geometry, not the sizes: the centres of the 20 x 20 map are 8 px apart, and a flock
          object of 6-13 px lying 3-4 px off every centre in x and y has no box with IoU 0.5 whatever its
          size (no first-map size tried did better than 24% on flocks). Matching still gives every object
          its best default box (the bipartite step, ``minissd.matching``), so each one is trained on.
        """
        return cls(
            name="mini",
            input_size=160,
            num_classes=num_classes,
            feature_maps=(20, 10, 5, 3, 1),
            steps=None,  # 160 / f: 8, 16, 32, 53.3, 160
            min_sizes=MINI_MIN_SIZES,
            max_sizes=MINI_MAX_SIZES,
            aspect_ratios=((2,), (2, 3), (2, 3), (2,), (2,)),
            width=1 / 8,
            batch_norm=True,
            # BatchNorm already puts conv4_3 on the scale of the other sources; the paper's 20 (for VGG
            # without BatchNorm) made the conv4_3 heads' outputs larger and training slower
            # (docs/benchmarks.md, "The recipe, and how it was found")
            l2norm_scale=5.0,
            # SSD300's conv8, conv10 and conv11 blocks (x 1/8: 32 -> 64, 16 -> 32 channels)
            extras=(
                ExtraBlock(256, 512, stride=2, padding=1),  # conv8: 10 -> 5
                ExtraBlock(128, 256, stride=1, padding=0),  # conv9:  5 -> 3
                ExtraBlock(128, 256, stride=1, padding=0),  # conv10: 3 -> 1
            ),
        )


#: Box sizes of the mini preset, pixels at 160 px input; how they were chosen: see SSDConfig.mini.
MINI_MIN_SIZES = (10.0, 32.0, 64.0, 90.0, 120.0)
MINI_MAX_SIZES = (32.0, 64.0, 90.0, 120.0, 152.0)
