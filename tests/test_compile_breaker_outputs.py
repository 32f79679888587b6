"""Attacks on issue 14's latest parts: drivers of several outputs (Note [Several outputs]),
decorated methods, the bound on argument keys, passed adjoints in fused groups (Note
[Passed adjoints]) and the replay's aging pool.

Each answer is checked against torch.autograd.functional, the eager tapegrad result or a
closed form. The first part holds the ten problems the attack found, each a minimal repro
(they were strict xfails, and are fixed); the rest, attacks that held.
"""

import functools
import sys
import threading
import tracemalloc
import warnings

import numpy as np
import pytest

import tapegrad as tg

from functions import Cube

torch = pytest.importorskip("torch")
functional = torch.autograd.functional


def _threads(target, count):
    workers = [threading.Thread(target=target, args=(k,)) for k in range(count)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


def _t(value):
    """A float64 torch tensor (torch.tensor(2.0) is float32)."""
    return torch.tensor(value, dtype=torch.float64)


def _assert_blocks_close(got, want, rtol=1e-12):
    """got: nested tuples of ndarrays or floats; want: the same of torch tensors."""
    if isinstance(want, torch.Tensor):
        assert np.shape(got) == tuple(want.shape)
        np.testing.assert_allclose(np.asarray(got), want.numpy(), rtol=rtol, atol=rtol)
        return
    assert isinstance(got, tuple) and len(got) == len(want)
    for g, w in zip(got, want):
        _assert_blocks_close(g, w, rtol)


# ---- problems found: strict xfails, a minimal repro each ----

def _ordered_by_sign(x):
    if tg.sum(x) > 0:  # a guard: the outputs' shapes differ by path, the inputs' do not
        return (x[:1] * 1.0, x[1:] * 2.0)
    return (x[1:] * 3.0, x[:1] * 4.0)


def _ordered_by_sign_torch(x):
    return (x[:1] * 1.0, x[1:] * 2.0) if x.sum() > 0 else (x[1:] * 3.0, x[:1] * 4.0)


def test_outputs_whose_shapes_depend_on_a_guard_are_split_by_their_own_path():
    cf = tg.compile(_ordered_by_sign)
    positive, negative = np.array([1.0, 2.0, 3.0]), np.array([-1.0, -2.0, -3.0])
    for x in (positive, negative, positive):
        _assert_blocks_close(cf.jacobian(x), functional.jacobian(_ordered_by_sign_torch,
                                                                 _t(x)))


def test_several_outputs_of_a_float32_numpy_scalar():
    cf = tg.compile(lambda x: (x * 2.0, x * x))
    jacobian = cf.jacobian(np.float32(1.5))
    assert [float(b) for b in jacobian] == [2.0, 3.0]


def test_a_complex_v_for_several_outputs_is_refused():
    cf = tg.compile(lambda x: (x, x * 2.0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(TypeError, match="real"):
            cf.vjp(np.ones(2), (np.ones(2) * 1j, np.ones(2)))


def test_a_complex_v_for_one_output_is_refused():
    cf = tg.compile(lambda x: x * 2.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(TypeError, match="real"):
            cf.vjp(np.ones(2), np.ones(2) * 1j)


def test_nested_outputs_raise_a_type_error_naming_them():
    cf = tg.compile(lambda x: ((x, x * 2.0), x * 3.0))
    with pytest.raises(TypeError, match="output"):
        cf.jacobian(np.ones(2))


def test_the_jacobian_block_of_a_float32_output_is_float32_beside_a_float64_one():
    x = np.arange(1.0, 4.0, dtype=np.float32)
    blocks = tg.compile(lambda x: (x * 2.0, tg.sum(x * np.ones(3)))).jacobian(x)
    assert blocks[0].dtype == np.float32
    np.testing.assert_array_equal(blocks[0], 2.0 * np.eye(3))


class _Scaled:
    scale = 3.0

    @tg.compile(argnums=1)
    def loss(self, w):
        return w * w * self.scale

    @tg.compile
    @staticmethod
    def doubled(w):
        return w * 2.0


def test_drivers_of_a_bound_method_raise_a_clear_error():
    with pytest.raises(TypeError, match="method"):
        _Scaled().loss.jacobian(2.0)


def test_compile_of_a_staticmethod_does_not_bind_the_instance():
    assert _Scaled().doubled.value_and_grad(2.0) == (4.0, 2.0)


def test_threads_tracing_past_the_key_bound_do_not_raise():
    def f(w, labels):
        return tg.sum((w[labels] - 1.0) ** 2)

    cf, w, errors = tg.compile(f), np.linspace(0.0, 1.0, 10), []

    def tracer(seed):
        rng = np.random.default_rng(seed)
        for _ in range(300):
            labels = rng.integers(0, 10, size=6)
            try:
                assert cf.value_and_grad(w, labels)[0] == tg.value_and_grad(f)(w, labels)[0]
            except Exception as error:
                errors.append(repr(error)[:80])

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _threads(tracer, 6)
    finally:
        sys.setswitchinterval(interval)
    assert errors == []


def test_memory_stays_bounded_over_many_input_shapes():
    cf = tg.compile(lambda x: (tg.sum(x), tg.sum(x) * 2.0))

    def call_with_shapes(widths):
        for n in widths:  # empty arrays: each trace the same size, whatever its shape
            cf.jvp(np.ones((0, n)), np.ones((0, n)))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tracemalloc.start()
        try:
            call_with_shapes(range(1, 200))  # past the key bound, every trace made here
            before = tracemalloc.get_traced_memory()[0]
            call_with_shapes(range(200, 700))
            grown = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
    assert grown < 150_000  # unbounded: 500 shapes, about 1.4 MB


# ---- several outputs: attacks that held ----

def _mixed(x):  # a 0-d, an empty and a (2, 3) output
    return (tg.sum(x * x), x[:0] * 1.0, tg.reshape(x, (2, 3)) * 2.0)


def test_outputs_of_mixed_shapes_against_closed_forms():
    x = np.arange(1.0, 7.0)
    cf = tg.compile(_mixed)
    for _ in range(2):  # the trace, then a replay
        square, empty, grid = cf.jacobian(x)
        np.testing.assert_array_equal(square, 2.0 * x)
        assert empty.shape == (0, 6)
        np.testing.assert_array_equal(grid, 2.0 * np.eye(6).reshape(2, 3, 6))
        values, pulled = cf.vjp(x, (0.5, np.zeros(0), np.ones((2, 3))))
        assert values[0] == 91.0 and values[1].shape == (0,)
        np.testing.assert_array_equal(values[2], 2.0 * x.reshape(2, 3))
        np.testing.assert_array_equal(pulled, x + 2.0)
        values, tangents = cf.jvp(x, np.ones(6))
        assert tangents[0] == 42.0 and tangents[1].shape == (0,)
        np.testing.assert_array_equal(tangents[2], np.full((2, 3), 2.0))


def _two_outputs(x, y):
    return (x * y, tg.sum(tg.sin(x)) * y)


def _two_outputs_torch(x, y):
    return (x * y, torch.sin(x).sum() * y)


@pytest.mark.parametrize("shape", [(), (1,), (2, 3)])
def test_several_outputs_match_torch_functional(shape):
    rng = np.random.default_rng(3)
    cf = tg.compile(_two_outputs)
    for _ in range(3):
        x, y = rng.normal(size=shape), float(rng.normal())
        tx, ty = _t(x), _t(y)
        _assert_blocks_close(cf.jacobian((x, y)),
                             functional.jacobian(_two_outputs_torch, (tx, ty)))
        v = (rng.normal(size=shape), float(rng.normal()))
        tv = tuple(_t(a) for a in v)
        _assert_blocks_close(cf.vjp((x, y), v), functional.vjp(_two_outputs_torch, (tx, ty), tv))
        d = (rng.normal(size=shape), float(rng.normal()))
        td = tuple(_t(a) for a in d)
        _assert_blocks_close(cf.jvp((x, y), d), functional.jvp(_two_outputs_torch, (tx, ty), td))


def test_float32_inputs_with_float32_and_float64_outputs():
    x = np.arange(1.0, 4.0, dtype=np.float32)
    cf = tg.compile(lambda x: (x * 2.0, tg.sum(x * np.ones(3))))  # float32, float64
    (doubled, total), pulled = cf.vjp(x, (np.ones(3, np.float32), 1.0))
    assert doubled.dtype == np.float32 and total == 6.0 and pulled.dtype == np.float32
    np.testing.assert_array_equal(pulled, np.full(3, 3.0))
    (_, _), (d_doubled, d_total) = cf.jvp(x, np.ones(3, np.float32))
    assert d_doubled.dtype == np.float32 and d_total == 3.0


def test_constant_and_input_outputs():
    x, y = np.array([1.0, 2.0]), np.array([3.0, 4.0])
    blocks = tg.compile(lambda x: (x * 2.0, 3.0, np.ones(2))).jacobian(x)
    np.testing.assert_array_equal(blocks[0], 2.0 * np.eye(2))
    assert blocks[1].shape == (2,) and not blocks[1].any() and not blocks[2].any()
    values, pulled = tg.compile(lambda x, y: (x, y * x)).vjp((x, y), (np.ones(2), np.ones(2)))
    np.testing.assert_array_equal(values[0], x)
    np.testing.assert_array_equal(pulled[0], 1.0 + y)
    np.testing.assert_array_equal(pulled[1], x)
    _, tangents = tg.compile(lambda x, y: (y, x)).jvp((x, y), (np.ones(2), 2.0 * np.ones(2)))
    np.testing.assert_array_equal(tangents[0], 2.0 * np.ones(2))


def test_a_list_of_outputs_is_as_a_tuple():
    x = np.array([1.0, 2.0])
    blocks = tg.compile(lambda x: [x * x, x * 2.0]).jacobian(x)
    assert isinstance(blocks, tuple)
    np.testing.assert_array_equal(blocks[0], np.diag(2.0 * x))
    np.testing.assert_array_equal(blocks[1], 2.0 * np.eye(2))


def test_a_tuple_for_one_shape_and_one_output_for_another():
    def f(x):
        return (x * 2.0, tg.sum(x)) if x.shape[0] == 2 else x * 3.0

    cf = tg.compile(f)
    for _ in range(2):
        doubled, total = cf.jacobian(np.ones(2))
        np.testing.assert_array_equal(doubled, 2.0 * np.eye(2))
        np.testing.assert_array_equal(total, np.ones(2))
        np.testing.assert_array_equal(cf.jacobian(np.ones(3)), 3.0 * np.eye(3))


def test_value_and_grad_of_several_outputs_raises_then_the_drivers_work():
    cf = tg.compile(lambda x: (tg.sum(x), x * 2.0))
    with pytest.raises(TypeError, match="2 outputs"):
        cf.value_and_grad(np.ones(2))
    _, doubled = cf.jacobian(np.ones(2))
    np.testing.assert_array_equal(doubled, 2.0 * np.eye(2))
    with pytest.raises(TypeError, match="2 outputs"):
        cf.grad(np.ones(2))


def test_v_of_the_wrong_count_or_shape_is_refused():
    cf = tg.compile(lambda x: (x, x * 2.0))
    with pytest.raises(ValueError, match="2 outputs"):
        cf.vjp(np.ones(2), (np.ones(2),))
    with pytest.raises(ValueError, match="2 outputs"):
        cf.vjp(np.ones(2), np.ones((2, 2)))
    with pytest.raises(ValueError, match=r"output 0 must have its shape \(2,\)"):
        cf.vjp(np.ones(2), (np.ones(3), np.ones(2)))
    with pytest.raises(ValueError, match="one element"):
        cf.vjp(np.ones(2))
    with pytest.raises(TypeError, match="real"):
        cf.jvp(np.ones(2), np.ones(2) * 1j)


def test_several_outputs_under_fallback_after_an_escape():
    def f(x):
        scale = float(tg.sum(x))  # an escape
        return (x * scale, tg.sum(x) * 2.0)

    x = np.array([1.0, 2.0])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cf = tg.compile(f, fallback="eager")
        scaled, doubled = cf.jacobian(x)
        (_, total), pulled = cf.vjp(x, (np.ones(2), 1.0))
        _, (d_scaled, d_total) = cf.jvp(x, np.ones(2))
    assert [w.category for w in caught] == [tg.TraceWarning]
    np.testing.assert_array_equal(scaled, 3.0 * np.eye(2))  # the scale is a constant
    np.testing.assert_array_equal(doubled, [2.0, 2.0])
    assert total == 6.0 and d_total == 4.0
    np.testing.assert_array_equal(pulled, [5.0, 5.0])
    np.testing.assert_array_equal(d_scaled, [3.0, 3.0])


def _hooked(x):
    y = x * 2.0
    y.register_hook(lambda g: g * 10.0)
    return (y * 1.0, tg.sum(y))


def _hooked_torch(x):
    y = x * 2.0
    y.register_hook(lambda g: g * 10.0)
    return (y * 1.0, y.sum())


def test_hooks_and_functions_with_several_outputs_match_torch():
    x = np.array([1.0, -2.0])
    cf = tg.compile(_hooked)
    for _ in range(2):
        _assert_blocks_close(cf.jacobian(x), functional.jacobian(_hooked_torch, _t(x)))
        _assert_blocks_close(cf.vjp(x, (np.ones(2), 1.0)), functional.vjp(
            _hooked_torch, _t(x), (torch.ones(2, dtype=torch.float64),
                                             _t(1.0))))
    cubes = tg.compile(lambda x: (Cube.apply(x), tg.sum(Cube.apply(x))))
    cube, total = cubes.jacobian(x)
    np.testing.assert_array_equal(cube, np.diag(3.0 * x * x))
    np.testing.assert_array_equal(total, 3.0 * x * x)


def test_threads_calling_the_drivers_of_several_outputs():
    cf, errors = tg.compile(_two_outputs), []

    def worker(seed):
        rng = np.random.default_rng(seed)
        for _ in range(40):
            x, y = rng.normal(size=int(rng.integers(1, 5))), float(rng.normal())
            try:
                _assert_blocks_close(cf.jacobian((x, y)), functional.jacobian(
                    _two_outputs_torch, (_t(x), _t(y))))
            except Exception as error:
                errors.append(repr(error)[:80])

    _threads(worker, 4)
    assert errors == []


# ---- methods: attacks that held ----

class _Model:
    scale = 3.0

    @tg.compile(argnums=1)
    def loss(self, w):
        return w * w * self.scale

    @classmethod
    @tg.compile(argnums=1)
    def per_class(cls, w):
        return w * cls.scale

    @staticmethod
    @tg.compile
    def doubled(w):
        return w * 2.0

    @tg.compile(argnums=1)
    def __call__(self, w):
        return w * self.scale


def test_methods_classmethods_staticmethods_and_call():
    model = _Model()
    assert model.loss.value_and_grad(2.0) == (12.0, 12.0)
    assert _Model.loss.value_and_grad(model, 2.0) == (12.0, 12.0)
    assert _Model.per_class.value_and_grad(2.0) == (6.0, 3.0)
    assert model.doubled.value_and_grad(2.0) == (4.0, 2.0)
    assert model(2.0) == 6.0 and model.__call__.grad(2.0) == 3.0


def test_an_attribute_is_a_constant_of_the_trace_and_each_instance_its_own():
    model, other = _Model(), _Model()
    assert model.loss.value_and_grad(2.0) == (12.0, 12.0)
    model.scale = 5.0  # documented: read at the trace, a constant after
    assert model.loss.value_and_grad(2.0) == (12.0, 12.0)
    other.scale = 7.0
    assert other.loss.value_and_grad(2.0) == (28.0, 28.0)


def test_unhashable_instances_raise_naming_the_way_out():
    class Compared:
        def __eq__(self, other):
            return True

        @tg.compile(argnums=1)
        def loss(self, w):
            return w * 2.0

    with pytest.raises(TypeError, match="nor hashable; pass it as a constant through a closure"):
        Compared().loss.value_and_grad(2.0)


def test_pickling_an_instance_and_its_bound_method():
    import pickle

    model = _Model()
    copied = pickle.loads(pickle.dumps(model))
    assert copied.loss.value_and_grad(2.0) == (12.0, 12.0)
    assert pickle.loads(pickle.dumps(model.loss)).value_and_grad(1.0) == (3.0, 6.0)


# ---- the bound on keys: attacks that held ----

def _by_labels(w, labels):
    return tg.sum((w[labels] - 1.0) ** 2)


def test_labels_changing_every_call_warn_once_keep_memory_flat_and_answer_as_eager():
    cf, w, rng = tg.compile(_by_labels), np.linspace(0.0, 1.0, 10), np.random.default_rng(4)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(200):
            labels = rng.integers(0, 10, size=5)
            value, g = cf.value_and_grad(w, labels)
            eager_value, eager_g = tg.value_and_grad(_by_labels)(w, labels)
            assert value == eager_value
            np.testing.assert_array_equal(g, eager_g)
        tracemalloc.start()
        try:  # memory traced, it grows to a plateau (the traces, their pools): then flat
            for _ in range(2000):
                cf.value_and_grad(w, rng.integers(0, 10, size=5))
            before = tracemalloc.get_traced_memory()[0]
            for _ in range(1500):
                cf.value_and_grad(w, rng.integers(0, 10, size=5))
            grown = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
    assert len(caught) == 1 and "64 argument keys" in str(caught[0].message)
    assert cf.trace_count <= 64
    assert grown < 20_000  # a trace each call would be hundreds of kilobytes


def test_fallback_keys_are_bounded_and_warn_once():
    def escapes(w, k):
        return w * float(tg.sum(w)) * k

    cf = tg.compile(escapes, fallback="eager")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for k in range(150):
            assert cf.value_and_grad(2.0, k) == tg.value_and_grad(escapes)(2.0, k) == (4.0 * k, 2.0 * k)
    assert len(caught) == 1 and len(cf._eager_keys) <= 64


def test_a_trace_evicted_while_other_threads_replay_it():
    def f(w, labels):
        return tg.sum(tg.tanh(w[labels] @ np.ones((32, 32))) ** 2)

    w, hot = np.linspace(0.0, 1.0, 320).reshape(10, 32), np.array([1, 2, 3])
    cf, (want, want_g), errors = tg.compile(f), tg.value_and_grad(f)(w, hot), []

    def worker(k):
        rng = np.random.default_rng(k)
        for _ in range(100):
            labels = hot if k % 2 else rng.integers(0, 10, size=4)
            try:
                value, g = cf.value_and_grad(w, labels)
                if k % 2:
                    assert value == want
                    np.testing.assert_allclose(g, want_g, rtol=1e-12)
            except AssertionError as error:
                errors.append(repr(error)[:80])

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _threads(worker, 2)  # two threads: the key race needs several tracers
    assert errors == []


# ---- passed adjoints in fused groups: attacks that held ----

_SUMS = {
    "x+y": lambda a, b, c, d: a + b,
    "x-y": lambda a, b, c, d: a - b,
    "(a+b)+(c+d)": lambda a, b, c, d: (a + b) + (c + d),
    "a+a": lambda a, b, c, d: a + a,
    "a-a": lambda a, b, c, d: a - a,
    "a+(a+b)": lambda a, b, c, d: a + (a + b),
    "50 terms": lambda a, b, c, d: functools.reduce(
        lambda s, k: s + (a * float(k) if k % 3 else b), range(50), c),
    "two readers": lambda a, b, c, d: (lambda t: t * c + t - d)(a + b),
    "subs through subs": lambda a, b, c, d: a - (b - (c - d)),
    "scalar rows": lambda a, b, c, d: (a + 2.0) - (3.0 - b) + c * 0.5 - d,
    "t+t-t": lambda a, b, c, d: (lambda t: (t + t) - t)(a - b),
}
# d/d(a, b, c, d) of sum(expr * weights), per unit of weights
_CLOSED_FORMS = {
    "x+y": (1, 1, 0, 0), "x-y": (1, -1, 0, 0), "(a+b)+(c+d)": (1, 1, 1, 1), "a+a": (2, 0, 0, 0),
    "a-a": (0, 0, 0, 0), "a+(a+b)": (2, 1, 0, 0), "subs through subs": (1, -1, 1, -1),
    "scalar rows": (1, 1, 0.5, -1), "t+t-t": (1, -1, 0, 0),
    "50 terms": (sum(k for k in range(50) if k % 3), sum(1 for k in range(50) if k % 3 == 0), 1, 0),
}


@pytest.mark.parametrize("n", [1, 2047, 2049, 2**17 + 3])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_passed_adjoints_against_eager_and_closed_forms(n, dtype):
    rng = np.random.default_rng(n)
    xs = [rng.normal(size=n).astype(dtype) for _ in range(4)]
    weights = np.linspace(-1.0, 1.0, n).astype(dtype)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for name, expr in _SUMS.items():
        def f(a, b, c, d, expr=expr):
            return tg.sum(expr(a, b, c, d) * weights)

        cf = tg.compile(f, argnums=(0, 1, 2, 3))
        eager_value, eager_grads = tg.value_and_grad(f, argnums=(0, 1, 2, 3))(*xs)
        for _ in range(2):  # the trace's replay, then a replay
            value, grads = cf.value_and_grad(*xs)
            assert value == eager_value, name
            for g, eager_g in zip(grads, eager_grads):
                assert g.dtype == dtype
                np.testing.assert_allclose(g, eager_g, rtol=tol, atol=tol, err_msg=name)
            if name in _CLOSED_FORMS:
                for g, unit in zip(grads, _CLOSED_FORMS[name]):
                    np.testing.assert_allclose(g, unit * weights, rtol=tol, atol=tol,
                                               err_msg=name)
            elif name == "two readers":  # t = a + b; t * c + t - d
                np.testing.assert_allclose(grads[2], (xs[0] + xs[1]) * weights, rtol=tol,
                                           atol=tol)
                np.testing.assert_allclose(grads[0], (xs[2] + 1) * weights, rtol=tol, atol=tol)


@pytest.mark.parametrize("n", [5, 2049])
def test_passed_adjoints_under_a_seed_leave_v_alone_and_match_torch(n):
    rng = np.random.default_rng(5)
    a, b = rng.normal(size=n), rng.normal(size=n)
    cf = tg.compile(lambda a, b: tg.tanh(a + b) + (a - b) + (b - a) - a)
    for _ in range(3):
        v = rng.normal(size=n)
        kept = v.copy()
        value, pulled = cf.vjp((a, b), v)
        ta, tb = _t(a), _t(b)
        _assert_blocks_close((value, pulled), functional.vjp(
            lambda a, b: torch.tanh(a + b) + (a - b) + (b - a) - a, (ta, tb), _t(v)))
        np.testing.assert_array_equal(v, kept)


# ---- the aging pool: results held every way stay as they were returned ----

def test_results_held_every_way_do_not_change_across_calls():
    rng = np.random.default_rng(6)
    matrix = rng.normal(size=(48, 48)) + 48.0 * np.eye(48)

    def numpy_made(w):  # gradients allocated by numpy: matmul, einsum, solve
        s = np.linalg.solve(matrix, np.einsum("ij,jk->ik", w @ matrix, matrix.T))
        return tg.sum(tg.tanh(s) * 2.0 + s)

    def fused(w):
        return tg.sum((w + 1.0) * (w - 2.0) + tg.tanh(w))

    views = [lambda g: g[1:, ::2], lambda g: g.base if g.base is not None else g, memoryview,
             lambda g: np.frombuffer(g, dtype=g.dtype).reshape(g.shape), lambda g: g.T,
             lambda g: g.reshape(-1)[:10], lambda g: None]
    compiled = [(tg.compile(numpy_made), numpy_made), (tg.compile(fused), fused)]
    jacobian_of = tg.compile(lambda x: tg.tanh(x @ matrix[:6, :6]) * 2.0)
    kept = []
    for i in range(70):
        w = rng.normal(size=(48, 48))
        for cf, f in compiled:
            g = cf.grad(w)
            np.testing.assert_allclose(g, tg.value_and_grad(f)(w)[1], rtol=1e-10)
            held = views[i % len(views)](g)
            if held is not None:
                kept.append((held, np.array(held, copy=True)))
            del g
        if i % 10 == 0:  # many lent arrays at once: a jacobian's seeds
            blocks = jacobian_of.jacobian(rng.normal(size=(3, 6)))
            kept.append((blocks, blocks.copy()))
        for held, copy in kept:
            np.testing.assert_array_equal(np.asarray(held), copy)
