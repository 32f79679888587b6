"""Shapes: numpy's functions that move, join, split, repeat, flip and pad values.

Every one is an exact composition of recorded ops (reshape, transpose,
broadcast_to, getitem, scatter_add, concatenate, where), declared with
``@composite`` (Note [Catalogue] in csrc/catalogue.hpp), so its gradient
comes from theirs and works to any order. Where numpy's function takes
several arrays, a Tensor among them makes the result a Tensor; given no
Tensor at all, numpy's own function answers with a plain value.
"""

from __future__ import annotations

import builtins
import operator
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import _core
from ._args import along, dtype_of, has_tensor, numpy_when_plain, one_axis, shape_of
from ._core import TensorBase
from .array_ops import (
    broadcast_to,
    concatenate,
    expand_dims,
    getitem,
    reshape,
    split,
    stack,
    transpose,
    where,
)
from .catalogue import composite

_CODE = _core.OP_CODES
_array_op = _core.array_op

def _ndim(x: Any) -> int:
    return len(shape_of(x))


def _axis_tuple(axis: Any, ndim: int, op: str) -> tuple[int, ...]:
    """Axes as given (an int or a sequence), non-negative, in their order, without repeats."""
    items = tuple(axis) if isinstance(axis, (tuple, list)) else (axis,)
    out = [one_axis(a, ndim, op)[0] for a in items]
    if len(set(out)) != len(out):
        raise ValueError(f"{op}: repeated axis in {axis!r}")
    return tuple(out)


# ---- moving axes ----

@composite(doc="The values as a 1-D tensor, in C (row-major) or F (column-major) order.",
           numpy="numpy.ravel", method="ravel")
@numpy_when_plain(np.ravel)
def ravel(a: Any, order: str = "C") -> Any:
    """order 'A' and 'K' (memory order) are refused: a Tensor's layout is not part of its value.

    Example:
        >>> import tapegrad as tg
        >>> m = tg.Tensor([[1.0, 2.0], [3.0, 4.0]])
        >>> tg.ravel(m).data
        array([1., 2., 3., 4.])
        >>> m.ravel(order="F").data
        array([1., 3., 2., 4.])
    """
    if order == "C":
        return reshape(a, (-1,))
    if order == "F":
        return reshape(transpose(a), (-1,))
    raise ValueError(f"ravel: order={order!r} is not supported on Tensors; use 'C' or 'F'")


@composite(doc="Move axes to new positions, keeping the order of the others.",
           numpy="numpy.moveaxis")
@numpy_when_plain(np.moveaxis)
def moveaxis(a: Any, source: Any, destination: Any) -> Any:
    """
    Example:
        >>> import numpy as np, tapegrad as tg
        >>> tg.moveaxis(tg.Tensor(np.zeros((2, 3, 4))), 0, -1).shape
        (3, 4, 2)
    """
    nd = _ndim(a)
    src = _axis_tuple(source, nd, "moveaxis")
    dst = _axis_tuple(destination, nd, "moveaxis")
    if len(src) != len(dst):
        raise ValueError(f"moveaxis: source {source!r} and destination {destination!r} must "
                         "have the same number of elements")
    order = [n for n in range(nd) if n not in src]
    for d, s in sorted(zip(dst, src)):
        order.insert(d, s)
    return transpose(a, order)


@composite(doc="Roll an axis backwards until it lies before position start (numpy.rollaxis; "
           "moveaxis is clearer).", numpy="numpy.rollaxis")
@numpy_when_plain(np.rollaxis)
def rollaxis(a: Any, axis: int, start: int = 0) -> Any:
    """
    Example:
        >>> import numpy as np, tapegrad as tg
        >>> tg.rollaxis(tg.Tensor(np.zeros((2, 3, 4))), 2).shape
        (4, 2, 3)
    """
    n = _ndim(a)
    (axis,) = one_axis(axis, n, "rollaxis")
    start = operator.index(start)
    if start < 0:
        start += n
    if not 0 <= start < n + 1:
        raise np.exceptions.AxisError(
            f"rollaxis: start must satisfy {-n} <= start < {n + 1}, got {start}")
    if axis < start:
        start -= 1
    order = list(range(n))
    order.remove(axis)
    order.insert(start, axis)
    return transpose(a, order)


