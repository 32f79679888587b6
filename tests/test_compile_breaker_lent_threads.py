"""Breaker tests for lent buffers (Note [Lent buffers]) and fused threads (Note [Fused threads]).

A compiled replay lends its results: views of pooled arrays whose memory a later
call writes again once nothing can see it. Every way Python has of keeping a
result must keep its memory. The two bugs found here began as strict xfails
with a minimal repro and are fixed: a lent base whose layout the caller changed,
and a trace that became busy between compiled.py's check and the replay. A large fused group is shared out between threads: its values must be
eager's exactly, its gradients to rounding, its floating-point warnings
eager's, and its bits the same on any number of threads.
"""

import ctypes
import inspect
import os
import pickle
import subprocess
import sys
import threading
import tracemalloc
import warnings
import weakref

import numpy as np
import pytest
from test_catalogue import function_of
from test_compile_fusion import fused_groups
from test_compile_fusion_breaker import DOMAIN, ELEMENTWISE, compare_calls, uniform

import tapegrad as tg
from tapegrad import catalogue, compiled

import opcatalog

LENT = 6000  # elements: 48 KB, over the pool's smallest array
THREADED = 131_072 + 2 * 2048 + 5  # 67 blocks, the last short: two threads or more


def sin_x(x):
    return tg.sum(tg.sin(x) * x)


def sin_x_gradient(x):
    return np.cos(x) * x + np.sin(x)


def data_address(a):
    return a.__array_interface__["data"][0]


# ---- lent buffers: the memory is reused, and never while anything can see it ----

def test_a_dropped_gradient_is_written_again_so_the_attacks_below_can_fail():
    cf = tg.compile(sin_x)
    rng = np.random.default_rng(0)
    addresses = {data_address(cf.grad(rng.random(LENT))) for _ in range(6)}
    assert len(addresses) == 1


def _exception_holding(g):
    def fail(array):
        raise ValueError("kept in the traceback's frame")
    try:
        fail(g)
    except ValueError as error:
        return error


def _from_exception(error):
    return error.__traceback__.tb_next.tb_frame.f_locals["array"]


def _array_interface_holder(g):
    holder = type("Holder", (), {"__array_interface__": g.__array_interface__, "keep": g})()
    return np.asarray(holder)


def _pickled_out_of_band(g):
    buffers = []
    data = pickle.dumps(g, protocol=5, buffer_callback=buffers.append)
    return pickle.loads(data, buffers=buffers)


# (how the caller keeps g, how the kept values are read back)
KEEPERS = {
    "slice": (lambda g: g[1:], lambda h: h),
    "base": (lambda g: g.base, lambda h: h),
    "transpose": (lambda g: g.T, lambda h: h),
    "reshape": (lambda g: g.reshape(60, 100), lambda h: h),
    "view as int64": (lambda g: g.view(np.int64), lambda h: h),
    "asarray": (np.asarray, lambda h: h),
    "memoryview": (memoryview, np.asarray),
    "memoryview cast to bytes": (lambda g: memoryview(g).cast("B"), lambda h: np.frombuffer(h)),
    "frombuffer": (np.frombuffer, lambda h: h),
    "ctypes from_buffer": (lambda g: (ctypes.c_double * g.size).from_buffer(g), np.ctypeslib.as_array),
    "as_ctypes": (np.ctypeslib.as_ctypes, np.ctypeslib.as_array),
    "pickle out of band": (_pickled_out_of_band, lambda h: h),
    "as_strided": (lambda g: np.lib.stride_tricks.as_strided(g, shape=(10,), strides=(8,)), lambda h: h),
    "broadcast_to": (lambda g: np.broadcast_to(g, (2, g.size)), lambda h: h),
    "flat iterator": (lambda g: g.flat, lambda h: h.base),
    "nditer": (np.nditer, lambda h: h.operands[0]),
    "recarray view": (lambda g: g.view(np.recarray), lambda h: h),
    "masked array": (np.ma.masked_array, np.ma.getdata),
    "from_dlpack": (np.from_dlpack, lambda h: h),
    "__array_interface__": (_array_interface_holder, lambda h: h),
    "weak reference to the base and a view": (lambda g: (weakref.ref(g.base), g[:]), lambda h: h[0]()),
    "tg.as_tensor": (tg.as_tensor, lambda h: h.data),
    "an eager graph on tg.as_tensor": (lambda g: tg.sum(tg.as_tensor(g) * 2.0), lambda h: h.data),
    "dict": (lambda g: {"g": g}, lambda h: h["g"]),
    "closure": (lambda g: (lambda: g), lambda h: h()),
    "an exception's traceback": (_exception_holding, _from_exception),
}


