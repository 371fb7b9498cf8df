"""Published weights into minissd, safely and without PyTorch.

:mod:`minissd.pretrained.reader` reads PyTorch ``.pth``/``.pt`` state dicts (zip and legacy formats) and
``.safetensors`` files into NumPy arrays through an allow-listed unpickler that never runs code from the
file; :mod:`minissd.pretrained.convert` maps the published VGG16 and SSD300 layouts onto minissd's names.
docs/pretrained.md lists the files, their licences and the commands.
"""

from .convert import (
    COCO_CATEGORY_NAMES,
    KINDS,
    Converted,
    convert,
    convert_state_dict,
    detect_kind,
    subsample_fc,
)
from .reader import CheckpointFormatError, UnsafeCheckpointError, check_shape, detect_format, read_state_dict

__all__ = [
    "COCO_CATEGORY_NAMES", "KINDS", "CheckpointFormatError", "Converted", "UnsafeCheckpointError", "check_shape",
    "convert", "convert_state_dict", "detect_format", "detect_kind", "read_state_dict", "subsample_fc",
]
