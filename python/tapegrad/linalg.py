"""Linear algebra on Tensors: numpy.linalg's functions, differentiable.

``tapegrad.linalg.inv(t)`` and ``np.linalg.inv(t)`` (numpy hands a Tensor to
tapegrad) are the same call, with numpy's signatures and results. Stacks of
matrices (shape ``(..., m, n)``) are taken wherever numpy takes them. Each
function is one native op (csrc/linalg.hpp) or a composition of them and of
other ops (``norm``, ``matrix_power``); every gradient can be differentiated
again (``create_graph=True``). Given no Tensor, each returns numpy's values.

Where a derivative has conditions, the function's docstring states them:
``eigh`` and ``svd`` with repeated values, ``qr`` and ``pinv`` at rank
deficiency, ``slogdet`` at singular matrices. ``cholesky`` and ``eigh`` read one
triangle of their input, as numpy does, and their gradient is zero on the
other (PyTorch's is symmetric instead: the two agree on any matrix built
symmetric, such as ``B @ B.T``).

Example:
    >>> import numpy as np
    >>> import tapegrad as tg
    >>> a = tg.Tensor(np.array([[2.0, 1.0], [1.0, 3.0]]))
    >>> round(float(np.linalg.det(a)), 12)
    5.0
    >>> tg.grad(np.linalg.det(a), a)[0].data
    array([[ 3., -1.],
           [-1.,  2.]])
"""

from __future__ import annotations

import math
import operator
from typing import Any, NamedTuple

import numpy as np

from . import _core
from . import array_ops as _ops
from ._args import compared, dtype_of, shape_of
from ._core import TensorBase
from .catalogue import composite, wraps_op

__all__ = [
    "EighResult",
    "QRResult",
    "SVDResult",
    "SlogdetResult",
    "cholesky",
    "det",
    "eigh",
    "eigvalsh",
    "inv",
    "matrix_power",
    "norm",
    "pinv",
    "qr",
    "slogdet",
    "solve",
    "svd",
]

_CODE = _core.OP_CODES
_array_op = _core.array_op


class EighResult(NamedTuple):
    """``eigh``'s result, as numpy's: ascending eigenvalues and the eigenvectors (columns)."""

    eigenvalues: Any
    eigenvectors: Any


class SVDResult(NamedTuple):
    """``svd``'s result, as numpy's: ``a = U @ (S[..., None] * Vh)``."""

    U: Any
    S: Any
    Vh: Any


class QRResult(NamedTuple):
    """``qr``'s result, as numpy's: ``a = Q @ R``."""

    Q: Any
    R: Any


class SlogdetResult(NamedTuple):
    """``slogdet``'s result, as numpy's: ``det = sign * exp(logabsdet)``."""

    sign: Any
    logabsdet: Any


def _matrixshape_of(x: Any, op: str) -> tuple[int, int]:
    shape = shape_of(x)
    if len(shape) < 2:
        raise np.linalg.LinAlgError(
            f"{op}: a must be a matrix or a stack of them, of shape (..., m, n); got shape {shape}")
    return shape[-2], shape[-1]


def _part(packed: Any, index: tuple) -> Any:
    return _ops.getitem(packed, (Ellipsis, *index))


def _unpack(packed: Any, start: int, rows: int, cols: int) -> Any:
    """A factor of a packed svd or qr (csrc/linalg.hpp, Note [Packed decompositions])."""
    flat = _part(packed, (slice(start, start + rows * cols),))
    return _ops.reshape(flat, (*shape_of(packed)[:-1], rows, cols))


def _symmetric_from(a: Any, lower: bool) -> Any:
    """The symmetric matrix whose lower (or upper) triangle is a's: what numpy's
    ``hermitian=True`` paths read."""
    if not isinstance(a, TensorBase):
        a = np.asarray(a, dtype=np.result_type(np.asarray(a), np.float32))
    n = shape_of(a)[-1]
    dtype = dtype_of(a)
    keep = np.tri(n, dtype=dtype) if lower else np.tri(n, dtype=dtype).T
    strict = np.tri(n, k=-1, dtype=dtype) if lower else np.tri(n, k=-1, dtype=dtype).T
    return a * keep + _ops.swapaxes(a * strict, -1, -2)


