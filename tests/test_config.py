"""Tests of minissd.config.SSDConfig: presets, derived numbers, the scale rule and validation errors."""

from __future__ import annotations

import dataclasses

import pytest

from minissd.config import ExtraBlock, SSDConfig
from minissd.sizes import scaled_channels


def test_ssd300_preset_is_the_released_geometry():
    c = SSDConfig.ssd300()
    assert c.input_size == 300 and c.num_classes == 21
    assert c.feature_maps == (38, 19, 10, 5, 3, 1)
    assert c.steps == (8, 16, 32, 64, 100, 300)
    assert c.min_sizes == (30, 60, 111, 162, 213, 264)
    assert c.max_sizes == (60, 111, 162, 213, 264, 315)
    assert c.variances == (0.1, 0.2) and c.clip is False
    assert c.width == 1.0 and c.batch_norm is False
    assert c.sources == ("conv4_3", "fc7")
    assert c.source_names == ("conv4_3", "fc7", "conv8_2", "conv9_2", "conv10_2", "conv11_2")
    # conv8: 1x1 -> 256, 3x3 stride 2 pad 1 -> 512; conv9: 128 -> 256 stride 2; conv10, conv11 valid 3x3
    assert [tuple(e) for e in c.extras] == [(256, 512, 2, 1, 3), (128, 256, 2, 1, 3),
                                            (128, 256, 1, 0, 3), (128, 256, 1, 0, 3)]


def test_box_counts_per_location_and_in_total():
    c = SSDConfig.ssd300()
    # 2 squares + 2 per ratio: (2,) -> 4, (2, 3) -> 6
    assert c.num_priors_per_location == (4, 6, 6, 6, 4, 4)
    # 38^2*4 + 19^2*6 + 10^2*6 + 5^2*6 + 3^2*4 + 1*4 = 5776 + 2166 + 600 + 150 + 36 + 4
    assert c.num_priors == 8732
    s = SSDConfig.ssd512()
    assert s.feature_maps == (64, 32, 16, 8, 4, 2, 1)
    assert s.num_priors_per_location == (4, 6, 6, 6, 6, 4, 4)
    # 16384 + 6144 + 1536 + 384 + 96 + 16 + 4
    assert s.num_priors == 24564
    m = SSDConfig.mini()
    assert m.input_size == 160 and m.feature_maps == (20, 10, 5, 3, 1)
    assert m.num_priors_per_location == (4, 6, 6, 4, 4)
    # 400*4 + 100*6 + 25*6 + 9*4 + 1*4 = 1600 + 600 + 150 + 36 + 4
    assert m.num_priors == 2390
    assert m.width == pytest.approx(1 / 8) and m.batch_norm is True
    # extras are listed at width 1.0 and scaled like VGG: 256 -> 32, 512 -> 64 at width 1/8
    assert [(scaled_channels(e.mid_channels, m.width), scaled_channels(e.out_channels, m.width))
            for e in m.extras] == [(32, 64), (16, 32), (16, 32)]


def test_feature_map_sizes_follow_from_the_layers():
    # SSD300: 300 -> pool1 150 -> pool2 75 -> pool3 (ceil) 38 = conv4_3 -> pool4 19 = fc7;
    # conv8 (19 + 2 - 3) // 2 + 1 = 10; conv9 (10 + 2 - 3) // 2 + 1 = 5; conv10 5 - 3 + 1 = 3; conv11 1
    assert SSDConfig.ssd300().expected_feature_maps() == (38, 19, 10, 5, 3, 1)
    # SSD512's conv12: 4x4 kernel, padding 1 on 2x2: (2 + 2 - 4) // 1 + 1 = 1
    assert SSDConfig.ssd512().expected_feature_maps() == (64, 32, 16, 8, 4, 2, 1)
    # mini: 160 -> 80 -> 40 -> 20 = conv4_3 -> 10 = fc7 -> 5 -> 3 -> 1
    assert SSDConfig.mini().expected_feature_maps() == (20, 10, 5, 3, 1)
    assert ExtraBlock(128, 256, stride=2, padding=1).output_size(19) == 10


def test_mini_sizes_are_increasing_and_cover_small_objects():
    mins, maxs = SSDConfig.mini().resolved_sizes()
    assert all(b > a for a, b in zip(mins, mins[1:]))
    # ShapesDataset objects go down to 4% of 160 px = 6.4 px: the smallest box must be near that
    assert mins[0] <= 12
    # and up to 80% = 128 px: the largest boxes reach it
    assert (mins[-1] * maxs[-1]) ** 0.5 >= 128
    # steps default to input / f
    assert SSDConfig.mini().resolved_steps() == pytest.approx((8, 16, 32, 160 / 3, 160))


