"""tapegrad.compile: a tape recorded once and replayed natively (Note [Compiled tapes]).

Every replay is checked against the eager tapegrad.value_and_grad on the same
values, and against closed forms where there is one: a replay must never
answer what the Python function would not have.
"""

import collections
import copy
import gc
import math
import threading
import warnings
import weakref

import numpy as np
import pytest

import tapegrad as tg

import functions


def seed_f(x, y):
    return tg.log(x) + x * y - tg.sin(y)


def assert_same(got, want):
    """Values and gradients equal (nested tuples, lists, dicts of floats and arrays)."""
    if isinstance(want, dict):
        assert isinstance(got, dict) and got.keys() == want.keys()
        for k in want:
            assert_same(got[k], want[k])
    elif isinstance(want, (tuple, list)):
        assert type(got) is type(want) and len(got) == len(want)
        for g, w in zip(got, want):
            assert_same(g, w)
    elif isinstance(want, np.ndarray):
        assert isinstance(got, np.ndarray) and got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-15)
    else:
        assert isinstance(got, float), type(got)
        assert got == pytest.approx(want, rel=1e-13, abs=1e-15)


def check_against_eager(f, calls, argnums=0, **compile_kwargs):
    """Each call's compiled value and gradient equal the eager ones; returns the compiled function."""
    cf = tg.compile(f, argnums=argnums, **compile_kwargs)
    eager = tg.value_and_grad(f, argnums)
    for args in calls:
        assert_same(cf.value_and_grad(*args), eager(*args))
        assert_same(cf(*args), eager(*args)[0])
    return cf


# ---- the seed's example, and replays on new values ----

def test_the_seed_example_compiled_gives_its_closed_form_on_every_call():
    cf = tg.compile(seed_f, argnums=(0, 1))
    for x, y in [(2.0, 5.0), (3.0, 4.0), (0.5, -1.0), (2.0, 5.0)]:
        value, (dx, dy) = cf.value_and_grad(x, y)
        assert value == pytest.approx(math.log(x) + x * y - math.sin(y), rel=1e-15)
        assert dx == pytest.approx(1 / x + y, rel=1e-15)
        assert dy == pytest.approx(x - math.cos(y), rel=1e-15)
    assert cf.trace_count == 1  # one key, no branch: traced once


def test_replays_of_array_functions_match_eager_on_fresh_values():
    rng = np.random.default_rng(0)

    def f(w, x, y):
        h = np.tanh(x @ w["w1"] + w["b1"])
        z = h @ w["w2"]
        return np.mean((z - y) ** 2) + 0.01 * np.sum(w["w1"] ** 2)

    def params():
        return {"w1": rng.normal(size=(4, 5)), "b1": rng.normal(size=5), "w2": rng.normal(size=(5, 2))}

    calls = [(params(), rng.normal(size=(8, 4)), rng.normal(size=(8, 2))) for _ in range(4)]
    cf = check_against_eager(f, calls)
    assert cf.trace_count == 1


def test_arguments_outside_argnums_are_inputs_too_not_constants_of_the_trace():
    cf = tg.compile(lambda w, x: np.sum(x @ w))
    w = np.ones(3)
    first = cf.value_and_grad(w, np.eye(3))
    second = cf.value_and_grad(w, 2.0 * np.eye(3))
    assert first[0] == 3.0 and second[0] == 6.0
    np.testing.assert_array_equal(second[1], [2.0, 2.0, 2.0])


