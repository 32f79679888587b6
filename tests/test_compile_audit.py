"""Audit of issue 14 (compiled tapes), line by line, as a numpy or PyTorch user meets it.

Each test names the issue's line it checks. The lines that held are plain tests that compare
`tapegrad.compile` with the eager `tapegrad.value_and_grad`, closed forms, or PyTorch. The
gaps it found (at the end) were strict xfails, each a minimal repro; they are fixed, and their
tests now hold.
"""

import collections
import copy
import functools
import gc
import io
import pickle
import re
import tracemalloc
import warnings
import weakref
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

import tapegrad as tg

from functions import Cube

ROOT = Path(__file__).parents[1]
X = np.array([1.0, -2.0, 3.0])
Pair = collections.namedtuple("Pair", "a b")


def assert_same(got, want):
    """The same structure, types, dtypes, shapes and values (as the eager results)."""
    assert type(got) is type(want), (got, want)
    if isinstance(want, dict):
        assert list(got) == list(want)
        for k in want:
            assert_same(got[k], want[k])
    elif isinstance(want, (list, tuple)):
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert_same(g, w)
    elif isinstance(want, np.ndarray):
        assert (got.dtype, got.shape) == (want.dtype, want.shape)
        np.testing.assert_allclose(got, want, rtol=1e-6)
    else:
        assert got == pytest.approx(want, rel=1e-12)


# ---- the README's and the guide's examples, verbatim ----

def test_the_readme_example_runs_and_its_jvp_is_the_closed_form():
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Compiled tapes"):text.index("## Speed")]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)
    loss, w, x, y = scope["loss"], scope["w"], scope["x"], scope["y"]
    # at w = 0: p = 0, the branch is not taken, d loss = mean(2 (p - y) * 3) = -6
    assert scope["jt"] == pytest.approx(-6.0)
    eager = tg.value_and_grad(loss.__wrapped__)(w + 0.1, x, y)
    assert_same((scope["value"], scope["grad"]), eager)
    assert loss.trace_count == 3  # both branches, and the jvp's key (every argument a leaf)


def test_the_guides_doctest_block_runs_as_printed():
    import doctest
    text = (ROOT / "docs/guides/compiled.md").read_text()
    blocks = re.findall(r"```\{doctest\}\n(.*?)```", text, re.S)
    assert blocks
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for i, block in enumerate(blocks):
        tg.clear_history()
        runner.run(doctest.DocTestParser().get_doctest(block, {"np": np, "tg": tg}, f"b{i}",
                                                       "compiled.md", 0))
    failed, attempted = runner.summarize(verbose=False)
    assert (failed, attempted) == (0, 11)


# ---- Deliver 1: the eager value_and_grad's signature and results ----

ARGUMENT_KINDS = {
    "float": (lambda a: a * a * 3.0, 0, [(2.0,), (3.0,)]),
    "int (as float)": (lambda a: a * a * 3.0, 0, [(2,), (3,)]),
    "0-d array": (lambda a: a * a * 3.0, 0, [(np.array(2.0),), (np.array(3.0),)]),
    "numpy float32 scalar": (lambda a: a * a, 0, [(np.float32(2.0),), (np.float32(3.0),)]),
    "float32 array": (lambda a: tg.sum(a * 2.5), 0, [(X.astype(np.float32),), (X.astype(np.float32) * 2,)]),
    "int array (as float64)": (lambda a: tg.sum(a * a), 0, [(np.arange(3),), (np.arange(3) + 1,)]),
    "tuple argnums": (lambda a, b, c: tg.sum(a * b) + c, (0, 2), [(X, X + 1, 2.0), (X + 1, X, 3.0)]),
    "negative argnums": (lambda a, b: tg.sum(a * b), -1, [(X, X + 1), (X + 1, X)]),
    "nested dict list tuple": (
        lambda p: tg.sum(p["w"][0] * p["w"][1]["z"]) * p["s"][1], 0,
        [({"w": [X, {"z": X + 1}], "s": (1.0, 2.0)},), ({"w": [X * 2, {"z": X}], "s": (1.0, 3.0)},)]),
    "namedtuple": (lambda p: tg.sum(p.a * p.b), 0, [(Pair(X, X + 1),), (Pair(X + 2, X),)]),
    "Tensors": (lambda a, b: tg.sum(a * b), (0, 1), [(tg.Tensor(X), tg.tensor(X)), (tg.Tensor(X + 1), tg.tensor(X))]),
    "empty array": (lambda a: tg.sum(a * a) + 1.0, 0, [(np.zeros((0, 3)),), (np.zeros((0, 3)),)]),
    "static int and str": (lambda a, n, mode: tg.sum(a ** n) if mode == "pow" else tg.sum(a), 0,
                           [(X, 2, "pow"), (X, 3, "pow"), (X + 1, 2, "sum")]),
    "list of ints": (lambda a: a[0] * a[1], 0, [([1, 2],), ([3, 4],)]),
}


