"""SSD data augmentation and preprocessing on host NumPy arrays; all randomness from an explicit Generator.

Every transform is a callable ``t(image, boxes, labels, rng) -> (image, boxes, labels)``:

* ``image``: (H, W, 3) RGB, uint8 or float32 on the 0..255 scale (``Normalize`` turns it into (3, H, W));
* ``boxes``: (G, 4) float32 corners (xmin, ymin, xmax, ymax) normalised to [0, 1];
* ``labels``: (G,) int64;
* ``rng``: a ``numpy.random.Generator`` (deterministic transforms accept ``None``).

Boxes stay valid after every transform (``0 <= xmin < xmax <= 1``, the same for y); a box that a crop makes
degenerate is dropped together with its label.

The training pipeline is the one of the SSD paper (Liu et al. 2016, section 2.2 "Data augmentation") and
of its Caffe / ssd.pytorch code, with torchvision's names so that what a student learns here carries over::

    train_transform(size) = Compose([RandomPhotometricDistort(), RandomZoomOut(fill=mean), RandomIoUCrop(),
                                     RandomHorizontalFlip(), Resize(size), Normalize(mean, std)])
    eval_transform(size)  = Compose([Resize(size), Normalize(mean, std)])

``Normalize`` defaults to the ImageNet RGB statistics on the 0..255 scale (mean 123.675, 116.28, 103.53;
std 58.395, 57.12, 57.375): any roughly zero-mean, unit-variance scaling suits a network trained from scratch
(there are no pretrained weights whose input statistics must be matched), and these are the usual ones.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..boxes import iou

MEAN: tuple[float, float, float] = (123.675, 116.28, 103.53)
"""Default per-channel mean (RGB, 0..255 scale): the ImageNet statistics."""
STD: tuple[float, float, float] = (58.395, 57.12, 57.375)
"""Default per-channel standard deviation (RGB, 0..255 scale)."""

Sample = tuple[np.ndarray, np.ndarray, np.ndarray]

# Luma weights (ITU-R BT.601): the grey level that saturation and hue changes leave unchanged.
_LUMA = np.array([0.299, 0.587, 0.114])
# RGB -> YIQ: Y is luma, (I, Q) the chroma plane that a hue change rotates.
_RGB_TO_YIQ = np.array(
    [[0.299, 0.587, 0.114], [0.595716, -0.274453, -0.321263], [0.211456, -0.522591, 0.311135]]
)
_YIQ_TO_RGB = np.linalg.inv(_RGB_TO_YIQ)


# ---------------------------------------------------------------------------------------------- helpers


def check_sample(image: Any, boxes: Any, labels: Any, where: str = "transform") -> Sample:
    """Validate and convert a sample: image (H, W, 3), boxes (G, 4) float32, labels (G,) int64."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"{where}: image must be (H, W, 3), got shape {image.shape}")
    boxes = np.asarray(boxes, dtype=np.float32)
    if boxes.size == 0:
        boxes = boxes.reshape(0, 4)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"{where}: boxes must be (G, 4) normalised corners, got shape {boxes.shape}")
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    if labels.shape[0] != boxes.shape[0]:
        raise ValueError(f"{where}: {boxes.shape[0]} boxes but {labels.shape[0]} labels")
    return image, boxes, labels


