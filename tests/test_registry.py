"""The model registry: one table of names, builders, default learning rates, input sizes and shipped weights."""

import json
import os

import pytest

from minissd.cli import build_parser
from minissd.config import SSDConfig
from minissd.models import SSD, YOLOv1
from minissd.models.registry import (
    MODELS,
    build_model,
    default_lr,
    model_from_description,
    model_names,
    shipped_weights,
    ssd_config,
    ssd_names,
)

# Classroom assignments (docs/assignments.md): building the detectors computes their default boxes.
pytestmark = [pytest.mark.needs("default_boxes")]


def test_names_and_kinds():
    assert set(model_names()) == {"ssd_mini", "ssd300", "ssd512", "yolov1"}
    assert set(ssd_names()) == {"ssd_mini", "ssd300", "ssd512"}
    mini = build_model("ssd_mini", num_classes=5)
    assert isinstance(mini, SSD) and mini.num_classes == 5 and mini.config.name == "mini"
    yolo = build_model("yolov1", num_classes=4)
    assert isinstance(yolo, YOLOv1) and yolo.num_classes == 4
    # without num_classes each builder keeps its own default: ShapesDataset's 8 for the minis
    assert build_model("ssd_mini").num_classes == 8


@pytest.mark.parametrize("name", ["ssd_mini", "yolov1"])
def test_listed_input_size_is_the_models(name):
    assert build_model(name).input_size == MODELS[name].input_size


def test_ssd_configs_without_building_a_network():
    assert ssd_config("ssd300") == SSDConfig.ssd300()
    assert ssd_config("ssd512", num_classes=81).num_classes == 81
    assert ssd_config("ssd_mini").num_priors == 2390
    # the listed input size is the config's, for the big ones too (built without their 26 M parameters)
    assert all(ssd_config(n).input_size == MODELS[n].input_size for n in ssd_names())
    with pytest.raises(ValueError, match="'yolov1' is not an SSD"):
        ssd_config("yolov1")


def test_default_learning_rates():
    # the minis train with Adam 1e-2 (docs/benchmarks.md); the full-size SSDs with the paper's 1e-3
    assert default_lr("ssd_mini", "adam") == default_lr("yolov1", "adam") == 1e-2
    assert default_lr("ssd300", "adam") == default_lr("ssd300", "sgd") == default_lr("ssd_mini", "sgd") == 1e-3
    with pytest.raises(ValueError, match="optimizer.*'rmsprop'"):
        default_lr("ssd_mini", "rmsprop")


def test_unknown_names_are_clear_errors():
    with pytest.raises(ValueError, match="ssd_mini.*'ssd301'"):
        build_model("ssd301")
    with pytest.raises(ValueError, match="no weights ship for 'ssd300'"):
        shipped_weights("ssd300")
    with pytest.raises(ValueError, match="unknown kind 'rcnn'"):
        model_from_description({"kind": "rcnn"})
    with pytest.raises(ValueError, match="YOLOv1 description"):
        model_from_description({"kind": "yolov1", "depth": 3})


def test_shipped_weights_live_in_the_package():
    for name in ("ssd_mini", "yolov1"):
        path = shipped_weights(name)
        assert os.path.dirname(path) == os.path.join(os.path.dirname(os.path.dirname(
            os.path.abspath(__file__))), "minissd", "weights")
        assert path.endswith(".npz")


def test_descriptions_round_trip_through_json():
    for model in (build_model("ssd_mini", num_classes=3),
                  YOLOv1(num_classes=3, input_size=64, grid=4, width=1 / 16, batch_norm=False)):
        description = json.loads(json.dumps(model.describe()))
        copy = model_from_description(description)
        assert type(copy) is type(model) and copy.describe() == model.describe()


def test_cli_offers_the_registered_models(capsys):
    parser = build_parser()
    for name in model_names():
        assert parser.parse_args(["train", "--model", name]).model == name
    for name in ssd_names():
        assert parser.parse_args(["boxes", "--model", name]).model == name
    for argv in (["train", "--model", "ssd301"], ["boxes", "--model", "yolov1"]):
        with pytest.raises(SystemExit):
            parser.parse_args(argv)
    assert "invalid choice: 'yolov1'" in capsys.readouterr().err
