"""Products: einsum (every spec numpy takes, contracted through BLAS), dot, vdot, inner,
outer, tensordot, kron, cross, convolve and scipy.signal.convolve.

Values against numpy (and scipy); first and second derivatives against PyTorch in
float64 and float32; finite differences (gradcheck, gradgradcheck) everywhere; the
errors a user meets.
"""

import subprocess
import sys
import warnings

import numpy as np
import pytest

import tapegrad as tg
from tapegrad import _core

try:  # the oracle; the tests that need it skip without it
    import torch
except ImportError:
    torch = None


# ---- helpers ----

def _arrays(shapes, rng, dtype=np.float64):
    return [rng.uniform(-1.5, 1.5, size=s).astype(dtype) for s in shapes]


def _tolerance(dtype):
    return {"rtol": 1e-5, "atol": 1e-5} if dtype == np.float32 else {"rtol": 1e-12, "atol": 1e-13}


def _value(result):
    return np.asarray(result.data if isinstance(result, tg.Tensor) else result)


def _first_and_second(fn, tensors, u, w, grad):
    """The gradient of <u, fn(x)>, and the gradient of <w, that gradient>."""
    out = fn(*tensors)
    first = grad((out * u).sum(), tensors, create_graph=True)
    total = sum((g * wi).sum() for g, wi in zip(first, w))
    second = grad(total, tensors, allow_unused=True) if total.requires_grad else [None] * len(tensors)
    return out, first, second


def _tg_grad(out, inputs, **kw):
    return tg.grad(out, inputs, **kw)


def _torch_grad(out, inputs, create_graph=False, allow_unused=False):
    return torch.autograd.grad(out, inputs, create_graph=create_graph, allow_unused=allow_unused)


def need_torch():
    if torch is None:
        pytest.skip("PyTorch is not installed")


def check_against_torch(ours, theirs, arrays, rng, dtype):
    """Value, gradient and second-order gradient of ours (on Tensors) against theirs (torch)."""
    need_torch()
    rtol, atol = (1e-4, 1e-5) if dtype == np.float32 else (1e-11, 1e-12)
    arrays = [a.astype(dtype) for a in arrays]
    tensors = [tg.Tensor(a) for a in arrays]
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    shape = np.shape(_value(ours(*[a.astype(np.float64) for a in arrays])))
    u = rng.uniform(0.5, 1.5, size=shape).astype(dtype)
    w = [rng.uniform(0.5, 1.5, size=a.shape).astype(dtype) for a in arrays]
    out, first, second = _first_and_second(ours, tensors, u, w, _tg_grad)
    t_out, t_first, t_second = _first_and_second(
        theirs, ts, torch.from_numpy(u), [torch.from_numpy(x) for x in w], _torch_grad)
    assert out.dtype == dtype
    np.testing.assert_allclose(out.data, t_out.detach().numpy(), rtol=rtol, atol=atol)
    for g, tg_ in zip(first, t_first):
        assert g.dtype == dtype, "a gradient has its input's dtype"
        np.testing.assert_allclose(g.data, tg_.detach().numpy(), rtol=rtol, atol=atol)
    for g, tg_, a in zip(second, t_second, arrays):
        want = np.zeros_like(a) if tg_ is None else tg_.numpy()
        got = np.zeros_like(a) if g is None else g.data
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)


def check_finite_differences(fn, arrays):
    tensors = [tg.Tensor(a) for a in arrays]
    assert tg.gradcheck(fn, tensors)
    assert tg.gradgradcheck(fn, tensors)


# ---- einsum: the spec matrix ----

