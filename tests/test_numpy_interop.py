"""numpy calls on Tensors record through __array_ufunc__, or refuse by name."""

import numpy as np
import pytest

import tapegrad


def test_ufuncs_record_like_the_functions(rng):
    a = rng.uniform(0.5, 2.0, size=5)
    x = tapegrad.Tensor(a)
    via_numpy = np.tanh(np.log(x) * np.sqrt(x)) + np.exp(-x) - np.sin(x) / np.cos(x)
    x2 = tapegrad.Tensor(a)
    via_tapegrad = (tapegrad.tanh(tapegrad.log(x2) * tapegrad.sqrt(x2)) + tapegrad.exp(-x2)
                    - tapegrad.sin(x2) / tapegrad.cos(x2))
    assert isinstance(via_numpy, tapegrad.Tensor)
    np.testing.assert_array_equal(via_numpy.data, via_tapegrad.data)
    np.testing.assert_array_equal(tapegrad.compute_gradients(via_numpy, [x])[0],
                                  tapegrad.compute_gradients(via_tapegrad, [x2])[0])


def test_ndarray_on_the_left_dispatches_to_tensor(rng):
    a = rng.uniform(1, 2, size=3)
    c = rng.uniform(1, 2, size=3)
    x = tapegrad.Tensor(a)
    for expr, grad in [(lambda: c * x, c), (lambda: c + x, np.ones(3)), (lambda: c - x, -np.ones(3)),
                       (lambda: c / x, -c / a**2), (lambda: c**x, c**a * np.log(c))]:
        y = expr()
        assert isinstance(y, tapegrad.Tensor)
        np.testing.assert_allclose(tapegrad.compute_gradients(y, [x])[0], grad, rtol=1e-12)


def test_numpy_power_and_negative_and_abs():
    x = tapegrad.Tensor(np.array([-2.0, 3.0]))
    y = np.power(x, 2) + np.negative(x) + np.absolute(x)
    np.testing.assert_array_equal(tapegrad.compute_gradients(y, [x])[0], [-4 - 1 - 1, 6 - 1 + 1])


def test_comparisons_return_plain_booleans_and_record_nothing():
    x = tapegrad.Tensor(np.array([1.0, 2.0, 3.0]))
    before = len(tapegrad.operation_history)
    mask = x > 1.5
    assert isinstance(mask, np.ndarray) and mask.dtype == bool
    np.testing.assert_array_equal(mask, [False, True, True])
    np.testing.assert_array_equal(np.less(x, 2.5), [True, True, False])
    assert (tapegrad.Tensor(2.0) <= 2.0) is True
    assert len(tapegrad.operation_history) == before


def test_ufunc_with_out_or_method_is_refused():
    x = tapegrad.Tensor(np.ones(2))
    with pytest.raises(TypeError, match=r"numpy.exp with \['out'\]"):
        np.exp(x, out=np.empty(2))
    with pytest.raises(TypeError, match=r"numpy\.add\.reduce"):
        np.add.reduce(x)


def test_functions_on_plain_values_record_nothing():
    assert tapegrad.log(1.0) == 0.0
    np.testing.assert_array_equal(tapegrad.exp(np.zeros(2)), [1.0, 1.0])
    assert tapegrad.multiply(2.0, 3.0) == 6.0
    assert len(tapegrad.operation_history) == 0


def test_value_accessors():
    t = tapegrad.Tensor(np.arange(6.0).reshape(2, 3))
    assert t.shape == (2, 3) and t.ndim == 2 and t.size == 6 and len(t) == 2
    assert t.dtype == np.float64
    s = tapegrad.Tensor(2.5)
    assert s.shape == () and s.ndim == 0 and s.size == 1 and s.dtype == np.float64
    assert s.item() == 2.5 and float(s) == 2.5
    np.testing.assert_array_equal(t.numpy(), np.arange(6.0).reshape(2, 3))
    with pytest.raises(ValueError, match="6 elements"):
        t.item()
    with pytest.raises(TypeError, match=r"len\(\) of a 0-d tensor"):
        len(s)


def test_copy_deepcopy_and_pickle_make_leaves_with_the_same_value():
    import copy
    import pickle

    x = tapegrad.Tensor(np.array([1.0, 2.0]), "x")
    for clone in (copy.copy(x), copy.deepcopy(x), pickle.loads(pickle.dumps(x))):
        assert isinstance(clone, tapegrad.Tensor) and clone.label == "x" and clone.is_leaf
        np.testing.assert_array_equal(clone.data, [1.0, 2.0])
        (g,) = tapegrad.compute_gradients(clone * clone, [clone])
        np.testing.assert_array_equal(g, [2.0, 4.0])
    assert copy.deepcopy(x).data is not x.data


def test_array_subclasses_are_stored_as_plain_ndarrays():
    t = tapegrad.Tensor(np.ma.masked_array([1.0, 2.0]))
    assert type(t.data) is np.ndarray


@pytest.mark.parametrize("ufunc", list(tapegrad.catalogue.ufunc_codes()), ids=lambda u: u.__name__)
def test_the_native_ufunc_path_agrees_with_the_python_one(ufunc, rng):
    """Note [numpy dispatch]: plain calls are answered natively; the Python
    fallback knows every case. Both give the same value and gradients."""
    from tapegrad.numpy_interop import array_ufunc

    n_in = 2 if ufunc is np.matmul else ufunc.nin
    shapes = [(3, 4), (4, 2)] if ufunc is np.matmul else [(3, 4), (4,)][:n_in]
    values = [rng.uniform(0.5, 1.5, size=s) for s in shapes]
    results = []
    for call in (lambda *t: ufunc(*t), lambda *t: array_ufunc(ufunc, "__call__", t, {})):
        tensors = [tapegrad.Tensor(v) for v in values]
        out = call(*tensors)
        w = rng.uniform(size=out.shape) if not results else results[0][2]
        results.append((out.data, tapegrad.compute_gradients(out, tensors, grad_output=w), w))
    (native, native_grads, _), (python, python_grads, _) = results
    np.testing.assert_array_equal(native, python)
    for a, b in zip(native_grads, python_grads):
        np.testing.assert_array_equal(a, b)
