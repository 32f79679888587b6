"""Array ops: reductions, softmax, matmul, shapes, indexing, joining.

The other products (dot, einsum, tensordot, convolve, ...) are in products.py.

Each native op (csrc/array_ops.hpp) is one call to ``_core.array_op`` with its
parameters normalised here (axes as tuples of non-negative ints), tied to its
table entry by ``@wraps_op``. Ops that are compositions of others are written as
such and declared with ``@composite``, so their gradients come from the ops they
are made of (Note [Catalogue] in csrc/catalogue.hpp). Given no Tensor, each
returns a plain value.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import _core
from ._args import (
    FLOAT_DTYPES,
    UNSET,
    cast_for,
    compared,
    dtype_of,
    normal_axes,
    one_axis,
    refuse_out,
    shape_of,
    truth_of,
)
from ._core import TensorBase
from .catalogue import composite, wraps_op

_CODE = _core.OP_CODES
_array_op = _core.array_op


def _reduce(code: str, x: Any, axis: Any, keepdims: bool, *extra: Any) -> Any:
    params = (normal_axes(axis, len(shape_of(x)), code), bool(keepdims), *extra)
    return _array_op(_CODE[code], (x,), params)


# ---- reductions ----
# They take numpy's keywords where they can be honoured: dtype (float32 or
# float64: the values are cast first, as numpy does), out=None, where= (sum,
# mean, prod) and initial= (sum, prod); the rest is refused, naming the keyword.

def _mask(op: str, x: Any, condition: Any) -> np.ndarray | None:
    """numpy's where= as a boolean array of x's shape, or None for 'every element'."""
    if condition is UNSET or condition is True:
        return None
    mask = truth_of(condition)
    shape = shape_of(x)
    if np.broadcast_shapes(mask.shape, shape) != tuple(shape):
        raise ValueError(f"{op}: where= of shape {mask.shape} does not broadcast to the "
                         f"input's shape {tuple(shape)}")
    return np.broadcast_to(mask, shape)


@wraps_op("sum")
def sum(x: Any, axis: Any = None, keepdims: bool = False, *, dtype: Any = None,
        out: Any = None, initial: Any = UNSET, where: Any = UNSET) -> Any:
    """``dtype``, ``out=None``, ``initial`` and ``where`` as numpy's.

    Example:
        >>> import tapegrad as tg
        >>> tg.sum(tg.Tensor([[1.0, 2.0], [3.0, 4.0]]), axis=0).data
        array([4., 6.])
    """
    refuse_out("sum", out)
    x = cast_for("sum", x, dtype)
    mask = _mask("sum", x, where)
    if mask is not None:
        x = _where_op(mask, x, 0.0)
    total = _reduce("sum", x, axis, keepdims)
    return total if initial is UNSET else total + initial


@composite(doc="Mean over axis, as numpy.mean.", numpy="numpy.mean", method="mean")
def mean(x: Any, axis: Any = None, keepdims: bool = False, *, dtype: Any = None,
         out: Any = None, where: Any = UNSET) -> Any:
    """``dtype``, ``out=None`` and ``where`` as numpy's.

    Example: ``tapegrad.mean(t, axis=1)``.
    """
    refuse_out("mean", out)
    x = cast_for("mean", x, dtype)
    shape = shape_of(x)
    mask = _mask("mean", x, where)
    if mask is not None:
        count = np.sum(mask, axis=axis, keepdims=keepdims)
        return sum(x, axis, keepdims, where=mask) / count.astype(dtype_of(x))
    axes = normal_axes(axis, len(shape), "mean")
    count = math.prod([shape[a] for a in axes] if axes is not None else shape)
    return sum(x, axis, keepdims) / float(count)


def _extreme(op: str, x: Any, axis: Any, keepdims: bool, out: Any, initial: Any,
             where: Any) -> Any:
    """max or min with numpy's initial (one more element) and where= (which needs it)."""
    refuse_out(op, out)
    if isinstance(initial, TensorBase):
        raise TypeError(f"{op}: initial= must be a number; for a Tensor take "
                        f"tapegrad.{op}imum(tapegrad.{op}(t), initial)")
    mask = _mask(op, x, where)
    if mask is not None:
        if initial is UNSET:
            raise ValueError(f"{op}: where= needs initial= (the value of a slice where nothing "
                             "is selected), as numpy's")
        x = _where_op(mask, x, float(initial))
    if initial is UNSET:
        return _reduce(op, x, axis, keepdims)
    shape = shape_of(x)
    axes = normal_axes(axis, len(shape), op)
    if 0 in ([shape[a] for a in axes] if axes is not None else shape):
        return sum(x * 0.0, axis, keepdims) + float(initial)  # the initial alone
    m = _reduce(op, x, axis, keepdims)
    # Where initial wins it is a constant; on a tie the elements keep the gradient.
    kept = compared(m, ">=" if op == "max" else "<=", initial)
    return _where_op(kept, m, float(initial))


