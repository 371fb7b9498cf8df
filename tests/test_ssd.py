"""SSD: presets, shapes, parameter counts, input errors, gradients, a tiny overfit, detect()."""

import numpy as np
import pytest

from minissd import backend
from minissd.autograd import Tensor
from minissd.config import ExtraBlock, SSDConfig
from minissd.detection import Detections
from minissd.loss import MultiBoxLoss
from minissd.matching import match_batch
from minissd.models import SSD, ssd300, ssd512, ssd_mini
from minissd.optim import Adam

# Classroom assignments (docs/assignments.md): the SSD model needs the code of these assignments, which a
# student copy leaves to the student; these tests need them (they are not graded by them).
pytestmark = pytest.mark.needs("conv2d", "max_pool", "default_boxes", "box_coding", "matching", "multibox_loss")


def tiny_config(num_classes=3):
    # 64 px: conv4_3 8x8, fc7 4x4, conv8_2 2x2 (stride 2), conv9_2 1x1 (2x2 valid)
    return SSDConfig(name="tiny", input_size=64, num_classes=num_classes, feature_maps=(8, 4, 2, 1),
                     aspect_ratios=((2,), (2,), (2,), (2,)), width=1 / 16, batch_norm=True,
                     extras=(ExtraBlock(16, 32, stride=2, padding=1), ExtraBlock(16, 32, 1, 0, 2)))


def _images(n, size, seed=0):
    return backend.xp().asarray(np.random.default_rng(seed).standard_normal((n, 3, size, size)).astype(np.float32))


def test_ssd300_parameter_count_and_boxes():
    model = ssd300(num_classes=21)
    # the released SSD300 for VOC (21 classes) has 26,285,486 parameters and 8732 default boxes
    assert model.num_parameters() == 26_285_486
    assert model.default_boxes.shape == (8732, 4)
    assert model.source_channels == (512, 1024, 512, 256, 256, 256)


def test_ssd512_parameter_count_and_boxes():
    model = ssd512(num_classes=21)
    assert model.num_parameters() == 27_188_676
    assert model.default_boxes.shape == (24564, 4)


@pytest.mark.slow
@pytest.mark.parametrize("builder, size, priors", [(ssd300, 300, 8732), (ssd512, 512, 24564)])
def test_full_size_forward(builder, size, priors):
    model = builder(num_classes=21)
    model.eval()
    loc, conf = model(_images(1, size))
    assert loc.shape == (1, priors, 4)
    assert conf.shape == (1, priors, 21)
    assert np.isfinite(backend.to_numpy(loc.data)).all()


def test_mini_sources_match_config():
    model = ssd_mini(num_classes=6)
    srcs = model.sources(_images(2, 160))
    assert [s.shape[2] for s in srcs] == [20, 10, 5, 3, 1]
    loc, conf = model(_images(2, 160))
    assert loc.shape == (2, 2390, 4) and conf.shape == (2, 2390, 6)


def test_l2norm_starts_at_the_config_scale():
    # conv4_3's L2Norm weight starts at config.l2norm_scale: the paper's 20 for SSD300, 5 for the BatchNorm mini
    model = SSD(tiny_config().replace(l2norm_scale=7.5))
    assert np.allclose(backend.to_numpy(model.l2norm.weight.data), 7.5)
    src = backend.to_numpy(model.sources(_images(2, 64))[0].data)
    lengths = np.sqrt((src ** 2).sum(axis=1))
    assert np.allclose(lengths[lengths > 0], 7.5, rtol=1e-4)
    assert SSDConfig.ssd300().l2norm_scale == 20.0


def test_output_rows_follow_default_box_order():
    # the conf head of map k writes location (i, j), box a to row first_k + (i * f + j) * n_k + a
    model = SSD(tiny_config())
    model.eval()
    x = _images(1, 64)
    srcs = model.sources(x)
    _, conf = model(x)
    f, n, c = 4, model.config.num_priors_per_location[1], 3
    head = backend.to_numpy(model.conf_heads[1](srcs[1]).data)  # (1, n*c, f, f)
    first = 8 * 8 * model.config.num_priors_per_location[0]
    i, j, a = 2, 3, 1
    row = first + (i * f + j) * n + a
    np.testing.assert_allclose(backend.to_numpy(conf.data)[0, row], head[0, a * c:(a + 1) * c, i, j], rtol=1e-5)


def test_wrong_input_is_a_clear_error():
    model = ssd_mini(num_classes=6)
    xp = backend.xp()
    with pytest.raises(ValueError, match=r"\(N, 3, 160, 160\).*\(1, 3, 150, 150\)"):
        model(xp.zeros((1, 3, 150, 150), xp.float32))
    with pytest.raises(ValueError, match="got"):
        model(xp.zeros((1, 1, 160, 160), xp.float32))
    with pytest.raises(TypeError, match="SSDConfig"):
        SSD({"input_size": 300})


def test_inconsistent_config_is_refused():
    cfg = tiny_config()
    with pytest.raises(ValueError, match="feature_maps"):
        SSD(cfg.replace(feature_maps=(8, 4, 2, 2)))


def test_gradients_reach_every_parameter():
    model = SSD(tiny_config())
    x = Tensor(_images(2, 64))
    loc, conf = model(x)
    gts = [np.array([[0.1, 0.1, 0.5, 0.6]], np.float32), np.array([[0.4, 0.3, 0.9, 0.9]], np.float32)]
    loc_t, conf_t = match_batch(gts, [np.array([1]), np.array([2])], model.default_boxes)
    a, b = MultiBoxLoss()(loc, conf, loc_t, conf_t)
    (a + b).backward()
    assert [n for n, p in model.named_parameters() if p.grad is None] == []


