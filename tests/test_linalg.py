"""Linear algebra: numpy.linalg and scipy.linalg's functions on Tensors.

CASES walks every function: the tapegrad call, its inputs, and the same
computation in PyTorch (float64 and float32; values, first derivatives and
double backward) or None where torch has no such function. Every case also
passes gradcheck and gradgradcheck (central differences). Then the conditions
the docstrings state: singular matrices, repeated eigenvalues and singular
values, the triangle numpy reads, and the errors.
"""

import numpy as np
import pytest

import tapegrad as tg
from tapegrad import linalg as la
from tapegrad.scipy import linalg as sla

# ---- inputs ----
# Kinds: "gen" a well-conditioned general matrix (normal + 3 I on its square
# part), "rand" plain normal values, "small" normal * 0.3 (expm's argument),
# "spdroot" normal + 3 I, whose square roots are real.


def _value(shape, kind, rng):
    v = rng.normal(size=shape)
    if kind == "small":
        return 0.3 * v
    if kind in ("gen", "spdroot") and len(shape) >= 2:
        n = min(shape[-2:])
        v[..., range(n), range(n)] += 3.0
    return v


def _sym(t):
    return (t + t.swapaxes(-1, -2)) * 0.5 if isinstance(t, tg.Tensor) else (t + t.mT) * 0.5


def _spd(t):
    """X X^T + n I, built symmetric from a leaf (so both libraries agree)."""
    n = t.shape[-1]
    if isinstance(t, tg.Tensor):
        return t @ t.swapaxes(-1, -2) + np.eye(n, dtype=t.dtype) * n
    import torch
    return t @ t.mT + torch.eye(n, dtype=t.dtype) * n


def _flat(xs, lib):
    parts = [x.reshape(-1) for x in xs]
    return tg.concatenate(parts) if lib == "tg" else __import__("torch").cat(parts)


def _eigh_tg(x, uplo="L"):
    w, v = la.eigh(_sym(x), UPLO=uplo)
    return _flat([w, v * v], "tg")


def _eigh_torch(t, x):
    w, v = t.linalg.eigh(_sym(x))
    return _flat([w, v * v], "torch")


def _svd_tg(x, full=False):
    u, s, vh = la.svd(x, full_matrices=full)
    k = min(x.shape[-2:])
    return _flat([u[..., :, :k] * u[..., :, :k], s * s, vh[..., :k, :] * vh[..., :k, :]], "tg")


def _svd_torch(t, x):
    u, s, vh = t.linalg.svd(x, full_matrices=False)
    return _flat([u * u, s * s, vh * vh], "torch")


def _qr_tg(x, mode="reduced"):
    q, r = la.qr(x, mode=mode)
    return _flat([q, r], "tg")


def _qr_torch(t, x):
    q, r = t.linalg.qr(x)
    return _flat([q, r], "torch")


def _tri_torch(t, a, b, trans=0, lower=False, unit=False):
    vec = b.ndim == 1
    bm = b[..., None] if vec else b
    if trans:  # a.T @ x = b: a.T's triangle is the other one
        tri = a.tril(-int(unit)) if lower else a.triu(int(unit))
        if unit:
            tri = tri + t.eye(a.shape[-1], dtype=a.dtype)
        x = t.linalg.solve_triangular(tri.mT, bm, upper=lower)
    else:
        x = t.linalg.solve_triangular(a, bm, upper=not lower, unitriangular=unit)
    return x[..., 0] if vec else x


def _cho_torch(t, c, b, lower):
    y = _tri_torch(t, c, b, trans=0 if lower else 1, lower=lower)
    return _tri_torch(t, c, y, trans=1 if lower else 0, lower=lower)


def _sqrtm_spd_torch(t, x):
    w, v = t.linalg.eigh(_spd(x))
    return (v * w.sqrt()[..., None, :]) @ v.mT


def _sylvester_torch(t, a, b, q):
    """a x + x b = q through the Kronecker form (x's columns stacked)."""
    m, n = q.shape
    big = t.kron(t.eye(n, dtype=a.dtype), a) + t.kron(b.mT.contiguous(), t.eye(m, dtype=a.dtype))
    return t.linalg.solve(big, q.mT.reshape(-1)).reshape(n, m).mT


