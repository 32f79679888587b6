"""The fast paths: integer-array indexing's backward (one pass over the gradient,
Note [Scatter by positions] in csrc/numeric.hpp), and x ** e on arrays (numpy's
shortcuts for the forward; pow's backward computes the exponent's gradient only
where it is wanted, Note [One table] in csrc/ops.hpp).

Values and gradients only (no test asserts a time): numpy's own ``np.add.at``
is the oracle for what indexing means, PyTorch for the gradients (first and
second order, float64 and float32), central differences everywhere.
"""

import numpy as np
import pytest

import tapegrad as tg

_I = np.array  # an index array (int64 unless given a dtype)

# name -> (shape of x, index, whether torch takes the same index). torch applies
# an int before the advanced indices (a select), where numpy counts it among
# them (x[:, arr, :, 1] differs), and refuses negative slice steps.
INDEX_CASES = {
    "vector_repeats": ((6,), (_I([1, 1, 4, 1, 0, 5, 5]),), True),
    "vector_negative": ((6,), (_I([-1, 0, -6, 5, -1, 2]),), True),
    "vector_2d_index": ((5,), (_I([[0, 4, 4], [-2, 3, 0]]),), True),
    "rows": ((5, 3), (_I([4, 0, 4, -1, 2]),), True),
    "columns_slice_first": ((4, 5), (slice(None), _I([[0, -1], [3, 3]])), True),
    "two_arrays_broadcast": ((4, 5), (_I([[0], [3], [0]]), _I([1, 1, -5, 4])), True),
    "arrays_apart_go_first": ((3, 4, 5), (_I([0, 2, 2]), slice(1, None, 2), _I([4, 4, -1])), True),
    "int_and_array_apart": ((3, 4, 5, 2), (slice(None), _I([1, 3, 1]), slice(None), 1), False),
    "int_next_to_array": ((3, 4, 5), (1, _I([0, 0, -1]), slice(None, None, 2)), True),
    "int_array_reversed": ((3, 4, 5), (1, _I([0, 0, -1]), slice(None, None, -1)), False),
    "ellipsis_none": ((3, 4, 5), (None, Ellipsis, _I([[4, 0], [0, 2]]), None), True),
    "reversed_slice_mix": ((5, 6), (slice(None, None, -2), _I([5, 0, 5, -3])), False),
    "mask_2d": ((3, 4, 2), (_I([[True, False, True, True], [False, False, True, False],
                                 [True, True, False, False]]),), True),
    "mask_and_array": ((4, 3), (_I([True, False, True, True]), _I([2, 2, 0])), True),
    "int32_index": ((7, 2), (_I([6, -7, 3, 3], dtype=np.int32),), True),
    "uint8_index": ((7, 8), (slice(1, 3), _I([6, 0, 6], dtype=np.uint8)), True),
    "strided_index": ((6, 3), (_I([5, 9, 0, 7, 5, 1, 2, 3])[::2],), True),
    "big_endian_index": ((6, 3), (_I([5, 0, 5, -1], dtype=">i8"),), True),
    "im2col": ((2, 3, 5, 5), (slice(None), slice(None),
                              (np.repeat(np.arange(3), 3)[None, :]
                               + np.repeat(np.arange(3), 3)[:, None]),
                              (np.tile(np.arange(3), 3)[None, :]
                               + np.tile(np.arange(3), 3)[:, None])), True),
    "zero_d_index": ((4, 3), (_I(-2),), True),
    "zero_d_index_and_ints": ((2, 3, 4), (_I(1), 2, -1), True),
    "longlong_index": ((4, 3), (slice(None), _I([2, -1, 2], dtype=np.longlong)), True),
    "empty_index": ((4, 3), (_I([], dtype=np.int64),), True),
    "zero_length_axis": ((4, 0, 2), (_I([3, 3, 0]),), True),
    "bool_scalar": ((3, 2), (_I([2, 0, 2]), True), False),
}


def _add_at(shape, index, g):
    out = np.zeros(shape, g.dtype)
    np.add.at(out, index, g)
    return out


def _torch_index(torch, index):
    def one(i):
        if isinstance(i, np.ndarray):
            return torch.tensor(i if i.dtype == bool else i.astype(np.int64))
        return i
    return tuple(one(i) for i in index)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", sorted(INDEX_CASES))
def test_index_gradient_is_numpys_add_at(name, dtype, rng):
    shape, index, _ = INDEX_CASES[name]
    x = tg.Tensor(rng.standard_normal(shape).astype(dtype))
    y = x[index]
    g = rng.standard_normal(y.shape).astype(dtype)
    (gx,) = tg.compute_gradients(y, [x], grad_output=g)
    assert gx.dtype == dtype and gx.shape == shape
    # Same order of additions as add.at, in the same dtype: equal, not just close.
    np.testing.assert_array_equal(gx, _add_at(shape, index, g))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", sorted(n for n, c in INDEX_CASES.items() if c[2]))
