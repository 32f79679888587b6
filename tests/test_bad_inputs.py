"""The bad-input catalogue: every kind of bad input we know of.

Each case names the exception it must raise and a pattern its message must
match (the message names the problem and, where it can, what to do). After
each one a fresh gradient computation on the same thread must still work.
Cases that could crash the interpreter (huge graphs, deep chains, an
interrupt inside a backward) run in a subprocess, so a segfault fails the
test instead of killing the run.
"""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import tapegrad as tg

from functions import WrongCount


def _matrix(*shape):
    return tg.Tensor(np.ones(shape))


def _record(backward_fn, out_shape=()):
    """A seed-style record from a to out with this backward_fn; returns (a, out)."""
    a = _matrix(2, 3) if out_shape else tg.Tensor(2.0)
    out = tg.Tensor(np.ones(out_shape) if out_shape else 4.0)
    tg.operation_history.append(tg.OperationRecord([a], [out], backward_fn))
    return a, out


def _through_record(backward_fn, out_shape=()):
    a, out = _record(backward_fn, out_shape)
    tg.compute_gradients(out * 2.0, [a])


def _backward_twice():
    x = tg.Tensor(2.0)
    y = x * x
    y.backward()
    y.backward()


def _through_cleared():
    x = tg.Tensor(2.0)
    y = x * x
    tg.clear_history()
    tg.compute_gradients(y * 1.0, [x])


def _create_graph_through_record():
    a, out = _record(lambda g: [2.0 * g])
    tg.grad(out * 2.0, a, create_graph=True)


def _hook_wrong_shape():
    x = _matrix(3)
    x.register_hook(lambda g: np.ones(4))
    x.sum().backward()


def _raise(exc):
    raise exc


# name -> (the bad call, exception type, pattern its message must match)
CASES = {
    # wrong types
    "data_str": (lambda: tg.Tensor("abc"), TypeError, "got str"),
    "data_none": (lambda: tg.Tensor(None), TypeError, "got NoneType"),
    "data_object": (lambda: tg.Tensor(object()), TypeError, "dtype object"),
    "data_complex": (lambda: tg.Tensor(1 + 2j), TypeError, "complex"),
    "data_complex_array": (lambda: tg.Tensor(np.array([1j])), TypeError, "complex128"),
    "data_strings_array": (lambda: tg.Tensor(np.array(["a"])), TypeError, "dtype <U1"),
    "operand_str": (lambda: _matrix(3) * "a", TypeError, "mul: .*got str"),
    "operand_none": (lambda: tg.Tensor(1.0) + None, TypeError, "add: .*got NoneType"),
    "operand_complex": (lambda: tg.Tensor(1.0) - 2j, TypeError, "sub: .*complex"),
    "operand_object": (lambda: tg.Tensor(1.0) * object(), TypeError, "object"),
    "unary_str": (lambda: tg.exp("a"), TypeError, "exp: .*got str"),
    "array_op_str": (lambda: tg.sum("abc"), TypeError, "sum"),
    "label_not_str": (lambda: tg.Tensor(1.0, label=3), TypeError, "label"),
    # shapes
    **{f"broadcast_{name}": (lambda op=op: op(_matrix(3), _matrix(4)), ValueError,
                             rf"{name}: shapes \(3,\) and \(4,\) cannot be broadcast")
       for name, op in [("add", lambda a, b: a + b), ("sub", lambda a, b: a - b),
                        ("mul", lambda a, b: a * b), ("div", lambda a, b: a / b),
                        ("pow", lambda a, b: a ** b), ("maximum", tg.maximum),
                        ("minimum", tg.minimum)]},
    "matmul_inner": (lambda: _matrix(2, 3) @ _matrix(4, 5), ValueError,
                     r"matmul: shapes \(2, 3\) and \(4, 5\) do not align"),
    "concatenate_shapes": (lambda: tg.concatenate([_matrix(2, 3), _matrix(3, 4)]), ValueError,
                           "concatenate: .*dimension 1"),
    "reshape_size": (lambda: _matrix(2, 3).reshape(4), ValueError, "reshape: .*size 6"),
    # axes and indices
    "axis_out_of_range": (lambda: _matrix(2, 3).sum(axis=2), ValueError, "sum: axis 2"),
    "negative_axis_out_of_range": (lambda: _matrix(2, 3).max(axis=-3), ValueError, "axis -3"),
    "softmax_axis": (lambda: tg.softmax(_matrix(3), axis=1), ValueError, "softmax: axis 1"),
    "index_out_of_range": (lambda: _matrix(3)[5], IndexError, "getitem: index 5"),
    "index_array_out_of_range": (lambda: _matrix(3)[np.array([0, 7])], IndexError, "index 7"),
    # custom backwards
    "backward_fn_wrong_count": (lambda: _through_record(lambda g: [g, g]), ValueError,
                                "returned 2 gradients for 1 inputs"),
    "backward_fn_wrong_shape": (lambda: _through_record(lambda g: [np.ones(4)], (2, 3)),
                                ValueError, r"shape \(4,\) for input 0.*\(2, 3\)"),
    "backward_fn_wrong_dtype": (lambda: _through_record(lambda g: [np.array(["x"])]), TypeError,
                                "real number or a float array"),
    "backward_fn_complex": (lambda: _through_record(lambda g: [1j]), TypeError,
                            "real number or a float array"),
    "backward_fn_none_not_list": (lambda: _through_record(lambda g: None), TypeError,
                                  "must return a list"),
    "backward_fn_raises": (lambda: _through_record(lambda g: _raise(ArithmeticError("mine"))),
                           ArithmeticError, "mine"),
    "function_wrong_count": (lambda: WrongCount.apply(tg.Tensor(1.0)).backward(), ValueError,
                             "returned 2 gradients for the 1 arguments"),
    "hook_wrong_shape": (_hook_wrong_shape, ValueError, r"register_hook: .*shape \(4,\)"),
    # traversals
    "backward_twice": (_backward_twice, RuntimeError, "retain_graph=True"),
    "through_cleared_records": (_through_cleared, RuntimeError, "history"),
    "non_scalar_backward": (lambda: _matrix(3).__mul__(2.0).backward(), RuntimeError,
                            r"implicitly created only for scalar outputs.*\(3,\)"),
    "grad_output_shape": (lambda: tg.grad(_matrix(3).sum(), [tg.Tensor(1.0)],
                                          grad_outputs=np.ones(3)), ValueError, "grad_outputs"),
    "unused_input": (lambda: tg.grad(tg.Tensor(1.0) * 2.0, [tg.Tensor(3.0)]), RuntimeError,
                     "allow_unused=True"),
    "create_graph_through_record": (_create_graph_through_record, RuntimeError,
                                    "cannot be differentiated again"),
    # eig of a general matrix is complex: not differentiated (np.linalg.inv now is).
    "not_differentiable_numpy_function": (lambda: np.linalg.eig(_matrix(2, 2)), TypeError,
                                          "eig"),
}