@pytest.mark.parametrize("kind", ARGUMENT_KINDS)
def test_compile_gives_the_eager_value_and_grad_on_every_kind_of_argument(kind):
    f, argnums, calls = ARGUMENT_KINDS[kind]
    cf = tg.compile(f, argnums=argnums)
    for args in calls:
        for _ in range(2):  # the trace, then a replay
            assert_same(cf.value_and_grad(*args), tg.value_and_grad(f, argnums)(*args))
        assert_same(cf.grad(*args), tg.value_and_grad(f, argnums)(*args)[1])


def test_keyword_arguments_reach_f_on_the_trace_and_the_replays():
    def f(a, scale=1.0, power=2):
        return tg.sum(a ** power) * scale

    cf = tg.compile(f)
    for scale in (2.0, 5.0):
        assert_same(cf.value_and_grad(X, scale=scale, power=3),
                    tg.value_and_grad(f)(X, scale=scale, power=3))
    assert cf.trace_count == 1  # a float keyword is a value of the trace, not its key


def test_the_decorator_with_and_without_arguments_and_as_a_staticmethod():
    @tg.compile
    def plain(a):
        return tg.sum(a * a)

    @tg.compile(argnums=(0, 1), fallback="eager")
    def both(a, b):
        return tg.sum(a * b)

    class Model:
        @staticmethod
        @tg.compile
        def loss(a):
            return tg.sum(a ** 3)

    assert_same(plain.value_and_grad(X), (14.0, 2 * X))
    assert_same(both.grad(X, X + 1), (X + 1, X))
    assert_same(Model().loss.value_and_grad(X), (float(np.sum(X ** 3)), 3 * X ** 2))
    assert (plain.__name__, both.__name__) == ("plain", "both")


def test_a_non_scalar_tensor_value_gets_a_type_error_naming_its_shape():
    with pytest.raises(TypeError, match=r"\(3,\)"):
        tg.compile(lambda a: a * a).value_and_grad(X)
    with pytest.raises(TypeError, match=r"\(0,\)"):
        tg.compile(lambda a: a[:0]).value_and_grad(X)


# ---- Deliver 2: guards ----

def _trip_count(x):
    while x < 100.0:
        x = x * 2.0
    return x


def _loss_threshold(x):
    loss = x * x
    return loss * 2.0 if loss > 4.0 else loss


GUARDED = {
    "piecewise": (lambda x: x * x if x > 0 else -x, 2.0, -3.0),
    "if loss > threshold": (_loss_threshold, 1.0, 3.0),
    "value-dependent trip count": (_trip_count, 1.0, 3.0),
    "max() of Tensors": (lambda x: max(x, 2.0 - x) * x, 0.0, 3.0),
    "max() over a 1-D Tensor": (lambda x: max(x) * 2.0, X, -X),
    "sorted() of a Tensor": (lambda x: sorted(x)[0] * 1.0, X, -X),
    "a mask": (lambda x: tg.sum(x[x > 0]), X, -X),
    "np.any on a comparison": (lambda x: tg.sum(x) * (2.0 if np.any(x > 2.5) else 1.0), X, -X),
    "np.where on a comparison": (lambda x: tg.sum(np.where(x > 0, x, 0.0)), X, -X),
}


@pytest.mark.parametrize("name", GUARDED)
def test_a_branch_on_a_value_is_a_guard_and_no_stale_path_answers(name):
    f, first, second = GUARDED[name]
    cf = tg.compile(f)
    cf.value_and_grad(first)
    for x in (second, first, second):
        assert_same(cf.value_and_grad(x), tg.value_and_grad(f)(x))
    assert cf.trace_count == 2


