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
    np.maximum: _CODE["maximum"],
    np.minimum: _CODE["minimum"],
}
# What the native __array_ufunc__ answers itself (Note [numpy dispatch],
# csrc/numpy_dispatch.cpp): a plain call of one of these; the rest comes to
# array_ufunc below.
UFUNC_CODES = {**_UNARY, **_BINARY, np.matmul: _CODE["matmul"]}

# Comparisons look at values and record nothing, as the Tensor operators do.
_COMPARISONS = {np.less, np.less_equal, np.greater, np.greater_equal, np.equal, np.not_equal}


def _values(inputs: tuple) -> list:
    from .tensor import Tensor

    return [x.data if isinstance(x, Tensor) else x for x in inputs]


def array_ufunc(ufunc: np.ufunc, method: str, inputs: tuple, kwargs: dict) -> Any:
    """Dispatch a numpy ufunc call that involves a Tensor (what the native fast path leaves)."""
    if method == "__call__" and ufunc in _COMPARISONS:
        return ufunc(*_values(inputs), **kwargs)
    if method == "__call__" and ufunc is np.matmul and not kwargs:
        return array_ops.matmul(*inputs)
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


def _functions() -> dict:
    ops = array_ops
    return {
        np.sum: ops.sum, np.mean: ops.mean, np.max: ops.max, np.min: ops.min,
        np.amax: ops.max, np.amin: ops.min, np.prod: ops.prod, np.var: ops.var,
        np.std: ops.std, np.dot: ops.dot, np.outer: ops.outer, np.einsum: ops.einsum,
        np.reshape: ops.reshape, np.transpose: ops.transpose, np.swapaxes: ops.swapaxes,
        np.expand_dims: ops.expand_dims, np.squeeze: ops.squeeze,
        np.broadcast_to: ops.broadcast_to, np.concatenate: ops.concatenate,
        np.stack: ops.stack, np.split: ops.split, np.where: ops.where, np.clip: ops.clip,
        np.matmul: ops.matmul,
    }


_FUNCTIONS: dict = {}


def array_function(func: Any, args: tuple, kwargs: dict) -> Any:
    """Dispatch a numpy function call that involves a Tensor to tapegrad's own."""
    if not _FUNCTIONS:
        _FUNCTIONS.update(_functions())
    ours = _FUNCTIONS.get(func)
    name = getattr(func, "__name__", repr(func))
    if ours is None:
        raise TypeError(
            f"tapegrad cannot differentiate numpy.{name} on a Tensor yet. Use tapegrad's own "
            "operators and functions, or call it on t.data to compute without gradients."
        )
    if func is np.reshape and "newshape" in kwargs:  # numpy < 2.1 spelling
        kwargs = {**kwargs, "shape": kwargs.pop("newshape")}
    if func is np.clip:
        kwargs = {("a_min" if k == "min" else "a_max" if k == "max" else k): v
                  for k, v in kwargs.items()}
    try:
        return ours(*args, **kwargs)
    except TypeError as error:
        if "unexpected keyword argument" in str(error):
            raise TypeError(f"tapegrad's numpy.{name} on Tensors does not take "
                            f"{sorted(kwargs)}: {error}") from None
        raise


from . import array_ops  # noqa: E402  (array_ops needs tensor, which imports this lazily)

_core.set_ufunc_dispatch(UFUNC_CODES, array_ufunc)
