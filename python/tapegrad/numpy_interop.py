"""numpy calls on Tensors: what tapegrad can differentiate records; the rest refuses.

``np.log(t)``, ``np.sin(t)``, ``ndarray * t``, ``np.sum(t)`` and the like reach
``Tensor.__array_ufunc__`` or ``Tensor.__array_function__`` and become the
same ops as ``tapegrad.log`` and ``tapegrad.sum``: the op catalogue
(catalogue.py) says which numpy and scipy callables each op answers. A numpy
function or ufunc that tapegrad cannot differentiate raises TypeError naming
it, rather than silently computing on the bare values.
"""

from __future__ import annotations

import inspect
import sys
from typing import Any

import numpy as np

from . import _core, catalogue
from ._args import compared, layout_of
from ._core import TensorBase


def _values(inputs: Any) -> list:
    return [x.data if isinstance(x, TensorBase) else x for x in inputs]


# Values-only callables that read a layout (shape, dtype) and no value: of every
# argument, or of the first (the `like` array; full_like's fill is a value).
# A layout keys compile's trace, so reading it is no escape.
_LAYOUT_OF_ALL = {np.shape, np.ndim, np.size, np.result_type, np.iscomplexobj, np.isrealobj}
_LAYOUT_OF_FIRST = {np.zeros_like, np.ones_like, np.full_like, np.empty_like}

# Comparison ufuncs as Tensor comparisons, which compile's trace records as guards:
# (the operator with the Tensor on the left, the operator with it on the right).
_COMPARISON_UFUNCS = {np.less: ("<", ">"), np.less_equal: ("<=", ">="), np.equal: ("==", "=="),
                      np.not_equal: ("!=", "!="), np.greater: (">", "<"),
                      np.greater_equal: (">=", "<=")}


def _guarded_test(ufunc: np.ufunc, inputs: tuple) -> Any:
    """A comparison, isnan, isinf or isfinite of a Tensor as guarded comparisons (numpy's
    value and type); None for any other call, which reads the values."""
    if ufunc in _COMPARISON_UFUNCS and len(inputs) == 2:
        a, b = inputs
        on_left = isinstance(a, TensorBase)
        outcome = compared(a if on_left else b, _COMPARISON_UFUNCS[ufunc][0 if on_left else 1],
                           b if on_left else a)
    elif ufunc is np.isnan and len(inputs) == 1:
        outcome = compared(inputs[0], "!=", inputs[0])  # NaN alone differs from itself
    elif ufunc is np.isinf and len(inputs) == 1:
        outcome = compared(inputs[0], "==", np.inf) | compared(inputs[0], "==", -np.inf)
    elif ufunc is np.isfinite and len(inputs) == 1:  # NaN is neither below inf nor above -inf
        outcome = compared(inputs[0], "<", np.inf) & compared(inputs[0], ">", -np.inf)
    else:
        return None
    return outcome[()]  # a 0-d outcome as numpy's bool scalar


def _in_place_on_array(inputs: tuple, kwargs: dict) -> bool:
    """Whether this is ``a op= t`` on an ndarray ``a``: out is the first input."""
    out = kwargs.get("out")
    return (len(kwargs) == 1 and isinstance(out, tuple) and len(out) == 1
            and isinstance(out[0], np.ndarray) and len(inputs) == 2 and inputs[0] is out[0])


def array_ufunc(ufunc: np.ufunc, method: str, inputs: tuple, kwargs: dict) -> Any:
    """Dispatch a numpy ufunc call that involves a Tensor (what the native fast path leaves)."""
    # Comparisons, floor, isnan, ... look at values and record nothing (catalogue.VALUES_ONLY).
    if method == "__call__" and catalogue.is_values_only(ufunc):
        guarded = None if kwargs else _guarded_test(ufunc, inputs)
        return guarded if guarded is not None else ufunc(*_values(inputs), **kwargs)
    found = catalogue.ufunc_implementation(ufunc)
    if method == "__call__" and found is not None and _in_place_on_array(inputs, kwargs):
        # `a += t` on an ndarray a: numpy calls add(a, t, out=(a,)) and binds the
        # name to what it returns. That is the recorded a + t, so that `loss =
        # np.zeros(()); loss += term` accumulates a loss as `loss = loss + term`,
        # as PyTorch users write it (and as `t += x` does on a Tensor with
        # history); a also receives the value, as out= promises, so other
        # names for it see the same numbers (numpy's shape and casting rules).
        result = found[1](*inputs)
        np.copyto(kwargs["out"][0], result.data, casting="same_kind")
        return result
    if method != "__call__" or found is None or kwargs or len(inputs) != ufunc.nin:
        what = public_name(ufunc) + ("" if method == "__call__" else f".{method}")
        extra = f" with {sorted(kwargs)}" if kwargs and found is not None else ""
        raise TypeError(
            f"tapegrad cannot differentiate {what}{extra} on a Tensor. Differentiable ufuncs: "
            f"{', '.join(catalogue.differentiable_ufunc_names())}. {HOW_TO_DIFFERENTIATE}"
        )
    return found[1](*inputs)


