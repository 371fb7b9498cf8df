"""PASCAL VOC on disk: a reader (:class:`VOCDataset`) and a writer (:func:`export_voc`).

The layout (the one the VOC devkit ships)::

    VOCdevkit/                       <- ``root``
      VOC2007/
        JPEGImages/000005.jpg
        Annotations/000005.xml       <- <size>, and one <object> per box: <name>, <difficult>, <bndbox>
        ImageSets/Main/trainval.txt  <- one image id per line

Box coordinate convention (exact, so that a round trip is bit-identical)
----------------------------------------------------------------------
VOC ``<bndbox>`` values are 1-based *inclusive pixel indices*: ``xmin = 1`` is the first column and
``xmax = W`` the last one, so a box covering columns 1..W covers the whole image. In minissd a pixel with
0-based column ``c`` covers ``[c, c + 1)``, so::

    normalised xmin = (xmin - 1) / W        normalised xmax = xmax / W
    normalised ymin = (ymin - 1) / H        normalised ymax = ymax / H

and the writer inverts it: ``xmin = round(x0 * W) + 1``, ``xmax = round(x1 * W)``. Boxes that lie on the
pixel grid (every ShapesDataset box does) therefore read back identically, float32 bit for bit. (The
popular ssd.pytorch reader subtracts 1 from xmax too, which shrinks every box by one pixel.)

The JPEG pixels are lossy; the boxes are not, because they live in the XML.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np

VOC_CLASS_NAMES: tuple[str, ...] = (
    "background",
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
)
"""Index 0 is background; the 20 VOC classes are labels 1..20 (``ssd300(num_classes=21)``)."""


def read_image(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB from an image file (VOC, COCO); raises an error naming the file."""
    if not path.is_file():
        raise FileNotFoundError(f"image not found: {path}")
    try:
        from PIL import Image  # noqa: PLC0415 - Pillow comes with matplotlib; only needed for files
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError("reading images needs Pillow: pip install pillow") from exc
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"), dtype=np.uint8)
    except Exception as exc:  # Pillow raises several types for broken files
        raise ValueError(f"cannot read image {path}: {exc}") from exc


def _parse_annotation(path: Path, class_index: dict[str, int]) -> dict[str, Any]:
    """Read one VOC XML file: width, height, pixel boxes (G, 4) float64 1-based, labels, difficult."""
    if not path.is_file():
        raise FileNotFoundError(f"VOC annotation not found: {path}")
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise ValueError(f"malformed VOC annotation {path}: {exc}") from exc

    def number(node: ET.Element, tag: str) -> float:
        text = node.findtext(tag)
        try:
            return float(text)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise ValueError(
                f"malformed VOC annotation {path}: <{tag}> is {text!r}, expected a number"
            ) from None

    size = root.find("size")
    if size is None:
        raise ValueError(f"malformed VOC annotation {path}: no <size> element")
    width, height = int(number(size, "width")), int(number(size, "height"))
    if width <= 0 or height <= 0:
        raise ValueError(f"malformed VOC annotation {path}: image size {width}x{height}")
    boxes, labels, difficult = [], [], []
    for obj in root.iter("object"):
        name = (obj.findtext("name") or "").strip()
        if name not in class_index:
            raise ValueError(
                f"VOC annotation {path}: unknown class {name!r}; expected one of {sorted(class_index)}"
            )
        bnd = obj.find("bndbox")
        if bnd is None:
            raise ValueError(f"malformed VOC annotation {path}: object {name!r} has no <bndbox>")
        box = [number(bnd, t) for t in ("xmin", "ymin", "xmax", "ymax")]
        if not (box[0] <= box[2] and box[1] <= box[3]):
            raise ValueError(f"VOC annotation {path}: object {name!r} has an empty box {box}")
        flag = obj.findtext("difficult")
        boxes.append(box)
        labels.append(class_index[name])
        difficult.append(flag is not None and flag.strip() not in ("", "0"))
    return {
        "width": width,
        "height": height,
        "boxes": np.asarray(boxes, dtype=np.float64).reshape(-1, 4),
        "labels": np.asarray(labels, dtype=np.int64),
        "difficult": np.asarray(difficult, dtype=bool),
    }


