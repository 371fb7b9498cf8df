"""The training loop: resume equality, NaN guard, checkpoints, schedule, Ctrl-C."""

import math
import os

import numpy as np
import pytest
from test_ssd import tiny_config

from minissd import backend
from minissd.data import ShapesDataset
from minissd.models import SSD, YOLOv1
from minissd.models.registry import model_from_description, shipped_weights
from minissd.train import (
    TrainConfig,
    Trainer,
    TrainingDiverged,
    load_model,
    read_checkpoint,
    save_checkpoint,
)

# Classroom assignments (docs/assignments.md): training needs the code of these assignments, which a student
# copy leaves to the student; these tests need them (they are not graded by them).
pytestmark = pytest.mark.needs("conv2d", "max_pool", "default_boxes", "box_coding",
                              "matching", "multibox_loss", "nms_ap")


def _trainer(tmp_path, steps=4, name="run", **cfg):
    backend.seed(0)  # the same initial weights for every trainer
    model = SSD(tiny_config(num_classes=ShapesDataset.num_classes))
    data = ShapesDataset(8, image_size=64, seed=3)
    config = TrainConfig(steps=steps, batch_size=2, lr=1e-3, warmup_steps=1, seed=5, **cfg)
    return Trainer(model, data, None, config, out_dir=str(tmp_path / name), progress=False)


def _weights(model):
    return {k: backend.to_numpy(v).copy() for k, v in model.state_dict().items()}


def test_resume_continues_exactly(tmp_path):
    straight = _trainer(tmp_path, steps=4, name="straight")
    straight.fit()

    first = _trainer(tmp_path, steps=4, name="split")
    first.config.steps = 2
    first.fit()
    path = first.checkpoint_path()
    second = _trainer(tmp_path, steps=4, name="split")
    second.resume(path)
    assert second.step == 2
    second.fit()

    a, b = _weights(straight.model), _weights(second.model)
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    # and training did change the weights (the comparison is not vacuous)
    fresh = _weights(_trainer(tmp_path, name="fresh").model)
    assert any(not np.array_equal(fresh[k], a[k]) for k in a if k.endswith("weight"))
    assert [r["loss"] for r in straight.history.steps] == pytest.approx(
        [r["loss"] for r in second.history.steps], rel=1e-6)


def test_nan_loss_stops_with_step_and_keeps_last_checkpoint(tmp_path, monkeypatch):
    trainer = _trainer(tmp_path, steps=5, checkpoint_every=1)
    real = trainer.compute_loss

    def poisoned(images, boxes, labels):
        loc, conf = real(images, boxes, labels)
        if trainer.step == 2:
            return loc * float("nan"), conf
        return loc, conf

    monkeypatch.setattr(trainer, "compute_loss", poisoned)
    with pytest.raises(TrainingDiverged, match="step 2"):
        trainer.fit()
    meta, parts = read_checkpoint(trainer.checkpoint_path())
    assert meta["step"] == 2
    assert all(np.isfinite(v).all() for v in parts["model"].values())
    # no temporary file is left next to the checkpoint
    assert sorted(os.listdir(os.path.dirname(trainer.checkpoint_path()))) == ["checkpoint.npz"]


def test_keyboard_interrupt_saves_a_checkpoint(tmp_path, monkeypatch, capsys):
    trainer = _trainer(tmp_path, steps=5)
    real = trainer.train_step

    def interrupt(*args):
        if trainer.step == 3:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(trainer, "train_step", interrupt)
    with pytest.raises(KeyboardInterrupt):
        trainer.fit()
    meta, _ = read_checkpoint(trainer.checkpoint_path())
    assert meta["step"] == 3
    assert "checkpoint saved" in capsys.readouterr().out


