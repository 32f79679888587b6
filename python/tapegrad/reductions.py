"""Reductions and scans beyond array_ops' own: numpy's cumsum, cumprod, diff, trace,
ptp, average, nansum, nanmean, amax and amin.

cumsum and cumprod are native ops (csrc/scan_ops.hpp); the others are exact
compositions of recorded ops, declared with ``@composite`` (Note [Catalogue]
in csrc/catalogue.hpp). Each takes numpy's keywords; ``out=`` is refused,
since a Tensor's values are immutable. Given no Tensor, each returns a plain
value.
"""

from __future__ import annotations

import operator
import warnings
from typing import Any

import numpy as np

from . import _core
from ._args import UNSET, cast_for, compared, dtype_of, normal_axes, one_axis, refuse_out, shape_of
from ._core import TensorBase
from .array_ops import (
    broadcast_to,
    concatenate,
    getitem,
    mean,
    reshape,
    transpose,
)
from .array_ops import max as _max
from .array_ops import min as _min
from .array_ops import sum as _sum
from .array_ops import where as _where
from .catalogue import composite, wraps_op
from .shapes import diagonal

_CODE = _core.OP_CODES
_array_op = _core.array_op
_apply2 = _core.apply_binary


def _flat_or_axis(x: Any, axis: Any, op: str) -> tuple[Any, int]:
    """x and one non-negative axis; x flattened when axis is None, as numpy's scans do."""
    if axis is None:
        return reshape(x, (-1,)), 0
    (a,) = one_axis(axis, len(shape_of(x)), op)
    return x, a


# ---- scans ----

@wraps_op("cumsum")
def cumsum(x: Any, axis: int | None = None, dtype: Any = None, out: Any = None) -> Any:
    """Its gradient is the cumulative sum of the output's gradient taken from the other end.

    Example:
        >>> import tapegrad as tg
        >>> x = tg.Tensor([1.0, 2.0, 3.0])
        >>> tg.cumsum(x).data
        array([1., 3., 6.])
        >>> tg.grad(tg.sum(tg.cumsum(x)), [x])[0].data
        array([3., 2., 1.])
    """
    refuse_out("cumsum", out)
    x = cast_for("cumsum", x, dtype)
    x, a = _flat_or_axis(x, axis, "cumsum")
    return _array_op(_CODE["cumsum"], (x,), (a, False))


@wraps_op("cumprod")
def cumprod(x: Any, axis: int | None = None, dtype: Any = None, out: Any = None) -> Any:
    """Element k's gradient is ``sum over i >= k of g_i * prod(x_j for j <= i, j != k)``,
    computed without dividing by x_k: exact with any number of zeros.

    Example:
        >>> import tapegrad as tg
        >>> x = tg.Tensor([2.0, 0.0, 3.0])
        >>> tg.cumprod(x).data
        array([2., 0., 0.])
        >>> tg.grad(tg.sum(tg.cumprod(x)), [x])[0].data
        array([1., 8., 0.])
    """
    refuse_out("cumprod", out)
    x = cast_for("cumprod", x, dtype)
    x, a = _flat_or_axis(x, axis, "cumprod")
    return _array_op(_CODE["cumprod"], (x,), (a,))


@composite(doc="The n-th discrete difference along axis, as numpy.diff (prepend and append "
           "are joined first).", numpy="numpy.diff")
def diff(a: Any, n: int = 1, axis: int = -1, prepend: Any = None, append: Any = None) -> Any:
    """
    Example:
        >>> import tapegrad as tg
        >>> tg.diff(tg.Tensor([1.0, 4.0, 9.0, 16.0])).data
        array([3., 5., 7.])
        >>> tg.diff(tg.Tensor([1.0, 4.0, 9.0, 16.0]), n=2).data
        array([2., 2.])
    """
    n = operator.index(n)
    if n < 0:
        raise ValueError(f"diff: order must be non-negative, got n={n}")
    shape = shape_of(a)
    if not shape:
        raise ValueError("diff: the input must be at least one-dimensional, got a 0-d value")
    (axis,) = one_axis(axis, len(shape), "diff")
    if n == 0:
        return a
    parts = []
    for extra in (prepend, a, append):
        if extra is None:
            continue
        if extra is not a and not shape_of(extra):  # a scalar: one slice along axis
            edge = list(shape)
            edge[axis] = 1
            extra = broadcast_to(extra, tuple(edge))
        parts.append(extra)
    if len(parts) > 1:
        a = concatenate(parts, axis=axis)
    prefix = (slice(None),) * axis
    for _ in range(n):
        a = _apply2(_CODE["sub"], getitem(a, (*prefix, slice(1, None))),
                    getitem(a, (*prefix, slice(None, -1))))
    return a