# (spec, shapes): explicit and implicit outputs, '...' in inputs and output (and of
# different ranks, broadcasting), repeated letters, length-1 letters that broadcast,
# upper case, numbers, three and four operands.
EINSUM_SPECS = [
    ("ij,jk->ik", [(3, 4), (4, 5)]),
    ("ij,jk", [(3, 4), (4, 5)]),
    ("ij,kj", [(3, 4), (5, 4)]),
    ("ba", [(2, 3)]),
    ("Ab,bA", [(2, 3), (3, 2)]),
    ("bA", [(2, 3)]),
    ("ii", [(3, 3)]),
    ("ii->i", [(3, 3)]),
    ("iij->ij", [(3, 3, 2)]),
    ("iji->j", [(3, 2, 3)]),
    ("iii->i", [(3, 3, 3)]),
    ("ii,ij->j", [(3, 3), (3, 4)]),
    ("ij->ji", [(2, 3)]),
    ("ij->", [(2, 3)]),
    ("i,i", [(4,), (4,)]),
    ("i,j", [(3,), (2,)]),
    ("ij,ij->ij", [(3, 4), (3, 4)]),
    ("ij,ij->i", [(3, 4), (3, 4)]),
    ("ijk,mik->mij", [(4, 3, 5), (6, 4, 5)]),
    ("ijk,mij->mik", [(4, 3, 5), (6, 4, 3)]),
    ("mik,mij->ijk", [(6, 4, 5), (6, 4, 3)]),
    ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]),
    ("jib,bjk->bik", [(3, 2, 4), (4, 3, 5)]),
    ("nik,nk->ni", [(5, 3, 4), (5, 4)]),
    ("ijk,jkl->il", [(2, 3, 4), (3, 4, 5)]),
    ("ij,kl->ijkl", [(2, 3), (4, 1)]),
    ("...ij,...jk->...ik", [(2, 3, 4), (4, 5)]),
    ("...ij,...jk", [(5, 1, 3, 4), (2, 4, 2)]),
    ("...ii->...i", [(2, 3, 3)]),
    ("i...,i...", [(3, 2), (3, 1)]),
    ("...,...", [(3, 2), (2,)]),
    ("ba,...", [(2, 3), (4,)]),
    ("ij...,jk", [(2, 3, 4), (3, 5)]),
    ("...i,i->...", [(2, 3, 4), (4,)]),
    ("ab,b->a", [(3, 1), (5,)]),
    ("ab,b->ab", [(3, 1), (5,)]),
    ("ij,j->i", [(3, 4), (1,)]),
    ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 5)]),
    ("i,ij,j->", [(3,), (3, 4), (4,)]),
    ("i,i,i->", [(4,), (4,), (4,)]),
    ("bn,anm,bm->ba", [(3, 4), (2, 4, 5), (3, 5)]),
    ("abc,cd,de,ea->b", [(2, 3, 4), (4, 5), (5, 2), (2, 2)]),
    ("xy,yz,zx->", [(3, 4), (4, 5), (5, 3)]),
]


@pytest.mark.parametrize("spec,shapes", EINSUM_SPECS, ids=[s for s, _ in EINSUM_SPECS])
def test_einsum_values_match_numpy(spec, shapes, rng):
    for dtype in (np.float64, np.float32):
        arrays = _arrays(shapes, rng, dtype)
        expected = np.einsum(spec, *arrays)
        got = tg.einsum(spec, *[tg.Tensor(a) for a in arrays])
        assert got.shape == np.shape(expected) and got.dtype == dtype
        np.testing.assert_allclose(got.data, expected, **_tolerance(dtype))
        # numpy's own function on Tensors records the same op
        by_numpy = np.einsum(spec, *[tg.Tensor(a) for a in arrays])
        assert isinstance(by_numpy, tg.Tensor) and by_numpy.requires_grad
        np.testing.assert_array_equal(by_numpy.data, got.data)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("spec,shapes", EINSUM_SPECS, ids=[s for s, _ in EINSUM_SPECS])
def test_einsum_gradients_match_torch(spec, shapes, dtype, rng):
    check_against_torch(lambda *xs: tg.einsum(spec, *xs), lambda *xs: torch.einsum(spec, *xs),
                        _arrays(shapes, rng), rng, dtype)


@pytest.mark.parametrize("spec,shapes", EINSUM_SPECS, ids=[s for s, _ in EINSUM_SPECS])
def test_einsum_finite_differences(spec, shapes, rng):
    check_finite_differences(lambda *xs: tg.einsum(spec, *xs), _arrays(shapes, rng))


@pytest.mark.parametrize("spec,shapes", [c for c in EINSUM_SPECS if len(c[1]) > 1],
                         ids=[s for s, sh in EINSUM_SPECS if len(sh) > 1])