# ---- inverses, solves, determinants ----

@wraps_op("inv")
def inv(a: Any) -> Any:
    """As ``np.linalg.inv``. A singular matrix raises ``LinAlgError`` naming its shape, as
    numpy does. The gradient is ``-inv(a).T @ g @ inv(a).T``.

    Example:
        >>> import numpy as np
        >>> import tapegrad as tg
        >>> tg.linalg.inv(tg.Tensor(np.array([[2.0, 0.0], [0.0, 4.0]]))).data
        array([[0.5 , 0.  ],
               [0.  , 0.25]])
    """
    return _array_op(_CODE["inv"], (a,), ())


@wraps_op("solve")
def solve(a: Any, b: Any) -> Any:
    """As ``np.linalg.solve``: ``b`` a vector when it has one axis, else a stack of matrices
    ``(..., n, k)``; the batch axes of ``a`` and ``b`` broadcast. Gradients flow to both:
    ``gb = solve(a.T, g)`` and ``ga = -gb @ x.T``.

    Example:
        >>> import numpy as np
        >>> import tapegrad as tg
        >>> a = tg.Tensor(np.array([[2.0, 0.0], [0.0, 4.0]]))
        >>> tg.linalg.solve(a, np.array([1.0, 1.0])).data
        array([0.5 , 0.25])
    """
    return _array_op(_CODE["solve"], (a, b), ())


@wraps_op("det")
def det(a: Any) -> Any:
    """As ``np.linalg.det``. The gradient ``g * det(a) * inv(a).T`` is taken, at a singular
    matrix, as the transposed adjugate computed from an SVD (PyTorch's formula): exact at
    every rank (0 below rank n - 1), never NaN.

    Example:
        >>> import numpy as np
        >>> import tapegrad as tg
        >>> a = tg.Tensor(np.array([[1.0, 2.0], [2.0, 4.0]]))  # singular
        >>> tg.grad(tg.linalg.det(a), a)[0].data
        array([[ 4., -2.],
               [-2.,  1.]])
    """
    return _array_op(_CODE["det"], (a,), ())


@wraps_op("slogdet")
def slogdet(a: Any) -> SlogdetResult:
    """As ``np.linalg.slogdet``: ``(sign, logabsdet)``. ``sign`` is a plain constant (numpy's
    value: its derivative is 0 wherever it is defined); ``logabsdet`` records, with gradient
    ``g * inv(a).T``. At a singular matrix ``logabsdet`` is ``-inf`` and its gradient is
    infinite: the backward raises ``LinAlgError`` rather than return inf or NaN.

    Example:
        >>> import numpy as np
        >>> import tapegrad as tg
        >>> sign, logabsdet = tg.linalg.slogdet(tg.Tensor(np.array([[-2.0, 0.0], [0.0, 3.0]])))
        >>> float(sign), round(float(logabsdet), 6)
        (-1.0, 1.791759)
    """
    packed = _array_op(_CODE["slogdet"], (a,), ())
    # The sign from two comparisons: guards under compile, so a replay never returns
    # a stale sign.
    signs, dtype = _part(packed, (0,)), dtype_of(packed)
    sign = compared(signs, ">", 0).astype(dtype) - compared(signs, "<", 0).astype(dtype)
    return SlogdetResult(sign[()] if sign.ndim == 0 else sign, _part(packed, (1,)))


# ---- factorizations ----