def test_structures_tensors_keywords_and_float32_come_back_in_their_kind():
    Point = collections.namedtuple("Point", "a b")

    def f(p, scale=1.0):
        return scale * (tg.sum(p["v"] * p["v"]) + p["pt"].a * p["pt"].b + p["l"][0] ** 3)

    p = {"v": np.arange(3, dtype=np.float32), "pt": Point(2.0, 3.0), "l": [tg.Tensor(1.5)]}
    cf = tg.compile(f)
    value, g = cf.value_and_grad(p, scale=2.0)
    want_value, want_g = tg.value_and_grad(f)(p, scale=2.0)
    assert value == pytest.approx(want_value)
    assert isinstance(g["pt"], Point) and g["pt"] == (6.0, 4.0)
    assert g["v"].dtype == np.float32
    np.testing.assert_allclose(g["v"], want_g["v"])
    assert g["l"][0] == pytest.approx(2 * 3 * 1.5**2)
    assert cf.value_and_grad(p, scale=3.0)[0] == pytest.approx(1.5 * want_value)


def test_a_new_shape_dtype_or_static_value_traces_again():
    cf = tg.compile(lambda x, n: tg.sum(x ** n))
    cf.value_and_grad(np.ones(3), 2)
    cf.value_and_grad(np.ones(4), 2)
    cf.value_and_grad(np.ones(4, dtype=np.float32), 2)
    value, g = cf.value_and_grad(np.full(4, 2.0), 3)  # n is a constant of the trace: a new one
    assert value == 32.0
    np.testing.assert_array_equal(g, np.full(4, 12.0))
    assert cf.trace_count == 4


def test_decorator_forms_argnums_per_call_and_grad():
    @tg.compile
    def f(x, y):
        return x * y * y

    @tg.compile(argnums=1)
    def g(x, y):
        return x * y * y

    assert f.grad(2.0, 3.0) == 9.0
    assert g.grad(2.0, 3.0) == 12.0
    assert f.value_and_grad(2.0, 3.0, argnums=(0, 1)) == (18.0, (9.0, 12.0))
    assert f(2.0, 3.0) == 18.0
    assert f.__name__ == "f"


def test_a_value_that_does_not_depend_on_the_arguments_has_zero_gradients():
    cf = tg.compile(lambda x: tg.Tensor(3.0) * 2.0)
    with pytest.warns(UserWarning, match="does not depend on the arguments"):
        assert cf.value_and_grad(np.ones(2)) == (6.0, pytest.approx(np.zeros(2)))
    with pytest.warns(UserWarning, match="does not depend on the arguments"):
        assert cf.value_and_grad(1.0) == (6.0, 0.0)


def test_a_non_scalar_value_has_no_gradient_but_comes_back_from_a_call():
    cf = tg.compile(lambda x: x * 2.0)
    np.testing.assert_array_equal(cf(np.arange(3.0)), [0.0, 2.0, 4.0])
    with pytest.raises(TypeError, match="must return a scalar"):
        cf.value_and_grad(np.arange(3.0))


# ---- guards: no stale path ever answers ----

def test_a_piecewise_function_traces_each_branch_once_and_replays_the_right_one():
    def f(x):
        if x > 1.0:
            return x * x
        return tg.sin(x)

    cf = check_against_eager(f, [(2.0,), (0.5,), (3.0,), (-1.0,), (1.0,), (1.0000001,)])
    assert cf.trace_count == 2


def test_a_loop_whose_trip_count_depends_on_a_value_is_guarded_at_each_test():
    def f(x):
        while x < 10.0:
            x = x * 2.0
        return x

    cf = check_against_eager(f, [(1.0,), (3.0,), (1.5,), (0.1,), (1.0,), (9.0,), (11.0,)])
    assert cf.trace_count == 6  # trip counts 4, 2, 3, 7, 1 and 0


def test_a_threshold_on_the_loss_is_a_guard():
    def f(w, x):
        loss = np.sum((x @ w) ** 2)
        if loss > 10.0:  # clip the objective
            loss = 10.0 * tg.log(loss)
        return loss

    rng = np.random.default_rng(1)
    check_against_eager(f, [(rng.normal(size=3) * s, rng.normal(size=(4, 3))) for s in (0.1, 3, 0.1, 5)])


