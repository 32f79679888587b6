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


# ---- moving, joining and splitting ----

def test_ravel_and_flatten_orders():
    x = np.arange(6.0).reshape(2, 3)
    t = tg.Tensor(x)
    for order in ("C", "F"):
        np.testing.assert_array_equal(np.ravel(t, order=order).data, np.ravel(x, order=order))
        np.testing.assert_array_equal(t.flatten(order).data, x.flatten(order))
    g = tg.grad(tg.ravel(t, "F"), [t], grad_outputs=tg.Tensor(np.arange(6.0)))[0].data
    np.testing.assert_array_equal(g, [[0, 2, 4], [1, 3, 5]])
    with pytest.raises(ValueError, match="ravel: order='K' is not supported"):
        t.ravel("K")


@pytest.mark.parametrize("source,destination", [(0, 2), (-1, 0), ((0, 1), (2, 0)), ([2], [-2])])
def test_moveaxis(source, destination):
    x = np.random.default_rng(11).normal(size=(2, 3, 4))
    np.testing.assert_array_equal(np.moveaxis(tg.Tensor(x), source, destination).data,
                                  np.moveaxis(x, source, destination))
    against_torch(lambda t: tg.moveaxis(t, source, destination),
                  lambda t: t.movedim(source if np.ndim(source) == 0 else tuple(source),
                                      destination if np.ndim(destination) == 0
                                      else tuple(destination)), [x])


def test_moveaxis_rollaxis_transpose_errors():
    t = tg.Tensor(np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match="moveaxis: source"):
        tg.moveaxis(t, (0, 1), 2)
    with pytest.raises(ValueError, match="moveaxis: repeated axis"):
        tg.moveaxis(t, (0, 0), (1, 2))
    with pytest.raises(np.exceptions.AxisError, match="moveaxis: axis 3 is out of bounds"):
        tg.moveaxis(t, 3, 0)
    with pytest.raises(np.exceptions.AxisError, match="rollaxis: start must satisfy"):
        tg.rollaxis(t, 0, 5)
    with pytest.raises(np.exceptions.AxisError, match="transpose: axis 5 is out of bounds"):
        tg.transpose(t, (0, 5, 1))  # was taken as axis 5 % 3


@pytest.mark.parametrize("axis,start", [(0, 0), (0, 2), (0, 3), (2, 0), (-1, 1), (1, -1)])
def test_rollaxis(axis, start):
    x = np.zeros((2, 3, 4))
    assert tg.rollaxis(tg.Tensor(x), axis, start).shape == np.rollaxis(x, axis, start).shape


def test_atleast_nd_of_several_inputs():
    a, b, c = tg.Tensor(2.0), tg.Tensor(np.ones(3)), tg.Tensor(np.ones((2, 3)))
    for fn in (np.atleast_1d, np.atleast_2d, np.atleast_3d):
        got = fn(a, b, c)
        want = fn(np.float64(2.0), np.ones(3), np.ones((2, 3)))
        assert isinstance(got, tuple) and [g.shape for g in got] == [w.shape for w in want]
    assert tg.atleast_2d(c) is c  # already 2-D: itself, as numpy returns its input
    assert isinstance(tg.atleast_1d(2.0), np.ndarray)  # no Tensor: numpy's answer


def test_stacks_mix_tensors_and_arrays_and_keep_float32():
    a = tg.Tensor(np.ones((2, 3), dtype=np.float32))
    b = np.zeros((2, 3), dtype=np.float32)
    for fn in (np.hstack, np.vstack, np.dstack, np.column_stack, np.stack):
        got, want = fn([a, b]), fn([a.data, b])
        assert got.dtype == np.float32 and got.requires_grad
        np.testing.assert_array_equal(got.data, want)
        assert tg.grad(tg.sum(got), [a])[0].data.dtype == np.float32
    with pytest.raises(TypeError, match="vstack: give a sequence"):
        tg.vstack(a)