def _finish_boxes(boxes: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Clip float64 boxes to [0, 1], cast to float32, and drop degenerate ones with their labels.

    The check is done after the cast: a box thinner than float32 resolution would otherwise become
    ``xmin == xmax`` silently.
    """
    b = np.clip(boxes, 0.0, 1.0).astype(np.float32)
    keep = (b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])
    return b[keep], labels[keep]


def _need_rng(rng: Any, name: str) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    raise TypeError(
        f"{name}: rng must be a numpy.random.Generator (e.g. numpy.random.default_rng(0)), "
        f"got {type(rng).__name__}"
    )


class Compose:
    """Apply transforms in order: ``Compose([t1, t2])(image, boxes, labels, rng)``."""

    def __init__(self, transforms: Sequence[Callable[..., Sample]]) -> None:
        self.transforms = list(transforms)

    def __call__(self, image: Any, boxes: Any, labels: Any, rng: np.random.Generator | None = None) -> Sample:
        image, boxes, labels = check_sample(image, boxes, labels, "Compose")
        for t in self.transforms:
            image, boxes, labels = t(image, boxes, labels, rng)
        return image, boxes, labels

    def __repr__(self) -> str:
        inner = ",\n  ".join(repr(t) for t in self.transforms)
        return f"Compose([\n  {inner}\n])"


# ---------------------------------------------------------------------------------- photometric distortion
# Brightness, contrast, saturation, hue and channel swap are all affine maps of the RGB vector of each pixel
# (x -> M x + b). Each transform below draws its own (M, b); RandomPhotometricDistort multiplies them into a
# single affine map and applies it once, one (H*W, 3) x (3, 3) product instead of five passes over the image.


class _ColorTransform:
    """Base of the photometric transforms: ``sample(rng)`` draws an affine colour map (M (3, 3), b (3,))."""

    def __init__(self, p: float) -> None:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"{type(self).__name__}(p): expected a probability in [0, 1], got {p!r}")
        self.p = float(p)

    def _matrix(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def sample(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """(M, b) such that the new pixel is ``M @ rgb + b``; the identity when not applied (prob 1 - p)."""
        if rng.random() < self.p:
            return self._matrix(rng)
        return np.eye(3), np.zeros(3)

    def __call__(self, image: np.ndarray, boxes: np.ndarray, labels: np.ndarray, rng: Any) -> Sample:
        m, b = self.sample(_need_rng(rng, type(self).__name__))
        return apply_color_matrix(image, m, b), boxes, labels


def apply_color_matrix(image: np.ndarray, m: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(H, W, 3) -> float32 (H, W, 3) with every pixel mapped to ``m @ rgb + b``, clipped to [0, 255]."""
    x = np.asarray(image, dtype=np.float32)
    out = x @ m.T.astype(np.float32) + b.astype(np.float32)
    return np.clip(out, 0.0, 255.0, out=out)


class RandomBrightness(_ColorTransform):
    """Add the same random delta in [-delta, delta] (0..255 scale) to every channel, with probability p."""

    def __init__(self, delta: float = 32.0, p: float = 0.5) -> None:
        super().__init__(p)
        if not 0.0 <= delta <= 255.0:
            raise ValueError(f"RandomBrightness(delta): expected 0..255, got {delta!r}")
        self.delta = float(delta)

    def _matrix(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        return np.eye(3), np.full(3, rng.uniform(-self.delta, self.delta))

    def __repr__(self) -> str:
        return f"RandomBrightness(delta={self.delta}, p={self.p})"


class RandomContrast(_ColorTransform):
    """Multiply every value by a random factor in [lower, upper] with probability p (as the SSD code does)."""

    def __init__(self, lower: float = 0.5, upper: float = 1.5, p: float = 0.5) -> None:
        super().__init__(p)
        if not 0.0 <= lower <= upper:
            raise ValueError(
                f"RandomContrast(lower, upper): expected 0 <= lower <= upper, got {lower}, {upper}"
            )
        self.lower, self.upper = float(lower), float(upper)

    def _matrix(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        return np.eye(3) * rng.uniform(self.lower, self.upper), np.zeros(3)

    def __repr__(self) -> str:
        return f"RandomContrast(lower={self.lower}, upper={self.upper}, p={self.p})"


class RandomSaturation(_ColorTransform):
    """Scale the distance of each pixel from its grey level by a factor in [lower, upper] (luma preserved)."""

    def __init__(self, lower: float = 0.5, upper: float = 1.5, p: float = 0.5) -> None:
        super().__init__(p)
        if not 0.0 <= lower <= upper:
            raise ValueError(
                f"RandomSaturation(lower, upper): expected 0 <= lower <= upper, got {lower}, {upper}"
            )
        self.lower, self.upper = float(lower), float(upper)

    def _matrix(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        s = rng.uniform(self.lower, self.upper)
        # rgb' = grey + s (rgb - grey), grey = LUMA . rgb, repeated in each channel.
        return s * np.eye(3) + (1.0 - s) * np.outer(np.ones(3), _LUMA), np.zeros(3)

    def __repr__(self) -> str:
        return f"RandomSaturation(lower={self.lower}, upper={self.upper}, p={self.p})"


class RandomHue(_ColorTransform):
    """Rotate the hue by a random angle in [-delta, delta] degrees (a rotation of the YIQ chroma plane).

    The SSD code shifts H in HSV space by up to 18 degrees; rotating (I, Q) is the linear counterpart:
    grey pixels and luma are unchanged.
    """

    def __init__(self, delta: float = 18.0, p: float = 0.5) -> None:
        super().__init__(p)
        if not 0.0 <= delta <= 180.0:
            raise ValueError(f"RandomHue(delta): expected 0..180 degrees, got {delta!r}")
        self.delta = float(delta)

    def _matrix(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        a = math.radians(rng.uniform(-self.delta, self.delta))
        rot = np.array([[1.0, 0.0, 0.0], [0.0, math.cos(a), -math.sin(a)], [0.0, math.sin(a), math.cos(a)]])
        return _YIQ_TO_RGB @ rot @ _RGB_TO_YIQ, np.zeros(3)

    def __repr__(self) -> str:
        return f"RandomHue(delta={self.delta}, p={self.p})"


class RandomChannelSwap(_ColorTransform):
    """Permute the three channels at random (ssd.pytorch's RandomLightingNoise), with probability p."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__(p)

    def _matrix(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        return np.eye(3)[rng.permutation(3)], np.zeros(3)

    def __repr__(self) -> str:
        return f"RandomChannelSwap(p={self.p})"


def _compose_affine(steps: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """The single affine map equal to applying steps[0], then steps[1], ... (x -> M x + b each)."""
    m, b = np.eye(3), np.zeros(3)
    for mi, bi in steps:
        m, b = mi @ m, mi @ b + bi
    return m, b


class RandomPhotometricDistort:
    """The SSD photometric distortion: brightness, then contrast before or after (saturation, hue), then
    a channel swap, each applied with probability p; the order is the one of the SSD code.

    Output is float32 (H, W, 3) on the 0..255 scale. Values are clipped once, at the end (the SSD code does
    not clip in between either).
    """

    def __init__(
        self,
        brightness_delta: float = 32.0,
        contrast: tuple[float, float] = (0.5, 1.5),
        saturation: tuple[float, float] = (0.5, 1.5),
        hue_delta: float = 18.0,
        p: float = 0.5,
    ) -> None:
        self.brightness = RandomBrightness(brightness_delta, p)
        self.contrast = RandomContrast(*contrast, p=p)
        self.saturation = RandomSaturation(*saturation, p=p)
        self.hue = RandomHue(hue_delta, p)
        self.channel_swap = RandomChannelSwap(p)

    def sample(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """The composed affine colour map (M (3, 3), b (3,)) for one image."""
        steps = [self.brightness.sample(rng)]
        if rng.random() < 0.5:
            steps += [self.contrast.sample(rng), self.saturation.sample(rng), self.hue.sample(rng)]
        else:
            steps += [self.saturation.sample(rng), self.hue.sample(rng), self.contrast.sample(rng)]
        steps.append(self.channel_swap.sample(rng))
        return _compose_affine(steps)

    def __call__(self, image: np.ndarray, boxes: np.ndarray, labels: np.ndarray, rng: Any) -> Sample:
        m, b = self.sample(_need_rng(rng, "RandomPhotometricDistort"))
        return apply_color_matrix(image, m, b), boxes, labels

    def __repr__(self) -> str:
        return (
            f"RandomPhotometricDistort(brightness_delta={self.brightness.delta}, "
            f"contrast=({self.contrast.lower}, {self.contrast.upper}), "
            f"saturation=({self.saturation.lower}, {self.saturation.upper}), "
            f"hue_delta={self.hue.delta}, p={self.brightness.p})"
        )


# --------------------------------------------------------------------------------------- geometric


class RandomZoomOut:
    """Zoom out ("expand" in the SSD code): place the image on a canvas up to ``max_ratio`` times its side,
    filled with ``fill`` (the dataset mean, so it becomes 0 after Normalize), with probability p.

    Objects become smaller, which gives the small-object feature maps more to learn from.
    """

    def __init__(self, fill: Sequence[float] = MEAN, max_ratio: float = 4.0, p: float = 0.5) -> None:
        if not max_ratio >= 1.0:
            raise ValueError(f"RandomZoomOut(max_ratio): expected >= 1, got {max_ratio!r}")
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"RandomZoomOut(p): expected a probability in [0, 1], got {p!r}")
        self.fill = np.asarray(fill, dtype=np.float32).reshape(3)
        self.max_ratio = float(max_ratio)
        self.p = float(p)

    def __call__(self, image: np.ndarray, boxes: np.ndarray, labels: np.ndarray, rng: Any) -> Sample:
        rng = _need_rng(rng, "RandomZoomOut")
        if rng.random() >= self.p:
            return image, boxes, labels
        h, w = image.shape[:2]
        ratio = rng.uniform(1.0, self.max_ratio)
        new_h, new_w = int(h * ratio), int(w * ratio)
        top = int(rng.integers(0, new_h - h + 1))
        left = int(rng.integers(0, new_w - w + 1))
        fill = self.fill if image.dtype != np.uint8 else np.clip(np.rint(self.fill), 0, 255)
        canvas = np.empty((new_h, new_w, 3), dtype=image.dtype)
        # Fill only the border around the image (the image covers the rest), from one pre-built row:
        # a (new_w, 3) row copied per line is much faster than broadcasting a 3-vector over the canvas.
        row = np.tile(fill.astype(image.dtype), (new_w, 1))
        canvas[:top] = row
        canvas[top + h :] = row
        canvas[top : top + h, :left] = row[:left]
        canvas[top : top + h, left + w :] = row[left + w :]
        canvas[top : top + h, left : left + w] = image
        # Normalised coordinates: x_new = (x * w + left) / new_w.
        scale = np.array([w, h, w, h], dtype=np.float64) / [new_w, new_h, new_w, new_h]
        offset = np.array([left, top, left, top], dtype=np.float64) / [new_w, new_h, new_w, new_h]
        b, lab = _finish_boxes(boxes.astype(np.float64) * scale + offset, labels)
        return canvas, b, lab

    def __repr__(self) -> str:
        return f"RandomZoomOut(fill={tuple(self.fill.tolist())}, max_ratio={self.max_ratio}, p={self.p})"


def _centres_inside(centres: np.ndarray, patches: np.ndarray) -> np.ndarray:
    """(T, G) bool: centre g (G, 2) lies strictly inside patch t (T, 4) corners."""
    return (
        (centres[None, :, 0] > patches[:, None, 0])
        & (centres[None, :, 0] < patches[:, None, 2])
        & (centres[None, :, 1] > patches[:, None, 1])
        & (centres[None, :, 1] < patches[:, None, 3])
    )


class RandomIoUCrop:
    """The SSD random crop ("RandomSampleCrop"): pick one option at random from ``"original"`` (keep the whole
    image, if ``include_original``) and ``min_ious``; ``None`` there means a patch with no IoU constraint,
    a number ``t`` means a patch whose IoU (:func:`minissd.boxes.iou`) with at least one object is >= t (the
    Caffe SSD sampler's rule).

    A patch has sides uniform in [min_scale, 1] of the image's and aspect ratio (h / w) within ``aspect``.
    Objects whose centres fall inside the patch are kept and clipped to it; a patch that keeps no object is
    rejected. Up to ``max_trials`` patches are tried; if none passes, the image is returned unchanged.
    Images without objects are returned unchanged too.
    """

    def __init__(
        self,
        min_ious: Sequence[float | None] = (None, 0.1, 0.3, 0.5, 0.7, 0.9),
        include_original: bool = True,
        max_trials: int = 50,
        min_scale: float = 0.3,
        aspect: tuple[float, float] = (0.5, 2.0),
    ) -> None:
        for t in min_ious:
            if t is not None and not 0.0 <= t <= 1.0:
                raise ValueError(
                    f"RandomIoUCrop(min_ious): expected None or values in [0, 1], got {min_ious!r}"
                )
        if not 0.0 < min_scale <= 1.0:
            raise ValueError(f"RandomIoUCrop(min_scale): expected a fraction in (0, 1], got {min_scale!r}")
        if not 0.0 < aspect[0] <= aspect[1]:
            raise ValueError(f"RandomIoUCrop(aspect): expected 0 < low <= high, got {aspect!r}")
        if max_trials < 1:
            raise ValueError(f"RandomIoUCrop(max_trials): expected >= 1, got {max_trials!r}")
        self.options: list[float | None | str] = (["original"] if include_original else []) + list(min_ious)
        if not self.options:
            raise ValueError("RandomIoUCrop: no options (min_ious empty and include_original False)")
        self.max_trials = int(max_trials)
        self.min_scale = float(min_scale)
        self.aspect = (float(aspect[0]), float(aspect[1]))

    def sample_patch(
        self, image_shape: tuple[int, ...], boxes: np.ndarray, rng: np.random.Generator
    ) -> tuple[float | None | str, np.ndarray | None]:
        """Choose an option and a patch for an image of ``image_shape`` (H, W, ...) with these boxes.

        Returns ``(option, patch)``: patch is (4,) int64 pixel corners (x0, y0, x1, y1), x1 exclusive, or
        None when the whole image is kept (option "original", no objects, or no candidate passed).
        """
        option = self.options[int(rng.integers(len(self.options)))]
        if option == "original" or len(boxes) == 0:
            return option, None
        h, w = image_shape[:2]
        pixel = np.asarray(boxes, dtype=np.float64) * [w, h, w, h]  # (G, 4) in pixels
        centres = (pixel[:, :2] + pixel[:, 2:]) / 2.0  # (G, 2)
        # All max_trials candidate patches at once (T = max_trials), then the first that passes is used:
        # the same distribution as trying them one by one, without a Python loop over trials.
        t = self.max_trials
        cw = (rng.uniform(self.min_scale, 1.0, t) * w).astype(np.int64)  # (T,) patch sizes in pixels
        ch = (rng.uniform(self.min_scale, 1.0, t) * h).astype(np.int64)
        left = (rng.random(t) * (w - cw + 1)).astype(np.int64)  # uniform in 0..w-cw
        top = (rng.random(t) * (h - ch + 1)).astype(np.int64)
        patches = np.stack([left, top, left + cw, top + ch], axis=1)  # (T, 4)
        ok = (cw >= 1) & (ch >= 1)
        ratio = ch / np.maximum(cw, 1)
        ok &= (ratio >= self.aspect[0]) & (ratio <= self.aspect[1])
        if option is not None:
            ok &= iou(pixel, patches).max(axis=0) >= option  # some object overlaps the patch enough
        # inside[t, g]: the centre of object g lies strictly inside patch t; a patch must keep one object.
        ok &= _centres_inside(centres, patches).any(axis=1)
        passing = np.flatnonzero(ok)
        return option, (patches[passing[0]] if len(passing) else None)

    def __call__(self, image: np.ndarray, boxes: np.ndarray, labels: np.ndarray, rng: Any) -> Sample:
        rng = _need_rng(rng, "RandomIoUCrop")
        _, patch = self.sample_patch(image.shape, boxes, rng)
        if patch is None:
            return image, boxes, labels
        h, w = image.shape[:2]
        x0, y0, x1, y1 = (int(v) for v in patch)
        pixel = boxes.astype(np.float64) * [w, h, w, h]
        keep = _centres_inside((pixel[:, :2] + pixel[:, 2:]) / 2.0, patch[None])[0]
        kept = pixel[keep]
        # Clip to the patch, then express in the patch's normalised coordinates.
        kept[:, :2] = np.maximum(kept[:, :2], [x0, y0])
        kept[:, 2:] = np.minimum(kept[:, 2:], [x1, y1])
        kept = (kept - [x0, y0, x0, y0]) / [x1 - x0, y1 - y0, x1 - x0, y1 - y0]
        b, lab = _finish_boxes(kept, labels[keep])
        return image[y0:y1, x0:x1], b, lab

    def __repr__(self) -> str:
        return (
            f"RandomIoUCrop(options={self.options}, max_trials={self.max_trials}, "
            f"min_scale={self.min_scale}, aspect={self.aspect})"
        )


class RandomHorizontalFlip:
    """Mirror the image left-right with probability p; x becomes 1 - x (so xmin and xmax swap roles)."""

    def __init__(self, p: float = 0.5) -> None:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"RandomHorizontalFlip(p): expected a probability in [0, 1], got {p!r}")
        self.p = float(p)

    def __call__(self, image: np.ndarray, boxes: np.ndarray, labels: np.ndarray, rng: Any) -> Sample:
        rng = _need_rng(rng, "RandomHorizontalFlip")
        if rng.random() >= self.p:
            return image, boxes, labels
        flipped = boxes.astype(np.float64)[:, [2, 1, 0, 3]]
        flipped[:, [0, 2]] = 1.0 - flipped[:, [0, 2]]
        b, lab = _finish_boxes(flipped, labels)
        return image[:, ::-1], b, lab

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"


# ------------------------------------------------------------------------------------------ resize


@functools.lru_cache(maxsize=256)
def _linear_taps(out_size: int, in_extent: float, in_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bilinear sampling positions along one axis with pixel centres at half-integers.

    Output pixel j has its centre at (j + 0.5) * in_extent / out_size in input units, i.e. at sample
    position (j + 0.5) * in_extent / out_size - 0.5, clamped to [0, in_size - 1] (edge replication).
    Returns the two neighbouring indices i0, i1 (out_size,) and the weight of i1, float32 (out_size,).
    """
    pos = (np.arange(out_size, dtype=np.float64) + 0.5) * (in_extent / out_size) - 0.5
    pos = np.clip(pos, 0.0, in_size - 1)
    i0 = np.floor(pos).astype(np.intp)
    i1 = np.minimum(i0 + 1, in_size - 1)
    w1 = (pos - i0).astype(np.float32)
    for a in (i0, i1, w1):  # cached and shared between loader threads: read only
        a.flags.writeable = False
    return i0, i1, w1


def _block_mean(x: np.ndarray, k: int, axis: int) -> np.ndarray:
    """Average non-overlapping blocks of k samples along axis (0 or 1) -> float32.

    A last, partial block is completed by repeating the edge sample. Done with k strided slices added
    together, which is several times faster than ``reshape(...).mean(axis)`` on an inner axis.
    """
    x = np.swapaxes(x, 0, axis) if axis else x  # a view: work along axis 0
    n = x.shape[0]
    q, r = divmod(n, k)
    acc = x[0 : q * k : k].astype(np.float32)
    for j in range(1, k):
        acc += x[j : q * k : k]
    if r:
        tail = x[q * k :].sum(axis=0, dtype=np.float32) + (k - r) * x[-1].astype(np.float32)
        acc = np.concatenate([acc, tail[None]], axis=0)
    acc *= np.float32(1.0 / k)
    return np.swapaxes(acc, 0, axis) if axis else acc


def resize_image(image: np.ndarray, size: int | tuple[int, int], antialias: bool = True) -> np.ndarray:
    """Bilinear resize of an (H, W, C) image to (size_h, size_w, C) float32, vectorised NumPy.

    Pixel centres at half-integers (as in OpenCV and PIL), so the image extent maps exactly onto the new
    one and normalised boxes need no change. When shrinking by 2x or more along an axis with ``antialias``,
    blocks of floor(factor) pixels are first averaged, so thin lines and small objects do not alias away.
    """
    out_h, out_w = (size, size) if isinstance(size, (int, np.integer)) else size
    h, w = image.shape[:2]
    x = image
    ext_h, ext_w = float(h), float(w)  # extent of the image in units of x's samples
    if antialias and h >= 2 * out_h:
        k = h // out_h
        x = _block_mean(x, k, 0)
        ext_h = h / k
    if antialias and w >= 2 * out_w:
        k = w // out_w
        x = _block_mean(x, k, 1)
        ext_w = w / k
    r0, r1, wr = _linear_taps(int(out_h), ext_h, x.shape[0])
    c0, c1, wc = _linear_taps(int(out_w), ext_w, x.shape[1])
    # Rows first (gathering whole rows is cheap), then columns; uint8 is gathered before the float cast.
    top = x[r0].astype(np.float32, copy=False)
    bottom = x[r1].astype(np.float32, copy=False)
    rows = top + (bottom - top) * wr[:, None, None]
    left = rows[:, c0]
    right = rows[:, c1]
    return left + (right - left) * wc[None, :, None]


class Resize:
    """Resize to size x size (bilinear, pure NumPy, see :func:`resize_image`); boxes are unchanged
    because they are normalised. Output float32 (size, size, 3); a no-op cast when already that size."""

    def __init__(self, size: int, antialias: bool = True) -> None:
        if not isinstance(size, (int, np.integer)) or size < 1:
            raise ValueError(f"Resize(size): expected a positive integer, got {size!r}")
        self.size = int(size)
        self.antialias = bool(antialias)

    def __call__(self, image: np.ndarray, boxes: np.ndarray, labels: np.ndarray, rng: Any = None) -> Sample:
        if image.shape[:2] == (self.size, self.size):
            return image.astype(np.float32, copy=False), boxes, labels
        return resize_image(image, self.size, self.antialias), boxes, labels

    def __repr__(self) -> str:
        return f"Resize(size={self.size}, antialias={self.antialias})"


class Normalize:
    """(H, W, 3) on the 0..255 scale -> (3, H, W) float32 ``(image - mean) / std``, the network's input."""

    def __init__(self, mean: Sequence[float] = MEAN, std: Sequence[float] = STD) -> None:
        self.mean = np.asarray(mean, dtype=np.float32).reshape(3)
        self.std = np.asarray(std, dtype=np.float32).reshape(3)
        if not np.all(self.std > 0):
            raise ValueError(f"Normalize(std): expected three positive values, got {std!r}")

    def __call__(self, image: np.ndarray, boxes: np.ndarray, labels: np.ndarray, rng: Any = None) -> Sample:
        x = (np.asarray(image, dtype=np.float32) - self.mean) * (1.0 / self.std)
        return np.ascontiguousarray(x.transpose(2, 0, 1)), boxes, labels

    def inverse(self, chw: Any) -> np.ndarray:
        """(3, H, W) network input -> (H, W, 3) uint8 image, for drawing."""
        x = np.asarray(chw, dtype=np.float32).transpose(1, 2, 0) * self.std + self.mean
        return np.clip(np.rint(x), 0, 255).astype(np.uint8)

    def __repr__(self) -> str:
        return f"Normalize(mean={tuple(self.mean.tolist())}, std={tuple(self.std.tolist())})"


# ---------------------------------------------------------------------------------------- pipelines


def train_transform(
    size: int = 160,
    mean: Sequence[float] = MEAN,
    std: Sequence[float] = STD,
    zoom_out_max: float = 4.0,
) -> Compose:
    """The SSD training pipeline: photometric distortion, zoom out (canvas up to ``zoom_out_max`` times the
    side, filled with ``mean``), min-IoU random crop, horizontal flip, resize to size x size, normalise.

    Output of ``t(image, boxes, labels, rng)``: ((3, size, size) float32, boxes, labels).
    """
    return Compose(
        [
            RandomPhotometricDistort(),
            RandomZoomOut(fill=mean, max_ratio=zoom_out_max),
            RandomIoUCrop(),
            RandomHorizontalFlip(),
            Resize(size),
            Normalize(mean, std),
        ]
    )


def eval_transform(size: int = 160, mean: Sequence[float] = MEAN, std: Sequence[float] = STD) -> Compose:
    """The evaluation pipeline: resize to size x size and normalise; no randomness (rng may be None)."""
    return Compose([Resize(size), Normalize(mean, std)])
