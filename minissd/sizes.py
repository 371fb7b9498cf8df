"""The two size rules every layer of the network shares: output length of a window and scaled channels.

Plain integers, no arrays: the config (to compute feature-map sizes before any layer exists), the
convolution and pooling layers, and the model builders all use these two functions and no other copy.
"""

from __future__ import annotations


def conv_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1,
                     ceil_mode: bool = False) -> int:
    """Output length along one axis of a convolution or pooling window sliding over ``size`` inputs.

    ``floor((size + 2p - d(k - 1) - 1) / s) + 1``, or ``ceil`` of the fraction with ``ceil_mode``.
    In ceil mode a last window that would start inside the right padding is dropped, so every window
    sees at least one real input (Caffe's and PyTorch's rule). SSD's pool3 uses ceil mode to go from
    75 to 38 (floor mode would give 37).

    >>> conv_output_size(300, 3, padding=1)        # a 3x3 convolution keeps the size
    300
    >>> conv_output_size(75, 2, stride=2, ceil_mode=True), conv_output_size(75, 2, stride=2)
    (38, 37)
    >>> conv_output_size(19, 3, padding=6, dilation=6)   # fc6: 3x3 with dilation 6
    19
    """
    span = size + 2 * padding - dilation * (kernel - 1) - 1
    if not ceil_mode:
        return span // stride + 1
    out = -(-span // stride) + 1
    if (out - 1) * stride >= size + padding:
        out -= 1
    return out


def scaled_channels(channels: int, width: float) -> int:
    """``channels * width`` rounded, at least 1: the channel count of a narrower network.

    >>> scaled_channels(512, 1 / 8), scaled_channels(3, 0.1)
    (64, 1)
    """
    return max(1, int(round(channels * width)))
