"""COCO metrics (minissd.evaluation.coco_metrics): a case worked on paper, then every one of the twelve
numbers against pycocotools' COCOeval on randomised scenes.

The metrics need IoU (``minissd.boxes.iou``, classroom assignment 5) and the interpolated precision of
``voc_ap`` (assignment 8): in a student copy these tests need both.
"""

from __future__ import annotations

import contextlib
import io
import math

import numpy as np
import pytest

from minissd.evaluation import (
    COCO_IOU_THRESHOLDS,
    COCO_RECALL_THRESHOLDS,
    coco_metrics,
    intersection_over_detection_area,
)

pytestmark = [pytest.mark.needs("box_coding", "nms_ap")]

NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")


def _px(boxes, size=100):
    """Pixel corners in a size x size image -> normalised corners (N, 4)."""
    return np.asarray(boxes, dtype=np.float64).reshape(-1, 4) / size


# ------------------------------------------------------------------------------ worked on paper
def test_a_case_worked_on_paper():
    # Two 100 x 100 images, one class.
    # Image 0: object G0 = [0, 0, 40, 40] (1600 px^2: medium, since 32^2 = 1024 <= 1600 <= 96^2).
    #          detection A = [0, 0, 40, 29], score 0.9: IoU = 1160 / 1600 = 0.725, so it is a hit at the
    #          five thresholds 0.50 .. 0.70 and a miss at the five thresholds 0.75 .. 0.95.
    # Image 1: object G1 = [50, 50, 90, 90] (medium), a crowd region C = [0, 0, 50, 50];
    #          detection D4 = [0, 60, 10, 70] (100 px^2, small), score 0.95: overlaps nothing -> FP;
    #          detection D2 = [10, 10, 30, 30], score 0.8: inside the crowd (intersection / own area = 1)
    #          -> ignored at every threshold;
    #          detection D3 = G1, score 0.7 -> TP at every threshold.
    gt_boxes = [_px([[0, 0, 40, 40]]), _px([[50, 50, 90, 90], [0, 0, 50, 50]])]
    gt_labels = [np.array([1]), np.array([1, 1])]
    gt_crowd = [np.array([False]), np.array([False, True])]
    pred_boxes = [_px([[0, 0, 40, 29]]), _px([[0, 60, 10, 70], [10, 10, 30, 30], [50, 50, 90, 90]])]
    pred_labels = [np.array([1]), np.array([1, 1, 1])]
    pred_scores = [np.array([0.9]), np.array([0.95, 0.8, 0.7])]
    out = coco_metrics(pred_boxes, pred_labels, pred_scores, gt_boxes, gt_labels, [(100, 100)] * 2, gt_crowd)
    assert set(out) == set(NAMES)

    # All sizes, 2 objects. In score order (D2 left out): D4, A, D3.
    # t <= 0.70: FP, TP, TP -> recall (0, 1/2, 1), precision (0, 1/2, 2/3); the interpolated precision is
    #            2/3 at every recall in [0, 1] -> AP 2/3, recall 1.
    # t >= 0.75: FP, FP, TP -> recall (0, 0, 1/2), precision (0, 0, 1/3); interpolated 1/3 at the 51 recall
    #            thresholds 0, 0.01, .., 0.50 and 0 at the 50 above -> AP = (51 / 101) / 3 = 17/101, recall 1/2.
    assert COCO_RECALL_THRESHOLDS[50] == 0.5 and len(COCO_RECALL_THRESHOLDS) == 101
    assert out["AP50"] == pytest.approx(2 / 3)
    assert out["AP75"] == pytest.approx(17 / 101)
    assert out["AP"] == pytest.approx((5 * 2 / 3 + 5 * 17 / 101) / 10)
    assert out["AR100"] == pytest.approx((5 * 1 + 5 * 0.5) / 10) == out["AR10"]
    # One detection per image: A and D4 (the best of image 1). t <= 0.70: recall 1/2; above: 0 -> 0.25.
    assert out["AR1"] == pytest.approx(0.25)
    # Medium: both objects; D4 is small and unmatched -> ignored, so the curve is A, D3.
    # t <= 0.70: TP, TP -> AP 1. t >= 0.75: FP, TP -> precision 1/2 up to recall 1/2 -> (51 / 101) / 2.
    assert out["APm"] == pytest.approx((5 * 1 + 5 * 51 / 101 / 2) / 10)
    assert out["ARm"] == pytest.approx(0.75)
    # No small or large object (the crowd never counts): left out, nan (COCOeval prints -1).
    for name in ("APs", "APl", "ARs", "ARl"):
        assert math.isnan(out[name]), name


