"""The ``minissd`` command line: every command runs on tiny settings and writes what it says."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from minissd.cli import main, planned_steps

# Classroom assignments (docs/assignments.md): the commands run the whole pipeline, which needs the code of
# these assignments; in a student copy these tests need them (they are not graded by them).
pytestmark = pytest.mark.needs("conv2d", "max_pool", "default_boxes", "box_coding",
                              "matching", "multibox_loss", "nms_ap")

COMMANDS = ["demo", "train", "evaluate", "detect", "boxes"]


def run_cli(*args, cwd=None):
    """``python -m minissd ARGS`` in a subprocess: (exit code, stdout, stderr)."""
    env = dict(os.environ, MPLBACKEND="Agg")
    p = subprocess.run([sys.executable, "-m", "minissd", *args], capture_output=True, text=True, cwd=cwd,
                       env=env, timeout=600)
    return p.returncode, p.stdout, p.stderr


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    assert "usage: minissd " + command in capsys.readouterr().out


def test_boxes_table(capsys):
    assert main(["boxes", "--model", "ssd300"]) == 0
    out = capsys.readouterr().out
    assert "8732" in out
    assert "38x38" in out and "1x1" in out and "conv4_3" in out and "fc7" in out
    assert main(["boxes", "--model", "ssd_mini"]) == 0
    assert "2390" in capsys.readouterr().out


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A checkpoint from two training steps of ssd_mini on a handful of images."""
    out = tmp_path_factory.mktemp("train")
    code, stdout, stderr = run_cli("train", "--model", "ssd_mini", "--steps", "2", "--batch-size", "2",
                                   "--train-images", "4", "--val-images", "2", "--warmup", "1",
                                   "--out", str(out))
    assert code == 0, stderr
    return out, stdout


def test_train_writes_a_checkpoint(trained):
    out, stdout = trained
    assert (out / "checkpoint.npz").is_file()
    assert "trained ssd_mini for 2 steps" in stdout
    with np.load(out / "checkpoint.npz", allow_pickle=False) as f:
        assert json.loads(str(f["meta"]))["step"] == 2


def test_evaluate_prints_ap_table(trained):
    out, _ = trained
    code, stdout, stderr = run_cli("evaluate", "--weights", str(out / "checkpoint.npz"), "--images", "3")
    assert code == 0, stderr
    assert "mAP" in stdout and "AP (VOC07)" in stdout
    from minissd.data import ShapesDataset

    lines = stdout.splitlines()
    rows = lines[lines.index(next(x for x in lines if x.startswith("class"))) + 1:]
    rows = rows[: next(i for i, x in enumerate(rows) if x.startswith("mAP"))]
    # one row per class that has ground truth in the 3 images, each with two APs in [0, 1]
    assert rows
    for row in rows:
        name, ap_area, ap_07 = row.split()
        assert name in ShapesDataset.class_names[1:]
        assert 0.0 <= float(ap_area) <= 1.0 and 0.0 <= float(ap_07) <= 1.0


def test_detect_writes_pictures_and_json(trained, tmp_path):
    from PIL import Image

    from minissd.data import ShapesDataset

    out, _ = trained
    paths = []
    for i in range(2):
        p = tmp_path / f"scene{i}.png"
        Image.fromarray(ShapesDataset(2, seed=7)[i][0]).save(p)
        paths.append(str(p))
    dest = tmp_path / "det"
    code, stdout, stderr = run_cli("detect", *paths, "--weights", str(out / "checkpoint.npz"), "--out", str(dest),
                                   "--threshold", "0.05")
    assert code == 0, stderr
    report = json.loads((dest / "detections.json").read_text())
    assert [r["image"] for r in report["images"]] == paths
    for r in report["images"]:
        assert os.path.isfile(r["annotated"])
        for d in r["detections"]:
            assert d["score"] >= 0.05
            x0, y0, x1, y1 = d["box_pixels"]
            assert 0 <= x0 <= x1 <= r["width"] and 0 <= y0 <= y1 <= r["height"]


def test_resume_from_checkpoint(trained, tmp_path):
    out, _ = trained
    code, stdout, stderr = run_cli("train", "--model", "ssd_mini", "--steps", "3", "--batch-size", "2",
                                   "--train-images", "4", "--val-images", "2", "--warmup", "1",
                                   "--resume", str(out / "checkpoint.npz"), "--out", str(tmp_path / "more"))
    assert code == 0, stderr
    assert "resumed from" in stdout and "at step 2" in stdout
    assert "for 3 steps" in stdout


def test_planned_steps():
    # --minutes alone must not stop the run after one epoch: the time limit ends it
    assert planned_steps(None, None, 90.0, 4000, 32) >= 10**6
    assert planned_steps(None, None, None, 4000, 32) == 125  # one epoch of 4000 // 32
    assert planned_steps(None, 3, 90.0, 4000, 32) == 375  # --epochs wins over the time limit's open end
    assert planned_steps(7, None, 90.0, 4000, 32) == 7
    assert planned_steps(None, None, None, 10, 32) == 1  # fewer images than a batch: still one step


def test_demo_tiny(tmp_path):
    out = tmp_path / "demo"
    code, stdout, stderr = run_cli("demo", "--minutes", "0.02", "--train-images", "8", "--eval-images", "6",
                                   "--batch-size", "2", "--out", str(out))
    assert code == 0, stderr
    for name in ("default_boxes.png", "matching.png", "training.png", "trained_detections.png"):
        assert (out / name).is_file(), name
    assert "mAP@0.5 after training" in stdout
    assert "2390" in stdout


@pytest.mark.parametrize("args, message", [
    (["evaluate", "--weights", "no/such/file.npz"], "does not exist"),
    (["detect", "missing.png", "--weights", "no/such/file.npz"], "does not exist"),
    (["train", "--data", "voc", "--steps", "1"], "--data-root"),
    (["train", "--data", "voc", "--data-root", "no/such/VOCdevkit", "--steps", "1"], "no/such/VOCdevkit"),
])
def test_errors_are_one_clear_line(args, message, tmp_path):
    code, stdout, stderr = run_cli(*args, cwd=tmp_path)
    assert code != 0
    assert message in stderr
    assert "Traceback" not in stderr
    assert len(stderr.strip().splitlines()) == 1


def test_wrong_checkpoint_for_the_data(tmp_path):
    from minissd.models import ssd_mini
    from minissd.train import save_checkpoint

    path = save_checkpoint(str(tmp_path / "three.npz"), ssd_mini(num_classes=3))
    code, _, stderr = run_cli("evaluate", "--weights", path, "--images", "2")
    assert code == 1
    assert "3 classes" in stderr and "Traceback" not in stderr