def _at_least(arys: tuple, nd: int) -> Any:
    out = []
    for x in arys:
        shape = shape_of(x)
        if len(shape) < nd:
            if nd == 3 and len(shape) == 2:
                shape = (*shape, 1)
            elif nd == 3 and len(shape) == 1:
                shape = (1, *shape, 1)
            else:
                shape = (1,) * (nd - len(shape)) + tuple(shape)
            x = reshape(x, shape)
        out.append(x)
    return out[0] if len(out) == 1 else tuple(out)


@composite(doc="Each input with at least one axis (a 0-d value becomes shape (1,)).",
           numpy="numpy.atleast_1d", arity=-1)
@numpy_when_plain(np.atleast_1d)
def atleast_1d(*arys: Any) -> Any:
    """One input gives one result, several a tuple, as numpy.

    Example:
        >>> import tapegrad as tg
        >>> tg.atleast_1d(tg.Tensor(2.0)).shape
        (1,)
    """
    return _at_least(arys, 1)


@composite(doc="Each input with at least two axes (shape (n,) becomes (1, n)).",
           numpy="numpy.atleast_2d", arity=-1)
@numpy_when_plain(np.atleast_2d)
def atleast_2d(*arys: Any) -> Any:
    """
    Example:
        >>> import tapegrad as tg
        >>> tg.atleast_2d(tg.Tensor([1.0, 2.0])).shape
        (1, 2)
    """
    return _at_least(arys, 2)


@composite(doc="Each input with at least three axes ((n,) becomes (1, n, 1), (m, n) becomes "
           "(m, n, 1)).", numpy="numpy.atleast_3d", arity=-1)
@numpy_when_plain(np.atleast_3d)
def atleast_3d(*arys: Any) -> Any:
    """
    Example:
        >>> import tapegrad as tg
        >>> tg.atleast_3d(tg.Tensor([1.0, 2.0])).shape
        (1, 2, 1)
    """
    return _at_least(arys, 3)


# ---- joining ----

def _list(tup: Any, op: str) -> list:
    if isinstance(tup, TensorBase) or not isinstance(tup, Sequence):
        raise TypeError(f"{op}: give a sequence (list or tuple) of arrays, got "
                        f"{type(tup).__name__}")
    items = list(tup)
    if not items:
        raise ValueError(f"{op}: need at least one array to join")
    return items


@composite(doc="Join horizontally: along axis 1, or axis 0 for 1-D inputs.",
           numpy="numpy.hstack", arity=-1)
@numpy_when_plain(np.hstack)
def hstack(tup: Sequence[Any]) -> Any:
    """
    Example:
        >>> import tapegrad as tg
        >>> tg.hstack([tg.Tensor([1.0]), tg.Tensor([2.0, 3.0])]).data
        array([1., 2., 3.])
    """
    arrs = [_at_least((x,), 1) for x in _list(tup, "hstack")]
    return concatenate(arrs, axis=0 if _ndim(arrs[0]) == 1 else 1)


@composite(doc="Join vertically: along axis 0, 1-D inputs as rows.", numpy="numpy.vstack",
           arity=-1)
@numpy_when_plain(np.vstack)
def vstack(tup: Sequence[Any]) -> Any:
    """
    Example:
        >>> import tapegrad as tg
        >>> tg.vstack([tg.Tensor([1.0, 2.0]), tg.Tensor([3.0, 4.0])]).shape
        (2, 2)
    """
    return concatenate([_at_least((x,), 2) for x in _list(tup, "vstack")], axis=0)


@composite(doc="Join along the third axis (depth), after atleast_3d.", numpy="numpy.dstack",
           arity=-1)
@numpy_when_plain(np.dstack)
def dstack(tup: Sequence[Any]) -> Any:
    """
    Example:
        >>> import tapegrad as tg
        >>> tg.dstack([tg.Tensor([1.0, 2.0]), tg.Tensor([3.0, 4.0])]).shape
        (1, 2, 2)
    """
    return concatenate([_at_least((x,), 3) for x in _list(tup, "dstack")], axis=2)


@composite(doc="Join 1-D inputs as columns of a 2-D result (2-D inputs as they are).",
           numpy="numpy.column_stack", arity=-1)