def test_hstack_vstack_column_stack_against_torch():
    torch = _torch()
    x, y = np.arange(3.0), np.arange(3.0, 6.0)
    against_torch(lambda a, b: tg.hstack([a, b]), lambda a, b: torch.hstack([a, b]), [x, y])
    against_torch(lambda a, b: tg.vstack([a, b]), lambda a, b: torch.vstack([a, b]), [x, y])
    against_torch(lambda a, b: tg.column_stack([a, b]), lambda a, b: torch.column_stack([a, b]),
                  [x, y])
    against_torch(lambda a, b: tg.dstack([a, b]), lambda a, b: torch.dstack([a, b]), [x, y])


def test_append():
    x = np.arange(6.0).reshape(2, 3)
    t = tg.Tensor(x)
    np.testing.assert_array_equal(np.append(t, [[7.0, 8.0, 9.0]], axis=0).data,
                                  np.append(x, [[7.0, 8.0, 9.0]], axis=0))
    np.testing.assert_array_equal(np.append(t, 1.0).data, np.append(x, 1.0))
    v = tg.Tensor([1.0, 2.0])
    np.testing.assert_array_equal(tg.grad(tg.sum(tg.append(t, v) * 2.0), [v])[0].data, [2, 2])


@pytest.mark.parametrize("indices", [[-2], [3, 1], [1, 1, 4], [0, 10], [-10, 2], []])
def test_split_indices_are_slice_bounds(indices):
    x = np.arange(10.0).reshape(5, 2)
    got = np.split(tg.Tensor(x), indices)
    want = np.split(x, indices)
    assert [g.shape for g in got] == [w.shape for w in want]
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g.data, w)


@pytest.mark.parametrize("sections", [1, 2, 3, 5, 7])
def test_array_split_uneven(sections):
    x = np.arange(15.0).reshape(5, 3)
    t = tg.Tensor(x)
    got = np.array_split(t, sections, axis=0)
    want = np.array_split(x, sections, axis=0)
    assert [g.shape for g in got] == [w.shape for w in want]
    checks(lambda a: tg.concatenate([p * (k + 1.0) for k, p in
                                     enumerate(tg.array_split(a, sections, 1))], axis=1), x)


def test_hsplit_vsplit_dsplit():
    x = np.arange(24.0).reshape(2, 3, 4)
    t = tg.Tensor(x)
    for fn, arg in ((np.hsplit, 3), (np.vsplit, [1]), (np.dsplit, 2)):
        got, want = fn(t, arg), fn(x, arg)
        assert [g.shape for g in got] == [w.shape for w in want]
    assert [p.shape for p in tg.hsplit(tg.Tensor(np.arange(4.0)), 2)] == [(2,), (2,)]
    with pytest.raises(ValueError, match=r"vsplit: the input must be at least 2-D, got shape \(4,\)"):
        tg.vsplit(tg.Tensor(np.arange(4.0)), 2)
    with pytest.raises(ValueError, match="dsplit: the input must be at least 3-D"):
        tg.dsplit(tg.Tensor(np.ones((2, 2))), 2)
    with pytest.raises(ValueError, match="split: axis 0 of length 2 does not split into 3"):
        tg.split(t, 3)
    with pytest.raises(ValueError, match="array_split: the number of sections must be positive"):
        tg.array_split(t, 0)


# ---- repeating ----

@pytest.mark.parametrize("repeats,axis", [(2, None), (3, 0), (2, -1), (0, 1), ([1, 0, 2], 1),
                                          ([2], 0), (np.array([1, 3]), 0)])
def test_repeat(repeats, axis):
    torch = _torch()
    x = np.arange(6.0).reshape(2, 3) + 0.5
    np.testing.assert_array_equal(np.repeat(tg.Tensor(x), repeats, axis).data,
                                  np.repeat(x, repeats, axis))
    np.testing.assert_array_equal(tg.Tensor(x).repeat(repeats, axis).data, x.repeat(repeats, axis))
    r = torch.as_tensor(np.asarray(repeats)) if np.ndim(repeats) else repeats
    against_torch(lambda t: tg.repeat(t, repeats, axis),
                  lambda t: torch.repeat_interleave(t, r, dim=axis), [x])


