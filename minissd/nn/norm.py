"""Normalization: L2Norm (SSD's conv4_3 rescaling) and batch normalization, as autograd Functions.

The layers (Modules holding the learned scales and the running statistics) are
:class:`minissd.nn.layers.L2Norm` and :class:`minissd.nn.layers.BatchNorm2d`; this file holds the
Functions and the functions :func:`l2_norm` and :func:`batch_norm`.
"""

from __future__ import annotations

from typing import Any

from .. import backend
from ..autograd import Function, Tensor
from .workspace import for_images, image_pieces

__all__ = ["BatchNormFunction", "L2NormFunction", "batch_norm", "l2_norm"]


def _tensor(x: Any) -> Tensor:
    return x if isinstance(x, Tensor) else Tensor(x)


class L2NormFunction(Function):
    """Scale each pixel's channel vector to unit length, then by a learned per-channel weight.

    forward:  r = sqrt(sum_c x_c^2 + eps);  xhat = x / r;  y = w[c] * xhat
    backward: dw = sum_{n,h,w} dy * xhat;  dx = (g - xhat * sum_c(g * xhat)) / r  with g = dy * w[c]
    (``eps`` sits inside the square root, so an all-zero pixel gives zeros instead of NaN.)
    """

    def forward(self, x: Any, w: Any, eps: float = 1e-10) -> Any:
        xp = backend.get_array_module(x)
        self.r = xp.sqrt((x * x).sum(axis=1, keepdims=True) + x.dtype.type(eps))  # (N, 1, H, W)
        self.xhat = x / self.r
        self.w = w
        return self.xhat * w.reshape(1, -1, 1, 1)

    def backward(self, grad: Any) -> tuple[Any, Any]:
        dw = (grad * self.xhat).sum(axis=(0, 2, 3))
        g = grad * self.w.reshape(1, -1, 1, 1)
        dx = (g - self.xhat * (g * self.xhat).sum(axis=1, keepdims=True)) / self.r
        return dx, dw


def l2_norm(x: Tensor | Any, weight: Tensor | Any, eps: float = 1e-10) -> Tensor:
    """L2-normalize ``x`` (N, C, H, W) over channels and multiply by ``weight`` (C,) (SSD's conv4_3)."""
    x, weight = _tensor(x), _tensor(weight)
    if x.ndim != 4:
        raise ValueError(f"l2_norm(x): expected a 4-D tensor (N, C, H, W), got shape {x.shape}")
    if weight.shape != (x.shape[1],):
        raise ValueError(f"l2_norm(weight): expected shape ({x.shape[1]},), got {weight.shape}")
    return L2NormFunction.apply(x, weight, eps=eps)