@wraps_op("cholesky")
def cholesky(a: Any, /, *, upper: bool = False) -> Any:
    """As ``np.linalg.cholesky``: ``L`` (lower, ``a = L @ L.T``), or ``U = L.T`` with
    ``upper=True``; stacks too. numpy reads only the lower (``upper``: upper) triangle of
    ``a``, and the gradient (Murray 2016) is zero on the other one; it equals PyTorch's
    symmetric gradient for any ``a`` built symmetric. A matrix that is not positive definite
    raises ``LinAlgError``.

    Example:
        >>> import numpy as np
        >>> import tapegrad as tg
        >>> tg.linalg.cholesky(tg.Tensor(np.array([[4.0, 2.0], [2.0, 5.0]]))).data
        array([[2., 0.],
               [1., 2.]])
    """
    return _array_op(_CODE["cholesky"], (a,), (bool(upper),))


def _check_uplo(UPLO: Any, op: str) -> bool:
    if not isinstance(UPLO, str) or UPLO.upper() not in ("L", "U"):
        raise ValueError(f"{op}: UPLO must be 'L' or 'U', got {UPLO!r}")
    return UPLO.upper() == "L"


@wraps_op("eigh")
def eigh(a: Any, UPLO: str = "L") -> EighResult:
    """As ``np.linalg.eigh``: ``EighResult(eigenvalues, eigenvectors)``. numpy reads one
    triangle (``UPLO``); the gradient is zero on the other (see the module's docstring). The
    eigenvectors' gradient divides by differences of eigenvalues: where two are equal and
    the function uses their eigenvectors (any basis of the eigenspace), the backward raises
    ``LinAlgError`` (PyTorch returns NaN); nearly equal eigenvalues give large gradients,
    as in PyTorch. A gradient through the eigenvalues alone is exact everywhere (its own
    derivative at repeated eigenvalues depends on the eigenvectors, and raises there).

    Example:
        >>> import numpy as np
        >>> import tapegrad as tg
        >>> w, v = tg.linalg.eigh(tg.Tensor(np.array([[2.0, 0.0], [0.0, 1.0]])))
        >>> w.data
        array([1., 2.])
    """
    packed = _array_op(_CODE["eigh"], (a,), (_check_uplo(UPLO, "eigh"),))
    return EighResult(_part(packed, (0, slice(None))), _part(packed, (slice(1, None), slice(None))))


@composite(doc="Eigenvalues (ascending) of a symmetric matrix, or of each in a stack.",
           numpy="numpy.linalg.eigvalsh")
def eigvalsh(a: Any, UPLO: str = "L") -> Any:
    """As ``np.linalg.eigvalsh``: ``eigh``'s eigenvalues, exact where they repeat.

    Example:
        >>> import numpy as np
        >>> import tapegrad as tg
        >>> tg.linalg.eigvalsh(tg.Tensor(np.array([[2.0, 1.0], [1.0, 2.0]]))).data
        array([1., 3.])
    """
    packed = _array_op(_CODE["eigh"], (a,), (_check_uplo(UPLO, "eigvalsh"),))
    return _part(packed, (0, slice(None)))


@wraps_op("svd")
def svd(a: Any, full_matrices: bool = True, compute_uv: bool = True,
        hermitian: bool = False) -> Any:
    """As ``np.linalg.svd``: ``SVDResult(U, S, Vh)``, or ``S``. The singular vectors' gradient
    divides by differences of squared singular values and, for a non-square matrix, by the
    singular values: where two singular values are equal (or one is 0, for a non-square
    matrix) and the function uses their vectors (any basis of a space), the backward raises
    ``LinAlgError`` (PyTorch returns NaN); nearly equal ones give large gradients, as in
    PyTorch. A gradient through ``S`` alone (``compute_uv=False``, norms) is exact
    everywhere (its own derivative at repeated values raises). With ``full_matrices``
    the gradients of ``U``'s and ``Vh``'s columns beyond ``min(m, n)`` are ignored (they are
    any basis of the complement), as PyTorch does. ``hermitian=True`` reads the lower
    triangle of ``a``, as numpy; its vectors may differ from numpy's in sign, as any SVD's
    may.

    Example:
        >>> import numpy as np
        >>> import tapegrad as tg
        >>> tg.linalg.svd(tg.Tensor(np.array([[3.0, 0.0], [0.0, -4.0]])), compute_uv=False).data
        array([4., 3.])
    """
    m, n = _matrixshape_of(a, "svd")
    if hermitian:
        a = _symmetric_from(a, lower=True)
    full = bool(full_matrices) and bool(compute_uv)
    packed = _array_op(_CODE["svd"], (a,), (full,))
    k = min(m, n)
    k1, k2 = (m, n) if full else (k, k)
    s = _part(packed, (slice(m * k1, m * k1 + k),))
    if not compute_uv:
        return s
    return SVDResult(_unpack(packed, 0, m, k1), s, _unpack(packed, m * k1 + k, k2, n))


