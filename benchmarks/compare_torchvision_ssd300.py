"""Compare minissd's SSD300 with torchvision's ssd300_vgg16 on the same (random) weights.

Builds torchvision's ssd300_vgg16 with random weights (``weights=None, weights_backbone=None``: nothing is
downloaded), saves its state dict, converts it with ``minissd.pretrained.convert`` (reading the file without
PyTorch), and compares on one random 300x300 input:

* the default boxes (torchvision's DefaultBoxGenerator vs minissd's priors with the recorded config),
* the head outputs: box offsets (N, 8732, 4) and class logits (N, 8732, 91),

reporting the maximum relative error ``max |a - b| / max |b|`` of each. Needs torch and torchvision:

    python benchmarks/compare_torchvision_ssd300.py [--seed 0] [--threshold 1e-4]

Exits non-zero when an error exceeds the threshold.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def max_rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threshold", type=float, default=1e-4)
    args = parser.parse_args()
    try:
        import torch
        from torchvision.models.detection import ssd300_vgg16
        from torchvision.models.detection.image_list import ImageList
    except ImportError as exc:
        print(f"skipped: needs torch and torchvision ({exc})")
        return 0
    from minissd import to_numpy
    from minissd.autograd import no_grad
    from minissd.pretrained import convert
    from minissd.train import load_model

    torch.manual_seed(args.seed)
    tv = ssd300_vgg16(weights=None, weights_backbone=None).eval()
    # random biases too (torchvision initialises them to 0), and an L2Norm scale that is not 20 everywhere
    with torch.no_grad():
        for name, p in tv.named_parameters():
            if name.endswith("bias"):
                p.normal_(0, 0.1)
        tv.backbone.scale_weight.uniform_(10, 30)
    rng = np.random.default_rng(args.seed)
    x = rng.normal(0, 50, size=(2, 3, 300, 300)).astype(np.float32)  # the network's (normalized) input
    with torch.no_grad():
        feats = list(tv.backbone(torch.from_numpy(x)).values())
        head = tv.head(feats)
        anchors = tv.anchor_generator(ImageList(torch.from_numpy(x), [(300, 300)] * 2), feats)[0].numpy()

    with tempfile.TemporaryDirectory() as tmp:
        src, out = os.path.join(tmp, "ssd300_vgg16.pth"), os.path.join(tmp, "ssd300_tv.npz")
        torch.save(tv.state_dict(), src)
        result = convert(src, out)
        model = load_model(out)
    print(f"converted kind {result.kind}: {len(result.arrays)} tensors, {model.config.num_priors} default boxes")
    model.eval()
    with no_grad():
        loc, conf = model(x)
    loc, conf = to_numpy(loc.data), to_numpy(conf.data)
    priors = to_numpy(model.default_boxes).astype(np.float64)
    corners = np.concatenate([priors[:, :2] - priors[:, 2:] / 2, priors[:, :2] + priors[:, 2:] / 2], 1) * 300
    errors = {
        "default boxes (pixels, corners)": float(np.abs(corners - anchors).max() / 300),
        "box offsets (N, 8732, 4)": max_rel(loc, head["bbox_regression"].numpy()),
        "class logits (N, 8732, 91)": max_rel(conf, head["cls_logits"].numpy()),
    }
    for name, err in errors.items():
        print(f"{name:<34} max relative error {err:.2e}")
    print(f"input convention {model.input_convention}; classes {len(model.class_names or ())}; "
          f"torchvision transform {tv.transform}".replace("\n", " "))
    from torchvision.models import vgg16
    from torchvision.models.detection import SSD300_VGG16_Weights

    categories = list(SSD300_VGG16_Weights.COCO_V1.meta["categories"])
    names_ok = list(model.class_names[1:]) == categories[1:] and len(categories) == len(model.class_names)
    print(f"COCO names equal torchvision's (after the background entry): {names_ok}")
    if not names_ok:
        errors["class names"] = float("inf")
    # the ImageNet VGG16 layout: its key names convert, and fc6/fc7 are the subsampled classifier layers
    net = vgg16(weights=None)
    with tempfile.TemporaryDirectory() as tmp:
        src, out = os.path.join(tmp, "vgg16.pth"), os.path.join(tmp, "vgg16_backbone.npz")
        torch.save(net.state_dict(), src)
        backbone = convert(src, out)
    fc6 = net.classifier[0].weight.detach().numpy().reshape(4096, 512, 7, 7)[::4, :, ::3, ::3]
    errors["vgg16 fc6 subsampled"] = max_rel(backbone.arrays["base.fc6.weight"], fc6)
    errors["vgg16 conv5_3"] = max_rel(backbone.arrays["base.conv5_3.weight"], net.features[28].weight.detach().numpy())
    print(f"vgg16 -> backbone: kind {backbone.kind}, {len(backbone.arrays)} tensors, fc6 "
          f"{backbone.arrays['base.fc6.weight'].shape}, errors fc6 {errors['vgg16 fc6 subsampled']:.1e}, "
          f"conv5_3 {errors['vgg16 conv5_3']:.1e}")
    bad = {k: v for k, v in errors.items() if not v < args.threshold}
    if bad:
        print(f"FAILED: above {args.threshold:g}: {bad}")
        return 1
    print(f"all below {args.threshold:g}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
