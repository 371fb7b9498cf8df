"""Published checkpoints: the safe reader (.pth zip and legacy, .safetensors) and the four converters.

The fixture files (tests/fixtures/pretrained/) are tiny checkpoints in each published layout written by
torch.save (tests/fixtures/make_pretrained_fixtures.py); their values are a formula, rebuilt here with NumPy,
so these tests need no PyTorch. Tests that compare with PyTorch itself are skipped when it is not installed.
"""

from __future__ import annotations

import importlib.util
import io
import json
import math
import os
import pickle
import struct
import zipfile

import numpy as np
import pytest

from minissd import to_numpy
from minissd.autograd import no_grad
from minissd.config import SSDConfig
from minissd.models import SSD, VGGBase
from minissd.pretrained import (
    COCO_CATEGORY_NAMES,
    KINDS,
    CheckpointFormatError,
    UnsafeCheckpointError,
    convert,
    convert_state_dict,
    detect_kind,
    read_state_dict,
    subsample_fc,
)
from minissd.priors import default_boxes
from minissd.train import load_backbone, load_model

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "fixtures", "pretrained")
_spec = importlib.util.spec_from_file_location("make_pretrained_fixtures",
                                               os.path.join(HERE, "fixtures", "make_pretrained_fixtures.py"))
fx = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fx)

TV_VGG = os.path.join(FIXTURES, "torchvision_vgg16_tiny.pth")
TV_SSD = os.path.join(FIXTURES, "torchvision_ssd300_tiny.pth")
SP_SSD = os.path.join(FIXTURES, "ssdpytorch_ssd300_tiny.pth")
SP_VGG = os.path.join(FIXTURES, "ssdpytorch_vgg16_reducedfc_tiny.pth")

# converted models are real detectors: building, running and detecting use the code of these assignments
pytestmark = [pytest.mark.needs("conv2d", "max_pool", "default_boxes", "box_coding", "nms_ap")]


def expected(layout) -> dict[str, np.ndarray]:
    return fx.expected_state(layout())


# ------------------------------------------------------------------------------------ reader
@pytest.mark.parametrize("name", sorted(fx.FIXTURES))
def test_fixture_files_read_value_by_value(name):
    path = os.path.join(FIXTURES, name)
    layout, zip_format = fx.FIXTURES[name]
    with open(path, "rb") as f:
        assert (f.read(2) == b"PK") == zip_format  # both on-disk formats are exercised
    state = read_state_dict(path)
    want = expected(layout)
    assert list(state) == list(want)
    for key, value in want.items():
        assert state[key].dtype == np.float32 and state[key].shape == value.shape, key
        np.testing.assert_array_equal(state[key], value, err_msg=key)
        assert state[key].flags.writeable and state[key].flags.owndata  # copied out of the file buffer


def test_reader_matches_torch_on_strided_views_and_dtypes(tmp_path):
    torch = pytest.importorskip("torch", reason="comparing with torch.load needs PyTorch")
    g = torch.Generator().manual_seed(0)
    base = torch.randn(5, 4, 3, generator=g)
    state = {
        "float": base,
        "transposed": base.permute(2, 0, 1),       # non-contiguous strides
        "sliced": base[2:, 1:3],                   # offset into a shared storage
        "half": torch.randn(7, generator=g).half(),
        "bfloat16": torch.randn(3, 2, generator=g).to(torch.bfloat16),
        "double": torch.randn(2, generator=g).double(),
        "long": torch.arange(-3, 3),
        "int8": torch.tensor([-128, 0, 127], dtype=torch.int8),
        "bool": torch.tensor([True, False, True]),
        "empty": torch.zeros(0, 3),
        "scalar": torch.tensor(2.5),
        "param": torch.nn.Parameter(torch.ones(2)),
    }
    for zip_format in (True, False):
        path = tmp_path / f"t{zip_format}.pth"
        torch.save(state, path, _use_new_zipfile_serialization=zip_format)
        got = read_state_dict(path)
        for key, t in state.items():
            ref = t.detach().float().numpy() if t.dtype == torch.bfloat16 else t.detach().numpy()
            assert got[key].shape == ref.shape and got[key].dtype == ref.dtype, key
            np.testing.assert_array_equal(got[key], ref, err_msg=f"{key} zip={zip_format}")