@numpy_when_plain(np.column_stack)
def column_stack(tup: Sequence[Any]) -> Any:
    """
    Example:
        >>> import tapegrad as tg
        >>> tg.column_stack([tg.Tensor([1.0, 2.0]), tg.Tensor([3.0, 4.0])]).data
        array([[1., 3.],
               [2., 4.]])
    """
    arrs = []
    for x in _list(tup, "column_stack"):
        shape = shape_of(x)
        if len(shape) < 2:
            x = reshape(x, (-1, 1))
        arrs.append(x)
    return concatenate(arrs, axis=1)


@composite(doc="values joined after arr along axis (both flattened first when axis is None).",
           numpy="numpy.append", arity=2)
@numpy_when_plain(np.append)
def append(arr: Any, values: Any, axis: int | None = None) -> Any:
    """
    Example:
        >>> import tapegrad as tg
        >>> tg.append(tg.Tensor([1.0, 2.0]), [3.0]).data
        array([1., 2., 3.])
    """
    if axis is None:
        return concatenate([ravel(arr) if _ndim(arr) != 1 else arr,
                            ravel(values) if _ndim(values) != 1 else values], axis=0)
    return concatenate([arr, values], axis=axis)


def _weak_dtype(obj: Any) -> Any:
    """float32 when every Tensor inside is float32 (numbers are weak, as in ops), else float64."""
    dtypes = set()

    def walk(o: Any) -> None:
        if isinstance(o, TensorBase):
            dtypes.add(dtype_of(o))
        elif isinstance(o, (list, tuple)):
            for i in o:
                walk(i)

    walk(obj)
    return np.float32 if dtypes == {np.dtype(np.float32)} else np.float64


def _build(obj: Any, dtype: Any, depth: int) -> Any:
    if isinstance(obj, TensorBase):
        return obj
    if isinstance(obj, (list, tuple)):
        if not has_tensor(obj):
            return np.asarray(obj, dtype=dtype)
        items = [_build(o, dtype, depth + 1) for o in obj]
        shapes = {shape_of(i) for i in items}
        if len(shapes) > 1:
            raise ValueError(f"array: the elements at depth {depth} have different shapes "
                             f"{sorted(shapes)}; a Tensor cannot be ragged")
        return stack(items)
    value = np.asarray(obj)
    if value.dtype.kind not in "biuf":
        raise TypeError(f"array: cannot hold {type(obj).__name__} (dtype {value.dtype}); give "
                        "Tensors and numbers")
    # Python numbers take the Tensors' dtype; numpy's arrays and scalars keep theirs, as in ops.
    return value.astype(dtype) if isinstance(obj, (bool, int, float)) else value


@composite(doc="An array from nested lists or tuples of Tensors and numbers, stacked "
           "(and recorded): what np.array([t0, t1]) cannot do.", arity=-1)
def array(obj: Any) -> Any:
    """numpy's protocols cannot reach Tensors inside a list, so ``np.array([t0, t1])``
    cannot record; ``tapegrad.array([t0, t1])`` (or ``tapegrad.stack``) does. Numbers
    take the dtype of the Tensors (float32 when all are float32); with no Tensor
    inside, the result is numpy's plain array.

    Example:
        >>> import tapegrad as tg
        >>> a, b = tg.Tensor(1.0), tg.Tensor(2.0)
        >>> m = tg.array([[a, b], [b * a, 3.0]])
        >>> m.data
        array([[1., 2.],
               [2., 3.]])
        >>> tg.grad(tg.sum(m), [a, b])[0].data
        3.0
    """
    if not has_tensor(obj):
        return np.array(obj)
    return _build(obj, _weak_dtype(obj), 0)


# ---- splitting ----

@composite(doc="Split into pieces along axis; sections need not divide the axis evenly "
           "(the first pieces are one longer).", numpy="numpy.array_split")
@numpy_when_plain(np.array_split)
def array_split(ary: Any, indices_or_sections: Any, axis: int = 0) -> list:
    """
    Example:
        >>> import tapegrad as tg
        >>> [p.shape for p in tg.array_split(tg.Tensor([1.0, 2.0, 3.0, 4.0, 5.0]), 3)]
        [(2,), (2,), (1,)]
    """
    shape = shape_of(ary)
    (ax,) = one_axis(axis, len(shape), "array_split")
    if np.ndim(indices_or_sections) != 0:
        return split(ary, indices_or_sections, axis)
    sections = operator.index(indices_or_sections)
    if sections <= 0:
        raise ValueError(f"array_split: the number of sections must be positive, got {sections}")
    each, extra = divmod(shape[ax], sections)
    sizes = [each + 1] * extra + [each] * (sections - extra)
    return split(ary, list(np.cumsum(sizes)[:-1]), ax)


