"""Products: einsum, dot, vdot, inner, outer, tensordot, kron, cross, convolve.

``einsum`` is one native op (csrc/array_ops.hpp ``Einsum``) that contracts
through BLAS with a plan cached by spec and shapes (Note [Contractions] in
csrc/contract.hpp); its spec is normalised here to explicit letters, so the
op only ever sees ``'ij,jk->ik'``-style specs. ``dot``, ``vdot``, ``inner`` and
``tensordot`` are einsums, ``outer`` and ``kron`` broadcast multiplies, and
``cross`` is made of its components; their gradients come from those ops.
``convolve`` is a native op (``Convolve``), whose backward is convolutions.
Given no Tensor, each returns numpy's plain value.

Example:
    >>> import numpy as np
    >>> import tapegrad as tg
    >>> a = tg.Tensor(np.arange(6.0).reshape(2, 3))
    >>> np.einsum("ij,ij", a, a).data
    array(55.)
"""

from __future__ import annotations

import builtins
import operator
import warnings
from typing import Any

import numpy as np

from . import _core
from ._args import shape_of
from .array_ops import broadcast_to, getitem, matmul, reshape, stack, transpose
from .catalogue import composite, wraps_op

_CODE = _core.OP_CODES
_array_op = _core.array_op
_apply2 = _core.apply_binary

# numpy's own order for the interleaved form's integers: 0-25 are A-Z, 26-51 a-z.
_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _multiply(a: Any, b: Any) -> Any:
    return _apply2(_CODE["mul"], a, b)


def _contract(operands: tuple, specs: tuple[str, ...], out: str) -> Any:
    """The einsum op on explicit specs (checked by the op itself)."""
    return _array_op(_CODE["einsum"], operands, (specs, out))


# ---- einsum ----

# (spec, ranks) -> (explicit input specs, output spec, the letters '...' became)
_SPECS: dict[tuple[str, tuple[int, ...]], tuple[tuple[str, ...], str, str]] = {}


def _sublist_spec(args: tuple) -> tuple[str, tuple]:
    """numpy's interleaved form ``einsum(op0, sublist0, op1, sublist1, ..., [out])`` as a spec."""

    def letters(sublist: Any) -> str:
        out = []
        for s in sublist:
            if s is Ellipsis:
                out.append("...")
                continue
            try:
                n = operator.index(s)
            except TypeError:
                raise TypeError(f"einsum: a subscript list holds ints in [0, 52) or Ellipsis, "
                                f"got {s!r}") from None
            if not 0 <= n < len(_LETTERS):
                raise ValueError(f"einsum: subscript {n} is out of range: use ints in [0, 52)")
            out.append(_LETTERS[n])
        return "".join(out)

    operands = args[0::2] if len(args) % 2 == 0 else args[0:-1:2]
    inputs = ",".join(letters(s) for s in args[1::2][:len(operands)])
    spec = inputs if len(args) % 2 == 0 else f"{inputs}->{letters(args[-1])}"
    return spec, tuple(operands)


def _parse(spec: str, ranks: tuple[int, ...]) -> tuple[tuple[str, ...], str, str]:
    """Explicit input specs and output for ``spec`` on operands of these ranks."""
    text = spec.replace(" ", "")
    inputs, arrow, out = text.partition("->")
    if arrow and ("-" in out or ">" in out):
        raise ValueError(f"einsum: {spec!r} has more than one '->'")
    terms = inputs.split(",")
    if len(terms) != len(ranks):
        raise ValueError(f"einsum: the spec {spec!r} names {len(terms)} operand"
                         f"{'s' if len(terms) != 1 else ''}, {len(ranks)} given")
    used = set()
    for term in [*terms, out]:
        if term.count(".") not in (0, 3) or (term.count(".") == 3 and "..." not in term):
            raise ValueError(f"einsum: {term!r} has a '.' that is not part of an ellipsis '...'")
        for c in term.replace("...", ""):
            if c not in _LETTERS:
                raise ValueError(f"einsum: invalid subscript {c!r} in {spec!r}: subscripts are "
                                 "letters a-z, A-Z (and '...')")
            used.add(c)
    # The axes '...' stands for, per operand: they broadcast, aligned on the right.
    ellipsis_ranks = []
    for k, (term, rank) in enumerate(zip(terms, ranks)):
        named = len(term.replace("...", ""))
        if "..." not in term and named != rank:
            raise ValueError(f"einsum: {term!r} has {named} letters for operand {k}, which has "
                             f"{rank} axes: give one letter per axis, or '...' for the rest")
        if "..." in term and named > rank:
            raise ValueError(f"einsum: {term!r} names {named} axes for operand {k}, which has "
                             f"only {rank}")
        ellipsis_ranks.append(rank - named if "..." in term else 0)
    fresh = [c for c in _LETTERS if c not in used]
    n_ell = builtins.max(ellipsis_ranks, default=0)
    if n_ell > len(fresh):
        raise ValueError(f"einsum: {spec!r} needs more than 52 letters")
    ell = "".join(fresh[:n_ell])
    specs = tuple(t.replace("...", ell[n_ell - e:]) for t, e in zip(terms, ellipsis_ranks))
    if not arrow:
        # numpy's implicit output: the broadcast axes, then the letters that
        # appear once, in alphabetical order (upper case first).
        counts: dict[str, int] = {}
        for term in terms:
            for c in term.replace("...", ""):
                counts[c] = counts.get(c, 0) + 1
        out = ell + "".join(sorted(c for c, n in counts.items() if n == 1))
    elif "..." in out:
        out = out.replace("...", ell)
    elif n_ell:
        raise ValueError(f"einsum: the output of {spec!r} has no '...', but '...' stands for "
                         f"{n_ell} axes in the inputs: write '...' in the output (or sum those "
                         "axes after the einsum)")
    return specs, out, ell