def test_repeat_errors():
    t = tg.Tensor(np.ones((2, 3)))
    with pytest.raises(ValueError, match="repeat: repeats may not be negative"):
        tg.repeat(t, -1)
    with pytest.raises(ValueError, match=r"repeat: 2 repeats for axis 1 of length 3 \(shape \(2, 3\)\)"):
        tg.repeat(t, [1, 2], axis=1)
    with pytest.raises(TypeError, match="repeat: repeats must be integers"):
        tg.repeat(t, 1.5)


@pytest.mark.parametrize("shape,reps", [((3,), 2), ((3,), (2, 2)), ((2, 3), 2), ((2, 3), (1, 0)),
                                        ((2, 1, 3), (2, 1, 1, 2)), ((), 3)])
def test_tile(shape, reps):
    torch = _torch()
    x = np.arange(1.0, 1.0 + np.prod(shape)).reshape(shape)
    np.testing.assert_array_equal(np.tile(tg.Tensor(x), reps).data, np.tile(x, reps))
    if 0 not in np.atleast_1d(reps) and shape:
        against_torch(lambda t: tg.tile(t, reps), lambda t: torch.tile(t, np.atleast_1d(reps)
                                                                        .tolist()), [x])


# ---- flipping and rolling ----

@pytest.mark.parametrize("shift,axis", [(1, None), (-7, None), (2, 0), (-1, 1), ((1, 2), (0, 1)),
                                        ((1, 1), (1, 1)), (5, -1), (0, 0)])
def test_roll(shift, axis):
    torch = _torch()
    x = np.arange(12.0).reshape(3, 4)
    np.testing.assert_array_equal(np.roll(tg.Tensor(x), shift, axis).data, np.roll(x, shift, axis))
    if axis is None:
        ref = lambda t: torch.roll(t, shift)  # noqa: E731
    else:
        ref = lambda t: torch.roll(t, shift, axis)  # noqa: E731
    against_torch(lambda t: tg.roll(t, shift, axis), ref, [x])


@pytest.mark.parametrize("k", [-1, 0, 1, 2, 3, 6])
@pytest.mark.parametrize("axes", [(0, 1), (1, 0), (2, 0), (-1, -2)])
def test_rot90(k, axes):
    torch = _torch()
    x = np.arange(24.0).reshape(2, 3, 4)
    np.testing.assert_array_equal(np.rot90(tg.Tensor(x), k, axes).data, np.rot90(x, k, axes))
    against_torch(lambda t: tg.rot90(t, k, axes), lambda t: torch.rot90(t, k, axes), [x])


def test_flips():
    x = np.arange(24.0).reshape(2, 3, 4)
    t = tg.Tensor(x)
    for axis in (None, 0, -1, (0, 2)):
        np.testing.assert_array_equal(np.flip(t, axis).data, np.flip(x, axis))
    np.testing.assert_array_equal(np.fliplr(t).data, np.fliplr(x))
    np.testing.assert_array_equal(np.flipud(t).data, np.flipud(x))
    assert np.flip(tg.Tensor(2.0)).data == 2.0
    with pytest.raises(ValueError, match=r"fliplr: the input must be at least 2-D, got shape \(3,\)"):
        tg.fliplr(tg.Tensor(np.ones(3)))
    with pytest.raises(ValueError, match="rot90: the axes must be different"):
        tg.rot90(t, 1, (1, 1))
    checks(lambda a: tg.flip(a, (0, 1)) * a, np.arange(6.0).reshape(2, 3))


# ---- padding ----

