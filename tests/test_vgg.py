"""The modified VGG16 base: shapes, SSD's changes to VGG16, parameter counts."""

import numpy as np
import pytest

from minissd import backend
from minissd.models.vgg import VGGBase
from minissd.sizes import conv_output_size, scaled_channels

# Classroom assignments (docs/assignments.md): VGG runs convolution and pooling, which a student copy leaves
# to the student; these tests need those assignments (they are not graded by them).
pytestmark = pytest.mark.needs("conv2d", "max_pool")


def test_pool3_ceil_mode_gives_38_at_300():
    # conv3 at 300 input: 300 -> 150 -> 75; a 2x2/s2 pool on 75 floors to 37 but rounds up to 38
    assert conv_output_size(75, 2, 2) == 37
    assert conv_output_size(75, 2, 2, ceil_mode=True) == 38
    # pool5 (3x3, stride 1, padding 1) keeps the size; fc6 (3x3, dilation 6, padding 6) too
    assert conv_output_size(19, 3, 1, 1) == 19
    assert conv_output_size(19, 3, 1, 6, dilation=6) == 19
    # and the backbone's own layers agree: 300 -> 38 at conv4_3 because pool3 rounds up
    base = VGGBase(width=1 / 64)
    assert base.pool3.ceil_mode and not base.pool2.ceil_mode


@pytest.mark.parametrize("size, expected", [(300, (38, 19)), (512, (64, 32)), (160, (20, 10))])
def test_feature_sizes(size, expected):
    assert VGGBase.feature_sizes(size) == expected


def test_forward_shapes_match_feature_sizes():
    xp = backend.xp()
    base = VGGBase(width=1 / 16)
    x = xp.asarray(np.random.default_rng(0).standard_normal((2, 3, 75, 75)).astype(np.float32))
    conv4_3, fc7 = base(x)
    s4, s7 = VGGBase.feature_sizes(75)
    # 75 -> 37 -> 18 -> 9 (ceil) for conv4_3, 4 for fc7
    assert (s4, s7) == (9, 4)
    assert conv4_3.shape == (2, 32, 9, 9)
    assert fc7.shape == (2, 64, 4, 4)


def test_fc6_fc7_are_convolutions_with_the_papers_shapes():
    base = VGGBase(width=1.0)
    # fc6: 3x3 atrous convolution 512 -> 1024 (dilation 6); fc7: 1x1 1024 -> 1024
    assert base.fc6.weight.shape == (1024, 512, 3, 3)
    assert base.fc7.weight.shape == (1024, 1024, 1, 1)
    assert base.fc6.num_parameters() == 3 * 3 * 512 * 1024 + 1024
    # VGG16's 13 convolutions: 14,714,688 parameters (the ImageNet model's conv part)
    conv = sum(getattr(base, n).num_parameters() for n, c in
               [(f"conv{b}_{i}", None) for b, k in ((1, 2), (2, 2), (3, 3), (4, 3), (5, 3)) for i in range(1, k + 1)])
    assert conv == 14_714_688


def test_width_multiplier_and_batch_norm():
    base = VGGBase(width=0.125, batch_norm=True)
    assert scaled_channels(512, 0.125) == 64 and scaled_channels(64, 0.125) == 8
    assert base.conv1_1.weight.shape == (8, 3, 3, 3)
    assert base.conv4_3_channels == 64 and base.fc7_channels == 128
    names = dict(base.named_parameters())
    assert "bn4_3.weight" in names and "bn7.bias" in names
