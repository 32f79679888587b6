"""The fast paths: integer-array indexing's backward (one pass over the gradient,
Note [Scatter by positions] in csrc/numeric.hpp).

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
