"""VOC AP / mAP (minissd.evaluation) on hand-worked cases; the arithmetic is in the comments.

Tests marked ``nms_ap`` grade ``voc_ap``, the code of classroom assignment 8 (docs/assignments.md); the
evaluation of whole detections also needs IoU (``minissd.boxes.iou``, assignment 5), a prerequisite the
grader reports apart.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from minissd.data import ShapesDataset
from minissd.evaluation import evaluate_detections, voc_ap

# Two well separated unit-ish boxes used throughout (normalised corners).
A = [0.1, 0.1, 0.3, 0.3]
B = [0.6, 0.6, 0.9, 0.9]
FAR = [0.4, 0.0, 0.5, 0.05]  # overlaps neither A nor B


def _eval(dets, gts, difficult=None, **kw):
    """dets: per image list of (box, label, score); gts: per image list of (box, label)."""
    pb = [np.array([d[0] for d in img], dtype=float).reshape(-1, 4) for img in dets]
    pl = [np.array([d[1] for d in img], dtype=int) for img in dets]
    ps = [np.array([d[2] for d in img], dtype=float) for img in dets]
    gb = [np.array([g[0] for g in img], dtype=float).reshape(-1, 4) for img in gts]
    gl = [np.array([g[1] for g in img], dtype=int) for img in gts]
    gd = None if difficult is None else [np.array(d, dtype=bool) for d in difficult]
    return evaluate_detections(pb, pl, ps, gb, gl, gd, **kw)


# ------------------------------------------------------------------------------------------- voc_ap


@pytest.mark.nms_ap
def test_voc_ap_area_and_11_point_differ_on_one_curve():
    # Detections TP, FP, TP with 2 positives: recall = [0.5, 0.5, 1.0], precision = [1, 1/2, 2/3].
    rec = np.array([0.5, 0.5, 1.0])
    prec = np.array([1.0, 0.5, 2.0 / 3.0])
    # Area: interpolated precision is 1 on (0, 0.5] and 2/3 on (0.5, 1] -> 0.5 * 1 + 0.5 * 2/3 = 5/6.
    assert voc_ap(rec, prec) == pytest.approx(5.0 / 6.0, abs=1e-12)
    # 11-point: t = 0, 0.1, ..., 0.5 (6 points) see max precision 1; t = 0.6 .. 1.0 (5 points) see 2/3:
    # (6 * 1 + 5 * 2/3) / 11 = (18 + 10) / 33 = 28/33 = 0.8485
    assert voc_ap(rec, prec, use_07_metric=True) == pytest.approx(28.0 / 33.0, abs=1e-12)


@pytest.mark.nms_ap
def test_voc_ap_perfect_and_empty():
    assert voc_ap([0.5, 1.0], [1.0, 1.0]) == pytest.approx(1.0)
    assert voc_ap([0.5, 1.0], [1.0, 1.0], use_07_metric=True) == pytest.approx(1.0)
    assert voc_ap([], []) == 0.0


@pytest.mark.nms_ap
def test_voc_ap_uses_the_precision_envelope_not_the_raw_curve():
    # recall [0.25, 0.5, 0.75], precision [0.5, 0.4, 0.75]: the envelope is 0.75 on (0, 0.75] (the last
    # point dominates everything to its left) and 0 on (0.75, 1] -> AP = 0.75 * 0.75 = 0.5625.
    # A raw (non-interpolated) sum would give 0.25 * (0.5 + 0.4 + 0.75) = 0.4125.
    assert voc_ap([0.25, 0.5, 0.75], [0.5, 0.4, 0.75]) == pytest.approx(0.5625)


@pytest.mark.nms_ap
def test_voc_ap_11_point_thresholds_are_the_published_arange():
    # Recall reaches exactly 0.3 with precision 1, then nothing more. The 11 points are
    # numpy.arange(0, 1.1, 0.1), as in py-faster-rcnn's voc_eval, ssd.pytorch, ChainerCV and mmdetection,
    # whose fourth point is 0.30000000000000004 > 0.3: only t = 0, 0.1, 0.2 see precision 1 -> AP = 3/11.
    # (Exact tenths t = k / 10 would count t = 0.3 too and give 4/11.)
    assert np.arange(0, 1.1, 0.1)[3] > 0.3
    assert voc_ap([0.3], [1.0], use_07_metric=True) == pytest.approx(3.0 / 11.0)
    # 0.2 is reached (arange's 0.2 is exactly 2 * 0.1 = 0.2): t = 0, 0.1, 0.2 -> 3/11 again; 0.4 is
    # reached by 0.4 (arange gives 0.4 exactly): 5/11.
    assert voc_ap([0.2], [1.0], use_07_metric=True) == pytest.approx(3.0 / 11.0)
    assert voc_ap([0.4], [1.0], use_07_metric=True) == pytest.approx(5.0 / 11.0)


def _published_voc07_ap(rec, prec):
    """The 11-point loop as py-faster-rcnn's voc_eval.py writes it (ChainerCV and ssd.pytorch have the same)."""
    ap = 0.0
    for t in np.arange(0.0, 1.1, 0.1):
        p = 0.0 if np.sum(rec >= t) == 0 else np.max(prec[rec >= t])
        ap = ap + p / 11.0
    return ap