@wraps_op("qr")
def qr(a: Any, mode: str = "reduced") -> Any:
    """As ``np.linalg.qr``: ``QRResult(Q, R)``, or ``R`` with ``mode='r'``. The gradient needs
    ``a`` of full rank (it solves with R, or with R's leading square block for a wide
    matrix). ``mode='complete'`` on a matrix with more rows than columns has no gradient
    (Q's extra columns are any basis): the backward raises, as PyTorch's does.
    ``mode='raw'`` is refused.

    Example:
        >>> import numpy as np
        >>> import tapegrad as tg
        >>> a = tg.Tensor(np.array([[3.0, 1.0], [4.0, 2.0]]))
        >>> q, r = tg.linalg.qr(a)
        >>> bool(np.allclose((q @ r).data, a.data)), abs(float(r[0, 0]))
        (True, 5.0)
    """
    if mode not in ("reduced", "complete", "r", "raw"):
        raise ValueError(f"qr: unrecognized mode {mode!r}; use 'reduced', 'complete' or 'r'")
    if mode == "raw":
        raise ValueError("qr: mode='raw' returns LAPACK's Householder reflectors, which tapegrad "
                         "does not differentiate; use mode='reduced' (or call numpy on t.data)")
    m, n = _matrixshape_of(a, "qr")
    complete = mode == "complete"
    packed = _array_op(_CODE["qr"], (a,), (complete,))
    k = m if complete else min(m, n)
    r = _unpack(packed, m * k, k, n)
    if mode == "r":
        return r
    return QRResult(_unpack(packed, 0, m, k), r)


_NO_VALUE: Any = np._NoValue


@wraps_op("pinv")
def pinv(a: Any, rcond: Any = None, hermitian: bool = False, *, rtol: Any = _NO_VALUE) -> Any:
    """As ``np.linalg.pinv``, with its ``rcond``/``rtol`` defaults. Singular values below
    ``rcond`` times the largest count as 0. The gradient (Golub and Pereyra 1973) is that of
    a matrix whose rank stays the same nearby; pinv jumps where the rank changes, and has no
    derivative there. ``hermitian=True`` reads the lower triangle, as numpy.

    Example:
        >>> import numpy as np
        >>> import tapegrad as tg
        >>> tg.linalg.pinv(tg.Tensor(np.array([[1.0, 0.0], [0.0, 0.0]]))).data
        array([[1., 0.],
               [0., 0.]])
    """
    m, n = _matrixshape_of(a, "pinv")
    if rcond is None:
        if rtol is _NO_VALUE:
            rcond = 1e-15
        elif rtol is None:
            dtype = (dtype_of(a) if isinstance(a, TensorBase)
                     else np.result_type(np.asarray(a), np.float64))
            rcond = max(m, n) * float(np.finfo(dtype).eps)
        else:
            rcond = rtol
    elif rtol is not _NO_VALUE:
        raise ValueError("pinv: `rtol` and `rcond` can't be both set")
    if np.ndim(rcond) != 0:
        raise TypeError(f"pinv: rcond must be a number, got an array of shape {np.shape(rcond)}")
    if hermitian:
        a = _symmetric_from(a, lower=True)
    return _array_op(_CODE["pinv"], (a,), (float(rcond),))


