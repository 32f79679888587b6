"""What a numpy user meets in the first hour (issue 12, sections 2 and 3).

Each section pins one fix against PyTorch (float64 and float32, first and second
order) and against central finite differences where the function is smooth.
"""

import numpy as np
import pytest

import tapegrad as tg

DTYPES = [np.float64, np.float32]


def _tol(dtype):
    return 1e-10 if dtype == np.float64 else 2e-5


def _against_torch(fn, torch_fn, values, dtype, rng):
    """fn's value, gradient and Hessian-vector product against torch's, NaNs included.

    Returns our first gradients (Tensors) for further checks.
    """
    torch = pytest.importorskip("torch")
    values = [np.asarray(v, dtype=dtype) for v in values]
    ours = [tg.Tensor(v) for v in values]
    theirs = [torch.tensor(v, requires_grad=True) for v in values]
    out, ref = fn(*ours), torch_fn(torch, *theirs)
    tol = _tol(dtype)
    np.testing.assert_allclose(out.data, ref.detach().numpy(), rtol=tol, atol=tol)
    u = np.asarray(rng.uniform(0.5, 1.5, size=out.shape), dtype=dtype)
    grads = tg.grad((out * u).sum(), ours, create_graph=True, allow_unused=True)
    ref_grads = torch.autograd.grad((ref * torch.tensor(u)).sum(), theirs, create_graph=True,
                                    allow_unused=True)
    for v, g, r in zip(values, grads, ref_grads):
        want = np.zeros_like(v) if r is None else r.detach().numpy()
        got = np.zeros_like(v) if g is None else g.data
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol)
        assert np.asarray(got).dtype == dtype
    w = [np.asarray(rng.uniform(0.5, 1.5, size=v.shape), dtype=dtype) for v in values]
    total = sum((g * wi).sum() for g, wi in zip(grads, w) if g is not None)
    ref_total = sum((r * torch.tensor(wi)).sum() for r, wi in zip(ref_grads, w) if r is not None)
    if isinstance(total, tg.Tensor) and total.requires_grad:
        second = tg.grad(total, ours, allow_unused=True)
    else:
        second = [None] * len(ours)
    if isinstance(ref_total, torch.Tensor) and ref_total.requires_grad:
        ref_second = torch.autograd.grad(ref_total, theirs, allow_unused=True)
    else:
        ref_second = [None] * len(theirs)
    for v, g, r in zip(values, second, ref_second):
        want = np.zeros_like(v) if r is None else r.detach().numpy()
        got = np.zeros_like(v) if g is None else g.data
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol)
        assert np.asarray(got).dtype == dtype
    return grads


# ---- 1. std where it is 0 ----

STD_CASES = {
    # name: (values, axis, ddof)
    "one_element": ([0.7], None, 0),
    "one_element_ddof1": ([0.7], None, 1),  # NaN value, NaN gradient (torch's too)
    "equal": ([0.7, 0.7], None, 0),
    "equal_ddof1": ([0.7, 0.7], None, 1),
    "row_axis0": ([[1.0, 2.0, 3.0]], 0, 0),
    "row_axis0_ddof1": ([[1.0, 2.0, 3.0]], 0, 1),
    "some_rows_constant": ([[1.0, 1.0, 1.0], [0.5, -1.0, 2.0]], 1, 0),
    "some_rows_constant_ddof1": ([[0.5, -1.0, 2.0], [3.0, 3.0, 3.0]], 1, 1),
    "ddof_past_count": ([[1.0, 2.0]], 0, 2),
}


def _torch_std(values, axis, ddof):
    def f(torch, x):
        dim = None if axis is None else axis
        return torch.std(x, dim=dim, correction=ddof)
    return f


