"""Detectors: the modified VGG16 base, SSD and its presets, and the YOLOv1-style grid for contrast."""

from .ssd import SSD, ssd300, ssd512, ssd_mini
from .vgg import VGGBase
from .yolov1 import YOLOv1, yolov1_mini

__all__ = ["SSD", "VGGBase", "YOLOv1", "ssd300", "ssd512", "ssd_mini", "yolov1_mini"]
