"""DataLoader: batches of (images, boxes, labels) with seeded shuffling and background prefetching.

Determinism: the order of epoch ``e`` is ``default_rng([seed, e]).permutation(n)`` (or ``arange(n)`` without
shuffling), and item ``i`` of epoch ``e`` is transformed with its own generator
``default_rng([seed, e, i])``. Nothing depends on which thread runs what or when, so the batches of a
given (seed, epoch) are the same with 0, 1 or 8 workers.

Prefetching: batches are built by a pool of threads, up to ``prefetch`` batches ahead of the one being
consumed, so augmentation of the next batches overlaps with the training step on the current one. Threads
(not processes) suffice because the heavy NumPy operations -- matrix products, resampling, copies --
release the GIL; and they share the dataset without pickling.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from .. import backend

Batch = tuple[Any, list[np.ndarray], list[np.ndarray]]


class DataLoader:
    """Iterate over a detection dataset in batches.

    Args:
        dataset: ``len(dataset)`` and ``dataset[i] -> (image (H, W, 3) uint8, boxes (G, 4), labels (G,))``.
        batch_size: images per batch.
        shuffle: a new seeded order every epoch (else dataset order).
        transform: ``transform(image, boxes, labels, rng) -> ((3, S, S) float32, boxes, labels)``, e.g.
            :func:`~minissd.data.transforms.train_transform`. ``None``: images are only converted to float32
            (3, H, W) on the 0..255 scale, and must then all have the same size.
        seed: base seed of the order and of every item's augmentation.
        drop_last: drop the last batch if it is smaller than batch_size.
        num_workers: threads that build batches in the background; 0 builds them in the calling thread.
        prefetch: how many batches may be built ahead of the one being consumed (>= 1).

    Each iteration yields ``(images, boxes, labels)``: images (N, 3, S, S) float32 on the selected backend
    (moved there with ``backend.asarray``, so on CuPy it is a GPU array), and lists of N host arrays,
    boxes (G_i, 4) float32 and labels (G_i,) int64. Iterating again starts the next epoch; ``set_epoch``
    chooses it (to resume training).
    """

    def __init__(
        self,
        dataset: Any,
        batch_size: int,
        shuffle: bool = True,
        transform: Callable[..., Any] | None = None,
        seed: int = 0,
        drop_last: bool = False,
        num_workers: int = 2,
        prefetch: int = 4,
    ) -> None:
        if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"DataLoader(batch_size): expected a positive integer, got {batch_size!r}")
        if not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"DataLoader(seed): expected an integer >= 0, got {seed!r}")
        if not isinstance(num_workers, (int, np.integer)) or num_workers < 0:
            raise ValueError(f"DataLoader(num_workers): expected an integer >= 0, got {num_workers!r}")
        if not isinstance(prefetch, (int, np.integer)) or prefetch < 1:
            raise ValueError(f"DataLoader(prefetch): expected an integer >= 1, got {prefetch!r}")
        if transform is not None and not callable(transform):
            raise TypeError(
                f"DataLoader(transform): expected a callable or None, got {type(transform).__name__}"
            )
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.transform = transform
        self.seed = int(seed)
        self.drop_last = bool(drop_last)
        self.num_workers = int(num_workers)
        self.prefetch = int(prefetch)
        self.epoch = 0

    def __len__(self) -> int:
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration epoch ``epoch`` (its order and augmentations), e.g. when resuming."""
        if not isinstance(epoch, (int, np.integer)) or epoch < 0:
            raise ValueError(f"DataLoader.set_epoch(epoch): expected an integer >= 0, got {epoch!r}")
        self.epoch = int(epoch)

    def order(self, epoch: int) -> np.ndarray:
        """The dataset indices of ``epoch`` in the order they are served, (len(dataset),) int64."""
        n = len(self.dataset)
        if self.shuffle:
            return np.random.default_rng([self.seed, epoch]).permutation(n)
        return np.arange(n)

    def batch_indices(self, epoch: int) -> list[np.ndarray]:
        """The indices of every batch of ``epoch``."""
        idx = self.order(epoch)
        stop = len(self) * self.batch_size if self.drop_last else len(idx)
        return [idx[s : min(s + self.batch_size, stop)] for s in range(0, stop, self.batch_size)]

    def _item(self, epoch: int, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        image, boxes, labels = self.dataset[int(index)]
        if self.transform is not None:
            rng = np.random.default_rng([self.seed, epoch, int(index)])
            image, boxes, labels = self.transform(image, boxes, labels, rng)
            image = np.asarray(image)
            if image.ndim != 3 or image.shape[0] != 3:
                raise ValueError(
                    f"DataLoader: the transform must return a (3, S, S) image (end it with Normalize), "
                    f"got shape {image.shape} for item {index}"
                )
        else:
            image = np.asarray(image)
            if image.ndim != 3 or image.shape[2] != 3:
                raise ValueError(f"DataLoader: item {index} image must be (H, W, 3), got shape {image.shape}")
            image = image.transpose(2, 0, 1)
        boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
        labels = np.asarray(labels, dtype=np.int64).reshape(-1)
        return image, boxes, labels

    def _build(
        self, epoch: int, indices: np.ndarray
    ) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
        """One batch on the host: (N, 3, S, S) float32 and the box and label lists."""
        items = [self._item(epoch, i) for i in indices]
        shapes = {it[0].shape for it in items}
        if len(shapes) != 1:
            raise ValueError(
                f"DataLoader: images of one batch have different shapes {sorted(shapes)}; "
                "pass a transform that resizes (e.g. eval_transform(size))"
            )
        images = np.empty((len(items),) + items[0][0].shape, dtype=np.float32)
        for k, it in enumerate(items):
            images[k] = it[0]
        return images, [it[1] for it in items], [it[2] for it in items]

    def __iter__(self) -> Iterator[Batch]:
        epoch = self.epoch
        self.epoch += 1
        return self.iter_epoch(epoch)

    def iter_epoch(self, epoch: int, start: int = 0) -> Iterator[Batch]:
        """The batches of ``epoch`` from batch number ``start`` on (resuming in the middle of an epoch gives
        exactly the batches an uninterrupted run would have seen). Does not change ``self.epoch``."""
        if not isinstance(epoch, (int, np.integer)) or epoch < 0:
            raise ValueError(f"DataLoader.iter_epoch(epoch): expected an integer >= 0, got {epoch!r}")
        if not isinstance(start, (int, np.integer)) or start < 0:
            raise ValueError(f"DataLoader.iter_epoch(start): expected an integer >= 0, got {start!r}")
        return self._batches(int(epoch), self.batch_indices(int(epoch))[int(start) :])

    def _batches(self, epoch: int, batches: list[np.ndarray]) -> Iterator[Batch]:
        if self.num_workers == 0:
            for indices in batches:
                images, boxes, labels = self._build(epoch, indices)
                yield backend.asarray(images), boxes, labels
            return
        pool = ThreadPoolExecutor(max_workers=self.num_workers, thread_name_prefix="minissd-loader")
        pending: deque[Future] = deque()
        try:
            upcoming = iter(batches)
            for indices in upcoming:  # fill the pipeline
                pending.append(pool.submit(self._build, epoch, indices))
                if len(pending) >= self.prefetch:
                    break
            while pending:
                images, boxes, labels = pending.popleft().result()  # re-raises a worker's error here
                nxt = next(upcoming, None)
                if nxt is not None:
                    pending.append(pool.submit(self._build, epoch, nxt))
                # The move to the device happens in the consuming thread, in order, on its stream.
                yield backend.asarray(images), boxes, labels
        finally:
            # Stopping early (break, an exception in the training step) cancels the batches not started.
            for f in pending:
                f.cancel()
            pool.shutdown(wait=False, cancel_futures=True)


class ConcatDataset:
    """Several datasets with the same classes served as one: item i of the first, then of the second, ...

    Used to train on mixed and flock ShapesDataset scenes together. ``class_names`` and ``num_classes``
    come from the parts, which must agree; ``difficult(i)`` is forwarded when every part has it.
    """

    def __init__(self, datasets: list[Any]) -> None:
        if not datasets:
            raise ValueError("ConcatDataset(datasets): expected at least one dataset, got none")
        names = {tuple(getattr(d, "class_names", ())) for d in datasets}
        if len(names) != 1:
            raise ValueError(f"ConcatDataset(datasets): the parts have different class_names {sorted(names)}")
        self.datasets = list(datasets)
        self.class_names = tuple(next(iter(names)))
        self.num_classes = len(self.class_names)
        self._ends = np.cumsum([len(d) for d in self.datasets])

    def __len__(self) -> int:
        return int(self._ends[-1])

    def _locate(self, index: int) -> tuple[Any, int]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"ConcatDataset: index {index} out of range for {len(self)} items")
        index %= len(self)
        part = int(np.searchsorted(self._ends, index, side="right"))
        start = 0 if part == 0 else int(self._ends[part - 1])
        return self.datasets[part], index - start

    def __getitem__(self, index: int) -> Any:
        dataset, i = self._locate(int(index))
        return dataset[i]

    def difficult(self, index: int) -> np.ndarray:
        dataset, i = self._locate(int(index))
        if hasattr(dataset, "difficult"):
            return dataset.difficult(i)
        return np.zeros(len(dataset[i][2]), dtype=bool)


