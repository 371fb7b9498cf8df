"""The ``minissd`` command line (also ``python -m minissd``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

PIPELINE = """minissd demo will run, on built-in synthetic data (ShapesDataset):
  1. draw the default boxes of each feature map and the matching of one training image;
  2. evaluate the shipped ssd_mini weights on held-out images (mAP) and draw their detections;
  3. train ssd_mini from scratch for a few minutes with a progress bar, plot its loss, report its mAP.
"""


def _cmd_demo(args: argparse.Namespace) -> int:
    print(PIPELINE)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="minissd", description="SSD from scratch on NumPy/CuPy.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = sub.add_parser("demo", help="the main job on built-in synthetic data")
    demo.add_argument("--minutes", type=float, default=3.0, help="training time budget in minutes")
    demo.add_argument("--out", default="minissd-demo", help="output folder")
    demo.add_argument("--backend", choices=["numpy", "cupy"], default="numpy")
    demo.set_defaults(func=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        print(f"minissd {args.command}: error: {exc}", file=sys.stderr)
        return 1
