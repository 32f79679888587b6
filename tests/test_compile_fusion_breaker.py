"""Attacks on fused groups (Note [Fused rows] in csrc/fusion.hpp).

Every compiled replay is compared with the eager tapegrad.value_and_grad on the
same fresh values (and with closed forms where a divergence is the point):
forward values exactly where numpy's own loops run, gradients to rounding,
numpy's warnings and errstate as eagerly. Each test checks that the groups it
attacks formed, so that it cannot pass by not fusing. The bugs it found are
regression tests at the end; the one strict xfail is a known difference.
"""

import tracemalloc
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from test_catalogue import function_of
from test_compile_fusion import fused_groups

import tapegrad as tg
from tapegrad import catalogue

import opcatalog


def assert_like_eager(got, want, rtol=1e-12, exact_value=False):
    """A compiled (value, gradients) against the eager one: dtypes, shapes, NaNs where eager has them."""
    (value, grads), (want_value, want_grads) = got, want
    pairs = [(value, want_value)]
    pairs += list(zip(grads, want_grads)) if isinstance(want_grads, tuple) else [(grads, want_grads)]
    for k, (g, w) in enumerate(pairs):
        assert type(g) is type(w)
        g, w = np.asarray(g), np.asarray(w)
        assert g.dtype == w.dtype and g.shape == w.shape
        if k == 0 and exact_value:
            np.testing.assert_array_equal(g, w)
        else:
            np.testing.assert_allclose(g, w, rtol=rtol, atol=0)


def compare_calls(f, calls, argnums=0, rtol=1e-12, exact_value=False):
    """Compiles f, checks every call against eager; returns the compiled function."""
    cf = tg.compile(f, argnums=argnums)
    eager = tg.value_and_grad(f, argnums)
    for args in calls:
        assert_like_eager(cf.value_and_grad(*args), eager(*args), rtol, exact_value)
        if exact_value:
            np.testing.assert_array_equal(cf(*args), eager(*args)[0])
    return cf


def uniform(rng, low, high, shape, dtype=np.float64):
    return rng.uniform(low, high, size=shape).astype(dtype)


def chain(x, w):
    """Ten elementwise rows, one group."""
    return tg.sum(tg.tanh(x * w + 1.0) * tg.exp(-x) - w / (1.0 + x * x))


# ---- shapes and layouts ----

@pytest.mark.parametrize("shape", [(0,), (1,), (), (5, 1), (3, 0), (64, 33), (3 * 2048 + 5,), (100003,)])
def test_block_edges_and_odd_shapes_fuse_and_match_eager(shape):
    rng = np.random.default_rng(0)
    calls = [[uniform(rng, 0.1, 1, shape) for _ in range(2)] for _ in range(3)]
    cf = compare_calls(chain, calls, argnums=(0, 1), exact_value=True)
    assert fused_groups(cf) == [[10]]


def _unaligned(values):
    """The values at an odd address: numpy marks the array unaligned."""
    raw = np.zeros(values.size * 8 + 1, np.uint8)[1:]
    out = raw.view(np.float64)
    out[:] = values
    return out


def _read_only(values):
    values.flags.writeable = False
    return values


LAYOUTS = {
    "fortran": lambda a: np.asfortranarray(a.reshape(60, 50)),
    "negative strides": lambda a: a[::-1],
    "read-only": _read_only,
    "unaligned": _unaligned,
}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_arguments_of_any_layout_after_a_contiguous_trace_match_eager(layout):
    rng = np.random.default_rng(1)
    make = LAYOUTS[layout]
    shape = (60, 50) if layout == "fortran" else (3000,)
    calls = [[uniform(rng, 0.1, 1, shape) for _ in range(2)]]
    calls += [[make(uniform(rng, 0.1, 1, 3000)) for _ in range(2)] for _ in range(2)]
    calls += [[uniform(rng, 0.1, 1, shape) for _ in range(2)]]
    cf = compare_calls(chain, calls, argnums=(0, 1), exact_value=True)
    assert cf.trace_count == 1 and fused_groups(cf) == [[10]]


