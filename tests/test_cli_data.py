"""``minissd train|evaluate|detect`` on COCO files and VOC trees: tiny exports of ShapesDataset, two steps."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from PIL import Image

from minissd.cli import main
from minissd.data import ShapesDataset, export_coco, export_voc, split_off
from minissd.train import load_model

pytestmark = [pytest.mark.needs("conv2d", "max_pool", "default_boxes", "box_coding", "matching", "multibox_loss",
                                "nms_ap")]

TINY = ["--steps", "2", "--batch-size", "2", "--warmup", "1", "--workers", "0", "--checkpoint-every", "0"]
COCO_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")


@pytest.fixture(scope="module")
def coco_tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("coco")
    path = export_coco(ShapesDataset(6, scene="mixed", seed=1000), root)
    return path, root / "images"


@pytest.fixture(scope="module")
def voc_trainval_only(tmp_path_factory):
    root = tmp_path_factory.mktemp("voc") / "VOCdevkit"
    export_voc(ShapesDataset(6, scene="mixed", seed=3), root, split="trainval")
    return root


def _summary(stdout):
    """{name: value} of the COCO summary lines ``  AP      0.123   ...``."""
    return {m.group(1): float(m.group(2)) for m in re.finditer(r"^  (\w+)\s+(-?[\d.]+|nan)\s", stdout, re.M)}


def test_train_on_coco_validates_on_a_held_out_slice(coco_tree, tmp_path, capsys):
    path, images = coco_tree
    out = tmp_path / "run"
    assert main(["train", "--data", "coco", "--annotations", str(path), "--images", str(images), *TINY,
                 "--val-fraction", "0.34", "--out", str(out)]) == 0
    stdout = capsys.readouterr().out
    # 0.34 of 6 images -> 2 held out, 4 to train on
    assert "validation: a held-out slice of the training data: 2 of 6 images" in stdout
    assert "training on the other 4" in stdout
    assert "trained ssd_mini for 2 steps" in stdout and "on 2 held-out images" in stdout
    assert load_model(str(out / "checkpoint.npz")).class_names == ShapesDataset.class_names


def test_train_on_a_voc_tree_with_only_trainval_and_detect_prints_its_classes(voc_trainval_only, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--data", "voc", "--data-root", str(voc_trainval_only), *TINY, "--out", str(out)]) == 0
    stdout = capsys.readouterr().out
    assert "validation: a held-out slice of the training data: 1 of 6 images (--val-fraction 0.1" in stdout
    # the classes are read from the annotations: sorted, background first (not ShapesDataset's order)
    present = {ShapesDataset.class_names[k] for i in range(6) for k in ShapesDataset(6, seed=3)[i][2].tolist()}
    names = ("background", *sorted(present))
    assert names != ShapesDataset.class_names[: len(names)]
    assert f"classes ({len(names) - 1}): {', '.join(names[1:])}" in stdout
    checkpoint = str(out / "checkpoint.npz")
    assert load_model(checkpoint).class_names == names
    # detect names each detection by the recorded classes
    image = tmp_path / "scene.png"
    Image.fromarray(ShapesDataset(1, seed=7)[0][0]).save(image)
    assert main(["detect", str(image), "--weights", checkpoint, "--threshold", "0.0", "--out",
                 str(tmp_path / "det")]) == 0
    report = json.loads((tmp_path / "det" / "detections.json").read_text())
    detections = report["images"][0]["detections"]
    assert detections  # threshold 0: an untrained model still ranks its boxes
    assert all(d["class"] == names[d["label"]] for d in detections)


def test_train_on_voc_with_explicit_classes_and_split(tmp_path, capsys):
    root = tmp_path / "VOCdevkit"
    export_voc(ShapesDataset(4, seed=3), root, split="trainval")
    export_voc(ShapesDataset(2, seed=1003), root, split="test", id_offset=100)
    classes = ",".join(ShapesDataset.class_names[1:])
    out = tmp_path / "run"
    assert main(["train", "--data", "voc", "--data-root", str(root), "--classes", classes, *TINY,
                 "--out", str(out)]) == 0
    stdout = capsys.readouterr().out
    assert "validation: the VOC 'test' split (2 images)" in stdout
    assert load_model(str(out / "checkpoint.npz")).class_names == ShapesDataset.class_names


def test_evaluate_coco_prints_the_twelve_numbers(coco_tree, capsys):
    path, images = coco_tree
    assert main(["evaluate", "--data", "coco", "--annotations", str(path), "--images", str(images)]) == 0
    stdout = capsys.readouterr().out
    summary = _summary(stdout)
    assert list(summary) == list(COCO_NAMES)
    # the shipped weights find these shapes: a clearly positive AP, AP50 above AP75 above AP
    assert 0.1 < summary["AP"] < summary["AP50"] <= 1.0
    assert summary["AR1"] <= summary["AR10"] <= summary["AR100"]
    assert "circle" in stdout and "(6 images" in stdout


def test_evaluate_metric_voc_on_coco_data_and_coco_on_voc_data(coco_tree, tmp_path, capsys):
    path, images = coco_tree
    assert main(["evaluate", "--data", "coco", "--metric", "voc", "--annotations", str(path),
                 "--images", str(images)]) == 0
    stdout = capsys.readouterr().out
    assert "AP (VOC07)" in stdout and re.search(r"^mAP\s+0\.\d{3}", stdout, re.M)
    root = tmp_path / "VOCdevkit"
    export_voc(ShapesDataset(4, seed=1000), root, split="test")
    # shipped weights record no class names: the label order of their 8 classes is ShapesDataset's
    assert main(["evaluate", "--data", "voc", "--data-root", str(root), "--metric", "coco"]) == 0
    coco_from_voc = _summary(capsys.readouterr().out)
    assert list(coco_from_voc) == list(COCO_NAMES) and coco_from_voc["AP50"] > 0.3


def test_split_off_is_seeded_and_disjoint():
    ds = ShapesDataset(10, seed=0)
    train, held = split_off(ds, 0.3, seed=5)
    assert len(train) == 7 and len(held) == 3
    assert not set(train.indices) & set(held.indices)
    assert sorted(train.indices + held.indices) == list(range(10))
    assert split_off(ds, 0.3, seed=5)[1].indices == held.indices
    np.testing.assert_array_equal(held[0][1], ds[held.indices[0]][1])
    assert held.difficult(0).shape == (len(held[0][2]),)  # per-item methods follow the slice


@pytest.mark.parametrize(
    "args,message",
    [
        (["evaluate", "--data", "coco"], "--annotations FILE"),
        (["train", "--data", "coco", *TINY], "--annotations FILE"),
        (["evaluate", "--images", "many"], "expected a number of images"),
        (["evaluate", "--data", "coco", "--classes", "a,b"], "--classes: only with --data voc"),
        (["train", "--data", "voc", "--data-root", "x", "--classes", "a,,a"], "distinct class names"),
    ],
)
def test_errors_are_one_clear_line(args, message, capsys):
    assert main(args) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_val_split_with_coco_is_an_error(coco_tree, tmp_path, capsys):
    path, images = coco_tree
    assert main(["train", "--data", "coco", "--annotations", str(path), "--images", str(images), *TINY,
                 "--val-split", "val", "--out", str(tmp_path)]) == 1
    assert "--val-fraction" in capsys.readouterr().err
