"""Pickling Tensors and compiled functions, for Dask, Ray and multiprocessing.

A pickled Tensor keeps its value, label, dtype, shape and requires_grad; it
arrives as a leaf (as a PyTorch tensor does: the graph does not travel). A
compiled function pickles as its function, argnums and fallback and traces
again where it is loaded.
"""

import multiprocessing
import pickle

import numpy as np
import pytest

import tapegrad as tg


def round_trip(obj):
    return pickle.loads(pickle.dumps(obj))


# Module-level, so that pickle finds them by name (in a spawned process too).
def weighted_square_sum(w, x):
    return np.sum((x @ w) ** 2)


weighted_square_sum_wrt_both = tg.compile(weighted_square_sum, argnums=(0, 1))


@tg.compile
def decorated_cube(x):
    return x * x * x


def value_and_grad_in_child(job):
    cf, args = job
    return cf.value_and_grad(*args), len(cf._traces)


@pytest.mark.parametrize("data, dtype, shape", [
    (2.5, np.float64, ()),
    (np.arange(6.0).reshape(2, 3), np.float64, (2, 3)),
    (np.linspace(0, 1, 4, dtype=np.float32), np.float32, (4,)),
])
def test_a_tensor_round_trips_value_label_dtype_and_shape(data, dtype, shape):
    t = tg.Tensor(data, "w")
    back = round_trip(t)
    assert type(back) is tg.Tensor and back.label == "w"
    assert back.dtype == dtype and back.shape == shape and type(back.data) is type(t.data)
    np.testing.assert_array_equal(back.data, data)
    assert back.requires_grad and back.is_leaf and back is not t


def test_a_constant_stays_a_constant():
    c = round_trip(tg.tensor([1.0, 2.0]))
    assert not c.requires_grad
    assert not (c * 2.0).requires_grad  # ops on it still record nothing


def test_a_tensor_with_history_arrives_as_a_leaf_with_its_value():
    x = tg.Tensor(np.array([1.0, 2.0]), "x")
    y = x * x
    y.label = "y"
    back = round_trip(y)
    assert not y.is_leaf and back.is_leaf and back.requires_grad and back.label == "y"
    np.testing.assert_array_equal(back.data, [1.0, 4.0])
    # The graph stayed behind: the copy's gradient is its own, not x's.
    (g,) = tg.compute_gradients(back * 3.0, [back])
    np.testing.assert_array_equal(g, [3.0, 3.0])
    with pytest.raises(ValueError, match="no recorded history"):
        tg.compute_gradients(back, [x])


def test_grad_and_hooks_do_not_travel():
    w = tg.Tensor(3.0, "w")
    w.register_hook(lambda g: g * 100.0)
    (w * w).backward()
    assert w.grad.data == 600.0
    back = round_trip(w)
    assert back.grad is None
    (back * back).backward()
    assert back.grad.data == 6.0


def test_pickled_arrays_are_private_and_read_only_like_any_tensor_value():
    back = round_trip(tg.Tensor(np.ones(3)))
    with pytest.raises(ValueError, match="read-only"):
        back.data[0] = 5.0


def test_a_compiled_function_round_trips_untraced_with_its_argnums():
    w, x = np.array([1.0, -2.0]), np.array([[1.0, 0.5], [2.0, 1.0]])
    expected = weighted_square_sum_wrt_both.value_and_grad(w, x)
    assert len(weighted_square_sum_wrt_both._traces) == 1
    back = round_trip(weighted_square_sum_wrt_both)
    assert back is not weighted_square_sum_wrt_both and back._traces == {}
    assert back._argnums == (0, 1) and not back._single and back._fallback is None
    assert back.__name__ == "weighted_square_sum"
    value, (gw, gx) = back.value_and_grad(w, x)
    assert value == expected[0]
    np.testing.assert_array_equal(gw, expected[1][0])
    np.testing.assert_array_equal(gx, expected[1][1])
    # f(w, x) = |x w|^2: dw = 2 x^T x w.
    np.testing.assert_allclose(gw, 2 * x.T @ x @ w, rtol=1e-14)


def test_single_argnums_and_fallback_survive():
    cf = tg.compile(weighted_square_sum, argnums=1, fallback="eager")
    back = round_trip(cf)
    assert back._argnums == (1,) and back._single and back._fallback == "eager"
    g = back.grad(np.array([1.0, 1.0]), np.eye(2))
    np.testing.assert_array_equal(g, [[2.0, 2.0], [2.0, 2.0]])


def test_a_decorated_compiled_function_pickles_by_its_name():
    # Its module's name `decorated_cube` is the compiled function, as for a function.
    assert round_trip(decorated_cube) is decorated_cube
    assert decorated_cube.grad(2.0) == 12.0


def test_a_compiled_lambda_says_what_cannot_be_pickled():
    with pytest.raises((pickle.PicklingError, AttributeError), match="lambda"):
        pickle.dumps(tg.compile(lambda x: x * x))


def test_tensors_and_compiled_functions_cross_to_a_spawned_process():
    w, x = np.array([0.5, 1.5]), np.array([[1.0, 2.0], [3.0, 4.0]])
    expected = weighted_square_sum_wrt_both.value_and_grad(w, x)
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        ((value, (gw, gx)), traces), ((cube, cube_grad), _) = pool.map(
            value_and_grad_in_child,
            [(weighted_square_sum_wrt_both, (w, x)), (decorated_cube, (3.0,))])
        (back,) = pool.map(round_trip, [tg.Tensor(x, "x")])
    assert traces == 1 and value == expected[0]
    assert (cube, cube_grad) == (27.0, 27.0)
    np.testing.assert_array_equal(gw, expected[1][0])
    np.testing.assert_array_equal(gx, expected[1][1])
    assert back.label == "x" and back.is_leaf
    np.testing.assert_array_equal(back.data, x)
