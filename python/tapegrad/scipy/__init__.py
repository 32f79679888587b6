"""scipy's functions on Tensors, for those that numpy's dispatch cannot reach.

scipy's Python-level functions (``scipy.linalg.expm``, ``scipy.signal.convolve``
and the like) convert their arguments with ``np.asarray``, so a Tensor passed
to them loses its tape. ``tapegrad.scipy.linalg`` and ``tapegrad.scipy.signal``
provide the differentiable ones under the same names and signatures.
``import tapegrad`` does not import scipy: these functions import it when
first called.

Example:
    >>> import numpy as np
    >>> import tapegrad as tg
    >>> from tapegrad.scipy import linalg, signal
    >>> x = linalg.solve_triangular(tg.Tensor(np.array([[2.0, 0.0], [1.0, 1.0]])),
    ...                             np.array([2.0, 2.0]), lower=True)
    >>> x.data
    array([1., 1.])
    >>> signal.convolve(tg.Tensor(np.ones((2, 2))), np.ones((1, 2))).data
    array([[1., 2., 1.],
           [1., 2., 1.]])
"""

from . import linalg, signal

__all__ = ["linalg", "signal"]