def test_views_feeding_a_group_transposed_broadcast_and_sliced_match_eager():
    def f(x):
        t, b = x.T, tg.broadcast_to(x[0], (40, 30))
        return tg.sum(tg.exp(t * 2.0) * t + 1.0) + tg.sum(tg.sin(b * 2.0) * b) + tg.sum(x[1:] * 3.0 - x[1:])

    rng = np.random.default_rng(2)
    cf = compare_calls(f, [[uniform(rng, 0.2, 1, (40, 30))] for _ in range(3)], exact_value=True)
    # t's 4 rows, b's 3, the slice's 2, and the two additions of the sums' 0-d values
    assert sorted(fused_groups(cf)[0]) == [2, 2, 3, 4]


def test_float32_with_python_floats_scalar_rows_and_float32_constants_is_exactly_eager():
    rng = np.random.default_rng(3)
    c32 = uniform(rng, 0.1, 1, 3000, np.float32)

    def f(x, s):
        return tg.sum(tg.tanh(x * s + s) * c32 * tg.exp(-x / s) - np.float32(0.7) * x + 0.1)

    calls = [[uniform(rng, 0.2, 1, 3000, np.float32), s] for s in (0.1, 1 / 3, 1.7)]
    cf = compare_calls(f, calls, argnums=(0, 1), rtol=2e-5, exact_value=True)
    assert fused_groups(cf) == [[10]]


# ---- the catalogue's elementwise ops inside chains ----

ELEMENTWISE = [name for name, op in catalogue.OPS.items() if op.kind == "elementwise"]
DOMAIN = {name: opcatalog.UNARY[name][2] for name in opcatalog.UNARY}
DOMAIN.update({name: opcatalog.BINARY[name][2:] for name in opcatalog.BINARY})
DOMAIN.update({"maximum": ((-2, 2), (-2, 2)), "minimum": ((-2, 2), (-2, 2))})


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", ELEMENTWISE)
def test_every_elementwise_op_inside_a_chain_is_fused_and_eager(name, dtype):
    if opcatalog.needs_scipy(name):
        pytest.importorskip("scipy")
    rng = np.random.default_rng(4)
    fn = function_of(name)
    rtol = 1e-11 if dtype == np.float64 else 2e-4
    exact = dtype == np.float64
    if catalogue.OPS[name].arity == 1:
        low, high = DOMAIN[name]
        cf = compare_calls(lambda x: tg.sum(fn(x * 1.0 + 0.0) * x - x),
                           [[uniform(rng, low, high, 4100, dtype)] for _ in range(3)], rtol=rtol,
                           exact_value=exact)
        assert fused_groups(cf) == [[5]]
        return
    (low_a, high_a), (low_b, high_b) = DOMAIN[name]
    number_a, number_b = (low_a + high_a) / 2 + 0.013, (low_b + high_b) / 2 + 0.017
    constant_a, constant_b = uniform(rng, low_a, high_a, 4100, dtype), uniform(rng, low_b, high_b, 4100, dtype)
    operands = {  # arrays, numbers, constant arrays and scalar rows on either side
        "arrays": lambda a, b: fn(a * 1.0, b * 1.0),
        "number b": lambda a, b: fn(a * 1.0, number_b) * b,
        "number a": lambda a, b: fn(number_a, b * 1.0) * a,
        "constant b": lambda a, b: fn(a * 1.0, constant_b) * b,
        "constant a": lambda a, b: fn(constant_a, b * 1.0) * a,
        "scalar row b": lambda a, b: fn(a * 1.0, tg.sum(b) * 0.0 + number_b) * b,
        "scalar row a": lambda a, b: fn(tg.sum(a) * 0.0 + number_a, b * 1.0) * a,
    }
    for which, body in operands.items():
        calls = [[uniform(rng, low_a, high_a, 4100, dtype), uniform(rng, low_b, high_b, 4100, dtype)]
                 for _ in range(3)]
        cf = compare_calls(lambda a, b, body=body: tg.sum(body(a, b) * 1.5 + a), calls, argnums=(0, 1),
                           rtol=rtol, exact_value=exact)
        if name == "float_power" and dtype == np.float32:
            continue  # float64 values of float32 operands: another layout, no group
        assert max(fused_groups(cf)[0], default=0) >= 3, which


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("exponent", [2, 2.0, 0.5, -1, -1.0, 3, 0, 0.0, 1, -0.5, -2, 1.5, np.float64(2), np.int64(2)])
def test_pow_by_a_number_inside_a_group_takes_numpys_shortcuts_as_eager(exponent, dtype):
    rng = np.random.default_rng(5)
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    calls = [[uniform(rng, 0.2, 2, 4100, dtype)] for _ in range(3)]
    calls.append([uniform(rng, -2, -0.2, 4100, dtype)])  # a negative base: NaN for 0.5, as eager
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # sqrt of negatives, here and eagerly
        cf = compare_calls(lambda x: tg.sum((x * 1.1) ** exponent * x), calls, rtol=rtol, exact_value=True)
    assert fused_groups(cf) == [[3]]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_pow_with_a_tensor_exponent_and_a_number_base_fuse_and_match_eager(dtype):
    rng = np.random.default_rng(6)
    rtol = 1e-12 if dtype == np.float64 else 1e-5

    def f(x, y):
        return tg.sum((x * 1.1) ** (y * 0.9) * x + 2.0 ** (y * 1.1))

    calls = [[uniform(rng, 0.2, 2, 4100, dtype), uniform(rng, -2, 2, 4100, dtype)] for _ in range(3)]
    cf = compare_calls(f, calls, argnums=(0, 1), rtol=rtol, exact_value=True)
    assert fused_groups(cf) == [[7]]