def test_scale_rule_by_hand():
    # m = 6 maps, s_min 0.2, s_max 0.9: step (0.9 - 0.2) / 5 = 0.14 -> s = 0.2, 0.34, 0.48, 0.62, 0.76, 0.9,
    # and s_7 = 1.04; times 300 px: 60, 102, 144, 186, 228, 270 and max 102, ..., 270, 312
    c = SSDConfig.ssd300().replace(min_sizes=None, max_sizes=None)
    mins, maxs = c.resolved_sizes()
    assert mins == pytest.approx((60, 102, 144, 186, 228, 270))
    assert maxs == pytest.approx((102, 144, 186, 228, 270, 312))
    c2 = c.replace(s_min=0.1, s_max=0.6)  # step 0.1: 30, 60, 90, 120, 150, 180 px and 210 for the last max
    assert c2.resolved_sizes()[0] == pytest.approx((30, 60, 90, 120, 150, 180))
    assert c2.resolved_sizes()[1][-1] == pytest.approx(210)


def test_table_rows():
    rows = SSDConfig.ssd300().table()
    assert [r["boxes"] for r in rows] == [5776, 2166, 600, 150, 36, 4]
    assert [r["first_index"] for r in rows] == [0, 5776, 7942, 8542, 8692, 8728]
    assert rows[0]["source"] == "conv4_3" and rows[0]["step"] == 8 and rows[0]["scale"] == pytest.approx(0.1)
    assert rows[1]["aspect_ratios"] == (2.0, 3.0) and rows[1]["boxes_per_location"] == 6
    text = SSDConfig.ssd300().format_table()
    assert "conv4_3" in text and "38x38" in text and "8732" in text


def test_sequences_are_normalized_and_config_is_frozen():
    base = SSDConfig.ssd300()
    c = SSDConfig(input_size=300, num_classes=3, feature_maps=[38, 19, 10, 5, 3, 1],
                  aspect_ratios=[[2], [2, 3], [2, 3], [2, 3], [2], [2]],
                  extras=[list(e) for e in base.extras])
    assert c.feature_maps == (38, 19, 10, 5, 3, 1) and c.aspect_ratios[1] == (2.0, 3.0)
    assert isinstance(c.extras[0], ExtraBlock)
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.num_classes = 5  # type: ignore[misc]
    assert c.replace(num_classes=5).num_classes == 5
    assert hash(c) == hash(c.replace())  # pure data: equal configs are equal
    assert c == c.replace()


@pytest.mark.parametrize(
    "changes, field, fragment",
    [
        ({"aspect_ratios": ((2,),) * 5}, "aspect_ratios", r"one sequence of ratios per .* \(6 maps\)"),
        ({"aspect_ratios": ((2,), (2, 0.5), (2,), (2,), (2,), (2,))}, r"aspect_ratios\[1\]", "r > 1"),
        ({"min_sizes": (30, 60, 50, 162, 213, 264)}, "min_sizes", "strictly increasing"),
        ({"max_sizes": (60, 111, 162, 213, 264, 250)}, "max_sizes", "increasing"),
        ({"max_sizes": (30, 111, 162, 213, 264, 315)}, "max_sizes", r"max_sizes\[0\] > min_sizes\[0\]"),
        ({"min_sizes": None}, "min_sizes/max_sizes", "both given"),
        ({"steps": (8, 16, 32)}, "steps", "6 positive numbers"),
        ({"feature_maps": (38, 19, 10, 5, 3, 2)}, "feature_maps", r"\(38, 19, 10, 5, 3, 1\)"),
        ({"input_size": 0}, "input_size", "positive integer"),
        ({"num_classes": 1}, "num_classes", ">= 2"),
        ({"width": 0}, "width", "positive"),
        ({"variances": (0.1,)}, "variances", "two positive numbers"),
        ({"sources": ("fc7", "conv4_3")}, "sources", "in that order"),
        ({"extras": ((256, 512, 0, 1, 3),)}, r"extras\[0\]", "positive integers"),
        ({"min_sizes": None, "max_sizes": None, "s_min": 0.9, "s_max": 0.2}, "s_min/s_max", "0 < s_min"),
    ],
)
def test_validation_names_the_field_the_expectation_and_the_value(changes, field, fragment):
    with pytest.raises(ValueError, match=rf"SSDConfig\({field}\): expected .*{fragment}.*got"):
        SSDConfig.ssd300().replace(**changes)


def test_presets_take_the_number_of_classes():
    assert SSDConfig.ssd300(num_classes=5).num_classes == 5
    assert SSDConfig.ssd512(num_classes=81).num_classes == 81
    assert SSDConfig.mini(num_classes=4).num_classes == 4
    assert scaled_channels(512, SSDConfig.mini().width) == 64
    assert scaled_channels(512, SSDConfig.ssd300().width) == 512