def test_einsum_mixed_float32_float64(spec, shapes, rng):
    need_torch()
    arrays = [a.astype(np.float32 if k % 2 == 0 else np.float64)
              for k, a in enumerate(_arrays(shapes, rng))]
    expected = np.einsum(spec, *arrays)
    tensors = [tg.Tensor(a) for a in arrays]
    out = tg.einsum(spec, *tensors)
    assert out.dtype == expected.dtype == np.float64  # numpy's promotion
    np.testing.assert_allclose(out.data, expected, rtol=1e-12)
    grads = tg.grad(out.sum(), tensors)
    ts = [torch.tensor(a.astype(np.float64), requires_grad=True) for a in arrays]
    want = torch.autograd.grad(torch.einsum(spec, *ts).sum(), ts)
    for g, w, a in zip(grads, want, arrays):
        assert g.dtype == a.dtype
        np.testing.assert_allclose(g.data, w.numpy(), rtol=1e-5)
    recorded = tg.grad(tg.einsum(spec, *tensors).sum(), tensors, create_graph=True)
    for g, w, a in zip(recorded, want, arrays):
        assert g.dtype == a.dtype and g.requires_grad
        np.testing.assert_allclose(g.data, w.numpy(), rtol=1e-5)


def test_einsum_with_constant_operands_and_numbers(rng):
    x = tg.Tensor(rng.normal(size=(3, 4)).astype(np.float32))
    m = rng.normal(size=(4, 2))  # a float64 constant
    out = np.einsum("ij,jk->ik", x, m)
    assert out.dtype == np.float64
    (g,) = tg.grad(out.sum(), [x])
    assert g.dtype == np.float32
    np.testing.assert_allclose(g.data, np.broadcast_to(m.sum(1), (3, 4)), rtol=1e-6)
    # a number operand multiplies
    y = tg.Tensor(rng.normal(size=3))
    out = tg.einsum(",i->i", 2.5, y)
    np.testing.assert_allclose(out.data, 2.5 * y.data)
    np.testing.assert_allclose(tg.grad(out.sum(), [y])[0].data, np.full(3, 2.5))
    # no Tensor at all: numpy's plain value
    assert isinstance(tg.einsum("ij->j", m), np.ndarray)


def test_einsum_interleaved_form_matches_numpy(rng):
    a, b = rng.normal(size=(2, 3)), rng.normal(size=(3, 4))
    ta, tb = tg.Tensor(a), tg.Tensor(b)
    for args, plain in [((ta, [0, 1], tb, [1, 2], [0, 2]), (a, [0, 1], b, [1, 2], [0, 2])),
                        ((ta, [0, 1], tb, [1, 2]), (a, [0, 1], b, [1, 2])),
                        ((ta, [Ellipsis, 1], b, [1, 30]), (a, [Ellipsis, 1], b, [1, 30])),
                        ((ta, [Ellipsis, 1], [Ellipsis]), (a, [Ellipsis, 1], [Ellipsis]))]:
        np.testing.assert_allclose(np.einsum(*args).data, np.einsum(*plain), rtol=1e-12)
    for optimize in (False, True, "greedy", "optimal"):  # always contracted through BLAS
        np.testing.assert_allclose(np.einsum("ij,jk", ta, tb, optimize=optimize).data, a @ b,
                                   rtol=1e-12)
    (g,) = tg.grad(np.einsum(ta, [0, 1], tb, [1, 2], [0, 2]).sum(), [ta])
    np.testing.assert_allclose(g.data, np.broadcast_to(b.sum(1), (2, 3)), rtol=1e-12)


def test_einsum_layouts_and_cached_plans(rng):
    """Transposed, broadcast, reversed and sliced operands, and one spec over several shapes
    (a plan is cached per spec and shapes): values as numpy's."""
    a = rng.normal(size=(6, 5, 4))
    layouts = [a, a.transpose(2, 0, 1).copy().transpose(1, 2, 0), a[::-1, :, ::2],
               np.broadcast_to(a[:1], (6, 5, 4))]
    b = rng.normal(size=(6, 4, 3))
    for x in layouts:
        for y in (b[:, : x.shape[2]], b[:, : x.shape[2]].transpose(0, 2, 1).copy().transpose(0, 2, 1)):
            for spec in ("bij,bjk->bik", "bij,bjk->kib", "bij,bjk->ki"):
                want = np.einsum(spec, x, y)
                got = tg.einsum(spec, tg.Tensor(x), tg.Tensor(y))
                np.testing.assert_allclose(got.data, want, rtol=1e-12, atol=1e-13)
    for n in (1, 2, 7, 2):
        x, y = rng.normal(size=(n, 3)), rng.normal(size=(3, n))
        np.testing.assert_allclose(tg.einsum("ij,jk->ik", tg.Tensor(x), y).data, x @ y,
                                   rtol=1e-12)