# name -> (tapegrad fn, [(shape, kind)], torch fn(torch, *tensors) or None)
CASES = {
    "inv": (la.inv, [((4, 4), "gen")], lambda t, a: t.linalg.inv(a)),
    "inv_batched": (la.inv, [((2, 3, 3, 3), "gen")], lambda t, a: t.linalg.inv(a)),
    "det": (la.det, [((4, 4), "gen")], lambda t, a: t.linalg.det(a)),
    "det_batched": (la.det, [((3, 3, 3), "gen")], lambda t, a: t.linalg.det(a)),
    "slogdet": (lambda a: la.slogdet(a)[1], [((4, 4), "rand")],
                lambda t, a: t.linalg.slogdet(a)[1]),
    "slogdet_batched": (lambda a: la.slogdet(a).logabsdet, [((2, 3, 3), "rand")],
                        lambda t, a: t.linalg.slogdet(a)[1]),
    "solve_vector": (la.solve, [((4, 4), "gen"), ((4,), "rand")],
                     lambda t, a, b: t.linalg.solve(a, b)),
    "solve_matrix": (la.solve, [((3, 3), "gen"), ((3, 2), "rand")],
                     lambda t, a, b: t.linalg.solve(a, b)),
    "solve_broadcast": (la.solve, [((2, 1, 3, 3), "gen"), ((4, 3, 2), "rand")],
                        lambda t, a, b: t.linalg.solve(a, b)),
    "solve_batched_vector": (la.solve, [((2, 3, 3), "gen"), ((3,), "rand")],
                             lambda t, a, b: t.linalg.solve(a, b.expand(2, 3)[..., None])[..., 0]),
    "cholesky": (lambda x: la.cholesky(_spd(x)), [((4, 4), "rand")],
                 lambda t, x: t.linalg.cholesky(_spd(x))),
    "cholesky_upper": (lambda x: la.cholesky(_spd(x), upper=True), [((2, 3, 3), "rand")],
                       lambda t, x: t.linalg.cholesky(_spd(x), upper=True)),
    "eigh": (_eigh_tg, [((4, 4), "rand")], _eigh_torch),
    "eigh_upper_batched": (lambda x: _eigh_tg(x, "U"), [((2, 3, 3), "rand")], _eigh_torch),
    "eigvalsh": (lambda x: la.eigvalsh(_sym(x)), [((4, 4), "rand")],
                 lambda t, x: t.linalg.eigvalsh(_sym(x))),
    "svd_square": (_svd_tg, [((4, 4), "rand")], _svd_torch),
    "svd_tall": (_svd_tg, [((5, 3), "rand")], _svd_torch),
    "svd_wide_batched": (_svd_tg, [((2, 3, 5), "rand")], _svd_torch),
    "svd_full_tall": (lambda x: _svd_tg(x, full=True), [((5, 3), "rand")], _svd_torch),
    "svd_full_wide": (lambda x: _svd_tg(x, full=True), [((3, 4), "rand")], _svd_torch),
    "svdvals": (lambda x: la.svd(x, compute_uv=False), [((2, 4, 3), "rand")],
                lambda t, x: t.linalg.svdvals(x)),
    "qr_square": (_qr_tg, [((4, 4), "gen")], _qr_torch),
    "qr_tall_batched": (_qr_tg, [((2, 5, 3), "gen")], _qr_torch),
    "qr_wide": (_qr_tg, [((3, 5), "gen")], _qr_torch),
    "qr_r": (lambda x: la.qr(x, mode="r"), [((5, 3), "gen")], lambda t, x: t.linalg.qr(x)[1]),
    "qr_complete_wide": (lambda x: _qr_tg(x, "complete"), [((3, 4), "gen")], _qr_torch),
    "pinv_tall": (la.pinv, [((5, 3), "gen")], lambda t, a: t.linalg.pinv(a)),
    "pinv_wide_batched": (la.pinv, [((2, 3, 4), "gen")], lambda t, a: t.linalg.pinv(a)),
    "pinv_square": (la.pinv, [((3, 3), "gen")], lambda t, a: t.linalg.pinv(a)),
    "matrix_power_5": (lambda a: la.matrix_power(a, 5), [((3, 3), "small")],
                       lambda t, a: t.linalg.matrix_power(a, 5)),
    "matrix_power_-2": (lambda a: la.matrix_power(a, -2), [((2, 3, 3), "gen")],
                        lambda t, a: t.linalg.matrix_power(a, -2)),
    "matrix_power_1": (lambda a: la.matrix_power(a, 1), [((3, 3), "rand")],
                       lambda t, a: t.linalg.matrix_power(a, 1)),
    "norm_default": (la.norm, [((3, 4), "rand")], lambda t, x: t.linalg.norm(x)),
    "norm_flat_3d": (la.norm, [((2, 3, 4), "rand")], lambda t, x: t.linalg.norm(x)),
    "norm_vector_axis": (lambda x: la.norm(x, axis=1, keepdims=True), [((3, 4), "rand")],
                         lambda t, x: t.linalg.norm(x, dim=1, keepdim=True)),
    "norm_vector_inf": (lambda x: la.norm(x, np.inf), [((5,), "rand")],
                        lambda t, x: t.linalg.norm(x, float("inf"))),
    "norm_vector_-inf": (lambda x: la.norm(x, -np.inf, axis=0), [((5, 2), "rand")],
                         lambda t, x: t.linalg.vector_norm(x, float("-inf"), dim=0)),
    "norm_vector_1": (lambda x: la.norm(x, 1, axis=-1), [((3, 5), "rand")],
                      lambda t, x: t.linalg.vector_norm(x, 1, dim=-1)),
    "norm_vector_3": (lambda x: la.norm(x, 3), [((5,), "rand")],
                      lambda t, x: t.linalg.vector_norm(x, 3)),
    "norm_vector_-1.5": (lambda x: la.norm(x, -1.5), [((5,), "gen")],
                         lambda t, x: t.linalg.vector_norm(x, -1.5)),
    "norm_fro": (lambda x: la.norm(x, "fro", axis=(0, 2)), [((3, 2, 4), "rand")],
                 lambda t, x: t.linalg.matrix_norm(x, "fro", dim=(0, 2))),
    "norm_nuc": (lambda x: la.norm(x, "nuc"), [((4, 3), "rand")],
                 lambda t, x: t.linalg.matrix_norm(x, "nuc")),
    "norm_2": (lambda x: la.norm(x, 2, axis=(-1, -2), keepdims=True), [((2, 3, 4), "rand")],
               lambda t, x: t.linalg.matrix_norm(x, 2, dim=(-1, -2), keepdim=True)),
    "norm_-2": (lambda x: la.norm(x, -2), [((3, 3), "rand")],
                lambda t, x: t.linalg.matrix_norm(x, -2)),
    "norm_1": (lambda x: la.norm(x, 1, axis=(1, 0)), [((3, 4), "rand")],
               lambda t, x: t.linalg.matrix_norm(x, 1, dim=(1, 0))),
    "norm_-1": (lambda x: la.norm(x, -1), [((3, 4), "rand")],
                lambda t, x: t.linalg.matrix_norm(x, -1)),
    "norm_inf": (lambda x: la.norm(x, np.inf, axis=(0, 1)), [((3, 4, 2), "rand")],
                 lambda t, x: t.linalg.matrix_norm(x, float("inf"), dim=(0, 1))),
    "norm_-inf": (lambda x: la.norm(x, -np.inf), [((3, 4), "rand")],
                  lambda t, x: t.linalg.matrix_norm(x, float("-inf"))),
    "solve_triangular_lower": (lambda a, b: sla.solve_triangular(a, b, lower=True),
                               [((4, 4), "gen"), ((4, 2), "rand")],
                               lambda t, a, b: _tri_torch(t, a, b, lower=True)),
    "solve_triangular_upper_vector": (sla.solve_triangular, [((4, 4), "gen"), ((4,), "rand")],
                                      lambda t, a, b: _tri_torch(t, a, b)),
    "solve_triangular_trans": (lambda a, b: sla.solve_triangular(a, b, trans="T", lower=True),
                               [((2, 3, 3), "gen"), ((3, 2), "rand")],
                               lambda t, a, b: _tri_torch(t, a, b, trans=1, lower=True)),
    "solve_triangular_unit": (
        lambda a, b: sla.solve_triangular(a, b, trans=1, unit_diagonal=True),
        [((3, 3), "rand"), ((3,), "rand")],
        lambda t, a, b: _tri_torch(t, a, b, trans=1, unit=True)),
    "cho_solve_lower": (lambda x, b: sla.cho_solve((la.cholesky(_spd(x)), True), b),
                        [((3, 3), "rand"), ((3, 2), "rand")],
                        lambda t, x, b: _cho_torch(t, t.linalg.cholesky(_spd(x)), b, True)),
    "cho_solve_upper": (lambda c, b: sla.cho_solve((c, False), b),
                        [((3, 3), "gen"), ((3,), "rand")],
                        lambda t, c, b: _cho_torch(t, c, b, False)),
    "expm": (sla.expm, [((3, 3), "small")], lambda t, a: t.linalg.matrix_exp(a)),
    "expm_batched": (sla.expm, [((2, 3, 3), "small")], lambda t, a: t.linalg.matrix_exp(a)),
    "sqrtm_spd": (lambda x: sla.sqrtm(_spd(x)), [((3, 3), "rand")], _sqrtm_spd_torch),
    "sqrtm_general": (sla.sqrtm, [((3, 3), "spdroot")], None),
    "sqrtm_batched": (sla.sqrtm, [((2, 3, 3), "spdroot")], None),
    "solve_sylvester": (sla.solve_sylvester, [((3, 3), "gen"), ((2, 2), "gen"), ((3, 2), "rand")],
                        _sylvester_torch),
}