@pytest.mark.parametrize("keeper", KEEPERS)
def test_a_gradient_kept_in_any_way_never_changes(keeper):
    keep, read = KEEPERS[keeper]
    cf = tg.compile(sin_x)
    rng = np.random.default_rng(1)
    cf.grad(rng.random(LENT))
    x = rng.random(LENT)
    g = cf.grad(x)
    g.setflags(write=True)  # as_ctypes and from_buffer want writable memory
    kept = keep(g)
    want = np.array(read(kept), copy=True)
    del g
    for _ in range(5):
        cf.value_and_grad(rng.random(LENT))
        cf(rng.random(LENT))
    np.testing.assert_array_equal(read(kept), want)


def test_the_eager_graph_of_a_shared_gradient_keeps_its_values():
    cf = tg.compile(sin_x)
    rng = np.random.default_rng(2)
    x = rng.random(LENT)
    t = tg.as_tensor(cf.grad(x), requires_grad=True)
    y = tg.sum(t * t)
    for _ in range(4):
        cf.grad(rng.random(LENT))
    (dt,) = tg.grad(y, [t])
    np.testing.assert_allclose(np.asarray(dt.data), 2 * sin_x_gradient(x), rtol=1e-14)


def test_results_fed_back_as_arguments_and_written_by_numpy_match_eager():
    f = lambda x: tg.sum(tg.sin(x) * 0.5 + x * x * 0.25)  # noqa: E731
    cf, eager = tg.compile(f), tg.value_and_grad(f)
    g = want = np.linspace(0.0, 1.0, LENT)
    history = []
    for _ in range(12):
        g = cf.grad(g)  # read in place, the previous gradient dropped as it is replaced
        want = eager(want)[1]
        np.testing.assert_allclose(g, want, rtol=1e-13)
        history.append((g, g.copy()))
    h = tg.compile(lambda x: tg.sin(x) * 0.5 + x * 0.25)
    v = want = np.linspace(0.0, 1.0, LENT)
    for _ in range(12):
        v, want = h(v), np.sin(want) * 0.5 + want * 0.25
        np.testing.assert_array_equal(v, want)
    g = cf.grad(np.linspace(0.0, 1.0, LENT))
    np.multiply(g, 2.0, out=g)  # the caller's own memory to write
    again = cf.grad(g)
    np.testing.assert_allclose(again, eager(g)[1], rtol=1e-13)
    assert all(np.array_equal(kept, snapshot) for kept, snapshot in history)


def _snapshot(result):
    if isinstance(result, (tuple, list)):
        return [_snapshot(r) for r in result]
    return np.array(result, copy=True)


def _same(result, snapshot):
    if isinstance(result, (tuple, list)):
        return all(_same(r, s) for r, s in zip(result, snapshot))
    return np.array_equal(result, snapshot)


def _tall(x):
    return tg.stack([tg.sum(x), tg.sum(x * x), tg.sum(tg.sin(x))])


def _wide(a):
    return tg.sin(a[0]) * tg.as_tensor(np.linspace(0.0, 1.0, LENT)) + a[1] * a[2]


def _vector(x):
    return tg.exp(x * 0.1) * x


# (the function compiled, how a driver calls it on an input y)
DRIVERS = {
    "value_and_grad": (sin_x, lambda cf, y: cf.value_and_grad(y)),
    "value_and_grad float32": (sin_x, lambda cf, y: cf.value_and_grad(y.astype(np.float32))),
    "an array value": (_vector, lambda cf, y: cf(y)),
    "vjp": (_vector, lambda cf, y: cf.vjp(y, y * 2.0)),
    "jvp": (_vector, lambda cf, y: cf.jvp(y, y * 2.0)),
    "hvp": (sin_x, lambda cf, y: cf.hvp(y, y)),
    "tall jacobian": (_tall, lambda cf, y: cf.jacobian(y)),
    "wide jacobian": (_wide, lambda cf, y: cf.jacobian(y[:3])),
}