@composite(doc="Split horizontally: along axis 1, or axis 0 for a 1-D input.",
           numpy="numpy.hsplit")
@numpy_when_plain(np.hsplit)
def hsplit(ary: Any, indices_or_sections: Any) -> list:
    """
    Example:
        >>> import tapegrad as tg
        >>> len(tg.hsplit(tg.Tensor([[1.0, 2.0], [3.0, 4.0]]), 2))
        2
    """
    nd = _ndim(ary)
    if nd == 0:
        raise ValueError("hsplit: the input must have at least one axis")
    return split(ary, indices_or_sections, 1 if nd > 1 else 0)


@composite(doc="Split vertically, along axis 0 (the input must be at least 2-D).",
           numpy="numpy.vsplit")
@numpy_when_plain(np.vsplit)
def vsplit(ary: Any, indices_or_sections: Any) -> list:
    """
    Example:
        >>> import tapegrad as tg
        >>> [p.shape for p in tg.vsplit(tg.Tensor([[1.0, 2.0], [3.0, 4.0]]), 2)]
        [(1, 2), (1, 2)]
    """
    if _ndim(ary) < 2:
        raise ValueError(f"vsplit: the input must be at least 2-D, got shape {shape_of(ary)}")
    return split(ary, indices_or_sections, 0)


@composite(doc="Split along the third axis (the input must be at least 3-D).",
           numpy="numpy.dsplit")
@numpy_when_plain(np.dsplit)
def dsplit(ary: Any, indices_or_sections: Any) -> list:
    """
    Example:
        >>> import numpy as np, tapegrad as tg
        >>> [p.shape for p in tg.dsplit(tg.Tensor(np.zeros((1, 2, 4))), [1])]
        [(1, 2, 1), (1, 2, 3)]
    """
    if _ndim(ary) < 3:
        raise ValueError(f"dsplit: the input must be at least 3-D, got shape {shape_of(ary)}")
    return split(ary, indices_or_sections, 2)


# ---- repeating ----

@composite(doc="Repeat each element along axis (of the flattened values when axis is None).",
           numpy="numpy.repeat", method="repeat")
@numpy_when_plain(np.repeat)
def repeat(a: Any, repeats: Any, axis: int | None = None) -> Any:
    """A number of repeats broadcasts (its gradient is a sum); one per element gathers
    with an integer index (repeated elements' gradients add up).

    Example:
        >>> import tapegrad as tg
        >>> tg.repeat(tg.Tensor([1.0, 2.0]), 2).data
        array([1., 1., 2., 2.])
        >>> tg.Tensor([[1.0, 2.0]]).repeat([1, 3], axis=1).data
        array([[1., 2., 2., 2.]])
    """
    if axis is None:
        a, axis = ravel(a), 0
    shape = shape_of(a)
    (ax,) = one_axis(axis, len(shape), "repeat")
    counts = np.asarray(repeats)
    if counts.dtype.kind not in "iub" and counts.size:
        raise TypeError(f"repeat: repeats must be integers, got {counts.dtype}")
    if counts.size and counts.min() < 0:
        raise ValueError(f"repeat: repeats may not be negative, got {repeats!r}")
    if counts.ndim == 0 or counts.size == 1:
        r = int(counts.reshape(-1)[0]) if counts.size else 0
        wide = list(shape)
        wide.insert(ax + 1, r)
        out = list(shape)
        out[ax] *= r
        return reshape(broadcast_to(expand_dims(a, ax + 1), tuple(wide)), tuple(out))
    if counts.shape != (shape[ax],):
        raise ValueError(f"repeat: {counts.size} repeats for axis {ax} of length {shape[ax]} "
                         f"(shape {shape}); give one per element or a single number")
    return getitem(a, along(ax, np.repeat(np.arange(shape[ax]), counts)))


@composite(doc="Repeat the whole array reps times along each axis, as numpy.tile.",
           numpy="numpy.tile")