@pytest.mark.slow
def test_overfits_two_images_and_detects_them():
    from minissd.boxes import iou

    xp = backend.xp()
    model = SSD(tiny_config())
    x = _images(2, 64, seed=1)
    gts = [np.array([[0.1, 0.1, 0.45, 0.5]], np.float32), np.array([[0.5, 0.4, 0.95, 0.9]], np.float32)]
    labels = [np.array([1]), np.array([2])]
    loc_t, conf_t = match_batch(gts, labels, model.default_boxes)
    opt = Adam(list(model.parameters()), lr=3e-3)
    crit = MultiBoxLoss()
    losses = []
    for _ in range(120):
        opt.zero_grad()
        a, b = crit(*model(x), loc_t, conf_t)
        loss = a + b
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.1 * losses[0]
    dets = model.detect(x, conf_threshold=0.5)
    assert all(isinstance(d, Detections) for d in dets)
    for det, gt, lab in zip(dets, gts, labels):
        assert len(det.labels) >= 1
        assert int(backend.to_numpy(det.labels)[0]) == int(lab[0])
        assert float(backend.to_numpy(iou(xp.asarray(gt), det.boxes[:1]))[0, 0]) > 0.5


def test_detect_restores_training_mode():
    model = SSD(tiny_config())
    model.train()
    dets = model.detect(_images(1, 64), conf_threshold=0.01, top_k=5)
    assert model.training
    assert len(dets) == 1 and len(dets[0].scores) <= 5


def _background_probability(model, x):
    from minissd.nn.functional import softmax

    model.eval()
    _, conf = model(x)
    return backend.to_numpy(softmax(conf.data, axis=-1).data)[..., 0]  # (N, P)


def test_background_prior_is_exact_with_zero_head_weights():
    # b = log(p (C - 1) / (1 - p)) against C - 1 zeros: softmax gives background exactly p
    from minissd.nn import init

    for p in (0.5, 0.99):
        model = SSD(tiny_config(num_classes=5), background_prior=p)
        for head in model.conf_heads:
            init.zeros(head.weight)
        prob = _background_probability(model, _images(2, 64))
        np.testing.assert_allclose(prob, p, rtol=1e-5)
        # only the background channel (a * C + 0) of each head carries the prior
        bias = backend.to_numpy(model.conf_heads[0].bias.data).reshape(-1, 5)
        np.testing.assert_allclose(bias[:, 0], np.log(p * 4 / (1 - p)), rtol=1e-6)
        assert not bias[:, 1:].any()


def test_untrained_model_predicts_background_with_the_prior():
    backend.seed(0)
    x = _images(2, 160)
    for p in (0.5, 0.99):
        prob = _background_probability(ssd_mini(num_classes=8, background_prior=p), x)
        assert abs(prob.mean() - p) < 0.03, (p, prob.mean())
    # the default keeps zero biases: with 8 classes the untrained background probability is near 1/8, far from 0.99
    backend.seed(0)
    model = ssd_mini(num_classes=8)
    assert all(not backend.to_numpy(h.bias.data).any() for h in model.conf_heads)
    assert _background_probability(model, x).mean() < 0.5
    with pytest.raises(ValueError, match=r"background_prior.*\(0, 1\).*1\.5"):
        SSD(tiny_config(), background_prior=1.5)


def test_describe_rebuilds_the_same_geometry():
    import json

    model = SSD(tiny_config())
    description = json.loads(json.dumps(model.describe()))  # as read back from a checkpoint
    copy = SSD.from_description(description)
    assert copy.config == model.config and copy.input_size == 64
    assert copy.num_parameters() == model.num_parameters()
    with pytest.raises(ValueError, match="SSD description"):
        SSD.from_description({"kind": "ssd"})


def test_loss_matches_then_applies_multibox():
    model = SSD(tiny_config())
    outputs = model(_images(2, 64))
    gts = [np.array([[0.1, 0.1, 0.5, 0.6]], np.float32), np.array([[0.4, 0.3, 0.9, 0.9]], np.float32)]
    labels = [np.array([1]), np.array([2])]
    loc_t, conf_t = match_batch(gts, labels, model.default_boxes)
    expected = MultiBoxLoss(neg_pos_ratio=2)(*outputs, loc_t, conf_t)
    got = model.loss(outputs, gts, labels, neg_pos_ratio=2)
    assert [g.item() for g in got] == pytest.approx([e.item() for e in expected])


def test_sources_without_conv4_3_drop_its_map_heads_and_l2norm():
    """The ablation of notebook 09: detection from fc7 and the extra layers only."""
    c = SSDConfig.mini()
    cfg = c.replace(sources=("fc7",), feature_maps=c.feature_maps[1:], min_sizes=c.min_sizes[1:],
                    max_sizes=c.max_sizes[1:], aspect_ratios=c.aspect_ratios[1:])
    model = SSD(cfg)
    assert not any(k.startswith("l2norm") for k in model.state_dict())
    assert len(model.loc_heads) == len(model.conf_heads) == len(cfg.feature_maps) == 4
    loc, conf = model(np.zeros((2, 3, 160, 160), np.float32))
    # 10x10x6 + 5x5x6 + 3x3x4 + 1x1x4 default boxes: conv4_3's 20x20x4 = 1600 are gone
    assert loc.shape == (2, 600 + 150 + 36 + 4, 4) == (2, len(model.default_boxes), 4)
    assert conf.shape == (2, 790, c.num_classes)
    # the first head now sits on fc7: its input channels are fc7's
    assert model.loc_heads[0].weight.shape[1] == model.base.fc7_channels