# ---- graph shapes ----

def test_one_input_read_by_many_rows_and_on_both_sides_sums_its_partials():
    def f(x):
        u = x * 1.5
        return tg.sum(tg.sin(x) * tg.cos(x) + x / x + (x - x) * 3.0 + u * u + u / u - u ** u)

    rng = np.random.default_rng(7)
    x = uniform(rng, 0.2, 2, 3000)
    cf = compare_calls(f, [[x]] + [[uniform(rng, 0.2, 2, 3000)] for _ in range(2)], exact_value=True)
    assert fused_groups(cf) == [[15]]
    u = 1.5 * x
    closed = np.cos(2 * x) + 3.0 * u - 1.5 * u ** u * (np.log(u) + 1)
    np.testing.assert_allclose(cf.grad(x), closed, rtol=1e-12, atol=1e-12)


def test_two_groups_sharing_inputs_and_a_root_read_by_another_group_match_eager():
    def f(x, w):
        a = tg.exp(x * w) * 2.0       # a root: the sum and the second group read it
        b = tg.sin(a + w) * a
        c = tg.cos(x - w) * 3.0       # a third group on the same inputs
        return tg.sum(a) + tg.sum(b) * tg.sum(c)

    rng = np.random.default_rng(8)
    cf = compare_calls(f, [[uniform(rng, 0.2, 2, 3000) for _ in range(2)] for _ in range(3)], argnums=(0, 1))
    assert sorted(fused_groups(cf)[0]) == [2, 3, 3, 3]


def test_hooks_that_change_a_roots_gradient_reach_the_partials():
    def f(x):
        r = tg.exp(x * 0.5) * 2.0
        r.register_hook(lambda g: g * 3.0)
        x.register_hook(lambda g: g * 2.0)
        return tg.sum(r * x + 1.0)

    rng = np.random.default_rng(9)
    cf = compare_calls(f, [[uniform(rng, 0.1, 1, 3000)] for _ in range(3)])
    assert fused_groups(cf) == [[2, 3]]
    x = uniform(rng, 0.1, 1, 3000)
    r = np.exp(0.5 * x) * 2.0
    np.testing.assert_allclose(cf.grad(x), 2 * (3 * x * 0.5 * r + r), rtol=1e-13)


