"""Training-recipe search for ssd_mini with a PyTorch replica (about twice as fast per image on a CPU).

The replica takes minissd's freshly initialised ``ssd_mini`` weights, runs the same layers (VGG base with
BatchNorm, L2Norm on conv4_3, extras, 3x3 heads) in PyTorch, and trains on the same data (minissd's
DataLoader and transforms), the same targets (``minissd.matching.match_batch``) and the same MultiBox loss
(smooth L1 + cross-entropy with 3:1 hard negative mining, both over the number of positives). At each
evaluation the weights are copied back into the minissd model and scored with
``minissd.train.evaluate_model`` on held-out mixed scenes, so the numbers are minissd's mAP. It exists to
compare recipes (learning rate, augmentation, L2Norm scale) in minutes instead of hours; a recipe found
here is then confirmed with minissd itself (``benchmarks/train_mini.py``).

    python benchmarks/recipe_mini_torch.py --minutes 4 --lr 1e-2 --l2-scale 5 --no-augment
    python benchmarks/recipe_mini_torch.py --minutes 4 --lr 3e-3 --augment full

Needs PyTorch (not a dependency of minissd). Never run as a test.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import numpy as np  # noqa: E402

from minissd import backend  # noqa: E402
from minissd.config import SSDConfig  # noqa: E402
from minissd.data import (  # noqa: E402
    EVAL_SEED,  # noqa: E402
    ConcatDataset,
    DataLoader,
    ShapesDataset,
)
from minissd.data.transforms import eval_transform, train_transform  # noqa: E402
from minissd.matching import match_batch  # noqa: E402
from minissd.models import SSD  # noqa: E402
from minissd.train import evaluate_model  # noqa: E402


def replica(model: Any, torch: Any) -> tuple[Any, dict[str, Any]]:
    """(forward(x) -> (loc, conf), parameters dict) of a PyTorch copy of ``model`` (an ssd_mini)."""
    F = torch.nn.functional
    params = {k: torch.tensor(np.array(v), requires_grad="running" not in k) for k, v in model.state_dict().items()}

    def conv(name, x, **kw):
        return F.conv2d(x, params[name + ".weight"], params[name + ".bias"], **kw)

    def bn(name, x):
        if name + ".weight" not in params:  # a model without BatchNorm
            return x
        return F.batch_norm(x, params[name + ".running_mean"], params[name + ".running_var"],
                            params[name + ".weight"], params[name + ".bias"], training=True, momentum=0.1)

    def forward(x):
        conv4_3 = None
        for name in model.base._order:
            if name == "pool5":
                x = F.max_pool2d(x, 3, 1, 1)
            elif name.startswith("pool"):
                x = F.max_pool2d(x, 2, 2, ceil_mode=(name == "pool3"))
            else:
                x = F.relu(bn("base.bn" + name[4:], conv("base." + name, x, padding=1)))
                if name == "conv4_3":
                    conv4_3 = x
        x = F.relu(bn("base.bn6", conv("base.fc6", x, padding=6, dilation=6)))
        fc7 = F.relu(bn("base.bn7", conv("base.fc7", x)))
        norm = torch.sqrt((conv4_3 * conv4_3).sum(1, keepdim=True) + 1e-10)
        sources, h = [conv4_3 / norm * params["l2norm.weight"].view(1, -1, 1, 1), fc7], fc7
        for i, block in enumerate(model.config.extras):
            h = F.relu(bn(f"extras.{i}.2", conv(f"extras.{i}.0", h)))
            h = F.relu(bn(f"extras.{i}.3", conv(f"extras.{i}.1", h, stride=block.stride, padding=block.padding)))
            sources.append(h)
        n, c = x.shape[0], model.num_classes
        locs = [conv(f"loc_heads.{i}", s, padding=1).permute(0, 2, 3, 1).reshape(n, -1, 4)
                for i, s in enumerate(sources)]
        confs = [conv(f"conf_heads.{i}", s, padding=1).permute(0, 2, 3, 1).reshape(n, -1, c)
                 for i, s in enumerate(sources)]
        return torch.cat(locs, 1), torch.cat(confs, 1)

    return forward, params


def multibox(torch: Any, loc: Any, conf: Any, loc_t: Any, conf_t: Any, neg_pos_ratio: float = 3.0) -> tuple[Any, Any]:
    """The MultiBox loss as in minissd.loss (returns loc, conf)."""
    pos = conf_t > 0
    num_pos = max(int(pos.sum()), 1)
    d = (loc - loc_t)[pos]
    ad = d.abs()
    loss_loc = torch.where(ad < 1, 0.5 * d * d, ad - 0.5).sum() / num_pos
    log_p = torch.nn.functional.log_softmax(conf, -1)
    ce = -log_p.gather(-1, conf_t.unsqueeze(-1)).squeeze(-1)
    with torch.no_grad():
        background = -log_p[..., 0].clone()
        background[pos] = -1
        rank = background.argsort(1, descending=True).argsort(1)
        neg = rank < (neg_pos_ratio * pos.sum(1, keepdim=True)).clamp(max=conf.shape[1] - 1)
    return loss_loc, ce[pos | neg].sum() / num_pos


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=4.0)
    p.add_argument("--evals", type=int, default=2)
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--l2-scale", type=float, default=None, help="initial L2Norm scale (default: the preset's)")
    p.add_argument("--augment", choices=["full", "zoom2", "none"], default="none")
    p.add_argument("--flock", type=int, default=0, help="flock scenes added to the 20000 mixed ones")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-batch-norm", action="store_true", help="the mini preset without BatchNorm")
    args = p.parse_args()
    import torch  # noqa: PLC0415

    torch.set_num_threads(args.threads)
    backend.seed(0)
    config = SSDConfig.mini(num_classes=ShapesDataset.num_classes)
    model = SSD(config.replace(batch_norm=False) if args.no_batch_norm else config)
    forward, params = replica(model, torch)
    if args.l2_scale is not None:
        params["l2norm.weight"].data.fill_(args.l2_scale)
    transform = {"full": train_transform(160), "zoom2": train_transform(160, zoom_out_max=2.0),
                 "none": eval_transform(160)}[args.augment]
    parts = [ShapesDataset(20000, scene="mixed", seed=0)]
    if args.flock:
        parts.append(ShapesDataset(args.flock, scene="flock", seed=0))
    loader = DataLoader(ConcatDataset(parts), args.batch, shuffle=True, transform=transform, seed=0,
                        drop_last=True, num_workers=1)
    optimizer = torch.optim.Adam([v for k, v in params.items() if "running" not in k], lr=args.lr)
    val = ShapesDataset(200, scene="mixed", seed=EVAL_SEED)
    limit, warmup = args.minutes * 60, 30
    print(f"# recipe: lr {args.lr}, batch {args.batch}, augment {args.augment}, L2Norm scale "
          f"{float(params['l2norm.weight'][0].detach())}, flock {args.flock}, BatchNorm {not args.no_batch_norm}, "
          f"{args.threads} torch thread(s)")
    step, seconds, losses, next_eval = 0, 0.0, [], limit / args.evals
    t0 = time.perf_counter()
    for images, boxes, labels in loader:
        loc_t, conf_t = match_batch(boxes, labels, model.default_boxes, variances=model.config.variances)
        cosine = 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(1.0, seconds / limit)))
        for group in optimizer.param_groups:
            group["lr"] = args.lr * ((step + 1) / warmup if step < warmup else cosine)
        loc, conf = forward(torch.from_numpy(np.asarray(images)))
        loss_loc, loss_conf = multibox(torch, loc, conf, torch.from_numpy(np.asarray(loc_t)),
                                       torch.from_numpy(np.asarray(conf_t)).long())
        optimizer.zero_grad()
        (loss_loc + loss_conf).backward()
        optimizer.step()
        step += 1
        losses.append((loss_loc.item(), loss_conf.item()))
        seconds = time.perf_counter() - t0
        if seconds >= next_eval:
            model.load_state_dict({k: v.detach().numpy() for k, v in params.items()})
            t_eval = time.perf_counter()
            result = evaluate_model(model, val)
            t0 += time.perf_counter() - t_eval  # evaluation is not training time
            loc_mean, conf_mean = np.mean(losses[-20:], axis=0)
            print(f"{seconds / 60:5.1f} min  step {step:5d}  {step * args.batch / seconds:5.1f} img/s  "
                  f"loss loc {loc_mean:.3f} conf {conf_mean:.3f}  mAP mixed {result['map']:.3f}", flush=True)
            next_eval += limit / args.evals
            if seconds >= limit:
                break


if __name__ == "__main__":
    main()