def _inputs(specs, rng, dtype=np.float64):
    return [np.asarray(_value(shape, kind, rng), dtype=dtype) for shape, kind in specs]


@pytest.mark.parametrize("name", sorted(CASES))
def test_gradcheck(name, rng):
    fn, specs, _ = CASES[name]
    assert tg.gradcheck(fn, [tg.Tensor(v) for v in _inputs(specs, rng)])


@pytest.mark.parametrize("name", sorted(CASES))
def test_gradgradcheck(name, rng):
    fn, specs, _ = CASES[name]
    assert tg.gradgradcheck(fn, [tg.Tensor(v) for v in _inputs(specs, rng)])


def _tg_second(fn, xs, w, v):
    out = fn(*xs)
    grads = tg.grad((out * w).sum(), xs, create_graph=True)
    total = sum((g * vi).sum() for g, vi in zip(grads, v))
    if not total.requires_grad:  # fn is linear: its second derivative is 0
        return out, grads, [tg.tensor(np.zeros_like(x.data)) for x in xs]
    return out, grads, tg.grad(total, xs)


def _torch_second(torch, fn, xs, w, v):
    out = fn(torch, *xs)
    grads = torch.autograd.grad((out * torch.tensor(w)).sum(), xs, create_graph=True)
    total = sum((g * torch.tensor(vi)).sum() for g, vi in zip(grads, v))
    if not total.requires_grad:
        return out, grads, [torch.zeros_like(x) for x in xs]
    return out, grads, torch.autograd.grad(total, xs, allow_unused=True, materialize_grads=True)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", sorted(n for n in CASES if CASES[n][2] is not None))
