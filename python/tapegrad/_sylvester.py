"""The Sylvester equation a @ x + x @ b = q, solved with level-3 BLAS (the backend's solver).

scipy.linalg.solve_sylvester hands the triangular equation to LAPACK's trsyl,
which works one element at a time: at 512 x 512 it took about 0.55 s of the
1.1 s a solve cost here, where the two Schur decompositions took 0.26 s each.
This is the same Bartels-Stewart method with the triangular equation split in
halves recursively (Jonsson and Kagstrom's recursive blocked algorithm, RECSY):
the work is in matrix products, and trsyl only solves the small blocks. It
backs sqrtm's gradient and tapegrad.scipy.linalg.solve_sylvester
(csrc/numeric.hpp calls it); scipy is imported when it first runs.
"""

from __future__ import annotations

from typing import Any

import numpy as np

_BLOCK = 64  # blocks this small go to trsyl


def _split(t: np.ndarray, k: int) -> int:
    """A split point of quasi-triangular t near k that does not cut a 2 x 2 block."""
    return k + 1 if t[k, k - 1] != 0 else k


def _triangular(s: np.ndarray, t: np.ndarray, f: np.ndarray, trsyl: Any) -> np.ndarray:
    """y with s @ y + y @ t = f, for s and t upper quasi-triangular (real Schur forms)."""
    m, n = f.shape
    if m <= _BLOCK and n <= _BLOCK:
        y, scale, info = trsyl(s, t, f, trana="N", tranb="N", isgn=1)
        if info < 0:
            raise ValueError(f"trsyl: argument {-info} is invalid")
        if info == 1 or scale == 0 or not np.isfinite(y).all():
            raise np.linalg.LinAlgError(
                "an eigenvalue of a plus one of b is (nearly) zero: a @ x + x @ b = q has no "
                "unique solution")
        return y / scale if scale != 1 else y
    if m >= n:
        k = _split(s, m // 2)
        lower = _triangular(s[k:, k:], t, f[k:], trsyl)
        upper = _triangular(s[:k, :k], t, f[:k] - s[:k, k:] @ lower, trsyl)
        return np.concatenate([upper, lower], axis=0)
    k = _split(t, n // 2)
    left = _triangular(s, t[:k, :k], f[:, :k], trsyl)
    right = _triangular(s, t[k:, k:], f[:, k:] - left @ t[:k, k:], trsyl)
    return np.concatenate([left, right], axis=1)


def _one(a: np.ndarray, b: np.ndarray, q: np.ndarray, same: bool) -> np.ndarray:
    from scipy.linalg import lapack, schur

    s, u = schur(a, output="real")
    t, v = (s, u) if same else schur(b, output="real")
    (trsyl,) = lapack.get_lapack_funcs(("trsyl",), (s, t))
    y = _triangular(s, t, u.T @ q @ v, trsyl)
    return u @ y @ v.T


def solve_sylvester(a: np.ndarray, b: np.ndarray, q: np.ndarray) -> np.ndarray:
    """x with a @ x + x @ b = q; stacks of matrices broadcast over their leading axes.

    Example:
        >>> import numpy as np
        >>> from tapegrad._sylvester import solve_sylvester
        >>> solve_sylvester(np.eye(2), np.eye(2), np.array([[2.0, 4.0], [6.0, 8.0]]))
        array([[1., 2.],
               [3., 4.]])
    """
    dtype = np.result_type(a, b, q)
    same = a is b
    a, b, q = (np.asarray(x, dtype=dtype) for x in (a, b, q))
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2], q.shape[:-2])
    out = np.empty(batch + q.shape[-2:], dtype=dtype)
    if out.size == 0:
        return out
    a = np.broadcast_to(a, batch + a.shape[-2:])
    b = np.broadcast_to(b, batch + b.shape[-2:])
    q = np.broadcast_to(q, batch + q.shape[-2:])
    try:
        for index in np.ndindex(*batch):
            out[index] = _one(a[index], b[index], q[index], same)
    except np.linalg.LinAlgError as error:
        shapes = f"a of shape {a.shape}, b of shape {b.shape}"
        raise np.linalg.LinAlgError(f"{error} ({shapes})") from None
    return out