def _check_ellipsis(spec: str, specs: tuple[str, ...], ell: str, shapes: list) -> None:
    """The axes '...' stands for must broadcast, as numpy's would."""
    for c in ell:
        lengths = {shape[s.index(c)] for s, shape in zip(specs, shapes) if c in s}
        if len(lengths - {1}) > 1:
            raise ValueError(f"einsum: operands could not be broadcast together over '...' in "
                             f"{spec!r}: shapes {', '.join(str(tuple(s)) for s in shapes)}")


@wraps_op("einsum")
def einsum(subscripts: Any, *operands: Any, out: Any = None, dtype: Any = None,
           order: str = "K", casting: str = "safe", optimize: Any = False) -> Any:
    """Every spec numpy takes: an explicit output (``'ij,jk->ik'``) or the implicit
    one (``'ij,jk'``: the letters that appear once, in alphabetical order),
    ``...`` for broadcast axes (in the inputs and the output), repeated letters
    in an input for a diagonal or a trace (``'ii->i'``, ``'ii'``), operands of
    different float dtypes (numpy's promotion), and the interleaved form
    ``einsum(op0, sublist0, op1, sublist1, ..., [sublistout])``.

    It always contracts as ``optimize=True`` would, through BLAS, forward and
    backward, whatever ``optimize`` says; ``order`` and ``casting`` change no
    value and are accepted; ``out`` and ``dtype`` are refused.

    Example:
        >>> import numpy as np
        >>> import tapegrad as tg
        >>> a = tg.Tensor(np.arange(4.0).reshape(2, 2))
        >>> tg.einsum("ii", a).data      # the trace
        array(3.)
        >>> tg.einsum("...i,i->...", a, np.ones(2)).data
        array([1., 5.])
    """
    if out is not None or dtype is not None:
        raise TypeError("einsum: out= and dtype= are not supported on Tensors; the result is a "
                        "new Tensor (cast it with .astype, or the operands before)")
    if isinstance(subscripts, str):
        spec = subscripts
    else:
        spec, operands = _sublist_spec((subscripts, *operands))
    shapes = [shape_of(x) for x in operands]
    key = (spec, tuple(len(s) for s in shapes))
    parsed = _SPECS.get(key)
    if parsed is None:
        parsed = _parse(spec, key[1])
        if len(_SPECS) >= 1024:  # a program uses a few specs: bound the cache anyway
            _SPECS.clear()
        _SPECS[key] = parsed
    specs, output, ell = parsed
    if ell:
        _check_ellipsis(spec, specs, ell, shapes)
    return _contract(operands, specs, output)


# ---- dot products ----