def _object_names(path: Path) -> set[str]:
    """The class names of the objects in one annotation file (for ``class_names="auto"``)."""
    if not path.is_file():
        raise FileNotFoundError(f"VOC annotation not found: {path}")
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise ValueError(f"malformed VOC annotation {path}: {exc}") from exc
    names = {(obj.findtext("name") or "").strip() for obj in root.iter("object")}
    if "" in names:
        raise ValueError(f"malformed VOC annotation {path}: an <object> without a <name>")
    return names


def pixel_to_normalized(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    """VOC 1-based inclusive pixel boxes (G, 4) -> normalised corners (G, 4) float32 in [0, 1]."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    out = np.empty_like(b)
    out[:, 0] = (b[:, 0] - 1.0) / width
    out[:, 1] = (b[:, 1] - 1.0) / height
    out[:, 2] = b[:, 2] / width
    out[:, 3] = b[:, 3] / height
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def normalized_to_pixel(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    """Normalised corners (G, 4) -> VOC 1-based inclusive integer pixel boxes (G, 4) int64.

    Every box keeps at least one pixel; the inverse of :func:`pixel_to_normalized` on the pixel grid.
    """
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    x0 = np.clip(np.rint(b[:, 0] * width), 0, width - 1)
    y0 = np.clip(np.rint(b[:, 1] * height), 0, height - 1)
    x1 = np.clip(np.rint(b[:, 2] * width), x0 + 1, width)
    y1 = np.clip(np.rint(b[:, 3] * height), y0 + 1, height)
    return np.stack([x0 + 1, y0 + 1, x1, y1], axis=1).astype(np.int64)


class VOCDataset:
    """A PASCAL VOC detection split read from a VOCdevkit folder.

    Args:
        root: the VOCdevkit folder (it holds ``VOC2007/``, ``VOC2012/``...).
        year: ``"2007"``, ``"2012"``, or several joined by ``+`` (``"2007+2012"``: the items of each in
            turn).
        split: an ImageSets/Main list, e.g. ``"trainval"``, ``"train"``, ``"val"``, ``"test"``.
        keep_difficult: keep objects marked difficult (needed to evaluate by the VOC rules: they are then
            neither counted as positives nor penalise a detection); by default they are dropped.
        class_names: the class list, background first; default the 20 VOC classes (:data:`VOC_CLASS_NAMES`).
            Pass ``ShapesDataset.class_names`` to read a tree exported from ShapesDataset, or ``"auto"``
            to read them from the annotations of this split: the sorted distinct ``<name>`` values after
            ``"background"`` (every annotation file is parsed once at construction). On the real VOC
            trees ``"auto"`` gives :data:`VOC_CLASS_NAMES`, which is in alphabetical order too; a split
            that lacks a class gives fewer classes, so evaluate with the training split's names.

    ``dataset[i]`` -> ``(image (H, W, 3) uint8, boxes (G, 4) float32 normalised corners, labels (G,) int64)``;
    ``dataset.difficult(i)`` -> (G,) bool flags aligned with those boxes;
    ``dataset.ids[i]`` -> ``(year, image id)``.
    Annotations are parsed when an item is first read (and then cached), so a malformed file raises
    its error, which names the file, at that point.
    """

    def __init__(
        self,
        root: str | Path,
        year: str = "2007",
        split: str = "trainval",
        keep_difficult: bool = False,
        class_names: tuple[str, ...] | list[str] | str | None = None,
    ) -> None:
        self.root = Path(root)
        self.year = str(year)
        self.split = str(split)
        self.keep_difficult = bool(keep_difficult)
        auto = isinstance(class_names, str)
        if auto and class_names != "auto":
            raise ValueError(f"VOCDataset(class_names): expected a list of names or 'auto', got {class_names!r}")
        if not self.root.is_dir():
            raise FileNotFoundError(
                f"VOCDataset(root): folder not found: {self.root} (expected the VOCdevkit folder)"
            )
        self.ids: list[tuple[str, str]] = []
        for y in self.year.split("+"):
            folder = self.root / f"VOC{y}"
            if not folder.is_dir():
                raise FileNotFoundError(
                    f"VOCDataset: folder not found: {folder} "
                    f"(root should be the VOCdevkit folder that holds VOC{y})"
                )
            listing = folder / "ImageSets" / "Main" / f"{self.split}.txt"
            if not listing.is_file():
                raise FileNotFoundError(f"VOCDataset: split list not found: {listing}")
            for line in listing.read_text().splitlines():
                if line.strip():
                    self.ids.append((y, line.split()[0]))
        if auto:
            found: set[str] = set()
            for i in range(len(self.ids)):
                found |= _object_names(self._paths(i)[1])
            found.discard("background")
            if not found:
                raise ValueError(f"VOCDataset(class_names='auto'): no object in the {self.split!r} split of "
                                 f"{self.root}, so there are no classes to read")
            names = ("background", *sorted(found))
        else:
            names = tuple(class_names) if class_names is not None else VOC_CLASS_NAMES
        if len(names) < 2 or len(set(names)) != len(names):
            raise ValueError(
                f"VOCDataset(class_names): expected background plus distinct names, got {names!r}"
            )
        self.class_names: tuple[str, ...] = names
        self.num_classes = len(names)
        self._class_index = {n: k for k, n in enumerate(names) if k > 0}
        self._cache: dict[int, dict[str, Any]] = {}

    def __len__(self) -> int:
        return len(self.ids)

    def __repr__(self) -> str:
        return f"VOCDataset(root={str(self.root)!r}, year={self.year!r}, split={self.split!r}, n={len(self)})"

    def _paths(self, i: int) -> tuple[Path, Path]:
        year, image_id = self.ids[i]
        folder = self.root / f"VOC{year}"
        return folder / "JPEGImages" / f"{image_id}.jpg", folder / "Annotations" / f"{image_id}.xml"

    def _index(self, index: int) -> int:
        if not isinstance(index, (int, np.integer)):
            raise TypeError(f"VOCDataset index: expected an integer, got {type(index).__name__}")
        i = int(index) + (len(self) if index < 0 else 0)
        if not 0 <= i < len(self):
            raise IndexError(f"VOCDataset index {index} out of range for {len(self)} images")
        return i

    def annotation(self, index: int) -> dict[str, Any]:
        """The parsed annotation of item ``index`` without reading the image.

        Keys: ``id``, ``width``, ``height``, ``boxes`` (G, 4) float32 normalised, ``labels`` (G,) int64,
        ``difficult`` (G,) bool; difficult objects are already removed unless ``keep_difficult``.
        """
        i = self._index(index)
        if i not in self._cache:
            ann = _parse_annotation(self._paths(i)[1], self._class_index)
            keep = np.ones(len(ann["labels"]), dtype=bool) if self.keep_difficult else ~ann["difficult"]
            self._cache[i] = {
                "id": self.ids[i][1],
                "width": ann["width"],
                "height": ann["height"],
                "boxes": pixel_to_normalized(ann["boxes"][keep], ann["width"], ann["height"]),
                "labels": ann["labels"][keep],
                "difficult": ann["difficult"][keep],
            }
        return self._cache[i]

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        ann = self.annotation(index)
        image_path = self._paths(self._index(index))[0]
        image = read_image(image_path)
        if image.shape[:2] != (ann["height"], ann["width"]):
            raise ValueError(
                f"VOC image {image_path} is {image.shape[1]}x{image.shape[0]} but its annotation says "
                f"{ann['width']}x{ann['height']}"
            )
        return image, ann["boxes"].copy(), ann["labels"].copy()

    def difficult(self, index: int) -> np.ndarray:
        """(G,) bool difficult flags aligned with the boxes of ``dataset[index]``."""
        return self.annotation(index)["difficult"].copy()


def _annotation_xml(
    image_id: str,
    year: str,
    width: int,
    height: int,
    pixel_boxes: np.ndarray,
    names: list[str],
    difficult: np.ndarray,
) -> ET.ElementTree:
    ann = ET.Element("annotation")
    ET.SubElement(ann, "folder").text = f"VOC{year}"
    ET.SubElement(ann, "filename").text = f"{image_id}.jpg"
    source = ET.SubElement(ann, "source")
    ET.SubElement(source, "database").text = "minissd ShapesDataset"
    size = ET.SubElement(ann, "size")
    ET.SubElement(size, "width").text = str(width)
    ET.SubElement(size, "height").text = str(height)
    ET.SubElement(size, "depth").text = "3"
    ET.SubElement(ann, "segmented").text = "0"
    for box, name, diff in zip(pixel_boxes, names, difficult):
        obj = ET.SubElement(ann, "object")
        ET.SubElement(obj, "name").text = name
        ET.SubElement(obj, "pose").text = "Unspecified"
        ET.SubElement(obj, "truncated").text = "0"
        ET.SubElement(obj, "difficult").text = "1" if diff else "0"
        bnd = ET.SubElement(obj, "bndbox")
        for tag, value in zip(("xmin", "ymin", "xmax", "ymax"), box):
            ET.SubElement(bnd, tag).text = str(int(value))
    tree = ET.ElementTree(ann)
    ET.indent(tree)
    return tree


def export_voc(
    dataset: Any,
    root: str | Path,
    year: str = "2007",
    split: str = "trainval",
    *,
    jpeg_quality: int = 95,
    id_offset: int = 0,
) -> Path:
    """Write ``dataset`` to ``root/VOC<year>`` in VOC layout and return that folder.

    Args:
        dataset: anything with ``len``, ``dataset[i] -> (image uint8 HWC, boxes normalised, labels)`` and
            ``class_names`` (background first); ``dataset.difficult(i)`` is used when it exists.
        root: the VOCdevkit folder (created if missing).
        year, split: name the ``VOC<year>`` folder and the ``ImageSets/Main/<split>.txt`` list.
        jpeg_quality: JPEG quality of the images (the boxes do not depend on it).
        id_offset: image ids are ``f"{id_offset + i:06d}"``; use distinct offsets to export several
            datasets (train and test) into one tree without clashes.

    Writes ``JPEGImages/<id>.jpg``, ``Annotations/<id>.xml`` (1-based inclusive pixel boxes, see the module
    docstring), ``ImageSets/Main/<split>.txt`` and, as in the real devkit, ``<class>_<split>.txt`` with
    ``1`` (present), ``0`` (only difficult instances) or ``-1`` (absent) per image. Existing files of the
    same ids are overwritten.
    """
    try:
        from PIL import Image  # noqa: PLC0415
    except ImportError as exc:  # pragma: no cover
        raise RuntimeError("export_voc needs Pillow to write JPEG files: pip install pillow") from exc
    names = list(getattr(dataset, "class_names", ()))
    if len(names) < 2:
        raise ValueError("export_voc(dataset): the dataset needs class_names with background first")
    folder = Path(root) / f"VOC{year}"
    for sub in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    ids: list[str] = []
    presence = {name: [] for name in names[1:]}
    for i in range(len(dataset)):
        image, boxes, labels = dataset[i]
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(
                f"export_voc: item {i} image must be (H, W, 3) uint8, got {image.shape} {image.dtype}"
            )
        labels = np.asarray(labels, dtype=np.int64)
        diff = np.asarray(dataset.difficult(i), dtype=bool) if hasattr(dataset, "difficult") else None
        if diff is None or diff.shape != labels.shape:
            diff = np.zeros(labels.shape, dtype=bool)
        if labels.size and (labels.min() < 1 or labels.max() >= len(names)):
            raise ValueError(
                f"export_voc: item {i} has labels outside 1..{len(names) - 1}: {labels.tolist()}"
            )
        h, w = image.shape[:2]
        image_id = f"{id_offset + i:06d}"
        ids.append(image_id)
        Image.fromarray(image).save(folder / "JPEGImages" / f"{image_id}.jpg", quality=int(jpeg_quality))
        pixel = normalized_to_pixel(boxes, w, h)
        label_names = [names[k] for k in labels]
        _annotation_xml(image_id, str(year), w, h, pixel, label_names, diff).write(
            folder / "Annotations" / f"{image_id}.xml", encoding="utf-8"
        )
        for k, name in enumerate(names[1:], start=1):
            mine = labels == k
            flag = -1 if not mine.any() else (1 if (~diff[mine]).any() else 0)
            presence[name].append(f"{image_id} {flag:2d}")
    main = folder / "ImageSets" / "Main"
    (main / f"{split}.txt").write_text("".join(f"{x}\n" for x in ids))
    for name, lines in presence.items():
        (main / f"{name}_{split}.txt").write_text("".join(f"{x}\n" for x in lines))
    return folder
