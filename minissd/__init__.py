"""minissd: SSD (Single Shot MultiBox Detector) from scratch on NumPy, with a CuPy GPU backend.

Start with ``minissd demo`` on the command line, the notebooks in ``notebooks/``, or::

    import minissd
    minissd.set_backend("numpy")     # or "cupy"
    from minissd import Tensor, no_grad
"""

import os as _os

# One BLAS thread unless the user chose otherwise (it only takes effect when minissd is imported before
# NumPy, as by the `minissd` command). Measured with benchmarks/bench_mini.py on 2 shared cores: ssd_mini
# forward + backward at batch 32 took 19.2 s with OpenBLAS's 2 threads and 1.75 s with 1, because the two
# threads meet at a barrier hundreds of times per long GEMM and wait whenever another job holds a core.
_os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from .autograd import Tensor, no_grad  # noqa: E402
from .backend import get_backend, set_backend, to_numpy  # noqa: E402
from .backend import seed as seed  # noqa: E402

__version__ = "0.1.0"

__all__ = ["Tensor", "__version__", "get_backend", "no_grad", "seed", "set_backend", "to_numpy"]
