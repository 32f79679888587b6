"""Reductions, scans, shapes and indexing beyond the catalogue's one sample each:
their options (axes, modes, keywords), edge cases (zeros, NaNs, empty arrays,
0-d values, negative steps) and errors, with PyTorch (first and second order)
and finite differences as oracles."""

import numpy as np
import pytest

import tapegrad as tg


def _torch():
    return pytest.importorskip("torch")


def against_torch(ours, theirs, arrays, dtype=np.float64, seed=0):
    """ours(*Tensors) and theirs(*torch tensors): values, gradients and the
    derivative of <gradients, v>, all in dtype."""
    torch = _torch()
    rng = np.random.default_rng(seed)
    arrays = [np.asarray(a, dtype=dtype) for a in arrays]
    xs = [tg.Tensor(a) for a in arrays]
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    out, ref = ours(*xs), theirs(*ts)
    tol = {"rtol": 1e-5, "atol": 1e-6} if dtype == np.float32 else {"rtol": 1e-11, "atol": 1e-13}
    np.testing.assert_allclose(out.data, ref.detach().numpy(), **tol)
    w = rng.uniform(0.5, 1.5, size=out.shape).astype(dtype)
    grads = tg.grad(out, xs, grad_outputs=tg.Tensor(w), create_graph=True)
    ref_grads = torch.autograd.grad(ref, ts, torch.tensor(w, requires_grad=True),
                                    create_graph=True)
    for g, r, a in zip(grads, ref_grads, arrays):
        assert g.data.dtype == dtype and g.shape == a.shape
        np.testing.assert_allclose(g.data, r.detach().numpy(), **tol)
    vs = [rng.uniform(size=a.shape).astype(dtype) for a in arrays]
    dot = tg.sum(tg.stack([tg.sum(g * v) for g, v in zip(grads, vs)]))
    second = tg.grad(dot, xs, allow_unused=True)
    ref_dot = sum((r * torch.from_numpy(v)).sum() for r, v in zip(ref_grads, vs))
    ref_second = torch.autograd.grad(ref_dot, ts, allow_unused=True, materialize_grads=True)
    for g, r in zip(second, ref_second):
        np.testing.assert_allclose(0.0 if g is None else g.data, r.numpy(), **tol)


def checks(fn, *arrays):
    xs = [tg.Tensor(np.asarray(a, dtype=float)) for a in arrays]
    assert tg.gradcheck(fn, xs)
    assert tg.gradgradcheck(fn, xs)


# ---- scans ----

@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_cumsum_along_each_axis(axis, dtype):
    x = np.random.default_rng(1).normal(size=(3, 4))
    against_torch(lambda t: tg.cumsum(t, axis=axis), lambda t: t.cumsum(axis), [x], dtype)


def test_cumsum_flattens_without_axis_and_keeps_float32():
    x = tg.Tensor(np.arange(6, dtype=np.float32).reshape(2, 3))
    y = np.cumsum(x)
    assert y.shape == (6,) and y.dtype == np.float32
    np.testing.assert_array_equal(y.data, np.cumsum(np.arange(6)))
    np.testing.assert_array_equal(tg.grad(tg.sum(y), [x])[0].data, [[6, 5, 4], [3, 2, 1]])


ZEROS = [[2.0, 0.0, 3.0, 0.0, 5.0], [0.0, 0.0, 3.0, 4.0, 5.0], [2.0, 3.0, 0.0, 0.0, 0.0],
         [1.5, 2.0, 3.0, 4.0, 0.0], [0.0, 1.5, -2.0, 3.0, 0.5], [0.0, 0.0, 0.0, 0.0, 0.0]]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("x", ZEROS)
def test_cumprod_is_exact_with_zeros_to_second_order(x, dtype):
    against_torch(lambda t: tg.cumprod(t), lambda t: t.cumprod(0), [x], dtype)


def test_cumprod_gradient_is_the_product_of_the_others():
    """sum_{i>=k} g_i prod_{j<=i, j!=k} x_j, term by term, with zeros and tiny values."""
    rng = np.random.default_rng(3)
    for x in [*ZEROS, [1e-30, 1e-30, 1e-30, 2.0], [3.0, -1.0, 0.0, 1e-200, 1e200]]:
        x = np.array(x)
        g = rng.uniform(0.5, 1.5, size=x.shape)
        want = [sum(g[i] * np.prod([x[j] for j in range(i + 1) if j != k])
                    for i in range(k, len(x))) for k in range(len(x))]
        t = tg.Tensor(x)
        got = tg.grad(tg.cumprod(t), [t], grad_outputs=tg.Tensor(g))[0].data
        np.testing.assert_allclose(got, want, rtol=1e-14, atol=0)


