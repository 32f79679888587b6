"""numpy calls on Tensors record through __array_ufunc__, or refuse by name."""

import numpy as np
import pytest

import tapegrad

from opcatalog import BINARY, UNARY


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
    name = tapegrad.catalogue.ufunc_implementation(ufunc)[0].function
    ranges = ([UNARY[name][2]] if name in UNARY else [BINARY[name][2], BINARY[name][3]]
              if name in BINARY else [(0.5, 1.5)] * 2)  # each op's domain (arcsin: |x| < 1)
    values = [rng.uniform(*r, size=s) for r, s in zip(ranges, shapes)]
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


# ---- numpy's reduction keywords: dtype, out=None, where, initial, correction ----

REDUCTIONS = {
    # name: (numpy function, torch function of a tensor already in the dtype)
    "sum": (np.sum, lambda t: t.sum()),
    "mean": (np.mean, lambda t: t.mean()),
    "prod": (np.prod, lambda t: t.prod()),
    "var": (np.var, lambda t: t.var(correction=0)),
    "std": (np.std, lambda t: t.std(correction=0)),
}


@pytest.mark.parametrize("dtype, to", [(np.float64, np.float32), (np.float32, np.float64),
                                       (np.float64, np.float64)])
@pytest.mark.parametrize("name", sorted(REDUCTIONS))
def test_reduction_dtype_casts_first_as_numpy(name, dtype, to, rng):
    torch = pytest.importorskip("torch")
    fn, torch_fn = REDUCTIONS[name]
    a = rng.uniform(0.5, 1.5, size=(3, 4)).astype(dtype)
    for spelled in (lambda t: fn(t, dtype=to), lambda t: getattr(t, name)(dtype=to),
                    lambda t: getattr(tapegrad, name)(t, dtype=to)):
        x = tapegrad.Tensor(a)
        y = spelled(x)
        expected = fn(a, dtype=to)
        assert y.dtype == np.asarray(expected).dtype == to
        np.testing.assert_allclose(y.data, expected, rtol=1e-6 if np.float32 in (dtype, to) else 1e-12)
        (g,) = tapegrad.grad(y, [x])
        assert g.dtype == dtype  # the input's dtype
        xt = torch.tensor(a, requires_grad=True)
        (ref,) = torch.autograd.grad(torch_fn(xt.to(getattr(torch, np.dtype(to).name))), xt)
        np.testing.assert_allclose(g.data, ref.numpy(), rtol=1e-5 if np.float32 in (dtype, to) else 1e-12)


@pytest.mark.parametrize("name", sorted(REDUCTIONS))
def test_reduction_integer_dtype_is_refused_by_name(name):
    fn, _ = REDUCTIONS[name]
    with pytest.raises(TypeError, match=rf"{name}: dtype=int64 would truncate.*float32 or float64"):
        fn(tapegrad.Tensor([1.5, 2.5]), dtype=np.int64)


@pytest.mark.parametrize("fn", [np.sum, np.mean, np.prod, np.max, np.min, np.var, np.std])
def test_reduction_out_none_is_accepted_and_an_array_refused(fn):
    x = tapegrad.Tensor([1.5, 2.5])
    np.testing.assert_allclose(fn(x, out=None).data, fn(x.data))
    with pytest.raises(TypeError, match=r"out= cannot hold a recorded result"):
        fn(x, out=np.zeros(()))


def test_reduction_where_and_initial_as_numpy(rng):
    a = rng.uniform(0.5, 1.5, size=(3, 4))
    mask = rng.uniform(size=(3, 4)) < 0.6
    mask[0, :] = True  # no empty column for the mean
    row_mask = np.array([True, False, True, True])
    for fn, kwargs in [(np.sum, {"where": mask, "axis": 0}), (np.sum, {"where": row_mask}),
                       (np.mean, {"where": mask, "axis": 0}), (np.mean, {"where": row_mask}),
                       (np.prod, {"where": mask, "axis": 1}), (np.sum, {"initial": 2.0}),
                       (np.prod, {"initial": 2.0, "where": mask})]:
        x = tapegrad.Tensor(a)
        y = fn(x, **kwargs)
        np.testing.assert_allclose(y.data, fn(a, **kwargs), rtol=1e-12)
        assert tapegrad.gradcheck(lambda t, fn=fn, kwargs=kwargs: fn(t, **kwargs), [x])
    x = tapegrad.Tensor(a)
    (g,) = tapegrad.grad(np.mean(x, where=mask, axis=0).sum(), [x])
    np.testing.assert_allclose(g.data, mask / mask.sum(axis=0), rtol=1e-12)  # 0 where masked


def test_reduction_keywords_of_max_min_var_std():
    x = tapegrad.Tensor([1.5, 2.5])
    a = x.data
    np.testing.assert_array_equal(np.max(x, where=[True, False], initial=0.0).data,
                                  np.max(a, where=[True, False], initial=0.0))
    np.testing.assert_allclose(np.var(x, mean=2.0).data, np.var(a, mean=2.0), rtol=1e-15)
    np.testing.assert_allclose(np.std(x, where=[True, False]).data,
                               np.std(a, where=[True, False]))
    with pytest.raises(ValueError, match="min: where= needs initial="):  # as numpy's
        np.min(x, where=[True, False])
    with pytest.raises(ValueError, match="ddof or correction"):
        np.var(x, ddof=1, correction=1)
    np.testing.assert_allclose(np.var(x, correction=1).data, np.var(x.data, ddof=1))


def test_reduction_positional_arguments_follow_numpys_order():
    a = np.arange(6.0).reshape(2, 3) + 1.0
    x = tapegrad.Tensor(a)
    assert np.sum(x, 0, None, None, True).shape == (1, 3)  # keepdims, not dtype
    np.testing.assert_allclose(np.var(x, 1, None, None, 1).data, np.var(a, 1, None, None, 1))
    np.testing.assert_allclose(np.mean(x, 1, np.float32).data, np.mean(a, 1, np.float32))
    assert np.max(x, 0, None, True).shape == (1, 3)


def test_numpy_functions_of_shape_and_dtype_return_plain_values():
    x = tapegrad.Tensor(np.arange(6, dtype=np.float32).reshape(2, 3))
    s = tapegrad.Tensor(2.5)
    for fn, args in ((np.zeros_like, ()), (np.ones_like, ()), (np.full_like, (7.0,)),
                     (np.empty_like, ())):
        for t in (x, s):
            out = fn(t, *args)
            want = fn(t.data, *args)
            assert type(out) is type(want) and np.shape(out) == np.shape(want)
            assert np.result_type(out) == np.result_type(want)
            if fn is not np.empty_like:
                np.testing.assert_array_equal(out, want)
    assert np.zeros_like(x, dtype=np.float64).dtype == np.float64
    assert np.full_like(x, tapegrad.Tensor(4.0))[0, 0] == 4.0  # a Tensor fill value: its value
    assert (np.shape(x), np.ndim(x), np.size(x), len(x)) == ((2, 3), 2, 6, 2)
    assert (np.shape(s), np.ndim(s), np.size(s)) == ((), 0, 1)
    assert np.size(x, 1) == 3
    assert np.result_type(x, 1.0) == np.float32 and np.result_type(x, np.float64) == np.float64
    assert not np.iscomplexobj(x) and np.isrealobj(x)
    assert len(tapegrad.operation_history) == 0  # nothing recorded
