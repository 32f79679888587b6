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

# Half the cases are scipy.linalg's (and the oracles of some others): without scipy
# (the README's test command on a bare machine, the sanitizer's venv) the file skips.
pytest.importorskip("scipy")

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


# ---- numpy's own calls dispatch here ----

DISPATCH = [
    (np.linalg.inv, la.inv, lambda a: (a,)),
    (np.linalg.det, la.det, lambda a: (a,)),
    (np.linalg.solve, la.solve, lambda a: (a, a[0])),
    (np.linalg.pinv, la.pinv, lambda a: (a,)),
    (np.linalg.norm, la.norm, lambda a: (a, "nuc")),
    (np.linalg.matrix_power, la.matrix_power, lambda a: (a, -3)),
    (np.linalg.cholesky, la.cholesky, lambda a: (a @ a.T,)),
    (np.linalg.eigvalsh, la.eigvalsh, lambda a: (a,)),
]


@pytest.mark.parametrize("numpy_fn, ours, args", DISPATCH, ids=lambda v: getattr(v, "__name__", ""))
def test_numpy_linalg_calls_record(numpy_fn, ours, args, rng):
    a = rng.normal(size=(3, 3)) + 3 * np.eye(3)
    x1, x2 = tg.Tensor(a), tg.Tensor(a)
    y1, y2 = numpy_fn(*args(x1)), ours(*args(x2))
    assert isinstance(y1, tg.Tensor) and y1.requires_grad
    np.testing.assert_array_equal(y1.data, y2.data)
    np.testing.assert_allclose(y1.data, numpy_fn(*args(a)), rtol=1e-12)
    np.testing.assert_array_equal(tg.grad(y1.sum(), x1)[0].data, tg.grad(y2.sum(), x2)[0].data)


def test_decompositions_dispatch_and_keep_numpy_results(rng):
    a = rng.normal(size=(4, 3))
    t = tg.Tensor(a)
    u, s, vh = np.linalg.svd(t, full_matrices=False)
    np.testing.assert_allclose(((u * s[..., None, :]) @ vh).data, a, atol=1e-12)
    w, _ = np.linalg.eigh(t.T @ t)
    np.testing.assert_allclose(w.data, np.linalg.eigvalsh(a.T @ a), rtol=1e-12)
    q, r = np.linalg.qr(t)
    np.testing.assert_allclose((q @ r).data, a, atol=1e-12)
    sign, logabsdet = np.linalg.slogdet(t[:3])
    want = np.linalg.slogdet(a[:3])
    assert sign == want.sign and isinstance(sign, np.float64)
    assert logabsdet.data == pytest.approx(want.logabsdet, rel=1e-12)
    assert la.svd(t).U.shape == (4, 4) and la.svd(t).Vh.shape == (3, 3)
    assert la.qr(t, mode="complete").Q.shape == (4, 4)


def test_plain_arrays_give_numpy_values(rng):
    a = rng.normal(size=(3, 3)) + 3 * np.eye(3)
    np.testing.assert_allclose(la.inv(a), np.linalg.inv(a), rtol=1e-14)
    np.testing.assert_allclose(la.norm(a, 2), np.linalg.norm(a, 2), rtol=1e-14)
    np.testing.assert_allclose(sla.expm(a * 0.1), __import__("scipy.linalg").linalg.expm(a * 0.1),
                               rtol=1e-14)
    assert len(tg.operation_history) == 0


