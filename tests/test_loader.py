"""DataLoader: batching, drop_last, seeded shuffling, determinism across threads, prefetching, errors."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from minissd import backend
from minissd.data import DataLoader, ShapesDataset, train_transform


class Numbered:
    """Item i: a 4 x 4 image filled with i, one box whose xmin encodes i, label 1 + i % 3."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.seen: list[int] = []
        self.lock = threading.Lock()

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        with self.lock:
            self.seen.append(i)
        image = np.full((4, 4, 3), i, np.uint8)
        boxes = np.array([[i / 1000.0, 0.0, 0.5, 0.5]], np.float32)
        return image, boxes, np.array([1 + i % 3])


def _ids(batch):
    images, boxes, labels = batch
    ids = backend.to_numpy(images)[:, 0, 0, 0].astype(int).tolist()
    assert ids == [int(round(b[0, 0] * 1000)) for b in boxes]  # images and boxes stay together
    assert [lab.tolist() for lab in labels] == [[1 + i % 3] for i in ids]
    return ids


def test_batches_without_shuffle_are_in_order():
    loader = DataLoader(Numbered(10), batch_size=4, shuffle=False)
    assert len(loader) == 3  # ceil(10 / 4)
    batches = [_ids(b) for b in loader]
    assert batches == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def test_drop_last():
    loader = DataLoader(Numbered(10), batch_size=4, shuffle=False, drop_last=True)
    assert len(loader) == 2
    assert [_ids(b) for b in loader] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    # Exact multiple: nothing to drop.
    assert len(DataLoader(Numbered(8), batch_size=4, drop_last=True)) == 2


def test_shuffle_covers_every_item_once_and_changes_per_epoch():
    loader = DataLoader(Numbered(23), batch_size=5, shuffle=True, seed=3)
    first = [i for b in loader for i in _ids(b)]
    second = [i for b in loader for i in _ids(b)]
    assert sorted(first) == sorted(second) == list(range(23))
    assert first != second and first != list(range(23))
    # Same seed, fresh loader: the same two epochs; another seed: another order.
    again = DataLoader(Numbered(23), batch_size=5, shuffle=True, seed=3)
    assert [i for b in again for i in _ids(b)] == first
    assert [i for b in again for i in _ids(b)] == second
    other = DataLoader(Numbered(23), batch_size=5, shuffle=True, seed=4)
    assert [i for b in other for i in _ids(b)] != first


def test_set_epoch_replays_an_epoch():
    loader = DataLoader(Numbered(12), batch_size=4, seed=1)
    epochs = [[_ids(b) for b in loader] for _ in range(3)]
    loader.set_epoch(1)
    assert [_ids(b) for b in loader] == epochs[1]
    assert loader.epoch == 2


def test_output_types_and_no_transform_conversion():
    images, boxes, labels = next(iter(DataLoader(Numbered(3), batch_size=3, shuffle=False)))
    images = backend.to_numpy(images)
    assert images.shape == (3, 3, 4, 4) and images.dtype == np.float32
    np.testing.assert_array_equal(images[2], 2.0)  # uint8 HWC -> float32 CHW, values unchanged
    assert all(b.dtype == np.float32 and b.shape == (1, 4) for b in boxes)
    assert all(lab.dtype == np.int64 for lab in labels)


@pytest.mark.needs("box_coding")  # the min-IoU crop
def test_augmented_batches_do_not_depend_on_the_number_of_workers():
    # Every item's generator is derived from (seed, epoch, index), so thread timing cannot change anything.
    ds = ShapesDataset(10, image_size=64, seed=2)
    runs = []
    for workers in (0, 1, 3):
        loader = DataLoader(ds, batch_size=4, transform=train_transform(48), seed=5, num_workers=workers)
        runs.append([[backend.to_numpy(x), b, lab] for _ in range(2) for x, b, lab in loader])
    for run in runs[1:]:
        assert len(run) == len(runs[0]) == 6  # 2 epochs x 3 batches
        for (x0, b0, l0), (x1, b1, l1) in zip(runs[0], run):
            np.testing.assert_array_equal(x0, x1)
            for u, v in zip(b0 + l0, b1 + l1):
                np.testing.assert_array_equal(u, v)
    x, boxes, labels = runs[0][0]
    assert x.shape == (4, 3, 48, 48) and x.dtype == np.float32
    assert all(len(b) == len(lab) for b, lab in zip(boxes, labels))
    # Two epochs augment differently (different generators), even for the same items.
    flat0 = np.concatenate([r[0] for r in runs[0][:3]])
    flat1 = np.concatenate([r[0] for r in runs[0][3:]])
    assert not np.array_equal(np.sort(flat0, axis=None), np.sort(flat1, axis=None))