@composite(
    doc="numpy.dot: a product for scalars, matmul up to 2-D, else a sum over "
    "the last axis of a and the second-to-last of b.",
    numpy="numpy.dot",
    method="dot",
    arity=2,
)
def dot(a: Any, b: Any) -> Any:
    """For N-D operands ``dot(a, b)[i, j, k, m] = sum(a[i, j, :] * b[k, :, m])``
    (the only axis of ``b`` when it is 1-D), as numpy's.

    Example:
        >>> import numpy as np
        >>> import tapegrad as tg
        >>> a = tg.Tensor(np.ones((2, 3, 4)))
        >>> np.dot(a, np.arange(4.0)).data
        array([[6., 6., 6.],
               [6., 6., 6.]])
    """
    sa, sb = shape_of(a), shape_of(b)
    if not sa or not sb:
        return _multiply(a, b)
    if len(sa) <= 2 and len(sb) <= 2:
        return matmul(a, b)
    axis_b = builtins.max(len(sb) - 2, 0)
    if sa[-1] != sb[axis_b]:
        raise ValueError(f"dot: shapes {sa} and {sb} are not aligned: the last axis of a "
                         f"({sa[-1]}) must equal the "
                         f"{'only' if len(sb) == 1 else 'second-to-last'} axis of b ({sb[axis_b]})")
    return tensordot(a, b, axes=([len(sa) - 1], [axis_b]))


@composite(doc="numpy.vdot: the dot product of the flattened inputs.", numpy="numpy.vdot",
           arity=2)
def vdot(a: Any, b: Any) -> Any:
    """Both inputs are flattened, so they need the same number of elements.

    Example:
        >>> import tapegrad as tg
        >>> tg.vdot(tg.Tensor([[1.0, 2.0], [3.0, 4.0]]), tg.Tensor([1.0, 1.0, 1.0, 1.0])).data
        array(10.)
    """
    na, nb = int(np.prod(shape_of(a))), int(np.prod(shape_of(b)))
    if na != nb:
        raise ValueError(f"vdot: a has {na} elements (shape {shape_of(a)}) and b has {nb} "
                         f"(shape {shape_of(b)}); vdot needs the same number in both")
    return _contract((reshape(a, (-1,)), reshape(b, (-1,))), ("i", "i"), "")


@composite(doc="numpy.inner: a sum over the last axes of a and b.", numpy="numpy.inner",
           arity=2)
def inner(a: Any, b: Any) -> Any:
    """The result has shape ``a.shape[:-1] + b.shape[:-1]``; a scalar multiplies.

    Example:
        >>> import tapegrad as tg
        >>> tg.inner(tg.Tensor([[1.0, 2.0], [3.0, 4.0]]), tg.Tensor([1.0, 1.0])).data
        array([3., 7.])
    """
    sa, sb = shape_of(a), shape_of(b)
    if not sa or not sb:
        return _multiply(a, b)
    if sa[-1] != sb[-1]:
        raise ValueError(f"inner: the last axes of a {sa} and b {sb} differ "
                         f"({sa[-1]} and {sb[-1]}); inner sums over them")
    left, right = _LETTERS[26:26 + len(sa) - 1], _LETTERS[:len(sb) - 1]
    return _contract((a, b), (left + "z", right + "z"), left + right)


@composite(doc="The outer product of the flattened inputs.", numpy="numpy.outer", arity=2)
def outer(a: Any, b: Any) -> Any:
    """
    Example:
        >>> import tapegrad as tg
        >>> tg.outer(tg.Tensor([1.0, 2.0]), tg.Tensor([1.0, 10.0])).data
        array([[ 1., 10.],
               [ 2., 20.]])
    """
    return _multiply(reshape(a, (-1, 1)), reshape(b, (1, -1)))


def _tensordot_axes(axes: Any, na: int, nb: int) -> tuple[list[int], list[int]]:
    try:
        n = operator.index(axes)
    except TypeError:
        try:
            axes_a, axes_b = axes
        except (TypeError, ValueError):
            raise ValueError(f"tensordot: axes must be an int or a pair of sequences of axes, "
                             f"got {axes!r}") from None
        axes_a = [axes_a] if np.ndim(axes_a) == 0 else list(axes_a)
        axes_b = [axes_b] if np.ndim(axes_b) == 0 else list(axes_b)
    else:
        if n < 0 or n > builtins.min(na, nb):
            raise ValueError(f"tensordot: axes={n} must be between 0 and the smaller rank "
                             f"({builtins.min(na, nb)})")
        axes_a, axes_b = list(range(na - n, na)), list(range(n))
    if len(axes_a) != len(axes_b):
        raise ValueError(f"tensordot: {len(axes_a)} axes of a but {len(axes_b)} of b; give as "
                         "many of each")

    def normal(ax: list, n: int, which: str) -> list[int]:
        out = []
        for x in ax:
            try:
                x = operator.index(x)
            except TypeError:
                raise TypeError(f"tensordot: axes are ints, got {x!r} in {axes!r}") from None
            if not -n <= x < n:
                raise np.exceptions.AxisError(f"tensordot: axis {x} is out of bounds for {which}, "
                                              f"which has {n} axes")
            out.append(x % n)
        if len(set(out)) != len(out):
            raise ValueError(f"tensordot: axes {ax} of {which} repeat an axis")
        return out

    return normal(axes_a, na, "a"), normal(axes_b, nb, "b")


