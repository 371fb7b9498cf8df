"""COCO detection annotations on disk: a reader (:class:`COCODataset`) and a writer (:func:`export_coco`).

The layout is one JSON file and one folder of images::

    {"images":      [{"id": 397133, "file_name": "000000397133.jpg", "width": 640, "height": 427}, ...],
     "annotations": [{"id": 82445, "image_id": 397133, "category_id": 44,
                      "bbox": [217.62, 240.54, 38.99, 57.75], "iscrowd": 0, "area": 1423.3}, ...],
     "categories":  [{"id": 1, "name": "person"}, ...]}

Box convention
--------------
``bbox`` is ``[x, y, width, height]`` in continuous pixel coordinates: the image spans [0, W] x [0, H]
and ``(x, y)`` is the top-left corner (no VOC-style ``+ 1``). In minissd's normalised corners::

    xmin = x / W    ymin = y / H    xmax = (x + width) / W    ymax = (y + height) / H

A box may stick out of its image by less than a pixel (:data:`BOX_TOLERANCE`; COCO's boxes come from
polygons, and rounding puts some a hair outside): it is clipped to the image. A box further outside is an
error that names the annotation. A box of zero width or height cannot be a training target (its log size
is -inf): it is left out and its annotation id listed in ``dataset.skipped``.

Classes
-------
COCO's category ids are arbitrary (the 80 COCO classes use ids 1..90 with gaps). They are mapped to
labels 1..C in ascending id order, background is label 0, and ``dataset.label_to_category_id`` keeps the
way back (to write detections in COCO's own terms).

Crowds
------
An annotation with ``iscrowd: 1`` marks a region of many objects too close to separate (a crowd of
people). It is never a training target nor an object to find; evaluation ignores detections inside it
(:func:`minissd.evaluation.coco_metrics`). So ``dataset[i]`` leaves crowds out, and
``dataset.crowd(i)`` returns them apart.

The JSON is untrusted input: every field is checked, and a bad one raises ValueError naming the file and
the field, never a bare KeyError or TypeError.
"""

from __future__ import annotations

import json
import math
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from .voc import read_image

#: How far (pixels) a box may stick out of its image before it is an error rather than rounding.
BOX_TOLERANCE = 1.0


def _load_json(path: Path) -> Any:
    if not path.is_file():
        raise FileNotFoundError(f"COCO annotation file not found: {path}")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"malformed COCO annotation file {path}: not valid JSON ({exc})") from None


