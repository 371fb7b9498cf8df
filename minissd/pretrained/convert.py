"""Converting published VGG16 and SSD300 weights into minissd checkpoints.

Four layouts (``KINDS``), detected from the key names when not given:

* ``torchvision-vgg16``: torchvision's ImageNet VGG16 classifier (``features.*``, ``classifier.{0,3,6}.*``)
  -> a *backbone* checkpoint for ``minissd train --backbone``: conv1_1 .. conv5_3 copied, fc6/fc7 reduced
  from the fully connected layers by :func:`subsample_fc` (the paper's and DeepLab-LargeFOV's recipe),
  fc8 dropped.
* ``ssdpytorch-vgg16-reducedfc``: ssd.pytorch's ``vgg16_reducedfc.pth`` (keys ``0.weight`` .. ``33.bias``),
  whose fc6/fc7 are already reduced -> a backbone checkpoint. It comes from Caffe's VGG16, trained on BGR
  images: conv1_1's input channels are reversed so that the network takes RGB like every minissd model.
* ``torchvision-ssd300``: torchvision's ``ssd300_vgg16`` (COCO, 91 labels with background at 0 and "N/A"
  gaps) -> a full minissd SSD300 checkpoint with torchvision's default boxes (scales 0.07 .. 1.05 of 300 px,
  widths and heights clamped to [0, 1]) and its input convention.
* ``ssdpytorch-ssd300``: ssd.pytorch's VOC SSD300 (``vgg.*``, ``L2Norm.weight``, ``extras.*``, ``loc.*``,
  ``conf.*``) -> a full SSD300 checkpoint with its PriorBox (the released SSD300 sizes, clamped).

Both SSD300 layouts already order their outputs like minissd: a head's output channel ``a * K + k`` is
value k of default box a at that location, and the boxes of a location come in minissd's order (the two
squares, then each ratio r and 1/r). So the head weights are copied unchanged; tests check the ordering.

Input conventions (recorded in the checkpoint and applied by ``detect``, ``evaluate`` and ``train``):
torchvision's VGG16 wants ImageNet's mean and std (minissd's default); torchvision's SSD300 and ssd.pytorch's
(as trained: the image is read as BGR, the mean (104, 117, 123) subtracted, then flipped to RGB) want RGB
minus (123, 117, 104) with std 1, on the 0..255 scale.

Everything here works on host NumPy arrays read from files; the model that loads the result moves them to
the backend.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .. import backend
from ..config import SSDConfig
from ..models.ssd import SSD, InputConvention
from ..models.vgg import VGGBase
from .reader import CheckpointFormatError, check_shape, read_state_dict

#: VGG16's thirteen 3x3 convolutions, and their index in the ``features`` Sequential of torchvision's and
#: ssd.pytorch's VGG (a ReLU after each convolution, a pool after each block, so the indices skip)
VGG_CONVS = ("conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1", "conv3_2", "conv3_3",
             "conv4_1", "conv4_2", "conv4_3", "conv5_1", "conv5_2", "conv5_3")
VGG_INDICES = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)
#: ssd.pytorch's fc6 (3x3, dilation 6) and fc7 (1x1) after pool5 (index 30) in the same Sequential
SSDPYTORCH_FC6, SSDPYTORCH_FC7 = 31, 33

#: SSD300 as trained by torchvision and ssd.pytorch: RGB minus (123, 117, 104), no scaling (0..255 scale)
SSD300_INPUT = InputConvention(mean=(123.0, 117.0, 104.0), std=(1.0, 1.0, 1.0))
#: torchvision's ImageNet classifiers: RGB / 255, then ImageNet's mean and std (minissd's default)
IMAGENET_INPUT = InputConvention()
#: torchvision's DefaultBoxGenerator scales for ssd300_vgg16, as fractions of the 300 px input
TORCHVISION_SSD300_SCALES = (0.07, 0.15, 0.33, 0.51, 0.69, 0.87, 1.05)

#: COCO's 91 category ids as torchvision's detection models number them (background 0, "N/A" for unused ids)
COCO_CATEGORY_NAMES: tuple[str, ...] = (
    "background", "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "N/A", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse",
    "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "N/A", "backpack", "umbrella", "N/A", "N/A",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite", "baseball bat",
    "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle", "N/A", "wine glass", "cup", "fork",
    "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza",
    "donut", "cake", "chair", "couch", "potted plant", "bed", "N/A", "dining table", "N/A", "N/A", "toilet",
    "N/A", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone", "microwave", "oven", "toaster", "sink",
    "refrigerator", "N/A", "book", "clock", "vase", "scissors", "teddy bear", "hair drier", "toothbrush",
)


# ------------------------------------------------------------------------------------ fc6 / fc7
def subsample_fc(fc6_weight: Any, fc6_bias: Any, fc7_weight: Any, fc7_bias: Any) -> tuple[Any, Any, Any, Any]:
    """VGG16's fully connected fc6/fc7 reduced to SSD's convolutional fc6 (3x3, dilation 6) and fc7 (1x1).

    Args:
        fc6_weight: (O, C * 7 * 7) or (O, C, 7, 7): fc6 on the 7x7 pool5 map, e.g. (4096, 25088).
        fc6_bias: (O,).
        fc7_weight: (O, O) or (O, O, 1, 1), e.g. (4096, 4096).
        fc7_bias: (O,).

    Returns:
        ``(fc6_weight (O/4, C, 3, 3), fc6_bias (O/4,), fc7_weight (O/4, O/4, 1, 1), fc7_bias (O/4,))``,
        e.g. 1024 x 512 x 3 x 3. Every 4th output of fc6 and fc7 is kept (every 4th input of fc7 to match),
        and of fc6's 7x7 kernel taps every 3rd (rows and columns 0, 3, 6). In VGG16 the taps sit one pool5
        cell (32 px) apart; SSD's pool5 keeps stride 16, so they are 2 cells apart there, and the kept taps
        6 apart: hence fc6's dilation 6. Works on NumPy or CuPy arrays.
    """
    xp = backend.get_array_module(fc6_weight, fc7_weight)
    w6, w7 = xp.asarray(fc6_weight), xp.asarray(fc7_weight)
    b6, b7 = xp.asarray(fc6_bias), xp.asarray(fc7_bias)
    out = w6.shape[0] if w6.ndim in (2, 4) else -1
    if out <= 0 or out % 4:
        raise ValueError(f"subsample_fc(fc6_weight): expected (O, C*7*7) or (O, C, 7, 7) with O divisible by 4, "
                         f"got {tuple(w6.shape)}")
    if w6.ndim == 2:
        if w6.shape[1] % 49:
            raise ValueError(f"subsample_fc(fc6_weight): expected (O, C*7*7), got {tuple(w6.shape)} "
                             f"({w6.shape[1]} is not a multiple of 49)")
        w6 = w6.reshape(out, w6.shape[1] // 49, 7, 7)  # PyTorch flattens pool5 as (C, 7, 7)
    if w6.shape[2:] != (7, 7):
        raise ValueError(f"subsample_fc(fc6_weight): expected a 7x7 kernel, got {tuple(w6.shape)}")
    if w7.ndim == 4 and w7.shape[2:] == (1, 1):
        w7 = w7.reshape(w7.shape[0], w7.shape[1])
    for name, value, shape in (("fc6_bias", b6, (out,)), ("fc7_weight", w7, (out, out)), ("fc7_bias", b7, (out,))):
        if tuple(value.shape) != shape:
            raise ValueError(f"subsample_fc({name}): expected shape {shape} (fc6 has {out} outputs), "
                             f"got {tuple(value.shape)}")
    fc6 = xp.ascontiguousarray(w6[::4, :, ::3, ::3])
    fc7 = xp.ascontiguousarray(w7[::4, ::4]).reshape(out // 4, out // 4, 1, 1)
    return fc6, xp.ascontiguousarray(b6[::4]), fc7, xp.ascontiguousarray(b7[::4])


# ------------------------------------------------------------------------------------ helpers
def _take(state: dict[str, np.ndarray], key: str, source: str) -> np.ndarray:
    if key not in state:
        raise CheckpointFormatError(f"{source}: tensor {key!r} is missing")
    return np.asarray(state[key], dtype=np.float32)


def _width_of(state: dict[str, np.ndarray], key: str, source: str) -> float:
    """The minissd width multiplier matching a VGG whose conv1_1 weight is ``key`` (64 filters at width 1)."""
    w = _take(state, key, source)
    if w.ndim != 4 or w.shape[1] != 3:
        raise CheckpointFormatError(f"{source}: tensor {key!r} (conv1_1) has shape {tuple(w.shape)}, "
                                    "expected (64, 3, 3, 3)")
    return w.shape[0] / 64


def _vgg_base(state: dict[str, np.ndarray], prefix: str, indices: dict[str, int | str], source: str,
              reverse_rgb: bool = False) -> dict[str, np.ndarray]:
    """minissd ``base.<conv>.{weight,bias}`` from ``<prefix><index>.{weight,bias}``."""
    out = {}
    for name, index in indices.items():
        for part in ("weight", "bias"):
            out[f"base.{name}.{part}"] = _take(state, f"{prefix}{index}.{part}", source)
    if reverse_rgb:
        # BGR-trained conv1_1 -> RGB: input channel c of the new filter is channel 2 - c of the old one
        out["base.conv1_1.weight"] = np.ascontiguousarray(out["base.conv1_1.weight"][:, ::-1])
    return out


def _check_against(arrays: dict[str, np.ndarray], expected: dict[str, Any], names: dict[str, str],
                   source: str) -> None:
    """Shapes of converted tensors against the minissd model's, naming the source key on a mismatch."""
    for key, value in arrays.items():
        if key not in expected:
            raise CheckpointFormatError(f"{source}: converted tensor {key!r} has no place in the model")
        check_shape(names.get(key, key), value, tuple(expected[key].shape), source)
    missing = [k for k in expected if k not in arrays]
    if missing:
        raise CheckpointFormatError(f"{source}: the conversion leaves {', '.join(missing)} unset")


