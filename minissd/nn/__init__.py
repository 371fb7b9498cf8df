"""Neural-network building blocks: modules, layers, functional ops, initialisation, checkpoints.

    import minissd.nn.functional as F
    from minissd.nn import Module, Sequential, Conv2d, MaxPool2d, ReLU, L2Norm

One idea per file: ``conv.py`` (im2col convolution, textbook and fast), ``pool.py`` (max pooling),
``activation.py``, ``norm.py`` (L2Norm, batch norm), ``losses.py`` (smooth L1, cross-entropy),
``layers.py`` (the Modules around them), ``module.py`` (Module, Parameter, containers), ``init.py``,
``serialization.py`` (.npz checkpoints), ``workspace.py`` (buffers, chunks and threads of the fast
paths); ``functional.py`` gathers the functions as ``F``.
"""

from . import functional, init
from .layers import BatchNorm2d, Conv2d, L2Norm, MaxPool2d, ReLU
from .module import IncompatibleKeys, Module, ModuleList, Parameter, Sequential
from .serialization import load, load_npz, save, save_npz

__all__ = [
    "BatchNorm2d",
    "Conv2d",
    "IncompatibleKeys",
    "L2Norm",
    "MaxPool2d",
    "Module",
    "ModuleList",
    "Parameter",
    "ReLU",
    "Sequential",
    "functional",
    "init",
    "load",
    "load_npz",
    "save",
    "save_npz",
]