def test_a_function_reading_a_value_of_a_chain_keeps_it_computed():
    class Square(tg.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x.data ** 2

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return 2 * x * g

    def f(x):
        u = x * 2.0
        return tg.sum(tg.exp(u) * Square.apply(u) + u)

    rng = np.random.default_rng(10)
    cf = compare_calls(f, [[uniform(rng, 0.1, 1, 3000)] for _ in range(3)])
    assert fused_groups(cf) == [[3]]


def test_argnums_subsets_take_only_the_partials_they_need():
    def f(x, w, b):
        return tg.sum(tg.tanh(x * w + b) * tg.exp(-x * x) * b)

    rng = np.random.default_rng(11)
    calls = [[uniform(rng, 0.2, 2, 3000) for _ in range(3)] for _ in range(2)]
    for argnums in [0, 1, 2, (1, 2), (2, 0)]:
        compare_calls(f, calls, argnums=argnums)
    cf = tg.compile(f, argnums=(0, 1, 2))
    for argnums in [0, (1,), (2, 0), (0, 1, 2), 1]:
        assert_like_eager(cf.value_and_grad(*calls[0], argnums=argnums), tg.value_and_grad(f, argnums)(*calls[0]))
    assert all(sizes == [8] for sizes in fused_groups(cf))


def test_seeded_drivers_use_the_partials_once_per_seed():
    """jacobian (a seed per output element), hessian and hvp: the partials outlive one sweep."""
    def vec(x, w):
        return tg.tanh(x * w + 0.2) * tg.exp(-x * x) * w

    def scalar(x, w):
        return tg.sum(vec(x, w))

    rng = np.random.default_rng(12)
    cfv, cfs = tg.compile(vec, argnums=(0, 1)), tg.compile(scalar, argnums=(0, 1))
    for _ in range(2):
        x, w = uniform(rng, 0.2, 2, 40), uniform(rng, 0.2, 2, 40)
        t, e = np.tanh(x * w + 0.2), np.exp(-x * x)
        jx, jw = cfv.jacobian((x, w))
        np.testing.assert_allclose(jx, np.diag((1 - t * t) * w * e * w - 2 * x * t * e * w), rtol=1e-12)
        np.testing.assert_allclose(jw, np.diag((1 - t * t) * x * e * w + t * e), rtol=1e-12)
        for got, want in zip(np.ravel(cfs.hessian((x, w))), np.ravel(tg.hessian(scalar, (x, w)))):
            np.testing.assert_allclose(got, np.asarray(want), rtol=1e-10, atol=1e-13)
        v = (rng.normal(size=40), rng.normal(size=40))
        (_, got), (_, want) = cfs.hvp((x, w), v), tg.hvp(scalar, (x, w), v)
        for g, h in zip(got, want):
            np.testing.assert_allclose(g, np.asarray(h), rtol=1e-10, atol=1e-13)
    assert fused_groups(cfv) == [[8]]
    assert all(max(sizes) >= 4 for driver in cfs._drivers.values() for sizes in fused_groups(driver))


def test_nested_compile_and_create_graph_inside_f_fuse_and_match_eager():
    inner = tg.compile(lambda x: tg.exp(x * 2.0) * 3.0 + x)

    def outer(x):
        return tg.sum(inner(x * 1.5) * x)

    def second_order(x):
        y = x * 1.0
        (g,) = tg.grad(tg.sum(tg.exp(y * 2.0) * y), y, create_graph=True)
        return tg.sum(g * g * 0.5 + x)

    rng = np.random.default_rng(13)
    calls = [[uniform(rng, 0.2, 2, 3000)] for _ in range(3)]
    assert fused_groups(compare_calls(outer, calls)) == [[6]]
    assert fused_groups(compare_calls(second_order, calls)) == [[11]]


# ---- numerics ----

def test_nan_and_infinite_inputs_and_a_bad_value_in_one_block_match_eager():
    rng = np.random.default_rng(14)

    def f(x):
        return tg.sum(tg.log(x * 1.0) * x + tg.exp(x * 0.5))

    special = uniform(rng, 0.2, 2, 5000)
    special[[3, 2500, 4000]] = [np.nan, np.inf, -np.inf]
    zero_in_last_block = uniform(rng, 0.2, 2, 5000)
    zero_in_last_block[4500] = 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # here as eagerly
        cf = compare_calls(f, [[uniform(rng, 0.2, 2, 5000)], [special], [zero_in_last_block],
                               [uniform(rng, 0.2, 2, 5000)]])
    assert fused_groups(cf) == [[6]]


def test_subnormal_inputs_and_negative_zero_match_eager():
    rng = np.random.default_rng(15)
    x = uniform(rng, 0.2, 2, 3000)
    x[:100], x[100] = 1e-310, -0.0
    cf = compare_calls(lambda x: tg.sum(tg.sqrt(x * 1.0) * x + x * x), [[uniform(rng, 0.2, 2, 3000)], [x]],
                       exact_value=True)
    assert fused_groups(cf) == [[5]]


def test_a_number_out_of_float32_range_warns_on_replays_as_eagerly():
    rng = np.random.default_rng(16)

    def f(x):
        return tg.sum((x * 1e300 + 1.0) * 2.0)

    cf, eager = tg.compile(f), tg.value_and_grad(f)
    with pytest.warns(RuntimeWarning, match="overflow encountered in cast"):
        cf(uniform(rng, 0.2, 2, 3000, np.float32))  # traced
    for _ in range(2):
        x = uniform(rng, 0.2, 2, 3000, np.float32)
        with warnings.catch_warnings(record=True) as got:
            warnings.simplefilter("always")
            value = cf.value_and_grad(x)
        with warnings.catch_warnings(record=True) as want:
            warnings.simplefilter("always")
            want_value = eager(x)
        assert [str(w.message) for w in got] == [str(w.message) for w in want]
        assert_like_eager(value, want_value, exact_value=True)
    assert fused_groups(cf) == [[3]]


# ---- memory, threads, reentrancy, errors ----

def test_memory_stays_flat_over_ten_thousand_fused_calls():
    rng = np.random.default_rng(17)
    cf = tg.compile(chain, argnums=(0, 1))
    x, w = uniform(rng, 0.1, 1, 600), uniform(rng, 0.1, 1, 600)
    def calls(n):
        for k in range(n):
            cf.value_and_grad(x, w) if k % 2 else cf(x, w)

    tracemalloc.start()
    try:
        calls(10_000)  # the pool, the free lists and tracemalloc's own tables fill
        before = tracemalloc.get_traced_memory()[0]
        calls(10_000)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 16 * 1024, grown  # one 600-element array is 4.8 KB: a leak per call would be MBs
    assert fused_groups(cf) == [[10]]


def test_gradients_handed_over_from_partials_are_not_reused_by_later_calls():
    rng = np.random.default_rng(18)
    cf = tg.compile(chain, argnums=(0, 1))
    eager = tg.value_and_grad(chain, (0, 1))
    held = []
    for _ in range(5):
        x, w = uniform(rng, 0.1, 1, 3000), uniform(rng, 0.1, 1, 3000)
        held.append((x, w, cf.value_and_grad(x, w)))
        cf(x, w)
        cf.vjp((x, w), 2.0)
    for x, w, got in held:
        assert_like_eager(got, eager(x, w))


def test_threads_with_mixed_sizes_and_argnums_each_get_their_own_answer():
    cf = tg.compile(chain, argnums=(0, 1))

    def work(seed):
        rng = np.random.default_rng(seed)
        for k in range(24):
            n, argnums = [1, 100, 2049, 5000][k % 4], [(0, 1), 0, (1,)][k % 3]
            x, w = uniform(rng, 0.1, 1, n), uniform(rng, 0.1, 1, n)
            assert_like_eager(cf.value_and_grad(x, w, argnums=argnums), tg.value_and_grad(chain, argnums)(x, w))

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(work, range(4)))  # re-raises a thread's failure here
    assert all(sizes == [10] for sizes in fused_groups(cf))