# What a refusal says to do (README, "API so far", the "Custom ops" item).
HOW_TO_DIFFERENTIATE = (
    "To differentiate it anyway, write it as a tapegrad.Function: forward computes it on "
    "the values, backward returns its derivative times the incoming gradient (see "
    "help(tapegrad.Function), and 'Custom ops' in the README's 'API so far'). To compute "
    "it without a gradient, call it on t.detach().numpy()."
)

# Private modules numpy and scipy define their functions in, and where users meet them.
_PUBLIC_ROOTS = ("numpy", "numpy.linalg", "numpy.fft", "numpy.random", "scipy.special",
                 "scipy.linalg", "scipy.signal", "scipy.stats")


def public_name(func: Any) -> str:
    """The name a user calls ``func`` by: numpy.linalg.solve, scipy.special.ndtr.

    A function's ``__module__`` without its private parts (numpy.linalg._linalg ->
    numpy.linalg), checked to hold it; a ufunc, which has no ``__module__``, is
    looked up in numpy, then in scipy.special if it is loaded.

    Example:
        >>> import numpy as np
        >>> public_name(np.linalg.solve), public_name(np.arctan)
        ('numpy.linalg.solve', 'numpy.arctan')
    """
    name = getattr(func, "__name__", None) or repr(func)
    qualname = getattr(func, "__qualname__", None) or name
    module = getattr(func, "__module__", None) or ""
    parts = module.split(".")
    public = []
    for part in parts:
        if part.startswith("_"):
            break
        public.append(part)
    candidates = [".".join(public)] if public else []
    candidates += [m for m in _PUBLIC_ROOTS if m not in candidates]
    for candidate in candidates:
        loaded = sys.modules.get(candidate)
        if loaded is not None and getattr(loaded, name, None) is func:
            return f"{candidate}.{name}"
    return f"{module}.{qualname}" if module else name


# Reductions whose numpy signature has more positional parameters than
# tapegrad's (np.sum(a, axis, dtype, out, keepdims)): their numpy calls are
# passed on by name, so that np.sum(t, 0, None, None, True) means keepdims.
_NUMPY_ORDER = {"sum", "mean", "prod", "max", "min", "var", "std"}
_SIGNATURES: dict[Any, inspect.Signature] = {}


def _by_name(func: Any, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    signature = _SIGNATURES.get(func)
    if signature is None:
        signature = _SIGNATURES[func] = inspect.signature(func)
    try:
        bound = signature.bind(*args, **kwargs)
    except TypeError as error:
        raise TypeError(f"{public_name(func)}: {error}") from None
    (_, first), *rest = bound.arguments.items()
    return (first,), dict(rest)


def array_function(func: Any, args: tuple, kwargs: dict) -> Any:
    """Dispatch a numpy function call that involves a Tensor to tapegrad's own."""
    if catalogue.is_values_only(func):  # argmax, round, searchsorted: on values, not recorded
        if func in _LAYOUT_OF_ALL or func in _LAYOUT_OF_FIRST:
            first, rest = layout_of(args[0]), args[1:]
            if func in _LAYOUT_OF_ALL:
                rest = tuple(layout_of(a) for a in rest)
            return func(first, *_values(rest), **dict(zip(kwargs, _values(kwargs.values()))))
        return func(*_values(args), **dict(zip(kwargs, _values(kwargs.values()))))
    found = catalogue.function_implementation(func)
    if found is None:
        raise TypeError(
            f"tapegrad cannot differentiate {public_name(func)} on a Tensor yet: it has no "
            f"entry in tapegrad's op catalogue. {HOW_TO_DIFFERENTIATE}"
        )
    op, ours = found
    if op.function in _NUMPY_ORDER:
        args, kwargs = _by_name(func, args, kwargs)
    if func is np.reshape and "newshape" in kwargs:  # numpy < 2.1 spelling
        kwargs = {**kwargs, "shape": kwargs.pop("newshape")}
    try:
        return ours(*args, **kwargs)
    except TypeError as error:
        if "unexpected keyword argument" in str(error):
            raise TypeError(f"tapegrad's {public_name(func)} on Tensors does not take "
                            f"{sorted(kwargs)}: {error}") from None
        raise


def install_dispatch() -> None:
    """Hand numpy's ufunc calls on Tensors to the native core: the ufuncs of the catalogue's
    native ops it answers itself, and :func:`array_ufunc` the rest.

    tapegrad/__init__.py calls it once, after the catalogue is complete.

    Example: ``np.exp(t)`` on a Tensor ``t`` is one native call once this has run.
    """
    _core.set_ufunc_dispatch(catalogue.ufunc_codes(), array_ufunc)
