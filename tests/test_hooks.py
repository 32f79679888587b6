"""Tensor.register_hook: see, and replace, the gradient flowing into a tensor."""

import numpy as np
import pytest

import tapegrad as tg

from functions import Double


def test_a_hook_sees_and_replaces_a_leaf_gradient():
    w = tg.Tensor(np.array([1.0, 2.0]))
    seen = []
    handle = w.register_hook(lambda g: seen.append(g.data.copy()))
    w.register_hook(lambda g: g * 10.0)
    (w * w).sum().backward()
    np.testing.assert_array_equal(seen[0], [2.0, 4.0])
    np.testing.assert_array_equal(w.grad.data, [20.0, 40.0])
    handle.remove()
    handle.remove()
    w.grad = None
    (w * 3.0).sum().backward()  # a new graph: the remaining hook still applies
    np.testing.assert_array_equal(w.grad.data, [30.0, 30.0])
    assert len(seen) == 1


def test_a_hook_on_an_intermediate_changes_what_flows_on():
    x = tg.Tensor(2.0)
    h = x * 3.0
    h.register_hook(lambda g: 0.5 * g.data)
    y = h * h  # dy/dh = 2h = 12, halved by the hook
    (g,) = tg.compute_gradients(y, [x])
    assert g == 6.0 * 3.0


def test_a_hook_on_a_function_output_runs_before_its_record():
    x = tg.Tensor(1.0)
    y = Double.apply(x)
    y.register_hook(lambda g: g * 100.0)
    (y * 1.0).backward()
    assert x.grad.data == 200.0


def test_hook_errors_are_clear():
    x = tg.Tensor(np.ones(3))
    x.register_hook(lambda g: np.ones(4))
    with pytest.raises(ValueError, match=r"hook returned a gradient of shape \(4,\)"):
        (x * 2.0).sum().backward()
    with pytest.raises(RuntimeError, match="does not require grad"):
        tg.tensor(1.0).register_hook(lambda g: g)
    y = tg.Tensor(2.0)
    (y * y).backward()
    assert y.grad.data == 4.0