def test_cumprod_in_float32_does_not_lose_what_a_division_would():
    # y underflows to 0 from its third element; the gradient of x_1 is x_0 = 1e-30, which a
    # formula dividing sum(g * y) by x_1 would give as 0.
    x = tg.Tensor(np.array([1e-30, 1e-30, 1e-30], dtype=np.float32))
    g = tg.grad(tg.cumprod(x), [x], grad_outputs=tg.Tensor(np.array([0, 1, 0], np.float32)))[0]
    assert g.data.dtype == np.float32
    np.testing.assert_allclose(g.data, [1e-30, 1e-30, 0.0], rtol=1e-6)


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_cumprod_along_each_axis_of_a_3d_array_with_zeros(axis):
    x = np.random.default_rng(4).normal(size=(2, 3, 4))
    x[0, 1, :2] = 0.0
    x[1, :, 3] = 0.0
    against_torch(lambda t: tg.cumprod(t, axis=axis), lambda t: t.cumprod(axis), [x])


def test_cumprod_third_order_and_empty():
    checks(lambda t: tg.cumprod(t * t, axis=1), np.array([[0.5, -1.2, 0.8], [1.1, 0.0, 0.3]]))
    x = tg.Tensor(np.zeros((2, 0)))
    y = tg.cumprod(x, axis=1)
    assert y.shape == (2, 0)
    assert tg.grad(tg.sum(y), [x])[0].shape == (2, 0)
    with pytest.raises(np.exceptions.AxisError, match="cumsum: axis 2"):
        tg.cumsum(x, axis=2)


# ---- differences, traces, ranges ----

@pytest.mark.parametrize("n", [0, 1, 2, 3, 5])
def test_diff_orders(n):
    x = np.random.default_rng(5).normal(size=(3, 4))
    y = tg.diff(tg.Tensor(x), n=n)
    np.testing.assert_allclose(y.data, np.diff(x, n=n))
    if 0 < n < 4:
        against_torch(lambda t: tg.diff(t, n=n, axis=0 if n < 3 else 1),
                      lambda t: _torch().diff(t, n=n, dim=0 if n < 3 else 1), [x])


def test_diff_prepend_and_append():
    x = np.array([[1.0, 4.0, 9.0], [2.0, 3.0, 7.0]])
    t = tg.Tensor(x)
    np.testing.assert_allclose(np.diff(t, prepend=0.0, append=[[1.0], [2.0]]).data,
                               np.diff(x, prepend=0.0, append=[[1.0], [2.0]]))
    np.testing.assert_allclose(tg.diff(t, axis=0, prepend=x[:1]).data,
                               np.diff(x, axis=0, prepend=x[:1]))
    p = tg.Tensor([[0.5], [0.25]])
    against_torch(lambda a, b: tg.diff(a, prepend=b), lambda a, b: _torch().diff(a, prepend=b),
                  [x, [[0.5], [0.25]]])
    assert tg.grad(tg.sum(tg.diff(t, prepend=p) ** 2), [p])[0].shape == (2, 1)
    with pytest.raises(ValueError, match="diff: the input must be at least one-dimensional"):
        tg.diff(tg.Tensor(1.0))
    with pytest.raises(ValueError, match="diff: order must be non-negative"):
        tg.diff(t, n=-1)


@pytest.mark.parametrize("offset", [-2, -1, 0, 1, 3, 5])
def test_trace_offsets_and_axes(offset):
    x = np.random.default_rng(6).normal(size=(3, 4, 2))
    t = tg.Tensor(x)
    np.testing.assert_allclose(np.trace(t, offset).data, np.trace(x, offset))
    np.testing.assert_allclose(t.trace(offset, 1, 2).data, x.trace(offset, 1, 2))
    np.testing.assert_allclose(tg.trace(t, offset, axis1=-1, axis2=0).data,
                               np.trace(x, offset, axis1=-1, axis2=0))
    against_torch(lambda a: tg.trace(a, offset, 0, 1),
                  lambda a: a.diagonal(offset, 0, 1).sum(-1), [x])


