"""Bad input: a clear exception that names the problem, and a tape that still works."""

import numpy as np
import pytest

import tapegrad


def _still_works():
    x = tapegrad.Tensor(2.0)
    assert tapegrad.compute_gradients(x * x + 1.0, [x]) == [4.0]


@pytest.mark.parametrize("data, match", [
    ("abc", "data must be a real number or a numeric array, got str"),
    (None, "got NoneType"),
    (1 + 2j, "complex"),
    (np.array([1 + 1j]), "dtype complex128 cannot be differentiated"),
    (np.array(["a"]), "dtype <U1 cannot be differentiated"),
    (np.array([object()]), "dtype object cannot be differentiated"),
    (object(), "dtype object cannot be differentiated"),
])
def test_non_numeric_data(data, match):
    with pytest.raises(TypeError, match=match):
        tapegrad.Tensor(data)
    _still_works()


def test_bad_label():
    with pytest.raises(TypeError, match="label must be a str"):
        tapegrad.Tensor(1.0, label=3)


def test_unsupported_operand():
    x = tapegrad.Tensor(1.0)
    with pytest.raises(TypeError, match="mul: expected a Tensor, a number or a numeric array, got NoneType"):
        x * None
    with pytest.raises(TypeError, match=r"unsupported operand type\(s\) for \*: 'Tensor' and 'object'"):
        x * object()  # other types may define the reflected operator: Python's message
    with pytest.raises(TypeError, match="log: expected a Tensor, a number or a numeric array, got str"):
        tapegrad.log("a")
    with pytest.raises(TypeError, match="mul: data of dtype complex128"):
        x * np.array([1j])
    _still_works()


def test_mismatched_shapes():
    a = tapegrad.Tensor(np.ones(3))
    b = tapegrad.Tensor(np.ones(4))
    with pytest.raises(ValueError, match=r"add: shapes \(3,\) and \(4,\) cannot be broadcast.*numpy's rule"):
        a + b
    with pytest.raises(ValueError, match=r"mul: shapes \(3,\) and \(2, 2\)"):
        a * np.ones((2, 2))
    _still_works()


def test_custom_backward_wrong_count():
    a = tapegrad.Tensor(1.0, "a")
    out = tapegrad.Tensor(2.0, "out")
    tapegrad.operation_history.append(tapegrad.OperationRecord(["a"], ["out"], lambda g: [g, g]))
    with pytest.raises(ValueError, match=r"returned 2 gradients for 1 inputs"):
        tapegrad.compute_gradients(out, [a])
    _still_works()


def test_custom_backward_wrong_shape_and_type():
    a = tapegrad.Tensor(np.ones(3), "a")
    out = tapegrad.Tensor(np.ones(3), "out")
    tapegrad.operation_history.append(tapegrad.OperationRecord([a], [out], lambda g: [np.ones(2)]))
    with pytest.raises(ValueError, match=r"shape \(2,\) for input 0, whose shape is \(3,\)"):
        tapegrad.compute_gradients(out, [a])
    tapegrad.clear_history()
    a = tapegrad.Tensor(1.0, "a")
    out = tapegrad.Tensor(1.0, "out")
    tapegrad.operation_history.append(tapegrad.OperationRecord([a], [out], lambda g: g))
    with pytest.raises(TypeError, match="must return a list with one gradient per input"):
        tapegrad.compute_gradients(out, [a])
    tapegrad.clear_history()
    a = tapegrad.Tensor(1.0, "a")
    out = tapegrad.Tensor(1.0, "out")
    tapegrad.operation_history.append(tapegrad.OperationRecord([a], [out], lambda g: ["x"]))
    with pytest.raises(TypeError, match="returned str for input 0"):
        tapegrad.compute_gradients(out, [a])
    _still_works()


def test_custom_backward_none_means_no_gradient():
    a = tapegrad.Tensor(1.0, "a")
    b = tapegrad.Tensor(1.0, "b")
    out = tapegrad.Tensor(2.0, "out")
    tapegrad.operation_history.append(tapegrad.OperationRecord([a, b], [out], lambda g: [None, 5 * g]))
    assert tapegrad.compute_gradients(out, [a, b]) == [0.0, 5.0]


def test_exception_inside_custom_backward_propagates():
    a = tapegrad.Tensor(1.0, "a")
    out = tapegrad.Tensor(2.0, "out")

    def boom(g):
        raise ZeroDivisionError("inside backward")

    tapegrad.operation_history.append(tapegrad.OperationRecord([a], [out], boom))
    y = out * 3.0
    with pytest.raises(ZeroDivisionError, match="inside backward"):
        tapegrad.compute_gradients(y, [a])
    # The history is intact and the failure repeats rather than giving a wrong gradient.
    assert len(tapegrad.operation_history) == 2
    with pytest.raises(ZeroDivisionError):
        tapegrad.compute_gradients(y, [a])
    _still_works()


def test_unknown_label_in_custom_record():
    with pytest.raises(ValueError, match="no tensor labelled 'ghost'"):
        tapegrad.operation_history.append(tapegrad.OperationRecord(["ghost"], ["ghost"], lambda g: [g]))
    _still_works()


def test_bad_sources_and_grad_output():
    x = tapegrad.Tensor(np.ones(2))
    y = x * 2.0
    with pytest.raises(TypeError, match=r"sources\[0\] is float"):
        tapegrad.compute_gradients(y, [1.0])
    with pytest.raises(TypeError, match="target must be a Tensor"):
        tapegrad.compute_gradients(1.0, [x])
    with pytest.raises(ValueError, match=r"grad_output has shape \(3,\) but the target has shape \(2,\)"):
        tapegrad.compute_gradients(y, [x], grad_output=np.ones(3))
    _still_works()