def _torch_zip(payload: bytes, storages: dict[str, bytes] | None = None) -> bytes:
    """A zip laid out like torch.save's, holding ``payload`` as data.pkl."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("archive/data.pkl", payload)
        z.writestr("archive/byteorder", "little")
        z.writestr("archive/version", "3\n")
        for key, raw in (storages or {}).items():
            z.writestr(f"archive/data/{key}", raw)
    return buf.getvalue()


class _Evil:
    def __init__(self, func, arg):
        self.func, self.arg = func, arg

    def __reduce__(self):
        return self.func, (self.arg,)


@pytest.mark.parametrize("func", [os.system, eval, exec])
@pytest.mark.parametrize("legacy", [False, True])
def test_pickle_naming_any_other_global_is_refused_and_not_run(tmp_path, func, legacy):
    marker = tmp_path / "pwned"
    code = f"touch {marker}" if func is os.system else f"open({str(marker)!r}, 'w').close()"
    payload = pickle.dumps({"weight": _Evil(func, code)}, protocol=2)
    path = tmp_path / "evil.pth"
    if legacy:  # the legacy layout: magic number, protocol, system info, then the object
        path.write_bytes(pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2) + pickle.dumps(1001, protocol=2)
                         + pickle.dumps({"little_endian": True}, protocol=2) + payload)
    else:
        path.write_bytes(_torch_zip(payload))
    with pytest.raises(UnsafeCheckpointError) as err:
        read_state_dict(path)
    # protocol 2 spells the module as Python 2 did (posix.system, __builtin__.eval): the message names it
    assert f".{func.__name__}, which" in str(err.value) and "refused to load" in str(err.value)
    assert not marker.exists()


def test_storage_type_global_cannot_be_called_and_unknown_storage_is_refused(tmp_path):
    # GLOBAL torch FloatStorage, then calling it: our stand-in is not callable -> a format error, nothing runs
    call = b"\x80\x02ctorch\nFloatStorage\nq\x00K\x03\x85R."
    path = tmp_path / "call.pth"
    path.write_bytes(_torch_zip(call))
    with pytest.raises(CheckpointFormatError, match="corrupt"):
        read_state_dict(path)
    sneaky = b"\x80\x02(X\x07\x00\x00\x00storagecos\nsystem\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x01tQ."
    path.write_bytes(_torch_zip(sneaky))
    with pytest.raises(UnsafeCheckpointError, match="os.system"):
        read_state_dict(path)


def test_truncated_garbage_and_short_files_give_clear_errors(tmp_path):
    for source in (TV_SSD, SP_SSD):  # zip and legacy
        data = open(source, "rb").read()
        for cut in (len(data) // 2, len(data) - 10, 40):
            path = tmp_path / f"cut{cut}.pth"
            path.write_bytes(data[:cut])
            with pytest.raises(CheckpointFormatError):
                read_state_dict(path)
    rng = np.random.default_rng(0)
    for name, raw in (("garbage", rng.integers(0, 256, 5000, dtype=np.uint8).tobytes()), ("empty", b""),
                      ("pkzip", b"PK\x03\x04" + b"\x00" * 100), ("text", b"hello, not a checkpoint")):
        path = tmp_path / name
        path.write_bytes(raw)
        with pytest.raises(CheckpointFormatError):
            read_state_dict(path)
    with pytest.raises(CheckpointFormatError, match="unknown checkpoint layout"):
        read_state_dict(tmp_path / "text")
    with pytest.raises(FileNotFoundError):
        read_state_dict(tmp_path / "missing.pth")


def test_storage_shorter_than_its_tensor_is_refused(tmp_path):
    # a tensor of 4 float32 claiming storage '0', whose file holds 2 numbers only
    payload = (b"\x80\x02ccollections\nOrderedDict\n)R(X\x01\x00\x00\x00wctorch._utils\n_rebuild_tensor_v2\n"
               b"((X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x04tQ"
               b"K\x00K\x04\x85K\x01\x85\x89ccollections\nOrderedDict\n)RtRu.")
    path = tmp_path / "short.pth"
    path.write_bytes(_torch_zip(payload, {"0": np.ones(4, np.float32).tobytes()}))
    np.testing.assert_array_equal(read_state_dict(path)["w"], np.ones(4, np.float32))  # well-formed: reads
    path.write_bytes(_torch_zip(payload, {"0": np.ones(2, np.float32).tobytes()}))
    with pytest.raises(CheckpointFormatError, match="expected"):
        read_state_dict(path)


def _safetensors(tensors: dict[str, tuple[str, list[int], bytes]]) -> bytes:
    header, body = {"__metadata__": {"format": "pt"}}, b""
    for key, (dtype, shape, raw) in tensors.items():
        header[key] = {"dtype": dtype, "shape": shape, "data_offsets": [len(body), len(body) + len(raw)]}
        body += raw
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + body


def test_safetensors_read_directly(tmp_path):
    w = np.arange(6, dtype=np.float32).reshape(2, 3)
    # bfloat16 of 1.0 is 0x3F80 and of -2.0 is 0xC000 (the upper halves of the float32 patterns)
    raw = _safetensors({"w": ("F32", [2, 3], w.tobytes()), "n": ("I64", [2], np.array([7, -1]).tobytes()),
                        "b": ("BF16", [2], struct.pack("<HH", 0x3F80, 0xC000))})
    path = tmp_path / "m.safetensors"
    path.write_bytes(raw)
    got = read_state_dict(path)
    np.testing.assert_array_equal(got["w"], w)
    np.testing.assert_array_equal(got["n"], [7, -1])
    np.testing.assert_array_equal(got["b"], np.array([1.0, -2.0], np.float32))
    bad = _safetensors({"w": ("F32", [3, 3], w.tobytes())})  # shape needs 36 bytes, 24 given
    path.write_bytes(bad)
    with pytest.raises(CheckpointFormatError, match="'w'"):
        read_state_dict(path)
    path.write_bytes(raw[:-4])  # truncated body: the last tensor lies outside the file
    with pytest.raises(CheckpointFormatError, match="outside the file"):
        read_state_dict(path)
    path.write_bytes(struct.pack("<Q", 10**12) + b"{}")
    with pytest.raises(CheckpointFormatError, match="header"):
        read_state_dict(path)


# ------------------------------------------------------------------------------------ fc6 / fc7
def test_subsample_fc_keeps_every_4th_filter_and_every_3rd_tap():
    rng = np.random.default_rng(0)
    out, ch = 8, 3
    w6, b6 = rng.normal(size=(out, ch * 49)), rng.normal(size=out)
    w7, b7 = rng.normal(size=(out, out)), rng.normal(size=out)
    f6, g6, f7, g7 = subsample_fc(w6, b6, w7, b7)
    assert f6.shape == (2, 3, 3, 3) and f7.shape == (2, 2, 1, 1) and g6.shape == g7.shape == (2,)
    for o in range(2):
        assert g6[o] == b6[4 * o] and g7[o] == b7[4 * o]
        for p in range(2):
            assert f7[o, p, 0, 0] == w7[4 * o, 4 * p]
        for c in range(ch):
            for i in range(3):
                for j in range(3):  # fc6's input is pool5 flattened as (C, 7, 7): column c*49 + 7*row + col
                    assert f6[o, c, i, j] == w6[4 * o, c * 49 + 7 * (3 * i) + 3 * j]
    with pytest.raises(ValueError, match="fc6_weight"):
        subsample_fc(rng.normal(size=(8, 50)), b6, w7, b7)
    with pytest.raises(ValueError, match="fc7_weight"):
        subsample_fc(w6, b6, rng.normal(size=(8, 4)), b7)


# ------------------------------------------------------------------------------------ converters
def test_torchvision_vgg16_to_backbone(tmp_path):
    src = expected(fx.torchvision_vgg16)
    out = tmp_path / "backbone.npz"
    result = convert(TV_VGG, out)
    assert result.kind == "torchvision-vgg16" and result.model is None and result.width == 1 / 64
    arrays = result.arrays
    np.testing.assert_array_equal(arrays["base.conv1_1.weight"], src["features.0.weight"])  # RGB: unchanged
    np.testing.assert_array_equal(arrays["base.conv3_3.bias"], src["features.14.bias"])
    np.testing.assert_array_equal(arrays["base.conv5_3.weight"], src["features.28.weight"])
    c5 = src["features.28.weight"].shape[0]
    assert arrays["base.fc6.weight"].shape == (16, c5, 3, 3) and arrays["base.fc7.weight"].shape == (16, 16, 1, 1)
    assert arrays["base.fc6.weight"][3, 5, 2, 1] == src["classifier.0.weight"][12, 5 * 49 + 7 * 6 + 3]
    assert arrays["base.fc7.weight"][2, 7, 0, 0] == src["classifier.3.weight"][8, 28]
    np.testing.assert_array_equal(arrays["base.fc7.bias"], src["classifier.3.bias"][::4])
    assert not any("classifier.6" in k or "fc8" in k for k in arrays)
    with np.load(out, allow_pickle=False) as f:
        meta = json.loads(str(f["meta"]))
        assert sorted(k[len("model/"):] for k in f.files if k != "meta") == sorted(arrays)
    assert meta["kind"] == "backbone" and meta["source"]["file"] == "torchvision_vgg16_tiny.pth"
    assert meta["input"]["mean"] == pytest.approx([123.675, 116.28, 103.53])  # ImageNet's 0.485 .. x 255


def test_reducedfc_backbone_reverses_bgr_and_computes_the_same(tmp_path):
    src = expected(fx.ssdpytorch_vgg16_reducedfc)
    result = convert(SP_VGG, tmp_path / "b.npz")
    assert result.kind == "ssdpytorch-vgg16-reducedfc"
    w = result.arrays["base.conv1_1.weight"]
    for c in range(3):
        np.testing.assert_array_equal(w[:, c], src["0.weight"][:, 2 - c])
    np.testing.assert_array_equal(result.arrays["base.fc6.weight"], src["31.weight"])
    assert result.input.mean == (123.0, 117.0, 104.0) and result.input.std == (1.0, 1.0, 1.0)
    # the Caffe network on a BGR image == the converted one on the same image in RGB
    original, converted = VGGBase(width=1 / 64), VGGBase(width=1 / 64)
    own = {k[len("base."):]: v for k, v in result.arrays.items()}
    original.load_state_dict(dict(own, **{"conv1_1.weight": src["0.weight"]}))
    converted.load_state_dict(own)
    rgb = np.random.default_rng(1).normal(size=(1, 3, 64, 64)).astype(np.float32)
    with no_grad():
        a, b = original(rgb[:, ::-1].copy()), converted(rgb)
    np.testing.assert_allclose(to_numpy(a[1].data), to_numpy(b[1].data), rtol=1e-5, atol=1e-6)


def test_torchvision_ssd300_mapping_boxes_and_convention(tmp_path):
    src = expected(fx.torchvision_ssd300)
    out = tmp_path / "tv.npz"
    result = convert(TV_SSD, out)
    assert result.kind == "torchvision-ssd300"
    pairs = {"base.conv4_3.weight": "backbone.features.21.weight", "base.conv5_1.weight": "backbone.extra.0.1.weight",
             "base.conv5_3.bias": "backbone.extra.0.5.bias", "base.fc6.weight": "backbone.extra.0.7.1.weight",
             "base.fc7.bias": "backbone.extra.0.7.3.bias", "extras.0.0.weight": "backbone.extra.1.0.weight",
             "extras.3.1.weight": "backbone.extra.4.2.weight", "l2norm.weight": "backbone.scale_weight",
             "loc_heads.1.weight": "head.regression_head.module_list.1.weight",
             "conf_heads.5.bias": "head.classification_head.module_list.5.bias"}
    for dst, key in pairs.items():
        np.testing.assert_array_equal(result.arrays[dst], src[key], err_msg=dst)
    model = load_model(str(out))
    cfg = model.config
    assert cfg.num_classes == 4 and cfg.num_priors == 8732 and cfg.clip and cfg.clip_mode == "size"
    assert model.input_convention.mean == (123.0, 117.0, 104.0) and model.input_convention.std == (1.0,) * 3
    p = to_numpy(default_boxes(cfg)).astype(np.float64)
    # torchvision's DefaultBoxGenerator by hand: scales 0.07, 0.15, ...; centres (j + 0.5) * step / 300
    np.testing.assert_allclose(p[0], [4 / 300, 4 / 300, 0.07, 0.07], rtol=1e-6)
    np.testing.assert_allclose(p[1], [4 / 300, 4 / 300, math.sqrt(0.07 * 0.15)] * 1 + [math.sqrt(0.07 * 0.15)],
                               rtol=1e-6)
    np.testing.assert_allclose(p[2], [4 / 300, 4 / 300, 0.07 * math.sqrt(2), 0.07 / math.sqrt(2)], rtol=1e-6)
    # the 1x1 map's 2:1 box is 0.87 * sqrt(2) = 1.23 wide: width clamped to 1, centre stays at 0.5
    np.testing.assert_allclose(p[-2], [0.5, 0.5, 1.0, 0.87 / math.sqrt(2)], rtol=1e-6)
    # the 3x3 map (step 100): its first box centred at 50/300
    start = 38 * 38 * 4 + 19 * 19 * 6 + 10 * 10 * 6 + 5 * 5 * 6
    np.testing.assert_allclose(p[start], [50 / 300, 50 / 300, 0.69, 0.69], rtol=1e-6)


def test_ssdpytorch_ssd300_mapping_and_priorbox(tmp_path):
    src = expected(fx.ssdpytorch_ssd300)
    result = convert(SP_SSD, tmp_path / "sp.npz")
    assert result.kind == "ssdpytorch-ssd300"
    pairs = {"base.conv1_1.weight": "vgg.0.weight", "base.conv5_2.weight": "vgg.26.weight",
             "base.fc6.weight": "vgg.31.weight", "base.fc7.weight": "vgg.33.weight",
             "extras.1.0.bias": "extras.2.bias", "extras.3.1.weight": "extras.7.weight",
             "l2norm.weight": "L2Norm.weight", "loc_heads.4.weight": "loc.4.weight", "conf_heads.2.bias": "conf.2.bias"}
    for dst, key in pairs.items():  # conv1_1 included: this network was trained on RGB, nothing is reversed
        np.testing.assert_array_equal(result.arrays[dst], src[key], err_msg=dst)
    p = to_numpy(default_boxes(result.model.config)).astype(np.float64)
    # PriorBox for VOC: min 30 .. 264, max 60 .. 315 px, clamp to [0, 1]
    np.testing.assert_allclose(p[1], [4 / 300, 4 / 300, math.sqrt(30 * 60) / 300, math.sqrt(30 * 60) / 300],
                               rtol=1e-6)
    np.testing.assert_allclose(p[-2], [0.5, 0.5, 1.0, 264 / 300 / math.sqrt(2)], rtol=1e-6)
    assert result.model.input_convention.mean == (123.0, 117.0, 104.0)


def test_ssdpytorch_forward_matches_a_pytorch_reference():
    torch = pytest.importorskip("torch", reason="the reference forward runs in PyTorch")
    F = torch.nn.functional
    s = {k: torch.from_numpy(v) for k, v in expected(fx.ssdpytorch_ssd300).items()}
    x = np.random.default_rng(2).normal(0, 40, size=(1, 3, 300, 300)).astype(np.float32)

    def conv(h, key, **kw):
        return F.conv2d(h, s[key + ".weight"], s[key + ".bias"], **kw)

    # ssd.pytorch's SSD.forward, written from its architecture: VGG with a ceil-mode pool3, L2Norm on conv4_3
    h, sources = torch.from_numpy(x), []
    for i in fx.VGG_INDICES:
        h = F.relu(conv(h, f"vgg.{i}", padding=1))
        if i in (2, 7, 21):
            if i == 21:
                norm = h.pow(2).sum(1, keepdim=True).sqrt() + 1e-10
                sources.append(s["L2Norm.weight"].view(1, -1, 1, 1) * h / norm)
            h = F.max_pool2d(h, 2, 2)
        elif i == 14:
            h = F.max_pool2d(h, 2, 2, ceil_mode=True)
    h = F.max_pool2d(h, 3, 1, 1)
    h = F.relu(conv(h, "vgg.31", padding=6, dilation=6))
    h = F.relu(conv(h, "vgg.33"))
    sources.append(h)
    for k in range(8):
        h = F.relu(conv(h, f"extras.{k}", **({"stride": 2, "padding": 1} if k in (1, 3) else {})))
        if k % 2:
            sources.append(h)
    loc = torch.cat([conv(f, f"loc.{k}", padding=1).permute(0, 2, 3, 1).reshape(1, -1, 4)
                     for k, f in enumerate(sources)], 1)
    conf = torch.cat([conv(f, f"conf.{k}", padding=1).permute(0, 2, 3, 1).reshape(1, -1, fx.NUM_CLASSES)
                      for k, f in enumerate(sources)], 1)
    model = convert_state_dict(read_state_dict(SP_SSD)).model
    model.eval()
    with no_grad():
        mloc, mconf = model(x)
    for ours, ref in ((mloc, loc), (mconf, conf)):
        ref = ref.numpy()
        assert ours.shape == ref.shape == (1, 8732, ref.shape[2])
        assert np.abs(to_numpy(ours.data) - ref).max() <= 1e-4 * np.abs(ref).max()


def test_converted_models_run_and_apply_their_input_convention(tmp_path):
    from minissd.detection import eval_transform_for, predict

    for src in (TV_SSD, SP_SSD):
        out = tmp_path / (os.path.basename(src) + ".npz")
        convert(src, out)
        model = load_model(str(out))
        x = np.random.default_rng(0).normal(size=(1, 3, 300, 300)).astype(np.float32)
        model.eval()
        with no_grad():
            loc, conf = model(x)
        assert loc.shape == (1, 8732, 4) and conf.shape == (1, 8732, 4)
        assert np.isfinite(to_numpy(loc.data)).all() and np.isfinite(to_numpy(conf.data)).all()
        # an image of exactly the recorded mean becomes an all-zero input, at 300 x 300
        image = np.broadcast_to(np.array([123, 117, 104], np.uint8), (40, 60, 3)).copy()
        chw = eval_transform_for(model)(image, np.zeros((0, 4)), np.zeros(0), None)[0]
        assert chw.shape == (3, 300, 300) and np.abs(chw).max() == 0
        dets = predict(model, [image], conf_threshold=0.0)
        assert len(dets) == 1


def test_description_records_convention_and_names_only_when_set(tmp_path):
    from minissd.models.registry import model_from_description
    from minissd.models.ssd import InputConvention
    from minissd.train import save_checkpoint

    model = SSD(SSDConfig.mini())
    assert "input" not in model.describe() and "class_names" not in model.describe()
    model.input_convention = InputConvention((1.0, 2.0, 3.0), (4.0, 5.0, 6.0))
    model.class_names = tuple(f"c{i}" for i in range(8))
    again = model_from_description(json.loads(json.dumps(model.describe())))
    assert again.input_convention == model.input_convention and again.class_names == model.class_names
    path = save_checkpoint(str(tmp_path / "m.npz"), model)
    assert load_model(path).class_names == model.class_names
    assert len(COCO_CATEGORY_NAMES) == 91 and COCO_CATEGORY_NAMES[1] == "person"
    assert COCO_CATEGORY_NAMES[12] == "N/A" and COCO_CATEGORY_NAMES[90] == "toothbrush"


def test_load_backbone_partial_and_mismatch(tmp_path):
    out = tmp_path / "backbone.npz"
    convert(SP_VGG, out)
    model = SSD(SSDConfig.ssd300().replace(width=1 / 64))
    before = to_numpy(model.loc_heads[0].weight.data).copy()
    loaded, kept = load_backbone(model, str(out))
    assert all(k.startswith("base.") for k in loaded) and len(loaded) == 30
    assert "l2norm.weight" in kept and "extras.0.0.weight" in kept and "loc_heads.0.weight" in kept
    fc7 = expected(fx.ssdpytorch_vgg16_reducedfc)["33.weight"]
    np.testing.assert_array_equal(to_numpy(model.base.fc7.weight.data), fc7)
    np.testing.assert_array_equal(to_numpy(model.loc_heads[0].weight.data), before)
    assert model.input_convention.mean == (123.0, 117.0, 104.0)
    with pytest.raises(ValueError, match="mis-shaped: base.conv1_1.weight"):
        load_backbone(SSD(SSDConfig.ssd300().replace(width=1 / 32)), str(out))
    with pytest.raises(ValueError, match="backbone"):
        load_model(str(out))


def test_detection_and_shape_errors_name_what_is_wrong():
    state = read_state_dict(SP_SSD)
    assert detect_kind(state) == "ssdpytorch-ssd300"
    with pytest.raises(CheckpointFormatError) as err:
        detect_kind({"foo.weight": np.zeros(3)})
    assert all(kind in str(err.value) for kind in KINDS)
    bad = dict(state, **{"vgg.31.weight": np.zeros((16, 8, 1, 1), np.float32)})
    shapes = r"'vgg.31.weight' has shape \(16, 8, 1, 1\), expected \(16, 8, 3, 3\)"
    with pytest.raises(CheckpointFormatError, match=shapes):
        convert_state_dict(bad)
    with pytest.raises(CheckpointFormatError, match="unexpected tensors.*extra.weight"):
        convert_state_dict(dict(state, **{"extra.weight": np.zeros(2, np.float32)}))
    with pytest.raises(CheckpointFormatError, match="'L2Norm.weight' is missing"):
        convert_state_dict({k: v for k, v in state.items() if k != "L2Norm.weight"}, kind="ssdpytorch-ssd300")


def test_clip_mode_size_clamps_only_width_and_height():
    cfg = SSDConfig.ssd300().replace(clip=True, clip_mode="size")
    corners = to_numpy(default_boxes(cfg.replace(clip_mode="corners")))
    sized = to_numpy(default_boxes(cfg))
    free = to_numpy(default_boxes(cfg.replace(clip=False)))
    np.testing.assert_array_equal(sized[:, :2], free[:, :2])
    np.testing.assert_array_equal(sized[:, 2:], np.clip(free[:, 2:], 0, 1))
    assert not np.array_equal(corners[:, :2], free[:, :2])  # corner clipping moves centres near the border
    with pytest.raises(ValueError, match="clip_mode"):
        SSDConfig.ssd300().replace(clip_mode="edges")


def test_cli_convert_and_detect(tmp_path, capsys):
    from minissd.cli import main

    out = tmp_path / "tv.npz"
    assert main(["convert", TV_SSD, str(out)]) == 0
    stdout = capsys.readouterr().out
    assert "torchvision-ssd300" in stdout and "8732 default boxes" in stdout and out.exists()
    assert main(["convert", TV_SSD, str(tmp_path / "x.npz"), "--kind", "bogus"]) == 1
    assert "--kind: expected one of torchvision-vgg16" in capsys.readouterr().err
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"\x00" * 64)
    assert main(["convert", str(garbage), str(tmp_path / "y.npz")]) == 1
    assert "unknown checkpoint layout" in capsys.readouterr().err
    from PIL import Image

    image = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (50, 70, 3), dtype=np.uint8)).save(image)
    assert main(["detect", str(image), "--weights", str(out), "--out", str(tmp_path / "det"),
                 "--threshold", "0.3"]) == 0
    assert (tmp_path / "det" / "detections.json").exists()
