"""ShapesDataset: determinism, validity, honest boxes, flocks."""

from __future__ import annotations

import numpy as np
import pytest

from minissd.data import ShapesDataset


def _check_item(image, boxes, labels, size, num_classes):
    assert image.shape == (size, size, 3) and image.dtype == np.uint8
    assert boxes.dtype == np.float32 and boxes.ndim == 2 and boxes.shape[1] == 4
    assert labels.dtype == np.int64 and labels.shape == (boxes.shape[0],)
    assert np.all(boxes >= 0.0) and np.all(boxes <= 1.0)
    assert np.all(boxes[:, 2] > boxes[:, 0]) and np.all(boxes[:, 3] > boxes[:, 1])
    assert np.all(labels >= 1) and np.all(labels <= num_classes - 1)


def test_class_names_start_with_background():
    ds = ShapesDataset(1)
    assert ds.class_names[0] == "background"
    assert len(ds.class_names) - 1 >= 5  # at least five shape classes
    assert ds.num_classes == len(ds.class_names)
    assert len(set(ds.class_names)) == len(ds.class_names)
    assert "bird" in ds.class_names


def test_default_image_size_is_160():
    image, _, _ = ShapesDataset(1)[0]
    assert image.shape == (160, 160, 3)


@pytest.mark.parametrize("scene", ["mixed", "flock"])
def test_items_are_deterministic(scene):
    a = ShapesDataset(10, scene=scene, seed=7)
    b = ShapesDataset(10, scene=scene, seed=7)
    first = a[3]
    for i in (9, 0, 5):  # other items in between must not change item 3
        a[i]
    for x, y, z in zip(first, a[3], b[3]):
        np.testing.assert_array_equal(x, y)
        np.testing.assert_array_equal(x, z)


def test_seeds_and_indices_give_different_items():
    a, b = ShapesDataset(5, seed=1), ShapesDataset(5, seed=2)
    assert not np.array_equal(a[0][0], b[0][0])
    assert not np.array_equal(a[0][0], a[1][0])
    # A mixed and a flock scene of the same seed and index are different pictures too.
    assert not np.array_equal(a[0][0], ShapesDataset(5, scene="flock", seed=1)[0][0])


@pytest.mark.parametrize("scene,size", [("mixed", 160), ("flock", 160), ("mixed", 96), ("flock", 300)])
def test_items_are_valid(scene, size):
    ds = ShapesDataset(12, image_size=size, scene=scene, seed=3)
    assert len(ds) == 12
    for i in range(len(ds)):
        _check_item(*ds[i], size=size, num_classes=ds.num_classes)
        assert len(ds[i][2]) >= 1


def test_boxes_are_tight_around_the_visible_pixels():
    # render() also returns the instance map (which object owns each pixel). For every object: all of its
    # pixels lie inside its box, and each of the four box edges touches one of its pixels (tight).
    for scene in ("mixed", "flock"):
        ds = ShapesDataset(6, scene=scene, seed=11)
        for i in range(len(ds)):
            s = ds.render(i)
            size = ds.image_size
            assert set(np.unique(s.instance_map)) <= set(range(-1, len(s.labels)))
            for k, box in enumerate(s.boxes):
                rows, cols = np.nonzero(s.instance_map == k)
                assert rows.size > 0
                # pixel (r, c) spans [c, c + 1): box in pixels is (cmin, rmin, cmax + 1, rmax + 1)
                x0, y0, x1, y1 = np.rint(box * size).astype(int)
                assert (x0, y0, x1, y1) == (cols.min(), rows.min(), cols.max() + 1, rows.max() + 1)


def test_objects_are_at_least_half_visible_and_painted_in_one_colour():
    ds = ShapesDataset(8, seed=4)
    for i in range(len(ds)):
        s = ds.render(i)
        assert np.all(s.visible_fraction >= 0.5) and np.all(s.visible_fraction <= 1.0)
        for k in range(len(s.labels)):
            pixels = s.image[s.instance_map == k].astype(float)  # (n, 3)
            # A flat colour plus pixel noise of sigma <= 8: if the instance map pointed at the wrong pixels
            # (background gradient, another object), the spread would be much larger.
            assert pixels.std(axis=0).max() < 15.0


def test_flock_scenes_have_ten_or_more_small_objects_in_clusters():
    ds = ShapesDataset(15, scene="flock", seed=0)
    for i in range(len(ds)):
        _, boxes, labels = ds[i]
        sides = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
        assert 10 <= len(labels) <= 40
        assert np.all(sides <= 0.12), sides.max()  # small: at most ~12% of the image side
        # Clustered: the median distance from an object to its nearest neighbour is well below the
        # 0.5 / sqrt(n) of the side that n objects scattered uniformly at random would give.
        centres = (boxes[:, :2] + boxes[:, 2:]) / 2
        d = np.linalg.norm(centres[:, None] - centres[None], axis=2) + np.eye(len(centres)) * 9
        assert np.median(d.min(axis=1)) < 0.85 * 0.5 / np.sqrt(len(centres))


def test_mixed_scenes_cover_small_to_large_objects():
    ds = ShapesDataset(60, scene="mixed", seed=2)
    sides, counts, classes = [], [], set()
    for i in range(len(ds)):
        _, boxes, labels = ds[i]
        sides.extend(np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]).tolist())
        counts.append(len(labels))
        classes.update(labels.tolist())
    assert min(sides) < 0.07 and max(sides) > 0.6
    assert min(counts) >= 1 and max(counts) <= 6
    assert classes == set(range(1, ds.num_classes))  # every class appears


def test_indexing_and_bad_arguments():
    ds = ShapesDataset(3, seed=0)
    np.testing.assert_array_equal(ds[-1][0], ds[2][0])
    with pytest.raises(IndexError):
        ds[3]
    with pytest.raises(ValueError, match="scene"):
        ShapesDataset(3, scene="forest")
    with pytest.raises(ValueError, match="num_images"):
        ShapesDataset(-1)
    with pytest.raises(ValueError, match="image_size"):
        ShapesDataset(3, image_size=8)
    fresh = ShapesDataset(3, seed=0)
    assert fresh.difficult(1).shape == fresh[1][2].shape  # before and after the item was drawn
    assert fresh.difficult(1).shape == fresh[1][2].shape
    assert ds.difficult(0).dtype == bool and not ds.difficult(0).any()