# ---- Deliver 2: escapes name the user's file:line; fallback="eager" warns once ----

ESCAPES = {
    "float(t)": lambda x: x * float(x),
    "t.item()": lambda x: x * x.item(),
    "t.data": lambda x: x * x.data,
    "t.numpy()": lambda x: x * x.numpy(),
    "repr": lambda x: x * len(repr(x)),
    "f-string": lambda x: x * len(f"{x}"),
    "print": lambda x: print(x, file=io.StringIO()) or x * x,
    "numpy on .data": lambda x: x * np.sum(x.data),
    "np.sign": lambda x: x * np.sign(x),
    "np.argmax as an index": lambda x: x[np.argmax(x)] * 1.0,
    "astype(int)": lambda x: tg.sum(x * x.astype(int)),
    "int(t)": lambda x: x * int(x),
    "copy.deepcopy": lambda x: x * copy.deepcopy(x),
    "pickle": lambda x: x * pickle.loads(pickle.dumps(x)),
}


@pytest.mark.parametrize("name", ESCAPES)
def test_a_value_leaving_the_tape_raises_trace_error_naming_the_users_line(name):
    f = ESCAPES[name]
    value = 2.5 if name not in ("np.argmax as an index", "astype(int)") else X + 0.5
    with pytest.raises(tg.TraceError, match=re.escape(f"{__file__}:{f.__code__.co_firstlineno}")):
        tg.compile(f).value_and_grad(value)


def test_fallback_eager_warns_once_across_keys_and_gives_eager_results():
    def f(w):
        return tg.sum(w * w) * float(tg.sum(w))

    cf = tg.compile(f, fallback="eager")
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        results = [(cf.value_and_grad(a), tg.value_and_grad(f)(a))
                   for a in (X, X + 1, X[:2], np.float32(2.0))]
        assert cf(X) == pytest.approx(14.0 * 2.0)
    for got, want in results:
        assert_same(got, want)
    trace_warnings = [w for w in seen if issubclass(w.category, tg.TraceWarning)]
    assert len(trace_warnings) == 1 and trace_warnings[0].filename == __file__


def test_a_user_operation_record_raises_naming_its_outputs():
    def f(w):
        out = tg.Tensor(0.0, label="my_record_out")
        tg.operation_history.append(tg.OperationRecord([w], [out], lambda g: [g]))
        return w * out

    with pytest.raises(tg.TraceError, match=r"OperationRecord.*my_record_out"):
        tg.compile(f).value_and_grad(2.0)


# ---- Deliver 2: Function backwards and hooks are called from the replay ----

def test_function_backwards_and_hooks_run_on_every_replay():
    calls = collections.Counter()

    class CountedCube(Cube):
        @staticmethod
        def backward(ctx, g):
            calls["backward"] += 1
            return Cube.backward(ctx, g)

    def doubled(g):
        calls["hook"] += 1
        return g * 2.0

    def f(w):
        y = CountedCube.apply(w)
        y.register_hook(doubled)
        return tg.sum(y)

    cf = tg.compile(f)
    cf.value_and_grad(X)
    calls.clear()
    for i in range(3):
        assert_same(cf.value_and_grad(X + i), (float(np.sum((X + i) ** 3)), 6.0 * (X + i) ** 2))
    assert calls == {"backward": 3, "hook": 3}


# ---- Deliver 3: the drivers against torch.autograd.functional ----

DRIVER_CASES = {
    "vector to scalar": (lambda m: lambda x: m.sum(m.tanh(x) * x ** 2), np.array([0.3, -1.2, 2.0])),
    "vector to vector": (lambda m: lambda x: m.sin(x) * x[0] + x * x, np.array([0.3, -1.2, 2.0])),
    "two inputs": (lambda m: lambda x, y: m.sum(x * m.log(1 + y * y)),
                   (np.array([0.5, 2.0]), np.array([-1.0, 3.0]))),
    "0-d": (lambda m: lambda x: x ** 3 * m.sin(x), np.array(0.7)),
}