@pytest.mark.parametrize("driver", DRIVERS)
def test_every_drivers_kept_results_never_change(driver):
    f, call = DRIVERS[driver]
    cf = tg.compile(f)
    rng = np.random.default_rng(3)
    kept = []
    for _ in range(6):
        result = call(cf, rng.random(LENT))
        kept.append((result, _snapshot(result)))
    for _ in range(4):
        call(cf, rng.random(LENT))
    assert all(_same(result, snapshot) for result, snapshot in kept)


def test_arrays_kept_by_hooks_and_functions_never_change():
    stash = []

    class Square(tg.Function):
        @staticmethod
        def forward(ctx, x):
            stash.append(x.data)
            ctx.save_for_backward(x)
            return x.data * x.data

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            stash.extend([g.data, x.data])
            return g * 2.0 * x.data

    def f(x):
        y = tg.sin(x) * 1.5 + x
        y.register_hook(lambda g: stash.append(g.data))
        return tg.sum(tg.exp(-Square.apply(y)) * x)

    cf = tg.compile(f)
    rng = np.random.default_rng(4)
    for _ in range(4):
        x = rng.random(THREADED)
        np.testing.assert_allclose(cf.grad(x), tg.value_and_grad(f)(x)[1], rtol=1e-12, atol=1e-15)
    snapshots = [a.copy() for a in stash]
    for _ in range(3):
        cf.grad(rng.random(THREADED))
    assert all(np.array_equal(a, s) for a, s in zip(stash[:len(snapshots)], snapshots))