def _gradient_still_works():
    x = tg.Tensor(np.array([0.5, 2.0]))
    (g,) = tg.grad((tg.sin(x) * x).sum(), x)
    np.testing.assert_allclose(g.data, np.cos(x.data) * x.data + np.sin(x.data))
    s = tg.Tensor(3.0)
    assert tg.compute_gradients(s * s, [s]) == [6.0]


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_raises_a_clear_error(name):
    call, kind, pattern = CASES[name]
    with pytest.raises(kind, match=pattern):
        call()
    _gradient_still_works()


def test_a_none_entry_means_no_gradient():
    a, out = _record(lambda g: [None])
    b = tg.Tensor(1.0)
    assert tg.compute_gradients(out * b, [a, b]) == [0.0, 4.0]
    _gradient_still_works()


def test_nan_and_inf_propagate_as_values():
    x = tg.Tensor(np.array([0.0, 1.0, np.inf]))
    with np.errstate(divide="ignore", invalid="ignore"):  # the forward warns as numpy does
        y = (tg.log(x) * x).sum()  # log(0) = -inf, 0 * -inf = nan
    (g,) = tg.grad(y, x)  # the backward neither warns nor raises
    assert np.isnan(y.data)
    # 1 + log(x), computed as x * (1/x) + log(x): 0 * inf at both ends is NaN, as in PyTorch.
    assert np.isnan(g.data[0]) and g.data[1] == pytest.approx(1.0) and np.isnan(g.data[2])
    n = tg.Tensor(float("nan"))
    assert np.isnan(tg.compute_gradients(n * 2.0 + tg.exp(n), [n])[0])
    # The sweep silences numpy while it runs (Note [Quiet numpy]) and restores the
    # caller's settings after, even strict ones.
    m = tg.Tensor(np.array([np.inf, 1.0]))
    with np.errstate(invalid="ignore"):
        y = tg.logsumexp(m)  # exp(inf - inf) in the backward: NaN
    with np.errstate(all="raise"):
        (gm,) = tg.grad(y, m)
        assert np.geterr()["invalid"] == "raise"
    assert np.isnan(gm.data[0])
    _gradient_still_works()


