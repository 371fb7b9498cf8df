"""Pictures: drawing must survive what an undertrained detector outputs."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from minissd.viz import show_detections  # noqa: E402


def test_detections_far_outside_the_image_are_drawn_clipped():
    # decoded boxes of a barely trained network: far outside [0, 1], even infinite (exp overflow)
    image = np.zeros((160, 160, 3), np.uint8)
    boxes = np.array([[-40.0, -3.0, 55.0, 80.0], [0.2, 0.2, np.inf, 0.5], [0.1, 0.1, 0.4, 0.4]])
    fig, ax = plt.subplots(figsize=(4, 4))
    show_detections(image, boxes, np.array([1, 2, 3]), np.array([0.9, 0.8, 0.7]), ax=ax)
    patches = [p for p in ax.patches]
    assert len(patches) == 3
    for p in patches:  # every rectangle lies inside the 160 x 160 image
        x, y = p.get_xy()
        assert -0.5 <= x and x + p.get_width() <= 160.5 and -0.5 <= y and y + p.get_height() <= 160.5
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")  # unclipped, this figure grew without bound
    plt.close(fig)
    width, height = Image.open(io.BytesIO(buf.getvalue())).size
    assert width < 1000 and height < 1000
