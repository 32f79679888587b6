"""Indexing: numpy's functions that pick elements (sort, partition, take,
take_along_axis, select, nan_to_num).

Each is a gather: integer indices are computed on the values (argsort,
argpartition, ...) and the elements taken with getitem, whose gradient
scatters back and adds up at repeated indices; or a choice between inputs
with where, whose condition is a constant. So they are exact compositions of
recorded ops, declared with ``@composite`` (Note [Catalogue] in
csrc/catalogue.hpp), differentiable to any order. Given no Tensor, numpy's
own function answers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ._args import (
    along,
    compared,
    dtype_of,
    has_tensor,
    layout_of,
    numpy_when_plain,
    one_axis,
    refuse_out,
    shape_of,
    value_of,
)
from .array_ops import broadcast_to, getitem, where
from .catalogue import composite
from .shapes import ravel


def _integers(indices: Any, op: str) -> np.ndarray:
    # A Tensor's layout only: it holds floats, refused below unless empty (no values).
    idx = np.asarray(layout_of(indices))
    if idx.size == 0 and idx.dtype.kind == "f":  # np.asarray([]) is float64
        idx = idx.astype(np.intp)
    if idx.dtype.kind not in "iu":
        raise TypeError(f"{op}: indices must be integers, got dtype {idx.dtype}")
    return idx


@composite(doc="Elements at integer indices along axis (of the flattened values when axis is "
           "None), as numpy.take.", numpy="numpy.take", method="take")
@numpy_when_plain(np.take)
def take(a: Any, indices: Any, axis: int | None = None, out: Any = None,
         mode: str = "raise") -> Any:
    """mode 'raise' refuses indices out of range (negative ones count from the
    end), 'wrap' wraps them around, 'clip' clips them to the axis. An index
    taken twice gets the sum of both gradients.

    Example:
        >>> import tapegrad as tg
        >>> x = tg.Tensor([1.0, 2.0, 3.0])
        >>> tg.take(x, [2, 0, 2]).data
        array([3., 1., 3.])
        >>> tg.grad(tg.sum(tg.take(x, [2, 0, 2])), [x])[0].data
        array([1., 0., 2.])
    """
    refuse_out("take", out)
    if axis is None:
        a, axis = ravel(a), 0
    shape = shape_of(a)
    (ax,) = one_axis(axis, len(shape), "take")
    idx = _integers(indices, "take")
    n = shape[ax]
    if mode == "wrap":
        idx = np.mod(idx, n) if n else idx
    elif mode == "clip":
        idx = np.clip(idx, 0, max(n - 1, 0))
    elif mode != "raise":
        raise ValueError(f"take: mode must be 'raise', 'wrap' or 'clip', got {mode!r}")
    if idx.size and (idx.max() >= n or idx.min() < -n):
        raise IndexError(f"take: index {int(idx.max() if idx.max() >= n else idx.min())} is "
                         f"out of bounds for axis {ax} with size {n} (shape {shape})")
    return getitem(a, along(ax, idx if idx.ndim else int(idx)))


def _along_axis_index(shape: tuple, indices: np.ndarray, axis: int) -> tuple:
    """numpy's fancy index for take_along_axis: indices on axis, aranges on the others."""
    if indices.ndim != len(shape):
        raise ValueError(f"take_along_axis: indices of shape {indices.shape} must have as many "
                         f"axes as the array of shape {shape}")
    index = []
    for dim, n in enumerate(shape):
        if dim == axis:
            index.append(indices)
        else:
            index.append(np.arange(n).reshape([-1 if d == dim else 1 for d in range(len(shape))]))
    return tuple(index)


@composite(doc="Elements at integer indices along axis, one index array per position of the "
           "other axes (as argsort gives), as numpy.take_along_axis.",
           numpy="numpy.take_along_axis", arity=1)
@numpy_when_plain(np.take_along_axis)
def take_along_axis(arr: Any, indices: Any, axis: int | None = -1) -> Any:
    """
    Example:
        >>> import numpy as np, tapegrad as tg
        >>> x = tg.Tensor([[3.0, 1.0, 2.0]])
        >>> tg.take_along_axis(x, np.argsort(x.data, axis=1), axis=1).data
        array([[1., 2., 3.]])
    """
    idx = _integers(indices, "take_along_axis")
    if axis is None:
        if idx.ndim != 1:
            raise ValueError(f"take_along_axis: with axis=None the indices must be 1-D, got "
                             f"shape {idx.shape}")
        arr, axis = ravel(arr), 0
    shape = shape_of(arr)
    (ax,) = one_axis(axis, len(shape), "take_along_axis")
    n = shape[ax]
    if idx.size and (idx.max() >= n or idx.min() < -n):
        raise IndexError(f"take_along_axis: an index is out of bounds for axis {ax} with size "
                         f"{n} (shape {shape})")
    return getitem(arr, _along_axis_index(shape, idx, ax))


@composite(doc="Sorted copy along axis (of the flattened values when axis is None); each "
           "value's gradient goes back to the element it came from.", numpy="numpy.sort")