def test_clear_history_inside_backward_is_refused():
    a = tapegrad.Tensor(1.0, "a")
    out = tapegrad.Tensor(2.0, "out")

    def clears(g):
        tapegrad.clear_history()
        return [g]

    tapegrad.operation_history.append(tapegrad.OperationRecord([a], [out], clears))
    with pytest.raises(RuntimeError, match=r"clear_history.. cannot run while gradients"):
        tapegrad.compute_gradients(out, [a])
    _still_works()


def test_nested_compute_gradients_inside_backward():
    a = tapegrad.Tensor(3.0, "a")
    out = tapegrad.Tensor(9.0, "out")

    def backward(g):
        inner = a * a  # a nested sweep gives d(a*a)/da = 6
        (d,) = tapegrad.compute_gradients(inner, [a])
        return [d * g]

    tapegrad.operation_history.append(tapegrad.OperationRecord([a], [out], backward))
    assert tapegrad.compute_gradients(out * 2.0, [a]) == [12.0]


def test_numpy_function_without_gradient_is_refused():
    x = tapegrad.Tensor(np.ones(3))
    with pytest.raises(TypeError, match=r"cannot differentiate numpy.fft"):
        np.fft.fft(x)
    with pytest.raises(TypeError, match=r"numpy.concatenate on Tensors does not take .*'dtype'"):
        np.concatenate([x, x], dtype=np.float32)
    with pytest.raises(TypeError, match=r"sum: dtype=int64 would truncate"):
        np.sum(x, dtype=np.int64)
    with pytest.raises(TypeError, match=r"cannot differentiate numpy.spacing"):
        np.spacing(x)
    with pytest.raises(TypeError, match="requires grad"):
        np.asarray(x)


def test_nan_and_inf_propagate_as_values():
    x = tapegrad.Tensor(0.0)
    y = tapegrad.log(x) * 2.0
    assert y.data == -np.inf
    (g,) = tapegrad.compute_gradients(y, [x])
    assert g == np.inf
    z = tapegrad.sqrt(tapegrad.Tensor(-1.0))
    assert np.isnan(z.data)


# ---- refusals name the real function and say how to get a gradient anyway ----


def test_np_array_of_tensors_points_to_stack_not_to_data():
    t0, t1 = tapegrad.Tensor(1.0), tapegrad.Tensor(2.0)
    with pytest.raises(TypeError) as info:
        np.array([t0, t1])
    text = str(info.value)
    assert "np.stack" in text and "tapegrad.stack" in text and "tapegrad.array" in text
    assert ".data" not in text  # it would drop the gradient silently
    assert "t.detach().numpy()" in text  # dropping it says so
    stacked = np.stack([t0, t1])  # what the message says works, and records
    (g,) = tapegrad.grad((stacked * np.array([3.0, 4.0])).sum(), [t1])
    assert float(g.data) == 4.0


@pytest.mark.parametrize("call, name", [
    (lambda x: np.linalg.eig(x), "numpy.linalg.eig"),  # complex: not differentiated
    (lambda x: np.linalg.lstsq(x, x), "numpy.linalg.lstsq"),
    (lambda x: np.gradient(x), "numpy.gradient"),
    (lambda x: np.fft.fft(x), "numpy.fft.fft"),
    (lambda x: np.spacing(x), "numpy.spacing"),
    (lambda x: np.add.reduce(x), "numpy.add.reduce"),
])
def test_refusals_name_the_real_function_and_the_way_out(call, name):
    x = tapegrad.Tensor(np.eye(2) + 1.0)
    with pytest.raises(TypeError) as info:
        call(x)
    text = str(info.value)
    assert f"differentiate {name} on a Tensor" in text
    assert "tapegrad.Function" in text and "help(tapegrad.Function)" in text
    assert "'Custom ops'" in text and "'API so far'" in text


def test_the_readme_has_the_section_the_refusals_point_to():
    from pathlib import Path
    readme = Path(__file__).parents[1] / "README.md"
    if not readme.exists():
        pytest.skip("no source checkout")
    text = readme.read_text()
    api = text[text.index("## API so far"):]
    assert "- Custom ops: `class MyOp(tapegrad.Function)`" in api[:api.index("\n## ", 1)]


def test_a_scipy_ufunc_refusal_names_scipy_special():
    special = pytest.importorskip("scipy.special")
    ufunc = next((u for u in (special.ndtr, special.erfcx, special.wofz)
                  if tapegrad.catalogue.ufunc_implementation(u) is None), None)
    if ufunc is None:
        pytest.skip("every candidate ufunc is differentiable now")
    with pytest.raises(TypeError, match=rf"differentiate scipy\.special\.{ufunc.__name__} on"):
        ufunc(tapegrad.Tensor([0.5, 1.0]))


def test_public_name_of_numpy_and_scipy_callables():
    from tapegrad.numpy_interop import public_name
    assert public_name(np.linalg.solve) == "numpy.linalg.solve"
    assert public_name(np.sum) == "numpy.sum"
    assert public_name(np.sin) == "numpy.sin"
    special = pytest.importorskip("scipy.special")
    assert public_name(special.ndtr) == "scipy.special.ndtr"
    assert public_name(special.logsumexp) == "scipy.special.logsumexp"