@numpy_when_plain(np.tile)
def tile(A: Any, reps: Any) -> Any:
    """
    Example:
        >>> import tapegrad as tg
        >>> tg.tile(tg.Tensor([1.0, 2.0]), 2).data
        array([1., 2., 1., 2.])
        >>> tg.tile(tg.Tensor([1.0, 2.0]), (2, 1)).shape
        (2, 2)
    """
    reps = tuple(operator.index(r) for r in (reps if np.ndim(reps) else (reps,)))
    if builtins.any(r < 0 for r in reps):
        raise ValueError(f"tile: reps may not be negative, got {reps}")
    shape = tuple(shape_of(A))
    d = builtins.max(len(reps), len(shape))
    shape = (1,) * (d - len(shape)) + shape
    reps = (1,) * (d - len(reps)) + reps
    interleaved = tuple(n for s in shape for n in (1, s))
    wide = tuple(n for r, s in zip(reps, shape) for n in (r, s))
    out = tuple(r * s for r, s in zip(reps, shape))
    return reshape(broadcast_to(reshape(A, interleaved), wide), out)


# ---- flipping and rolling ----

@composite(doc="Reverse the order of elements along axis (every axis when None).",
           numpy="numpy.flip")
@numpy_when_plain(np.flip)
def flip(m: Any, axis: Any = None) -> Any:
    """
    Example:
        >>> import tapegrad as tg
        >>> tg.flip(tg.Tensor([[1.0, 2.0], [3.0, 4.0]]), axis=1).data
        array([[2., 1.],
               [4., 3.]])
    """
    nd = _ndim(m)
    axes = range(nd) if axis is None else _axis_tuple(axis, nd, "flip")
    index = [slice(None)] * nd
    for ax in axes:
        index[ax] = slice(None, None, -1)
    return getitem(m, tuple(index))


@composite(doc="Reverse the columns (axis 1) of an array of at least two axes.",
           numpy="numpy.fliplr")
@numpy_when_plain(np.fliplr)
def fliplr(m: Any) -> Any:
    """
    Example:
        >>> import tapegrad as tg
        >>> tg.fliplr(tg.Tensor([[1.0, 2.0]])).data
        array([[2., 1.]])
    """
    if _ndim(m) < 2:
        raise ValueError(f"fliplr: the input must be at least 2-D, got shape {shape_of(m)}")
    return flip(m, 1)


@composite(doc="Reverse the rows (axis 0) of an array of at least one axis.",
           numpy="numpy.flipud")
@numpy_when_plain(np.flipud)
def flipud(m: Any) -> Any:
    """
    Example:
        >>> import tapegrad as tg
        >>> tg.flipud(tg.Tensor([1.0, 2.0])).data
        array([2., 1.])
    """
    if _ndim(m) < 1:
        raise ValueError("flipud: the input must be at least 1-D, got a 0-d value")
    return flip(m, 0)


@composite(doc="Rotate by 90 degrees k times in the plane of axes (from the first towards "
           "the second).", numpy="numpy.rot90")
@numpy_when_plain(np.rot90)
def rot90(m: Any, k: int = 1, axes: Any = (0, 1)) -> Any:
    """
    Example:
        >>> import tapegrad as tg
        >>> tg.rot90(tg.Tensor([[1.0, 2.0], [3.0, 4.0]])).data
        array([[2., 4.],
               [1., 3.]])
    """
    axes = tuple(axes)
    nd = _ndim(m)
    if len(axes) != 2:
        raise ValueError(f"rot90: axes must name two axes, got {axes}")
    a0, a1 = _axis_tuple(axes[0], nd, "rot90") + _axis_tuple(axes[1], nd, "rot90")
    if a0 == a1:
        raise ValueError(f"rot90: the axes must be different, got {axes} for shape {shape_of(m)}")
    k = operator.index(k) % 4
    if k == 0:
        return getitem(m, (slice(None),))
    if k == 2:
        return flip(flip(m, a0), a1)
    perm = list(range(nd))
    perm[a0], perm[a1] = perm[a1], perm[a0]
    if k == 1:
        return transpose(flip(m, a1), perm)
    return flip(transpose(m, perm), a1)


@composite(doc="Shift elements along axis, those past the end coming back at the start "
           "(of the flattened values when axis is None).", numpy="numpy.roll")