class BatchNormFunction(Function):
    """Batch normalization over (N, H, W) for each channel.

    training: mu, var = mean and biased variance of the batch;  xhat = (x - mu) / sqrt(var + eps)
              y = gamma * xhat + beta
              dx = (gamma / sqrt(var + eps)) * (dy - mean(dy) - xhat * mean(dy * xhat))
    eval:     mu, var are the running statistics (constants), so y is affine in x.

    Memory passes: every full-size (N, C, H, W) temporary costs a read and a write of the whole
    activation, and at 8-64 channels these layers are bound by that traffic. So the Function keeps
    the centred input ``xc = x - mu`` (not xhat: ``xhat = xc * invstd`` is folded into per-channel
    factors), sums products with ``einsum`` (no temporary for ``xc * xc`` or ``dy * xc``) and
    writes ``y = xc * (gamma * invstd) + beta`` and ``dx = dy * a + xc * b + c`` (a, b, c per
    channel) into their output arrays in place. Everything stays in the input's dtype.

    Threads: each pass works on groups of whole images (:func:`for_images`), the sums over the batch
    as one partial sum per group added afterwards.
    """

    def forward(self, x: Any, gamma: Any, beta: Any, mean: Any = None, var: Any = None,
                eps: float = 1e-5) -> Any:
        xp = backend.get_array_module(x)
        n, c = x.shape[:2]
        shape = (1, -1, 1, 1)
        pieces = image_pieces(x)
        self.train_stats = mean is None
        count = x.dtype.type(x.size // c)
        if self.train_stats:
            mean = sum(for_images(xp, lambda n0, n1, *_: x[n0:n1].sum(axis=(0, 2, 3)), pieces)) / count
        xc = xp.empty_like(x)

        def centre(n0: int, n1: int, *_: int) -> Any:
            xp.subtract(x[n0:n1], mean.reshape(shape).astype(x.dtype), out=xc[n0:n1])
            if self.train_stats:  # this group's sum of squares, while its xc is in the cache
                xc3 = xc[n0:n1].reshape(n1 - n0, c, -1)
                return xp.einsum("ncl,ncl->c", xc3, xc3)
            return None

        squares = for_images(xp, centre, pieces)
        if self.train_stats:
            var = sum(squares) / count
        self.invstd = (1 / xp.sqrt(var + eps)).astype(x.dtype)
        self.xc, self.gamma = xc, gamma
        self.batch_mean, self.batch_var = mean, var
        scale, y = (gamma * self.invstd).reshape(shape), xp.empty_like(x)

        def affine(n0: int, n1: int, *_: int) -> None:
            xp.multiply(xc[n0:n1], scale, out=y[n0:n1])
            y[n0:n1] += beta.reshape(shape)

        for_images(xp, affine, pieces)
        return y

    def backward(self, grad: Any) -> tuple[Any, Any, Any]:
        xp = backend.get_array_module(grad)
        shape = (1, -1, 1, 1)
        n, c = grad.shape[:2]
        pieces = image_pieces(grad)

        def sums(n0: int, n1: int, *_: int) -> tuple[Any, Any]:
            g3, xc3 = grad[n0:n1].reshape(n1 - n0, c, -1), self.xc[n0:n1].reshape(n1 - n0, c, -1)
            return g3.sum(axis=(0, 2)), xp.einsum("ncl,ncl->c", g3, xc3)

        parts = for_images(xp, sums, pieces)
        dbeta = sum(p[0] for p in parts)
        dgamma = sum(p[1] for p in parts) * self.invstd
        scale = self.gamma * self.invstd
        m = grad.dtype.type(grad.size // c)
        # dx = scale * (dy - dbeta/m - xhat * dgamma/m), with xhat = xc * invstd
        k_xc = (scale * self.invstd * dgamma / m).reshape(shape)
        k_0 = (scale * dbeta / m).reshape(shape)
        dx = xp.empty_like(grad)

        def input_grad(n0: int, n1: int, *_: int) -> None:
            d = dx[n0:n1]
            xp.multiply(grad[n0:n1], scale.reshape(shape), out=d)
            if self.train_stats:
                d -= self.xc[n0:n1] * k_xc
                d -= k_0

        for_images(xp, input_grad, pieces)
        return dx, dgamma, dbeta


def batch_norm(x: Tensor | Any, weight: Tensor | Any, bias: Tensor | Any, running_mean: Any = None,
               running_var: Any = None, training: bool = True, momentum: float = 0.1,
               eps: float = 1e-5) -> Tensor:
    """Batch normalization of ``x`` (N, C, H, W) with per-channel ``weight`` and ``bias`` (C,).

    In training the batch statistics are used and, when given, the arrays ``running_mean`` and
    ``running_var`` (C,) are updated in place: ``r = (1 - momentum) r + momentum * batch`` (the variance
    unbiased, as in PyTorch). In evaluation the running statistics are used.
    """
    x, weight, bias = _tensor(x), _tensor(weight), _tensor(bias)
    if x.ndim != 4:
        raise ValueError(f"batch_norm(x): expected a 4-D tensor (N, C, H, W), got shape {x.shape}")
    c = x.shape[1]
    if weight.shape != (c,) or bias.shape != (c,):
        raise ValueError(f"batch_norm: weight and bias must have shape ({c},), "
                         f"got {weight.shape} and {bias.shape}")
    if not training:
        if running_mean is None or running_var is None:
            raise ValueError("batch_norm(training=False): running_mean and running_var are required")
        return BatchNormFunction.apply(x, weight, bias, mean=running_mean, var=running_var, eps=eps)
    m = x.size // c
    if m < 2:
        raise ValueError(f"batch_norm: training needs more than one value per channel, got shape {x.shape}")
    out = BatchNormFunction.apply(x, weight, bias, eps=eps)
    if running_mean is not None and running_var is not None:
        fn = out._ctx
        if fn is None:  # no graph (no_grad): recompute the statistics directly
            mean, var = x.data.mean(axis=(0, 2, 3)), x.data.var(axis=(0, 2, 3))
        else:
            mean, var = fn.batch_mean, fn.batch_var
        running_mean *= 1 - momentum
        running_mean += momentum * mean.astype(running_mean.dtype)
        running_var *= 1 - momentum
        running_var += momentum * (var * (m / (m - 1))).astype(running_var.dtype)
    return out
