"""Array ops: reductions, softmax, linear algebra, shapes, indexing, joining.

Each native op (csrc/array_ops.hpp) is one call to ``_core.array_op`` with its
parameters normalised here (axes as tuples of non-negative ints). Ops that are
compositions of others (mean, std, outer, dot, stack, split, squeeze,
expand_dims, swapaxes, flatten) are written as such, so their gradients come
from the ops they are made of. Given no Tensor, each returns a plain value.
"""

from __future__ import annotations

import builtins
import math
import operator
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import _core
from .tensor import Tensor

_CODE = _core.OP_CODES
_array_op = _core.array_op
_apply2 = _core.apply_binary


def _shape(x: Any) -> tuple[int, ...]:
    return x.shape if isinstance(x, Tensor) else np.shape(x)


def _axes(axis: Any, ndim: int, op: str) -> tuple[int, ...] | None:
    """Axis argument as a sorted tuple of non-negative ints (None: every axis)."""
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


def _one_axis(axis: int, ndim: int, op: str) -> tuple[int, ...]:
    return _axes(operator.index(axis), ndim, op) or ()


def _reduce(code: str, x: Any, axis: Any, keepdims: bool, *extra: Any) -> Any:
    params = (_axes(axis, len(_shape(x)), code), bool(keepdims), *extra)
    return _array_op(_CODE[code], (x,), params)


# ---- reductions ----

