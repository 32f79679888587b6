"""Fused groups of a compiled tape (Note [Fused rows] in csrc/fusion.hpp).

A run of elementwise rows whose inner values nothing else reads replays as one
blocked loop: forward through numpy's own inner loops, backward as partials
per outside operand. Each test checks that the group formed (Trace.fused_groups)
or did not where it must not, and that values and gradients are eager's: the
forward exactly, the gradients to rounding, and numpy's warnings and errstate
as eagerly wherever a block raises a floating-point exception.
"""

import os
import subprocess
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from test_compile import assert_same, check_against_eager

import tapegrad as tg


def fused_groups(cf):
    """The group sizes of every trace of a compiled function."""
    return [trace.fused_groups for traces in cf._traces.values() for trace in traces]


def chain(x, w, b):
    """The bench's elementwise chain: 14 elementwise rows, one group."""
    return tg.tanh(x * w + b) * tg.exp(-x * x) + tg.log(1 + w * w) / (1 + b * b)


def chain_gradient(x, w, b):
    """Its gradient, by hand (as bench/workloads/elementwise.py's floor)."""
    th, e = np.tanh(x * w + b), np.exp(-x * x)
    lw, ib = np.log(1 + w * w), 1 / (1 + b * b)
    dth = (1 - th * th) * e
    return [dth * w - 2 * x * th * e, dth * x + 2 * w / (1 + w * w) * ib, dth - 2 * b * lw * ib * ib]


def inputs(n, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.uniform(0.1, 1.0, size=n).astype(dtype) for _ in range(3)]


# Block edges: one element, less than a block, exactly one, one over, several.
SIZES = [1, 100, 2048, 2049, 5000]


@pytest.mark.parametrize("n", SIZES)
def test_the_elementwise_chain_is_one_group_and_gives_the_closed_form(n):
    f = lambda x, w, b: tg.sum(chain(x, w, b))  # noqa: E731
    cf = check_against_eager(f, [inputs(n, seed=s) for s in range(3)], argnums=(0, 1, 2))
    assert fused_groups(cf) == [[14]]
    for seed in (3, 4):
        arrays = inputs(n, seed=seed)
        _, grads = cf.value_and_grad(*arrays)
        for got, want in zip(grads, chain_gradient(*arrays)):
            np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fused_values_are_the_eager_ops_values_exactly(dtype):
    """numpy's inner loops, block by block, compute what its ufunc calls compute."""
    def f(x, w, b):
        return chain(x, w, b) * x ** 2 + tg.sqrt(w) ** -1 + x ** 0.5 - 2.0 ** b + w ** 3

    cf = tg.compile(f, argnums=(0, 1, 2))
    for seed in range(3):
        arrays = inputs(5000, dtype, seed)
        got = cf(*arrays)
        want = f(*[tg.Tensor(a) for a in arrays]).data
        assert got.dtype == want.dtype == dtype
        np.testing.assert_array_equal(got, want)
    (trace,) = cf._traces.values()
    assert fused_groups(cf) == [[trace[0].ops]]  # every row: one group


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_vector_output_under_vjp_seeds_matches_the_closed_form(dtype):
    """A gradient that is not ones: g * partials, against the formula."""
    def f(x, w):
        return tg.tanh(x * w) * tg.exp(-x)

    cf = tg.compile(f, argnums=(0, 1))
    rng = np.random.default_rng(1)
    rtol = 1e-12 if dtype == np.float64 else 2e-5
    for _ in range(3):
        x, w, v = (rng.uniform(-1, 1, size=3000).astype(dtype) for _ in range(3))
        value, (gx, gw) = cf.vjp((x, w), v)
        t, e = np.tanh(x * w), np.exp(-x)
        np.testing.assert_allclose(value, t * e, rtol=rtol)
        scale = rtol * np.max(np.abs(v * e))  # the two terms of gx cancel where they are equal
        np.testing.assert_allclose(gx, v * ((1 - t * t) * w * e - t * e), rtol=rtol, atol=scale)
        np.testing.assert_allclose(gw, v * (1 - t * t) * x * e, rtol=rtol, atol=scale)
    assert fused_groups(cf) == [[5]]


