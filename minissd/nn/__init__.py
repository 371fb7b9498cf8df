"""Neural-network building blocks: modules, layers, functional ops, initialisation, checkpoints.

    import minissd.nn.functional as F
    from minissd.nn import Module, Sequential, Conv2d, MaxPool2d, ReLU, L2Norm
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
