"""SSD: the modified VGG16 base, extra feature layers and one loc/conf head per source feature map.

Data flow for SSD300 (``N`` images of 300x300)::

    x (N, 3, 300, 300)
      -> VGG base -> conv4_3 (N, 512, 38, 38) -> L2Norm (scale 20)   -> source 1
                  -> fc7     (N, 1024, 19, 19)                       -> source 2
      -> conv8_1 1x1 256, conv8_2 3x3/s2 512  -> (N, 512, 10, 10)    -> source 3
      -> conv9_1 1x1 128, conv9_2 3x3/s2 256  -> (N, 256, 5, 5)      -> source 4
      -> conv10_1 1x1 128, conv10_2 3x3 valid -> (N, 256, 3, 3)      -> source 5
      -> conv11_1 1x1 128, conv11_2 3x3 valid -> (N, 256, 1, 1)      -> source 6

Each source map k has ``n_k`` default boxes per location (4 or 6). Its loc head, a 3x3 convolution
to ``n_k * 4`` channels, predicts the four offsets of every default box; its conf head, a 3x3
convolution to ``n_k * C`` channels, predicts C class scores (class 0 = background). The maps are
flattened location by location in the order of :func:`minissd.priors.default_boxes`, so row ``p`` of
the output belongs to default box ``p``: loc (N, P, 4), conf (N, P, C), P = 8732 for SSD300.

conv4_3 gets an L2Norm because its activations are much larger than those of the deeper maps
(ParseNet's observation, followed by the paper); the learnable per-channel scale starts at 20.

Training: :meth:`SSD.loss` matches the ground truth to the default boxes
(:func:`~minissd.matching.match_batch`) and applies :class:`~minissd.loss.MultiBoxLoss`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .. import backend
from ..autograd import Tensor, concatenate, no_grad
from ..config import SSDConfig
from ..data.transforms import MEAN, STD
from ..detection import Detections, detect
from ..loss import MultiBoxLoss
from ..matching import match_batch
from ..nn import BatchNorm2d, Conv2d, L2Norm, Module, ModuleList, init
from ..nn import functional as F
from ..priors import default_boxes
from ..sizes import scaled_channels
from .vgg import VGGBase


@dataclass(frozen=True)
class InputConvention:
    """How an image becomes the network's input for a given set of weights: ``(pixel - mean) / std``.

    ``mean`` and ``std`` are per channel, in RGB order, on the 0..255 pixel scale; the image is resized to
    ``config.input_size`` squared first. minissd's own default is the ImageNet statistics (which is also
    what torchvision's ImageNet VGG16 wants); weights converted from elsewhere record theirs (ssd.pytorch's
    and torchvision's SSD300: mean (123, 117, 104), std 1). Networks always take RGB: a converter for weights
    trained on BGR images reverses conv1_1's input channels instead (see minissd.pretrained).
    """

    mean: tuple[float, float, float] = MEAN
    std: tuple[float, float, float] = STD

    def __post_init__(self) -> None:
        mean, std = tuple(float(m) for m in self.mean), tuple(float(s) for s in self.std)
        if len(mean) != 3 or len(std) != 3 or not all(s > 0 for s in std):
            raise ValueError(f"InputConvention: expected 3 means and 3 positive stds (RGB, 0..255 scale), "
                             f"got mean {self.mean!r}, std {self.std!r}")
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)


class SSD(Module):
    """The SSD detector defined by an :class:`~minissd.config.SSDConfig`.

    ``model(x)`` with x (N, 3, S, S) float32 (S = ``config.input_size``, already normalized) returns
    ``(loc (N, P, 4), conf (N, P, C))``: box offsets relative to ``model.default_boxes`` (P, 4)
    (centre form) and raw class scores (logits) with C = ``config.num_classes``.

    ``background_prior`` (None, or p in (0, 1)): initialise the conf heads' biases so that the untrained
    network gives every default box background probability about p (RetinaNet's prior initialisation;
    see :meth:`init_background_prior`). None keeps the Xavier/zero initialisation.
    """

    def __init__(self, config: SSDConfig, background_prior: float | None = None) -> None:
        super().__init__()
        if not isinstance(config, SSDConfig):
            raise TypeError(f"SSD(config): expected an SSDConfig, got {type(config).__name__}")
        self.config = config
        self.base = VGGBase(width=config.width, batch_norm=config.batch_norm)
        if "conv4_3" in config.sources:  # without conv4_3 as a source (an ablation) there is nothing to rescale
            self.l2norm = L2Norm(self.base.conv4_3_channels, scale=config.l2norm_scale)

        conv4_3_size, fc7_size = VGGBase.feature_sizes(config.input_size)
        channels = [self.base.conv4_3_channels, self.base.fc7_channels]
        sizes = [conv4_3_size, fc7_size]
        keep = [i for i, name in enumerate(("conv4_3", "fc7")) if name in config.sources]
        channels, sizes = [channels[i] for i in keep], [sizes[i] for i in keep]

        # extra layers: per block a 1x1 bottleneck then a 3x3 (or kxk) convolution that shrinks the map
        self.extras = ModuleList()
        in_ch, size = self.base.fc7_channels, fc7_size
        for extra in config.extras:
            mid, out = scaled_channels(extra.mid_channels, config.width), scaled_channels(extra.out_channels,
                                                                                           config.width)
            block = ModuleList([Conv2d(in_ch, mid, 1),
                                Conv2d(mid, out, extra.kernel_size, stride=extra.stride, padding=extra.padding)])
            if config.batch_norm:
                block.append(BatchNorm2d(mid))
                block.append(BatchNorm2d(out))
            self.extras.append(block)
            size = extra.output_size(size)
            in_ch = out
            channels.append(out)
            sizes.append(size)

        expected = tuple(config.feature_maps)
        if tuple(sizes) != expected:
            raise ValueError(
                f"SSD(config): the network produces feature maps of sides {tuple(sizes)} for a "
                f"{config.input_size}x{config.input_size} input, but config.feature_maps is {expected}"
            )

        per_location = config.num_priors_per_location
        self.loc_heads = ModuleList([Conv2d(c, n * 4, 3, padding=1) for c, n in zip(channels, per_location)])
        self.conf_heads = ModuleList(
            [Conv2d(c, n * config.num_classes, 3, padding=1) for c, n in zip(channels, per_location)]
        )
        self.source_channels = tuple(channels)
        # how images are prepared for these weights, and the names of the classes (None: the dataset's);
        # both are recorded in checkpoints, and converted published weights set them
        self.input_convention = InputConvention()
        self.class_names: tuple[str, ...] | None = None
        self._init_new_layers()
        if background_prior is not None:
            self.init_background_prior(background_prior)
        self._priors_np = default_boxes(config)

    def _init_new_layers(self) -> None:
        # the paper initialises the layers it adds with Xavier; conv layers of the base use He init
        modules = [m for block in self.extras for m in block] + list(self.loc_heads) + list(self.conf_heads)
        for m in modules:
            if isinstance(m, Conv2d):
                init.xavier_uniform(m.weight)
                init.zeros(m.bias)

    def init_background_prior(self, p: float) -> None:
        """Initialise the conf heads so that the untrained network gives every box P(background) ~ p.

        Softmax over C classes with logit b for background and 0 for the C - 1 others gives
        ``e^b / (e^b + C - 1) = p`` for ``b = log(p (C - 1) / (1 - p))``. At the start of training nearly
        every default box is background, so starting near that answer keeps the first, large confidence
        gradients of the easy negatives from swamping the rest (Lin et al., Focal Loss, 2017). As there,
        the head weights are drawn with a small std (0.01) so that the features add little noise to the
        logits: with Xavier weights the noisy logits would pull the mean probability well below p.
        """
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 < p < 1:
            raise ValueError(f"SSD(background_prior): expected None or a probability in (0, 1), got {p!r}")
        c = self.config.num_classes
        logit = math.log(p * (c - 1) / (1 - p))
        for head in self.conf_heads:
            init.normal(head.weight, std=0.01)
            head.bias.data[...] = 0.0
            head.bias.data[0::c] = logit  # channel a * C + 0 is the background score of box a (see forward)

    @property
    def default_boxes(self) -> Any:
        """The default boxes (P, 4), centre form (cx, cy, w, h) normalized to [0, 1], on the backend."""
        return backend.asarray(self._priors_np)

    @property
    def num_classes(self) -> int:
        """Classes including background (class 0)."""
        return self.config.num_classes

    @property
    def input_size(self) -> int:
        """Side of the square input image, pixels."""
        return self.config.input_size

    # ------------------------------------------------------------------ checkpoints
    def describe(self) -> dict[str, Any]:
        """A JSON-able description from which :meth:`from_description` rebuilds an untrained copy."""
        out: dict[str, Any] = {"kind": "ssd", "config": dataclasses.asdict(self.config)}
        # recorded only when they differ from minissd's defaults, so older descriptions stay equal
        if self.input_convention != InputConvention():
            out["input"] = dataclasses.asdict(self.input_convention)
        if self.class_names is not None:
            out["class_names"] = list(self.class_names)
        return out

    @classmethod
    def from_description(cls, description: Mapping[str, Any]) -> SSD:
        """The SSD that :meth:`describe` described (freshly initialised); lists from JSON are fine."""
        try:
            model = cls(SSDConfig(**description["config"]))
            if "input" in description:
                model.input_convention = InputConvention(**description["input"])
        except (KeyError, TypeError) as exc:
            raise ValueError(f"SSD description: expected {{'kind': 'ssd', 'config': {{SSDConfig fields}}}}, "
                             f"got {dict(description)!r} ({exc})") from None
        if description.get("class_names") is not None:
            model.class_names = tuple(description["class_names"])
        return model

    def check_input(self, x: Any) -> Tensor:
        """``x`` as a Tensor, after checking it is (N, 3, S, S)."""
        x = x if isinstance(x, Tensor) else Tensor(backend.asarray(x))
        s = self.config.input_size
        if x.ndim != 4 or x.shape[1] != 3 or x.shape[2] != s or x.shape[3] != s:
            raise ValueError(
                f"SSD input x: expected shape (N, 3, {s}, {s}) (NCHW, normalized), got {x.shape}"
            )
        return x

    def sources(self, x: Any) -> list[Tensor]:
        """The source feature maps, largest first: [conv4_3 (L2-normalized), fc7, extras...]; conv4_3 and fc7
        only when ``config.sources`` names them."""
        x = self.check_input(x)
        conv4_3, fc7 = self.base(x)
        out = [self.l2norm(conv4_3)] if "conv4_3" in self.config.sources else []
        if "fc7" in self.config.sources:
            out.append(fc7)
        h = fc7
        for block in self.extras:
            h = block[0](h)
            if self.config.batch_norm:
                h = block[2](h)
            h = F.relu(h, inplace=True)
            h = block[1](h)
            if self.config.batch_norm:
                h = block[3](h)
            h = F.relu(h, inplace=True)
            out.append(h)
        return out

    def forward(self, x: Any) -> tuple[Tensor, Tensor]:
        n = x.shape[0]
        locs, confs = [], []
        for src, loc_head, conf_head in zip(self.sources(x), self.loc_heads, self.conf_heads):
            # NCHW -> NHWC so that the boxes of one location are contiguous, in default-box order
            locs.append(loc_head(src).transpose(0, 2, 3, 1).reshape(n, -1, 4))
            confs.append(conf_head(src).transpose(0, 2, 3, 1).reshape(n, -1, self.config.num_classes))
        return concatenate(locs, axis=1), concatenate(confs, axis=1)

    def loss(self, outputs: tuple[Tensor, Tensor], gt_boxes: list[Any], gt_labels: list[Any],
             neg_pos_ratio: float = 3.0, alpha: float = 1.0) -> tuple[Tensor, Tensor]:
        """(localisation loss, confidence loss) of ``outputs = model(images)`` against a batch's ground truth.

        gt_boxes: per image (G, 4) corners normalized to [0, 1]; gt_labels: per image (G,) in 1..C-1.
        The ground truth is matched to the default boxes, then the MultiBox loss (hard negative mining
        with ``neg_pos_ratio``, ``alpha`` weighting the localisation term) compares.
        """
        loc, conf = outputs
        loc_t, conf_t = match_batch(gt_boxes, gt_labels, self.default_boxes, variances=self.config.variances)
        return MultiBoxLoss(neg_pos_ratio=neg_pos_ratio, alpha=alpha)(loc, conf, loc_t, conf_t)

    def detect(self, images: Any, conf_threshold: float = 0.01, nms_threshold: float = 0.45,
               top_k: int = 200) -> list[Detections]:
        """Detections for a normalized batch ``images`` (N, 3, S, S): one ``Detections`` per image.

        Boxes are corners normalized to [0, 1], labels in 1..C-1, scores are softmax probabilities.
        Runs in eval mode without building a graph; the previous train/eval mode is restored.
        """
        was_training = self.training
        self.eval()
        try:
            with no_grad():
                loc, conf = self(images)
        finally:
            self.train(was_training)
        return detect(loc.data, conf.data, self.default_boxes, self.config.variances,
                      conf_threshold=conf_threshold, nms_threshold=nms_threshold, top_k=top_k)


def ssd300(num_classes: int = 21, background_prior: float | None = None) -> SSD:
    """SSD300 as released by the authors (VGG16, 6 source maps, 8732 default boxes)."""
    return SSD(SSDConfig.ssd300(num_classes=num_classes), background_prior=background_prior)


def ssd512(num_classes: int = 21, background_prior: float | None = None) -> SSD:
    """SSD512 as released (7 source maps, 24564 default boxes)."""
    return SSD(SSDConfig.ssd512(num_classes=num_classes), background_prior=background_prior)


def ssd_mini(num_classes: int = 8, background_prior: float | None = None) -> SSD:
    """The small preset a class trains on a CPU: same topology, 160 px input, 1/8 widths, BatchNorm."""
    return SSD(SSDConfig.mini(num_classes=num_classes), background_prior=background_prior)