def test_an_input_read_twice_and_a_square_add_their_partials():
    def f(x, y):
        return tg.sum(x * x * y + tg.sin(x) * x - y * y)

    rng = np.random.default_rng(2)
    cf = check_against_eager(f, [[rng.normal(size=3000), rng.normal(size=3000)] for _ in range(3)],
                             argnums=(0, 1))
    x, y = rng.normal(size=3000), rng.normal(size=3000)
    _, (gx, gy) = cf.value_and_grad(x, y)
    np.testing.assert_allclose(gx, 2 * x * y + np.cos(x) * x + np.sin(x), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(gy, x * x - 2 * y, rtol=1e-13, atol=1e-15)
    assert fused_groups(cf) == [[7]]


# Note [Passed adjoints]: add's gradient (both operands) and sub's (the first) are
# the step's own; where nothing else adds to the operand's adjoint, it is read in
# place. Each case here either passes, or must not: a second reader, x + x (2 g),
# sub's second operand (-g), a pass through passes.


def twice_read(x, y):
    u = tg.exp(x)  # u + y passes its gradient to u, whose other reader adds to it
    return tg.sin(u + y) * u


def twice_read_gradient(x, y):
    u = np.exp(x)
    gu = np.cos(u + y) * u + np.sin(u + y)
    return gu * u, np.cos(u + y) * u


def doubled(x, y):
    v = tg.exp(x) * y
    return tg.sin(v + v)


def doubled_gradient(x, y):
    dv = 2 * np.cos(2 * np.exp(x) * y)
    return dv * np.exp(x) * y, dv * np.exp(x)


PASSES = {
    "add of two steps at the root": (lambda x, y: tg.exp(x) + tg.sin(y),
                                     lambda x, y: (np.exp(x), np.cos(y))),
    "passes through passes": (lambda x, y: ((tg.exp(x) + 1.0) + 2.0) + (3.0 - tg.sin(y)),
                              lambda x, y: (np.exp(x), -np.cos(y))),
    "sub: the first passes, the second not": (lambda x, y: tg.exp(x) - tg.sin(y) * 1.0 + x * y,
                                              lambda x, y: (np.exp(x) + y, -np.cos(y) + x)),
    "a step read twice: added, not passed": (twice_read, twice_read_gradient),
    "v + v: twice the gradient": (doubled, doubled_gradient),
}


@pytest.mark.parametrize("n", [1, 2049])
@pytest.mark.parametrize("case", list(PASSES))
def test_passed_adjoints_give_the_closed_form_and_eagers_gradients(case, n):
    f, closed_form = PASSES[case]
    rng = np.random.default_rng(5)
    calls = [[rng.uniform(-1, 1, size=n), rng.uniform(-1, 1, size=n)] for _ in range(3)]
    cf = check_against_eager(lambda x, y: tg.sum(f(x, y)), calls, argnums=(0, 1))
    assert [len(g) for g in fused_groups(cf)] == [1]  # one group: fused
    for x, y in calls:
        _, grads = cf.value_and_grad(x, y)
        for got, want in zip(grads, closed_form(x, y)):
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)


def test_a_scalar_argument_in_a_group_gets_the_summed_gradient():
    def f(x, s):
        return tg.sum(tg.exp(x * s) * s)

    cf = tg.compile(f, argnums=(0, 1))
    rng = np.random.default_rng(3)
    for s in (0.5, -1.25, 2.0):
        x = rng.uniform(-1, 1, size=3000)
        value, (gx, gs) = cf.value_and_grad(x, s)
        assert isinstance(gs, float)
        np.testing.assert_allclose(gx, s * s * np.exp(x * s), rtol=1e-13)
        assert gs == pytest.approx(np.sum(np.exp(x * s) * (x * s + 1)), rel=1e-12)
        assert value == pytest.approx(np.sum(np.exp(x * s) * s), rel=1e-13)
    assert fused_groups(cf) == [[3]]


def test_a_constant_array_in_a_group_stays_a_constant():
    c = np.linspace(-1.0, 1.0, 3000)

    def f(x):
        return tg.sum(tg.tanh(x * c + c) * c)

    rng = np.random.default_rng(4)
    cf = check_against_eager(f, [[rng.normal(size=3000)] for _ in range(3)])
    x = rng.normal(size=3000)
    np.testing.assert_allclose(cf.grad(x), c * c * (1 - np.tanh(x * c + c) ** 2), rtol=1e-13, atol=1e-15)
    assert fused_groups(cf) == [[4]]


