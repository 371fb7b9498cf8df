"""COCO reader and exporter on real files the tests write: round trip, coordinates, category ids, crowds,
and the errors untrusted JSON must give."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from minissd.data import COCODataset, ShapesDataset, export_coco


def _write(tmp_path: Path, document, images=None) -> tuple[Path, Path]:
    """The annotation JSON (a dict, or raw text) and grey JPEGs of the given {file_name: (w, h)}."""
    folder = tmp_path / "images"
    folder.mkdir(exist_ok=True)
    for name, (w, h) in (images or {}).items():
        Image.fromarray(np.full((h, w, 3), 100, np.uint8)).save(folder / name)
    path = tmp_path / "instances.json"
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    return path, folder


def _hand_document():
    # Category ids 18, 3, 90 in no order: labels follow ascending ids -> cat (3) = 1, dog (18) = 2, zebra (90) = 3.
    return {
        "images": [
            {"id": 42, "file_name": "a.jpg", "width": 100, "height": 50},
            {"id": 7, "file_name": "b.jpg", "width": 60, "height": 80},  # no annotation at all
        ],
        "annotations": [
            {"id": 1, "image_id": 42, "category_id": 18, "bbox": [10, 5, 20, 15], "iscrowd": 0},
            {"id": 2, "image_id": 42, "category_id": 90, "bbox": [0, 0, 100, 50], "iscrowd": 1},
            # sticks out by 0.3 px on the right: rounding, clipped to the image
            {"id": 3, "image_id": 42, "category_id": 3, "bbox": [80, 10, 20.3, 40]},
            {"id": 4, "image_id": 42, "category_id": 3, "bbox": [5, 5, 0, 10], "iscrowd": 0},  # zero width
        ],
        "categories": [{"id": 18, "name": "dog"}, {"id": 3, "name": "cat"}, {"id": 90, "name": "zebra"}],
    }


@pytest.fixture()
def hand(tmp_path):
    return _write(tmp_path, _hand_document(), {"a.jpg": (100, 50), "b.jpg": (60, 80)})


def test_category_ids_map_to_labels_in_ascending_id_order(hand):
    ds = COCODataset(*hand)
    assert ds.class_names == ("background", "cat", "dog", "zebra")
    assert ds.label_to_category_id == {1: 3, 2: 18, 3: 90}
    assert ds.category_id_to_label == {3: 1, 18: 2, 90: 3}
    assert ds.num_classes == 4 and len(ds) == 2 and ds.image_ids == [42, 7]


def test_boxes_labels_crowds_and_empty_images(hand):
    ds = COCODataset(*hand)
    image, boxes, labels = ds[0]
    assert image.shape == (50, 100, 3) and image.dtype == np.uint8
    # dog [10, 5, 20, 15] in 100 x 50: x 10..30 -> 0.1..0.3, y 5..20 -> 0.1..0.4.
    # cat [80, 10, 20.3, 40]: x 80..100.3 -> 0.8..1.003, clipped to 1; y 10..50 -> 0.2..1.
    np.testing.assert_allclose(boxes, [[0.1, 0.1, 0.3, 0.4], [0.8, 0.2, 1.0, 1.0]], atol=1e-7)
    assert boxes.dtype == np.float32 and labels.dtype == np.int64
    assert labels.tolist() == [2, 1]
    # the crowd is no object: kept apart
    crowd_boxes, crowd_labels = ds.crowd(0)
    np.testing.assert_allclose(crowd_boxes, [[0, 0, 1, 1]])
    assert crowd_labels.tolist() == [3]
    # the zero-width box is left out and listed
    assert ds.skipped == [4]
    ann = ds.annotation(0)
    assert ann["annotation_ids"] == [1, 3] and ann["crowd_annotation_ids"] == [2] and ann["id"] == 42
    # an image without annotations is an item without boxes
    image, boxes, labels = ds[1]
    assert image.shape == (80, 60, 3) and boxes.shape == (0, 4) and labels.shape == (0,)
    assert ds.crowd(1)[0].shape == (0, 4)
    assert ds[-1][0].shape == (80, 60, 3)


def test_image_sizes_come_from_the_json_without_reading_images(hand):
    path, folder = hand
    (folder / "a.jpg").unlink()
    ds = COCODataset(path, folder)
    assert ds.image_size(0) == (50, 100) and ds.image_size(1) == (80, 60)
    assert ds.annotation(0)["boxes"].shape == (2, 4)
    with pytest.raises(FileNotFoundError, match="a.jpg"):
        ds[0]


def test_image_size_must_match_the_json(tmp_path):
    doc = _hand_document()
    path, folder = _write(tmp_path, doc, {"a.jpg": (100, 51), "b.jpg": (60, 80)})
    with pytest.raises(ValueError, match=r"a\.jpg is 100x51 .* says 100x50"):
        COCODataset(path, folder)[0]


def test_shapes_export_reads_back_exactly(tmp_path):
    source = ShapesDataset(6, scene="mixed", seed=11)
    path = export_coco(source, tmp_path / "coco")
    ds = COCODataset(path, tmp_path / "coco" / "images")
    assert ds.class_names == source.class_names and len(ds) == 6
    for i in range(len(source)):
        image0, boxes0, labels0 = source[i]
        image, boxes, labels = ds[i]
        np.testing.assert_array_equal(boxes, boxes0)  # boxes on the pixel grid: bit for bit
        np.testing.assert_array_equal(labels, labels0)
        assert image.shape == image0.shape
        assert np.abs(image.astype(int) - image0).mean() < 12  # JPEG is lossy, the pixels close
        assert ds.image_size(i) == image0.shape[:2]
    doc = json.loads(path.read_text())
    # pixel boxes as integers (a ShapesDataset box lies on the pixel grid), area = box area
    a = doc["annotations"][0]
    x, y, w, h = a["bbox"]
    assert all(float(v).is_integer() for v in a["bbox"]) and a["area"] == w * h
    assert [c["id"] for c in doc["categories"]] == list(range(1, 8))


def test_export_keeps_category_ids_and_crowds(hand, tmp_path):
    ds = COCODataset(*hand)
    path = export_coco(ds, tmp_path / "again", id_offset=100)
    back = COCODataset(path, tmp_path / "again" / "images")
    assert back.label_to_category_id == ds.label_to_category_id and back.class_names == ds.class_names
    assert back.image_ids == [101, 102]
    np.testing.assert_allclose(back.crowd(0)[0], ds.crowd(0)[0])
    np.testing.assert_allclose(back.annotation(0)["boxes"], ds.annotation(0)["boxes"], atol=1e-6)
    assert back.annotation(0)["labels"].tolist() == ds.annotation(0)["labels"].tolist()


def test_pycocotools_reads_an_export(tmp_path):
    coco = pytest.importorskip("pycocotools.coco", reason="pycocotools (dev extra) checks the format")
    path = export_coco(ShapesDataset(3, seed=2), tmp_path)
    with contextlib.redirect_stdout(io.StringIO()):
        api = coco.COCO(str(path))
    assert sorted(api.getImgIds()) == [1, 2, 3]
    assert len(api.getAnnIds()) == sum(len(ShapesDataset(3, seed=2)[i][2]) for i in range(3))


def _broken(doc_change):
    doc = _hand_document()
    doc_change(doc)
    return doc


@pytest.mark.parametrize(
    "document,match",
    [
        ('{"images": [', "not valid JSON"),
        ("[1, 2]", "top level"),
        (_broken(lambda d: d.pop("images")), '"images": missing'),
        (_broken(lambda d: d.update(categories={"id": 1})), '"categories": expected a list'),
        (_broken(lambda d: d.update(categories=[])), "at least one category"),
        (_broken(lambda d: d["annotations"].append(5)), r"annotations\[4\]: expected an object"),
        (_broken(lambda d: d["annotations"][0].update(image_id=999)), 'annotation 1 "image_id": no image has id 999'),
        (_broken(lambda d: d["annotations"][1].update(category_id=5)), 'annotation 2 "category_id": no category'),
        (_broken(lambda d: d["annotations"][0].update(bbox=[10, 5, 95, 15])), 'annotation 1 "bbox".*outside'),
        (_broken(lambda d: d["annotations"][0].update(bbox=[-3, 5, 10, 15])), 'annotation 1 "bbox".*outside'),
        (_broken(lambda d: d["annotations"][0].update(bbox=[10, 5, -1, 15])), "negative"),
        (_broken(lambda d: d["annotations"][0].update(bbox="10 5 20 15")), 'annotation 1 "bbox"'),
        (_broken(lambda d: d["annotations"][0].update(bbox=[10, 5, 20])), 'annotation 1 "bbox"'),
        (_broken(lambda d: d["annotations"][0].update(bbox=[10, None, 20, 4])), 'annotation 1 "bbox"'),
        (_broken(lambda d: d["annotations"][0].update(bbox=[float("nan"), 5, 20, 4])), 'annotation 1 "bbox"'),
        (_broken(lambda d: d["annotations"][0].update(iscrowd="yes")), '"iscrowd"'),
        (_broken(lambda d: d["images"][0].update(width="wide")), r'images\[0\] "width"'),
        (_broken(lambda d: d["images"][0].update(height=0)), r'images\[0\] "height"'),
        (_broken(lambda d: d["images"][1].update(id=42)), "image id 42 appears twice"),
        (_broken(lambda d: d["images"][0].update(file_name="../../secret.jpg")), '"file_name"'),
        (_broken(lambda d: d["images"][0].update(file_name="/etc/passwd")), '"file_name"'),
        (_broken(lambda d: d["categories"][0].update(id=3)), "category id 3 appears twice"),
        (_broken(lambda d: d["categories"][0].update(name="cat")), "'cat' is used twice"),
        (_broken(lambda d: d["categories"][0].pop("name")), r'categories\[0\] "name"'),
    ],
)
def test_bad_json_names_the_file_and_the_field(tmp_path, document, match):
    path, folder = _write(tmp_path, document)
    with pytest.raises(ValueError, match=match) as info:
        COCODataset(path, folder)
    assert str(path) in str(info.value)


def test_an_annotation_without_id_is_named_by_position(tmp_path):
    doc = _hand_document()
    del doc["annotations"][0]["id"]
    doc["annotations"][0]["bbox"] = [10, 5, 200, 15]
    path, folder = _write(tmp_path, doc)
    with pytest.raises(ValueError, match=r'annotations\[0\] "bbox"'):
        COCODataset(path, folder)


def test_missing_files_name_the_path(tmp_path, hand):
    with pytest.raises(FileNotFoundError, match="nowhere.json"):
        COCODataset(tmp_path / "nowhere.json", hand[1])
    with pytest.raises(FileNotFoundError, match="no_folder"):
        COCODataset(hand[0], tmp_path / "no_folder")


def test_a_test_split_without_annotations_is_allowed(tmp_path):
    doc = _hand_document()
    del doc["annotations"]
    path, folder = _write(tmp_path, doc, {"a.jpg": (100, 50)})
    ds = COCODataset(path, folder)
    assert ds[0][1].shape == (0, 4) and ds.class_names[1] == "cat"