@pytest.mark.parametrize("spec,shapes", [
    ("ij,jk->ik", [(0, 3), (3, 4)]), ("ij,jk->ik", [(2, 0), (0, 4)]),
    ("bij,bjk->bik", [(0, 2, 3), (0, 3, 4)]), ("i,i", [(0,), (0,)]), ("ii->i", [(0, 0)]),
    ("nik,nk->ni", [(4, 0, 3), (4, 3)]), ("ijk,mik->mij", [(3, 0, 2), (5, 3, 2)]),
])
def test_einsum_of_empty_operands(spec, shapes):
    arrays = [np.ones(s) for s in shapes]
    tensors = [tg.Tensor(a) for a in arrays]
    out = tg.einsum(spec, *tensors)
    np.testing.assert_array_equal(out.data, np.einsum(spec, *arrays))
    for g, a in zip(tg.grad(out.sum(), tensors), arrays):
        np.testing.assert_array_equal(g.data, np.zeros_like(a))  # every product is empty


def test_einsum_plans_are_cached_by_spec_and_shapes(rng):
    x, b = tg.Tensor(rng.normal(size=(3, 4))), rng.normal(size=(4, 5))
    tg.einsum("ij,jk->ik", x, b)
    before = _core.einsum_plans()
    for _ in range(3):
        tg.einsum("ij,jk->ik", x, b)
    assert _core.einsum_plans() == before
    tg.einsum("ij,jk->ik", x, rng.normal(size=(4, 6)))  # new shapes: a new plan
    assert _core.einsum_plans() in (before + 1, 1)  # 1: the cache was full and emptied
    for n in range(1, 600):
        tg.einsum("i->", np.ones(n))
    assert 0 < _core.einsum_plans() <= 512  # bounded


def test_einsum_large_contraction_writes_a_contiguous_result(rng):
    """The GMM's einsum: BLAS writes the product straight into the output's layout."""
    ls, xc = rng.normal(size=(5, 8, 8)), rng.normal(size=(50, 5, 8))
    out = np.einsum("ijk,mik->mij", tg.Tensor(ls), tg.Tensor(xc))
    np.testing.assert_allclose(out.data, np.einsum("ijk,mik->mij", ls, xc), rtol=1e-12)
    assert out.data.flags.c_contiguous


@pytest.mark.parametrize("call,kind,match", [
    (lambda x: tg.einsum("ij,jk->ik", x), ValueError, "names 2 operands, 1 given"),
    (lambda x: tg.einsum("ij->ii", x), ValueError, r"repeats a letter \('i'\)"),
    (lambda x: tg.einsum("ij->k", x), ValueError, "'k', which no input has"),
    (lambda x: tg.einsum("i.j", x), ValueError, "not part of an ellipsis"),
    (lambda x: tg.einsum("i1", x), ValueError, "invalid subscript '1'"),
    (lambda x: tg.einsum("ijk", x), ValueError, "has 3 letters for operand 0, which has 2 axes"),
    (lambda x: tg.einsum("ij,jk", x, np.ones((4, 5))), ValueError,
     r"letter 'j' has length 3 in operand 0 \(shape \(2, 3\)\) but 4 in operand 1"),
    (lambda x: tg.einsum("ii", x), ValueError, "repeats in operand 0"),
    (lambda x: tg.einsum("...i->i", x), ValueError, r"has no '\.\.\.'"),
    (lambda x: tg.einsum("...i,...i->...i", x, np.ones((4, 3))), ValueError,
     r"could not be broadcast together over '\.\.\.'"),
    (lambda x: tg.einsum("ij->ji->ij", x), ValueError, "more than one '->'"),
    (lambda x: tg.einsum("ij", x, out=np.ones((2, 3))), TypeError, "out= and dtype="),
    (lambda x: tg.einsum(x, [0, 60]), ValueError, "out of range"),
    (lambda x: tg.einsum(x, [0, "a"]), TypeError, "ints in"),
    (lambda x: _core.array_op(_core.OP_CODES["einsum"], (x,), ("ij", "i")), TypeError,
     "params are"),
    (lambda x: _core.array_op(_core.OP_CODES["einsum"], (x,), (("i j",), "i")), ValueError,
     "invalid subscript ' '"),
    (lambda x: _core.array_op(_core.OP_CODES["einsum"], (x,), ((3,), "i")), TypeError,
     "input specs must be str"),
    (lambda x: _core.array_op(_core.OP_CODES["einsum"], (x,), (("ij", "k"), "i")), ValueError,
     "2 input specs for 1 operands"),
])
def test_einsum_errors(call, kind, match):
    x = tg.Tensor(np.ones((2, 3)))
    with pytest.raises(kind, match=match) as error:
        call(x)
    assert str(error.value).startswith("einsum:")