def test_index_gradient_against_torch(name, dtype, rng):
    torch = pytest.importorskip("torch")
    shape, index, _ = INDEX_CASES[name]
    value = rng.standard_normal(shape).astype(dtype)
    x, xt = tg.Tensor(value), torch.tensor(value, requires_grad=True)
    y, yt = x[index], xt[_torch_index(torch, index)]
    np.testing.assert_array_equal(y.data, yt.detach().numpy())
    w = rng.uniform(0.5, 1.5, size=y.shape).astype(dtype)
    (yt * torch.tensor(w)).sum().backward()
    (gx,) = tg.compute_gradients((y * w).sum(), [x])
    tol = 1e-12 if dtype == np.float64 else 1e-5
    assert gx.dtype == dtype
    np.testing.assert_allclose(gx, xt.grad.numpy(), rtol=tol, atol=tol)


@pytest.mark.parametrize("name", sorted(INDEX_CASES))
def test_index_gradcheck(name, rng):
    shape, index, _ = INDEX_CASES[name]
    x = tg.Tensor(rng.standard_normal(shape))
    assert tg.gradcheck(lambda t: tg.sin(t[index]) * 1.5, [x])


@pytest.mark.parametrize("name", sorted(INDEX_CASES))
def test_index_gradgradcheck(name, rng):
    # The gradient of t[index] is recorded as scatter_add, whose own backward is t[index].
    shape, index, _ = INDEX_CASES[name]
    x = tg.Tensor(rng.standard_normal(shape))
    assert tg.gradgradcheck(lambda t: tg.sin(t[index]) * t[index], [x])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", ["rows", "arrays_apart_go_first", "mask_and_array", "im2col",
                                  "vector_negative", "ellipsis_none"])