def test_a_hook_calling_the_same_compiled_function_gets_its_own_replay():
    state = {"depth": 0, "inner": []}
    rng = np.random.default_rng(19)

    def f(x):
        u = tg.exp(x * 0.5) * 2.0

        def hook(g):
            if state["depth"] == 0:
                state["depth"] += 1
                try:
                    y = uniform(rng, 0.2, 2, 3000)
                    state["inner"].append((y, state["cf"].value_and_grad(y)))
                finally:
                    state["depth"] -= 1
            return g

        u.register_hook(hook)
        return tg.sum(tg.sin(u * 1.0) * u)

    cf = state["cf"] = tg.compile(f)
    eager = tg.value_and_grad(f)
    for _ in range(3):
        x = uniform(rng, 0.2, 2, 3000)
        got = cf.value_and_grad(x)
        state["depth"] = 1  # the eager runs do not call back
        assert_like_eager(got, eager(x))
        y, inner = state["inner"][-1]
        assert_like_eager(inner, eager(y))
        state["depth"] = 0
    assert all(sizes == [3, 3] for sizes in fused_groups(cf))


def test_a_failure_in_the_middle_of_a_replay_leaves_the_groups_sound():
    class Checked(tg.Function):
        @staticmethod
        def forward(ctx, x):
            if np.any(x.data > 100):
                raise ValueError("too large")
            return x.data * 1.0

        @staticmethod
        def backward(ctx, g):
            return g

    def f(x):
        u = tg.exp(x * 0.5) * 2.0
        return tg.sum(tg.sin(Checked.apply(u) * 1.0) * u)

    rng = np.random.default_rng(20)
    cf = compare_calls(f, [[uniform(rng, 0.1, 1, 3000)]])
    with pytest.raises(ValueError, match="too large"):
        cf.value_and_grad(uniform(rng, 9, 10, 3000))
    with pytest.raises(TypeError, match="complex128"):
        cf.value_and_grad(np.ones(3000, complex))
    x = uniform(rng, 0.1, 1, 3000)
    assert_like_eager(cf.value_and_grad(x), tg.value_and_grad(f)(x))
    assert fused_groups(cf) == [[3, 3]]


