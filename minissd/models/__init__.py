"""Detectors: the modified VGG16 base, SSD and its presets, the YOLOv1-style grid for contrast, and the registry
of named models (:mod:`minissd.models.registry`)."""

from .registry import build_model, default_lr, model_names, shipped_weights
from .ssd import SSD, ssd300, ssd512, ssd_mini
from .vgg import VGGBase
from .yolov1 import YOLOv1, yolov1_mini

__all__ = ["SSD", "VGGBase", "YOLOv1", "build_model", "default_lr", "model_names", "shipped_weights", "ssd300",
           "ssd512", "ssd_mini", "yolov1_mini"]
