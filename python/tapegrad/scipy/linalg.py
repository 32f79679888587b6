"""scipy.linalg's functions on Tensors, differentiable (scipy's own cannot see a Tensor).

Same names and signatures as scipy.linalg; stacks of matrices ``(..., n, n)``
too. scipy is imported when a function first needs it (``expm``, ``sqrtm``,
``solve_sylvester``; ``solve_triangular`` uses scipy's solver where scipy is
installed and numpy's otherwise). Each gradient can be differentiated again.

Example:
    >>> import numpy as np
    >>> import tapegrad as tg
    >>> from tapegrad.scipy.linalg import expm
    >>> t = tg.Tensor(np.array([[0.0, 1.0], [0.0, 0.0]]))
    >>> expm(t).data
    array([[1., 1.],
           [0., 1.]])
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _core
from .._args import compared
from .._core import TensorBase
from ..catalogue import composite, wraps_op

__all__ = ["cho_solve", "expm", "solve_sylvester", "solve_triangular", "sqrtm"]

_CODE = _core.OP_CODES
_array_op = _core.array_op

_TRANS = {0: False, 1: True, 2: True, "N": False, "T": True, "C": True}


def _check_finite(op: str, *arrays: Any) -> None:
    for x in arrays:
        # Below inf and above -inf (NaN is neither): two guards under compile, so a
        # replay on values that are not finite raises as scipy's check does.
        finite = (compared(x, "<", np.inf) & compared(x, ">", -np.inf) if isinstance(x, TensorBase)
                  else np.isfinite(np.asarray(x)))
        if not finite.all():
            raise ValueError(f"{op}: array must not contain infs or NaNs (as scipy's; pass "
                             "check_finite=False to skip the check)")


@wraps_op("solve_triangular")
def solve_triangular(a: Any, b: Any, trans: Any = 0, lower: bool = False,
                     unit_diagonal: bool = False, overwrite_b: bool = False,
                     check_finite: bool = True) -> Any:
    """As ``scipy.linalg.solve_triangular``: ``trans`` 0/'N' solves ``a @ x = b``, 1/'T' (and
    2/'C', the same for real matrices) ``a.T @ x = b``. Only the ``lower`` (else upper)
    triangle of ``a`` is read, without its diagonal when ``unit_diagonal``; ``a``'s gradient
    is zero elsewhere. ``b`` is a vector when it has one axis, else a stack of matrices;
    batch axes broadcast. ``overwrite_b`` is accepted and ignored (values on a tape are
    never overwritten).

    Example:
        >>> import numpy as np
        >>> import tapegrad as tg
        >>> from tapegrad.scipy.linalg import solve_triangular
        >>> solve_triangular(tg.Tensor(np.array([[2.0, 0.0], [1.0, 1.0]])), np.array([4.0, 3.0]),
        ...                  lower=True).data
        array([2., 1.])
    """
    del overwrite_b
    if trans not in _TRANS:
        raise ValueError(f"solve_triangular: trans must be 0, 1, 2, 'N', 'T' or 'C', got {trans!r}")
    if check_finite:
        _check_finite("solve_triangular", a, b)
    params = (_TRANS[trans], bool(lower), bool(unit_diagonal))
    return _array_op(_CODE["solve_triangular"], (a, b), params)


@composite(doc="The solution of A @ x = b from the Cholesky factor c of A.", arity=2)
def cho_solve(c_and_lower: tuple, b: Any, overwrite_b: bool = False,
              check_finite: bool = True) -> Any:
    """As ``scipy.linalg.cho_solve``: ``c_and_lower`` is ``(c, lower)``: ``A = c @ c.T`` when
    ``lower``, else ``c.T @ c``. Two triangular solves, so gradients flow to ``c`` (on the
    triangle read) and to ``b``.

    Example:
        >>> import numpy as np
        >>> import tapegrad as tg
        >>> from tapegrad.scipy.linalg import cho_solve
        >>> c = tg.linalg.cholesky(tg.Tensor(np.array([[4.0, 2.0], [2.0, 5.0]])))
        >>> cho_solve((c, True), np.array([6.0, 7.0])).data
        array([1., 1.])
    """
    if not isinstance(c_and_lower, (tuple, list)) or len(c_and_lower) != 2:
        raise TypeError("cho_solve: the first argument must be the pair (c, lower), as "
                        f"scipy.linalg.cho_factor returns; got {type(c_and_lower).__name__}")
    c, lower = c_and_lower
    if check_finite:
        _check_finite("cho_solve", c, b)
    if lower:
        y = solve_triangular(c, b, lower=True, check_finite=False)
        return solve_triangular(c, y, trans=1, lower=True, check_finite=False)
    y = solve_triangular(c, b, trans=1, lower=False, check_finite=False)
    return solve_triangular(c, y, lower=False, check_finite=False)


@wraps_op("expm")
def expm(A: Any) -> Any:
    """As ``scipy.linalg.expm``. The gradient is the adjoint Frechet derivative, read off the
    exponential of the block matrix ``[[A.T, g], [0, A.T]]`` (Mathias 1996), as PyTorch's.

    Example:
        >>> import numpy as np
        >>> import tapegrad as tg
        >>> from tapegrad.scipy.linalg import expm
        >>> a = tg.Tensor(np.zeros((2, 2)))
        >>> tg.grad(expm(a).sum(), a)[0].data
        array([[1., 1.],
               [1., 1.]])
    """
    return _array_op(_CODE["expm"], (A,), ())


@wraps_op("sqrtm")
def sqrtm(A: Any) -> Any:
    """As ``scipy.linalg.sqrtm``. Only real square roots: a matrix with negative real
    eigenvalues (whose root is complex) raises ValueError. The gradient solves the Sylvester
    equation ``X.T @ G + G @ X.T = g`` with ``X = sqrtm(A)``: it exists when no two
    eigenvalues of ``X`` sum to zero, so not at a singular ``A``.

    Example:
        >>> import numpy as np
        >>> import tapegrad as tg
        >>> from tapegrad.scipy.linalg import sqrtm
        >>> sqrtm(tg.Tensor(np.array([[4.0, 0.0], [0.0, 9.0]]))).data
        array([[2., 0.],
               [0., 3.]])
    """
    return _array_op(_CODE["sqrtm"], (A,), ())


@wraps_op("solve_sylvester")
def solve_sylvester(a: Any, b: Any, q: Any) -> Any:
    """As ``scipy.linalg.solve_sylvester``. Gradients flow to ``a``, ``b`` and ``q``; both
    exist when no eigenvalue of ``a`` plus one of ``b`` is zero (else the equation has no
    unique solution).

    Example:
        >>> import numpy as np
        >>> import tapegrad as tg
        >>> from tapegrad.scipy.linalg import solve_sylvester
        >>> eye = np.eye(2)
        >>> solve_sylvester(tg.Tensor(eye), eye, np.array([[2.0, 4.0], [6.0, 8.0]])).data
        array([[1., 2.],
               [3., 4.]])
    """
    return _array_op(_CODE["solve_sylvester"], (a, b, q), ())