@wraps_op("max")
def max(x: Any, axis: Any = None, keepdims: bool = False, *, out: Any = None,
        initial: Any = UNSET, where: Any = UNSET) -> Any:
    """``out=None``, ``initial`` (one more element to compare) and ``where``
    (which needs ``initial``) as numpy's.

    Example:
        >>> import tapegrad as tg
        >>> tg.max(tg.Tensor([[1.0, 4.0], [3.0, 2.0]]), axis=-1).data
        array([4., 3.])
        >>> tg.max(tg.Tensor([1.0, 4.0]), initial=5.0).item()
        5.0
    """
    return _extreme("max", x, axis, keepdims, out, initial, where)


@wraps_op("min")
def min(x: Any, axis: Any = None, keepdims: bool = False, *, out: Any = None,
        initial: Any = UNSET, where: Any = UNSET) -> Any:
    """``out=None``, ``initial`` and ``where`` as numpy's (as ``max``).

    Example: ``tapegrad.min(t)``.
    """
    return _extreme("min", x, axis, keepdims, out, initial, where)


@wraps_op("prod")
def prod(x: Any, axis: Any = None, keepdims: bool = False, *, dtype: Any = None,
         out: Any = None, initial: Any = UNSET, where: Any = UNSET) -> Any:
    """``dtype``, ``out=None``, ``initial`` and ``where`` as numpy's.

    Example: ``tapegrad.prod(t, axis=0)``.
    """
    refuse_out("prod", out)
    x = cast_for("prod", x, dtype)
    mask = _mask("prod", x, where)
    if mask is not None:
        x = _where_op(mask, x, 1.0)
    product = _reduce("prod", x, axis, keepdims)
    return product if initial is UNSET else product * initial


def _ddof(op: str, ddof: Any, correction: Any, out: Any) -> int:
    refuse_out(op, out)
    if correction is not UNSET:
        if ddof != 0:
            raise ValueError(f"{op}: give ddof or correction, not both")
        ddof = correction
    return operator.index(ddof)


def _composed_var(op: str, x: Any, axis: Any, ddof: int, keepdims: bool, mask: Any,
                  mean: Any) -> Any:
    """The variance over the selected elements (mask: all when None) about ``mean``
    (computed when unset), composed of recorded ops: a Tensor mean gets its gradient."""
    shape = shape_of(x)
    axes = normal_axes(axis, len(shape), op)
    selected = np.ones(shape, dtype=bool) if mask is None else mask
    count = np.sum(selected, axis=axes, keepdims=True).astype(dtype_of(x))
    if mean is UNSET:
        mean = sum(_where_op(selected, x, 0.0), axes, True) / count
    centred = x - mean
    squares = _where_op(selected, centred * centred, 0.0)
    divisor = count - ddof
    return sum(squares, axes, keepdims) / (divisor if keepdims else
                                           np.squeeze(divisor, axis=axes))


@wraps_op("var")
def var(x: Any, axis: Any = None, ddof: int = 0, keepdims: bool = False, *, dtype: Any = None,
        out: Any = None, correction: Any = UNSET, mean: Any = UNSET,
        where: Any = UNSET) -> Any:
    """``dtype``, ``out=None``, ``correction`` (another name for ddof), ``where``
    (the elements to include) and ``mean`` (used instead of the mean, with the
    reduced axes kept, as numpy's; a Tensor gets a gradient) as numpy's.

    Example:
        >>> import tapegrad as tg
        >>> tg.var(tg.Tensor([1.0, 2.0, 3.0, 4.0]), ddof=1).item()
        1.6666666666666667
    """
    ddof = _ddof("var", ddof, correction, out)
    x = cast_for("var", x, dtype)
    mask = _mask("var", x, where)
    if mask is None and mean is UNSET:
        return _reduce("var", x, axis, keepdims, ddof)
    return _composed_var("var", x, axis, ddof, keepdims, mask, mean)