def test_without_the_crowd_flag_the_crowd_is_a_missed_object():
    # The same region as an ordinary object of class 1: D2 inside it has IoU 400 / 2500 = 0.16 -> a false
    # positive, and the region itself is never found.
    gt = [_px([[50, 50, 90, 90], [0, 0, 50, 50]])]
    det = [_px([[10, 10, 30, 30], [50, 50, 90, 90]])]
    args = (det, [np.array([1, 1])], [np.array([0.8, 0.7])], gt, [np.array([1, 1])], [(100, 100)])
    crowd = coco_metrics(*args, gt_crowd=[np.array([False, True])])
    plain = coco_metrics(*args)
    assert crowd["AP"] == pytest.approx(1.0) and crowd["AR100"] == pytest.approx(1.0)
    # plain: FP then TP of 2 objects -> precision 1/2 up to recall 1/2 at every threshold
    assert plain["AP"] == pytest.approx(51 / 101 / 2)
    assert plain["AR100"] == pytest.approx(0.5)


def test_equal_scores_keep_their_order():
    # Two detections of one object with the same score: the first listed is the TP, the second a
    # duplicate. Listing the worse box first makes it the one that counts.
    gt = [_px([[0, 0, 50, 50]])]
    good, poor = [0, 0, 50, 50], [0, 0, 50, 30]  # IoU 1 and 0.6
    kw = dict(gt_boxes=gt, gt_labels=[np.array([1])], image_sizes=[(100, 100)])
    first_good = coco_metrics([_px([good, poor])], [np.array([1, 1])], [np.array([0.5, 0.5])], **kw)
    first_poor = coco_metrics([_px([poor, good])], [np.array([1, 1])], [np.array([0.5, 0.5])], **kw)
    assert first_good["AP"] == pytest.approx(1.0)
    # poor first: TP at t = 0.50, 0.55, 0.60 (IoU 0.6 >= 0.6), and then good is the duplicate -> FP;
    # at t >= 0.65 poor is an FP and good the TP, precision 1/2 at recall 1: AP 1/2.
    assert COCO_IOU_THRESHOLDS[2] == 0.6
    assert first_poor["AP"] == pytest.approx((3 * 1 + 7 * 0.5) / 10)


def test_max_dets_counts_per_image_and_class():
    # 12 detections in one image, the object found only by the 11th best: AR10 misses it, AR100 does not.
    gt = [_px([[0, 0, 50, 50]])]
    far = [[60 + k, 60, 70 + k, 70] for k in range(10)]
    boxes = _px(far + [[0, 0, 50, 50], [80, 0, 90, 10]])
    scores = np.linspace(0.9, 0.1, 12)
    out = coco_metrics([boxes], [np.ones(12, int)], [scores], gt, [np.array([1])], [(100, 100)])
    assert out["AR1"] == 0.0 and out["AR10"] == 0.0
    assert out["AR100"] == pytest.approx(1.0)


def test_intersection_over_detection_area():
    det = np.array([[0.0, 0.0, 2.0, 2.0], [5.0, 5.0, 5.0, 6.0]])  # the second has zero area
    gt = np.array([[1.0, 0.0, 4.0, 4.0], [0.0, 0.0, 10.0, 10.0]])
    # det 0 overlaps gt 0 in [1, 2] x [0, 2] = 2 of its 4 -> 0.5; it lies inside gt 1 -> 1
    np.testing.assert_allclose(intersection_over_detection_area(det, gt), [[0.5, 1.0], [0.0, 0.0]], atol=1e-12)