@pytest.mark.nms_ap
def test_voc_ap_11_point_matches_the_published_loop_on_curves_with_exact_tenths():
    rng = np.random.default_rng(3)
    for npos in (10, 20, 5):  # recalls k / npos hit the thresholds exactly
        hits = rng.random(30) < 0.5
        tp = np.cumsum(hits)
        rec = tp / max(npos, tp[-1])
        prec = tp / np.arange(1, 31)
        assert voc_ap(rec, prec, use_07_metric=True) == pytest.approx(_published_voc07_ap(rec, prec), abs=1e-12)


@pytest.mark.nms_ap
def test_voc_ap_sampled_at_given_recall_thresholds():
    # recall [0.5, 1], precision [1, 2/3] sampled at t = 0, 0.5, 1: max precision at recall >= t is
    # 1, 1 (0.5 reaches 0.5), 2/3 -> (1 + 1 + 2/3) / 3 = 8/9.
    assert voc_ap([0.5, 1.0], [1.0, 2.0 / 3.0], recall_thresholds=[0.0, 0.5, 1.0]) == pytest.approx(8.0 / 9.0)
    # a threshold that recall never reaches contributes 0: t = 0, 1 with recall only up to 0.5 -> 1/2
    assert voc_ap([0.5], [1.0], recall_thresholds=[0.0, 1.0]) == pytest.approx(0.5)


def test_voc_ap_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="recall"):
        voc_ap([0.1, 0.2], [1.0])


# ------------------------------------------------------------------------------ evaluate_detections


@pytest.mark.nms_ap
def test_all_correct_gives_ap_one():
    gts = [[(A, 1), (B, 2)], [(B, 1)]]
    dets = [[(A, 1, 0.9), (B, 2, 0.8)], [(B, 1, 0.7)]]
    out = _eval(dets, gts)
    assert out["ap"] == {1: pytest.approx(1.0), 2: pytest.approx(1.0)}
    assert out["map"] == pytest.approx(1.0)
    assert out["num_positives"] == {1: 2, 2: 1}


@pytest.mark.nms_ap
def test_one_false_positive_ranked_first():
    # Class 1, two objects A (image 0) and B (image 1). Detections by score: FAR (FP), A (TP), B (TP).
    # tp = [0, 1, 2], fp = [1, 1, 1]; recall = [0, 0.5, 1]; precision = [0, 1/2, 2/3].
    # Envelope: 2/3 everywhere on (0, 1] -> AP = 2/3 (both metrics).
    gts = [[(A, 1)], [(B, 1)]]
    dets = [[(FAR, 1, 0.9), (A, 1, 0.8)], [(B, 1, 0.7)]]
    out = _eval(dets, gts)
    assert out["ap"][1] == pytest.approx(2.0 / 3.0)
    assert _eval(dets, gts, use_07_metric=True)["ap"][1] == pytest.approx(2.0 / 3.0)
    rec, prec, scores = out["pr"][1]
    np.testing.assert_allclose(rec, [0.0, 0.5, 1.0])
    np.testing.assert_allclose(prec, [0.0, 0.5, 2.0 / 3.0])
    np.testing.assert_allclose(scores, [0.9, 0.8, 0.7])