@numpy_when_plain(np.roll)
def roll(a: Any, shift: Any, axis: Any = None) -> Any:
    """
    Example:
        >>> import tapegrad as tg
        >>> tg.roll(tg.Tensor([1.0, 2.0, 3.0]), 1).data
        array([3., 1., 2.])
    """
    if axis is None:
        return reshape(roll(ravel(a), shift, 0), shape_of(a))
    shape = shape_of(a)
    shifts, axes = np.broadcast_arrays(np.asarray(shift), np.asarray(axis))
    total = [0] * len(shape)
    for s, ax in zip(shifts.reshape(-1), axes.reshape(-1)):
        (ax,) = one_axis(int(ax), len(shape), "roll")
        total[ax] += operator.index(s)
    for ax, s in enumerate(total):
        n = shape[ax]
        if n == 0 or s % n == 0:
            continue
        s %= n
        a = concatenate([getitem(a, along(ax, slice(n - s, None))),
                         getitem(a, along(ax, slice(None, n - s)))], axis=ax)
    return a


# ---- padding ----

_PAD_MODES = ("constant", "edge", "reflect", "symmetric", "wrap")


def _pairs(x: Any, ndim: int, what: str) -> np.ndarray:
    """numpy's per-axis (before, after) pairs, from a number, a pair or one pair per axis."""
    pairs = np.asarray(x)
    try:
        return np.broadcast_to(pairs, (ndim, 2))
    except ValueError:
        raise ValueError(f"pad: {what} {x!r} does not give a (before, after) pair for each of "
                         f"the {ndim} axes") from None


@composite(doc="Pad with a constant or with the array's own values (modes constant, edge, "
           "reflect, symmetric, wrap), as numpy.pad.", numpy="numpy.pad")
@numpy_when_plain(np.pad)
def pad(array: Any, pad_width: Any, mode: str = "constant", **kwargs: Any) -> Any:
    """The padding's values are the array's own (gathered, so each padded copy
    adds to its source's gradient) or constants (no gradient). numpy's other modes
    (linear_ramp, maximum, mean, median, minimum, empty, a function) and
    reflect_type='odd' are refused.

    Example:
        >>> import tapegrad as tg
        >>> x = tg.Tensor([1.0, 2.0, 3.0])
        >>> tg.pad(x, 1).data
        array([0., 1., 2., 3., 0.])
        >>> tg.pad(x, (2, 1), mode="reflect").data
        array([3., 2., 1., 2., 3., 2.])
        >>> tg.grad(tg.sum(tg.pad(x, 1, mode="edge")), [x])[0].data
        array([2., 1., 2.])
    """
    if not isinstance(mode, str) or mode not in _PAD_MODES:
        raise ValueError(f"pad: mode {mode!r} is not supported on Tensors; supported modes: "
                         f"{', '.join(_PAD_MODES)} (for the others, pad t.data, which records "
                         "nothing)")
    allowed = {"constant": {"constant_values"}, "reflect": {"reflect_type"},
               "symmetric": {"reflect_type"}}.get(mode, set())
    if set(kwargs) - allowed:
        raise ValueError(f"pad: unsupported keyword arguments for mode {mode!r}: "
                         f"{sorted(set(kwargs) - allowed)}")
    if kwargs.get("reflect_type", "even") != "even":
        raise ValueError(f"pad: reflect_type={kwargs['reflect_type']!r} is not supported on "
                         "Tensors; only 'even'")
    shape = tuple(shape_of(array))
    nd = len(shape)
    widths = np.asarray(pad_width)
    if widths.dtype.kind not in "iu":
        raise TypeError(f"pad: pad_width must be integers, got {pad_width!r}")
    widths = _pairs(widths, nd, "pad_width")
    if widths.size and widths.min() < 0:
        raise ValueError(f"pad: pad_width may not be negative, got {pad_width!r}")
    if mode == "constant":
        values = kwargs.get("constant_values", 0)
        if has_tensor(values):
            raise TypeError("pad: constant_values must be numbers or arrays, not Tensors "
                            "(their gradient would be dropped); concatenate instead")
        padded = tuple(int(s + b + a) for s, (b, a) in zip(shape, widths))
        interior = tuple(slice(int(b), int(b + s)) for s, (b, _) in zip(shape, widths))
        out = _array_op(_CODE["scatter_add"], (array,), (padded, interior, False))
        if np.all(np.asarray(values) == 0):
            return out
        background = np.pad(np.zeros(shape, dtype=dtype_of(array)), widths,
                            mode="constant", constant_values=values)
        inside = np.zeros(padded, dtype=bool)
        inside[interior] = True
        return where(inside, out, background)
    for ax, (b, a) in enumerate(widths):
        if not (b or a):
            continue
        if shape[ax] == 0:
            raise ValueError(f"pad: cannot extend axis {ax} of length 0 (shape {shape}) in "
                             f"mode {mode!r}; only mode 'constant' can")
        source = np.pad(np.arange(shape[ax]), (int(b), int(a)), mode=mode)
        array = getitem(array, along(ax, source))
    return array


