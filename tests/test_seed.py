"""The seed's surface, on tapegrad and on the pure-Python reference alike."""

import math

import numpy as np
import pytest

import tapegrad


def test_seed_example(impl):
    x = impl.Tensor.create(2.0, "x")
    y = impl.Tensor.create(5.0, "y")
    result = impl.log(x) + x * y - impl.sin(y)
    dx, dy = impl.compute_gradients(result, [x, y])
    assert abs(dx - 5.5) < 1e-12
    assert abs(dy - (2 - math.cos(5))) < 1e-12
    assert isinstance(dx, float) and isinstance(dy, float)
    assert result.data == pytest.approx(math.log(2) + 10 - math.sin(5), abs=1e-12)


def test_seed_example_through_numpy_ufuncs():
    x = tapegrad.Tensor.create(2.0, "x")
    y = tapegrad.Tensor.create(5.0, "y")
    result = np.log(x) + x * y - np.sin(y)
    assert isinstance(result, tapegrad.Tensor)
    dx, dy = tapegrad.compute_gradients(result, [x, y])
    assert abs(dx - 5.5) < 1e-12
    assert abs(dy - (2 - math.cos(5))) < 1e-12


def test_labels_counter_and_repr(impl):
    a = impl.Tensor(1.5)
    b = impl.Tensor(2.0, "b")
    c = a * b
    assert a.label == "tensor_0"
    assert b.label == "b"
    assert c.label == "tensor_2"
    assert impl.Tensor._counter == 3
    assert repr(a) == "tensor_0: 1.5"
    assert repr(c) == "tensor_2: 3.0"
    impl.clear_history()
    assert impl.Tensor._counter == 0
    assert impl.Tensor(0.0).label == "tensor_0"


def test_multiply_is_the_model_op(impl):
    a = impl.Tensor(3.0, "a")
    b = impl.Tensor(4.0, "b")
    c = impl.multiply(a, b)
    assert c.data == 12.0
    assert impl.compute_gradients(c, [a, b]) == [4.0, 3.0]
    record = impl.operation_history[-1]
    assert record.input_keys == ["a", "b"]
    assert record.output_keys == [c.label]
    assert list(record.backward_fn(2.0)) == [8.0, 6.0]


def test_operation_history_lists_every_op(impl):
    x = impl.Tensor(2.0, "x")
    y = impl.Tensor(5.0, "y")
    f = impl.log(x) + x * y - impl.sin(y)
    records = list(impl.operation_history)
    assert len(records) == len(impl.operation_history) == 5
    assert [r.input_keys for r in records] == [
        ["x"], ["x", "y"], [records[0].output_keys[0], records[1].output_keys[0]], ["y"],
        [records[2].output_keys[0], records[3].output_keys[0]],
    ]
    assert records[-1].output_keys == [f.label]
    # A built-in record's backward_fn gives its input gradients.
    assert records[1].backward_fn(1.0) == [5.0, 2.0]
    assert records[0].backward_fn(3.0) == [1.5]


def test_custom_operation_record(impl):
    a = impl.Tensor(3.0, "a")

    def cube(t):
        out = impl.Tensor(t.data**3)

        def backward(g):
            return [3 * t.data**2 * g]

        impl.operation_history.append(impl.OperationRecord([t.label], [out.label], backward))
        return out

    y = cube(a) * 2.0
    (da,) = impl.compute_gradients(y, [a])
    assert da == pytest.approx(2 * 3 * 9.0, abs=1e-12)
    assert impl.operation_history[0].input_keys == ["a"]


def test_custom_record_with_two_outputs_gets_zeros_for_the_unreached_one(impl):
    a = impl.Tensor(2.0, "a")
    seen = []

    def split(t):
        u = impl.Tensor(t.data * 10)
        v = impl.Tensor(t.data * 100)

        def backward(gu, gv):
            seen.append((gu, gv))
            return [10 * gu + 100 * gv]

        impl.operation_history.append(impl.OperationRecord([t.label], [u.label, v.label], backward))
        return u, v

    u, _ = split(a)
    (da,) = impl.compute_gradients(u * 3.0, [a])
    assert da == 30.0
    assert seen == [(3.0, 0.0)]