@pytest.mark.filterwarnings("ignore::RuntimeWarning", "ignore::UserWarning")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(STD_CASES))
def test_std_where_zero_matches_torch(name, dtype, rng):
    values, axis, ddof = STD_CASES[name]
    _against_torch(lambda x: np.std(x, axis=axis, ddof=ddof), _torch_std(values, axis, ddof),
                   [values], dtype, rng)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_std_where_zero_every_spelling():
    want = {"one": [0.0], "equal": [0.0, 0.0]}
    for key, values in (("one", [0.7]), ("equal", [0.7, 0.7])):
        for std in (np.std, tg.std, lambda t: t.std()):
            x = tg.Tensor(values)
            (g,) = tg.grad(std(x), [x])
            np.testing.assert_array_equal(g.data, want[key])
    x = tg.Tensor([[1.0, 2.0, 3.0]])
    (g,) = tg.grad(x.std(axis=0).sum(), [x])
    np.testing.assert_array_equal(g.data, np.zeros((1, 3)))
    x = tg.Tensor([0.7, 0.7])
    x.std().backward()
    np.testing.assert_array_equal(x.grad.data, [0.0, 0.0])


def test_std_nonzero_gradcheck_and_gradgradcheck(rng):
    x = tg.Tensor(rng.uniform(-1, 1, (3, 4)))
    for axis, ddof, keepdims in ((None, 0, False), (0, 1, True), ((0, 1), 0, False), (1, 2, False)):
        def f(t, axis=axis, ddof=ddof, keepdims=keepdims):
            return tg.std(t, axis=axis, ddof=ddof, keepdims=keepdims)
        assert tg.gradcheck(f, [x])
        assert tg.gradgradcheck(f, [x])


def test_sqrt_of_zero_stays_infinite_as_torch():
    torch = pytest.importorskip("torch")
    x = tg.Tensor([0.0, 4.0])
    (g,) = tg.grad(tg.sqrt(x).sum(), [x])
    xt = torch.tensor([0.0, 4.0], dtype=torch.float64, requires_grad=True)
    (ref,) = torch.autograd.grad(torch.sqrt(xt).sum(), xt)
    np.testing.assert_array_equal(g.data, ref.numpy())
    assert np.isinf(g.data[0])


# ---- 2. a gradient has its input's dtype ----

def _nd(rng, shape):
    return rng.uniform(0.5, 1.5, shape)  # float64 constants


DTYPE_CASES = {
    # name: (fn(x, nd), torch fn(torch, x, nd), x shape, nd shape)
    "mul_ndarray": (lambda x, c: x * c, lambda t, x, c: x * c, (3, 4), (3, 4)),
    "mul_ndarray_broadcast": (lambda x, c: (x * c) * x, lambda t, x, c: (x * c) * x, (4,), (3, 4)),
    "rmul_ndarray": (lambda x, c: c * x * x, lambda t, x, c: c * x * x, (3, 4), (4,)),
    "matmul_ndarray": (lambda x, c: tg.tanh(x @ c), lambda t, x, c: t.tanh(x.double() @ c), (2, 3), (3, 4)),
    "rmatmul_ndarray": (lambda x, c: tg.tanh(c @ x), lambda t, x, c: t.tanh(c @ x.double()), (3, 2), (4, 3)),
    "einsum_ndarray": (lambda x, c: tg.einsum("ij,jk->ik", x * x, c),
                       lambda t, x, c: t.einsum("ij,jk->ik", (x * x).double(), c), (2, 3), (3, 4)),
    "clip_ndarray_bounds": (lambda x, c: np.clip(x, -c, c) * x,
                            lambda t, x, c: t.clamp(x, -c, c) * x, (3, 4), (3, 4)),
    "maximum": (lambda x, c: np.maximum(x * x, x), lambda t, x, c: t.maximum(x * x, x),
                (3, 4), (1,)),
    "maximum_ndarray": (lambda x, c: np.maximum(x, c - 1.0) * x,
                        lambda t, x, c: t.maximum(x, c - 1.0) * x, (3, 4), (3, 4)),
    "minimum": (lambda x, c: np.minimum(x * x, x), lambda t, x, c: t.minimum(x * x, x),
                (3, 4), (1,)),
}