def test_against_torch(name, dtype, rng):
    """Values, gradients and double-backward gradients against PyTorch's."""
    torch = pytest.importorskip("torch")
    fn, specs, torch_fn = CASES[name]
    values = _inputs(specs, rng, dtype)
    ours = [tg.Tensor(x) for x in values]
    theirs = [torch.tensor(x, requires_grad=True) for x in values]
    out = fn(*ours)
    assert out.data.dtype == dtype
    w = np.asarray(rng.uniform(0.5, 1.5, size=out.shape), dtype=dtype)
    v = [np.asarray(rng.uniform(-1, 1, size=x.shape), dtype=dtype) for x in values]
    out, grads, second = _tg_second(fn, ours, w, v)
    ref, ref_grads, ref_second = _torch_second(torch, torch_fn, theirs, w, v)
    tol = 1e-9 if dtype == np.float64 else 2e-3
    np.testing.assert_allclose(out.data, ref.detach().numpy(), rtol=tol, atol=tol)
    for g, r, x in zip(grads, ref_grads, values):
        assert g.shape == x.shape and g.dtype == dtype
        np.testing.assert_allclose(g.data, r.detach().numpy(), rtol=tol, atol=tol)
    for g, r, x in zip(second, ref_second, values):
        assert g.shape == x.shape and g.dtype == dtype
        np.testing.assert_allclose(g.data, r.numpy(force=True), rtol=10 * tol, atol=10 * tol)


def test_scipy_namespace_docstring_examples_run():
    """tests/test_docstrings.py runs tapegrad's top-level modules; this one is nested."""
    import doctest

    result = doctest.testmod(sla, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted > 0