def test_a_boolean_mask_is_guarded_as_a_whole():
    def f(x):
        return tg.sum(x[x > 0] ** 2)

    cf = check_against_eager(f, [(np.array([1.0, -2.0, 3.0]),), (np.array([-1.0, 2.0, 3.0]),),
                                 (np.array([5.0, -1.0, 0.5]),)])
    assert cf.trace_count == 2


def test_max_of_tensors_and_bool_are_guards():
    check_against_eager(lambda x, y: max(x, y) * 2.0, [(1.0, 2.0), (3.0, 2.0), (1.0, 5.0)], argnums=(0, 1))
    check_against_eager(lambda x: x * 3.0 if x else x, [(1.0,), (0.0,), (2.0,)])


def test_guards_on_a_constant_and_on_two_tensors():
    limit = tg.Tensor(0.5, requires_grad=False)
    check_against_eager(lambda x, y: (x - y if x >= y else y - x) * (2.0 if x < limit else 1.0),
                        [(1.0, 2.0), (3.0, 2.0), (0.1, -4.0)], argnums=(0, 1))


# ---- escapes: a value leaving the tape raises, naming the line ----

@pytest.mark.parametrize("leak", [
    lambda x: x * float(x),
    lambda x: x * x.item(),
    lambda x: x * x.data,
    lambda x: x * x.numpy(),
    lambda x: x * len(repr(x)),
    lambda x: x * math.sqrt(abs(x)),
    lambda x: x + np.floor(x),
    lambda x: x * x.detach(),
    lambda x: x * copy.copy(x),  # read inside the standard library: the line is still this file's
])
def test_a_value_read_into_python_raises_trace_error_naming_the_line(leak):
    with pytest.raises(tg.TraceError, match=r"test_compile\.py:\d+"):
        tg.compile(leak).value_and_grad(np.float64(2.0))


def test_trace_error_is_a_runtime_error_and_the_function_still_works_eagerly():
    cf = tg.compile(lambda x: x * float(x))
    with pytest.raises(RuntimeError):
        cf.value_and_grad(2.0)
    assert tg.value_and_grad(lambda x: x * float(x))(2.0) == (4.0, 2.0)
    assert tg.Tensor(2.0).data == 2.0  # nothing is left tracing


def test_fallback_eager_warns_once_and_gives_the_eager_results():
    def f(x):
        return x * float(x)

    cf = tg.compile(f, fallback="eager")
    with pytest.warns(tg.TraceWarning, match="fallback='eager'"):
        assert cf.value_and_grad(2.0) == (4.0, 2.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cf.value_and_grad(3.0) == (9.0, 3.0)
        assert cf(4.0) == 16.0


def _under_no_grad(x):
    with tg.no_grad():
        c = x * 2.0
    return x * c


def _backward_inside(x):
    y = x * x
    y.backward()
    return y


def _clears(x):
    tg.clear_history()
    return x


def _other_tape(x):
    with tg.Tape():
        return x * x


def _updates_in_place(x):
    y = x * 1.0
    with tg.no_grad():
        y += 1.0
    return y


@pytest.mark.parametrize("f, what", [
    (_under_no_grad, "an op under no_grad"),
    (_backward_inside, "backward()"),
    (_clears, "clear_history()"),
    (_other_tape, "a tapegrad.Tape context"),
    (_updates_in_place, "no_grad"),
    (lambda x: tg.grad(x * x, x)[0] * x, "without create_graph"),
])
def test_what_would_make_a_constant_of_the_trace_raises(f, what):
    with pytest.raises(tg.TraceError, match=what):
        tg.compile(f).value_and_grad(2.0)
    # and the thread records eagerly again afterwards
    x = tg.Tensor(3.0)
    assert tg.compute_gradients(x * x, [x]) == [6.0]


def test_a_user_operation_record_raises_naming_it():
    def f(x):
        out = tg.Tensor((x.shape and 0.0) or 0.0)
        tg.operation_history.append(tg.OperationRecord([x], [out], lambda g: [g]))
        return x * out

    with pytest.raises(tg.TraceError, match="an OperationRecord appended"):
        tg.compile(f).value_and_grad(2.0)


def test_gradients_taken_with_create_graph_inside_f_replay():
    def f(x):
        (g,) = tg.grad(x ** 3, x, create_graph=True)
        return g * x  # 3 x^3: its derivative 9 x^2

    cf = check_against_eager(f, [(2.0,), (1.5,), (-1.0,)])
    assert cf.value_and_grad(2.0) == (24.0, 36.0)


def test_a_compiled_function_called_inside_another_joins_its_trace():
    inner = tg.compile(lambda x: x * x)
    outer = check_against_eager(lambda x: inner(x) * 3.0, [(2.0,), (5.0,)])
    assert outer.trace_count == 1 and inner.trace_count == 0


# ---- threads, reentrancy, memory ----

def test_calls_from_several_threads_at_once_each_get_their_own_answer():
    cf = tg.compile(lambda w, x: np.sum(np.tanh(x @ w) ** 2))
    rng = np.random.default_rng(2)
    cases = [(rng.normal(size=(30, 20)), rng.normal(size=(40, 30))) for _ in range(8)]
    want = [tg.value_and_grad(lambda w, x: np.sum(np.tanh(x @ w) ** 2))(*c) for c in cases]
    errors = []

    def worker(k):
        try:
            for _ in range(20):
                assert_same(cf.value_and_grad(*cases[k]), want[k])
        except BaseException as e:  # reported on the main thread
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]