@pytest.mark.parametrize("name", sorted(DTYPE_CASES))
def test_float32_gradient_meeting_float64_keeps_float32(name, rng):
    fn, torch_fn, xshape, cshape = DTYPE_CASES[name]
    c = _nd(rng, cshape)
    x = rng.uniform(-1, 1, xshape)
    # Exact ties for maximum/minimum: x*x == x at 0 and 1.
    x.flat[0], x.flat[1] = 0.0, 1.0
    _against_torch(lambda t: fn(t, c), lambda torch, t: torch_fn(torch, t, torch.tensor(c)),
                   [x], np.float32, rng)
    xt = tg.Tensor(x.astype(np.float32))
    (g,) = tg.grad(fn(xt, c).sum(), [xt])
    assert g.data.dtype == np.float32
    (g,) = tg.grad(fn(xt, c).sum(), [xt], create_graph=True)
    assert g.data.dtype == np.float32
    fn(xt, c).sum().backward(create_graph=True)
    assert xt.grad.data.dtype == np.float32


@pytest.mark.parametrize("name", sorted(DTYPE_CASES))
def test_float32_meeting_float64_gradcheck(name, rng):
    fn, _, xshape, cshape = DTYPE_CASES[name]
    c = _nd(rng, cshape)
    x = tg.Tensor(rng.uniform(-1, 1, xshape).astype(np.float32))
    assert tg.gradcheck(lambda t: fn(t, c), [x])
    assert tg.gradgradcheck(lambda t: fn(t, c), [x])


def test_maximum_ties_keep_float32_to_third_order():
    x = tg.Tensor(np.array([1.0, 2.0, 3.0], np.float32))
    y = tg.Tensor(np.array([1.0, 1.0, 4.0], np.float32))
    (g,) = tg.grad((tg.maximum(x, y) * x).sum(), [x], create_graph=True)
    assert g.data.dtype == np.float32
    np.testing.assert_allclose(g.data, [1.5, 4.0, 4.0])  # share * x + max(x, y)
    (h,) = tg.grad((g * x).sum(), [x], create_graph=True)
    assert h.data.dtype == np.float32
    np.testing.assert_allclose(h.data, [2.5, 8.0, 4.0])  # 2 share x + share x + max(x, y)


def test_hook_and_function_gradients_cast_to_the_input_dtype():
    x = tg.Tensor(np.array([1.0, 2.0], np.float32))
    y = x * x
    y.register_hook(lambda g: np.ones(2))  # float64 from a hook
    (g,) = tg.grad(y.sum(), [x], create_graph=True)
    assert g.data.dtype == np.float32
    np.testing.assert_allclose(g.data, [2.0, 4.0])

    class Twice(tg.Function):
        @staticmethod
        def forward(ctx, t):
            return t * 2.0

        @staticmethod
        def backward(ctx, grad):
            return grad * np.full(2, 2.0)  # float64 constant

    z = tg.Tensor(np.array([1.0, 2.0], np.float32))
    for create_graph in (False, True):
        (g,) = tg.grad((Twice.apply(z) * z).sum(), [z], create_graph=create_graph)
        assert g.data.dtype == np.float32
        np.testing.assert_allclose(g.data, [4.0, 8.0])


def test_scalar_gradient_meeting_float32_is_float64():
    x = tg.Tensor(1.5)
    c = np.array([1.0, 2.0], np.float32)
    for create_graph in (False, True):
        (g,) = tg.grad((x * c * x).sum(), [x], create_graph=create_graph)
        assert g.dtype == np.float64
        assert float(g.data) == pytest.approx(9.0)


