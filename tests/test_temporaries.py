"""Note [Temporaries]: an op may write its result into a temporary operand's
array. Values and gradients must be exactly what fresh arrays give, and no
array anyone can still see may change."""

import functools
import operator

import numpy as np
import pytest

import tapegrad as tg

N = 40_000  # 320 KB of float64: above the size where temporaries are reused


@pytest.fixture
def xwb(rng):
    return [rng.uniform(0.1, 1.0, size=N) for _ in range(3)]


def chain(lib, x, w, b):
    return lib.tanh(x * w + b) * lib.exp(-x * x) + lib.log(1 + w * w) / (1 + b * b)


def test_the_chain_matches_numpy_and_its_gradient(xwb):
    x, w, b = xwb
    tensors = [tg.Tensor(v) for v in xwb]
    y = chain(tg, *tensors)
    np.testing.assert_allclose(y.data, chain(np, x, w, b), rtol=1e-14)
    gx, gw, gb = tg.compute_gradients(y, tensors)
    th, e = np.tanh(x * w + b), np.exp(-x * x)
    dth = (1 - th * th) * e
    np.testing.assert_allclose(gx, dth * w - 2 * x * th * e, rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(gw, dth * x + 2 * w / (1 + w * w) / (1 + b * b), rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(gb, dth - 2 * b * np.log(1 + w * w) / (1 + b * b) ** 2, rtol=1e-10, atol=1e-15)


def test_temporaries_are_reused(xwb):
    x, w, b = [tg.Tensor(v) for v in xwb]
    before = tg._core.tape_stats()["temporaries_reused"]
    chain(tg, x, w, b)
    # x*w + b, tanh, -x*x's exp and negation, 1 + w*w, 1 + b*b, and the final +
    assert tg._core.tape_stats()["temporaries_reused"] - before >= 5


def test_named_tensors_never_change(xwb):
    x, w, b = [tg.Tensor(v) for v in xwb]
    u = x * w
    kept = u.data.copy()
    v = u + b
    t = tg.tanh(v)
    s = -t
    for tensor, value in ((u, kept), (v, kept + xwb[2]), (t, np.tanh(kept + xwb[2]))):
        np.testing.assert_array_equal(tensor.data, value)
    np.testing.assert_array_equal(s.data, -np.tanh(kept + xwb[2]))


def test_tensors_held_only_by_a_container_never_change(xwb):
    """A container owns the only reference; C code (reduce, sum) passes it on."""
    x, w, b = [tg.Tensor(v) for v in xwb]
    held = [x * w, w * b, b * x]
    values = [t.data.copy() for t in held]
    total = functools.reduce(operator.add, held)
    also = sum(held[1:], held[0])
    for t, value in zip(held, values):
        np.testing.assert_array_equal(t.data, value)
    np.testing.assert_allclose(total.data, sum(values), rtol=1e-15)
    np.testing.assert_allclose(also.data, sum(values), rtol=1e-15)


def test_values_a_backward_reads_are_not_reused(xwb):
    """x * w feeds a product: the product's backward reads it, so it stays."""
    x, w, b = [tg.Tensor(v) for v in xwb]
    y = (x * w) * b
    gx, gw, gb = tg.compute_gradients(y, [x, w, b])
    np.testing.assert_allclose(gb, xwb[0] * xwb[1], rtol=1e-15)
    np.testing.assert_allclose(gx, xwb[1] * xwb[2], rtol=1e-15)
    np.testing.assert_allclose(gw, xwb[0] * xwb[2], rtol=1e-15)


def test_leaves_and_their_history_keep_their_values(xwb):
    leaf = tg.Tensor(np.ones(N))
    y = leaf + 1.0  # the leaf has no other holder, but it is a leaf: left alone
    np.testing.assert_array_equal(leaf.data, 1.0)
    (g,) = tg.compute_gradients(y, [leaf])
    np.testing.assert_array_equal(g, 1.0)


def test_float32_temporaries(xwb):
    x, w, b = [tg.Tensor(v.astype(np.float32)) for v in xwb]
    y = chain(tg, x, w, b)
    assert y.data.dtype == np.float32
    x64, w64, b64 = xwb
    np.testing.assert_allclose(y.data, chain(np, x64, w64, b64), rtol=2e-6)


def test_a_borrowed_reference_from_c_code_is_not_a_temporary(xwb):
    """C code may hand the operator a borrowed reference to a tensor a list owns
    (refcount 1): the stack check sees a caller that is not the interpreter."""
    import ctypes

    api = ctypes.pythonapi
    api.PyList_GetItem.restype = ctypes.c_void_p
    api.PyList_GetItem.argtypes = [ctypes.py_object, ctypes.c_ssize_t]
    api.PyNumber_Add.restype = ctypes.py_object
    api.PyNumber_Add.argtypes = [ctypes.c_void_p, ctypes.py_object]
    x, w, b = [tg.Tensor(v) for v in xwb]
    held = [x * w]  # the list holds the only reference
    value = held[0].data.copy()
    result = api.PyNumber_Add(api.PyList_GetItem(held, 0), b)
    np.testing.assert_array_equal(held[0].data, value)
    np.testing.assert_allclose(result.data, value + xwb[2], rtol=1e-15)