# ---- compositions ----

@composite(doc="A square matrix (or each in a stack) to an integer power n.",
           numpy="numpy.linalg.matrix_power")
def matrix_power(a: Any, n: int) -> Any:
    """As ``np.linalg.matrix_power``: repeated squaring, with numpy's order of products. A
    negative ``n`` inverts first; ``n = 0`` gives the identity, whose gradient with respect
    to ``a`` is 0.

    Example:
        >>> import numpy as np
        >>> import tapegrad as tg
        >>> tg.linalg.matrix_power(tg.Tensor(np.array([[1.0, 1.0], [0.0, 1.0]])), 3).data
        array([[1., 3.],
               [0., 1.]])
    """
    try:
        n = operator.index(n)
    except TypeError:
        raise TypeError(f"matrix_power: the exponent must be an integer, got {n!r}") from None
    shape = shape_of(a)
    if len(shape) < 2 or shape[-1] != shape[-2]:
        raise np.linalg.LinAlgError(
            f"matrix_power: a must be a square matrix or a stack of them, of shape (..., n, n); "
            f"got shape {shape}")
    if not isinstance(a, TensorBase):
        return np.linalg.matrix_power(a, n)
    if n == 0:
        eye = np.broadcast_to(np.eye(shape[-1], dtype=dtype_of(a)), shape)
        return _ops.where(np.ones(shape, dtype=bool), eye, a)  # a's gradient: 0
    if n < 0:
        a, n = inv(a), -n
    if n == 1:
        return _ops.reshape(a, shape)
    # numpy's own order of products, so that the values are numpy's.
    if n == 2:
        return _ops.matmul(a, a)
    if n == 3:
        return _ops.matmul(_ops.matmul(a, a), a)
    z = result = None
    while n > 0:
        z = a if z is None else _ops.matmul(z, z)
        n, bit = divmod(n, 2)
        if bit:
            result = z if result is None else _ops.matmul(result, z)
    return result


def _sqrt_or_zero(s: Any) -> Any:
    """sqrt(s), whose gradient is 0 where s is 0 (as PyTorch's norms), not inf or NaN."""
    zero = compared(s, "==", 0)  # a guard under compile
    if not zero.any():
        return _core.sqrt(s)
    return _ops.where(zero, 0.0, _core.sqrt(_ops.where(zero, 1.0, s)))


def _root_or_zero(s: Any, p: float) -> Any:
    """s ** (1 / p), with gradient 0 where s is 0."""
    zero = compared(s, "==", 0)  # a guard under compile
    if not zero.any():
        return s ** (1.0 / p)
    return _ops.where(zero, 0.0, _ops.where(zero, 1.0, s) ** (1.0 / p))


def _keep(result: Any, shape: tuple[int, ...], axes: tuple[int, ...]) -> Any:
    kept = tuple(1 if i in axes else d for i, d in enumerate(shape))
    return _ops.reshape(result, kept)


def _vector_norm(x: Any, ord: Any, axis: int) -> Any:
    if ord is None or ord == 2:
        return _sqrt_or_zero(_ops.sum(x * x, axis=axis))
    if isinstance(ord, str):
        raise ValueError(f"norm: invalid norm order {ord!r} for vectors")
    absx = _core.abs(x)
    if ord == math.inf:
        return _ops.max(absx, axis=axis)
    if ord == -math.inf:
        return _ops.min(absx, axis=axis)
    if ord == 0:  # a count: its derivative is 0, so a plain value
        return np.sum(compared(x, "!=", 0), axis=axis).astype(dtype_of(x))
    if ord == 1:
        return _ops.sum(absx, axis=axis)
    p = float(ord)
    return _root_or_zero(_ops.sum(absx ** p, axis=axis), p)


