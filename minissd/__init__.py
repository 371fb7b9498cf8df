"""minissd: SSD (Single Shot MultiBox Detector) from scratch on NumPy, with a CuPy GPU backend.

Start with ``minissd demo`` on the command line, the notebooks in ``notebooks/``, or::

    import minissd
    minissd.set_backend("numpy")     # or "cupy"
    from minissd import Tensor, no_grad
"""

from .autograd import Tensor, no_grad
from .backend import get_backend, set_backend, to_numpy
from .backend import seed as seed

__version__ = "0.1.0"

__all__ = ["Tensor", "__version__", "get_backend", "no_grad", "seed", "set_backend", "to_numpy"]