def test_import_tapegrad_does_not_import_scipy():
    code = "import sys, tapegrad, tapegrad.scipy.linalg; print('scipy' in sys.modules)"
    out = __import__("subprocess").run([__import__("sys").executable, "-c", code],
                                       capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ---- the triangle numpy reads (csrc/linalg.hpp, Note [Triangles read]) ----

@pytest.mark.parametrize("upper", [False, True])
def test_cholesky_and_eigh_differentiate_the_triangle_read(upper, rng):
    """A non-symmetric leaf: numpy reads one triangle, and so does the gradient, which
    central differences confirm; on the symmetric part it agrees with PyTorch's."""
    b = rng.normal(size=(4, 4))
    spd = b @ b.T + 4 * np.eye(4)
    leaf = spd + np.triu(rng.normal(size=(4, 4)), 1) * (0 if upper else 1) \
        + np.tril(rng.normal(size=(4, 4)), -1) * (1 if upper else 0)  # junk in the unread triangle
    read = np.triu if upper else np.tril
    for fn in (lambda x: la.cholesky(x, upper=upper),
               lambda x: la.eigh(x, UPLO="U" if upper else "L").eigenvalues,
               lambda x: la.eigh(x, UPLO="U" if upper else "L").eigenvectors ** 2):
        x = tg.Tensor(leaf)
        (g,) = tg.grad((fn(x) * np.arange(1.0, 1 + fn(x).size).reshape(fn(x).shape)).sum(), x)
        np.testing.assert_array_equal(g.data - read(g.data), 0)  # nothing on the other triangle
        assert tg.gradcheck(fn, [tg.Tensor(leaf)])


def test_symmetric_inputs_agree_with_torch_through_the_chain_rule(rng):
    torch = pytest.importorskip("torch")
    b = rng.normal(size=(4, 4))
    ours, theirs = tg.Tensor(b), torch.tensor(b, requires_grad=True)
    w = rng.uniform(size=(4, 4))
    (g,) = tg.grad((la.cholesky(ours @ ours.T + 4 * np.eye(4)) * w).sum(), ours)
    (torch.linalg.cholesky(theirs @ theirs.T + 4 * torch.eye(4, dtype=torch.float64))
     * torch.tensor(w)).sum().backward()
    np.testing.assert_allclose(g.data, theirs.grad.numpy(), rtol=1e-11)


# ---- singular and degenerate points ----

def _cofactors(a):
    n = a.shape[0]
    return np.array([[(-1) ** (i + j) * np.linalg.det(np.delete(np.delete(a, i, 0), j, 1))
                      for j in range(n)] for i in range(n)])


def test_det_gradient_at_singular_matrices_is_the_cofactor_matrix(rng):
    rank2 = rng.normal(size=(3, 2)) @ rng.normal(size=(2, 3))  # rank 2: a nonzero adjugate
    rank1 = np.outer(rng.normal(size=3), rng.normal(size=3))   # rank 1: zero
    zero = np.zeros((3, 3))
    regular = rng.normal(size=(3, 3)) + 3 * np.eye(3)
    stack = np.stack([rank2, rank1, zero, regular])
    x = tg.Tensor(stack)
    (g,) = tg.grad(la.det(x).sum(), x)
    for got, a in zip(g.data, stack):
        np.testing.assert_allclose(got, _cofactors(a), atol=1e-12)
    assert np.isfinite(g.data).all()


def test_det_second_order_at_a_singular_matrix(rng):
    """Through the SVD: rank n - 1 with distinct singular values (PyTorch's double backward)."""
    torch = pytest.importorskip("torch")
    a = rng.normal(size=(3, 2)) @ rng.normal(size=(2, 3))
    assert tg.gradgradcheck(la.det, [tg.Tensor(a)])
    v = rng.normal(size=(3, 3))
    x = tg.Tensor(a)
    (g,) = tg.grad(la.det(x), x, create_graph=True)
    (h,) = tg.grad((g * v).sum(), x)
    t = torch.tensor(a, requires_grad=True)
    (tg_,) = torch.autograd.grad(torch.linalg.det(t), t, create_graph=True)
    (th,) = torch.autograd.grad((tg_ * torch.tensor(v)).sum(), t)
    np.testing.assert_allclose(h.data, th.numpy(), atol=1e-10)


def test_slogdet_at_a_singular_matrix_raises_on_backward():
    x = tg.Tensor(np.array([[1.0, 2.0], [2.0, 4.0]]))
    sign, logabsdet = la.slogdet(x)
    assert sign == 0 and logabsdet.data == -np.inf
    with pytest.raises(np.linalg.LinAlgError, match=r"slogdet: .*shape \(2, 2\) is singular.*Use det"):
        tg.grad(logabsdet, x)


def test_eigenvalue_functions_are_exact_at_repeated_eigenvalues():
    """sum(w**2) = ||A||_F^2 on the triangle read: its gradient at A = I, where the
    eigenvalues repeat, is exact; its second derivative there depends on the
    eigenvectors (a divided difference) and raises rather than drop that term."""
    x = tg.Tensor(np.eye(3))
    (g,) = tg.grad((la.eigvalsh(x) ** 2).sum(), x, create_graph=True)
    np.testing.assert_allclose(g.data, 2 * np.eye(3), atol=1e-14)
    with pytest.raises(np.linalg.LinAlgError, match=r"eigh: .*repeated eigenvalue"):
        tg.grad((g * np.arange(9.0).reshape(3, 3)).sum(), x)
    # Away from the repetition: d/dA of tril(2 (A + A^T)) - diag(2A) applied to v.
    x = tg.Tensor(np.diag([1.0, 2.0, 3.0]))
    (g,) = tg.grad((la.eigvalsh(x) ** 2).sum(), x, create_graph=True)
    v = np.arange(9.0).reshape(3, 3)
    (h,) = tg.grad((g * v).sum(), x)
    np.testing.assert_allclose(h.data, 2 * np.diag(np.diag(v)) + 4 * np.tril(v, -1), atol=1e-12)
    # The nuclear norm of I: singular values alone.
    x = tg.Tensor(np.eye(3))
    (gn,) = tg.grad(la.norm(x, "nuc"), x)
    np.testing.assert_allclose(gn.data, np.eye(3), atol=1e-14)


def test_eigenvectors_at_repeated_eigenvalues_raise():
    x = tg.Tensor(np.diag([1.0, 1.0, 2.0]))
    _, v = la.eigh(x)
    with pytest.raises(np.linalg.LinAlgError,
                       match=r"eigh: the gradient through the eigenvectors is undefined here: a "
                             r"\(of shape \(3, 3\)\) has a repeated eigenvalue"):
        tg.grad(((v @ v.T) * np.arange(9.0).reshape(3, 3) + v).sum(), x)
    # Eigenvectors of the simple eigenvalue alone: defined.
    (g,) = tg.grad((v[:, 2] ** 2 * np.array([1.0, 2.0, 3.0])).sum(), x)
    assert np.isfinite(g.data).all()


def test_singular_vectors_at_repeated_or_zero_singular_values_raise():
    x = tg.Tensor(np.diag([2.0, 2.0, 1.0]))
    u, s, vh = la.svd(x)
    with pytest.raises(np.linalg.LinAlgError, match=r"svd: .*a repeated singular value"):
        tg.grad((u * np.arange(9.0).reshape(3, 3)).sum(), x)
    tall = tg.Tensor(np.array([[1.0, 0.0], [0.0, 0.0], [0.0, 0.0]]))
    u, s, vh = la.svd(tall, full_matrices=False)
    with pytest.raises(np.linalg.LinAlgError, match=r"svd: .*a zero singular value"):
        tg.grad((u * np.arange(6.0).reshape(3, 2)).sum(), tall)
    (g,) = tg.grad(s.sum(), tall)  # the singular values alone: U diag(1) Vh, as PyTorch
    np.testing.assert_allclose(g.data, (u @ vh).data, atol=1e-15)


def test_norms_of_zeros_have_zero_gradient_as_in_torch():
    torch = pytest.importorskip("torch")
    for ord_, axis in [(None, None), (2, 1), ("fro", None), (3, 0), (1, 1)]:
        x = tg.Tensor(np.zeros((2, 3)))
        (g,) = tg.grad(la.norm(x, ord_, axis).sum() if axis is not None else la.norm(x, ord_), x)
        t = torch.zeros((2, 3), dtype=torch.float64, requires_grad=True)
        ref = torch.linalg.norm(t, ord_, axis) if axis is not None else torch.linalg.norm(t, ord_)
        ref.sum().backward()
        np.testing.assert_array_equal(g.data, t.grad.numpy())
        np.testing.assert_array_equal(g.data, 0)


def test_norm_ties_share_the_gradient():
    x = tg.Tensor(np.array([3.0, -3.0, 1.0]))
    np.testing.assert_allclose(tg.grad(la.norm(x, np.inf), x)[0].data, [0.5, -0.5, 0.0])
    assert la.norm(x, 0) == 3.0 and not isinstance(la.norm(x, 0), tg.Tensor)


def test_matrix_power_zero_is_the_identity_with_zero_gradient(rng):
    a = rng.normal(size=(2, 3, 3))
    x = tg.Tensor(a)
    y = np.linalg.matrix_power(x, 0)
    np.testing.assert_array_equal(y.data, np.broadcast_to(np.eye(3), (2, 3, 3)))
    np.testing.assert_array_equal(tg.grad(y.sum(), x)[0].data, 0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gradients_keep_the_input_dtype(dtype, rng):
    a = (rng.normal(size=(3, 3)) + 3 * np.eye(3)).astype(dtype)
    for fn in (la.inv, la.det, lambda x: la.slogdet(x)[1], la.pinv, lambda x: la.norm(x, 2),
               lambda x: la.svd(x)[0], lambda x: la.qr(x)[1], lambda x: la.cholesky(x @ x.T),
               lambda x: la.eigh(x)[1], sla.expm, sla.sqrtm,
               lambda x: sla.solve_triangular(x, x[0]), lambda x: la.solve(x, x)):
        x = tg.Tensor(a)
        out = fn(x)
        assert out.dtype == dtype
        (g,) = tg.grad(out.sum(), x, create_graph=True)
        assert g.dtype == dtype
        assert tg.grad((g * g).sum(), x)[0].dtype == dtype


# ---- errors: the op, the shapes, what to do ----

def _qr_complete_tall_backward():
    x = tg.Tensor(np.eye(3)[:, :2] + 1)
    return tg.grad(la.qr(x, mode="complete").Q.sum(), x)


@pytest.mark.parametrize("call, kind, match", [
    (lambda: la.inv(tg.Tensor(np.ones((2, 3)))), np.linalg.LinAlgError,
     r"inv: a must be square, of shape \(\.\.\., n, n\); got shape \(2, 3\)"),
    (lambda: la.det(tg.Tensor(np.ones(3))), np.linalg.LinAlgError,
     r"det: a must be a square matrix or a stack of them, of shape \(\.\.\., n, n\); got a vector of shape \(3,\)"),
    (lambda: la.inv(tg.Tensor(np.ones((2, 2)))), np.linalg.LinAlgError,
     r"inv: the matrix is singular \(a of shape \(2, 2\)\): it has no inverse. numpy.linalg.pinv"),
    (lambda: np.linalg.solve(tg.Tensor(np.eye(3)), np.ones((2, 3))), np.linalg.LinAlgError,
     r"solve: a of shape \(3, 3\) and b of shape \(2, 3\) do not match: b's second-to-last axis \(2\) "
     r"must be a's size \(3\)"),
    (lambda: la.solve(tg.Tensor(np.zeros((2, 2))), np.ones(2)), np.linalg.LinAlgError,
     r"solve: a \(of shape \(2, 2\)\) is singular.*lstsq"),
    (lambda: la.cholesky(tg.Tensor(-np.eye(2))), np.linalg.LinAlgError,
     r"cholesky: the matrix \(a of shape \(2, 2\)\) is not positive definite"),
    (lambda: la.eigh(tg.Tensor(np.eye(2)), UPLO="X"), ValueError, r"eigh: UPLO must be 'L' or 'U'"),
    (lambda: la.qr(tg.Tensor(np.eye(2)), mode="raw"), ValueError, r"qr: mode='raw'"),
    (lambda: la.qr(tg.Tensor(np.eye(2)), mode="economic"), ValueError, r"qr: unrecognized mode"),
    (_qr_complete_tall_backward, ValueError, r"qr: mode='complete' on a matrix with more rows than columns \(shape \(3, 2\)\) "
                 r"has no gradient.*Use mode='reduced'"),
    (lambda: la.matrix_power(tg.Tensor(np.eye(2)), 1.5), TypeError,
     r"matrix_power: the exponent must be an integer"),
    (lambda: la.matrix_power(tg.Tensor(np.ones((2, 3))), 2), np.linalg.LinAlgError,
     r"matrix_power: a must be a square matrix.*got shape \(2, 3\)"),
    (lambda: la.norm(tg.Tensor(np.ones((2, 2, 2))), 2), ValueError,
     r"norm: improper number of dimensions to norm: axis \(0, 1, 2\)"),
    (lambda: la.norm(tg.Tensor(np.ones(3)), "fro", axis=0), ValueError,
     r"norm: invalid norm order 'fro' for vectors"),
    (lambda: la.norm(tg.Tensor(np.ones((2, 2))), 3, axis=(0, 1)), ValueError,
     r"norm: invalid norm order 3 for matrices"),
    (lambda: la.norm(tg.Tensor(np.ones((2, 2))), axis=(1, -1)), ValueError, r"norm: duplicate axes"),
    (lambda: la.norm(tg.Tensor(np.ones(2)), axis=1), np.exceptions.AxisError, r"norm: axis 1"),
    (lambda: la.pinv(tg.Tensor(np.eye(2)), rcond=0.1, rtol=0.1), ValueError, r"pinv: `rtol` and `rcond`"),
    (lambda: sla.sqrtm(tg.Tensor(np.diag([-1.0, 1.0]))), ValueError,
     r"sqrtm: the principal square root of A \(of shape \(2, 2\)\) is complex"),
    (lambda: sla.solve_triangular(tg.Tensor(np.eye(2)), np.ones(2), trans=3), ValueError,
     r"solve_triangular: trans must be"),
    (lambda: sla.solve_triangular(tg.Tensor(np.eye(2)), np.array([1.0, np.nan])), ValueError,
     r"solve_triangular: array must not contain infs or NaNs"),
    (lambda: sla.solve_triangular(tg.Tensor(np.eye(3)), np.ones((2, 1))), np.linalg.LinAlgError,
     r"solve_triangular: a of shape \(3, 3\) and b of shape \(2, 1\) do not match"),
    (lambda: sla.cho_solve(tg.Tensor(np.eye(2)), np.ones(2)), TypeError, r"cho_solve: the first argument"),
    (lambda: sla.solve_sylvester(tg.Tensor(np.eye(2)), np.eye(3), np.ones((3, 3))),
     np.linalg.LinAlgError, r"solve_sylvester: a of shape \(2, 2\), b of shape \(3, 3\) and q of "
                            r"shape \(3, 3\) do not match"),
    (lambda: sla.expm(tg.Tensor(np.ones((2, 3)))), np.linalg.LinAlgError, r"expm: A must be square"),
])
def test_clear_errors(call, kind, match):
    with pytest.raises(kind, match=match):
        call()
    y = tg.Tensor(2.0)  # the tape still works
    assert tg.compute_gradients(y * y, [y]) == [4.0]


@pytest.mark.parametrize("shape", [(0, 0), (2, 0, 0), (0, 3, 3)])
def test_empty_matrices_and_stacks(shape):
    """numpy answers empty matrices and stacks; so does every function, forward and backward
    (scipy's solve_triangular and solve_sylvester refuse empty stacks: numpy's or zeros then)."""
    fns = [la.inv, la.det, lambda x: la.slogdet(x)[1], lambda x: la.eigh(x)[1],
           lambda x: la.svd(x)[0], lambda x: la.qr(x)[1], la.pinv, la.cholesky,
           lambda x: la.norm(x, axis=(-2, -1)), lambda x: la.matrix_power(x, 3), sla.expm,
           sla.sqrtm, lambda x: sla.solve_triangular(x, x), lambda x: sla.solve_sylvester(x, x, x)]
    for fn in fns:
        x = tg.Tensor(np.zeros(shape))
        y = fn(x)
        (g,) = tg.grad((y * 1.0).sum(), x)
        assert g.shape == shape


def test_bench_least_squares_matches_torch():
    """bench/compare.py's least-squares workload (np.linalg.solve on Tensors): value and gradients."""
    torch = pytest.importorskip("torch")
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parents[1] / "bench" / "compare.py"
    if not path.exists():
        pytest.skip("no source checkout")
    spec = importlib.util.spec_from_file_location("compare", path)
    compare = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(compare)
    compare.torch = torch
    data = compare.lstsq_data(12, 4)
    value, grads = compare.lstsq_tapegrad(*data)()
    want, want_grads = compare.lstsq_torch(*data)()
    assert value == pytest.approx(want, rel=1e-12)
    for g, w in zip(grads, want_grads):
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("m, n", [(3, 5), (70, 65), (150, 40)])
def test_blocked_sylvester_solver_matches_scipy(m, n, rng):
    """python/tapegrad/_sylvester.py splits the triangular equation in blocks (never
    inside a 2 x 2 block of a real Schur form: these matrices have complex eigenvalues)."""
    scipy_linalg = pytest.importorskip("scipy.linalg")
    from tapegrad._sylvester import solve_sylvester
    a = rng.normal(size=(m, m)) / np.sqrt(m) + 2 * np.eye(m)
    b = rng.normal(size=(n, n)) / np.sqrt(n) + np.eye(n)
    q = rng.normal(size=(m, n))
    x = solve_sylvester(a, b, q)
    np.testing.assert_allclose(x, scipy_linalg.solve_sylvester(a, b, q), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(a @ x + x @ b, q, atol=1e-11)
    stacked = solve_sylvester(np.stack([a, a]), b, np.stack([q, 2 * q]))  # a batch, broadcast
    np.testing.assert_allclose(stacked, [x, 2 * x], rtol=1e-10, atol=1e-12)
    x32 = solve_sylvester(a.astype(np.float32), b.astype(np.float32), q.astype(np.float32))
    assert x32.dtype == np.float32
    np.testing.assert_allclose(x32, x, rtol=1e-3, atol=1e-3)


def test_sqrtm_of_a_singular_matrix_has_no_gradient(rng):
    x = tg.Tensor(np.diag([0.0, 1.0, 4.0]))
    with pytest.warns(Warning, match="singular"):  # scipy's own, for the value
        y = sla.sqrtm(x)
    np.testing.assert_allclose(y.data, np.diag([0.0, 1.0, 2.0]), atol=1e-12)
    with pytest.raises(np.linalg.LinAlgError,
                       match=r"sqrtm: an eigenvalue of a plus one of b is \(nearly\) zero"):
        tg.grad(y.sum(), x)


def test_hermitian_paths_read_the_lower_triangle(rng):
    """pinv and svd with hermitian=True read a's lower triangle, as numpy's do."""
    b = rng.normal(size=(4, 4))
    sym = b + b.T + 8 * np.eye(4)
    leaf = sym + np.triu(rng.normal(size=(4, 4)), 1)  # junk above the diagonal
    x = tg.Tensor(leaf)
    np.testing.assert_allclose(la.pinv(x, hermitian=True).data,
                               np.linalg.pinv(leaf, hermitian=True), rtol=1e-12)
    np.testing.assert_allclose(la.svd(x, hermitian=True, compute_uv=False).data,
                               np.linalg.svd(leaf, hermitian=True, compute_uv=False), rtol=1e-12)
    for fn in (lambda t: la.pinv(t, hermitian=True),
               lambda t: la.svd(t, hermitian=True, compute_uv=False)):
        assert tg.gradcheck(fn, [tg.Tensor(leaf)])
        x = tg.Tensor(leaf)
        (g,) = tg.grad(fn(x).sum(), x)
        np.testing.assert_array_equal(np.triu(g.data, 1), 0)
