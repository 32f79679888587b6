"""scipy's functions on Tensors, for those that numpy's dispatch cannot reach.

scipy's ufuncs (``scipy.special.erf``, ``gammaln``, ``expit``, ...) see a Tensor
through ``__array_ufunc__`` and record, like numpy's. Its Python-level functions
(``scipy.linalg.expm``, ``scipy.signal.convolve``, ``scipy.special.logsumexp``,
``scipy.stats.norm.logpdf`` and the like) convert their arguments with
``np.asarray``, so a Tensor passed to them loses its tape. ``tapegrad.scipy.linalg``,
``.signal``, ``.special`` and ``.stats`` provide the differentiable ones under the
same names and signatures, as ``autograd.scipy`` does for HIPS autograd users: scipy's
defaults too (``special.softmax(x, axis=None)`` is over every element, where
``tapegrad.softmax`` takes the last axis). ``import tapegrad`` does not import scipy:
these functions import it when first called, where they need it.

Example:
    >>> import numpy as np
    >>> import tapegrad as tg
    >>> from tapegrad.scipy import linalg, signal, special
    >>> x = linalg.solve_triangular(tg.Tensor(np.array([[2.0, 0.0], [1.0, 1.0]])),
    ...                             np.array([2.0, 2.0]), lower=True)
    >>> x.data
    array([1., 1.])
    >>> signal.convolve(tg.Tensor(np.ones((2, 2))), np.ones((1, 2))).data
    array([[1., 2., 1.],
           [1., 2., 1.]])
    >>> special.logsumexp(tg.Tensor([0.0, 0.0])).data.round(6)
    np.float64(0.693147)
"""

from . import linalg, signal, special, stats

__all__ = ["linalg", "signal", "special", "stats"]