def test_a_hooked_value_ends_a_group_and_its_hook_sees_its_gradient():
    seen = []

    def f(x):
        u = x * 2.0 + 1.0
        u.register_hook(lambda g: seen.append(np.array(g.data)))
        return tg.sum(tg.tanh(u) * x)

    cf = tg.compile(f)
    rng = np.random.default_rng(5)
    for _ in range(3):
        x = rng.normal(size=3000)
        seen.clear()
        grad = cf.grad(x)
        u = x * 2.0 + 1.0
        (hooked,) = seen
        np.testing.assert_allclose(hooked, (1 - np.tanh(u) ** 2) * x, rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(grad, 2 * hooked + np.tanh(u), rtol=1e-13, atol=1e-15)
    assert fused_groups(cf) == [[2, 2]]  # u's rows, then tanh(u) * x


def test_values_read_elsewhere_are_not_fused_away():
    """An inner value that a second reader, a broadcast or the output reads ends a group."""
    def f(x, row):
        u = tg.exp(x * 0.5)
        v = tg.sum(u * u, axis=0)  # an array op reads u: u is a root
        return tg.sum(v * row) + tg.sum((u - 1.0) * x)

    rng = np.random.default_rng(6)
    calls = [[rng.normal(size=(50, 40)), rng.normal(size=40)] for _ in range(3)]
    cf = check_against_eager(f, calls, argnums=(0, 1))
    assert fused_groups(cf) == [[2, 2]]


def test_a_non_contiguous_argument_runs_row_by_row_and_matches_eager():
    rng = np.random.default_rng(7)
    f = lambda x, w, b: tg.sum(chain(x, w, b))  # noqa: E731
    cf = tg.compile(f, argnums=(0, 1, 2))
    eager = tg.value_and_grad(f, argnums=(0, 1, 2))
    contiguous = [rng.uniform(0.1, 1, size=3000) for _ in range(3)]
    assert_same(cf.value_and_grad(*contiguous), eager(*contiguous))
    strided = [rng.uniform(0.1, 1, size=6000)[::2] for _ in range(3)]
    assert_same(cf.value_and_grad(*strided), eager(*strided))
    assert cf.trace_count == 1


def _log_of_a_negative_element(n, where):
    """log(x * w) with x[where] < 0: the block holding it warns, so the group runs row by
    row, as eager's ops, warnings, NaNs and errstate alike. Returns the compiled function,
    eager's and good inputs, for more checks."""
    def f(x, w):
        return tg.sum(tg.log(x * w) * x)

    cf = tg.compile(f, argnums=(0, 1))
    eager = tg.value_and_grad(f, argnums=(0, 1))
    x, w = np.full(n, 0.5), np.full(n, 2.0)
    assert_same(cf.value_and_grad(x, w), eager(x, w))  # traced, then clean replays
    assert_same(cf.value_and_grad(x, w), eager(x, w))
    bad = x.copy()
    bad[where] = -1.0
    with pytest.warns(RuntimeWarning, match="invalid value encountered in log"):
        value, grads = cf.value_and_grad(bad, w)
    with pytest.warns(RuntimeWarning, match="invalid value encountered in log"):
        want_value, want_grads = eager(bad, w)
    assert np.isnan(value) and np.isnan(want_value)
    for got, want in zip(grads, want_grads):
        np.testing.assert_array_equal(got, want)  # NaN where eager has NaN, the rest equal
    with np.errstate(invalid="raise"), pytest.raises(FloatingPointError):
        cf.value_and_grad(bad, w)
    assert_same(cf.value_and_grad(x, w), eager(x, w))  # and the trace is still sound
    return cf, eager, x, w


def test_a_block_that_warns_runs_row_by_row_with_numpys_warnings():
    cf, eager, x, w = _log_of_a_negative_element(3000, 2500)  # in the second block
    with np.errstate(divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("error")
        zero = w.copy()
        zero[7] = 0.0
        value, _ = cf.value_and_grad(x, zero)  # log(0): -inf, silently as numpy under ignore
        assert value == -np.inf
    assert_same(cf.value_and_grad(x, w), eager(x, w))  # and the trace is still sound
    assert cf.trace_count == 1


def test_detect_anomaly_checks_every_fused_row_as_eager():
    def f(x):
        return tg.sum(tg.sqrt(x * 2.0) * 3.0)

    cf = tg.compile(f)
    x = np.linspace(0.5, 1.5, 3000)
    np.testing.assert_allclose(cf.grad(x), 3.0 / np.sqrt(2 * x), rtol=1e-13)
    x[10] = 0.0  # sqrt's backward divides by zero there
    with tg.detect_anomaly(), pytest.raises(RuntimeError, match="sqrt"):
        cf.grad(x)
    with tg.detect_anomaly(), pytest.raises(RuntimeError, match="sqrt"):
        tg.value_and_grad(f)(x)


def test_threads_replaying_one_fused_function_each_get_their_own_answer():
    f = lambda x, w, b: tg.sum(chain(x, w, b))  # noqa: E731
    cf = tg.compile(f, argnums=(0, 1, 2))
    cf.value_and_grad(*inputs(5000))

    def work(seed):
        for k in range(20):
            arrays = inputs(5000, seed=seed * 100 + k)
            _, grads = cf.value_and_grad(*arrays)
            for got, want in zip(grads, chain_gradient(*arrays)):
                np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-15)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(work, range(4)))  # a worker's failure is raised here