def sum(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    """Sum over ``axis`` (int, tuple or None for all), as ``np.sum``.

    Example:
        >>> import tapegrad as tg
        >>> tg.sum(tg.Tensor([[1.0, 2.0], [3.0, 4.0]]), axis=0).data
        array([4., 6.])
    """
    return _reduce("sum", x, axis, keepdims)


def mean(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    """Mean over ``axis``, as ``np.mean``. Example: ``tapegrad.mean(t, axis=1)``."""
    shape = _shape(x)
    axes = _axes(axis, len(shape), "mean")
    count = math.prod([shape[a] for a in axes] if axes is not None else shape)
    return sum(x, axis, keepdims) / float(count)


def max(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    """Maximum over ``axis``; tied elements share the gradient evenly.

    Example: ``tapegrad.max(t, axis=-1)``.
    """
    return _reduce("max", x, axis, keepdims)


def min(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    """Minimum over ``axis``; tied elements share the gradient evenly.

    Example: ``tapegrad.min(t)``.
    """
    return _reduce("min", x, axis, keepdims)


def prod(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    """Product over ``axis``; its gradient is exact where elements are zero.

    Example: ``tapegrad.prod(t, axis=0)``.
    """
    return _reduce("prod", x, axis, keepdims)


def var(x: Any, axis: Any = None, ddof: int = 0, keepdims: bool = False) -> Any:
    """Variance over ``axis`` with ``ddof`` (0 by default, as numpy).

    Example: ``tapegrad.var(t, axis=0, ddof=1)``.
    """
    return _reduce("var", x, axis, keepdims, operator.index(ddof))


def std(x: Any, axis: Any = None, ddof: int = 0, keepdims: bool = False) -> Any:
    """Standard deviation over ``axis`` with ``ddof``: ``sqrt(var(...))``.

    Example: ``tapegrad.std(t)``.
    """
    return _core.sqrt(var(x, axis, ddof, keepdims))


def logsumexp(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    """``log(sum(exp(x)))`` over ``axis``, computed without overflow.

    Example: ``tapegrad.logsumexp(logits, axis=-1)``.
    """
    return _reduce("logsumexp", x, axis, keepdims)


def softmax(x: Any, axis: int = -1) -> Any:
    """``exp(x) / sum(exp(x))`` along ``axis``, computed without overflow.

    Example: ``tapegrad.softmax(logits)``.
    """
    return _array_op(_CODE["softmax"], (x,), (_one_axis(axis, len(_shape(x)), "softmax"),))


def log_softmax(x: Any, axis: int = -1) -> Any:
    """``x - logsumexp(x)`` along ``axis``.

    Example: ``tapegrad.log_softmax(logits, axis=1)``.
    """
    return _array_op(_CODE["log_softmax"], (x,),
                     (_one_axis(axis, len(_shape(x)), "log_softmax"),))


# ---- linear algebra ----

def matmul(a: Any, b: Any) -> Any:
    """``a @ b`` with numpy's rules (1-D, 2-D and broadcast batches).

    Example:
        >>> import tapegrad as tg
        >>> (tg.Tensor([[1.0, 2.0]]) @ tg.Tensor([[3.0], [4.0]])).data
        array([[11.]])
    """
    return _array_op(_CODE["matmul"], (a, b), ())  # shapes checked by the op (MatMul)


def dot(a: Any, b: Any) -> Any:
    """``np.dot``: a product for scalars, ``matmul`` up to 2-D, else a tensordot.

    Example: ``tapegrad.dot(u, v)``.
    """
    sa, sb = _shape(a), _shape(b)
    if not sa or not sb:
        return _apply2(_CODE["mul"], a, b)
    if len(sa) <= 2 and len(sb) <= 2:
        return matmul(a, b)
    letters = "abcdefghijklmnopqrstuvwxyz"
    left = letters[: len(sa)]
    right = letters[len(sa): len(sa) + len(sb)]
    right = right[:-2] + left[-1] + right[-1]
    return einsum(f"{left},{right}->{left[:-1]}{right[:-2]}{right[-1]}", a, b)


def outer(a: Any, b: Any) -> Any:
    """The outer product of the flattened inputs. Example: ``tapegrad.outer(u, v)``."""
    return _apply2(_CODE["mul"], reshape(a, (-1, 1)), reshape(b, (1, -1)))


def einsum(spec: str, *operands: Any) -> Any:
    """``np.einsum`` with an explicit spec (``"ij,jk->ik"``).

    Repeated letters in an input (``"ii->i"``) are allowed; the output may not
    repeat a letter, and ``...`` is not supported yet.

    Example: ``tapegrad.einsum("bij,bjk->bik", x, y)``.
    """
    if not isinstance(spec, str) or "->" not in spec:
        raise ValueError(f"einsum: give an explicit spec with '->', got {spec!r}")
    if "..." in spec:
        raise ValueError("einsum: '...' is not supported yet; write the axes out")
    inputs, out = spec.replace(" ", "").split("->")
    specs = tuple(inputs.split(","))
    if len(specs) != len(operands):
        raise ValueError(f"einsum: the spec {spec!r} names {len(specs)} operands, "
                         f"{len(operands)} given")
    if len(set(out)) != len(out):
        raise ValueError(f"einsum: the output {out!r} repeats a letter")
    for s, x in zip(specs, operands):
        if len(s) != len(_shape(x)):
            raise ValueError(f"einsum: {s!r} has {len(s)} letters for an operand of shape "
                             f"{_shape(x)}")
    return _array_op(_CODE["einsum"], operands, (specs, out))


# ---- shapes ----

def reshape(x: Any, *shape: Any) -> Any:
    """The same values in a new shape (one axis may be -1). Example: ``t.reshape(2, 3)``."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    return _array_op(_CODE["reshape"], (x,), (tuple(operator.index(n) for n in shape),))


def transpose(x: Any, axes: Any = None) -> Any:
    """Permute the axes (reverse them by default). Example: ``tapegrad.transpose(t)``."""
    ndim = len(_shape(x))
    if axes is None:
        perm = tuple(range(ndim))[::-1]
    else:
        perm = tuple(operator.index(a) % builtins.max(ndim, 1) for a in axes)
        if sorted(perm) != list(range(ndim)):
            raise ValueError(f"transpose: {tuple(axes)} is not a permutation of the "
                             f"{ndim} axes")
    return _array_op(_CODE["transpose"], (x,), (perm,))


def swapaxes(x: Any, axis1: int, axis2: int) -> Any:
    """Exchange two axes. Example: ``tapegrad.swapaxes(t, 0, 1)``."""
    ndim = len(_shape(x))
    (a,), (b,) = _one_axis(axis1, ndim, "swapaxes"), _one_axis(axis2, ndim, "swapaxes")
    perm = list(range(ndim))
    perm[a], perm[b] = perm[b], perm[a]
    return transpose(x, perm)


def expand_dims(x: Any, axis: Any) -> Any:
    """Insert axes of length one. Example: ``tapegrad.expand_dims(t, 0)``."""
    shape = list(_shape(x))
    axes = _axes(axis, len(shape) + (len(axis) if isinstance(axis, (tuple, list)) else 1),
                 "expand_dims")
    for a in axes or ():
        shape.insert(a, 1)
    return reshape(x, tuple(shape))


def squeeze(x: Any, axis: Any = None) -> Any:
    """Remove axes of length one (all of them by default). Example: ``t.squeeze(0)``."""
    shape = _shape(x)
    axes = _axes(axis, len(shape), "squeeze")
    if axes is None:
        axes = tuple(i for i, n in enumerate(shape) if n == 1)
    for a in axes:
        if shape[a] != 1:
            raise ValueError(f"squeeze: axis {a} has length {shape[a]}, not 1 (shape {shape})")
    return reshape(x, tuple(n for i, n in enumerate(shape) if i not in axes))


def flatten(x: Any) -> Any:
    """The values as a 1-D tensor. Example: ``t.flatten()``."""
    return reshape(x, (-1,))


def broadcast_to(x: Any, shape: Any) -> Any:
    """Broadcast to ``shape`` as numpy does; the gradient is summed back.

    Example: ``tapegrad.broadcast_to(bias, (64, 10))``.
    """
    shape = (operator.index(shape),) if np.ndim(shape) == 0 else tuple(shape)
    return _array_op(_CODE["broadcast_to"], (x,), (shape,))


# ---- indexing and joining ----

def _index_value(item: Any) -> Any:
    if isinstance(item, Tensor):
        return item.data
    if isinstance(item, list):
        return np.asarray(item)
    return item


def getitem(x: Any, index: Any) -> Any:
    """``x[index]`` with ints, slices, ``...``, None, boolean masks and integer arrays.

    Repeated integer indices add up in the gradient. Example: ``t[:, 0]``.
    """
    if isinstance(index, tuple):
        index = tuple(_index_value(i) for i in index)
    else:
        index = (_index_value(index),)
    advanced = any(isinstance(i, np.ndarray) or isinstance(i, (bool, np.bool_)) for i in index)
    return _array_op(_CODE["getitem"], (x,), (index, advanced))


def concatenate(tensors: Sequence[Any], axis: int | None = 0) -> Any:
    """Join along an existing axis (``axis=None`` flattens first), as numpy.

    Example: ``tapegrad.concatenate([a, b], axis=1)``.
    """
    tensors = list(tensors)
    if not tensors:
        raise ValueError("concatenate: need at least one array to concatenate")
    if axis is not None:
        (axis,) = _one_axis(axis, len(_shape(tensors[0])), "concatenate")
    return _array_op(_CODE["concatenate"], tensors, (axis,))


def stack(tensors: Sequence[Any], axis: int = 0) -> Any:
    """Join along a new axis, as ``np.stack``. Example: ``tapegrad.stack([a, b])``."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError("stack: need at least one array to stack")
    shapes = {_shape(t) for t in tensors}
    if len(shapes) != 1:
        raise ValueError(f"stack: all inputs must have the same shape, got {sorted(shapes)}")
    (axis,) = _one_axis(axis, len(_shape(tensors[0])) + 1, "stack")
    return concatenate([expand_dims(t, axis) for t in tensors], axis=axis)


def split(x: Any, indices_or_sections: Any, axis: int = 0) -> list:
    """Split into pieces along ``axis``, as ``np.split``. Example: ``a, b = tg.split(t, 2)``."""
    shape = _shape(x)
    (axis,) = _one_axis(axis, len(shape), "split")
    n = shape[axis]
    if np.ndim(indices_or_sections) == 0:
        sections = operator.index(indices_or_sections)
        if sections <= 0 or n % sections:
            raise ValueError(f"split: axis {axis} of length {n} does not split into "
                             f"{sections} equal sections")
        bounds = list(range(0, n + 1, n // sections)) if n else [0] * (sections + 1)
    else:
        bounds = [0, *[builtins.min(builtins.max(int(i), 0), n) for i in indices_or_sections], n]
    prefix = (slice(None),) * axis
    return [getitem(x, (*prefix, slice(lo, builtins.max(lo, hi))))
            for lo, hi in zip(bounds[:-1], bounds[1:])]


def where(condition: Any, x: Any, y: Any) -> Any:
    """Elements of ``x`` where ``condition`` holds, else of ``y``; ``condition`` is a constant.

    Example: ``tapegrad.where(t > 0, t, 0.0)``.
    """
    cond = np.asarray(condition.data if isinstance(condition, Tensor) else condition, dtype=bool)
    return _array_op(_CODE["where"], (x, y), (cond,))


def clip(x: Any, a_min: Any = None, a_max: Any = None) -> Any:
    """Limit values to ``[a_min, a_max]``; the gradient passes where ``a_min <= x <= a_max``.

    Example: ``tapegrad.clip(t, 0.0, 1.0)``.
    """
    if a_min is None and a_max is None:
        raise ValueError("clip: give a_min, a_max or both")
    lo, hi = (b.data if isinstance(b, Tensor) else b for b in (a_min, a_max))
    return _array_op(_CODE["clip"], (x,), (lo, hi))


def maximum(a: Any, b: Any) -> Any:
    """Elementwise maximum; ties give half the gradient to each side.

    Example: ``tapegrad.maximum(t, 0.0)``.
    """
    return _apply2(_CODE["maximum"], a, b)


def minimum(a: Any, b: Any) -> Any:
    """Elementwise minimum; ties give half the gradient to each side.

    Example: ``tapegrad.minimum(t, 1.0)``.
    """
    return _apply2(_CODE["minimum"], a, b)