def test_checkpoint_for_another_model_is_refused(tmp_path):
    model = SSD(tiny_config(num_classes=3))
    path = save_checkpoint(str(tmp_path / "a.npz"), model)
    other = SSD(tiny_config(num_classes=4))
    with pytest.raises(ValueError, match="a.npz"):
        load_model(path, other)
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        load_model(str(tmp_path / "missing.npz"))
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match="bad.npz"):
        load_model(str(bad))


def test_checkpoint_round_trip_rebuilds_the_model(tmp_path):
    for model in (SSD(tiny_config()), YOLOv1(num_classes=3, input_size=64, grid=4, width=1 / 16)):
        path = save_checkpoint(str(tmp_path / "m.npz"), model, step=7)
        loaded = load_model(path)
        assert type(loaded) is type(model)
        assert loaded.describe() == model.describe()
        for k, v in model.state_dict().items():
            np.testing.assert_array_equal(backend.to_numpy(v), backend.to_numpy(loaded.state_dict()[k]))
        # the file holds no pickled objects
        with np.load(path, allow_pickle=False) as f:
            assert all(f[k].dtype != object for k in f.files)
    assert isinstance(model_from_description(SSD(tiny_config()).describe()), SSD)


@pytest.mark.parametrize("name, kind", [("ssd_mini", SSD), ("yolov1", YOLOv1)])
def test_shipped_weights_still_load(name, kind):
    # the files in minissd/weights/ were written before models described themselves: they must still load
    path = shipped_weights(name)
    if not os.path.isfile(path):
        pytest.skip(f"{path} is not in this copy of the package")
    model = load_model(path)
    assert type(model) is kind and model.num_classes == ShapesDataset.num_classes and model.input_size == 160
    _, parts = read_checkpoint(path)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(backend.to_numpy(v), parts["model"][k], err_msg=k)


def test_trainer_follows_the_configured_schedule(tmp_path):
    # TrainConfig's schedule settings reach the optimizer: warm-up 2 of 4 steps, then cosine down to 0
    backend.seed(0)
    model = SSD(tiny_config(num_classes=ShapesDataset.num_classes))
    cfg = TrainConfig(steps=4, batch_size=2, lr=1e-3, warmup_steps=2, min_lr_factor=0.0, seed=5, augment=False)
    trainer = Trainer(model, ShapesDataset(8, image_size=64, seed=3), None, cfg, progress=False)
    trainer.fit()
    # steps 0, 1: 1/2, 2/2 of the peak; steps 2, 3: cosine at t = 0 and 1/2 of the 2 steps after warm-up
    assert trainer.history.column("lr") == pytest.approx([5e-4, 1e-3, 1e-3, 5e-4])


def test_bad_config_is_a_clear_error():
    with pytest.raises(ValueError, match="optimizer"):
        TrainConfig(optimizer="rmsprop")
    with pytest.raises(ValueError, match="steps"):
        TrainConfig(steps=0)
    with pytest.raises(ValueError, match="lr"):
        TrainConfig(lr=math.nan)


def test_training_lowers_the_loss_and_evaluates(tmp_path):
    model = SSD(tiny_config(num_classes=ShapesDataset.num_classes))
    data = ShapesDataset(4, image_size=64, seed=3)
    trainer = Trainer(model, data, ShapesDataset(3, image_size=64, seed=9),
                      TrainConfig(steps=30, batch_size=4, lr=3e-3, warmup_steps=3, augment=False, eval_every=30),
                      progress=False)
    history = trainer.fit()
    losses = history.column("loss")
    assert losses[-5:].mean() < 0.6 * losses[:5].mean()
    assert len(history.evals) == 1 and 0.0 <= history.evals[0]["map"] <= 1.0


def test_save_checkpoint_refuses_extra_keys_that_would_replace_the_description(tmp_path):
    model = SSD(tiny_config())
    with pytest.raises(ValueError, match=r"save_checkpoint\(extra\).*'model'"):
        save_checkpoint(str(tmp_path / "c.npz"), model, extra={"model": "ssd_mini"})
    assert not (tmp_path / "c.npz").exists()