def test_gmm_objective_matches_torch():
    """bench/compare.py's ADBench GMM (einsum, gathered factors, logsumexp): value to 1e-10."""
    need_torch()
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parents[1] / "bench" / "compare.py"
    spec = importlib.util.spec_from_file_location("compare", path)
    compare = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(compare)
    compare.torch = torch
    data = compare.gmm_data(5, 3, n=20)
    value, grads = compare.gmm_tapegrad(*data)()
    want, want_grads = compare.gmm_torch(*data)()
    assert value == pytest.approx(want, rel=1e-10)
    for g, w in zip(grads, want_grads):
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12)


# ---- dot, vdot, inner, outer, tensordot, kron, cross ----

def _torch_cross(a, b, **kw):
    return torch.linalg.cross(*torch.broadcast_tensors(a, b), **kw)


# name -> (tapegrad call, numpy call, torch call or None, shapes)
PRODUCTS = {
    "dot_2d_1d": (tg.dot, np.dot, lambda a, b: a @ b, [(3, 4), (4,)]),
    "dot_3d_1d": (tg.dot, np.dot, lambda a, b: a @ b, [(2, 3, 4), (4,)]),
    "dot_1d_3d": (tg.dot, np.dot, lambda a, b: torch.tensordot(a, b, dims=([0], [1])),
                  [(3,), (2, 3, 4)]),
    "dot_3d_3d": (tg.dot, np.dot, lambda a, b: torch.tensordot(a, b, dims=([2], [1])),
                  [(2, 3, 4), (5, 4, 2)]),
    "dot_scalar": (tg.dot, np.dot, lambda a, b: a * b, [(), (3, 2)]),
    "vdot": (tg.vdot, np.vdot, lambda a, b: torch.dot(a.flatten(), b.flatten()),
             [(2, 3), (3, 2)]),
    "inner_1d": (tg.inner, np.inner, lambda a, b: torch.inner(a, b), [(4,), (4,)]),
    "inner_nd": (tg.inner, np.inner, lambda a, b: torch.inner(a, b), [(2, 3, 4), (5, 4)]),
    "inner_scalar": (tg.inner, np.inner, lambda a, b: torch.inner(a, b), [(3,), ()]),
    "outer": (tg.outer, np.outer, lambda a, b: torch.outer(a.flatten(), b.flatten()),
              [(2, 2), (3,)]),
    "tensordot_2": (tg.tensordot, np.tensordot, lambda a, b: torch.tensordot(a, b), [(2, 3, 4), (3, 4, 5)]),
    "tensordot_1": (lambda a, b: tg.tensordot(a, b, 1), lambda a, b: np.tensordot(a, b, 1),
                    lambda a, b: torch.tensordot(a, b, 1), [(2, 3), (3, 4)]),
    "tensordot_0": (lambda a, b: tg.tensordot(a, b, 0), lambda a, b: np.tensordot(a, b, 0),
                    lambda a, b: torch.tensordot(a, b, 0), [(2, 3), (4,)]),
    "tensordot_pairs": (lambda a, b: tg.tensordot(a, b, ([2, 0], [0, 2])),
                        lambda a, b: np.tensordot(a, b, ([2, 0], [0, 2])),
                        lambda a, b: torch.tensordot(a, b, ([2, 0], [0, 2])),
                        [(2, 3, 4), (4, 5, 2)]),
    "tensordot_ints": (lambda a, b: tg.tensordot(a, b, (-1, 0)),
                       lambda a, b: np.tensordot(a, b, (-1, 0)),
                       lambda a, b: torch.tensordot(a, b, ([1], [0])), [(2, 3), (3, 4)]),
    "kron_2d": (tg.kron, np.kron, lambda a, b: torch.kron(a, b), [(2, 3), (3, 2)]),
    "kron_ranks": (tg.kron, np.kron, lambda a, b: torch.kron(a, b), [(3,), (2, 2)]),
    "kron_3d": (tg.kron, np.kron, lambda a, b: torch.kron(a, b), [(2, 1, 2), (1, 3, 2)]),
    "cross_3": (tg.cross, np.cross, _torch_cross, [(4, 3), (4, 3)]),
    "cross_broadcast": (tg.cross, np.cross, _torch_cross, [(2, 1, 3), (5, 3)]),
    "cross_axis": (lambda a, b: tg.cross(a, b, axis=0), lambda a, b: np.cross(a, b, axis=0),
                   lambda a, b: torch.linalg.cross(a, b, dim=0), [(3, 4), (3, 4)]),
    "cross_axes": (lambda a, b: tg.cross(a, b, axisa=0, axisb=1, axisc=0),
                   lambda a, b: np.cross(a, b, axisa=0, axisb=1, axisc=0),
                   lambda a, b: torch.linalg.cross(a.T, b).T, [(3, 4), (4, 3)]),
    "cross_2_3": (tg.cross, np.cross, lambda a, b: _torch_cross(
        torch.nn.functional.pad(a, (0, 1)), b), [(4, 2), (4, 3)]),
    "cross_3_2": (tg.cross, np.cross, lambda a, b: _torch_cross(
        a, torch.nn.functional.pad(b, (0, 1))), [(4, 3), (4, 2)]),
    "cross_2_2": (tg.cross, np.cross, lambda a, b: a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0],
                  [(4, 2), (4, 2)]),
}