class Subset:
    """Items ``indices`` of ``dataset`` (for example a held-out slice), with its class names and its per-item
    methods (VOC's difficult flags, COCO's crowds, annotations, image sizes) following the new indices."""

    _PER_ITEM = ("difficult", "crowd", "annotation", "image_size")

    def __init__(self, dataset: Any, indices: Any) -> None:
        self.dataset, self.indices = dataset, [int(i) for i in indices]
        self.class_names = dataset.class_names
        self.num_classes = len(self.class_names)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> Any:
        return self.dataset[self.indices[i]]

    def __getattr__(self, name: str) -> Any:
        if name in self._PER_ITEM and hasattr(self.__dict__.get("dataset"), name):
            method = getattr(self.dataset, name)
            return lambda i: method(self.indices[i])
        raise AttributeError(name)


def split_off(dataset: Any, fraction: float, seed: int = 0) -> tuple[Subset, Subset]:
    """(training part, held-out part) of ``dataset``: a seeded random ``fraction`` of the items held out.

    For data without a test split: the held-out part validates training, and the same seed gives the
    same split. Both parts keep the original order of their items.
    """
    n = len(dataset)
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0.0 < fraction < 1.0:
        raise ValueError(f"split_off(fraction): expected a fraction in (0, 1), got {fraction!r}")
    held = max(1, round(fraction * n))
    if n - held < 1:
        raise ValueError(f"split_off(fraction): the dataset has only {n} items, none would be left to train on")
    order = np.random.default_rng(seed).permutation(n)
    return Subset(dataset, sorted(order[held:].tolist())), Subset(dataset, sorted(order[:held].tolist()))
