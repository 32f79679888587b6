"""numpy calls on Tensors: ufuncs that tapegrad can differentiate record; others refuse.

``np.log(t)``, ``np.sin(t)``, ``ndarray * t`` and the like reach
``Tensor.__array_ufunc__`` and become the same native ops as ``tapegrad.log``.
A numpy function or ufunc that tapegrad cannot differentiate raises TypeError
naming it, rather than silently computing on the bare values.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _core

_CODE = _core.OP_CODES

_UNARY = {
    np.negative: _CODE["negative"],
    np.absolute: _CODE["abs"],
    np.exp: _CODE["exp"],
    np.log: _CODE["log"],
    np.sqrt: _CODE["sqrt"],
    np.sin: _CODE["sin"],
    np.cos: _CODE["cos"],
    np.tan: _CODE["tan"],
    np.tanh: _CODE["tanh"],
}
_BINARY = {
    np.add: _CODE["add"],
    np.subtract: _CODE["sub"],
    np.multiply: _CODE["mul"],
    np.true_divide: _CODE["div"],
    np.power: _CODE["pow"],
}
# Comparisons look at values and record nothing, as the Tensor operators do.
_COMPARISONS = {np.less, np.less_equal, np.greater, np.greater_equal, np.equal, np.not_equal}


def _values(inputs: tuple) -> list:
    from .tensor import Tensor

    return [x.data if isinstance(x, Tensor) else x for x in inputs]


def array_ufunc(ufunc: np.ufunc, method: str, inputs: tuple, kwargs: dict) -> Any:
    """Dispatch a numpy ufunc call that involves a Tensor."""
    if method == "__call__" and ufunc in _COMPARISONS:
        return ufunc(*_values(inputs), **kwargs)
    code = _UNARY.get(ufunc) if len(inputs) == 1 else _BINARY.get(ufunc)
    if method != "__call__" or code is None or kwargs:
        what = f"numpy.{ufunc.__name__}" + ("" if method == "__call__" else f".{method}")
        extra = f" with {sorted(kwargs)}" if kwargs and code is not None else ""
        raise TypeError(
            f"tapegrad cannot differentiate {what}{extra} on a Tensor. Differentiable ufuncs: "
            f"{', '.join(sorted(u.__name__ for u in (*_UNARY, *_BINARY)))}. "
            "To compute without gradients, call it on t.data."
        )
    if len(inputs) == 1:
        return _core.apply_unary(code, inputs[0])
    return _core.apply_binary(code, inputs[0], inputs[1])


def array_function(func: Any, args: tuple, kwargs: dict) -> Any:
    """Dispatch a numpy function call that involves a Tensor (none are differentiable yet)."""
    name = getattr(func, "__name__", repr(func))
    raise TypeError(
        f"tapegrad cannot differentiate numpy.{name} on a Tensor yet. Use tapegrad's own "
        "operators and functions, or call it on t.data to compute without gradients."
    )