@pytest.mark.nms_ap
def test_a_duplicate_is_a_false_positive():
    # Image 0: object A, detected twice (0.9 and 0.8); image 1: object B detected at 0.7.
    # Order: A (TP), A again (duplicate -> FP), B (TP): recall [0.5, 0.5, 1], precision [1, 1/2, 2/3]
    # -> AP = 0.5 * 1 + 0.5 * 2/3 = 5/6. (Were the duplicate ignored or a TP, AP would be 1.)
    gts = [[(A, 1)], [(B, 1)]]
    dets = [[(A, 1, 0.9), (A, 1, 0.8)], [(B, 1, 0.7)]]
    assert _eval(dets, gts)["ap"][1] == pytest.approx(5.0 / 6.0)


@pytest.mark.nms_ap
def test_a_difficult_object_neither_counts_nor_penalises():
    # Image 0 holds A (normal) and B (difficult). Detections: B 0.9, FAR 0.85, A 0.8.
    gts = [[(A, 1), (B, 1)]]
    dets = [[(B, 1, 0.9), (FAR, 1, 0.85), (A, 1, 0.8)]]
    # With the flag: 1 positive; B's detection is ignored; FAR is FP, A is TP:
    # recall [0, 1], precision [0, 1/2] -> AP = 1 * 1/2 = 0.5.
    out = _eval(dets, gts, difficult=[[False, True]])
    assert out["ap"][1] == pytest.approx(0.5)
    assert out["num_positives"][1] == 1
    assert len(out["pr"][1][0]) == 2  # the ignored detection is not a point of the curve
    # Without the flag: 2 positives; TP, FP, TP: recall [.5, .5, 1], precision [1, .5, 2/3] -> 5/6.
    assert _eval(dets, gts)["ap"][1] == pytest.approx(5.0 / 6.0)


@pytest.mark.nms_ap
def test_a_missed_difficult_object_costs_no_recall():
    # A (normal) found, B (difficult) missed: recall 1/1 with the flag -> AP 1; without it 1/2 -> AP 0.5.
    gts = [[(A, 1), (B, 1)]]
    dets = [[(A, 1, 0.9)]]
    assert _eval(dets, gts, difficult=[[False, True]])["ap"][1] == pytest.approx(1.0)
    assert _eval(dets, gts)["ap"][1] == pytest.approx(0.5)


@pytest.mark.nms_ap
def test_classes_without_ground_truth_are_left_out_of_the_mean():
    # Class 1: perfect (AP 1). Class 2: detections but no object. Class 3: only a difficult object.
    # Class 4: one object, never detected (AP 0). mAP = (1 + 0) / 2 = 0.5.
    gts = [[(A, 1), (B, 3), (FAR, 4)]]
    dets = [[(A, 1, 0.9), (B, 2, 0.95)]]
    out = _eval(dets, gts, difficult=[[False, True, False]])
    assert set(out["ap"]) == {1, 4}
    assert out["ap"][4] == 0.0
    assert out["map"] == pytest.approx(0.5)


def test_no_ground_truth_at_all_gives_nan():
    out = _eval([[(A, 1, 0.9)]], [[]])
    assert out["ap"] == {} and math.isnan(out["map"])


@pytest.mark.nms_ap
def test_wrong_class_is_a_false_positive_of_its_own_class_only():
    # A labelled 2 where the object is class 1: class 1 has recall 0 -> AP 0; class 2 has no object.
    out = _eval([[(A, 2, 0.9)]], [[(A, 1)]])
    assert out["ap"] == {1: 0.0}