PADS = [1, (2, 1), ((1, 0), (0, 3)), ((3, 4), (2, 5)), ((0, 0), (6, 7))]


@pytest.mark.parametrize("mode", ["constant", "edge", "reflect", "symmetric", "wrap"])
@pytest.mark.parametrize("width", PADS)
def test_pad_modes_give_numpys_values(mode, width):
    x = np.arange(1.0, 7.0).reshape(2, 3)
    got = np.pad(tg.Tensor(x), width, mode=mode)
    np.testing.assert_array_equal(got.data, np.pad(x, width, mode=mode))
    # Each copy adds its source's gradient: the gradient counts the copies.
    index = np.arange(6.0).reshape(2, 3)
    copies = np.pad(index, width, mode=mode, **({"constant_values": -1.0} if mode == "constant"
                                                else {}))
    count = np.array([[np.sum(copies == index[i, j]) for j in range(3)] for i in range(2)])
    t = tg.Tensor(x)
    np.testing.assert_array_equal(tg.grad(tg.sum(tg.pad(t, width, mode=mode)), [t])[0].data, count)


def test_pad_against_torch():
    torch = _torch()
    f = torch.nn.functional
    x = np.random.default_rng(12).normal(size=(2, 3, 5))
    for mode, theirs in (("reflect", "reflect"), ("edge", "replicate"), ("wrap", "circular")):
        against_torch(lambda t, m=mode: tg.pad(t, ((0, 0), (0, 0), (2, 3)), mode=m),
                      lambda t, m=theirs: f.pad(t, (2, 3), mode=m), [x])
    against_torch(lambda t: tg.pad(t, ((1, 0), (0, 2), (2, 3)), constant_values=1.5),
                  lambda t: f.pad(t, (2, 3, 0, 2, 1, 0), value=1.5), [x])


def test_pad_constant_values_and_float32():
    x = np.ones((2, 2), dtype=np.float32)
    got = tg.pad(tg.Tensor(x), 1, constant_values=((1, 2), (3, 4)))
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got.data, np.pad(x, 1, constant_values=((1, 2), (3, 4))))
    checks(lambda a: tg.pad(a * a, ((1, 2), (0, 1)), mode="symmetric"), np.arange(6.0).reshape(2, 3))


def test_pad_refusals():
    t = tg.Tensor(np.ones((2, 3)))
    with pytest.raises(ValueError, match="pad: mode 'mean' is not supported on Tensors"):
        np.pad(t, 1, mode="mean")
    with pytest.raises(ValueError, match="pad: reflect_type='odd' is not supported"):
        np.pad(t, 1, mode="reflect", reflect_type="odd")
    with pytest.raises(ValueError, match="pad: unsupported keyword arguments for mode 'edge'"):
        np.pad(t, 1, mode="edge", constant_values=3)
    with pytest.raises(ValueError, match="pad: pad_width may not be negative"):
        tg.pad(t, -1)
    with pytest.raises(ValueError, match=r"pad: cannot extend axis 0 of length 0 \(shape \(0, 3\)\)"):
        tg.pad(tg.Tensor(np.ones((0, 3))), 1, mode="wrap")
    with pytest.raises(TypeError, match="pad: constant_values must be numbers or arrays, not Tensors"):
        tg.pad(t, 1, constant_values=tg.Tensor(2.0))
    with pytest.raises(ValueError, match="pad: pad_width"):
        tg.pad(t, ((1, 2, 3),))
    assert tg.pad(tg.Tensor(np.ones((0, 3))), 1).shape == (2, 5)


# ---- diagonals and triangles ----