def test_ptp_keepdims_and_ties():
    x = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 0.0]])
    t = tg.Tensor(x)
    np.testing.assert_array_equal(np.ptp(t, axis=1, keepdims=True).data,
                                  np.ptp(x, axis=1, keepdims=True))
    g = tg.grad(tg.sum(tg.ptp(t, axis=1)), [t])[0].data
    np.testing.assert_array_equal(g, [[-1.0, 0.5, 0.5], [0.5, 0.5, -1.0]])  # ties share


# ---- average, nansum, nanmean ----

def test_average_without_weights_and_returned():
    x = np.arange(6.0).reshape(2, 3)
    t = tg.Tensor(x)
    avg, count = np.average(t, axis=1, returned=True)
    want_avg, want_count = np.average(x, axis=1, returned=True)
    np.testing.assert_array_equal(avg.data, want_avg)
    np.testing.assert_array_equal(count, want_count)


@pytest.mark.parametrize("axis,wshape", [(1, (4,)), (0, (3,)), (None, (3, 4)), ((0, 1), (3, 4)),
                                         (1, (3, 4))])
def test_average_weights_of_each_shape(axis, wshape):
    rng = np.random.default_rng(7)
    x, w = rng.normal(size=(3, 4)), rng.uniform(0.5, 2.0, size=wshape)
    a, s = tg.average(tg.Tensor(x), axis=axis, weights=tg.Tensor(w), returned=True)
    want_a, want_s = np.average(x, axis=axis, weights=w, returned=True)
    np.testing.assert_allclose(a.data, want_a, rtol=1e-14)
    np.testing.assert_allclose(s.data, want_s, rtol=1e-14)
    checks(lambda p, q: tg.average(p, axis=axis, weights=q), x, w)


def test_average_weights_against_torch_and_errors():
    rng = np.random.default_rng(8)
    x, w = rng.normal(size=(3, 4)), rng.uniform(0.5, 2.0, size=(3,))
    against_torch(lambda a, b: tg.average(a, axis=0, weights=b, keepdims=True),
                  lambda a, b: (a * b[:, None]).sum(0, keepdim=True) / b.sum(), [x, w])
    t = tg.Tensor(x)
    with pytest.raises(ZeroDivisionError, match="average: the weights sum to zero"):
        tg.average(t, axis=1, weights=[1.0, -1.0, 0.0, 0.0])
    with pytest.raises(TypeError, match=r"average: give axis when the weights' shape \(4,\)"):
        tg.average(t, weights=np.ones(4))
    with pytest.raises(ValueError, match=r"average: weights of shape \(3,\) do not match"):
        tg.average(t, axis=1, weights=np.ones(3))


def test_nansum_and_nanmean_skip_nans():
    x = np.array([[1.0, np.nan, 2.0], [np.nan, np.nan, np.nan], [3.0, 4.0, np.inf]])
    t = tg.Tensor(x)
    np.testing.assert_array_equal(np.nansum(t, axis=1).data, np.nansum(x, axis=1))
    np.testing.assert_array_equal(tg.grad(tg.nansum(t), [t])[0].data, ~np.isnan(x))
    with pytest.warns(RuntimeWarning, match="Mean of empty slice"):
        got = np.nanmean(t, axis=1)
    with pytest.warns(RuntimeWarning, match="Mean of empty slice"):
        want = np.nanmean(x, axis=1)
    np.testing.assert_array_equal(got.data, want)
    with pytest.warns(RuntimeWarning):
        g = tg.grad(tg.sum(tg.nanmean(t, axis=1)), [t])[0].data
    np.testing.assert_allclose(g, [[0.5, 0, 0.5], [0, 0, 0], [1 / 3, 1 / 3, 1 / 3]], rtol=1e-15)


def test_nansum_and_nanmean_against_torch():
    x = np.array([[1.0, np.nan, 2.0, 0.5], [0.25, 3.0, np.nan, np.nan]])
    against_torch(lambda t: tg.nansum(t * t, axis=1), lambda t: (t * t).nansum(1), [x])
    against_torch(lambda t: tg.nanmean(t * t, axis=1, keepdims=True),
                  lambda t: (t * t).nanmean(1, keepdim=True), [x])


# ---- numpy's keywords of the reductions ----