class _Checker:
    """Reads typed fields from untrusted JSON objects, raising ValueError that names file and field."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, where: str, message: str) -> ValueError:
        return ValueError(f"COCO annotation file {self.path}: {where}: {message}")

    def list_of_objects(self, data: dict[str, Any], key: str, required: bool = True) -> list[dict[str, Any]]:
        if key not in data:
            if required:
                raise self.fail(f'"{key}"', "missing (expected a list of objects)")
            return []
        value = data[key]
        if not isinstance(value, list):
            raise self.fail(f'"{key}"', f"expected a list, got {type(value).__name__}")
        for k, item in enumerate(value):
            if not isinstance(item, dict):
                raise self.fail(f"{key}[{k}]", f"expected an object, got {type(item).__name__}")
        return value

    def integer(self, obj: dict[str, Any], key: str, where: str, minimum: int | None = None) -> int:
        value = obj.get(key)
        # bool is an int in Python; a JSON true is no id. Integral floats (640.0) are accepted.
        ok = isinstance(value, int) and not isinstance(value, bool)
        if isinstance(value, float) and value.is_integer():
            value, ok = int(value), True
        if not ok:
            raise self.fail(f'{where} "{key}"', f"expected an integer, got {value!r}")
        if minimum is not None and value < minimum:
            raise self.fail(f'{where} "{key}"', f"expected an integer >= {minimum}, got {value}")
        return int(value)

    def string(self, obj: dict[str, Any], key: str, where: str) -> str:
        value = obj.get(key)
        if not isinstance(value, str) or not value:
            raise self.fail(f'{where} "{key}"', f"expected a non-empty string, got {value!r}")
        return value

    def bbox(self, obj: dict[str, Any], where: str) -> list[float]:
        value = obj.get("bbox")
        if (
            not isinstance(value, list)
            or len(value) != 4
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
            or not all(math.isfinite(v) for v in value)
        ):
            raise self.fail(f'{where} "bbox"', f"expected [x, y, width, height], four finite numbers, got {value!r}")
        if value[2] < 0 or value[3] < 0:
            raise self.fail(f'{where} "bbox"', f"negative width or height in {value}")
        return [float(v) for v in value]


def _safe_file_name(check: _Checker, name: str, where: str) -> str:
    """A file name relative to the image folder; absolute paths and '..' would read files outside it."""
    parts = PurePosixPath(name.replace("\\", "/"))
    if parts.is_absolute() or ".." in parts.parts or (len(name) > 1 and name[1] == ":"):
        raise check.fail(f'{where} "file_name"', f"expected a path inside the image folder, got {name!r}")
    return name


class COCODataset:
    """A COCO-format detection set: an annotation JSON file and the folder of its images.

    Args:
        annotation_file: the JSON file (``instances_val2017.json`` or one written by :func:`export_coco`).
        image_dir: the folder the ``file_name`` of each image is relative to.

    ``dataset[i]`` -> ``(image (H, W, 3) uint8, boxes (G, 4) float32 normalised corners, labels (G,) int64
    in 1..C)``, crowds left out; ``dataset.crowd(i)`` -> ``(boxes (K, 4), labels (K,))`` of the crowd
    regions of image i; ``dataset.image_size(i)`` -> ``(H, W)`` from the JSON (no image decoded);
    ``dataset.annotation(i)`` -> everything known about image i; ``dataset.class_names`` (background
    first), ``dataset.label_to_category_id`` ({label: COCO category id}), ``dataset.image_ids``.
    Images without any annotation are items with no boxes. The JSON is read and checked at
    construction; an image file is read (and checked against its size in the JSON) when its item is.
    """

    def __init__(self, annotation_file: str | Path, image_dir: str | Path) -> None:
        self.annotation_file = Path(annotation_file)
        self.image_dir = Path(image_dir)
        if not self.image_dir.is_dir():
            raise FileNotFoundError(f"COCODataset(image_dir): folder not found: {self.image_dir}")
        data = _load_json(self.annotation_file)
        check = _Checker(self.annotation_file)
        if not isinstance(data, dict):
            raise check.fail("top level", f"expected an object with images, annotations, categories, "
                                          f"got {type(data).__name__}")

        # categories -> labels 1..C in ascending id order
        categories: dict[int, str] = {}
        for k, cat in enumerate(check.list_of_objects(data, "categories")):
            where = f"categories[{k}]"
            cid, name = check.integer(cat, "id", where), check.string(cat, "name", where)
            if cid in categories:
                raise check.fail(f'{where} "id"', f"category id {cid} appears twice")
            if name in categories.values() or name == "background":
                raise check.fail(f'{where} "name"', f"category name {name!r} is used twice (or is 'background')")
            categories[cid] = name
        if not categories:
            raise check.fail('"categories"', "expected at least one category, got none")
        ids = sorted(categories)
        self.class_names: tuple[str, ...] = ("background", *(categories[c] for c in ids))
        self.num_classes = len(self.class_names)
        self.label_to_category_id: dict[int, int] = {label: cid for label, cid in enumerate(ids, start=1)}
        self.category_id_to_label: dict[int, int] = {cid: label for label, cid in self.label_to_category_id.items()}

        # images, in the order of the file
        self._images: list[dict[str, Any]] = []
        position: dict[int, int] = {}
        for k, im in enumerate(check.list_of_objects(data, "images")):
            where = f"images[{k}]"
            iid = check.integer(im, "id", where)
            if iid in position:
                raise check.fail(f'{where} "id"', f"image id {iid} appears twice")
            position[iid] = len(self._images)
            self._images.append({
                "id": iid,
                "file_name": _safe_file_name(check, check.string(im, "file_name", where), where),
                "width": check.integer(im, "width", where, minimum=1),
                "height": check.integer(im, "height", where, minimum=1),
                "objects": [], "crowds": [],
            })
        self.image_ids: list[int] = [im["id"] for im in self._images]

        # annotations (a test split's image-info file has none: every image is then empty)
        self.skipped: list[int | str] = []
        for k, ann in enumerate(check.list_of_objects(data, "annotations", required=False)):
            aid: int | str = ann["id"] if isinstance(ann.get("id"), int) else f"annotations[{k}]"
            where = f"annotation {aid}" if isinstance(aid, int) else aid
            iid = check.integer(ann, "image_id", where)
            if iid not in position:
                raise check.fail(f'{where} "image_id"', f"no image has id {iid}")
            cid = check.integer(ann, "category_id", where)
            if cid not in categories:
                raise check.fail(f'{where} "category_id"', f"no category has id {cid}")
            crowd = ann.get("iscrowd", 0)
            if crowd not in (0, 1, True, False):
                raise check.fail(f'{where} "iscrowd"', f"expected 0 or 1, got {crowd!r}")
            x, y, w, h = check.bbox(ann, where)
            image = self._images[position[iid]]
            width, height = image["width"], image["height"]
            if x < -BOX_TOLERANCE or y < -BOX_TOLERANCE or x + w > width + BOX_TOLERANCE or \
                    y + h > height + BOX_TOLERANCE:
                raise check.fail(f'{where} "bbox"', f"box {[x, y, w, h]} lies outside its image "
                                                    f"{image['file_name']} of {width}x{height} pixels")
            if w == 0 or h == 0:
                self.skipped.append(aid)
                continue
            corners = [min(max(x / width, 0.0), 1.0), min(max(y / height, 0.0), 1.0),
                       min(max((x + w) / width, 0.0), 1.0), min(max((y + h) / height, 0.0), 1.0)]
            image["crowds" if crowd else "objects"].append((corners, self.category_id_to_label[cid], aid))

    def __len__(self) -> int:
        return len(self._images)

    def __repr__(self) -> str:
        return (f"COCODataset({str(self.annotation_file)!r}, {str(self.image_dir)!r}, n={len(self)}, "
                f"classes={self.num_classes - 1})")

    def _index(self, index: int) -> int:
        if not isinstance(index, (int, np.integer)):
            raise TypeError(f"COCODataset index: expected an integer, got {type(index).__name__}")
        i = int(index) + (len(self) if index < 0 else 0)
        if not 0 <= i < len(self):
            raise IndexError(f"COCODataset index {index} out of range for {len(self)} images")
        return i

    @staticmethod
    def _arrays(entries: list[tuple[list[float], int, Any]]) -> tuple[np.ndarray, np.ndarray]:
        boxes = np.asarray([e[0] for e in entries], dtype=np.float64).reshape(-1, 4).astype(np.float32)
        return boxes, np.asarray([e[1] for e in entries], dtype=np.int64)

    def annotation(self, index: int) -> dict[str, Any]:
        """Image ``index`` without reading its file: ``id``, ``file_name``, ``width``, ``height``, ``boxes``
        (G, 4) float32 normalised, ``labels`` (G,) int64, ``annotation_ids`` (G,), and ``crowd_boxes``
        (K, 4), ``crowd_labels`` (K,), ``crowd_annotation_ids`` (K,) for its crowd regions."""
        im = self._images[self._index(index)]
        boxes, labels = self._arrays(im["objects"])
        crowd_boxes, crowd_labels = self._arrays(im["crowds"])
        return {
            "id": im["id"], "file_name": im["file_name"], "width": im["width"], "height": im["height"],
            "boxes": boxes, "labels": labels, "annotation_ids": [e[2] for e in im["objects"]],
            "crowd_boxes": crowd_boxes, "crowd_labels": crowd_labels,
            "crowd_annotation_ids": [e[2] for e in im["crowds"]],
        }

    def image_size(self, index: int) -> tuple[int, int]:
        """(H, W) of image ``index`` in pixels, from the JSON."""
        im = self._images[self._index(index)]
        return im["height"], im["width"]

    def image_path(self, index: int) -> Path:
        return self.image_dir / self._images[self._index(index)]["file_name"]

    def crowd(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The crowd regions of image ``index``: boxes (K, 4) float32 normalised, labels (K,) int64."""
        return self._arrays(self._images[self._index(index)]["crowds"])

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        i = self._index(index)
        im = self._images[i]
        path = self.image_path(i)
        image = read_image(path)
        if image.shape[:2] != (im["height"], im["width"]):
            raise ValueError(f"COCO image {path} is {image.shape[1]}x{image.shape[0]} but "
                             f"{self.annotation_file} says {im['width']}x{im['height']} (image id {im['id']})")
        boxes, labels = self._arrays(im["objects"])
        return image, boxes, labels