@pytest.mark.parametrize("offset", [-3, -1, 0, 2, 4])
@pytest.mark.parametrize("axes", [(0, 1), (1, 0), (0, 2), (-1, 1)])
def test_diagonal(offset, axes):
    x = np.arange(24.0).reshape(2, 3, 4)
    got = np.diagonal(tg.Tensor(x), offset, *axes)
    want = np.diagonal(x, offset, *axes)
    assert got.shape == want.shape
    np.testing.assert_array_equal(got.data, want)
    if want.size:
        against_torch(lambda t: tg.Tensor.diagonal(t, offset, *axes),
                      lambda t: t.diagonal(offset, *axes), [x])
    else:  # an empty diagonal: the gradient is zero
        t = tg.Tensor(x)
        g = tg.grad(tg.sum(tg.diagonal(t, offset, *axes)) + tg.sum(t), [t])[0].data
        np.testing.assert_array_equal(g, np.ones_like(x))


@pytest.mark.parametrize("k", [-2, 0, 1])
def test_diag_both_ways(k):
    torch = _torch()
    v, m = np.arange(1.0, 4.0), np.arange(12.0).reshape(3, 4)
    np.testing.assert_array_equal(np.diag(tg.Tensor(v), k).data, np.diag(v, k))
    np.testing.assert_array_equal(np.diag(tg.Tensor(m), k).data, np.diag(m, k))
    against_torch(lambda t: tg.diag(t, k), lambda t: torch.diag(t, k), [v])
    against_torch(lambda t: tg.diag(t, k), lambda t: torch.diag(t, k), [m])
    with pytest.raises(ValueError, match=r"diag: the input must be 1-D or 2-D, got shape \(2, 3, 4\)"):
        tg.diag(tg.Tensor(np.ones((2, 3, 4))))


@pytest.mark.parametrize("k", [-1, 0, 2])
@pytest.mark.parametrize("shape", [(3, 4), (2, 3, 3), (4,)])
def test_tril_triu(k, shape):
    x = np.arange(1.0, 1.0 + np.prod(shape)).reshape(shape)
    t = tg.Tensor(x)
    for fn, np_fn in ((tg.tril, np.tril), (tg.triu, np.triu)):
        np.testing.assert_array_equal(fn(t, k).data, np_fn(x, k))
        np.testing.assert_array_equal(np_fn(t, k).data, np_fn(x, k))
        g = tg.grad(tg.sum(fn(t, k) * 3.0), [t])[0].data
        np.testing.assert_array_equal(g, 3.0 * np.sum(np_fn(np.ones(shape), k) != 0, axis=0)
                                      if len(shape) == 1 else 3.0 * (np_fn(np.ones(shape), k) != 0))
    if len(shape) >= 2:
        against_torch(lambda a: tg.triu(a, k), lambda a: a.triu(k), [x])


# ---- tapegrad.array ----

def test_array_stacks_nested_tensors_and_numbers():
    a, b = tg.Tensor(2.0), tg.Tensor(3.0)
    m = tg.array([[a, 1.0], (b, a * b)])
    np.testing.assert_array_equal(m.data, [[2.0, 1.0], [3.0, 6.0]])
    ga, gb = tg.grad(tg.sum(m * m), [a, b])
    assert (ga.data, gb.data) == (2 * 2.0 + 2 * 6.0 * 3.0, 2 * 3.0 + 2 * 6.0 * 2.0)
    rows = [tg.Tensor(np.arange(3.0)), [1.0, 2.0, 3.0], np.ones(3)]
    assert tg.array(rows).shape == (3, 3)
    assert tg.array([a]).shape == (1,) and tg.array(((a,),)).shape == (1, 1)


def test_array_dtype_plain_values_and_errors():
    a = tg.Tensor(np.ones(2, dtype=np.float32))
    assert tg.array([a, [1.0, 2.0]]).dtype == np.float32  # numbers take the Tensors' dtype
    assert tg.array([a, np.ones(2)]).dtype == np.float64  # an array keeps its own, as numpy
    plain = tg.array([[1, 2], [3, 4]])
    assert isinstance(plain, np.ndarray) and plain.dtype == np.array([[1, 2]]).dtype
    with pytest.raises(ValueError, match=r"array: the elements at depth 0 have different shapes"):
        tg.array([a, tg.Tensor(np.ones(3))])
    with pytest.raises(TypeError, match="array: cannot hold str"):
        tg.array([a, "x"])