def assert_nested_close(got, want, rtol=1e-13, atol=0.0):
    if isinstance(want, tuple):
        assert isinstance(got, tuple) and len(got) == len(want)
        for g, w in zip(got, want):
            assert_nested_close(g, w, rtol, atol)
    else:
        np.testing.assert_allclose(got, want.detach().numpy(), rtol=rtol, atol=atol)
        assert np.shape(got) == tuple(want.shape)


@pytest.mark.parametrize("name", DRIVER_CASES)
def test_drivers_give_what_torch_autograd_functional_gives(name):
    torch = pytest.importorskip("torch")
    functional = torch.autograd.functional
    make, inputs = DRIVER_CASES[name]
    f, tf = make(tg), make(torch)
    as_tuple = isinstance(inputs, tuple)
    t_in = tuple(map(torch.tensor, inputs)) if as_tuple else torch.tensor(inputs)
    v_in = tuple(np.ones_like(a) + 0.5 for a in inputs) if as_tuple else np.ones_like(inputs) + 0.5
    t_v = tuple(map(torch.tensor, v_in)) if as_tuple else torch.tensor(v_in)
    out = tf(*t_in) if as_tuple else tf(t_in)
    cf = tg.compile(f)

    def check(got, want):
        assert_nested_close(got, want, rtol=1e-10, atol=1e-12)

    for _ in range(2):  # traces, then replays
        u = np.full(tuple(out.shape), 0.5) if out.ndim else None
        check(cf.vjp(inputs, u), functional.vjp(tf, t_in, None if u is None else torch.tensor(u)))
        check(cf.jvp(inputs, v_in), functional.jvp(tf, t_in, t_v))
        check(cf.jacobian(inputs), functional.jacobian(tf, t_in))
        if out.ndim == 0:
            check(cf.hvp(inputs, v_in), functional.hvp(tf, t_in, t_v))
            check(cf.hessian(inputs), functional.hessian(tf, t_in))


# ---- Deliver 5: threads and memory ----

def test_threads_calling_one_compiled_function_get_eager_answers_on_their_branches():
    @tg.compile
    def f(w, a):
        return tg.sum(tg.tanh(w * a)) if a[0] > 0 else tg.sum(w * a)

    def answers(i):
        a = np.full(3, (-1.0) ** i * (i + 1))  # odd threads take the other branch
        return [(f.value_and_grad(X, a), tg.value_and_grad(f.__wrapped__)(X, a))
                for _ in range(30)]

    with ThreadPoolExecutor(6) as pool:
        for pairs in pool.map(answers, range(6)):
            for got, want in pairs:
                assert_same(got, want)


def test_the_function_and_its_traces_are_freed_with_it():
    def make():
        def loss(w):
            return tg.sum(w * w * w)

        cf = tg.compile(loss)
        cf.value_and_grad(X), cf.hessian(X), cf.jvp(X, X), cf.jacobian(X)
        return weakref.ref(cf), weakref.ref(loss)

    refs = make()
    gc.collect()
    assert [r() for r in refs] == [None, None]


def test_memory_is_flat_over_ten_thousand_calls():
    cf = tg.compile(lambda w, x: tg.sum(tg.tanh(x @ w)))
    w, x = np.ones(4), np.ones((8, 4))
    for _ in range(100):
        cf.value_and_grad(w, x)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(10_000):
            cf.value_and_grad(w + i * 1e-6, x)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 64 * 1024
    assert cf.trace_count == 1


# ---- edge cases that held ----

def test_empty_outputs_come_back_empty_from_a_call_vjp_and_jvp():
    cf = tg.compile(lambda a: a[:0] * 2.0)
    assert_same(cf(X), np.zeros(0))
    assert_same(cf.vjp(X, np.zeros(0)), (np.zeros(0), np.zeros(3)))
    assert_same(cf.jvp(X, X), (np.zeros(0), np.zeros(0)))


def test_integer_driver_inputs_are_differentiated_as_float64_as_eager():
    cube = tg.compile(lambda a: tg.sum(a ** 3))
    np.testing.assert_allclose(cube.jacobian(np.arange(3)), [0.0, 3.0, 12.0])
    np.testing.assert_allclose(cube.hessian(np.arange(3)), np.diag([0.0, 6.0, 12.0]))
    assert tg.compile(lambda a: a ** 3).jacobian(2) == 12.0