@wraps_op("std")
def std(x: Any, axis: Any = None, ddof: int = 0, keepdims: bool = False, *, dtype: Any = None,
        out: Any = None, correction: Any = UNSET, mean: Any = UNSET,
        where: Any = UNSET) -> Any:
    """Where the standard deviation is 0 (one element, or equal elements) its
    gradient is 0, as PyTorch's, not the NaN that ``sqrt(var)`` would give;
    where it is NaN (``ddof`` >= the count) so is the gradient. ``dtype``,
    ``out=None``, ``correction``, ``where`` and ``mean`` as ``var``'s.

    Example:
        >>> import tapegrad as tg
        >>> x = tg.Tensor([0.7, 0.7])
        >>> tg.grad(tg.std(x), [x])[0].data
        array([0., 0.])
    """
    ddof = _ddof("std", ddof, correction, out)
    x = cast_for("std", x, dtype)
    mask = _mask("std", x, where)
    if mask is None and mean is UNSET:
        return _reduce("std", x, axis, keepdims, ddof)
    v = _composed_var("std", x, axis, ddof, keepdims, mask, mean)
    # sqrt has no derivative at 0: there the gradient is 0, as the std op's.
    nonzero = compared(v, "!=", 0)
    return _where_op(nonzero, _core.sqrt(_where_op(nonzero, v, 1.0)), 0.0)