@pytest.mark.nms_ap
def test_iou_threshold_is_inclusive():
    gt = [0.0, 0.0, 0.5, 0.5]  # area 0.25
    half = [0.0, 0.0, 0.5, 0.25]  # inside gt, area 0.125: IoU = 0.125 / 0.25 = 0.5 exactly
    less = [0.0, 0.0, 0.5, 0.245]  # IoU = 0.1225 / 0.25 = 0.49
    assert _eval([[(half, 1, 0.9)]], [[(gt, 1)]])["ap"][1] == pytest.approx(1.0)
    assert _eval([[(less, 1, 0.9)]], [[(gt, 1)]])["ap"][1] == 0.0
    # A stricter threshold rejects the IoU-0.5 detection.
    assert _eval([[(half, 1, 0.9)]], [[(gt, 1)]], iou_threshold=0.6)["ap"][1] == 0.0


@pytest.mark.nms_ap
def test_a_detection_goes_to_its_best_overlap_even_if_taken():
    # The devkit rule: each detection is compared with the object of highest IoU only.
    # G1 = [0, 0, 0.4, 0.4]; G2 = [0.1, 0, 0.5, 0.4] (shifted right by 0.1).
    # D1 = G1 exactly (0.9) -> TP on G1.
    # D2 = [0.03, 0, 0.43, 0.4] (0.8): IoU with G1 = (0.37 * 0.4) / (0.32 - 0.148) = 0.148 / 0.172 = 0.860;
    # with G2 = (0.33 * 0.4) / (0.32 - 0.132) = 0.132 / 0.188 = 0.702. Both pass 0.5, but the devkit only
    # looks at the best, G1, already claimed -> FP, although G2 is free.
    # recall [0.5, 0.5], precision [1, 0.5] -> AP = 0.5 * 1 = 0.5.
    g1, g2 = [0.0, 0.0, 0.4, 0.4], [0.1, 0.0, 0.5, 0.4]
    dets = [[(g1, 1, 0.9), ([0.03, 0.0, 0.43, 0.4], 1, 0.8)]]
    assert _eval(dets, [[(g1, 1), (g2, 1)]])["ap"][1] == pytest.approx(0.5)


@pytest.mark.nms_ap
def test_detections_are_sorted_by_score_across_images():
    # Same detections as the "false positive first" case, but listed in another order within and across
    # images: only the scores decide the ranking, so AP is again 2/3.
    gts = [[(A, 1)], [(B, 1)]]
    dets = [[(A, 1, 0.8), (FAR, 1, 0.9)], [(B, 1, 0.7)]]
    assert _eval(dets, gts)["ap"][1] == pytest.approx(2.0 / 3.0)
    # And the false positive ranked last instead costs nothing: AP = 1.
    dets = [[(A, 1, 0.8), (FAR, 1, 0.1)], [(B, 1, 0.7)]]
    assert _eval(dets, gts)["ap"][1] == pytest.approx(1.0)


def test_mismatched_lists_raise_clear_errors():
    with pytest.raises(ValueError, match="gt_boxes"):
        evaluate_detections([np.zeros((0, 4))], [np.zeros(0)], [np.zeros(0)], [], [])
    with pytest.raises(ValueError, match=r"pred_scores\[0\]"):
        evaluate_detections([np.zeros((2, 4))], [np.ones(2)], [np.ones(3)], [np.zeros((0, 4))], [np.zeros(0)])
    with pytest.raises(ValueError, match=r"gt_boxes\[0\]"):
        evaluate_detections(
            [np.zeros((0, 4))], [np.zeros(0)], [np.zeros(0)], [np.zeros((2, 3))], [np.zeros(2)]
        )


@pytest.mark.nms_ap
def test_a_perfect_detector_scores_one_on_a_generated_dataset():
    # Ground truth used as detections (score 1) on a mixed and a flock dataset: every class has AP 1.
    gb, gl = [], []
    for ds in (ShapesDataset(12, scene="mixed", seed=5), ShapesDataset(4, scene="flock", seed=5)):
        for i in range(len(ds)):
            _, boxes, labels = ds[i]
            gb.append(boxes)
            gl.append(labels)
    scores = [np.ones(len(lab)) for lab in gl]
    out = evaluate_detections(gb, gl, scores, gb, gl)
    assert len(out["ap"]) >= 5
    assert all(v == pytest.approx(1.0) for v in out["ap"].values())
    assert out["map"] == pytest.approx(1.0)
    # Shuffling the detections' scores does not matter when all are correct; dropping one object's
    # detection lowers that class's AP below 1.
    gb2 = [b.copy() for b in gb]
    gl2 = [lab.copy() for lab in gl]
    c = int(gl2[0][0])
    gb2[0], gl2[0] = gb2[0][1:], gl2[0][1:]
    out2 = evaluate_detections(gb2, gl2, [np.ones(len(lab)) for lab in gl2], gb, gl)
    assert out2["ap"][c] < 1.0