# ---- reductions ----

@composite(doc="Sum along a diagonal (offset from the main one) of the axis1, axis2 "
           "planes, as numpy.trace.", numpy="numpy.trace", method="trace")
def trace(a: Any, offset: int = 0, axis1: int = 0, axis2: int = 1, dtype: Any = None,
          out: Any = None) -> Any:
    """
    Example:
        >>> import tapegrad as tg
        >>> m = tg.Tensor([[1.0, 2.0], [3.0, 4.0]])
        >>> tg.trace(m).item()
        5.0
        >>> tg.grad(tg.trace(m), [m])[0].data
        array([[1., 0.],
               [0., 1.]])
    """
    refuse_out("trace", out)
    a = cast_for("trace", a, dtype)
    return _sum(diagonal(a, offset, axis1, axis2), axis=-1)


@composite(doc="Range of values (max - min) along axis, as numpy.ptp; tied extremes share "
           "the gradient evenly.", numpy="numpy.ptp")
def ptp(a: Any, axis: Any = None, out: Any = None, keepdims: bool = False) -> Any:
    """
    Example:
        >>> import tapegrad as tg
        >>> tg.ptp(tg.Tensor([[1.0, 5.0], [2.0, 3.0]]), axis=1).data
        array([4., 1.])
    """
    refuse_out("ptp", out)
    return _apply2(_CODE["sub"], _max(a, axis, keepdims=keepdims),
                   _min(a, axis, keepdims=keepdims))


@composite(doc="Mean over axis, weighted by weights (a Tensor gets a gradient too), as "
           "numpy.average; returned=True also gives the sum of the weights.",
           numpy="numpy.average")
def average(a: Any, axis: Any = None, weights: Any = None, returned: bool = False, *,
            keepdims: bool = False) -> Any:
    """Weights that sum to zero along axis raise ZeroDivisionError, as numpy's.

    Example:
        >>> import tapegrad as tg
        >>> x = tg.Tensor([1.0, 2.0, 4.0])
        >>> tg.average(x, weights=[1.0, 1.0, 2.0]).item()
        2.75
        >>> avg, total = tg.average(x, weights=[1.0, 1.0, 2.0], returned=True)
        >>> float(total)
        4.0
    """
    shape = shape_of(a)
    axes = normal_axes(axis, len(shape), "average")
    if weights is None:
        avg = mean(a, axis, keepdims=keepdims)
        if not returned:
            return avg
        count = np.prod([shape[i] for i in axes] if axes is not None else shape)
        # numpy's count: a plain array of the average's dtype and shape
        return avg, np.full(shape_of(avg), count, dtype=dtype_of(avg))
    w_shape = shape_of(weights)
    if w_shape != shape:
        if axes is None:
            raise TypeError(f"average: give axis when the weights' shape {w_shape} differs "
                            f"from the array's {shape}")
        wanted = tuple(shape[i] for i in _axes_in_order(axis, len(shape)))
        if w_shape != wanted:
            raise ValueError(f"average: weights of shape {w_shape} do not match the array's "
                             f"shape {shape} along axis {axis} (want {wanted})")
        order = _axes_in_order(axis, len(shape))
        w = weights
        if len(order) > 1:
            w = transpose(w, tuple(np.argsort(order)))
        weights = reshape(w, tuple(s if i in axes else 1 for i, s in enumerate(shape)))
    total = _sum(weights, axes, keepdims=keepdims)
    if np.any(compared(total, "==", 0.0)):  # a guard under compile
        raise ZeroDivisionError("average: the weights sum to zero along axis, so they cannot "
                                "be normalised")
    avg = _apply2(_CODE["div"], _sum(_apply2(_CODE["mul"], a, weights), axes, keepdims=keepdims),
                  total)
    if not returned:
        return avg
    if shape_of(total) != shape_of(avg):
        total = broadcast_to(total, shape_of(avg))
    return avg, total