def _matrix_norm(x: Any, ord: Any, row: int, col: int) -> Any:
    if ord in (None, "fro", "f"):
        return _sqrt_or_zero(_ops.sum(x * x, axis=(row, col)))
    if ord in (2, -2, "nuc"):
        nd = len(shape_of(x))
        rest = [i for i in range(nd) if i not in (row, col)]
        s = svd(_ops.transpose(x, (*rest, row, col)), compute_uv=False)
        if ord == "nuc":
            return _ops.sum(s, axis=-1)
        return _ops.max(s, axis=-1) if ord == 2 else _ops.min(s, axis=-1)
    absx = _core.abs(x)
    if ord in (1, -1):
        sums = _ops.sum(absx, axis=row)
        reduce, axis = (_ops.max if ord == 1 else _ops.min), col - (col > row)
    elif ord in (math.inf, -math.inf):
        sums = _ops.sum(absx, axis=col)
        reduce, axis = (_ops.max if ord == math.inf else _ops.min), row - (row > col)
    else:
        raise ValueError(f"norm: invalid norm order {ord!r} for matrices")
    return reduce(sums, axis=axis)


@composite(doc="Vector or matrix norm, as numpy.linalg.norm: every ord, axis and keepdims.",
           numpy="numpy.linalg.norm")
def norm(x: Any, ord: Any = None, axis: Any = None, keepdims: bool = False) -> Any:
    """Vectors: ``None``/2, 1, inf, -inf, 0 (a count: returned as a plain value)
    and any other power ``p``; matrices (2-D, or a 2-tuple ``axis``): ``None``/
    ``'fro'``, ``'nuc'``, 1, -1, 2, -2, inf, -inf. Built from sums, ``abs``,
    ``max``/``min`` and the singular values, so gradients follow theirs: ties
    among maxima share the gradient, ``abs`` has gradient 0 at 0, and the
    2-norm, Frobenius norm and ``p``-norms of zeros have gradient 0, as in
    PyTorch, rather than NaN.

    Example:
        >>> import numpy as np
        >>> import tapegrad as tg
        >>> x = tg.Tensor(np.array([3.0, -4.0]))
        >>> float(np.linalg.norm(x)), tg.grad(np.linalg.norm(x), x)[0].data
        (5.0, array([ 0.6, -0.8]))
    """
    if not isinstance(x, TensorBase):
        return np.linalg.norm(x, ord, axis, keepdims)
    shape = x.shape
    nd = len(shape)
    if axis is None:
        if ord is None or (ord in ("f", "fro") and nd == 2) or (ord == 2 and nd == 1):
            result = _sqrt_or_zero(_ops.sum(x * x))
            return _keep(result, shape, tuple(range(nd))) if keepdims else result
        axis = tuple(range(nd))
    elif not isinstance(axis, tuple):
        try:
            axis = (operator.index(axis),)
        except TypeError:
            raise TypeError("norm: 'axis' must be None, an integer or a tuple of integers"
                            ) from None
    axes = tuple(operator.index(a) for a in axis)
    for a in axes:
        if not -nd <= a < nd:
            raise np.exceptions.AxisError(
                f"norm: axis {a} is out of bounds for an array of dimension {nd}")
    axes = tuple(a % nd for a in axes)
    if len(axes) == 1:
        result = _vector_norm(x, ord, axes[0])
    elif len(axes) == 2:
        if axes[0] == axes[1]:
            raise ValueError(f"norm: duplicate axes given: {axis}")
        result = _matrix_norm(x, ord, axes[0], axes[1])
    else:
        raise ValueError(f"norm: improper number of dimensions to norm: axis {axis} for an "
                         f"array of shape {shape}; give one axis (vector norms) or two "
                         "(matrix norms)")
    return _keep(result, shape, axes) if keepdims else result
