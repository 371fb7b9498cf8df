"""The shared size rules: output length of a sliding window, and channel scaling."""

import doctest

import pytest

from minissd import sizes
from minissd.sizes import conv_output_size, scaled_channels


def count_windows(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    """Count the window starts whose whole (dilated) window lies inside the padded input, as on paper."""
    span = dilation * (kernel - 1) + 1
    n, start = 0, -padding
    while start + span <= size + padding:
        n, start = n + 1, start + stride
    return n


@pytest.mark.parametrize("size", [1, 5, 19, 38, 75, 300])
@pytest.mark.parametrize("kernel,stride,padding,dilation", [(3, 1, 1, 1), (2, 2, 0, 1), (3, 2, 1, 1),
                                                            (3, 1, 6, 6), (1, 1, 0, 1), (3, 3, 0, 1)])
def test_floor_mode_counts_the_windows_that_fit(size, kernel, stride, padding, dilation):
    expect = count_windows(size, kernel, stride, padding, dilation)
    got = conv_output_size(size, kernel, stride, padding, dilation)
    assert got == expect if expect > 0 else got <= 0  # no window fits: the formula says so too


def test_hand_worked_sizes():
    assert conv_output_size(300, 3, 1, 1) == 300          # 3x3 same convolution
    assert conv_output_size(300, 2, 2) == 150              # pool1
    assert conv_output_size(75, 2, 2) == 37                # floor mode
    assert conv_output_size(75, 2, 2, ceil_mode=True) == 38  # SSD's pool3
    assert conv_output_size(19, 3, 1, 1, ceil_mode=True) == 19  # pool5 3x3/s1/p1
    assert conv_output_size(19, 3, 2, 1) == 10              # conv8_2
    assert conv_output_size(3, 3) == 1                      # conv10_2, conv11_2
    # 5 inputs, k2 s2: windows start at 0, 2 (floor: 2); ceil adds the partial window at 4, which
    # starts on a real input
    assert conv_output_size(5, 2, 2) == 2
    assert conv_output_size(5, 2, 2, ceil_mode=True) == 3
    # 3 inputs, k2 s2 p1: windows at -1, 1 fit; a third would start at 3, inside the right padding only
    assert conv_output_size(3, 2, 2, 1, ceil_mode=True) == 2


def test_scaled_channels_rounds_and_never_reaches_zero():
    assert scaled_channels(512, 1 / 8) == 64
    assert scaled_channels(1024, 0.125) == 128
    assert scaled_channels(3, 0.1) == 1
    assert scaled_channels(64, 1.0) == 64


def test_docstring_examples():
    assert doctest.testmod(sizes).failed == 0
