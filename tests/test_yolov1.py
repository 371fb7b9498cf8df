"""The YOLOv1-style grid detector: target builder and loss on hand-worked examples, shapes, overfit."""

import numpy as np
import pytest

from minissd import backend
from minissd.autograd import Tensor
from minissd.models import YOLOv1
from minissd.nn import init

# Classroom assignments (docs/assignments.md): the YOLOv1 model and loss run convolution, pooling and IoU,
# which a student copy leaves to the student; these tests need those assignments (they are not graded by them).
pytestmark = pytest.mark.needs("conv2d", "max_pool", "box_coding")


def _tiny(num_classes=3, grid=1, input_size=32, boxes_per_cell=2):
    # input 32: conv4_3 4x4, fc7 2x2; a 2x2 valid convolution makes the 1x1 grid
    return YOLOv1(num_classes=num_classes, input_size=input_size, grid=grid, boxes_per_cell=boxes_per_cell,
                  width=1 / 16, batch_norm=False)


def test_output_shape_and_wrong_input():
    xp = backend.xp()
    model = YOLOv1(num_classes=6, input_size=160)
    x = xp.zeros((2, 3, 160, 160), xp.float32)
    out = model(x)
    # S x S x (B*5 + C') = 7 x 7 x (2*5 + 5)
    assert out.shape == (2, 7, 7, 15)
    with pytest.raises(ValueError, match=r"\(N, 3, 160, 160\)"):
        model(xp.zeros((1, 3, 128, 128), xp.float32))


def test_two_objects_in_one_cell():
    xp = backend.xp()
    model = _tiny(grid=2)
    # grid 2: cell (row 0, col 0) covers [0, 0.5] x [0, 0.5]
    big = [0.05, 0.05, 0.45, 0.45]  # centre (0.25, 0.25), area 0.16, class 1
    small = [0.1, 0.2, 0.3, 0.4]  # centre (0.2, 0.3), area 0.04, class 2
    pred = np.zeros((1, 2, 2, 2, 4), np.float32)
    pred[0, 0, 0, 0] = small  # predictor 0 sits exactly on the small object
    pred[0, 0, 0, 1] = big  # predictor 1 exactly on the big one
    t = model.build_targets(xp.asarray(pred), [np.array([small, big], np.float32)], [np.array([2, 1])])
    resp = backend.to_numpy(t.responsible)[0]
    assert resp[0, 0].tolist() == [True, True]
    assert resp.sum() == 2  # the other three cells hold nothing
    boxes = backend.to_numpy(t.boxes)[0, 0, 0]
    # big (taken first) -> predictor 1: offsets (0.25*2 - 0, 0.25*2 - 0), sqrt sizes sqrt(0.4)
    np.testing.assert_allclose(boxes[1], [0.5, 0.5, np.sqrt(0.4), np.sqrt(0.4)], rtol=1e-6)
    # small -> predictor 0: (0.2*2, 0.3*2) = (0.4, 0.6), sqrt(0.2) each
    np.testing.assert_allclose(boxes[0], [0.4, 0.6, np.sqrt(0.2), np.sqrt(0.2)], rtol=1e-6)
    np.testing.assert_allclose(backend.to_numpy(t.confidence)[0, 0, 0], [1.0, 1.0], rtol=1e-6)
    # one class per cell: the largest object's (class 1 -> one-hot index 0)
    assert backend.to_numpy(t.classes)[0, 0, 0].tolist() == [1.0, 0.0]
    assert backend.to_numpy(t.has_object)[0].tolist() == [[True, False], [False, False]]
    assert t.dropped == 0

    # a third centre in the same cell cannot be represented with B = 2
    third = [0.0, 0.0, 0.2, 0.2]
    t3 = model.build_targets(xp.asarray(pred), [np.array([small, big, third], np.float32)], [np.array([2, 1, 1])])
    assert t3.dropped == 1


def test_loss_hand_worked():
    xp = backend.xp()
    model = _tiny(grid=1)
    init.zeros(model.predict.weight)
    init.zeros(model.predict.bias)  # raw output 0: every sigmoid is 0.5, the softmax over 2 classes 0.5
    x = xp.zeros((1, 3, 32, 32), xp.float32)
    out = model(x)
    gt = np.array([[0.375, 0.375, 0.625, 0.625]], np.float32)  # centre (0.5, 0.5), w = h = 0.25
    loss_coord, loss_rest = model.loss(out, [gt], [np.array([1])])
    t = model.targets_for(out, [gt], [np.array([1])])
    # both predicted boxes are centre (0.5, 0.5), 0.5 x 0.5: IoU with gt = 0.0625 / 0.25 = 0.25 (a tie:
    # predictor 0 is responsible). Coordinates: x, y exact; sqrt w: (sqrt(0.5) - sqrt(0.25))^2 twice.
    coord = 5 * 2 * (np.sqrt(0.5) - 0.5) ** 2
    # confidence: responsible (0.5 - 0.25)^2; the other predictor 0.5 * 0.5^2; classes (0.5-1)^2 + 0.5^2
    rest = (0.5 - 0.25) ** 2 + 0.5 * 0.25 + 0.5
    assert loss_coord.item() == pytest.approx(coord, rel=1e-4)
    assert loss_rest.item() == pytest.approx(rest, rel=1e-4)
    assert backend.to_numpy(t.responsible)[0, 0, 0].tolist() == [True, False]


def test_loss_gradient_reaches_every_parameter():
    xp = backend.xp()
    model = _tiny(grid=2, input_size=48)
    x = Tensor(xp.asarray(np.random.default_rng(0).standard_normal((2, 3, 48, 48)).astype(np.float32)))
    gts = [np.array([[0.1, 0.1, 0.4, 0.5]], np.float32), np.array([[0.5, 0.5, 0.9, 0.8]], np.float32)]
    a, b = model.loss(model(x), gts, [np.array([1]), np.array([2])])
    (a + b).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert missing == []


@pytest.mark.slow
def test_overfits_two_images():
    from minissd.optim import Adam

    xp = backend.xp()
    rng = np.random.default_rng(0)
    model = YOLOv1(num_classes=3, input_size=64, grid=4, width=1 / 16, batch_norm=True)
    x = xp.asarray(rng.standard_normal((2, 3, 64, 64)).astype(np.float32))
    gts = [np.array([[0.1, 0.1, 0.4, 0.45]], np.float32), np.array([[0.55, 0.5, 0.9, 0.85]], np.float32)]
    labels = [np.array([1]), np.array([2])]
    opt = Adam(list(model.parameters()), lr=3e-3)
    losses = []
    for _ in range(150):
        opt.zero_grad()
        a, b = model.loss(model(x), gts, labels)
        loss = a + b
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.1 * losses[0]
    dets = model.detect(x, conf_threshold=0.3)
    for det, gt, lab in zip(dets, gts, labels):
        assert len(det.labels) >= 1
        assert int(backend.to_numpy(det.labels)[0]) == int(lab[0])
        from minissd.boxes import iou

        assert float(backend.to_numpy(iou(xp.asarray(gt), det.boxes[:1]))[0, 0]) > 0.5