def _unused(state: dict[str, np.ndarray], used: set[str], source: str) -> None:
    extra = sorted(k for k in state if k not in used)
    if extra:
        raise CheckpointFormatError(f"{source}: unexpected tensors for this layout: {', '.join(extra[:8])}"
                                    + (f" and {len(extra) - 8} more" if len(extra) > 8 else ""))


# ------------------------------------------------------------------------------------ the converters
@dataclass
class Converted:
    """What a converter produced: minissd tensors, and how to use them.

    ``arrays``: minissd state-dict names -> arrays. ``model``: the SSD holding them (SSD kinds) or None
    (backbones). ``width``: VGG width multiplier. ``input``: the input convention. ``source``: a JSON-able
    record of where the weights came from (layout, source channel order, what was changed).
    """

    kind: str
    arrays: dict[str, np.ndarray]
    model: SSD | None
    width: float
    input: InputConvention
    source: dict[str, Any]


def _vgg16_backbone(state: dict[str, np.ndarray], source: str) -> Converted:
    width = _width_of(state, "features.0.weight", source)
    arrays = _vgg_base(state, "features.", dict(zip(VGG_CONVS, VGG_INDICES)), source)
    fc6, b6, fc7, b7 = subsample_fc(_take(state, "classifier.0.weight", source),
                                    _take(state, "classifier.0.bias", source),
                                    _take(state, "classifier.3.weight", source),
                                    _take(state, "classifier.3.bias", source))
    arrays.update({"base.fc6.weight": fc6, "base.fc6.bias": b6, "base.fc7.weight": fc7, "base.fc7.bias": b7})
    used = {f"features.{i}.{p}" for i in VGG_INDICES for p in ("weight", "bias")}
    used |= {f"classifier.{i}.{p}" for i in (0, 3, 6) for p in ("weight", "bias")}  # fc8 (6) is dropped
    _unused(state, used, source)
    names = {"base.fc6.weight": "classifier.0.weight", "base.fc7.weight": "classifier.3.weight"}
    _check_backbone(arrays, width, names, source)
    return Converted("torchvision-vgg16", arrays, None, width, IMAGENET_INPUT,
                     {"layout": "torchvision-vgg16", "channel_order": "RGB",
                      "changes": "fc6/fc7 subsampled from classifier.0/classifier.3 (every 4th filter, every 3rd "
                                 "tap of fc6's 7x7 kernel); fc8 (classifier.6) dropped"})