def test_index_second_order_against_torch(name, dtype, rng):
    torch = pytest.importorskip("torch")
    shape, index, _ = INDEX_CASES[name]
    value = rng.standard_normal(shape).astype(dtype)
    v = rng.standard_normal(shape).astype(dtype)
    x, xt = tg.Tensor(value), torch.tensor(value, requires_grad=True)
    ti = _torch_index(torch, index)

    (gx,) = tg.grad(tg.sum(tg.sin(x[index]) * x[index]), [x], create_graph=True)
    (hv,) = tg.grad(tg.sum(gx * v), [x])
    (gt,) = torch.autograd.grad((torch.sin(xt[ti]) * xt[ti]).sum(), [xt], create_graph=True)
    (hvt,) = torch.autograd.grad((gt * torch.tensor(v)).sum(), [xt])
    tol = 1e-12 if dtype == np.float64 else 2e-5
    assert gx.dtype == dtype and hv.dtype == dtype
    np.testing.assert_allclose(gx.data, gt.detach().numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(hv.data, hvt.numpy(), rtol=tol, atol=tol)


def test_index_gradient_of_a_transposed_use(rng):
    # The gradient reaching getitem is then a transposed (strided) array.
    x = tg.Tensor(rng.standard_normal((5, 3)))
    idx = np.array([4, 4, 0, 1])
    w = rng.standard_normal((3, 4))
    (gx,) = tg.compute_gradients((x[idx].T * w).sum(), [x])
    np.testing.assert_array_equal(gx, _add_at((5, 3), (idx,), np.ascontiguousarray(w.T)))


def test_index_gradient_accumulates_into_the_same_leaf(rng):
    # Two gathers of one tensor, with repeats: every use adds up.
    x = tg.Tensor(rng.standard_normal((4, 2)))
    a, b = np.array([0, 0, 3]), np.array([[1, 1], [-1, 0]])
    x[a].sum().backward()
    (x[:, b] * 2.0).sum().backward()
    expected = _add_at((4, 2), (a,), np.ones((3, 2))) + _add_at((4, 2), (slice(None), b),
                                                               np.full((4, 2, 2), 2.0))
    np.testing.assert_array_equal(x.grad.data, expected)


def test_index_arrays_are_kept_as_given(rng):
    # The tape keeps the index as it was when recorded (Note [Immutable values]).
    x = tg.Tensor(rng.standard_normal(4))
    idx = np.array([0, 0, 3])
    y = x[idx]
    idx[:] = 1
    (gx,) = tg.compute_gradients(y, [x], grad_output=np.array([1.0, 2.0, 3.0]))
    np.testing.assert_array_equal(gx, [3.0, 0.0, 0.0, 3.0])


# ---- x ** e ----

# Exponents as users write them: numpy's a ** e takes its shortcuts for the int
# 2 and -1 and the float 0.5, and tapegrad for those values.
POWER_EXPONENTS = [2, 2.0, 3, 0.5, -1, -1.0, 1, 2.5, -2]


def _base(e, shape, dtype, rng):
    """Bases away from 0; negative ones too where the exponent is an integer."""
    a = rng.uniform(0.3, 2.0, size=shape)
    if float(e).is_integer():
        a *= rng.choice([-1.0, 1.0], size=shape)
    return a.astype(dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("e", POWER_EXPONENTS)
def test_power_by_a_number_gives_numpys_values(e, dtype, rng):
    a = _base(e, (4, 5), dtype, rng)
    y = tg.Tensor(a) ** e
    assert y.dtype == dtype
    if (isinstance(e, int) and e in (2, -1)) or e == 0.5:
        np.testing.assert_array_equal(y.data, a ** e)  # numpy's own shortcut, value for value
    else:
        np.testing.assert_allclose(y.data, a ** e, rtol=4 * np.finfo(dtype).eps)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("e", POWER_EXPONENTS)
def test_power_by_a_number_against_torch(e, dtype, rng):
    torch = pytest.importorskip("torch")
    a = _base(e, (3, 4), dtype, rng)
    w = rng.uniform(0.5, 1.5, size=a.shape).astype(dtype)
    v = rng.standard_normal(a.shape).astype(dtype)
    x, xt = tg.Tensor(a), torch.tensor(a, requires_grad=True)
    (gx,) = tg.grad(tg.sum(x ** e * w), [x], create_graph=True)
    (hv,) = tg.grad(tg.sum(gx * v), [x])
    (gt,) = torch.autograd.grad((xt ** e * torch.tensor(w)).sum(), [xt], create_graph=True)
    (hvt,) = torch.autograd.grad((gt * torch.tensor(v)).sum(), [xt])
    tol = 1e-12 if dtype == np.float64 else 1e-5
    assert gx.dtype == dtype and hv.dtype == dtype
    np.testing.assert_allclose(gx.data, gt.detach().numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(hv.data, hvt.numpy(), rtol=tol, atol=tol)


@pytest.mark.parametrize("e", POWER_EXPONENTS)
def test_power_by_a_number_gradcheck(e, rng):
    x = tg.Tensor(_base(e, (3, 4), np.float64, rng))
    assert tg.gradcheck(lambda t: t ** e, [x])
    assert tg.gradgradcheck(lambda t: t ** e, [x])


def test_power_at_zero_and_of_zero_is_torchs(rng):
    torch = pytest.importorskip("torch")
    base = np.array([0.0, -0.0, 0.0, 2.0, -1.5, 0.0])
    expo = np.array([2.0, 3.0, 1.0, 0.0, 2.0, 0.5])
    x, t = tg.Tensor(base), tg.Tensor(expo)
    xt, tt = torch.tensor(base, requires_grad=True), torch.tensor(expo, requires_grad=True)
    for number in (2.0, 3.0, 1.0):  # the shortcuts of pow's derivative at 0 and below
        (gx,) = tg.grad(tg.sum(x ** number), [x])
        (gxt,) = torch.autograd.grad((xt ** number).sum(), [xt])
        np.testing.assert_array_equal(gx.data, gxt.numpy())
    gx, gt = tg.grad(tg.sum(x ** t), [x, t])
    gxt, gtt = torch.autograd.grad((xt ** tt).sum(), [xt, tt])
    np.testing.assert_array_equal(gx.data, gxt.numpy())
    np.testing.assert_array_equal(gt.data, gtt.numpy())  # 0 where the base is 0, not NaN


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("exponent_shape", [(), (4,), (3, 4)])
def test_power_exponent_gradient_when_it_is_wanted(exponent_shape, dtype, rng):
    torch = pytest.importorskip("torch")
    a = rng.uniform(0.3, 2.0, size=(3, 4)).astype(dtype)
    b = rng.uniform(-1.5, 2.5, size=exponent_shape).astype(dtype)
    v = rng.standard_normal((3, 4)).astype(dtype)
    x, t = tg.Tensor(a), tg.Tensor(b)
    xt, tt = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    gx, gt = tg.grad(tg.sum((x ** t) * v), [x, t], create_graph=True)
    gxt, gtt = torch.autograd.grad(((xt ** tt) * torch.tensor(v)).sum(), [xt, tt],
                                   create_graph=True)
    tol = 1e-12 if dtype == np.float64 else 2e-5
    assert gx.dtype == dtype and gt.dtype == dtype and gt.shape == exponent_shape
    np.testing.assert_allclose(gx.data, gxt.detach().numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(gt.data, gtt.detach().numpy(), rtol=tol, atol=tol)
    # Second order through both: the exponent's gradient is recorded too.
    hx, ht = tg.grad(tg.sum(gx) + tg.sum(gt), [x, t])
    hxt, htt = torch.autograd.grad(gxt.sum() + gtt.sum(), [xt, tt])
    np.testing.assert_allclose(hx.data, hxt.numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(ht.data, htt.numpy(), rtol=tol, atol=tol)


def test_power_of_a_number_by_a_tensor(rng):
    # The base is the constant: only the exponent's gradient, which reads the output.
    torch = pytest.importorskip("torch")
    b = rng.uniform(-1.0, 2.0, size=(5,))
    t, tt = tg.Tensor(b), torch.tensor(b, requires_grad=True)
    (gt,) = tg.grad(tg.sum(2.5 ** (t * 3.0)), [t])
    (gtt,) = torch.autograd.grad((2.5 ** (tt * 3.0)).sum(), [tt])
    np.testing.assert_allclose(gt.data, gtt.numpy(), rtol=1e-13)
    assert tg.gradgradcheck(lambda u: 2.5 ** (u * 3.0), [t])


def test_power_gradcheck_both_sides(rng):
    x = tg.Tensor(rng.uniform(0.3, 2.0, size=(2, 3)))
    t = tg.Tensor(rng.uniform(-1.0, 2.0, size=(3,)))
    assert tg.gradcheck(lambda a, b: a ** b, [x, t])
    assert tg.gradgradcheck(lambda a, b: a ** b, [x, t])
    assert tg.gradgradcheck(lambda a: a ** a, [x])


def _ops_recorded():
    return [r.op for r in tg.operation_history]


@pytest.mark.parametrize("exponent", [2.0, 3, np.array([2.0, 0.5, 3.0]),
                                      tg.tensor(np.array([2.0, 0.5, 3.0]))],
                         ids=["float", "int", "ndarray", "constant_tensor"])
def test_a_constant_exponent_gets_no_gradient_recorded(exponent):
    # Its gradient would take a log; create_graph records only x's.
    e = np.asarray(exponent.data if isinstance(exponent, tg.Tensor) else exponent, float)
    x = tg.Tensor(np.array([1.5, -2.0, 3.0]) if e.ndim == 0 else np.array([1.5, 2.0, 3.0]))
    tg.clear_history()
    (g,) = tg.grad(tg.sum(x ** exponent), [x], create_graph=True)
    assert "log" not in _ops_recorded()
    (h,) = tg.grad(tg.sum(g), [x])
    np.testing.assert_allclose(h.data, e * (e - 1) * x.data ** (e - 2), rtol=1e-14)


def test_a_tensor_exponent_gets_its_gradient_recorded():
    # The other side of the test above: it does see the log when one is due.
    x, t = tg.Tensor(np.array([1.5, 2.0])), tg.Tensor(np.array([2.0, 0.5]))
    tg.clear_history()
    tg.grad(tg.sum(x ** t), [x, t], create_graph=True)
    assert "log" in _ops_recorded()


def test_power_of_a_temporary_keeps_what_its_backward_reads(rng):
    # (x * 2) ** 2 reads its base: the base's array is not reused for the output;
    # 2 ** (x * 3) reads its output and its exponent.
    torch = pytest.importorskip("torch")
    a = rng.uniform(0.3, 2.0, size=(50, 40))
    x, xt = tg.Tensor(a), torch.tensor(a, requires_grad=True)
    y = tg.sum((x * 2.0) ** 2.0 + 2.0 ** (x * 3.0) + (x + 1.0) ** x)
    yt = ((xt * 2.0) ** 2.0 + 2.0 ** (xt * 3.0) + (xt + 1.0) ** xt).sum()
    (gx,) = tg.grad(y, [x])
    (gxt,) = torch.autograd.grad(yt, [xt])
    np.testing.assert_allclose(gx.data, gxt.numpy(), rtol=1e-13)


def test_scalar_power_gradients(rng):
    # The scalar fast path runs the same formulas (T = double).
    torch = pytest.importorskip("torch")
    for base, e in [(1.7, 2.0), (-1.3, 3), (0.0, 2.0), (2.2, 0.5), (1.1, -1), (0.7, 2.5)]:
        x, xt = tg.Tensor(base), torch.tensor(base, dtype=torch.float64, requires_grad=True)
        (g,) = tg.grad(x ** e, [x], create_graph=True)
        (h,) = tg.grad(g, [x])
        (gt,) = torch.autograd.grad(xt ** e, [xt], create_graph=True)
        (ht,) = torch.autograd.grad(gt, [xt])
        assert float(g) == pytest.approx(gt.item(), rel=1e-14, abs=1e-300)
        assert float(h) == pytest.approx(float(ht), rel=1e-14, abs=1e-300)
    x, t = tg.Tensor(1.7), tg.Tensor(0.6)
    gx, gt = tg.grad(x ** t, [x, t])
    assert float(gx) == pytest.approx(0.6 * 1.7 ** -0.4, rel=1e-14)
    assert float(gt) == pytest.approx(1.7 ** 0.6 * np.log(1.7), rel=1e-14)