@numpy_when_plain(np.sort)
def sort(a: Any, axis: int | None = -1, kind: Any = None, order: Any = None, *,
         stable: Any = None) -> Any:
    """The elements are gathered in a stable argsort's order, so tied values take
    the gradient of the position they land in, as PyTorch's sort. NaNs sort last,
    as numpy's. ``Tensor.sort`` refuses: ndarray.sort sorts in place, and a
    Tensor's values cannot change; use ``tapegrad.sort(t)`` or ``np.sort(t)``.

    Example:
        >>> import tapegrad as tg
        >>> x = tg.Tensor([3.0, 1.0, 2.0])
        >>> tg.sort(x).data
        array([1., 2., 3.])
        >>> tg.grad(tg.sort(x), [x], grad_outputs=tg.Tensor([1.0, 10.0, 100.0]))[0].data
        array([100.,   1.,  10.])
    """
    if order is not None:
        raise ValueError("sort: order= sorts structured arrays, which a Tensor cannot hold")
    if axis is None:
        a, axis = ravel(a), -1
    # The permutation is read from the values: under compile this raises TraceError,
    # as a replay on other values would gather in a stale order.
    idx = np.argsort(np.asarray(value_of(a)), axis=axis, kind="stable")
    return take_along_axis(a, idx, axis)


@composite(doc="Partially sorted copy: the kth elements in their sorted places, smaller before "
           "and larger after (in no particular order), as numpy.partition.",
           numpy="numpy.partition")
@numpy_when_plain(np.partition)
def partition(a: Any, kth: Any, axis: int | None = -1, kind: str = "introselect",
              order: Any = None) -> Any:
    """Gathered in numpy's argpartition order (the same arrangement numpy.partition
    gives). ``Tensor.partition`` refuses, as ``Tensor.sort`` does (ndarray's works in place).

    Example:
        >>> import tapegrad as tg
        >>> tg.partition(tg.Tensor([3.0, 1.0, 2.0]), 0).data[0]
        np.float64(1.0)
    """
    if order is not None:
        raise ValueError("partition: order= sorts structured arrays, which a Tensor cannot hold")
    if axis is None:
        a, axis = ravel(a), -1
    # Read from the values, as sort's permutation: raises TraceError under compile.
    idx = np.argpartition(np.asarray(value_of(a)), kth, axis=axis, kind=kind)
    return take_along_axis(a, idx, axis)


def _condition(c: Any, k: int) -> np.ndarray:
    # A Tensor's layout only: it holds floats, which are refused below.
    value = np.asarray(layout_of(c))
    if value.dtype != bool:
        raise TypeError(f"select: condition {k} must be boolean, got dtype {value.dtype}")
    return value


@composite(doc="Elements of the first choice whose condition holds, else default "
           "(conditions are constants), as numpy.select.", numpy="numpy.select", arity=-1)
@numpy_when_plain(np.select)
def select(condlist: Sequence[Any], choicelist: Sequence[Any], default: Any = 0) -> Any:
    """
    Example:
        >>> import tapegrad as tg
        >>> x = tg.Tensor([-1.0, 0.5, 2.0])
        >>> tg.select([x.data < 0, x.data > 1], [-x, x * 10.0], default=x).data
        array([ 1. ,  0.5, 20. ])
    """
    condlist, choicelist = list(condlist), list(choicelist)
    if len(condlist) != len(choicelist):
        raise ValueError(f"select: {len(condlist)} conditions for {len(choicelist)} choices; "
                         "give one condition per choice")
    if not condlist:
        raise ValueError("select: need at least one condition and choice")
    conditions = [_condition(c, k) for k, c in enumerate(condlist)]
    result = default
    for c, choice in reversed(list(zip(conditions, choicelist))):
        result = where(c, choice, result)
    shape = np.broadcast_shapes(*[np.shape(c) for c in conditions],
                                *[shape_of(x) for x in (*choicelist, default)])
    if shape_of(result) != shape:
        result = broadcast_to(result, shape)
    return result


@composite(doc="NaN and infinities replaced by numbers (0, and the largest finite values by "
           "default); replaced elements get a zero gradient.", numpy="numpy.nan_to_num")
@numpy_when_plain(np.nan_to_num)
def nan_to_num(x: Any, copy: bool = True, nan: float = 0.0, posinf: Any = None,
               neginf: Any = None) -> Any:
    """copy=False (numpy's in-place replacement) is refused: a Tensor's values
    cannot change; use the result.

    Example:
        >>> import tapegrad as tg
        >>> x = tg.Tensor([1.0, float("nan"), float("inf")])
        >>> tg.nan_to_num(x, posinf=9.0).data
        array([1., 0., 9.])
        >>> tg.grad(tg.sum(tg.nan_to_num(x)), [x])[0].data
        array([1., 0., 0.])
    """
    if not copy:
        raise ValueError("nan_to_num: copy=False would replace values in place, and a "
                         "Tensor's values cannot change; use the result it returns")
    for name, v in (("nan", nan), ("posinf", posinf), ("neginf", neginf)):
        if has_tensor(v):
            raise TypeError(f"nan_to_num: {name} must be a number, not a Tensor")
    # Where x is not finite, and which of NaN, inf, -inf it is: guards under compile.
    is_nan, is_inf, is_neginf = (compared(x, "!=", x), compared(x, "==", np.inf),
                                 compared(x, "==", -np.inf))
    kinds = np.zeros(shape_of(x), dtype=dtype_of(x))
    kinds[is_nan], kinds[is_inf], kinds[is_neginf] = np.nan, np.inf, -np.inf
    replaced = np.nan_to_num(kinds, nan=nan, posinf=posinf, neginf=neginf)
    return where(~(is_nan | is_inf | is_neginf), x, replaced)