def _reducedfc_backbone(state: dict[str, np.ndarray], source: str) -> Converted:
    width = _width_of(state, "0.weight", source)
    indices: dict[str, int | str] = dict(zip(VGG_CONVS, VGG_INDICES))
    indices.update(fc6=SSDPYTORCH_FC6, fc7=SSDPYTORCH_FC7)
    arrays = _vgg_base(state, "", indices, source, reverse_rgb=True)
    _unused(state, {f"{i}.{p}" for i in indices.values() for p in ("weight", "bias")}, source)
    _check_backbone(arrays, width, {}, source)
    return Converted("ssdpytorch-vgg16-reducedfc", arrays, None, width, SSD300_INPUT,
                     {"layout": "ssdpytorch-vgg16-reducedfc", "channel_order": "BGR",
                      "changes": "conv1_1 input channels reversed (Caffe's BGR VGG16 -> RGB input); the BGR mean "
                                 "(104, 117, 123) recorded in RGB order"})


def _check_backbone(arrays: dict[str, np.ndarray], width: float, names: dict[str, str], source: str) -> None:
    expected = {"base." + k: v for k, v in VGGBase(width=width).state_dict().items()}
    _check_against(arrays, expected, names, source)


def _ssd300_model(state: dict[str, np.ndarray], conv1_1: str, conf0: str, source: str,
                  **config: Any) -> tuple[SSD, float, int]:
    width = _width_of(state, conv1_1, source)
    conf = _take(state, conf0, source)
    if conf.ndim != 4 or conf.shape[0] % 4:
        raise CheckpointFormatError(f"{source}: tensor {conf0!r} has shape {tuple(conf.shape)}, expected "
                                    "(4 * num_classes, channels, 3, 3) (4 default boxes per location on conv4_3)")
    num_classes = conf.shape[0] // 4
    cfg = SSDConfig.ssd300(num_classes=num_classes).replace(width=width, **config)
    return SSD(cfg), width, num_classes


