"""VOC export and reader on real files the tests write: round trip, coordinates, difficult flags, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from minissd.data import ShapesDataset, VOCDataset, export_voc
from minissd.data.voc import VOC_CLASS_NAMES, normalized_to_pixel, pixel_to_normalized


def _object(name, box, difficult=0):
    x0, y0, x1, y1 = box
    return (
        f"<object><name>{name}</name><difficult>{difficult}</difficult>"
        f"<bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin><xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>"
    )


def _write_item(folder: Path, image_id: str, width: int, height: int, objects: list[str]) -> None:
    """One hand-written VOC item: a grey JPEG of width x height and its annotation."""
    (folder / "JPEGImages").mkdir(parents=True, exist_ok=True)
    (folder / "Annotations").mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((height, width, 3), 128, np.uint8)).save(
        folder / "JPEGImages" / f"{image_id}.jpg"
    )
    xml = (
        f"<annotation><filename>{image_id}.jpg</filename>"
        f"<size><width>{width}</width><height>{height}</height><depth>3</depth></size>"
        + "".join(objects)
        + "</annotation>"
    )
    (folder / "Annotations" / f"{image_id}.xml").write_text(xml)


def _write_split(folder: Path, split: str, ids: list[str]) -> None:
    (folder / "ImageSets" / "Main").mkdir(parents=True, exist_ok=True)
    (folder / "ImageSets" / "Main" / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))


@pytest.fixture()
def hand_tree(tmp_path):
    """VOCdevkit/VOC2007 with two hand-written items (100 x 50 images), one difficult object."""
    folder = tmp_path / "VOCdevkit" / "VOC2007"
    _write_item(
        folder, "000001", 100, 50, [_object("dog", (11, 6, 20, 25)), _object("cat", (1, 1, 100, 50), 1)]
    )
    _write_item(folder, "000002", 100, 50, [_object("tvmonitor", (51, 26, 60, 30))])
    _write_split(folder, "trainval", ["000001", "000002"])
    return tmp_path / "VOCdevkit"


def test_voc_class_names():
    assert VOC_CLASS_NAMES[0] == "background" and len(VOC_CLASS_NAMES) == 21
    assert VOC_CLASS_NAMES[1] == "aeroplane" and VOC_CLASS_NAMES[20] == "tvmonitor"


def test_one_based_inclusive_pixel_coordinates(hand_tree):
    ds = VOCDataset(hand_tree, keep_difficult=True)
    image, boxes, labels = ds[0]
    assert image.shape == (50, 100, 3) and image.dtype == np.uint8
    # dog: columns 11..20 (1-based) = 0-based 10..19 -> [10, 20) / 100 = (0.1, 0.2);
    #      rows 6..25 = 0-based 5..24 -> [5, 25) / 50 = (0.1, 0.5).
    # cat: the whole image, 1..100 x 1..50 -> (0, 0, 1, 1).
    np.testing.assert_allclose(boxes, [[0.1, 0.1, 0.2, 0.5], [0.0, 0.0, 1.0, 1.0]], atol=1e-7)
    assert labels.tolist() == [VOC_CLASS_NAMES.index("dog"), VOC_CLASS_NAMES.index("cat")] == [12, 8]
    # tvmonitor is label 20: columns 51..60 -> (0.5, 0.6), rows 26..30 -> (0.5, 0.6)
    _, boxes, labels = ds[1]
    np.testing.assert_allclose(boxes, [[0.5, 0.5, 0.6, 0.6]], atol=1e-7)
    assert labels.tolist() == [20]


def test_pixel_conversion_is_its_own_inverse_on_the_grid():
    pixel = np.array([[1, 1, 100, 50], [11, 6, 20, 25], [100, 50, 100, 50]])  # the last: one pixel
    norm = pixel_to_normalized(pixel, 100, 50)
    np.testing.assert_array_equal(normalized_to_pixel(norm, 100, 50), pixel)
    # One-pixel box: column 100 (1-based) = [99, 100) / 100.
    np.testing.assert_allclose(norm[2], [0.99, 0.98, 1.0, 1.0], atol=1e-7)


def test_difficult_objects_dropped_or_kept_and_flagged(hand_tree):
    dropped = VOCDataset(hand_tree)  # keep_difficult=False by default
    _, boxes, labels = dropped[0]
    assert labels.tolist() == [12] and boxes.shape == (1, 4)
    assert dropped.difficult(0).tolist() == [False]
    kept = VOCDataset(hand_tree, keep_difficult=True)
    assert kept[0][2].tolist() == [12, 8]
    assert kept.difficult(0).tolist() == [False, True]
    assert len(kept) == 2 and kept.ids == [("2007", "000001"), ("2007", "000002")]


def test_shapes_export_reads_back_identically(tmp_path):
    ds = ShapesDataset(5, seed=9)
    flock = ShapesDataset(2, scene="flock", seed=9)
    root = tmp_path / "VOCdevkit"
    folder = ds.export_voc(root, year="2007", split="trainval")
    export_voc(flock, root, year="2007", split="test", id_offset=100)
    assert folder == root / "VOC2007"
    assert (folder / "JPEGImages" / "000000.jpg").is_file()
    assert (folder / "Annotations" / "000004.xml").is_file()
    assert (folder / "ImageSets" / "Main" / "trainval.txt").read_text().split() == [
        f"{i:06d}" for i in range(5)
    ]
    assert (folder / "ImageSets" / "Main" / "test.txt").read_text().split() == ["000100", "000101"]
    for source, split in ((ds, "trainval"), (flock, "test")):
        back = VOCDataset(root, "2007", split, class_names=source.class_names)
        assert len(back) == len(source) and back.class_names == source.class_names
        for i in range(len(source)):
            image, boxes, labels = source[i]
            image2, boxes2, labels2 = back[i]
            np.testing.assert_array_equal(boxes2, boxes)  # bit-identical float32
            np.testing.assert_array_equal(labels2, labels)
            # JPEG is lossy but close: mean absolute error of a few grey levels at quality 95.
            assert image2.shape == image.shape
            assert np.abs(image2.astype(int) - image.astype(int)).mean() < 6.0


def test_export_writes_per_class_lists(tmp_path):
    ds = ShapesDataset(3, seed=1)
    folder = ds.export_voc(tmp_path)
    for k, name in enumerate(ds.class_names[1:], start=1):
        lines = (folder / "ImageSets" / "Main" / f"{name}_trainval.txt").read_text().splitlines()
        flags = [int(line.split()[1]) for line in lines]
        expected = [1 if k in ds[i][2] else -1 for i in range(3)]
        assert flags == expected


def test_years_can_be_joined(tmp_path):
    ShapesDataset(2, seed=1).export_voc(tmp_path, year="2007")
    ShapesDataset(3, seed=2).export_voc(tmp_path, year="2012")
    ds = VOCDataset(tmp_path, year="2007+2012", class_names=ShapesDataset.class_names)
    assert len(ds) == 5 and ds.ids[2] == ("2012", "000000")
    np.testing.assert_array_equal(ds[2][1], ShapesDataset(3, seed=2)[0][1])


def test_missing_folders_and_files_name_the_path(hand_tree, tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        VOCDataset(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="VOC2012"):
        VOCDataset(hand_tree, year="2012")
    with pytest.raises(FileNotFoundError, match=r"Main[/\\]val\.txt"):
        VOCDataset(hand_tree, split="val")
    (hand_tree / "VOC2007" / "JPEGImages" / "000002.jpg").unlink()
    ds = VOCDataset(hand_tree)
    with pytest.raises(FileNotFoundError, match="000002.jpg"):
        ds[1]
    (hand_tree / "VOC2007" / "Annotations" / "000001.xml").unlink()
    with pytest.raises(FileNotFoundError, match="000001.xml"):
        VOCDataset(hand_tree)[0]


@pytest.mark.parametrize(
    "xml,match",
    [
        ("<annotation><size><width>10</width>", "malformed"),  # truncated XML
        ("<annotation><object><name>dog</name></object></annotation>", "size"),
        (
            "<annotation><size><width>10</width><height>10</height></size>"
            "<object><name>dog</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>x</xmax>"
            "<ymax>5</ymax></bndbox></object></annotation>",
            "xmax",
        ),
        (
            "<annotation><size><width>10</width><height>10</height></size>"
            + _object("unicorn", (1, 1, 5, 5))
            + "</annotation>",
            "unicorn",
        ),
    ],
)
def test_bad_annotations_name_the_file(hand_tree, xml, match):
    (hand_tree / "VOC2007" / "Annotations" / "000002.xml").write_text(xml)
    ds = VOCDataset(hand_tree)
    ds[0]  # the other item is fine
    with pytest.raises(ValueError, match=match) as info:
        ds[1]
    assert "000002.xml" in str(info.value)


def test_image_size_must_match_annotation(hand_tree):
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(hand_tree / "VOC2007" / "JPEGImages" / "000002.jpg")
    with pytest.raises(ValueError, match="000002.jpg"):
        VOCDataset(hand_tree)[1]


def test_class_names_read_from_the_annotations(hand_tree):
    # hand_tree's objects: dog, cat (difficult), tvmonitor -> sorted, background first
    ds = VOCDataset(hand_tree, class_names="auto", keep_difficult=True)
    assert ds.class_names == ("background", "cat", "dog", "tvmonitor")
    assert ds[0][2].tolist() == [2, 1] and ds[1][2].tolist() == [3]
    with pytest.raises(ValueError, match="'auto'"):
        VOCDataset(hand_tree, class_names="automatic")


def test_custom_classes_from_a_list_and_unknown_names(hand_tree):
    ds = VOCDataset(hand_tree, class_names=("background", "tvmonitor", "dog", "cat"), keep_difficult=True)
    assert ds[0][2].tolist() == [2, 3] and ds[1][2].tolist() == [1]
    ds = VOCDataset(hand_tree, class_names=("background", "dog"))
    with pytest.raises(ValueError, match="unknown class 'tvmonitor'"):
        ds[1]


def test_auto_classes_of_an_exported_shapes_tree(tmp_path):
    source = ShapesDataset(8, scene="mixed", seed=4)
    export_voc(source, tmp_path / "VOCdevkit")
    ds = VOCDataset(tmp_path / "VOCdevkit", class_names="auto")
    present = sorted({source.class_names[k] for i in range(8) for k in source[i][2].tolist()})
    assert ds.class_names == ("background", *present)
    assert len(ds) == 8


def test_auto_classes_need_an_object(tmp_path):
    folder = tmp_path / "VOCdevkit" / "VOC2007"
    _write_item(folder, "000001", 10, 10, [])
    _write_split(folder, "trainval", ["000001"])
    with pytest.raises(ValueError, match="no object"):
        VOCDataset(tmp_path / "VOCdevkit", class_names="auto")
