"""Functions whose derivative is zero almost everywhere or undefined, and those that read
only a shape or dtype (catalogue.VALUES_ONLY): on Tensors they compute on the values,
return plain arrays or numbers and record nothing."""

import numpy as np
import pytest

import tapegrad as tg


def _callable(path):
    module, _, name = path.rpartition(".")
    return getattr(__import__(module), name)


@pytest.mark.parametrize("path", sorted(tg.catalogue.VALUES_ONLY))
def test_non_differentiable_functions_return_plain_values(path):
    func = _callable(path)
    n = func.nin if isinstance(func, np.ufunc) else 2 if func is np.searchsorted else 1
    values = [np.array([-1.5, 0.0, 2.5, 2.5]), np.array([0.5, 0.5, 3.0, 2.0])]
    if func is np.searchsorted:
        values[0] = np.sort(values[0])
    extra = (7.0,) if func is np.full_like else ()
    tensors = [tg.Tensor(v) for v in values[:n]]
    rows = len(tg.operation_history)
    out = func(*tensors, *extra)
    assert len(tg.operation_history) == rows  # nothing recorded
    expect = func(*values[:n], *extra)
    if func is np.empty_like:  # its values are whatever memory held
        out, expect = np.shape(out), np.shape(expect)
    outs = out if isinstance(out, tuple) else [out]
    expects = expect if isinstance(expect, tuple) else [expect]
    assert len(outs) == len(expects)
    for o, e in zip(outs, expects):
        assert not isinstance(o, tg.Tensor)
        np.testing.assert_array_equal(o, e)
    method = tg.catalogue.VALUES_ONLY[path]
    if method:
        got = getattr(tensors[0], method)()
        for o, e in zip(got if isinstance(got, tuple) else [got], expects):
            np.testing.assert_array_equal(o, e)


def test_non_differentiable_methods_and_keywords():
    t = tg.Tensor(np.array([[3.0, 1.0], [2.0, 5.0]]))
    assert t.argmax() == 3 and t.argmin(axis=1).tolist() == [1, 0]
    np.testing.assert_array_equal(t.argsort(axis=0), np.argsort(t.data, axis=0))
    np.testing.assert_array_equal(t.nonzero()[1], np.nonzero(t.data)[1])
    np.testing.assert_array_equal(np.round(t, 1), np.round(t.data, 1))
    np.testing.assert_array_equal(np.argmax(t, axis=0, keepdims=True), [[0, 1]])
