"""The one table of named detectors: what ``minissd train --model NAME``, notebooks and benchmarks build.

Each entry says how to build the model, the learning rate that trains it without ``--lr``, its input
size, a one-line description, and the weights file shipped in ``minissd/weights/`` (if any)::

    from minissd.models.registry import build_model, default_lr, shipped_weights
    model = build_model("ssd_mini", num_classes=8)
    lr = default_lr("ssd_mini", "adam")            # 1e-2
    path = shipped_weights("ssd_mini")             # .../minissd/weights/ssd_mini_shapes.npz

A checkpoint stores ``model.describe()``, a JSON-able dict with a ``"kind"`` ("ssd" or "yolov1") and
everything the class needs; :func:`model_from_description` rebuilds an untrained model from it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..config import SSDConfig
from ..nn import Module
from .ssd import SSD, ssd300, ssd512, ssd_mini
from .yolov1 import YOLOv1, yolov1_mini

#: the folder of the weights that ship inside the package
WEIGHTS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "weights")


@dataclass(frozen=True)
class ModelSpec:
    """One named detector.

    builder: ``builder(num_classes=..., **options)`` -> a freshly initialised model.
    lr: default peak learning rate per optimizer name ("adam", "sgd").
    input_size: side of the square input, pixels.
    description: one line for ``--help`` and tables.
    config: for an SSD, the preset of its geometry (``config(num_classes=...)`` -> SSDConfig), else None.
    weights: file name of the shipped weights in :data:`WEIGHTS_DIR`, or None.
    """

    builder: Callable[..., Module]
    lr: Mapping[str, float]
    input_size: int
    description: str
    config: Callable[..., SSDConfig] | None = None
    weights: str | None = None


# The mini detectors train best with Adam 1e-2 (of 3e-3, 1e-2 and 2e-2, see docs/benchmarks.md); the full-size
# ones use the paper's SGD rate 1e-3, and 1e-3 is also the safe Adam rate for them.
MODELS: dict[str, ModelSpec] = {
    "ssd_mini": ModelSpec(ssd_mini, {"adam": 1e-2, "sgd": 1e-3}, 160,
                          "SSD on a 1/8-width VGG16 with BatchNorm, 160 px, 2390 default boxes (trains on a CPU)",
                          config=SSDConfig.mini, weights="ssd_mini_shapes.npz"),
    "ssd300": ModelSpec(ssd300, {"adam": 1e-3, "sgd": 1e-3}, 300,
                        "SSD300 as released: VGG16, 6 source maps, 8732 default boxes", config=SSDConfig.ssd300),
    "ssd512": ModelSpec(ssd512, {"adam": 1e-3, "sgd": 1e-3}, 512,
                        "SSD512 as released: VGG16, 7 source maps, 24564 default boxes", config=SSDConfig.ssd512),
    "yolov1": ModelSpec(yolov1_mini, {"adam": 1e-2, "sgd": 1e-3}, 160,
                        "YOLOv1-style 7x7 grid, 2 boxes per cell, on ssd_mini's backbone (the contrast)",
                        weights="yolov1_mini_shapes.npz"),
}

#: the model classes a checkpoint's ``"kind"`` names
KINDS: dict[str, type[Module]] = {"ssd": SSD, "yolov1": YOLOv1}


def model_names() -> tuple[str, ...]:
    """The registered model names, in table order."""
    return tuple(MODELS)


def spec(name: str) -> ModelSpec:
    """The :class:`ModelSpec` of ``name``; ValueError listing the names when it is unknown."""
    if name not in MODELS:
        raise ValueError(f"model name: expected one of {', '.join(MODELS)}, got {name!r}")
    return MODELS[name]


def build_model(name: str, num_classes: int | None = None, **options: Any) -> Module:
    """A freshly initialised ``name`` detector (``num_classes`` with background; None: the builder's default).

    ``options`` go to the builder (e.g. ``background_prior=0.99`` for the SSDs).
    """
    builder = spec(name).builder
    return builder(**options) if num_classes is None else builder(num_classes=num_classes, **options)


def default_lr(name: str, optimizer: str = "adam") -> float:
    """The peak learning rate ``minissd train`` uses for ``name`` with ``optimizer`` ("adam" or "sgd")."""
    rates = spec(name).lr
    if optimizer not in rates:
        raise ValueError(f"default_lr(optimizer): expected one of {', '.join(rates)}, got {optimizer!r}")
    return rates[optimizer]


def ssd_names() -> tuple[str, ...]:
    """The names whose geometry is an SSDConfig preset (those ``minissd boxes`` can show)."""
    return tuple(n for n, s in MODELS.items() if s.config is not None)


def ssd_config(name: str, num_classes: int | None = None) -> SSDConfig:
    """The SSDConfig preset of an SSD ``name`` (no network is built)."""
    make = spec(name).config
    if make is None:
        raise ValueError(f"ssd_config(name): {name!r} is not an SSD; expected one of {', '.join(ssd_names())}")
    return make() if num_classes is None else make(num_classes=num_classes)


def shipped_weights(name: str = "ssd_mini") -> str:
    """Path of the weights shipped inside the package for ``name`` ("ssd_mini" or "yolov1").

    The file may be missing in a trimmed copy of the package; check with ``os.path.isfile``.
    """
    weights = spec(name).weights
    if weights is None:
        shipped = [n for n, s in MODELS.items() if s.weights]
        raise ValueError(f"shipped_weights(name): no weights ship for {name!r}; they do for {', '.join(shipped)}")
    return os.path.join(WEIGHTS_DIR, weights)


def model_from_description(description: Mapping[str, Any]) -> Module:
    """The untrained model that ``model.describe()`` returned ``description`` for (read from a checkpoint)."""
    if not isinstance(description, Mapping):
        raise ValueError(f"model description: expected a dict with a 'kind', got {type(description).__name__}")
    kind = description.get("kind")
    if kind not in KINDS:
        raise ValueError(f"model description: unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
    return KINDS[kind].from_description(description)  # type: ignore[attr-defined]