@composite(doc="numpy.tensordot: a sum over the given axes of a and b.", numpy="numpy.tensordot",
           arity=2)
def tensordot(a: Any, b: Any, axes: Any = 2) -> Any:
    """``axes`` is an int n (the last n axes of a with the first n of b) or a pair
    of sequences of axes; the result has a's other axes, then b's.

    Example:
        >>> import numpy as np
        >>> import tapegrad as tg
        >>> a = tg.Tensor(np.ones((2, 3, 4)))
        >>> tg.tensordot(a, np.ones((4, 3)), axes=([1, 2], [1, 0])).data
        array([12., 12.])
    """
    sa, sb = shape_of(a), shape_of(b)
    axes_a, axes_b = _tensordot_axes(axes, len(sa), len(sb))
    for i, j in zip(axes_a, axes_b):
        if sa[i] != sb[j]:
            raise ValueError(f"tensordot: shapes {sa} and {sb} do not match over axes {axes_a} "
                             f"and {axes_b}: axis {i} of a has length {sa[i]}, axis {j} of b "
                             f"{sb[j]}")
    la = _LETTERS[:len(sa)]
    lb = list(_LETTERS[len(sa):len(sa) + len(sb)])
    for i, j in zip(axes_a, axes_b):
        lb[j] = la[i]
    out = "".join(c for i, c in enumerate(la) if i not in axes_a)
    out += "".join(c for j, c in enumerate(lb) if j not in axes_b)
    return _contract((a, b), (la, "".join(lb)), out)


@composite(doc="numpy.kron: the Kronecker product, block (i, j) being a[i, j] * b.",
           numpy="numpy.kron", arity=2)
def kron(a: Any, b: Any) -> Any:
    """The operand of fewer axes gets leading axes of length 1, as numpy's.

    Example:
        >>> import tapegrad as tg
        >>> tg.kron(tg.Tensor([1.0, 10.0]), tg.Tensor([1.0, 2.0, 3.0])).data
        array([ 1.,  2.,  3., 10., 20., 30.])
    """
    sa, sb = shape_of(a), shape_of(b)
    nd = builtins.max(len(sa), len(sb))
    sa, sb = (1,) * (nd - len(sa)) + tuple(sa), (1,) * (nd - len(sb)) + tuple(sb)
    # a's axes interleaved with b's: (a0, 1, a1, 1, ...) * (1, b0, 1, b1, ...).
    spread_a = tuple(n for m in sa for n in (m, 1))
    spread_b = tuple(n for m in sb for n in (1, m))
    product = _multiply(reshape(a, spread_a), reshape(b, spread_b))
    return reshape(product, tuple(m * n for m, n in zip(sa, sb)))


def _moveaxis_last(x: Any, axis: int, what: str) -> Any:
    nd = len(shape_of(x))
    if not -nd <= axis < nd:
        raise np.exceptions.AxisError(f"cross: {what}={axis} is out of bounds for an array of "
                                      f"dimension {nd}")
    axis %= nd
    if axis == nd - 1:
        return x
    return transpose(x, [i for i in range(nd) if i != axis] + [axis])


@composite(doc="numpy.cross: the cross product of 3-vectors (or 2-vectors) along an axis.",
           numpy="numpy.cross", arity=2)