def _run_isolated(code, timeout=600):
    """Runs code in a fresh interpreter; a crash is a failed test, not a dead run."""
    driver = textwrap.dedent(code) + "\n" + textwrap.dedent("""
        import numpy as _np
        _x = tg.Tensor(_np.array([0.5, 2.0]))
        (_g,) = tg.grad((tg.sin(_x) * _x).sum(), _x)
        assert _np.allclose(_g.data, _np.cos(_x.data) * _x.data + _np.sin(_x.data))
        print("still works")
    """)
    result = subprocess.run([sys.executable, "-c", driver], capture_output=True, text=True,
                            timeout=timeout, check=False)
    assert result.returncode == 0, f"exit {result.returncode}:\n{result.stderr[-3000:]}"
    assert result.stdout.strip().endswith("still works")
    return result.stdout


def test_keyboard_interrupt_inside_a_custom_backward():
    _run_isolated("""
        import tapegrad as tg

        def interrupt(g):
            raise KeyboardInterrupt

        a = tg.Tensor(2.0)
        out = tg.Tensor(4.0)
        tg.operation_history.append(tg.OperationRecord([a], [out], interrupt))
        try:
            tg.compute_gradients(out * 2.0, [a])
        except KeyboardInterrupt:
            print("interrupted")
        else:
            raise SystemExit("no KeyboardInterrupt")
        tg.clear_history()
    """)


def test_keyboard_interrupt_inside_a_function_backward_under_create_graph():
    out = _run_isolated("""
        import tapegrad as tg

        class Stop(tg.Function):
            @staticmethod
            def forward(ctx, x):
                return x * 2.0

            @staticmethod
            def backward(ctx, g):
                raise KeyboardInterrupt

        x = tg.Tensor(1.0)
        try:
            tg.grad(Stop.apply(x) * x, x, create_graph=True)
        except KeyboardInterrupt:
            print("interrupted")
        assert tg.is_grad_enabled()
    """)
    assert "interrupted" in out


def _free_memory_bytes():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def test_huge_scalar_graph_of_ten_million_ops():
    if _free_memory_bytes() < 3 * 2**30:
        pytest.skip("needs 3 GB of free memory")
    out = _run_isolated("""
        import tapegrad as tg
        x = tg.Tensor(1.0)
        acc = x
        for _ in range(5_000_000):  # two ops per iteration: 1e7 ops
            acc = acc * 0.9999999 + x * 1e-7
        (g,) = tg.grad(acc, x)
        want = 0.9999999 ** 5_000_000 + 1e-7 * sum(0.9999999 ** k for k in range(5_000_000))
        assert abs(g.data - want) < 1e-6 * want, (g.data, want)
        print("ops", tg._core.tape_rows())
    """)
    assert "ops" in out


def test_chain_of_one_hundred_thousand_array_ops():
    _run_isolated("""
        import numpy as np
        import tapegrad as tg
        x = tg.Tensor(np.full(4, 0.5))
        y = x
        for _ in range(100_000):
            y = tg.tanh(y) * 1.00001
        (g,) = tg.grad(y.sum(), x)
        # The same chain's derivative, step by step in numpy.
        v, d = np.full(4, 0.5), np.ones(4)
        for _ in range(100_000):
            t = np.tanh(v)
            d, v = d * (1 - t * t) * 1.00001, t * 1.00001
        assert np.allclose(g.data, d, rtol=1e-9), (g.data, d)
    """)


def test_compute_gradients_given_a_tensor_instead_of_a_list():
    """compute_gradients(y, x) with a Tensor x iterated x (recording x[i]) and returned zeros."""
    x = tg.Tensor(np.array([1.0, 2.0, 3.0]))
    y = tg.sum(x * x)
    with pytest.raises(TypeError, match=r"sources must be a list of Tensors, got a Tensor; pass \[x\]"):
        tg.compute_gradients(y, x)
    np.testing.assert_allclose(tg.compute_gradients(y, [x])[0], [2.0, 4.0, 6.0])


def test_freeing_a_long_chain_of_grads_does_not_overflow_the_c_stack():
    """Freeing a 300,000-long chain of .grad recursed in C and crashed: CPython's trashcan frees it."""
    code = textwrap.dedent("""
        import tapegrad as tg
        head = tg.Tensor(0.0)
        cur = head
        for i in range(300_000):
            nxt = tg.Tensor(float(i))
            cur.grad = nxt
            cur = nxt
        del cur
        del head
        print("freed")
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                            check=False, env=dict(os.environ))
    assert result.returncode == 0, f"exit {result.returncode}: {result.stderr[-2000:]}"
    assert "freed" in result.stdout


def test_an_empty_read_only_gradient_is_not_taken_for_a_uniform_one():
    """arrays.cpp is_uniform: numpy gives an empty array all-zero strides; its one
    'value' was read past the allocation (ASan: heap-buffer-overflow)."""
    x = tg.Tensor(np.zeros((9, 0)))
    g = np.zeros((9, 0))
    g.flags.writeable = False
    (gx,) = tg.grad(x * 2.0, [x], grad_outputs=tg.Tensor(g))
    assert gx.shape == (9, 0)