# ---- gaps the audit found, each a minimal repro, since fixed ----

def test_jacobian_of_an_empty_output_is_an_empty_block():
    assert tg.compile(lambda a: a[:0] * 2.0).jacobian(X).shape == (0, 3)


def test_hessian_of_an_empty_input_is_empty():
    assert tg.compile(lambda a: tg.sum(a * a)).hessian(np.zeros(0)).shape == (0, 0)


def test_fallback_jacobian_of_an_empty_output_is_an_empty_block():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", tg.TraceWarning)
        cf = tg.compile(lambda a: a[:0] * float(a[0]), fallback="eager")
        assert cf.jacobian(X).shape == (0, 3)


def test_non_scalar_error_on_a_replay_names_the_shape():
    cf = tg.compile(lambda a: a * a)
    cf(X)
    with pytest.raises(TypeError, match=r"\(3,\)"):
        cf.value_and_grad(X)


def test_non_scalar_ndarray_error_names_the_shape():
    with pytest.raises(TypeError, match=r"\(3,\)"):
        tg.compile(lambda a: np.ones(3)).value_and_grad(X)


def test_np_asarray_of_a_data_argument_is_an_escape_and_falls_back_to_eager():
    def loss(w, data):
        data = np.asarray(data)
        return tg.sum((data @ w) ** 2)

    data = np.arange(6.0).reshape(2, 3)
    want = tg.value_and_grad(loss)(X, data)
    try:
        assert_same(tg.compile(loss).value_and_grad(X, data), want)
    except tg.TraceError:
        pass  # also acceptable: an escape naming the line
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", tg.TraceWarning)
        assert_same(tg.compile(loss, fallback="eager").value_and_grad(X, data), want)


def test_decorating_a_method_binds_the_instance():
    class Model:
        scale = 2.0

        @functools.partial(tg.value_and_grad, argnums=1)
        def eager_loss(self, w):
            return tg.sum(w * w) * self.scale

        @tg.compile(argnums=1)
        def loss(self, w):
            return tg.sum(w * w) * self.scale

    model = Model()
    assert_same(model.loss.value_and_grad(X), model.eager_loss(X))


def test_integer_labels_do_not_grow_the_traces_without_bound():
    rng = np.random.default_rng(0)
    features, w = rng.normal(size=(16, 4)), rng.normal(size=(4, 3))

    @tg.compile
    def loss(w, features, labels):
        return -tg.mean((features @ w)[np.arange(16), labels])

    # Labels key the trace by value: past 64 keys the oldest traces go, with one warning
    # naming what to do, and every answer is still eager's.
    with pytest.warns(UserWarning, match="more than 64 argument keys") as caught:
        for _ in range(100):
            labels = rng.integers(0, 3, 16)
            assert_same(loss.value_and_grad(w, features, labels),
                        tg.value_and_grad(loss.__wrapped__)(w, features, labels))
            assert loss.trace_count <= 64
    assert len(caught) == 1 and caught[0].filename == __file__


def test_shapes_that_vary_on_every_call_keep_memory_bounded():
    cf = tg.compile(lambda x: tg.sum(x * x))
    with pytest.warns(UserWarning, match="more than 64 argument keys") as caught:
        for n in range(1, 200):
            value, grad = cf.value_and_grad(np.full(n, 0.5))
            assert value == 0.25 * n and np.all(grad == 1.0)
    assert len(caught) == 1
    assert cf.trace_count <= 64 and len(cf._flat) <= 64


# Several outputs (Note [Several outputs] in compiled.py): the drivers give what
# torch.autograd.functional gives, tuples of blocks, compiled and under fallback='eager'.
def two_outputs(a, b):
    return a * b, tg.sum(a) * b[0], a[0] * 3.0


def two_outputs_torch(a, b):
    return a * b, a.sum() * b[0], a[0] * 3.0


def escaping_two_outputs(a, b):
    float(tg.sum(a))  # an escape: the drivers run eagerly under fallback='eager'
    return two_outputs(a, b)