def test_background_workers_prefetch_ahead_of_the_consumer():
    ds = Numbered(40)
    loader = DataLoader(ds, batch_size=4, shuffle=False, num_workers=2, prefetch=3)
    it = iter(loader)
    next(it)  # batch 0 consumed; batches 1..3 are queued or built in the background
    done = threading.Event()

    def watch():
        while not done.is_set():
            with ds.lock:
                if {12, 13, 14, 15} <= set(ds.seen):  # batch 3, read without the consumer asking
                    done.set()
            done.wait(0.01)

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    assert done.wait(10.0), "no batch was built ahead of the consumer"
    # Never more than `prefetch` batches ahead: batch 4 (items 16..19) is not started before batch 1
    # is taken.
    assert not {16, 17, 18, 19} & set(ds.seen)
    it.close()
    # Without workers nothing is read ahead.
    ds2 = Numbered(40)
    it2 = iter(DataLoader(ds2, batch_size=4, shuffle=False, num_workers=0))
    next(it2)
    assert sorted(ds2.seen) == [0, 1, 2, 3]


def test_stopping_early_and_starting_again():
    loader = DataLoader(Numbered(40), batch_size=2, shuffle=False, num_workers=2)
    for k, _batch in enumerate(loader):
        if k == 1:
            break
    assert [_ids(b) for b in loader][0] == [0, 1]  # epoch 1 starts cleanly (no shuffle: same order)


class Broken(Numbered):
    def __getitem__(self, i):
        if i == 5:
            raise RuntimeError("item 5 is corrupt")
        return super().__getitem__(i)


@pytest.mark.parametrize("workers", [0, 2])
def test_a_worker_error_reaches_the_training_loop(workers):
    loader = DataLoader(Broken(8), batch_size=2, shuffle=False, num_workers=workers)
    with pytest.raises(RuntimeError, match="item 5"):
        for _ in loader:
            pass


def test_bad_arguments_and_mixed_sizes():
    with pytest.raises(ValueError, match="batch_size"):
        DataLoader(Numbered(3), batch_size=0)
    with pytest.raises(ValueError, match="prefetch"):
        DataLoader(Numbered(3), batch_size=1, prefetch=0)

    class Mixed(Numbered):
        def __getitem__(self, i):
            image, boxes, labels = super().__getitem__(i)
            return (image if i % 2 else np.zeros((5, 4, 3), np.uint8)), boxes, labels

    with pytest.raises(ValueError, match="transform"):
        next(iter(DataLoader(Mixed(4), batch_size=2, shuffle=False)))


class Same(Numbered):
    """Every item is the same picture with the same box; only its index differs."""

    def __getitem__(self, i):
        with self.lock:
            self.seen.append(i)
        image = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
        return image, np.array([[0.25, 0.25, 0.75, 0.75]], np.float32), np.array([1])


@pytest.mark.needs("box_coding")  # the min-IoU crop
def test_each_item_has_its_own_augmentation_tied_to_its_index():
    # Identical items in one batch are augmented differently (one generator per index), and item i gets
    # the same augmentation in epoch e whatever its position: with or without shuffling.
    t = train_transform(16)
    plain = DataLoader(Same(8), batch_size=8, shuffle=False, transform=t, seed=9)
    x, _, _ = next(iter(plain))
    x = backend.to_numpy(x)
    assert len({x[k].tobytes() for k in range(8)}) == 8
    shuffled = DataLoader(Same(8), batch_size=8, shuffle=True, transform=t, seed=9)
    order = shuffled.order(0)
    y = backend.to_numpy(next(iter(shuffled))[0])
    for pos, index in enumerate(order):
        np.testing.assert_array_equal(y[pos], x[index])


def test_iter_epoch_resumes_in_the_middle_of_an_epoch():
    loader = DataLoader(Numbered(20), batch_size=3, seed=2)
    full = [_ids(b) for b in loader.iter_epoch(4)]
    assert [_ids(b) for b in loader.iter_epoch(4, start=5)] == full[5:]
    assert loader.epoch == 0  # iter_epoch does not advance the loader's own epoch counter
    assert [_ids(b) for b in loader.iter_epoch(4, start=len(full))] == []


def test_concat_dataset_serves_parts_in_order():
    from minissd.data import ConcatDataset, ShapesDataset

    a, b = ShapesDataset(3, scene="mixed", seed=1), ShapesDataset(2, scene="flock", seed=1)
    both = ConcatDataset([a, b])
    assert len(both) == 5 and both.num_classes == a.num_classes
    np.testing.assert_array_equal(both[2][1], a[2][1])
    np.testing.assert_array_equal(both[3][1], b[0][1])
    np.testing.assert_array_equal(both[-1][1], b[1][1])
    assert len(both.difficult(4)) == len(b[1][2])
    with pytest.raises(IndexError, match="5"):
        both[5]
