"""Detection data: the synthetic ShapesDataset, the PASCAL VOC and COCO readers, SSD augmentation and the
DataLoader.

Every dataset item is ``(image (H, W, 3) uint8 RGB, boxes (G, 4) float32 normalised corners, labels (G,)
int64 in 1..num_classes-1)``, and ``dataset.class_names[0] == "background"``.
"""

from .coco import COCODataset, export_coco
from .loader import ConcatDataset, DataLoader, Subset, split_off
from .synthetic import EVAL_SEED, SHAPE_CLASS_NAMES, ShapesDataset, ShapesSample
from .transforms import (
    MEAN,
    STD,
    Compose,
    Normalize,
    RandomBrightness,
    RandomChannelSwap,
    RandomContrast,
    RandomHorizontalFlip,
    RandomHue,
    RandomIoUCrop,
    RandomPhotometricDistort,
    RandomSaturation,
    RandomZoomOut,
    Resize,
    eval_transform,
    resize_image,
    train_transform,
)
from .voc import VOC_CLASS_NAMES, VOCDataset, export_voc

__all__ = [
    "COCODataset",
    "EVAL_SEED",
    "MEAN",
    "SHAPE_CLASS_NAMES",
    "STD",
    "VOC_CLASS_NAMES",
    "Compose",
    "ConcatDataset",
    "DataLoader",
    "Subset",
    "Normalize",
    "RandomBrightness",
    "RandomChannelSwap",
    "RandomContrast",
    "RandomHorizontalFlip",
    "RandomHue",
    "RandomIoUCrop",
    "RandomPhotometricDistort",
    "RandomSaturation",
    "RandomZoomOut",
    "Resize",
    "ShapesDataset",
    "ShapesSample",
    "split_off",
    "VOCDataset",
    "eval_transform",
    "export_coco",
    "export_voc",
    "resize_image",
    "train_transform",
]