# ---- large groups: blocks shared out between threads (Note [Fused threads]) ----

LARGE = 300_000  # 147 blocks: enough for helper threads on a machine with several cores


def test_a_large_group_gives_the_eager_values_exactly_and_the_closed_form_gradients():
    f = lambda x, w, b: tg.sum(chain(x, w, b))  # noqa: E731
    cf, values = tg.compile(f, argnums=(0, 1, 2)), tg.compile(chain)
    cf.value_and_grad(*inputs(LARGE, seed=1))  # traced
    values(*inputs(LARGE, seed=1))
    arrays = inputs(LARGE, seed=2)
    np.testing.assert_array_equal(values(*arrays), chain(*[tg.Tensor(a) for a in arrays]).data)
    assert fused_groups(values) == [[14]]
    _, grads = cf.value_and_grad(*arrays)
    for got, want in zip(grads, chain_gradient(*arrays)):
        np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("where", [5, LARGE // 2, LARGE - 3])
def test_an_exception_in_any_block_of_a_large_group_runs_it_row_by_row(where):
    _log_of_a_negative_element(LARGE, where)  # a block any thread may take


def test_python_threads_replaying_a_large_group_each_get_their_own_answer():
    f = lambda x, w, b: tg.sum(chain(x, w, b))  # noqa: E731
    cf = tg.compile(f, argnums=(0, 1, 2))

    def work(seed):
        for k in range(3):
            arrays = inputs(LARGE // 2, seed=seed * 10 + k)
            _, grads = cf.value_and_grad(*arrays)
            for got, want in zip(grads, chain_gradient(*arrays)):
                np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-15)

    with ThreadPoolExecutor(3) as pool:
        list(pool.map(work, range(3)))


def test_one_thread_and_several_give_the_same_bits():
    script = (
        "import hashlib, numpy as np, tapegrad as tg\n"
        "rng = np.random.default_rng(5)\n"
        "x, w, b = (rng.uniform(0.1, 1.0, 300_000) for _ in range(3))\n"
        "f = lambda x, w, b: tg.sum(tg.tanh(x * w + b) * tg.exp(-x * x) + tg.log(1 + w * w) / (1 + b * b))\n"
        "cf = tg.compile(f, argnums=(0, 1, 2))\n"
        "cf.value_and_grad(x, w, b)\n"
        "value, grads = cf.value_and_grad(x, w, b)\n"
        "print(value.hex(), hashlib.sha256(b''.join(g.tobytes() for g in grads)).hexdigest())\n")
    def run(threads):
        env = dict(os.environ, TAPEGRAD_NUM_THREADS=threads, OMP_NUM_THREADS="1")
        return subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                              text=True, check=True).stdout

    assert run("1") == run("4")