def test_max_and_min_initial_and_where():
    x = np.array([[1.0, 5.0, 2.0], [0.5, -1.0, 3.0]])
    t = tg.Tensor(x)
    mask = np.array([[True, False, True], [False, False, False]])
    for fn, np_fn in ((tg.max, np.max), (tg.min, np.min), (tg.amax, np.amax), (tg.amin, np.amin)):
        for kwargs in ({"initial": 2.5}, {"axis": 1, "initial": 4.0},
                       {"axis": 1, "initial": 0.0, "where": mask}, {"axis": 0, "keepdims": True}):
            np.testing.assert_array_equal(fn(t, **kwargs).data, np_fn(x, **kwargs))
            np.testing.assert_array_equal(np_fn(t, **kwargs).data, np_fn(x, **kwargs))
    g = tg.grad(tg.sum(tg.max(t, axis=1, initial=4.0)), [t])[0].data
    np.testing.assert_array_equal(g, [[0, 1, 0], [0, 0, 0]])  # row 1's max is the initial
    g = tg.grad(tg.sum(tg.max(t, axis=1, initial=0.0, where=mask)), [t])[0].data
    np.testing.assert_array_equal(g, [[0, 0, 1], [0, 0, 0]])
    empty = tg.Tensor(np.zeros((0, 3)))
    np.testing.assert_array_equal(tg.max(empty, axis=0, initial=-1.0).data, [-1.0] * 3)
    with pytest.raises(ValueError, match="max: where= needs initial="):
        tg.max(t, where=mask)


def test_numpy_positional_order_of_the_reductions():
    x = np.random.default_rng(9).normal(size=(3, 4))
    t = tg.Tensor(x)
    np.testing.assert_array_equal(np.max(t, 0, None, True).data, np.max(x, 0, None, True))
    np.testing.assert_array_equal(np.amin(t, 1, None, True).data, np.amin(x, 1, None, True))
    np.testing.assert_allclose(np.prod(t, 1, None, None, True).data, np.prod(x, 1, None, None, True))
    np.testing.assert_allclose(np.var(t, 0, None, None, 1).data, np.var(x, 0, None, None, 1))
    np.testing.assert_allclose(np.nansum(t, 1, None, None, True).data,
                               np.nansum(x, 1, None, None, True))
    np.testing.assert_allclose(np.cumsum(t, 1, None).data, np.cumsum(x, 1, None))
    np.testing.assert_allclose(np.ptp(t, 0, None, True).data, np.ptp(x, 0, None, True))


def test_prod_initial_and_where():
    x = np.array([[1.5, 0.0, 2.0], [0.5, -1.0, 3.0]])
    mask = np.array([True, False, True])
    t = tg.Tensor(x)
    for kwargs in ({"initial": 2.0}, {"axis": 1, "where": mask}, {"axis": 0, "initial": -1.5}):
        np.testing.assert_allclose(np.prod(t, **kwargs).data, np.prod(x, **kwargs))
    against_torch(lambda a: tg.prod(a, axis=1, where=mask, initial=3.0),
                  lambda a: a[:, [0, 2]].prod(1) * 3.0, [x])


def test_var_and_std_keywords():
    rng = np.random.default_rng(10)
    x = rng.normal(size=(3, 5))
    mask = rng.uniform(size=(3, 5)) > 0.3
    mask[:, 0] = mask[:, 1] = True
    t = tg.Tensor(x)
    for kwargs in ({"correction": 1}, {"axis": 1, "where": mask},
                   {"axis": 1, "where": mask, "ddof": 1, "keepdims": True},
                   {"axis": 0, "mean": x.mean(axis=0, keepdims=True)}):
        for fn, np_fn in ((tg.var, np.var), (tg.std, np.std)):
            np.testing.assert_allclose(fn(t, **kwargs).data, np_fn(x, **kwargs), rtol=1e-13)
            np.testing.assert_allclose(np_fn(t, **kwargs).data, np_fn(x, **kwargs), rtol=1e-13)
    checks(lambda a: tg.var(a, axis=1, where=mask, ddof=1), x)
    m = x.mean(axis=1, keepdims=True) + 0.1  # a given mean, differentiated too
    checks(lambda a, b: tg.var(a, axis=1, mean=b), x, m)
    with pytest.raises(ValueError, match="var: give ddof or correction, not both"):
        tg.var(t, ddof=1, correction=1)


@pytest.mark.parametrize("call", [
    lambda t: np.max(t, out=np.zeros(())), lambda t: np.cumsum(t, out=np.zeros(6)),
    lambda t: np.var(t, out=np.zeros(())), lambda t: np.take(t, [0], out=np.zeros(1)),
    lambda t: np.nansum(t, out=np.zeros(())), lambda t: np.trace(t, out=np.zeros(())),
])
def test_out_is_refused(call):
    with pytest.raises(TypeError, match="out= cannot hold a recorded result"):
        call(tg.Tensor(np.ones((2, 3))))