@wraps_op("logsumexp")
def logsumexp(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    """Example: ``tapegrad.logsumexp(logits, axis=-1)``."""
    return _reduce("logsumexp", x, axis, keepdims)


@wraps_op("softmax")
def softmax(x: Any, axis: int = -1) -> Any:
    """Example: ``tapegrad.softmax(logits)``."""
    return _array_op(_CODE["softmax"], (x,), (one_axis(axis, len(shape_of(x)), "softmax"),))


@wraps_op("log_softmax")
def log_softmax(x: Any, axis: int = -1) -> Any:
    """Example: ``tapegrad.log_softmax(logits, axis=1)``."""
    return _array_op(_CODE["log_softmax"], (x,),
                     (one_axis(axis, len(shape_of(x)), "log_softmax"),))


# ---- linear algebra ----

@wraps_op("matmul")
def matmul(a: Any, b: Any) -> Any:
    """
    Example:
        >>> import tapegrad as tg
        >>> (tg.Tensor([[1.0, 2.0]]) @ tg.Tensor([[3.0], [4.0]])).data
        array([[11.]])
    """
    return _array_op(_CODE["matmul"], (a, b), ())  # shapes checked by the op (MatMul)


# ---- shapes ----

@wraps_op("reshape")
def reshape(x: Any, *shape: Any) -> Any:
    """Example: ``t.reshape(2, 3)``."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    return _array_op(_CODE["reshape"], (x,), (tuple(operator.index(n) for n in shape),))


@wraps_op("transpose")
def transpose(x: Any, axes: Any = None) -> Any:
    """Example: ``tapegrad.transpose(t)``."""
    ndim = len(shape_of(x))
    if axes is None:
        perm = tuple(range(ndim))[::-1]
    else:
        perm = tuple(one_axis(a, ndim, "transpose")[0] for a in axes)
        if sorted(perm) != list(range(ndim)):
            raise ValueError(f"transpose: {tuple(axes)} is not a permutation of the "
                             f"{ndim} axes")
    return _array_op(_CODE["transpose"], (x,), (perm,))


@composite(doc="Exchange two axes.", numpy="numpy.swapaxes", method="swapaxes")
def swapaxes(x: Any, axis1: int, axis2: int) -> Any:
    """Example: ``tapegrad.swapaxes(t, 0, 1)``."""
    ndim = len(shape_of(x))
    (a,), (b,) = one_axis(axis1, ndim, "swapaxes"), one_axis(axis2, ndim, "swapaxes")
    perm = list(range(ndim))
    perm[a], perm[b] = perm[b], perm[a]
    return transpose(x, perm)


@composite(doc="Insert axes of length one.", numpy="numpy.expand_dims")
def expand_dims(x: Any, axis: Any) -> Any:
    """Example: ``tapegrad.expand_dims(t, 0)``."""
    shape = list(shape_of(x))
    axes = normal_axes(axis, len(shape) + (len(axis) if isinstance(axis, (tuple, list)) else 1),
                       "expand_dims")
    for a in axes or ():
        shape.insert(a, 1)
    return reshape(x, tuple(shape))


@composite(
    doc="Remove axes of length one (all of them by default).",
    numpy="numpy.squeeze",
    method="squeeze",
)
def squeeze(x: Any, axis: Any = None) -> Any:
    """Example: ``t.squeeze(0)``."""
    shape = shape_of(x)
    axes = normal_axes(axis, len(shape), "squeeze")
    if axes is None:
        axes = tuple(i for i, n in enumerate(shape) if n == 1)
    for a in axes:
        if shape[a] != 1:
            raise ValueError(f"squeeze: axis {a} has length {shape[a]}, not 1 (shape {shape})")
    return reshape(x, tuple(n for i, n in enumerate(shape) if i not in axes))


@composite(doc="The values as a 1-D tensor, in C (row-major) or F (column-major) order.",
           method="flatten")
def flatten(x: Any, order: str = "C") -> Any:
    """Example: ``t.flatten()``."""
    if order == "F":
        return reshape(transpose(x), (-1,))
    if order != "C":
        raise ValueError(f"flatten: order={order!r} is not supported on Tensors; use 'C' or 'F'")
    return reshape(x, (-1,))


@wraps_op("broadcast_to")
def broadcast_to(x: Any, shape: Any) -> Any:
    """Example: ``tapegrad.broadcast_to(bias, (64, 10))``."""
    shape = (operator.index(shape),) if np.ndim(shape) == 0 else tuple(shape)
    return _array_op(_CODE["broadcast_to"], (x,), (shape,))


@wraps_op("astype")
def astype(x: Any, dtype: Any, order: str = "K", casting: str = "unsafe", subok: bool = True,
           copy: bool = True) -> Any:
    """The gradient comes back in ``x``'s dtype. An integer or boolean ``dtype``
    gives a plain ndarray, as PyTorch's ``t.to(torch.int64)`` gives a tensor that
    does not require grad: truncation's derivative is zero almost everywhere, so
    nothing is lost, and a Tensor holds only float values. numpy's ``casting``
    is checked as numpy checks it; ``order``, ``subok`` and ``copy`` change
    nothing a Tensor shows. Complex dtypes are refused.

    Example:
        >>> import numpy as np
        >>> import tapegrad as tg
        >>> t = tg.Tensor(np.array([1.5, -2.5]))
        >>> t.astype(np.float32).dtype
        dtype('float32')
        >>> t.astype(int)
        array([ 1, -2])
    """
    want = np.dtype(dtype)
    have = dtype_of(x)
    if not np.can_cast(have, want, casting=casting):
        raise TypeError(f"astype: cannot cast {have} to {want} according to the rule "
                        f"{casting!r}")
    if want.kind in "biu":  # no gradient: the value, as PyTorch's integer tensors
        return np.array(x.data if isinstance(x, TensorBase) else x, dtype=want)
    if want not in FLOAT_DTYPES:
        raise TypeError(
            f"astype: tapegrad differentiates float32 and float64 values, not {want}; cast to "
            "float32 or float64 (complex numbers come in their own issue)")
    return _array_op(_CODE["astype"], (x,), (want,))


# ---- indexing and joining ----

def _index_value(item: Any) -> Any:
    if isinstance(item, TensorBase):
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


@wraps_op("concatenate")
def concatenate(tensors: Sequence[Any], axis: int | None = 0) -> Any:
    """Example: ``tapegrad.concatenate([a, b], axis=1)``."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError("concatenate: need at least one array to concatenate")
    if axis is not None:
        (axis,) = one_axis(axis, len(shape_of(tensors[0])), "concatenate")
    return _array_op(_CODE["concatenate"], tensors, (axis,))


@composite(doc="Join along a new axis, as numpy.stack.", numpy="numpy.stack", arity=-1)
def stack(tensors: Sequence[Any], axis: int = 0) -> Any:
    """Example: ``tapegrad.stack([a, b])``."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError("stack: need at least one array to stack")
    shapes = {shape_of(t) for t in tensors}
    if len(shapes) != 1:
        raise ValueError(f"stack: all inputs must have the same shape, got {sorted(shapes)}")
    (axis,) = one_axis(axis, len(shape_of(tensors[0])) + 1, "stack")
    return concatenate([expand_dims(t, axis) for t in tensors], axis=axis)


@composite(doc="Split into pieces along axis, as numpy.split.", numpy="numpy.split")
def split(x: Any, indices_or_sections: Any, axis: int = 0) -> list:
    """A number of equal sections, or the indices where pieces start (as slice
    bounds: negative ones count from the end, as numpy's).

    Example:
        >>> import tapegrad as tg
        >>> [p.data for p in tg.split(tg.Tensor([1.0, 2.0, 3.0, 4.0]), [-1])]
        [array([1., 2., 3.]), array([4.])]
    """
    shape = shape_of(x)
    (axis,) = one_axis(axis, len(shape), "split")
    n = shape[axis]
    if np.ndim(indices_or_sections) == 0:
        sections = operator.index(indices_or_sections)
        if sections <= 0 or n % sections:
            raise ValueError(f"split: axis {axis} of length {n} does not split into "
                             f"{sections} equal sections; array_split allows unequal ones")
        bounds = [i * (n // sections) for i in range(sections + 1)]
    else:
        bounds = [0, *[operator.index(i) for i in indices_or_sections], n]
    prefix = (slice(None),) * axis
    return [getitem(x, (*prefix, slice(lo, hi))) for lo, hi in zip(bounds[:-1], bounds[1:])]


@wraps_op("where")
def where(condition: Any, x: Any, y: Any) -> Any:
    """Example: ``tapegrad.where(t > 0, t, 0.0)``."""
    cond = truth_of(condition)
    return _array_op(_CODE["where"], (x, y), (cond,))


_where_op = where  # the reductions' `where` keyword shadows the function

_NO_BOUND = object()


@wraps_op("clip")
def clip(x: Any, a_min: Any = _NO_BOUND, a_max: Any = _NO_BOUND, out: Any = None, *,
         min: Any = _NO_BOUND, max: Any = _NO_BOUND) -> Any:
    """Bounds may be numbers, arrays or Tensors, spelt ``a_min``/``a_max`` or
    ``min``/``max`` as numpy allows; a bound that is a Tensor gets a gradient
    where the value comes from it (PyTorch's ties: x's where ``a_min <= x <=
    a_max``, ``a_min``'s where ``x < a_min < a_max``, ``a_max``'s where ``x >
    a_max`` or ``a_max < a_min``, when the value is ``a_max`` everywhere).

    Example:
        >>> import tapegrad as tg
        >>> x, lo = tg.Tensor([0.5, 2.0]), tg.Tensor([1.0, 1.0])
        >>> [g.data for g in tg.grad(tg.clip(x, lo, 1.5).sum(), [x, lo])]
        [array([0., 0.]), array([1., 0.])]
    """
    if out is not None:
        raise TypeError("clip: out= cannot hold a recorded result; drop it and use the "
                        "returned Tensor")

    def bound(short: Any, numpy_name: Any, name: str) -> Any:
        if short is not _NO_BOUND and numpy_name is not _NO_BOUND:
            raise TypeError(f"clip: give a_{name} or {name}, not both")
        value = numpy_name if short is _NO_BOUND else short
        return None if value is _NO_BOUND else value

    lo, hi = bound(min, a_min, "min"), bound(max, a_max, "max")
    if lo is None and hi is None:
        raise ValueError("clip: give a_min, a_max or both (None means no bound)")
    inputs = (x, *(b for b in (lo, hi) if b is not None))
    return _array_op(_CODE["clip"], inputs, (lo is not None, hi is not None))