def _finish_ssd(model: SSD, arrays: dict[str, np.ndarray], names: dict[str, str], source: str) -> None:
    _check_against(arrays, model.state_dict(), names, source)
    model.load_state_dict(arrays, strict=True)


def _torchvision_ssd300(state: dict[str, np.ndarray], source: str) -> Converted:
    sizes = [round(s * 300, 6) for s in TORCHVISION_SSD300_SCALES]  # 21, 45, 99, ..., 315 px
    model, width, num_classes = _ssd300_model(
        state, "backbone.features.0.weight", "head.classification_head.module_list.0.weight", source,
        name="ssd300-torchvision", min_sizes=tuple(sizes[:-1]), max_sizes=tuple(sizes[1:]), clip=True,
        clip_mode="size")
    names: dict[str, str] = {}
    mapping: dict[str, str] = {}
    for name, index in zip(VGG_CONVS, VGG_INDICES):
        # conv1_1 .. conv4_3 live in backbone.features; conv5_x after pool4 in backbone.extra.0 (re-indexed
        # from 0 at pool4, so conv5_1 is 24 - 23 = 1)
        mapping[f"base.{name}"] = (f"backbone.features.{index}" if index < 23 else f"backbone.extra.0.{index - 23}")
    mapping["base.fc6"], mapping["base.fc7"] = "backbone.extra.0.7.1", "backbone.extra.0.7.3"
    for k in range(len(model.extras)):
        mapping[f"extras.{k}.0"], mapping[f"extras.{k}.1"] = f"backbone.extra.{k + 1}.0", f"backbone.extra.{k + 1}.2"
    for k in range(len(model.loc_heads)):
        mapping[f"loc_heads.{k}"] = f"head.regression_head.module_list.{k}"
        mapping[f"conf_heads.{k}"] = f"head.classification_head.module_list.{k}"
    arrays = {}
    for dst, src in mapping.items():
        for part in ("weight", "bias"):
            arrays[f"{dst}.{part}"] = _take(state, f"{src}.{part}", source)
            names[f"{dst}.{part}"] = f"{src}.{part}"
    arrays["l2norm.weight"] = _take(state, "backbone.scale_weight", source)
    names["l2norm.weight"] = "backbone.scale_weight"
    _unused(state, set(names.values()), source)
    _finish_ssd(model, arrays, names, source)
    model.input_convention = SSD300_INPUT
    model.class_names = COCO_CATEGORY_NAMES if num_classes == len(COCO_CATEGORY_NAMES) else None
    return Converted("torchvision-ssd300", arrays, model, width, SSD300_INPUT,
                     {"layout": "torchvision-ssd300", "channel_order": "RGB",
                      "changes": "none (torchvision's default-box order and head layout are minissd's)"})