def test_bad_arguments_name_the_argument():
    one = dict(pred_boxes=[np.zeros((0, 4))], pred_labels=[np.zeros(0)], pred_scores=[np.zeros(0)],
               gt_boxes=[np.zeros((0, 4))], gt_labels=[np.zeros(0)])
    with pytest.raises(ValueError, match=r"image_sizes\[0\]"):
        coco_metrics(**one, image_sizes=[(100,)])
    with pytest.raises(ValueError, match="image_sizes"):
        coco_metrics(**one, image_sizes=[])
    with pytest.raises(ValueError, match="max_dets"):
        coco_metrics(**one, image_sizes=[(1, 1)], max_dets=(10, 1, 100))
    with pytest.raises(ValueError, match=r"coco_metrics\(gt_crowd\[0\]\)"):
        coco_metrics(**one, image_sizes=[(1, 1)], gt_crowd=[np.zeros(2, bool)])


# ------------------------------------------------------------------------------ against pycocotools
def _random_scene(seed, num_images=30, num_classes=6):
    """Images of varied sizes with objects from tiny to large, crowds, duplicates, clutter and tied scores."""
    rng = np.random.default_rng(seed)
    scenes = []
    for i in range(num_images):
        h, w = (int(v) for v in rng.integers(40, 700, 2))
        g = 0 if i % 7 == 3 else int(rng.integers(0, 9))  # some images without any object
        side = np.exp(rng.uniform(np.log(4), np.log(0.9 * min(h, w)), (g, 2)))  # tiny .. large
        x0 = rng.uniform(0, w - side[:, 0]) if g else np.zeros(0)
        y0 = rng.uniform(0, h - side[:, 1]) if g else np.zeros(0)
        gt_px = np.stack([x0, y0, x0 + side[:, 0], y0 + side[:, 1]], axis=1) if g else np.zeros((0, 4))
        gt_lab = rng.integers(1, num_classes + 1, g)
        crowd = rng.random(g) < 0.15
        # detections: jittered copies (some twice), some with the wrong class, plus clutter
        if g and i % 5 != 1:  # some images with objects but no detection
            pick = rng.integers(0, g, int(rng.integers(g, 3 * g + 1)))
            size = (gt_px[pick, 2:] - gt_px[pick, :2]).repeat(2, axis=1)
            det_px = gt_px[pick] + rng.normal(0, 0.12, (len(pick), 4)) * size
            det_lab = np.where(rng.random(len(pick)) < 0.1, rng.integers(1, num_classes + 1, len(pick)),
                               gt_lab[pick])
        else:
            det_px, det_lab = np.zeros((0, 4)), np.zeros(0, int)
        k = int(rng.integers(0, 6))
        c_side = rng.uniform(3, 0.5 * min(h, w), (k, 2))
        cx, cy = rng.uniform(0, w - c_side[:, 0]), rng.uniform(0, h - c_side[:, 1])
        clutter = np.stack([cx, cy, cx + c_side[:, 0], cy + c_side[:, 1]], axis=1)
        det_px = np.vstack([det_px, clutter])
        det_px[:, 2:] = np.maximum(det_px[:, 2:], det_px[:, :2] + 0.5)  # positive width and height
        det_lab = np.concatenate([det_lab, rng.integers(1, num_classes + 1, k)]).astype(int)
        scores = rng.random(len(det_lab)).round(1)  # rounded: many ties, the stable order matters
        scale = np.array([w, h, w, h], dtype=np.float64)
        scenes.append(dict(size=(h, w), gt=gt_px / scale, gt_labels=gt_lab, crowd=crowd, det=det_px / scale,
                           det_labels=det_lab, scores=scores))
    return scenes


