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