def cross(a: Any, b: Any, axisa: int = -1, axisb: int = -1, axisc: int = -1,
          axis: int | None = None) -> Any:
    """Vectors lie along ``axisa`` of a and ``axisb`` of b (``axis`` sets all three),
    the rest broadcasts, and the result's vectors lie along ``axisc``. Two
    2-vectors give the z component alone, as numpy (which deprecates them).

    Example:
        >>> import tapegrad as tg
        >>> tg.cross(tg.Tensor([1.0, 0.0, 0.0]), tg.Tensor([0.0, 1.0, 0.0])).data
        array([0., 0., 1.])
    """
    if axis is not None:
        axisa = axisb = axisc = axis
    sa, sb = shape_of(a), shape_of(b)
    if not sa or not sb:
        raise ValueError(f"cross: a {sa} and b {sb} must be arrays of 2- or 3-vectors")
    a = _moveaxis_last(a, operator.index(axisa), "axisa")
    b = _moveaxis_last(b, operator.index(axisb), "axisb")
    na, nb = shape_of(a)[-1], shape_of(b)[-1]
    if na not in (2, 3) or nb not in (2, 3):
        raise ValueError(f"cross: incompatible dimensions for cross product: vectors of length "
                         f"{na} and {nb} (shapes {sa}, {sb}); they must have 2 or 3 components")
    if na == 2 or nb == 2:
        warnings.warn("Arrays of 2-dimensional vectors are deprecated. Use arrays of "
                      "3-dimensional vectors instead. (deprecated in NumPy 2.0)",
                      DeprecationWarning, stacklevel=3)
    a_ = [getitem(a, (Ellipsis, i)) for i in range(na)]
    b_ = [getitem(b, (Ellipsis, i)) for i in range(nb)]

    def mul(x: Any, y: Any) -> Any:
        return _multiply(x, y)

    z = _apply2(_CODE["sub"], mul(a_[0], b_[1]), mul(a_[1], b_[0]))
    if na == 2 and nb == 2:
        return z
    if na == 3 and nb == 3:
        x = _apply2(_CODE["sub"], mul(a_[1], b_[2]), mul(a_[2], b_[1]))
        y = _apply2(_CODE["sub"], mul(a_[2], b_[0]), mul(a_[0], b_[2]))
    elif na == 2:  # a's third component is 0
        x = mul(a_[1], b_[2])
        y = _apply2(_CODE["mul"], mul(a_[0], b_[2]), -1.0)
    else:  # b's third component is 0
        x = _apply2(_CODE["mul"], mul(a_[2], b_[1]), -1.0)
        y = mul(a_[2], b_[0])
    shape = np.broadcast_shapes(shape_of(x), shape_of(y), shape_of(z))
    parts = [p if shape_of(p) == shape else broadcast_to(p, shape) for p in (x, y, z)]
    result = stack(parts, axis=-1)
    nd = len(shape) + 1
    axisc = operator.index(axisc)
    if not -nd <= axisc < nd:
        raise np.exceptions.AxisError(f"cross: axisc={axisc} is out of bounds for the result, "
                                      f"which has {nd} axes")
    axisc %= nd
    if axisc == nd - 1:
        return result
    perm = list(range(nd - 1))
    perm.insert(axisc, nd - 1)
    return transpose(result, perm)


# ---- convolution ----

def convolution(a: Any, v: Any, mode: str, method: str | None) -> Any:
    """The native convolve op: ``mode`` 'full' or 'valid'; numpy's when ``method`` is None,
    else scipy.signal's with that method ('auto', 'direct' or 'fft').

    Example: ``convolution(a, v, "full", None)`` is ``np.convolve(a, v)``, recorded.
    """
    return _array_op(_CODE["convolve"], (a, v), (mode, method))


def centered(full: Any, lengths: tuple[int, ...]) -> Any:
    """The middle ``lengths`` of ``full``, as numpy's and scipy's 'same' take it.

    Example: ``centered(convolution(a, v, "full", None), (len(a),))``.
    """
    index = tuple(slice((n - m) // 2, (n - m) // 2 + m) for n, m in zip(shape_of(full), lengths))
    return getitem(full, index)


@wraps_op("convolve")
def convolve(a: Any, v: Any, mode: str = "full") -> Any:
    """Of 1-D sequences, as numpy's: ``mode`` is 'full' (length N + M - 1), 'same'
    (max(N, M), centred) or 'valid' (max(N, M) - min(N, M) + 1). For N-D arrays:
    ``tapegrad.scipy.signal.convolve``.

    Example:
        >>> import tapegrad as tg
        >>> tg.convolve(tg.Tensor([1.0, 2.0, 3.0]), tg.Tensor([0.0, 1.0, 0.5])).data
        array([0. , 1. , 2.5, 4. , 1.5])
    """
    sa, sv = shape_of(a), shape_of(v)
    if len(sa) > 1 or len(sv) > 1:
        raise ValueError(f"convolve: numpy's convolve takes 1-D sequences, got shapes {sa} and "
                         f"{sv}; for N-D arrays use tapegrad.scipy.signal.convolve")
    if not sa:
        a = reshape(a, (1,))
    if not sv:
        v = reshape(v, (1,))
    if mode not in ("full", "same", "valid"):
        raise ValueError(f"convolve: mode must be 'full', 'same' or 'valid', got {mode!r}")
    if mode != "same":
        return convolution(a, v, mode, None)
    longest = builtins.max(shape_of(a)[0], shape_of(v)[0])
    return centered(convolution(a, v, "full", None), (longest,))

