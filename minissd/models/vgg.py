"""The modified VGG16 that SSD uses as its base network.

VGG16 (Simonyan & Zisserman) is thirteen 3x3 convolutions in five blocks separated by 2x2 max pools,
followed by three fully connected layers. SSD keeps conv1_1 .. conv5_3 and changes the rest:

- pool3 rounds up (``ceil_mode``), so a 300x300 input gives 38x38 at conv4_3 instead of 37x37;
- pool5 becomes 3x3, stride 1, padding 1: it keeps fc6/fc7 at conv5's resolution (19x19);
- fc6 becomes a 3x3 convolution with dilation 6 (the "atrous" trick): it sees a 13x13 window like the
  pooled 7x7 FC layer did, with a fraction of the parameters (4.7 M instead of 103 M);
- fc7 becomes a 1x1 convolution; dropout and fc8 (the ImageNet classifier) are removed.

The two outputs used for detection are conv4_3 (stride 8, fine detail, small objects) and fc7
(stride 16). A width multiplier scales every channel count for the small presets, and optional
BatchNorm after each convolution (VGG16-BN) helps the small presets train from scratch.
"""

from __future__ import annotations

from typing import Any

from ..autograd import Tensor
from ..config import vgg_feature_sizes
from ..nn import BatchNorm2d, Conv2d, MaxPool2d, Module
from ..nn import functional as F
from ..sizes import scaled_channels

# (name, out_channels) for convolutions, ("pool<k>", None) for pools, in VGG16's order
VGG16_LAYERS: tuple[tuple[str, int | None], ...] = (
    ("conv1_1", 64), ("conv1_2", 64), ("pool1", None),
    ("conv2_1", 128), ("conv2_2", 128), ("pool2", None),
    ("conv3_1", 256), ("conv3_2", 256), ("conv3_3", 256), ("pool3", None),
    ("conv4_1", 512), ("conv4_2", 512), ("conv4_3", 512), ("pool4", None),
    ("conv5_1", 512), ("conv5_2", 512), ("conv5_3", 512), ("pool5", None),
)
FC_CHANNELS = 1024


class VGGBase(Module):
    """VGG16 conv1_1 .. conv5_3, pool5 (3x3/s1/p1), fc6 (3x3, dilation 6) and fc7 (1x1) as convolutions.

    Args:
        width: channel multiplier (1.0 = VGG16's 64 .. 512 and 1024 for fc6/fc7).
        batch_norm: add BatchNorm2d after every convolution (attributes ``bn1_1`` .. ``bn7``).
        in_channels: image channels (3).

    Call with x (N, C, H, W); returns ``(conv4_3, fc7)``: conv4_3 after ReLU, (N, 512*width, H/8, W/8)
    with pool3 rounding up, and fc7 after ReLU, (N, 1024*width, H/16, W/16) likewise rounded.
    """

    def __init__(self, width: float = 1.0, batch_norm: bool = False, in_channels: int = 3) -> None:
        super().__init__()
        self.width, self.batch_norm = float(width), bool(batch_norm)
        self._order: list[str] = []
        channels = in_channels
        for name, out in VGG16_LAYERS:
            if out is None:
                if name == "pool5":
                    pool = MaxPool2d(3, stride=1, padding=1)
                else:
                    pool = MaxPool2d(2, stride=2, ceil_mode=(name == "pool3"))
                setattr(self, name, pool)
            else:
                out = scaled_channels(out, width)
                setattr(self, name, Conv2d(channels, out, 3, padding=1))
                if batch_norm:
                    setattr(self, "bn" + name[4:], BatchNorm2d(out))
                channels = out
            self._order.append(name)
        self.conv4_3_channels = scaled_channels(512, width)
        fc = scaled_channels(FC_CHANNELS, width)
        self.fc6 = Conv2d(channels, fc, 3, padding=6, dilation=6)
        self.fc7 = Conv2d(fc, fc, 1)
        if batch_norm:
            self.bn6 = BatchNorm2d(fc)
            self.bn7 = BatchNorm2d(fc)
        self.fc7_channels = fc

    def _conv(self, name: str, x: Tensor) -> Tensor:
        x = getattr(self, name)(x)
        if self.batch_norm:
            x = getattr(self, "bn" + name.replace("conv", "").replace("fc", ""))(x)
        return F.relu(x, inplace=True)

    def forward(self, x: Any) -> tuple[Tensor, Tensor]:
        conv4_3 = None
        for name in self._order:
            if name.startswith("pool"):
                x = getattr(self, name)(x)
            else:
                x = self._conv(name, x)
                if name == "conv4_3":
                    conv4_3 = x
        x = self._conv("fc6", x)
        fc7 = self._conv("fc7", x)
        return conv4_3, fc7

    @staticmethod
    def feature_sizes(input_size: int) -> tuple[int, int]:
        """Sides of conv4_3 and fc7 for a square input of ``input_size`` pixels (see
        :func:`minissd.config.vgg_feature_sizes`, which the config uses before any layer exists)."""
        return vgg_feature_sizes(input_size)
