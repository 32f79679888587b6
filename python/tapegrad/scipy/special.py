"""scipy.special on Tensors: ``logsumexp``, ``softmax``, ``log_softmax`` and the special ufuncs.

The ufuncs (``erf``, ``erfc``, ``erfinv``, ``erfcinv``, ``gamma``, ``gammaln``,
``digamma``/``psi``, ``polygamma``, ``expit``, ``logit``, ``xlogy``, ``xlog1py``,
``ndtr``, ``log_ndtr``, ``ndtri``, ``i0``, ``i1``, ``ive``, ``rgamma``, ``beta``,
``betaln``) are tapegrad's ops under scipy's names, taken from the op catalogue:
scipy's own ufuncs record on Tensors too. ``polygamma`` is here because scipy's
is a Python function that cannot see a Tensor.

Example:
    >>> import numpy as np
    >>> import tapegrad as tg
    >>> from tapegrad.scipy import special
    >>> x = tg.Tensor(np.array([1.0, 2.0, 3.0]))
    >>> special.softmax(x).data.round(4)
    array([0.09  , 0.2447, 0.6652])
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _core, array_ops, catalogue
from .._args import normal_axes, shape_of
from .._core import TensorBase
from ..catalogue import composite
from ..special_functions import ive, polygamma

__all__ = ["ive", "log_softmax", "logsumexp", "polygamma", "softmax"]  # and the ufuncs, below

_CODE = _core.OP_CODES


def _value(x: Any) -> Any:
    return x.data if isinstance(x, TensorBase) else np.asarray(x, dtype=float)


@composite(doc="log(sum(b * exp(a))) over axis, as scipy.special.logsumexp, without overflow.")
def logsumexp(a: Any, axis: Any = None, b: Any = None, keepdims: bool = False,
              return_sign: bool = False) -> Any:
    """scipy's signature. ``b`` (weights, a Tensor or a constant) may be negative or zero;
    where the weighted sum is negative the result is NaN unless ``return_sign=True``,
    which returns ``(log|sum|, sign)`` with the sign as a plain ndarray (not differentiable).

    Example:
        >>> import tapegrad as tg
        >>> from tapegrad.scipy.special import logsumexp
        >>> out, sign = logsumexp(tg.Tensor([1.0, 2.0]), b=[1.0, -1.0], return_sign=True)
        >>> float(out.data).__round__(6), float(sign)
        (1.541325, -1.0)
    """
    if b is None and not return_sign:
        return array_ops.logsumexp(a, axis=axis, keepdims=keepdims)
    weights = 1.0 if b is None else b
    shape = np.broadcast_shapes(shape_of(a), shape_of(weights))
    axes = normal_axes(axis, len(shape), "logsumexp")
    # The shift m is a constant: log(sum(b exp(a - m))) + m does not depend on it.
    with np.errstate(invalid="ignore"):
        m = np.max(np.broadcast_to(_value(a), shape), axis=axes, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    total = array_ops.sum(weights * _call("exp", a - m), axis=axes, keepdims=True)
    sign = np.sign(_value(total))
    # log(0) = -inf and log(<0) = NaN, as scipy
    with np.errstate(divide="ignore", invalid="ignore"):
        out = _call("log", _call("abs", total) if return_sign else total) + m
    if not keepdims:
        out = array_ops.squeeze(out, axis=axes) if axes is not None else array_ops.reshape(out, ())
        sign = np.squeeze(sign, axis=axes) if axes is not None else sign.reshape(())
    return (out, sign) if return_sign else out


def _call(name: str, x: Any) -> Any:
    return catalogue.IMPLEMENTATIONS[name](x)


@composite(doc="exp(x) / sum(exp(x)) over axis, as scipy.special.softmax (None: every element).")
def softmax(x: Any, axis: Any = None) -> Any:
    """Example: ``tapegrad.scipy.special.softmax(logits, axis=1)``."""
    return _core.array_op(_CODE["softmax"], (x,),
                          (normal_axes(axis, len(shape_of(x)), "softmax"),))


@composite(doc="x - logsumexp(x) over axis, as scipy.special.log_softmax (None: every element).")
def log_softmax(x: Any, axis: Any = None) -> Any:
    """Example: ``tapegrad.scipy.special.log_softmax(logits, axis=1)``."""
    return _core.array_op(_CODE["log_softmax"], (x,),
                          (normal_axes(axis, len(shape_of(x)), "log_softmax"),))


def _ufuncs() -> dict[str, Any]:
    """scipy.special's names for tapegrad's elementwise ops (``expit``: sigmoid), from the
    catalogue's native entries (``ive``, an array op, is imported above)."""
    found = {}
    for op in catalogue.NATIVE.values():
        if op.kind != "elementwise" or not op.function:
            continue
        for path in op.numpy:
            if path.startswith("scipy.special."):
                found[path.rsplit(".", 1)[1]] = catalogue.IMPLEMENTATIONS[op.function]
    return found


globals().update(_ufuncs())
__all__ = sorted({*__all__, *_ufuncs()})
