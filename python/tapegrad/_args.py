"""What the op modules share: reading their arguments, which are Tensors or plain values.

The op modules sit below ``Tensor`` (tapegrad/__init__.py draws the layers), so
they recognise a Tensor by the native type, ``_core.TensorBase``, of which
``Tensor`` is the one subclass; they read only what that type has (``data``,
``shape``, ``ndim``, the arithmetic operators) and call ops for everything else.

Example:
    >>> from tapegrad._args import normal_axes, one_axis, shape_of
    >>> normal_axes((-1, 0), 3, "sum"), one_axis(-1, 2, "softmax"), shape_of([[1.0, 2.0]])
    ((0, 2), (1,), (1, 2))
"""

from __future__ import annotations

import builtins
import functools
import operator
from typing import Any, Callable, TypeVar

import numpy as np

from . import _core
from ._core import TensorBase

F = TypeVar("F", bound=Callable[..., Any])

UNSET: Any = object()
"""numpy's ``<no value>``: a keyword that was not given (``initial=``, ``where=``)."""

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
"""The dtypes a Tensor holds."""


def shape_of(x: Any) -> tuple[int, ...]:
    """The shape of a Tensor, an ndarray, a number or a nested list."""
    return x.shape if isinstance(x, TensorBase) else np.shape(x)


def value_of(x: Any) -> Any:
    """A Tensor's value (a float or an ndarray); anything else as it is."""
    return x.data if isinstance(x, TensorBase) else x


def layout_of(x: Any) -> Any:
    """A Tensor's value read for its layout only (shape, dtype, size); anything else as it is.

    No escape check: while ``tapegrad.compile`` traces, reading the numbers
    would make them a constant of the trace, but a layout is part of the
    trace's key, so it cannot change between replays.
    """
    return _core.peek(x) if isinstance(x, TensorBase) else x


def dtype_of(x: Any) -> np.dtype:
    """The dtype of a Tensor's value (float64 for a float) or of a plain value."""
    return np.result_type(layout_of(x))


_COMPARISONS = {"<": 0, "<=": 1, "==": 2, "!=": 3, ">": 4, ">=": 5}  # Python's rich codes
_PLAIN_COMPARISONS = {"<": operator.lt, "<=": operator.le, "==": operator.eq,
                      "!=": operator.ne, ">": operator.gt, ">=": operator.ge}


def compared(x: Any, op: str, other: Any) -> np.ndarray:
    """``x op other`` on values (``op`` one of ``< <= == != > >=``): a new boolean array.

    Where ``x`` is a Tensor, inside ``tapegrad.compile``'s trace this is a guard
    (Note [Compiled tapes], csrc/replay.hpp): a replay whose values compare
    otherwise traces again, so a mask or a check an op makes from values never
    goes stale. The result is a copy: the guard keeps the outcome it saw.
    """
    if isinstance(x, TensorBase):
        outcome = _core.compare(x, other, _COMPARISONS[op])
    else:
        outcome = _PLAIN_COMPARISONS[op](np.asarray(x), other)
    return np.array(outcome, dtype=bool)


def truth_of(condition: Any) -> np.ndarray:
    """A condition (numpy's ``where``) as booleans: a Tensor's values compared with 0 (a
    guard inside compile's trace), anything else as ``np.asarray(condition, dtype=bool)``."""
    if isinstance(condition, TensorBase):
        return compared(condition, "!=", 0)
    return np.asarray(condition, dtype=bool)


def has_tensor(obj: Any) -> bool:
    """Whether ``obj`` is a Tensor or a list or tuple holding one, at any depth."""
    if isinstance(obj, TensorBase):
        return True
    if isinstance(obj, (list, tuple)):
        return builtins.any(has_tensor(o) for o in obj)
    return False


def numpy_when_plain(numpy_fn: Callable[..., Any]) -> Callable[[F], F]:
    """Answer with ``numpy_fn`` when no argument holds a Tensor (a plain value in, numpy's out)."""

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if not has_tensor(args) and not has_tensor(tuple(kwargs.values())):
                return numpy_fn(*args, **kwargs)
            return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return wrap


def normal_axes(axis: Any, ndim: int, op: str) -> tuple[int, ...] | None:
    """An axis argument as a sorted tuple of non-negative ints (None: every axis)."""
    if axis is None:
        return None
    items = axis if isinstance(axis, (tuple, list)) else (axis,)
    out = []
    for a in items:
        a = operator.index(a)
        if not -ndim <= a < ndim:
            raise np.exceptions.AxisError(
                f"{op}: axis {a} is out of bounds for an array of dimension {ndim}")
        a %= builtins.max(ndim, 1)
        if a in out:
            raise ValueError(f"{op}: axis {a} is repeated in {axis!r}")
        out.append(a)
    return tuple(sorted(out))


def one_axis(axis: int, ndim: int, op: str) -> tuple[int, ...]:
    """One axis, non-negative, as a tuple of one: ``(axis,) = one_axis(axis, ndim, op)``."""
    return normal_axes(operator.index(axis), ndim, op) or ()


def along(axis: int, index: Any) -> tuple:
    """An index that applies ``index`` to one axis and takes every other whole."""
    return (slice(None),) * axis + (index,)


def refuse_out(op: str, out: Any) -> None:
    """numpy's ``out=``: only None, since an ndarray cannot hold a recorded result."""
    if out is not None:
        raise TypeError(f"{op}: out= cannot hold a recorded result (an ndarray has no "
                        "history); drop it and use the returned Tensor")


def cast_for(op: str, x: Any, dtype: Any) -> Any:
    """x in ``dtype``, as numpy casts before it reduces; integer dtypes are refused."""
    if dtype is None:
        return x
    want = np.dtype(dtype)
    if want not in FLOAT_DTYPES:
        raise TypeError(
            f"{op}: dtype={want} would truncate the values (numpy casts them first) and has no "
            "gradient; give float32 or float64, or compute on t.data for a plain result")
    if dtype_of(x) == want:
        return x
    return _core.array_op(_core.OP_CODES["astype"], (x,), (want,))