# ---- indexing ----

@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("axis", [None, 0, -1])
def test_sort(axis, dtype):
    torch = _torch()
    x = np.random.default_rng(13).normal(size=(3, 4))
    np.testing.assert_array_equal(np.sort(tg.Tensor(x), axis).data, np.sort(x, axis))
    if axis is None:
        against_torch(lambda t: tg.sort(t, None), lambda t: t.reshape(-1).sort().values, [x], dtype)
    else:
        against_torch(lambda t: tg.sort(t, axis), lambda t: torch.sort(t, axis).values, [x], dtype)


def test_sort_ties_nans_and_the_in_place_method():
    x = tg.Tensor([2.0, np.nan, 1.0, 2.0])
    np.testing.assert_array_equal(tg.sort(x).data, [1.0, 2.0, 2.0, np.nan])
    g = tg.grad(tg.sort(x), [x], grad_outputs=tg.Tensor([1.0, 10.0, 100.0, 1000.0]))[0].data
    np.testing.assert_array_equal(g, [10.0, 1000.0, 1.0, 100.0])  # ties in stable order
    with pytest.raises(TypeError, match=r"Tensor.sort\(\) is not supported: ndarray.sort works in place"):
        x.sort()
    with pytest.raises(TypeError, match=r"Tensor.partition\(\) is not supported"):
        x.partition(1)
    with pytest.raises(ValueError, match="sort: order= sorts structured arrays"):
        tg.sort(x, order="f")


@pytest.mark.parametrize("kth", [0, 2, -1, [1, 3]])
def test_partition(kth):
    x = np.random.default_rng(14).normal(size=(3, 5))
    t = tg.Tensor(x)
    np.testing.assert_array_equal(np.partition(t, kth).data, np.partition(x, kth))
    np.testing.assert_array_equal(np.partition(t, kth, axis=0 if kth != [1, 3] else None).data,
                                  np.partition(x, kth, axis=0 if kth != [1, 3] else None))
    checks(lambda a: tg.partition(a, kth) * a, x)


@pytest.mark.parametrize("mode", ["raise", "wrap", "clip"])
def test_take_modes(mode):
    x = np.arange(12.0).reshape(3, 4)
    idx = np.array([[0, -1], [5, 2]]) if mode != "raise" else np.array([[0, -1], [3, 3]])
    t = tg.Tensor(x)
    for axis in (None, 1, -2):
        i = idx if mode != "raise" or axis != -2 else idx % 3
        np.testing.assert_array_equal(np.take(t, i, axis, mode=mode).data,
                                      np.take(x, i, axis, mode=mode))
    g = tg.grad(tg.sum(tg.take(t, idx, axis=1, mode=mode)), [t])[0].data
    want = np.zeros_like(x)
    np.add.at(want, (slice(None), np.take(np.arange(4), idx, mode=mode)), 1.0)
    np.testing.assert_array_equal(g, want)


def test_take_scalar_index_and_errors():
    x = np.arange(12.0).reshape(3, 4)
    t = tg.Tensor(x)
    assert t.take(5).data == 5.0
    np.testing.assert_array_equal(tg.take(t, 1, axis=0).data, x[1])
    assert tg.take(t, [], axis=1).shape == (3, 0)
    with pytest.raises(IndexError, match=r"take: index 4 is out of bounds for axis 1 with size 4 \(shape \(3, 4\)\)"):
        tg.take(t, [4], axis=1)
    with pytest.raises(TypeError, match="take: indices must be integers, got dtype float64"):
        tg.take(t, [1.0])
    with pytest.raises(ValueError, match="take: mode must be"):
        tg.take(t, [1], mode="nearest")