@pytest.fixture(autouse=True)
def _quiet_2d_cross():
    with warnings.catch_warnings():  # numpy deprecates 2-vectors in cross; so do we
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


@pytest.mark.parametrize("name", sorted(PRODUCTS))
def test_product_values_match_numpy(name, rng):
    ours, numpys, _, shapes = PRODUCTS[name]
    for dtype in (np.float64, np.float32):
        arrays = _arrays(shapes, rng, dtype)
        expected = numpys(*arrays)
        got = ours(*[tg.Tensor(a) for a in arrays])
        assert got.shape == np.shape(expected) and got.dtype == dtype
        np.testing.assert_allclose(got.data, expected, **_tolerance(dtype))
        # numpy's function on Tensors records (a Tensor operand and a constant one)
        by_numpy = numpys(tg.Tensor(arrays[0]), arrays[1])
        assert isinstance(by_numpy, tg.Tensor) and by_numpy.requires_grad
        np.testing.assert_allclose(by_numpy.data, expected, **_tolerance(dtype))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", sorted(PRODUCTS))
def test_product_gradients_match_torch(name, dtype, rng):
    ours, _, theirs, shapes = PRODUCTS[name]
    check_against_torch(ours, theirs, _arrays(shapes, rng), rng, dtype)


@pytest.mark.parametrize("name", sorted(PRODUCTS))
def test_product_finite_differences(name, rng):
    ours, _, _, shapes = PRODUCTS[name]
    check_finite_differences(ours, _arrays(shapes, rng))


def test_dot_of_3d_and_1d_tensors():
    """Issue 12: np.dot of a 3-D and a 1-D Tensor raised "einsum: 'cd' has 2 letters"."""
    a = tg.Tensor(np.arange(24.0).reshape(2, 3, 4))
    v = tg.Tensor(np.array([1.0, -1.0, 2.0, 0.5]))
    out = np.dot(a, v)
    np.testing.assert_array_equal(out.data, np.dot(a.data, v.data))
    ga, gv = tg.grad(out.sum(), [a, v])
    np.testing.assert_array_equal(ga.data, np.broadcast_to(v.data, (2, 3, 4)))
    np.testing.assert_array_equal(gv.data, a.data.sum(axis=(0, 1)))


def test_cross_of_2_vectors_warns_as_numpy():
    a, b = tg.Tensor([1.0, 2.0]), tg.Tensor([3.0, 4.0])
    with pytest.warns(DeprecationWarning, match="2-dimensional vectors are deprecated"):
        out = tg.cross(a, b)
    assert out.data == pytest.approx(-2.0)