# ---- diagonals and triangles ----

def _diagonal_index(n1: int, n2: int, offset: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of diagonal ``offset`` of an n1 x n2 matrix."""
    length = builtins.max(0, builtins.min(n1, n2 - offset) if offset >= 0
                          else builtins.min(n1 + offset, n2))
    rows = np.arange(length) + builtins.max(-offset, 0)
    return rows, rows + offset


@composite(doc="The diagonal (offset from the main one) of the axis1, axis2 planes, as a last "
           "axis.", numpy="numpy.diagonal", method="diagonal")
@numpy_when_plain(np.diagonal)
def diagonal(a: Any, offset: int = 0, axis1: int = 0, axis2: int = 1) -> Any:
    """
    Example:
        >>> import tapegrad as tg
        >>> m = tg.Tensor([[1.0, 2.0], [3.0, 4.0]])
        >>> tg.diagonal(m).data
        array([1., 4.])
        >>> m.diagonal(1).data
        array([2.])
    """
    shape = shape_of(a)
    if len(shape) < 2:
        raise ValueError(f"diagonal: the input must be at least 2-D, got shape {shape}")
    a1, a2 = _axis_tuple((axis1, axis2), len(shape), "diagonal")
    rest = [i for i in range(len(shape)) if i not in (a1, a2)]
    rows, cols = _diagonal_index(shape[a1], shape[a2], operator.index(offset))
    return getitem(transpose(a, [*rest, a1, a2]), (Ellipsis, rows, cols))


@composite(doc="The diagonal of a 2-D array, or a 2-D array with a 1-D one on its diagonal "
           "k.", numpy="numpy.diag")
@numpy_when_plain(np.diag)
def diag(v: Any, k: int = 0) -> Any:
    """
    Example:
        >>> import tapegrad as tg
        >>> tg.diag(tg.Tensor([1.0, 2.0])).data
        array([[1., 0.],
               [0., 2.]])
    """
    shape = shape_of(v)
    k = operator.index(k)
    if len(shape) == 2:
        return diagonal(v, k)
    if len(shape) != 1:
        raise ValueError(f"diag: the input must be 1-D or 2-D, got shape {shape}")
    n = shape[0] + builtins.abs(k)
    rows, cols = _diagonal_index(n, n, k)
    return _array_op(_CODE["scatter_add"], (v,), ((n, n), (rows, cols), True))


def _triangle(m: Any, k: int, lower: bool, op: str) -> Any:
    shape = shape_of(m)
    if not shape:
        raise ValueError(f"{op}: the input must be at least 1-D, got a 0-d value")
    rows, cols = shape[-2:] if len(shape) >= 2 else (shape[-1], shape[-1])
    k = operator.index(k)
    keep = np.tri(rows, cols, k if lower else k - 1, dtype=bool)
    return where(keep if lower else ~keep, m, 0.0)


@composite(doc="The lower triangle (on and below diagonal k) of the last two axes; zeros "
           "above.", numpy="numpy.tril")
@numpy_when_plain(np.tril)
def tril(m: Any, k: int = 0) -> Any:
    """A 1-D input is the row of a square matrix, as numpy.

    Example:
        >>> import tapegrad as tg
        >>> tg.tril(tg.Tensor([[1.0, 2.0], [3.0, 4.0]])).data
        array([[1., 0.],
               [3., 4.]])
    """
    return _triangle(m, k, True, "tril")


@composite(doc="The upper triangle (on and above diagonal k) of the last two axes; zeros "
           "below.", numpy="numpy.triu")
@numpy_when_plain(np.triu)
def triu(m: Any, k: int = 0) -> Any:
    """
    Example:
        >>> import tapegrad as tg
        >>> tg.triu(tg.Tensor([[1.0, 2.0], [3.0, 4.0]])).data
        array([[1., 2.],
               [0., 4.]])
    """
    return _triangle(m, k, False, "triu")