def test_take_along_axis():
    torch = _torch()
    x = np.random.default_rng(15).normal(size=(3, 4))
    idx = np.argsort(x, axis=1)[:, ::-1][:, :2]
    t = tg.Tensor(x)
    for axis, i in ((1, idx), (0, np.argsort(x, axis=0)), (None, np.array([11, 0, 0]))):
        np.testing.assert_array_equal(np.take_along_axis(t, i, axis).data,
                                      np.take_along_axis(x, i, axis))
    against_torch(lambda a: tg.take_along_axis(a, idx, 1),
                  lambda a: torch.take_along_dim(a, torch.from_numpy(idx.copy()), 1), [x])
    # an index array that broadcasts along the other axis
    np.testing.assert_array_equal(tg.take_along_axis(t, np.array([[3, 0]]), 1).data,
                                  np.take_along_axis(x, np.array([[3, 0]]), 1))
    with pytest.raises(ValueError, match="take_along_axis: indices of shape"):
        tg.take_along_axis(t, np.array([1, 2]), 1)
    with pytest.raises(IndexError, match="take_along_axis: an index is out of bounds for axis 1"):
        tg.take_along_axis(t, np.array([[4]]), 1)


def test_select():
    x = np.array([-2.0, -0.5, 0.5, 2.0])
    t = tg.Tensor(x)
    conds = [x < 0, x < 1]  # overlapping: the first that holds wins
    got = np.select(conds, [t * 2.0, t * 3.0], default=t)
    np.testing.assert_array_equal(got.data, np.select(conds, [x * 2.0, x * 3.0], default=x))
    np.testing.assert_array_equal(tg.grad(tg.sum(got), [t])[0].data, [2.0, 2.0, 3.0, 1.0])
    np.testing.assert_array_equal(tg.select([x > 0], [t], 0.0).data, np.select([x > 0], [x], 0.0))
    assert tg.select([x[:, None] > 0], [t], 0.0).shape == (4, 4)  # broadcast together
    with pytest.raises(TypeError, match="select: condition 0 must be boolean, got dtype float64"):
        tg.select([x], [t])
    with pytest.raises(ValueError, match="select: 1 conditions for 2 choices"):
        tg.select([x > 0], [t, t])


def test_nan_to_num():
    torch = _torch()
    x = np.array([1.0, np.nan, np.inf, -np.inf, -2.0])
    t = tg.Tensor(x)
    for kwargs in ({}, {"nan": 5.0, "posinf": 9.0, "neginf": -9.0}):
        np.testing.assert_array_equal(np.nan_to_num(t, **kwargs).data, np.nan_to_num(x, **kwargs))
    against_torch(lambda a: tg.nan_to_num(a * a, posinf=1.0),
                  lambda a: torch.nan_to_num(a * a, posinf=1.0), [x])
    with pytest.raises(ValueError, match="nan_to_num: copy=False"):
        np.nan_to_num(t, copy=False)


# ---- indexing with [] ----

@pytest.mark.parametrize("index", [
    np.s_[::-1], np.s_[::-2, 1:], np.s_[3:0:-2, ::-1], np.s_[-1:-4:-1, -2], np.s_[..., ::-3],
])
def test_negative_steps(index):
    x = np.arange(20.0).reshape(4, 5)
    t = tg.Tensor(x)
    y = t[index]
    np.testing.assert_array_equal(y.data, x[index])
    w = np.random.default_rng(16).uniform(size=x[index].shape)
    g = tg.grad(y, [t], grad_outputs=tg.Tensor(w))[0].data
    want = np.zeros_like(x)
    want[index] = w
    np.testing.assert_array_equal(g, want)
    checks(lambda a: a[index] * a[index], x)