@pytest.mark.parametrize("call,kind,match", [
    (lambda x: np.dot(x, np.ones((2, 5, 2))), ValueError,
     r"dot: shapes \(2, 3, 4\) and \(2, 5, 2\) are not aligned: the last axis of a \(4\) must "
     r"equal the second-to-last axis of b \(5\)"),
    (lambda x: np.dot(x, np.ones(5)), ValueError, r"the only axis of b \(5\)"),
    (lambda x: tg.vdot(x, np.ones(5)), ValueError, r"a has 24 elements .* b has 5"),
    (lambda x: tg.inner(x, np.ones(3)), ValueError, r"the last axes of a \(2, 3, 4\) and b \(3,\)"),
    (lambda x: tg.tensordot(x, np.ones((3, 4)), axes=([1], [0, 1])), ValueError,
     "1 axes of a but 2 of b"),
    (lambda x: tg.tensordot(x, np.ones((3, 4)), axes=([1], [1])), ValueError,
     r"axis 1 of a has length 3, axis 1 of b 4"),
    (lambda x: tg.tensordot(x, np.ones((3, 4)), axes=([5], [0])), np.exceptions.AxisError,
     "axis 5 is out of bounds for a"),
    (lambda x: tg.tensordot(x, np.ones((3, 3)), axes=([1, 1], [0, 1])), ValueError,
     "repeat an axis"),
    (lambda x: tg.tensordot(x, np.ones((3, 4)), axes=3), ValueError, "between 0 and the smaller"),
    (lambda x: tg.tensordot(x, np.ones((3, 4)), axes="ab"), TypeError, "axes are ints, got 'a'"),
    (lambda x: tg.tensordot(x, np.ones((3, 4)), axes=[1, 2, 3]), ValueError, "an int or a pair"),
    (lambda x: tg.cross(x, np.ones((3, 4))), ValueError, "must have 2 or 3 components"),
    (lambda x: tg.cross(x, np.ones(3), axisa=3), np.exceptions.AxisError, "axisa=3"),
    (lambda x: tg.cross(2.0, x), ValueError, "must be arrays of 2- or 3-vectors"),
])
def test_product_errors(call, kind, match):
    x = tg.Tensor(np.ones((2, 3, 4)))
    with pytest.raises(kind, match=match):
        call(x)


# ---- convolve ----