def _run_threads(work, count):
    """Runs work(seed) on `count` threads at once; the first AssertionError any raised, or None."""
    errors = []

    def guarded(seed):
        try:
            work(seed)
        except AssertionError as error:
            errors.append(error)

    threads = [threading.Thread(target=guarded, args=(seed,)) for seed in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors[0] if errors else None


def test_threads_calling_while_others_hold_results_each_keep_their_own():
    cf = tg.compile(sin_x)

    def work(seed):
        rng = np.random.default_rng(seed)
        kept = []
        for _ in range(60):
            x = rng.random(LENT)
            g = cf.grad(x)
            np.testing.assert_allclose(g, sin_x_gradient(x), rtol=1e-13)
            kept.append((g, g.copy()))
        assert all(np.array_equal(g, s) for g, s in kept)

    assert _run_threads(work, 4) is None


def test_memory_stays_flat_over_5000_calls_and_bounded_after_kept_results_go():
    cf = tg.compile(sin_x)
    ones = np.ones(LENT)
    for _ in range(20):
        cf.value_and_grad(ones)
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        for k in range(5000):
            cf.value_and_grad(ones * (k * 1e-4))
        dropped = tracemalloc.get_traced_memory()[0] - start
        kept = [cf.grad(ones * (k * 1e-4)) for k in range(300)]
        assert all(np.allclose(g, sin_x_gradient(ones * (k * 1e-4))) for k, g in enumerate(kept))
        del kept
        after = tracemalloc.get_traced_memory()[0] - start
    finally:
        tracemalloc.stop()
    one = LENT * 8
    assert dropped < 4 * one
    # The pool tracks at most 16 lent arrays (MAX_LENT) after their views go.
    assert after < (16 + 4) * one


def test_several_compiled_functions_and_a_one_element_output_keep_their_results():
    rng = np.random.default_rng(5)
    functions = [tg.compile(lambda x, c=c: tg.sum(tg.sin(x * c) * x)) for c in (0.5, 1.0, 2.0)]
    one = tg.compile(lambda x: tg.stack([tg.sum(x * x)]))  # a value of one element, an array
    kept = []
    for _ in range(4):
        x = rng.random(LENT)
        kept += [(g, g.copy()) for g in (cf.grad(x) for cf in functions)]
        value, dx = one.value_and_grad(x)
        assert np.shape(value) == (1,)
        np.testing.assert_allclose(dx, 2 * x, rtol=1e-14)
        kept.append((dx, dx.copy()))
    assert all(np.array_equal(g, s) for g, s in kept)


# ---- lent buffers: a bug found here, fixed ----

@pytest.mark.parametrize("change", ["byte order", "strides"])
def test_a_lent_base_whose_layout_the_caller_changed_is_not_written_again(change):
    cf = tg.compile(sin_x)
    x = np.linspace(0.0, 1.0, LENT)
    g = cf.grad(x)
    base = g.base
    if change == "byte order":
        base.dtype = np.dtype(">f8")  # the same type number, swapped
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # numpy 2.4 deprecates it
            base.strides = (0,)
    del g, base
    again = cf.grad(x)
    assert again.dtype == np.float64 and again.strides == (8,)
    np.testing.assert_allclose(again, sin_x_gradient(x), rtol=1e-14)


# ---- a busy trace between compiled.py's check and the replay (a bug found here, fixed) ----

def test_a_trace_that_becomes_busy_between_the_check_and_the_replay_is_passed_over():
    inside, release, armed = threading.Event(), threading.Event(), []

    def hook(g):
        if armed and threading.current_thread().name == "second":
            inside.set()
            release.wait(10)

    def f(x):
        y = x * 2.0
        y.register_hook(hook)
        return tg.sum(y * y)

    cf = tg.compile(f)
    cf.grad(np.ones(3))
    run = compiled.CompiledFunction._run.__code__
    lines, first_line = inspect.getsourcelines(compiled.CompiledFunction._run)
    replay_line = next(first_line + k for k, line in enumerate(lines) if "ran = trace.replay(" in line)
    results = {}

    def second():
        results["second"] = cf.grad(np.ones(3))

    other = threading.Thread(target=second, name="second")

    def tracer(frame, event, arg):
        if frame.f_code is not run:
            return None

        def line(frame, event, arg):  # a thread switch just before the replay
            if event == "line" and frame.f_lineno == replay_line and not other.is_alive():
                other.start()
                inside.wait(10)
            return line
        return line

    def first():
        sys.settrace(tracer)
        try:
            armed.append(True)
            results["first"] = cf.grad(np.ones(3))
        except ValueError as error:
            results["first"] = error
        finally:
            sys.settrace(None)
            release.set()

    t = threading.Thread(target=first)
    t.start()
    t.join()
    other.join()
    np.testing.assert_array_equal(results["second"], np.full(3, 8.0))
    np.testing.assert_array_equal(results["first"], np.full(3, 8.0))


# ---- fused threads ----

def _threaded_chains(name, dtype, rng):
    """(f, the operands of two calls, argnums): the op inside a chain of THREADED elements,
    unary on an array; binary on arrays, a number, a constant array and a scalar row."""
    fn = function_of(name)
    if catalogue.OPS[name].arity == 1:
        low, high = DOMAIN[name]
        return [(lambda x: tg.sum(fn(x * 1.0 + 0.0) * x - x),
                 [[uniform(rng, low, high, THREADED, dtype)] for _ in range(2)], 0)]
    (low_a, high_a), (low_b, high_b) = DOMAIN[name]
    number_b = (low_b + high_b) / 2 + 0.017
    constant_a = uniform(rng, low_a, high_a, THREADED, dtype)
    bodies = [lambda a, b: fn(a * 1.0, b * 1.0),
              lambda a, b: fn(a * 1.0, number_b) * b,
              lambda a, b: fn(constant_a, b * 1.0) * a,
              lambda a, b: fn(a * 1.0, tg.sum(b) * 0.0 + number_b) * b]
    return [(lambda a, b, body=body: tg.sum(body(a, b) * 1.5 + a),
             [[uniform(rng, low_a, high_a, THREADED, dtype), uniform(rng, low_b, high_b, THREADED, dtype)]
              for _ in range(2)], (0, 1)) for body in bodies]


@pytest.mark.parametrize("name, dtype", [(name, dtype) for dtype in (np.float64, np.float32)
                                         for name in ELEMENTWISE])
def test_every_elementwise_op_in_a_threaded_group_is_eager(name, dtype):
    if opcatalog.needs_scipy(name):
        pytest.importorskip("scipy")
    for f, calls, argnums in _threaded_chains(name, dtype, np.random.default_rng(6)):
        cf = compare_calls(f, calls, argnums=argnums, rtol=1e-11 if dtype == np.float64 else 2e-4,
                           exact_value=dtype == np.float64)
        # float_power of float32 operands is float64: another layout, no group
        assert max(fused_groups(cf)[0], default=0) >= 3 or (name, dtype) == ("float_power", np.float32)


# (f, the value that raises, in the forward or only in the backward)
RAISING = {
    "log of a negative": (lambda x: tg.sum(tg.log(x * 1.0) * x), -1.0),
    "division by zero": (lambda x: tg.sum(1.0 / (x * 1.0) * x), 0.0),
    "exp overflow": (lambda x: tg.sum(tg.exp(x * 1.0) * x), 800.0),
    "exp underflow": (lambda x: tg.sum(tg.exp(x * 1.0) * x), -800.0),
    "sqrt's backward divides by zero": (lambda x: tg.sum(tg.sqrt(x * 1.0) * 2.0), 0.0),
    "a backward product overflows": (lambda x: tg.sum((x * 1.0) * (x * 1.0) * 1e-300), 1e200),
    "log's backward divides by zero": (lambda x: tg.sum(tg.log(x * 1.0 + 1.0) * 1.0), -1.0),
}


def _outcome(call, mode):
    """(value and gradient or the FloatingPointError's text, numpy's warnings) under errstate(mode)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with np.errstate(all=mode):
            try:
                result = call()
            except FloatingPointError as error:
                result = str(error)
    return result, sorted(str(w.message) for w in caught)


@pytest.mark.parametrize("mode", ["ignore", "warn", "raise"])
@pytest.mark.parametrize("where", ["first", "middle", "last"])
@pytest.mark.parametrize("case", RAISING)
def test_an_exception_in_one_block_of_a_threaded_group_is_eagers(case, where, mode):
    f, bad = RAISING[case]
    cf, eager = tg.compile(f), tg.value_and_grad(f)
    rng = np.random.default_rng(7)
    cf.value_and_grad(rng.uniform(0.5, 1.5, THREADED))
    assert fused_groups(cf)[0]
    x = rng.uniform(0.5, 1.5, THREADED)
    x[{"first": 0, "middle": THREADED // 2, "last": THREADED - 1}[where]] = bad
    (got, got_warnings), (want, want_warnings) = _outcome(lambda: cf.value_and_grad(x), mode), \
        _outcome(lambda: eager(x), mode)
    assert got_warnings == want_warnings
    if isinstance(want, str):
        assert got == want
    else:
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_allclose(got[1], want[1], rtol=1e-12)
    y = rng.uniform(0.5, 1.5, THREADED)  # and a healthy call after it
    np.testing.assert_allclose(cf.grad(y), eager(y)[1], rtol=1e-12)


@pytest.mark.parametrize("case", RAISING)
def test_errstate_call_and_warnings_as_errors_see_what_eager_does(case):
    f, bad = RAISING[case]
    cf, eager = tg.compile(f), tg.value_and_grad(f)
    x = np.random.default_rng(8).uniform(0.5, 1.5, THREADED)
    cf.value_and_grad(x)
    x[THREADED - 1] = bad

    def called(run):
        seen = []
        old = np.seterrcall(lambda kind, flag: seen.append(kind))
        try:
            with np.errstate(all="call"):
                run()
        finally:
            np.seterrcall(old)
        return sorted(seen)

    def as_error(run):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            try:
                run()
            except RuntimeWarning as error:
                return str(error)
        return None

    assert called(lambda: cf.value_and_grad(x)) == called(lambda: eager(x))
    assert as_error(lambda: cf.value_and_grad(x)) == as_error(lambda: eager(x))


_BITS = (
    "import hashlib, sys, numpy as np, tapegrad as tg\n"
    "n, dtype = int(sys.argv[1]), np.dtype(sys.argv[2])\n"
    "rng = np.random.default_rng(5)\n"
    "x, w, b, c = (rng.uniform(0.1, 1.0, n).astype(dtype) for _ in range(4))\n"
    "f = lambda x, w, b: tg.sum(tg.tanh(x * w + b) * tg.exp(-x * x) + tg.log(1 + w * w) / (1 + b * b)"
    " + tg.sqrt(x) * c - tg.sin(w) ** 2 + tg.arctan(b * x) / (x + 0.5))\n"
    "cf = tg.compile(f, argnums=(0, 1, 2))\n"
    "cf.value_and_grad(x, w, b)\n"
    "value, grads = cf.value_and_grad(x, w, b)\n"
    "_, tangent = cf.jvp((x, w, b), (w, b, x))\n"
    "print(float(value).hex(), hashlib.sha256(b''.join(g.tobytes() for g in grads)"
    " + np.asarray(tangent).tobytes()).hexdigest())\n")


@pytest.mark.parametrize("n, dtype", [(2**20 + 1, "float64"), (262_143, "float32")])
def test_any_thread_count_setting_gives_the_same_bits(n, dtype):
    def run(threads):
        env = dict(os.environ, TAPEGRAD_NUM_THREADS=threads)
        return subprocess.run([sys.executable, "-c", _BITS, str(n), dtype], env=env, capture_output=True,
                              text=True, check=True).stdout

    one = run("1")
    assert one and all(run(threads) == one for threads in ("2", "8", "garbage", "0"))


def test_python_threads_replaying_large_groups_at_once_get_eagers_answers():
    def chain(x, w):
        return tg.tanh(x * w + 0.3) * tg.exp(-x * x) + tg.log(1 + w * w) / (1.5 + x)

    f = lambda x, w: tg.sum(chain(x, w))  # noqa: E731
    functions = [tg.compile(f, argnums=(0, 1)) for _ in range(2)]
    values = tg.compile(chain, argnums=(0, 1))
    eager = tg.value_and_grad(f, (0, 1))

    def work(seed):
        rng = np.random.default_rng(seed)
        kept = []
        for k in range(4):
            x, w = rng.uniform(0.1, 1, THREADED), rng.uniform(0.1, 1, THREADED)
            _, grads = functions[(seed + k) % 2].value_and_grad(x, w)
            for got, want in zip(grads, eager(x, w)[1]):
                np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)
            value = values(x, w)
            np.testing.assert_array_equal(value, chain(tg.Tensor(x), tg.Tensor(w)).data)
            _, tangent = values.jvp((x, w), (w, x))  # a tangent sweep after threaded replays
            want_tangent = tg.jvp(chain, (tg.Tensor(x), tg.Tensor(w)), v=(w, x))[1]
            np.testing.assert_allclose(tangent, np.asarray(want_tangent.data), rtol=1e-12, atol=1e-15)
            kept.append((value, value.copy()))
        assert all(np.array_equal(v, s) for v, s in kept)

    assert _run_threads(work, 3) is None


def test_a_compiled_call_inside_a_hook_and_a_functions_backward_of_a_threaded_replay():
    def chain(x, w):
        return tg.sum(tg.tanh(x * w + 0.3) * tg.exp(-x * x) + w / (1.5 + x))

    inner = tg.compile(chain, argnums=(0, 1))
    eager_inner = tg.value_and_grad(chain, (0, 1))
    seen = []

    class Twice(tg.Function):
        @staticmethod
        def forward(ctx, x):
            return x.data * 2.0

        @staticmethod
        def backward(ctx, g):
            seen.append(("backward", inner.value_and_grad(np.full(THREADED, 0.7), np.full(THREADED, 0.2))))
            return g * 2.0

    def hook(g):
        seen.append(("hook", inner.value_and_grad(np.full(THREADED, 0.5), np.full(THREADED, 0.25))))

    def outer(x, w):
        y = x * w + 1.0
        y.register_hook(hook)
        return chain(Twice.apply(y), w)

    cf = tg.compile(outer, argnums=(0, 1))
    rng = np.random.default_rng(9)
    for _ in range(3):
        x, w = rng.uniform(0.1, 1, THREADED), rng.uniform(0.1, 1, THREADED)
        for got, want in zip(cf.value_and_grad(x, w)[1], tg.value_and_grad(outer, (0, 1))(x, w)[1]):
            np.testing.assert_allclose(got, want, rtol=1e-12)
    wants = {"backward": eager_inner(np.full(THREADED, 0.7), np.full(THREADED, 0.2)),
             "hook": eager_inner(np.full(THREADED, 0.5), np.full(THREADED, 0.25))}
    assert len(seen) == 12  # the compiled sweeps' and the eager ones'
    for where, (value, grads) in seen:
        assert value == pytest.approx(wants[where][0], rel=1e-12)
        for got, want in zip(grads, wants[where][1]):
            np.testing.assert_allclose(got, want, rtol=1e-12)


def test_detect_anomaly_on_a_threaded_group_finds_eagers_nan():
    f = lambda x: tg.sum(tg.log(x * 1.0 + 0.5) * x)  # noqa: E731
    cf = tg.compile(f)
    x = np.random.default_rng(10).uniform(0.1, 1, THREADED)
    with tg.detect_anomaly():
        np.testing.assert_allclose(cf.grad(x), tg.value_and_grad(f)(x)[1], rtol=1e-12)
        x[THREADED - 3] = -2.0
        with np.errstate(invalid="ignore"):
            with pytest.raises(Exception) as want:
                tg.value_and_grad(f)(x)
            with pytest.raises(type(want.value)):
                cf.grad(x)