@pytest.mark.filterwarnings("ignore::RuntimeWarning", "ignore::UserWarning")
@pytest.mark.parametrize("dtype", DTYPES)
def test_var_and_std_with_ddof_past_the_count_match_torch(dtype, rng):
    # The value divides by max(n - ddof, 0) (inf or NaN); torch's gradient by n - ddof.
    x = [[1.0, 2.0], [0.5, 0.5]]
    _against_torch(lambda x: np.var(x, axis=1, ddof=3), lambda t, x: t.var(x, 1, correction=3),
                   [x], dtype, rng)
    _against_torch(lambda x: np.std(x, axis=1, ddof=3), lambda t, x: t.std(x, 1, correction=3),
                   [x], dtype, rng)


# ---- 3. Tensor bounds of clip get their gradient ----

# (x, lo, hi): inside, on each boundary, outside, lo == hi, and lo > hi (the value is hi).
CLIP_TIES = [(0.0, 1.0, 2.0), (1.0, 1.0, 2.0), (1.5, 1.0, 2.0), (2.0, 1.0, 2.0), (3.0, 1.0, 2.0),
             (0.0, 1.0, 1.0), (1.0, 1.0, 1.0), (2.0, 1.0, 1.0), (0.0, 2.0, 1.0), (1.0, 2.0, 1.0),
             (1.5, 2.0, 1.0), (2.0, 2.0, 1.0), (3.0, 2.0, 1.0)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("spelling", ["numpy", "function", "method", "min_max"])
def test_clip_tensor_bounds_match_torch_ties_included(spelling, dtype, rng):
    x, lo, hi = (np.array(v) for v in zip(*CLIP_TIES))
    call = {
        "numpy": lambda a, b, c: np.clip(a, b, c) * a,
        "function": lambda a, b, c: tg.clip(a, b, c) * a,
        "method": lambda a, b, c: a.clip(b, c) * a,
        "min_max": lambda a, b, c: a.clip(min=b, max=c) * a,
    }[spelling]
    grads = _against_torch(call, lambda t, a, b, c: t.clamp(a, b, c) * a, [x, lo, hi], dtype, rng)
    assert all(g is not None for g in grads)


@pytest.mark.parametrize("dtype", DTYPES)
def test_clip_one_tensor_bound_matches_torch(dtype, rng):
    x = np.array([0.0, 1.0, 1.5, 2.0, 3.0])
    bound = np.array([1.0, 1.0, 1.0, 2.0, 2.0])
    _against_torch(lambda a, b: np.clip(a, b, None) * a, lambda t, a, b: t.clamp(a, min=b) * a,
                   [x, bound], dtype, rng)
    _against_torch(lambda a, b: a.clip(max=b) * a, lambda t, a, b: t.clamp(a, max=b) * a,
                   [x, bound], dtype, rng)


def test_clip_mixed_and_broadcast_bounds():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    x0, lo0 = rng.uniform(-2, 2, (3, 4)), rng.uniform(-1, 0, (4,))
    x, lo = tg.Tensor(x0), tg.Tensor(lo0)
    gx, glo = tg.grad(np.clip(x, lo, 0.5).sum(), [x, lo])
    xt = torch.tensor(x0, requires_grad=True)
    lot = torch.tensor(lo0, requires_grad=True)
    ref = torch.autograd.grad(torch.clamp(xt, lot, torch.tensor(0.5, dtype=torch.float64)).sum(),
                              [xt, lot])
    np.testing.assert_array_equal(gx.data, ref[0].numpy())
    np.testing.assert_array_equal(glo.data, ref[1].numpy())
    assert glo.shape == (4,)
    # A constant array x with Tensor bounds: only the bounds get gradients.
    (ghi,) = tg.grad(tg.clip(x0, None, lo).sum(), [lo])
    np.testing.assert_array_equal(ghi.data, (x0 > lo0).sum(axis=0))


def test_clip_tensor_bounds_gradcheck(rng):
    x = tg.Tensor(rng.uniform(-2, 2, (3, 4)))
    lo = tg.Tensor(rng.uniform(-1.2, -0.8, (3, 4)))
    hi = tg.Tensor(rng.uniform(0.8, 1.2, (4,)))
    assert tg.gradcheck(lambda a, b, c: tg.clip(a, b, c) * (a + c), [x, lo, hi])
    assert tg.gradgradcheck(lambda a, b, c: tg.clip(a, b, c) * (a + c), [x, lo, hi])


def test_clip_keywords_as_numpy():
    x = tg.Tensor([-1.0, 0.5, 2.0])
    for result in (x.clip(min=0.0), x.clip(a_min=0.0), x.clip(0.0), np.clip(x, min=0.0),
                   np.clip(x, a_min=0.0, a_max=None), tg.clip(x, min=0.0)):
        np.testing.assert_array_equal(result.data, [0.0, 0.5, 2.0])
    np.testing.assert_array_equal(x.clip(max=1.0).data, [-1.0, 0.5, 1.0])
    np.testing.assert_array_equal(np.clip(x, None, 1.0).data, [-1.0, 0.5, 1.0])
    with pytest.raises(TypeError, match="a_min or min, not both"):
        x.clip(0.0, min=0.0)
    with pytest.raises(ValueError, match="give a_min, a_max or both"):
        x.clip()
    with pytest.raises(TypeError, match="out="):
        np.clip(x, 0.0, 1.0, out=np.empty(3))


# ---- 5. formatting and rounding ----

SCALARS = {
    "float": lambda v: tg.Tensor(v),
    "0d_float64": lambda v: tg.Tensor(np.array(v)),
    "0d_float32": lambda v: tg.Tensor(np.array(v, dtype=np.float32)),
    "result": lambda v: tg.sum(tg.Tensor([v, 0.0]) * 1.0),
}


def _numpy_scalar(v, name):
    return np.float32(v) if name == "0d_float32" else np.float64(v)


@pytest.mark.parametrize("name", sorted(SCALARS))
def test_a_scalar_tensor_formats_and_rounds_as_a_numpy_scalar(name):
    import math
    for v in (1.23456, -2.5, 0.5, 1234.5678):
        t, ref = SCALARS[name](v), _numpy_scalar(v, name)
        for spec in (".3f", "e", ".2e", "g", "10.4f", "+.1%", "<12"):
            assert format(t, spec) == format(ref, spec)
            assert f"{t:{spec}}" == f"{ref:{spec}}"
        assert round(t) == round(ref) and type(round(t)) is int
        assert round(t, 2) == round(ref, 2)
        assert round(t, 2) == pytest.approx(round(v, 2), abs=1e-6)
        for fn in (math.floor, math.ceil, math.trunc, int):
            assert fn(t) == fn(float(ref)) and type(fn(t)) is int
    t = SCALARS[name](0.7)
    assert f"{t}" == str(t) == format(t, "")


def test_a_float_tensors_rounding_keeps_numpys_type():
    assert type(round(tg.Tensor(np.array(1.26, np.float32)), 1)) is np.float32
    assert type(round(tg.Tensor(np.array(1.26)), 1)) is np.float64
    assert type(round(tg.Tensor(1.26), 1)) is float


def test_an_array_tensor_formats_as_numpy_formats_its_array():
    import math
    t = tg.Tensor([1.5, 2.5])
    assert format(t, "") == str(t)
    with pytest.raises(TypeError):
        format(np.array([1.5, 2.5]), ".2f")  # numpy's rule, which tapegrad follows
    with pytest.raises(TypeError, match=r"Tensor.__format__.*shape \(2,\).*empty spec"):
        format(t, ".2f")
    for fn in (round, math.floor, math.ceil, math.trunc):
        with pytest.raises(TypeError, match=r"shape \(2,\).*np\."):
            fn(t)
    assert int(tg.Tensor([2.5])) == 2  # as float(t): a one-element tensor converts