def _reference_ap(pb, pl, ps, gb, gl, gd, c):
    """A direct, loop-by-loop transcription of the devkit rules (independent of the vectorised code)."""
    npos = sum(int(((lab == c) & ~d).sum()) for lab, d in zip(gl, gd))
    dets = sorted(
        [(ps[i][j], i, j) for i in range(len(pb)) for j in range(len(pl[i])) if pl[i][j] == c],
        key=lambda t: -t[0],
    )
    claimed, tp, fp = set(), [], []
    for _, i, j in dets:
        best, best_k = -1.0, -1
        for k in range(len(gl[i])):
            if gl[i][k] != c:
                continue
            b, g = pb[i][j], gb[i][k]
            iw = max(0.0, min(b[2], g[2]) - max(b[0], g[0]))
            ih = max(0.0, min(b[3], g[3]) - max(b[1], g[1]))
            inter = iw * ih
            o = inter / ((b[2] - b[0]) * (b[3] - b[1]) + (g[2] - g[0]) * (g[3] - g[1]) - inter)
            if o > best:
                best, best_k = o, k
        if best >= 0.5 and gd[i][best_k]:
            continue
        hit = best >= 0.5 and (i, best_k) not in claimed
        if hit:
            claimed.add((i, best_k))
        tp.append(int(hit))
        fp.append(1 - int(hit))
    tp, fp = np.cumsum(tp), np.cumsum(fp)
    rec, prec = tp / npos, tp / np.maximum(tp + fp, 1e-300)
    # area under the running-max envelope, point by point
    ap, prev_r = 0.0, 0.0
    for k in range(len(rec)):
        if rec[k] > prev_r:
            ap += (rec[k] - prev_r) * prec[k:].max()
            prev_r = rec[k]
    return ap


@pytest.mark.nms_ap
def test_matches_a_direct_transcription_of_the_devkit_on_random_scenes():
    rng = np.random.default_rng(0)
    pb, pl, ps, gb, gl, gd = [], [], [], [], [], []
    for _ in range(30):
        g = int(rng.integers(0, 6))
        corner = rng.uniform(0, 0.6, (g, 2))
        boxes = np.hstack([corner, corner + rng.uniform(0.1, 0.4, (g, 2))])
        labels = rng.integers(1, 4, g)
        # detections: jittered copies of the objects (some duplicates, some wrong class) plus clutter
        pick = rng.integers(0, max(g, 1), 2 * g) if g else np.zeros(0, int)
        jitter = boxes[pick] + rng.normal(0, 0.04, (len(pick), 4)) if g else np.zeros((0, 4))
        dlab = labels[pick] if g else np.zeros(0, int)
        dlab = np.where(rng.random(len(dlab)) < 0.15, rng.integers(1, 4, len(dlab)), dlab)
        clutter = rng.uniform(0, 0.5, (3, 2))
        pb.append(np.vstack([jitter, np.hstack([clutter, clutter + 0.2])]))
        pl.append(np.concatenate([dlab, rng.integers(1, 4, 3)]))
        ps.append(rng.random(len(pl[-1])).round(1))  # rounded: many ties, the stable order matters
        gb.append(boxes)
        gl.append(labels)
        gd.append(rng.random(g) < 0.2)
    out = evaluate_detections(pb, pl, ps, gb, gl, gd)
    assert set(out["ap"]) == {1, 2, 3}
    for c, value in out["ap"].items():
        assert value == pytest.approx(_reference_ap(pb, pl, ps, gb, gl, gd, c), abs=1e-12)
    assert 0.2 < out["map"] < 0.95  # a mix of hits and misses, not a degenerate case