def export_coco(
    dataset: Any,
    out_dir: str | Path,
    *,
    annotation_file: str = "annotations.json",
    image_dir: str = "images",
    jpeg_quality: int = 95,
    id_offset: int = 0,
) -> Path:
    """Write ``dataset`` in COCO format: ``out_dir/<image_dir>/<id>.jpg`` and ``out_dir/<annotation_file>``.

    Args:
        dataset: anything with ``len``, ``dataset[i] -> (image uint8 HWC, boxes normalised, labels)`` and
            ``class_names`` (background first); ``dataset.crowd(i)`` (crowd regions, written with
            ``iscrowd: 1``) and ``dataset.label_to_category_id`` (kept as the category ids; else label k
            is category k) are used when they exist.
        out_dir: the folder (created if missing).
        annotation_file, image_dir: names inside ``out_dir``.
        jpeg_quality: JPEG quality of the images (the boxes do not depend on it).
        id_offset: image ids are ``id_offset + i + 1`` and the files ``f"{id:06d}.jpg"``.

    Boxes are written in pixels, ``[x, y, width, height]`` rounded to 1/100 pixel (COCO's own precision),
    so boxes on the pixel grid (every ShapesDataset box) read back exactly. ``area`` is the box area in
    pixels. Returns the path of the annotation file, ready for ``COCODataset(path, out_dir / image_dir)``.
    """
    try:
        from PIL import Image  # noqa: PLC0415
    except ImportError as exc:  # pragma: no cover
        raise RuntimeError("export_coco needs Pillow to write JPEG files: pip install pillow") from exc
    names = list(getattr(dataset, "class_names", ()))
    if len(names) < 2:
        raise ValueError("export_coco(dataset): the dataset needs class_names with background first")
    to_category = dict(getattr(dataset, "label_to_category_id", None) or {k: k for k in range(1, len(names))})
    out = Path(out_dir)
    (out / image_dir).mkdir(parents=True, exist_ok=True)
    crowd_of = getattr(dataset, "crowd", None)
    images, annotations = [], []

    def add(image_id: int, boxes: np.ndarray, labels: np.ndarray, w: int, h: int, crowd: bool, i: int) -> None:
        for box, label in zip(np.asarray(boxes, np.float64).reshape(-1, 4), labels.tolist()):
            if not (np.all(box >= -1e-6) and np.all(box <= 1 + 1e-6) and box[0] <= box[2] and box[1] <= box[3]):
                raise ValueError(f"export_coco: item {i} has a box outside [0, 1] or inverted: {box.tolist()}")
            x0, y0, x1, y1 = (round(float(v), 2) for v in box * np.array([w, h, w, h]))
            bw, bh = round(x1 - x0, 2), round(y1 - y0, 2)
            annotations.append({"id": len(annotations) + 1, "image_id": image_id,
                                "category_id": int(to_category[label]), "bbox": [x0, y0, bw, bh],
                                "area": round(bw * bh, 4), "iscrowd": int(crowd)})

    for i in range(len(dataset)):
        image, boxes, labels = dataset[i]
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"export_coco: item {i} image must be (H, W, 3) uint8, got {image.shape} {image.dtype}")
        labels = np.asarray(labels, dtype=np.int64).reshape(-1)
        if labels.size and (labels.min() < 1 or labels.max() >= len(names)):
            raise ValueError(f"export_coco: item {i} has labels outside 1..{len(names) - 1}: {labels.tolist()}")
        h, w = image.shape[:2]
        image_id = id_offset + i + 1
        file_name = f"{image_id:06d}.jpg"
        Image.fromarray(image).save(out / image_dir / file_name, quality=int(jpeg_quality))
        images.append({"id": image_id, "file_name": file_name, "width": int(w), "height": int(h)})
        add(image_id, boxes, labels, w, h, False, i)
        if callable(crowd_of):
            crowd_boxes, crowd_labels = crowd_of(i)
            add(image_id, crowd_boxes, np.asarray(crowd_labels, np.int64).reshape(-1), w, h, True, i)
    categories = [{"id": int(to_category[k]), "name": names[k], "supercategory": "object"}
                  for k in range(1, len(names))]
    document = {"info": {"description": f"exported by minissd from {type(dataset).__name__}"}, "licenses": [],
                "images": images, "annotations": annotations, "categories": categories}
    path = out / annotation_file
    path.write_text(json.dumps(document))
    return path