def _ssdpytorch_ssd300(state: dict[str, np.ndarray], source: str) -> Converted:
    model, width, num_classes = _ssd300_model(state, "vgg.0.weight", "conf.0.weight", source,
                                              name="ssd300-ssdpytorch", clip=True, clip_mode="size")
    indices: dict[str, int | str] = dict(zip(VGG_CONVS, VGG_INDICES))
    indices.update(fc6=SSDPYTORCH_FC6, fc7=SSDPYTORCH_FC7)
    mapping = {f"base.{name}": f"vgg.{i}" for name, i in indices.items()}
    for k in range(len(model.extras)):  # extras is a flat list: 1x1, 3x3, 1x1, 3x3, ...
        mapping[f"extras.{k}.0"], mapping[f"extras.{k}.1"] = f"extras.{2 * k}", f"extras.{2 * k + 1}"
    for k in range(len(model.loc_heads)):
        mapping[f"loc_heads.{k}"], mapping[f"conf_heads.{k}"] = f"loc.{k}", f"conf.{k}"
    arrays, names = {}, {}
    for dst, src in mapping.items():
        for part in ("weight", "bias"):
            arrays[f"{dst}.{part}"] = _take(state, f"{src}.{part}", source)
            names[f"{dst}.{part}"] = f"{src}.{part}"
    arrays["l2norm.weight"] = _take(state, "L2Norm.weight", source)
    names["l2norm.weight"] = "L2Norm.weight"
    _unused(state, set(names.values()), source)
    _finish_ssd(model, arrays, names, source)
    model.input_convention = SSD300_INPUT
    if num_classes == 21:
        from ..data.voc import VOC_CLASS_NAMES  # noqa: PLC0415 - only for this layout

        model.class_names = tuple(VOC_CLASS_NAMES)
    # ssd.pytorch trains on images read as BGR, mean-subtracted, then flipped to RGB: the network takes RGB
    return Converted("ssdpytorch-ssd300", arrays, model, width, SSD300_INPUT,
                     {"layout": "ssdpytorch-ssd300", "channel_order": "RGB",
                      "changes": "none (trained on RGB: ssd.pytorch flips its BGR images after subtracting the "
                                 "BGR mean (104, 117, 123))"})


