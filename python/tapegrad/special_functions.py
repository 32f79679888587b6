"""The special functions whose native ops take a parameter: ``polygamma(n, x)`` and ``ive(v, z)``.

The other scipy.special ufuncs (``erf``, ``gammaln``, ``digamma``, ...) are
elementwise ops of the table (csrc/ops.hpp), functions of ``tapegrad`` like
``tapegrad.exp``. All are also in :mod:`tapegrad.scipy.special` under scipy's names.
"""

from __future__ import annotations

import operator
from typing import Any

import numpy as np

from . import _core
from ._core import TensorBase
from .catalogue import wraps_op

_CODE = _core.OP_CODES
_MAX_ORDER = 1 << 20  # as csrc/numeric.hpp's MAX_POLYGAMMA_ORDER: n! is infinite long before


@wraps_op("polygamma")
def polygamma(n: int, x: Any) -> Any:
    """``n`` is a constant integer >= 0 (not differentiated); ``x`` is differentiated, to any order.

    scipy.special.polygamma calls np.asarray on its argument and cannot see a
    Tensor: call this, or ``tapegrad.scipy.special.polygamma``, instead.

    Example:
        >>> import tapegrad as tg
        >>> round(float(tg.polygamma(1, tg.Tensor(1.0)).data), 12)  # pi**2 / 6
        1.644934066848
    """
    if isinstance(n, TensorBase):
        raise TypeError("polygamma: the order n is an integer constant, not a Tensor; pass an int")
    if isinstance(n, (float, np.floating)) and float(n).is_integer():
        n = int(n)
    try:
        order = operator.index(n)
    except TypeError:
        raise TypeError(f"polygamma: the order n must be an integer >= 0, got {n!r}") from None
    if not 0 <= order <= _MAX_ORDER:
        raise ValueError(f"polygamma: the order n must be an integer from 0 to {_MAX_ORDER}, "
                         f"got {order}")
    return _core.array_op(_CODE["polygamma"], (x,), (order,))


@wraps_op("ive")
def ive(v: Any, z: Any) -> Any:
    """scipy.special.ive on Tensors: ``z`` is differentiated; the order ``v`` is a constant.

    Its values come from scipy.special (imported at the first call), so the
    example needs scipy: ``tg.ive(0.5, tg.Tensor([1.0, 2.0]))`` is
    ``[0.344951, 0.276928]`` to six digits, and records.
    """
    if isinstance(v, TensorBase):
        raise TypeError("ive: the order v is not differentiated; pass a number or an ndarray "
                        "(v.data for a Tensor)")
    order = np.asarray(v, dtype=float)
    if not isinstance(v, np.ndarray):
        order = float(order) if order.ndim == 0 else order
    return _core.array_op(_CODE["ive"], (z,), (order,))