def test_a_hook_that_calls_the_same_compiled_function_gets_a_trace_of_its_own():
    seen, called = [], []
    cf = None

    def hook(g):
        if not called:  # once: the inner call's own backward runs this hook too
            called.append(True)
            seen.append(cf.value_and_grad(3.0))

    def f(x):
        y = x * x
        y.register_hook(hook)
        return y * 2.0

    cf = tg.compile(f)
    assert cf.value_and_grad(2.0) == (8.0, 8.0)
    assert cf.value_and_grad(4.0) == (32.0, 16.0)
    assert seen == [(18.0, 12.0)]
    assert cf.trace_count == 2  # the first was busy when the hook called


def test_a_compiled_function_frees_its_traces_and_the_arrays_they_hold():
    import tracemalloc

    x = np.ones(100_000)
    held = weakref.ref(x)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    cf = tg.compile(lambda x: tg.sum(tg.sin(x) * x))
    cf.value_and_grad(x)
    with_traces = tracemalloc.get_traced_memory()[0] - before
    del x
    gc.collect()
    assert held() is not None  # the trace's input row reads the last argument in place
    del cf
    gc.collect()
    assert held() is None
    left = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert with_traces > 800_000  # at least sin(x), 800 kB
    assert left < 64 * 1024, left


def test_memory_stays_flat_over_many_calls():
    import tracemalloc

    cf = tg.compile(lambda w, x: np.sum(np.tanh(x @ w) ** 2) + tg.sum(w * w))
    w, x = np.ones((20, 5)), np.ones((10, 20))
    tracemalloc.start()
    for _ in range(2000):  # numpy's and Python's caches fill
        cf.value_and_grad(w, x)
    first = tracemalloc.get_traced_memory()[0]
    for _ in range(8000):
        cf.value_and_grad(w, x)
    grown = tracemalloc.get_traced_memory()[0] - first
    tracemalloc.stop()
    assert grown < 16 * 1024, grown


# ---- bad input ----

def test_bad_arguments_get_clear_errors():
    with pytest.raises(TypeError, match="callable"):
        tg.compile(3)
    with pytest.raises(ValueError, match="fallback"):
        tg.compile(lambda x: x, fallback="lazy")
    cf = tg.compile(lambda x, s: x * 2.0)
    with pytest.raises(TypeError, match="argument 0 is a str"):
        cf.value_and_grad("a", 1)
    with pytest.raises(TypeError, match="neither a value to trace"):
        cf.value_and_grad(1.0, [{1, 2}])
    with pytest.raises(ValueError, match="argnums names argument 3"):
        cf.value_and_grad(1.0, 2.0, argnums=3)


