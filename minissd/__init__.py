"""minissd: SSD (Single Shot MultiBox Detector) from scratch on NumPy, with a CuPy GPU backend.

Start with ``minissd demo`` on the command line, the notebooks in ``notebooks/``, or::

    import minissd
    minissd.set_backend("numpy")     # or "cupy"
    minissd.set_num_threads(4)       # CPU threads for BLAS and the copy loops (default: all cores)
    from minissd import Tensor, no_grad

Thread counts and their measured effect are discussed in docs/benchmarks.md.
"""

from .autograd import Tensor, no_grad
from .backend import get_backend, get_num_threads, set_backend, set_num_threads, to_numpy
from .backend import seed as seed

__version__ = "0.1.0"

__all__ = [
    "Tensor", "__version__", "get_backend", "get_num_threads", "no_grad", "seed", "set_backend",
    "set_num_threads", "to_numpy",
]