def _axes_in_order(axis: Any, ndim: int) -> tuple[int, ...]:
    """The axes as given (not sorted), non-negative."""
    items = axis if isinstance(axis, (tuple, list)) else (axis,)
    return tuple(operator.index(i) % ndim for i in items)


def _nan_mask(a: Any) -> Any:
    if isinstance(a, TensorBase):
        return compared(a, "!=", a)  # NaN alone differs from itself; a guard under compile
    return np.isnan(np.asarray(a, dtype=float))


@composite(doc="Sum over axis treating NaNs as zero, as numpy.nansum; NaNs get a zero "
           "gradient.", numpy="numpy.nansum")
def nansum(a: Any, axis: Any = None, dtype: Any = None, out: Any = None,
           keepdims: bool = False) -> Any:
    """
    Example:
        >>> import tapegrad as tg
        >>> x = tg.Tensor([1.0, float("nan"), 2.0])
        >>> tg.nansum(x).item()
        3.0
        >>> tg.grad(tg.nansum(x), [x])[0].data
        array([1., 0., 1.])
    """
    refuse_out("nansum", out)
    a = cast_for("nansum", a, dtype)
    return _sum(_where(~_nan_mask(a), a, 0.0), axis, keepdims=keepdims)


@composite(doc="Mean over axis ignoring NaNs, as numpy.nanmean; NaNs get a zero gradient.",
           numpy="numpy.nanmean")
def nanmean(a: Any, axis: Any = None, dtype: Any = None, out: Any = None,
            keepdims: bool = False) -> Any:
    """A slice of NaNs only has a NaN mean (numpy's RuntimeWarning "Mean of empty
    slice") and gives its elements a zero gradient.

    Example:
        >>> import tapegrad as tg
        >>> x = tg.Tensor([1.0, float("nan"), 2.0])
        >>> tg.nanmean(x).item()
        1.5
        >>> tg.grad(tg.nanmean(x), [x])[0].data
        array([0.5, 0. , 0.5])
    """
    refuse_out("nanmean", out)
    a = cast_for("nanmean", a, dtype)
    present = ~_nan_mask(a)
    axes = normal_axes(axis, len(shape_of(a)), "nanmean")
    count = np.sum(present, axis=axes, keepdims=keepdims)
    empty = count == 0
    if np.any(empty):
        warnings.warn("Mean of empty slice", RuntimeWarning, stacklevel=3)
    total = _sum(_where(present, a, 0.0), axis, keepdims=keepdims)
    means = _apply2(_CODE["div"], total, np.where(empty, 1, count).astype(float))
    return _where(~empty, means, np.nan) if np.any(empty) else means


@composite(doc="Maximum over axis (numpy.amax, the same as max); tied elements share the "
           "gradient evenly.", numpy="numpy.amax")
def amax(a: Any, axis: Any = None, out: Any = None, keepdims: bool = False,
         initial: Any = UNSET, where: Any = UNSET) -> Any:
    """
    Example:
        >>> import tapegrad as tg
        >>> tg.amax(tg.Tensor([[1.0, 5.0], [2.0, 3.0]]), axis=0).data
        array([2., 5.])
    """
    return _max(a, axis, keepdims, out=out, initial=initial, where=where)


@composite(doc="Minimum over axis (numpy.amin, the same as min); tied elements share the "
           "gradient evenly.", numpy="numpy.amin")
def amin(a: Any, axis: Any = None, out: Any = None, keepdims: bool = False,
         initial: Any = UNSET, where: Any = UNSET) -> Any:
    """
    Example:
        >>> import tapegrad as tg
        >>> tg.amin(tg.Tensor([[1.0, 5.0], [2.0, 3.0]]), axis=0).data
        array([1., 3.])
    """
    return _min(a, axis, keepdims, out=out, initial=initial, where=where)