def test_the_trace_object_validates_its_arguments():
    trace = tg._core.Trace()
    with pytest.raises(ValueError, match="not finished"):
        trace.replay([1.0])
    trace.push()
    x = tg.Tensor(2.0)
    y = x * x
    trace.pop()
    trace.finish([x], y)
    assert trace.replay([3.0], [0]) == (9.0, [6.0])
    with pytest.raises(ValueError, match="1 inputs"):
        trace.replay([1.0, 2.0])
    with pytest.raises(ValueError, match="must be a float"):
        trace.replay([np.ones(2)])
    with pytest.raises(ValueError, match="wrt names input 4"):
        trace.replay([1.0], [4])
    assert trace.replay([4.0]) == (16.0, None)


# ---- drivers: torch.autograd.functional's, on compiled tapes ----

def _driver_cases():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=3), rng.normal(size=(2, 3))

    def scalar(x):
        return tg.sum(tg.tanh(x) ** 2 * tg.exp(0.5 * x))

    def vector(x):
        return tg.concatenate([tg.sin(x) * x, x ** 3, tg.cumsum(x)])

    def two(a, b):
        return tg.sum(tg.log1p((b @ a) ** 2)) + tg.sum(a * a * a)

    def two_torch(a, b):
        return (b @ a).pow(2).log1p().sum() + (a * a * a).sum()

    return x, y, scalar, vector, two, two_torch


def _np(t):
    if isinstance(t, tuple):
        return tuple(_np(u) for u in t)
    return t.detach().numpy()


def test_drivers_match_torch_autograd_functional():
    torch = pytest.importorskip("torch")
    F = torch.autograd.functional
    x, y, scalar, vector, two, two_torch = _driver_cases()

    def scalar_t(x):
        return (torch.tanh(x) ** 2 * torch.exp(0.5 * x)).sum()

    def vector_t(x):
        return torch.cat([torch.sin(x) * x, x ** 3, torch.cumsum(x, 0)])

    xt, yt = torch.tensor(x), torch.tensor(y)
    v3, v9 = np.arange(1.0, 4.0), np.arange(1.0, 10.0)
    cs, cv, c2 = tg.compile(scalar), tg.compile(vector), tg.compile(two)
    for _ in range(2):  # the second call replays every driver's tapes
        np.testing.assert_allclose(cv.vjp(x, v9)[1], _np(F.vjp(vector_t, xt, torch.tensor(v9))[1]))
        np.testing.assert_allclose(cv.jvp(x, v3)[1], _np(F.jvp(vector_t, xt, torch.tensor(v3))[1]))
        np.testing.assert_allclose(cv.jacobian(x), _np(F.jacobian(vector_t, xt)))
        np.testing.assert_allclose(cs.jacobian(x), _np(F.jacobian(scalar_t, xt)))
        np.testing.assert_allclose(cs.hvp(x, v3)[1], _np(F.hvp(scalar_t, xt, torch.tensor(v3))[1]))
        np.testing.assert_allclose(cs.hessian(x), _np(F.hessian(scalar_t, xt)))
        value, hv = c2.hvp((x, y), (v3, np.ones_like(y)))
        want = F.hvp(two_torch, (xt, yt), (torch.tensor(v3), torch.ones_like(yt)))
        assert value == pytest.approx(float(want[0]))
        for got, w in zip(hv, _np(want[1])):
            np.testing.assert_allclose(got, w)
        for got_row, want_row in zip(c2.hessian((x, y)), _np(F.hessian(two_torch, (xt, yt)))):
            for got, w in zip(got_row, want_row):
                np.testing.assert_allclose(got, w, atol=1e-12)
        x, y = x + 0.25, y - 0.5
        xt, yt = torch.tensor(x), torch.tensor(y)
    assert cs.trace_count == 1 and cv.trace_count == 1 and c2.trace_count == 1