@dataclass(frozen=True)
class Kind:
    """One published layout: what it is, the keys that identify it, and its converter."""

    description: str
    signature: tuple[str, ...]
    convert: Callable[[dict[str, np.ndarray], str], Converted]


KINDS: dict[str, Kind] = {
    "torchvision-vgg16": Kind("torchvision's ImageNet VGG16 (vgg16-397923af.pth) -> backbone",
                              ("features.0.weight", "classifier.0.weight", "classifier.3.weight"), _vgg16_backbone),
    "torchvision-ssd300": Kind("torchvision's ssd300_vgg16, COCO (ssd300_vgg16_coco-b556d3b4.pth) -> SSD300",
                               ("backbone.features.0.weight", "backbone.scale_weight",
                                "head.classification_head.module_list.0.weight"), _torchvision_ssd300),
    "ssdpytorch-ssd300": Kind("ssd.pytorch's VOC SSD300 (ssd300_mAP_77.43_v2.pth) -> SSD300",
                              ("vgg.0.weight", "L2Norm.weight", "conf.0.weight", "loc.0.weight"), _ssdpytorch_ssd300),
    "ssdpytorch-vgg16-reducedfc": Kind("ssd.pytorch's reduced-fc VGG16 (vgg16_reducedfc.pth) -> backbone",
                                       ("0.weight", "31.weight", "33.weight"), _reducedfc_backbone),
}


def detect_kind(state: dict[str, np.ndarray], source: str = "checkpoint") -> str:
    """The layout of a state dict, from its key names; CheckpointFormatError listing the kinds otherwise."""
    found = [name for name, kind in KINDS.items() if all(k in state for k in kind.signature)]
    if len(found) == 1:
        return found[0]
    sample = ", ".join(list(state)[:6]) or "(no tensors)"
    listing = "; ".join(f"{name}: {kind.description}, keys {', '.join(kind.signature)}" for name, kind in KINDS.items())
    raise CheckpointFormatError(f"{source}: cannot tell which published layout this is (keys {sample} ...). "
                                f"Pass --kind, one of: {listing}")


def convert_state_dict(state: dict[str, np.ndarray], kind: str | None = None, source: str = "checkpoint") -> Converted:
    """Convert a state dict read by :func:`read_state_dict` (``kind`` detected when None)."""
    if kind is None:
        kind = detect_kind(state, source)
    if kind not in KINDS:
        raise ValueError(f"convert(kind): expected one of {', '.join(KINDS)}, got {kind!r}")
    return KINDS[kind].convert(state, source)


def convert(source: str | os.PathLike[str], out: str | os.PathLike[str], kind: str | None = None) -> Converted:
    """Read a published checkpoint ``source`` and write the minissd checkpoint ``out`` (.npz).

    SSD kinds give a model checkpoint (``minissd detect/evaluate --weights out``, ``minissd.train.load_model``)
    recording the default-box config, input convention and class names; VGG kinds give a backbone
    checkpoint (``minissd train --backbone out``). Returns the :class:`Converted` result.
    """
    from ..nn.serialization import save_npz  # noqa: PLC0415
    from ..train import CHECKPOINT_FORMAT, save_checkpoint  # noqa: PLC0415 - train sits above this module

    source, out = os.fspath(source), os.fspath(out)
    result = convert_state_dict(read_state_dict(source), kind, repr(source))
    record = dict(result.source, file=os.path.basename(source), kind=result.kind)
    if result.model is not None:
        save_checkpoint(out, result.model, extra={"source": record})
    else:
        meta = {"format": CHECKPOINT_FORMAT, "kind": "backbone",
                "backbone": {"name": "vgg16", "width": result.width, "batch_norm": False},
                "input": asdict(result.input), "source": record}
        save_npz(out, {"meta": np.array(json.dumps(meta)), **{"model/" + k: v for k, v in result.arrays.items()}})
    return result