def _pycocotools_stats(scenes, num_classes, max_dets):
    """The twelve numbers of COCOeval on the same scenes (boxes scaled to pixels exactly as coco_metrics)."""
    coco = pytest.importorskip("pycocotools.coco", reason="pycocotools (dev extra) compares the COCO metrics")
    cocoeval = pytest.importorskip("pycocotools.cocoeval")
    images, annotations, results = [], [], []

    def xywh(box, h, w):
        x0, y0, x1, y1 = (float(v) for v in box * np.array([w, h, w, h]))
        return [x0, y0, x1 - x0, y1 - y0]

    for i, s in enumerate(scenes):
        h, w = s["size"]
        images.append({"id": i + 1, "width": w, "height": h, "file_name": f"{i}.jpg"})
        for box, lab, crowd in zip(s["gt"], s["gt_labels"], s["crowd"]):
            b = xywh(box, h, w)
            annotations.append({"id": len(annotations) + 1, "image_id": i + 1, "category_id": int(lab),
                                "bbox": b, "area": b[2] * b[3], "iscrowd": int(crowd)})
        for box, lab, score in zip(s["det"], s["det_labels"], s["scores"]):
            results.append({"image_id": i + 1, "category_id": int(lab), "bbox": xywh(box, h, w),
                            "score": float(score)})
    with contextlib.redirect_stdout(io.StringIO()):  # COCO and COCOeval print their progress
        gt = coco.COCO()
        gt.dataset = {"images": images, "annotations": annotations,
                      "categories": [{"id": c, "name": f"c{c}"} for c in range(1, num_classes + 1)]}
        gt.createIndex()
        dt = gt.loadRes(results)
        ev = cocoeval.COCOeval(gt, dt, "bbox")
        ev.params.maxDets = list(max_dets)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    stats = [float("nan") if v == -1 else float(v) for v in ev.stats]
    # AP at the last detection limit, from COCOeval's precision array (T, R, K, areas, limits)
    precision = ev.eval["precision"][:, :, :, 0, -1]
    stats.append(float(precision[precision > -1].mean()))
    return stats


def _ours(scenes, max_dets):
    return coco_metrics([s["det"] for s in scenes], [s["det_labels"] for s in scenes],
                        [s["scores"] for s in scenes], [s["gt"] for s in scenes],
                        [s["gt_labels"] for s in scenes], [s["size"] for s in scenes],
                        [s["crowd"] for s in scenes], max_dets=max_dets)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_all_twelve_numbers_match_pycocotools_on_random_scenes(seed):
    scenes = _random_scene(seed)
    ref = _pycocotools_stats(scenes, 6, (1, 10, 100))
    out = _ours(scenes, (1, 10, 100))
    assert list(out) == list(NAMES)
    assert ref[12] == pytest.approx(ref[0], abs=1e-12)
    for name, want in zip(NAMES, ref):
        if math.isnan(want):
            assert math.isnan(out[name]), name
        else:
            assert out[name] == pytest.approx(want, abs=1e-6), name
    assert 0.05 < out["AP"] < 0.9  # a mix of hits and misses, not a degenerate case
    assert all(not math.isnan(out[n]) for n in ("APs", "APm", "APl"))  # every size range is exercised


def test_small_detection_limits_match_pycocotools():
    # Limits 2, 4, 8 bite on these scenes (several detections per image and class).
    scenes = _random_scene(7, num_images=25, num_classes=3)
    ref = _pycocotools_stats(scenes, 3, (2, 4, 8))
    out = _ours(scenes, (2, 4, 8))
    names = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR2", "AR4", "AR8", "ARs", "ARm", "ARl")
    assert list(out) == list(names)
    # COCOeval.summarize computes its first number (AP) with a hard-coded limit of 100, which is not among
    # these limits (it prints -1); the other eleven use the given limits.
    assert math.isnan(ref[0])
    for name, want in list(zip(names, ref))[1:]:
        assert out[name] == pytest.approx(want, abs=1e-6, nan_ok=True), name
    assert out["AP"] == pytest.approx(ref[12], abs=1e-6)  # the same AP, from COCOeval's precision array
    assert out["AR2"] < out["AR4"] < out["AR8"]


def test_perfect_detections_score_one():
    scenes = _random_scene(5)
    for s in scenes:
        keep = ~s["crowd"]
        s["det"], s["det_labels"] = s["gt"][keep], s["gt_labels"][keep]
        s["scores"] = np.ones(int(keep.sum()))
    out = _ours(scenes, (1, 10, 100))
    for name in ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR100", "ARs", "ARm", "ARl"):
        assert out[name] == pytest.approx(1.0), name