@pytest.mark.parametrize("index", [
    np.s_[3:1], np.s_[:, 5:], np.array([], dtype=int), np.zeros((4, 5), dtype=bool),
    (np.array([], dtype=int), np.array([], dtype=int)), np.s_[np.zeros(4, dtype=bool), 1:3],
])
def test_empty_selections(index):
    x = np.arange(20.0).reshape(4, 5)
    t = tg.Tensor(x)
    y = t[index]
    assert y.shape == x[index].shape and y.size == 0
    g = tg.grad(tg.sum(y) + tg.sum(t), [t])[0].data
    np.testing.assert_array_equal(g, np.ones_like(x))


def test_zero_d_tensors():
    for t in (tg.Tensor(3.0), tg.Tensor(np.array(3.0)), tg.Tensor(np.float32(3.0))):
        assert t[()].data == 3.0 and t[...].data == 3.0
        assert t[None].shape == (1,) and t[None, ..., None].shape == (1, 1)
        assert t[np.array(True)].shape == (1,) and t[np.array(False)].shape == (0,)
        (g,) = tg.grad(tg.sum(t[None] * t[None, None]), [t], create_graph=True)
        assert g.data == 6.0
        assert tg.grad(g, [t])[0].data == 2.0
        with pytest.raises(IndexError, match="getitem: too many indices"):
            t[0]


# ---- astype ----

@pytest.mark.parametrize("source,target", [(np.float32, np.float64), (np.float64, np.float32),
                                           (np.float32, np.float32)])
def test_astype_keeps_the_gradient_in_the_input_dtype(source, target):
    torch = _torch()
    x = np.array([[0.5, -1.25], [2.0, 3.5]])
    to = torch.float64 if target == np.float64 else torch.float32
    against_torch(lambda t: tg.astype(t * t, target) * 3.0, lambda t: (t * t).to(to) * 3.0, [x],
                  dtype=source)
    t = tg.Tensor(x.astype(source))
    y = t.astype(target)
    assert y.dtype == target and tg.grad(tg.sum(y), [t])[0].dtype == source


def test_astype_to_integers_gives_the_plain_value():
    t = tg.Tensor(np.array([1.5, -2.5, 0.0]))
    for dtype in (int, np.int32, np.uint8, bool):
        got = t.astype(dtype)
        assert type(got) is np.ndarray and got.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(got, t.data.astype(dtype))
    assert tg.astype(tg.Tensor(2.7), np.int64) == 2
    assert t.astype(np.float64, copy=False, order="C").dtype == np.float64
    with pytest.raises(TypeError, match="astype: cannot cast float64 to int32 according to the rule 'safe'"):
        t.astype(np.int32, casting="safe")
    with pytest.raises(TypeError, match="astype: tapegrad differentiates float32 and float64 values, not complex128"):
        t.astype(complex)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", [(13, 7), (3, 9, 5), (20,), (9, 0), (2, 3, 4, 5)])
def test_native_scans_agree_with_numpy_to_the_bit(shape, dtype):
    """The scan kernels (csrc/numeric.hpp) add and multiply in numpy's order, on every
    layout: eight rows at a time along the last axis, slabs along the others."""
    a = np.random.default_rng(17).uniform(-1.5, 1.5, size=shape).astype(dtype)
    for axis in range(len(shape)):
        for view in (a, np.asfortranarray(a), a[::-1]):
            for op in ("cumsum", "cumprod"):
                got = getattr(tg, op)(tg.as_tensor(view), axis=axis).data
                assert got.dtype == dtype
                np.testing.assert_array_equal(got, getattr(np, op)(view, axis=axis))
            if not a.size:
                # An empty grad_outputs has zero strides, which the sweep takes for a
                # uniform gradient and reads one element of (an overflow ASan reports,
                # arrays.cpp is_uniform); the values above cover the empty case.
                continue
            x = tg.Tensor(view)
            w = np.random.default_rng(18).uniform(size=shape).astype(dtype)
            g = tg.grad(tg.cumsum(x, axis=axis), [x], grad_outputs=tg.Tensor(w))[0].data
            np.testing.assert_array_equal(g, np.flip(np.cumsum(np.flip(w, axis), axis), axis))