def test_custom_record_accepts_tensors_as_keys():
    a = tapegrad.Tensor(2.0, "same")
    b = tapegrad.Tensor(7.0, "same")  # a duplicate label: the Tensor itself disambiguates
    out = tapegrad.Tensor(a.data * 4)
    tapegrad.operation_history.append(tapegrad.OperationRecord([a], [out], lambda g: [4 * g]))
    assert tapegrad.operation_history[0].input_keys == ["same"]
    assert tapegrad.compute_gradients(out, [a, b]) == [4.0, 0.0]


def test_unreached_source_gets_zero(impl):
    x = impl.Tensor(1.0)
    z = impl.Tensor(np.array([1.0, 2.0]))
    y = x * 2.0
    gx, gz = impl.compute_gradients(y, [x, z])
    assert gx == 2.0
    assert isinstance(gz, np.ndarray) and gz.shape == (2,) and not gz.any()


def test_gradient_of_a_tensor_with_respect_to_itself_is_one(impl):
    x = impl.Tensor(4.0)
    assert impl.compute_gradients(x, [x]) == [1.0]


def test_compute_gradients_can_be_called_again(impl):
    x = impl.Tensor(3.0)
    y = x * x * x
    first = impl.compute_gradients(y, [x])
    second = impl.compute_gradients(y, [x])
    assert first == second == [27.0]


def test_non_scalar_target_is_seeded_with_ones_or_grad_output(impl):
    x = impl.Tensor(np.array([1.0, 2.0, 3.0]))
    y = x * x
    (g,) = impl.compute_gradients(y, [x])
    np.testing.assert_array_equal(g, [2.0, 4.0, 6.0])
    (g,) = impl.compute_gradients(y, [x], grad_output=np.array([1.0, 0.0, -1.0]))
    np.testing.assert_array_equal(g, [2.0, 0.0, -6.0])


def test_data_computation_records_nothing():
    """The seed's own example computes on .data: the result is a leaf with no history."""
    x = tapegrad.Tensor.create(2.0, "x")
    y = tapegrad.Tensor.create(5.0, "y")
    leaf = tapegrad.Tensor(np.log(x.data) + x.data * y.data - np.sin(y.data))
    assert len(tapegrad.operation_history) == 0
    with pytest.raises(ValueError, match=r"no recorded history.*\.data"):
        tapegrad.compute_gradients(leaf, [x, y])


def test_operation_history_indexing_and_repr():
    x = tapegrad.Tensor(2.0, "x")
    y = tapegrad.exp(x) * x
    history = tapegrad.operation_history
    assert [r.op for r in history] == ["exp", "mul"]
    assert history[-1].output_keys == [y.label]
    assert [r.op for r in history[0:2]] == ["exp", "mul"]
    assert repr(history[0]) == f"OperationRecord(exp: ['x'] -> ['{history[0].output_keys[0]}'])"
    with pytest.raises(IndexError):
        history[2]
    user = tapegrad.OperationRecord([x], [y], lambda g: [g])
    history.append(user)
    assert history[-1] is user
    assert len(history) == 3


def test_builtin_backward_fn_of_a_cleared_record_raises():
    x = tapegrad.Tensor(2.0, "x")
    _ = x * x
    record = tapegrad.operation_history[0]
    tapegrad.clear_history()
    with pytest.raises(RuntimeError, match="clear_history"):
        record.backward_fn(1.0)


def test_counter_can_be_set_like_the_seed():
    tapegrad.Tensor._counter = 10
    t = tapegrad.Tensor(1.0)
    assert t.label == "tensor_10"
    assert tapegrad.Tensor._counter == 11
    out = tapegrad.Tensor(t.data * 2)
    tapegrad.operation_history.append(tapegrad.OperationRecord(["tensor_10"], [out.label], lambda g: [2 * g]))
    assert tapegrad.compute_gradients(out, [t]) == [2.0]