def test_drivers_match_the_eager_helpers_and_closed_forms():
    x = np.array([0.5, -1.5, 2.0])
    cube = tg.compile(lambda x: tg.sum(x ** 3))
    np.testing.assert_allclose(cube.hessian(x), np.diag(6 * x))
    assert cube.hvp(x, np.ones(3)) == (pytest.approx(np.sum(x ** 3)), pytest.approx(6 * x))
    assert cube.hvp(2.0) == (8.0, 12.0)  # v omitted: one input of one element
    np.testing.assert_allclose(cube.vjp(x)[1], 3 * x ** 2)  # v omitted: a scalar output
    eager = tg.jacobian(lambda t: t * tg.sin(t), tg.Tensor(x)).data
    np.testing.assert_allclose(tg.compile(lambda t: t * tg.sin(t)).jacobian(x), eager)
    assert tg.compile(lambda t: t ** 3).jacobian(2.0) == 12.0
    assert tg.compile(lambda t: t ** 3).jvp(2.0, 1.0) == (8.0, 12.0)
    # forward mode (many more outputs than inputs) and reverse mode agree
    many = tg.compile(lambda t: tg.concatenate([t * k for k in range(1, 9)]))
    np.testing.assert_allclose(many.jacobian(np.array([1.0, 2.0])),
                               np.concatenate([k * np.eye(2) for k in range(1, 9)]))


def test_drivers_check_their_vectors():
    cf = tg.compile(lambda x: x * x)
    with pytest.raises(ValueError, match="shapes"):
        cf.jvp(np.ones(3), np.ones(2))
    with pytest.raises(ValueError, match="one v per input"):
        tg.compile(lambda a, b: a * b).jvp((1.0, 2.0), (1.0,))
    with pytest.raises(ValueError, match="can be omitted only"):
        tg.compile(lambda x: tg.sum(x * x)).hvp(np.ones(2))
    with pytest.raises(ValueError, match="seed must have the output's shape"):
        cf.vjp(np.ones(3), np.ones(2))


# ---- tapegrad.Function: its forward and backward are callbacks of the replay ----

class _Clipped(tg.Function):
    """x -> x**3 where x < 1, else 3x - 2: the forward branches on values, in Python."""

    calls = 0

    @staticmethod
    def forward(ctx, x):
        _Clipped.calls += 1
        value = x.data
        ctx.save_for_backward(x)
        return np.where(value < 1.0, value ** 3, 3.0 * value - 2.0)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * np.where(x.data < 1.0, 3.0 * x.data ** 2, 3.0)


def test_a_function_runs_its_forward_and_backward_on_every_replay():
    def f(x):
        return tg.sum(tg.sin(_Clipped.apply(x * 2.0)))

    cf = tg.compile(f)
    for x in [np.array([0.1, 0.2]), np.array([0.3, 0.9]), np.array([-1.0, 2.0])]:
        before = _Clipped.calls
        value, g = cf.value_and_grad(x)
        assert _Clipped.calls > before  # the forward ran again, on these values
        want_value, want_g = tg.value_and_grad(f)(x)
        assert value == pytest.approx(want_value, rel=1e-14)
        np.testing.assert_allclose(g, want_g, rtol=1e-14)
        y = 2.0 * x  # closed form: d/dx sin(c(2x)) = cos(c(2x)) c'(2x) 2
        c = np.where(y < 1.0, y ** 3, 3 * y - 2)
        np.testing.assert_allclose(g, np.cos(c) * np.where(y < 1.0, 3 * y ** 2, 3.0) * 2, rtol=1e-14)
    assert cf.trace_count == 1  # its branches are its own Python, run on every replay


def test_a_function_of_a_scalar_replays():
    cf = tg.compile(lambda x: functions.Cube.apply(x) * x)  # x^4
    assert cf.value_and_grad(2.0) == (16.0, 32.0)
    assert cf.value_and_grad(3.0) == (81.0, 108.0)
    assert cf.trace_count == 1