@pytest.mark.parametrize("f,fallback", [(two_outputs, None), (escaping_two_outputs, "eager")])
def test_drivers_of_a_function_with_several_outputs_give_torchs_tuples(f, fallback):
    torch = pytest.importorskip("torch")
    functional = torch.autograd.functional
    a, b = np.array([1.0, 2.0]), np.array([3.0, 4.0])
    ta, tb = torch.tensor(a), torch.tensor(b)
    va, vb = np.array([0.5, -1.0]), np.array([2.0, 0.25])
    vs = (np.array([1.0, 10.0]), 2.0, -1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", tg.TraceWarning)
        cf = tg.compile(f, fallback=fallback)
        for _ in range(2):  # the trace, then a replay
            assert_nested_close(cf.jacobian((a, b)), functional.jacobian(two_outputs_torch, (ta, tb)))
            value, pulled = cf.vjp((a, b), vs)
            want_value, want_pulled = functional.vjp(
                two_outputs_torch, (ta, tb), tuple(torch.tensor(v, dtype=torch.float64) for v in vs))
            assert_nested_close(value, want_value)
            assert_nested_close(pulled, want_pulled)
            value, pushed = cf.jvp((a, b), (va, vb))
            assert_nested_close(pushed, functional.jvp(two_outputs_torch, (ta, tb),
                                                       (torch.tensor(va), torch.tensor(vb)))[1])
            a, b = a + 1.0, b * 2.0
            ta, tb = torch.tensor(a), torch.tensor(b)


def test_the_drivers_of_several_outputs_never_run_f_again_once_traced():
    calls = []

    def f(a):
        calls.append(1)  # Python runs: the first trace (it has several outputs) and the joined
        return a * a, tg.sum(a)

    cf, x = tg.compile(f), np.array([1.0, 2.0])
    for shift in range(4):
        squares, totals = cf.jacobian(x + shift)
        np.testing.assert_array_equal(squares, np.diag(2 * (x + shift)))
        np.testing.assert_array_equal(totals, [1.0, 1.0])
        assert cf.vjp(x + shift, (np.ones(2), 1.0))[1].tolist() == (2 * (x + shift) + 1).tolist()
        assert cf.jvp(x + shift, np.ones(2))[1][1] == 2.0
    assert len(calls) == 2


def test_several_outputs_keep_their_dtypes_and_one_input_gives_blocks_not_tuples():
    x = np.array([1.0, 2.0], dtype=np.float32)
    cf = tg.compile(lambda a: (a * a, tg.sum(a) * 2.0))
    (value, total), (tangent, dtotal) = cf.jvp(x, np.array([1.0, 3.0], dtype=np.float32))
    assert value.dtype == np.float32 and isinstance(total, float)
    np.testing.assert_array_equal(value, x * x)
    np.testing.assert_array_equal(tangent, [2.0, 12.0])
    assert (total, dtotal) == (6.0, 8.0)
    squares, totals = cf.jacobian(x)
    np.testing.assert_array_equal(squares, np.diag(2 * x))
    np.testing.assert_array_equal(totals, [2.0, 2.0])


def test_several_outputs_name_what_is_wrong():
    cf = tg.compile(lambda a: (a * a, tg.sum(a)))
    x = np.array([1.0, 2.0])
    with pytest.raises(TypeError, match=r"returns 2 outputs .*value_and_grad and grad need one"):
        cf.value_and_grad(x)
    with pytest.raises(TypeError, match="returns 2 outputs"):
        cf(x)
    with pytest.raises(ValueError, match="tuple of as many v"):
        cf.vjp(x, np.ones(2))
    with pytest.raises(ValueError, match=r"output 0 must have its shape \(2,\)"):
        cf.vjp(x, (np.ones(3), 1.0))
    with pytest.raises(ValueError, match="every output has one element"):
        cf.vjp(x)
    assert cf.vjp(x, (np.ones(2), 1.0))[1].tolist() == [3.0, 5.0]  # the tape stays usable


def test_fallback_drivers_do_not_warn_again_and_the_warning_names_the_callers_line():
    cf = tg.compile(lambda w: tg.sum(w * w) * float(tg.sum(w)), fallback="eager")
    with pytest.warns(tg.TraceWarning) as caught:
        cf.value_and_grad(X)
    assert caught[0].filename == __file__
    with warnings.catch_warnings():
        warnings.simplefilter("error", tg.TraceWarning)
        cf.hvp(X, X)
        cf.hessian(X)