def _torch_convolve(a, v, mode):
    """numpy's 1-D and scipy's N-D convolve in PyTorch (a correlation, flipped kernel)."""
    conv = {1: torch.nn.functional.conv1d, 2: torch.nn.functional.conv2d}[a.ndim]
    full = conv(a[None, None], v.flip(list(range(v.ndim)))[None, None],
                padding=[n - 1 for n in v.shape])[0, 0]
    lengths = {"full": full.shape,
               "same_numpy": [max(n, m) for n, m in zip(a.shape, v.shape)],
               "same": a.shape,
               "valid": [abs(n - m) + 1 for n, m in zip(a.shape, v.shape)]}[mode]
    for axis, (n, m) in enumerate(zip(full.shape, lengths)):
        full = full.narrow(axis, (n - m) // 2, m)
    return full


CONVOLUTIONS = [(n, m, mode) for n, m in [(7, 3), (3, 7), (6, 4), (4, 4), (5, 1), (1, 1)]
                for mode in ("full", "same", "valid")]


@pytest.mark.parametrize("n,m,mode", CONVOLUTIONS)
def test_convolve_matches_numpy_and_torch(n, m, mode, rng):
    a, v = _arrays([(n,), (m,)], rng)
    for dtype in (np.float64, np.float32):
        got = np.convolve(tg.Tensor(a.astype(dtype)), tg.Tensor(v.astype(dtype)), mode=mode)
        assert isinstance(got, tg.Tensor) and got.dtype == dtype
        np.testing.assert_allclose(got.data, np.convolve(a, v, mode), rtol=1e-5, atol=1e-6)
        check_against_torch(
            lambda x, y: tg.convolve(x, y, mode),
            lambda x, y: _torch_convolve(x, y, "same_numpy" if mode == "same" else mode),
            [a, v], rng, dtype)
    check_finite_differences(lambda x, y: tg.convolve(x, y, mode), [a, v])


SCIPY_CONVOLUTIONS = [(s1, s2, mode) for s1, s2 in [((5, 4), (2, 3)), ((2, 3), (5, 4)),
                                                    ((4, 4), (4, 4)), ((3, 1), (1, 1))]
                      for mode in ("full", "same", "valid")]


@pytest.mark.parametrize("s1,s2,mode", SCIPY_CONVOLUTIONS)
def test_scipy_signal_convolve_matches_scipy_and_torch(s1, s2, mode, rng):
    signal = pytest.importorskip("scipy.signal")
    from tapegrad.scipy.signal import convolve

    a, v = _arrays([s1, s2], rng)
    for method in ("auto", "direct", "fft"):
        got = convolve(tg.Tensor(a), tg.Tensor(v), mode=mode, method=method)
        np.testing.assert_allclose(got.data, signal.convolve(a, v, mode, method), rtol=1e-10,
                                   atol=1e-12)
    for dtype in (np.float64, np.float32):
        check_against_torch(lambda x, y: convolve(x, y, mode, "direct"),
                            lambda x, y: _torch_convolve(x, y, mode), [a, v], rng, dtype)
    check_finite_differences(lambda x, y: convolve(x, y, mode, "direct"), [a, v])
    # the fft method's gradient is the same one, to rounding
    ta, tv = tg.Tensor(a), tg.Tensor(v)
    direct = tg.grad(convolve(ta, tv, mode, "direct").sum(), [ta, tv])
    fft = tg.grad(convolve(ta, tv, mode, "fft").sum(), [ta, tv])
    for g, h in zip(direct, fft):
        np.testing.assert_allclose(g.data, h.data, rtol=1e-9, atol=1e-12)


def test_scipy_signal_convolve_3d_and_numbers(rng):
    signal = pytest.importorskip("scipy.signal")
    from tapegrad.scipy.signal import convolve

    a, v = _arrays([(3, 4, 2), (2, 2, 2)], rng)
    np.testing.assert_allclose(convolve(tg.Tensor(a), v, "same").data,
                               signal.convolve(a, v, "same"), rtol=1e-12)
    check_finite_differences(lambda x, y: convolve(x, y, "valid"), [a, v])
    x = tg.Tensor(2.0)
    assert convolve(x, 3.0).data == 6.0


@pytest.mark.parametrize("call,kind,match", [
    (lambda: tg.convolve(tg.Tensor(np.ones((2, 3))), np.ones(2)), ValueError,
     r"takes 1-D sequences, got shapes \(2, 3\) and \(2,\); for N-D arrays use "
     r"tapegrad.scipy.signal.convolve"),
    (lambda: tg.convolve(tg.Tensor(np.ones(3)), np.ones(2), mode="middle"), ValueError,
     "mode must be 'full', 'same' or 'valid'"),
    (lambda: tg.convolve(tg.Tensor(np.ones(0)), np.ones(2)), ValueError,
     "convolve: a cannot be empty"),
    (lambda: _core.array_op(_core.OP_CODES["convolve"], (tg.Tensor(np.ones(3)), np.ones(2)),
                            ("same", None)), ValueError, "mode 'full' or 'valid'"),
])
def test_convolve_errors(call, kind, match):
    with pytest.raises(kind, match=match):
        call()


@pytest.mark.parametrize("args,match", [
    (((3, 4), (4, 3), "valid", "auto"), "one must be at least as large as the other"),
    (((3, 4), (3,), "full", "auto"), "should have the same dimensionality"),
    (((3, 4), (2, 2), "same", "fast"), "method must be 'auto', 'direct' or 'fft'"),
    (((3, 4), (2, 2), "middle", "auto"), "mode must be"),
])
def test_scipy_signal_convolve_errors(args, match):
    pytest.importorskip("scipy.signal")
    from tapegrad.scipy.signal import convolve

    s1, s2, mode, method = args
    with pytest.raises(ValueError, match=match):
        convolve(tg.Tensor(np.ones(s1)), np.ones(s2), mode, method)


def test_scipy_signal_docstring_examples():
    pytest.importorskip("scipy")
    import doctest

    import tapegrad.scipy.signal

    result = doctest.testmod(tapegrad.scipy.signal, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted > 0


def test_import_tapegrad_does_not_import_scipy():
    code = ("import sys, tapegrad, tapegrad.scipy.signal; "
            "assert not [m for m in sys.modules if m == 'scipy' or m.startswith('scipy.')]")
    subprocess.run([sys.executable, "-c", code], check=True)