# ---- bugs found (fixed: regression tests), and one known difference ----

@pytest.mark.parametrize("mode", ["raise", "warn", "call"])
def test_an_underflow_under_errstate_under_acts_as_eagerly(mode):
    def f(x):
        return tg.sum(tg.exp(x * -1.0) * x)  # exp(-720) is subnormal: underflow

    cf, eager = tg.compile(f), tg.value_and_grad(f)
    cf.value_and_grad(np.linspace(0.5, 1.5, 3000))
    x = np.linspace(0.5, 1.5, 3000)
    x[2500] = 720.0
    outcomes = []
    for run in (cf.value_and_grad, eager):
        calls = []

        def handler(kind, flag, calls=calls):
            calls.append(kind)

        with warnings.catch_warnings(record=True) as seen, np.errstate(under=mode, call=handler):
            warnings.simplefilter("always")
            try:
                run(x)
                outcomes.append(([str(w.message) for w in seen], len(calls)))
            except FloatingPointError as e:
                outcomes.append(str(e))
    assert outcomes[1] != ([], 0)  # eager did raise, warn or call
    assert outcomes[0] == outcomes[1]
    assert fused_groups(cf) == [[3]]


def test_partials_that_underflow_where_eager_does_not_keep_eagers_digits():
    def f(x):
        return 1.0 / (x * 1e160)  # d/du 1/u = -1/u**2 ~ 1e-320, a subnormal

    x = np.linspace(0.5, 1.5, 3000)
    v = np.full(3000, 1e100)
    cf = tg.compile(f)
    _, got = cf.vjp(x, v)
    _, want = tg.vjp(f, x, v)
    np.testing.assert_allclose(np.asarray(want), -1e100 / (x * x * 1e160), rtol=1e-13)  # eager: the closed form
    assert fused_groups(cf) == [[2]]
    np.testing.assert_allclose(got, np.asarray(want), rtol=1e-12)  # fused: relative errors up to 5e-4


@pytest.mark.xfail(strict=True, reason="a known difference (Note [Fused rows]): g * (d1 * d2) stays "
                   "finite where eager's (g * d1) * d2 overflows to inf, and no flag is raised to fall "
                   "back on; the fused answer is the exact one")
def test_partials_give_eagers_infinity_where_eager_overflows():
    def f(x):
        return (x * 1e-10) * 1e10

    x = np.linspace(0.5, 1.5, 3000)
    v = np.full(3000, 1e300)
    cf = tg.compile(f)
    _, got = cf.vjp(x, v)
    _, want = tg.vjp(f, x, v)
    assert np.all(np.isinf(np.asarray(want)))  # eager: 1e300 * 1e10 overflows first
    assert fused_groups(cf) == [[2]]
    np.testing.assert_array_equal(got, np.asarray(want))  # fused: 1e300


def test_the_tracing_call_warns_once_as_eager():
    def f(x):
        return tg.sum(tg.log(x * 1.0) * 2.0)

    x = np.linspace(-1.0, 1.0, 3000)
    for run in (tg.value_and_grad(f), tg.compile(f).value_and_grad):
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            run(x)
        assert [str(w.message) for w in seen] == ["invalid value encountered in log"]


def test_eager_maximum_of_pooled_arrays_passes_out_by_keyword():
    """numpy 2.4 deprecates np.maximum(a, b, out): array_forward passes out= by keyword."""
    x = np.linspace(0.01, 1.0, 5000)  # no ties
    value, grad = tg.value_and_grad(lambda x: tg.sum(tg.maximum(x, x * 0.5) + tg.minimum(x, 0.5)))(x)
    assert value == pytest.approx(np.sum(x + np.minimum(x, 0.5)), rel=1e-13)
    np.testing.assert_array_equal(grad, 1.0 + (x < 0.5))
