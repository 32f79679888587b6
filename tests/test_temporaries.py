"""Note [Temporaries]: an op may write its result into a temporary operand's
array. Values and gradients must be exactly what fresh arrays give, and no
array anyone can still see may change."""

import functools
import itertools
import operator

import numpy as np
import pytest

import tapegrad as tg

N = 40_000  # 320 KB of float64: above the size where temporaries are reused


@pytest.fixture
def xwb(rng):
    return [rng.uniform(0.1, 1.0, size=N) for _ in range(3)]


def chain(lib, x, w, b):
    return lib.tanh(x * w + b) * lib.exp(-x * x) + lib.log(1 + w * w) / (1 + b * b)


def test_the_chain_matches_numpy_and_its_gradient(xwb):
    x, w, b = xwb
    tensors = [tg.Tensor(v) for v in xwb]
    y = chain(tg, *tensors)
    np.testing.assert_allclose(y.data, chain(np, x, w, b), rtol=1e-14)
    gx, gw, gb = tg.compute_gradients(y, tensors)
    th, e = np.tanh(x * w + b), np.exp(-x * x)
    dth = (1 - th * th) * e
    np.testing.assert_allclose(gx, dth * w - 2 * x * th * e, rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(gw, dth * x + 2 * w / (1 + w * w) / (1 + b * b), rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(gb, dth - 2 * b * np.log(1 + w * w) / (1 + b * b) ** 2, rtol=1e-10, atol=1e-15)


def test_temporaries_are_reused(xwb):
    x, w, b = [tg.Tensor(v) for v in xwb]
    before = tg._core.tape_stats()["temporaries_reused"]
    chain(tg, x, w, b)
    # x*w + b, tanh, -x*x's exp and negation, 1 + w*w, 1 + b*b, and the final +
    assert tg._core.tape_stats()["temporaries_reused"] - before >= 5


def test_named_tensors_never_change(xwb):
    x, w, b = [tg.Tensor(v) for v in xwb]
    u = x * w
    kept = u.data.copy()
    v = u + b
    t = tg.tanh(v)
    s = -t
    for tensor, value in ((u, kept), (v, kept + xwb[2]), (t, np.tanh(kept + xwb[2]))):
        np.testing.assert_array_equal(tensor.data, value)
    np.testing.assert_array_equal(s.data, -np.tanh(kept + xwb[2]))


def test_tensors_held_only_by_a_container_never_change(xwb):
    """A container owns the only reference; C code (reduce, sum) passes it on."""
    x, w, b = [tg.Tensor(v) for v in xwb]
    held = [x * w, w * b, b * x]
    values = [t.data.copy() for t in held]
    total = functools.reduce(operator.add, held)
    also = sum(held[1:], held[0])
    for t, value in zip(held, values):
        np.testing.assert_array_equal(t.data, value)
    np.testing.assert_allclose(total.data, sum(values), rtol=1e-15)
    np.testing.assert_allclose(also.data, sum(values), rtol=1e-15)


def test_values_a_backward_reads_are_not_reused(xwb):
    """x * w feeds a product: the product's backward reads it, so it stays."""
    x, w, b = [tg.Tensor(v) for v in xwb]
    y = (x * w) * b
    gx, gw, gb = tg.compute_gradients(y, [x, w, b])
    np.testing.assert_allclose(gb, xwb[0] * xwb[1], rtol=1e-15)
    np.testing.assert_allclose(gx, xwb[1] * xwb[2], rtol=1e-15)
    np.testing.assert_allclose(gw, xwb[0] * xwb[2], rtol=1e-15)


def test_leaves_and_their_history_keep_their_values(xwb):
    leaf = tg.Tensor(np.ones(N))
    y = leaf + 1.0  # the leaf has no other holder, but it is a leaf: left alone
    np.testing.assert_array_equal(leaf.data, 1.0)
    (g,) = tg.compute_gradients(y, [leaf])
    np.testing.assert_array_equal(g, 1.0)


def test_float32_temporaries(xwb):
    x, w, b = [tg.Tensor(v.astype(np.float32)) for v in xwb]
    y = chain(tg, x, w, b)
    assert y.data.dtype == np.float32
    x64, w64, b64 = xwb
    np.testing.assert_allclose(y.data, chain(np, x64, w64, b64), rtol=2e-6)


def test_a_borrowed_reference_from_c_code_is_not_a_temporary(xwb):
    """C code may hand the operator a borrowed reference to a tensor a list owns
    (refcount 1): the stack check sees a caller that is not the interpreter."""
    import ctypes

    api = ctypes.pythonapi
    api.PyList_GetItem.restype = ctypes.c_void_p
    api.PyList_GetItem.argtypes = [ctypes.py_object, ctypes.c_ssize_t]
    api.PyNumber_Add.restype = ctypes.py_object
    api.PyNumber_Add.argtypes = [ctypes.c_void_p, ctypes.py_object]
    x, w, b = [tg.Tensor(v) for v in xwb]
    held = [x * w]  # the list holds the only reference
    value = held[0].data.copy()
    result = api.PyNumber_Add(api.PyList_GetItem(held, 0), b)
    np.testing.assert_array_equal(held[0].data, value)
    np.testing.assert_allclose(result.data, value + xwb[2], rtol=1e-15)


@pytest.fixture
def layer(rng):
    """A layer's operands: h @ w is (200, 256), 400 KB of float64."""
    return rng.uniform(-1, 1, size=(200, 64)), rng.uniform(-1, 1, size=(64, 256)), rng.uniform(size=256)


def test_a_layer_reuses_the_product_and_matches_numpy(layer):
    """No backward reads h @ w (matmul declares no reads_out): the bias add and the
    tanh write into the product's array, and values and gradients are numpy's."""
    a, m, r = layer
    h, w, b = (tg.Tensor(v) for v in layer)
    before = tg._core.tape_stats()["temporaries_reused"]
    y = tg.tanh(h @ w + b)
    assert tg._core.tape_stats()["temporaries_reused"] - before == 2
    t = np.tanh(a @ m + r)
    np.testing.assert_array_equal(y.data, t)
    gh, gw, gb = tg.compute_gradients(y, [h, w, b])
    d = 1 - t * t
    np.testing.assert_allclose(gh, d @ m.T, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gw, a.T @ d, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gb, d.sum(0), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("op", ["add", "subtract", "multiply", "divide"])
def test_a_broadcast_operand_against_a_temporary_in_either_order(layer, op):
    a, m, r = layer
    fn = getattr(np, op)
    for other in (r, r[None, :], a[:, :1] @ np.ones((1, 1))):  # a row, (1, n), a column
        for temporary_first in (True, False):
            h, w = tg.Tensor(a), tg.Tensor(m)
            c = tg.Tensor(other)
            product = a @ m
            out = getattr(tg, op)(h @ w, c) if temporary_first else getattr(tg, op)(c, h @ w)
            want = fn(product, other) if temporary_first else fn(other, product)
            np.testing.assert_array_equal(out.data, want)


def test_a_product_a_later_backward_reads_keeps_its_values(layer):
    """matmul's own backward does not read h @ w, but v's gradient in (h @ w) * v does."""
    a, m, _ = layer
    h, w = tg.Tensor(a), tg.Tensor(m)
    v = tg.Tensor(np.full((200, 256), 3.0))
    (gv,) = tg.compute_gradients(tg.sum((h @ w) * v), [v])
    np.testing.assert_allclose(gv, a @ m, rtol=1e-13)


def test_second_order_through_a_product_nobody_keeps(layer):
    """The recorded sweep gets None for matmul's output and still differentiates."""
    a, m, r = layer
    h = tg.Tensor(a)
    w = tg.Tensor(m, requires_grad=True)
    loss = tg.sum(tg.tanh(h @ w + r) ** 2)
    (gw,) = tg.grad(loss, w, create_graph=True)
    (hv,) = tg.grad(tg.sum(gw), w)
    torch = pytest.importorskip("torch")
    tw = torch.tensor(m, requires_grad=True)
    tl = (torch.tanh(torch.tensor(a) @ tw + torch.tensor(r)) ** 2).sum()
    (tg_w,) = torch.autograd.grad(tl, tw, create_graph=True)
    (thv,) = torch.autograd.grad(tg_w.sum(), tw)
    np.testing.assert_allclose(gw.data, tg_w.detach().numpy(), rtol=1e-11)
    np.testing.assert_allclose(hv.data, thv.numpy(), rtol=1e-10, atol=1e-12)


def test_a_temporary_smaller_than_the_result_is_not_written_into(rng):
    """(1, n) + (3, n) is (3, n): it cannot go into the (1, n) temporary."""
    row, big = rng.uniform(size=(1, N)), rng.uniform(size=(3, N))
    x, b = tg.Tensor(row), tg.Tensor(big)
    out = (x * 2.0) + b
    np.testing.assert_array_equal(out.data, row * 2.0 + big)
    out = b - (x * 2.0)
    np.testing.assert_array_equal(out.data, big - row * 2.0)


def _call_shapes():
    """Calls that hand the op a tensor a container holds (refcount 1, every C frame
    the interpreter's): each must leave the tuple's tensor as it was."""
    return {
        "operator.add(*tup)": lambda tup: operator.add(*tup),
        "Tensor.__add__(*tup)": lambda tup: tg.Tensor.__add__(*tup),
        "Tensor.__mul__(*tup)": lambda tup: tg.Tensor.__mul__(*tup),
        "Tensor.__neg__(*tup[:1])": lambda tup: tg.Tensor.__neg__(*tup[:1]),
        "tg.exp(*tup[:1])": lambda tup: tg.exp(*tup[:1]),
        "tg.add(*tup)": lambda tup: tg.add(*tup),
        "starmap(operator.add)": lambda tup: list(itertools.starmap(operator.add, [tup])),
        "starmap(Tensor.__add__)": lambda tup: list(itertools.starmap(tg.Tensor.__add__, [tup])),
        "starmap(tg.tanh)": lambda tup: list(itertools.starmap(tg.tanh, [tup[:1]])),
        "map(tg.exp)": lambda tup: list(map(tg.exp, tup[:1])),
        "map(operator.neg)": lambda tup: list(map(operator.neg, tup[:1])),
        "functools.reduce": lambda tup: functools.reduce(operator.add, tup),
        "functools.partial": lambda tup: functools.partial(operator.add, tup[0])(1.0),
        "operator.methodcaller": lambda tup: operator.methodcaller("__add__", 1.0)(tup[0]),
        "np.add(*tup)": lambda tup: np.add(*tup),
        "np.exp(*tup[:1])": lambda tup: np.exp(*tup[:1]),
        "sum(tup)": lambda tup: sum(tup),
        "abs(*tup[:1])": lambda tup: abs(*tup[:1]),
    }


@pytest.mark.parametrize("shape", sorted(_call_shapes()))
def test_no_call_shape_writes_into_a_tensor_a_container_holds(shape, xwb):
    """Note [Temporaries]: only the interpreter's own operands on its value stack are
    temporaries. The issue's case: r = operator.add(*tup) wrote into tup[0]."""
    x = tg.Tensor(xwb[0], "x")
    tup = (x * 2.0, 1.0)
    value = tup[0].data.copy()
    _call_shapes()[shape](tup)
    np.testing.assert_array_equal(tup[0].data, value)
    y = (tup[0] * tup[0]).sum()
    y.backward()
    np.testing.assert_allclose(x.grad.data, 8 * xwb[0], rtol=1e-14)
    np.testing.assert_allclose(y.data, np.sum(4 * xwb[0] ** 2), rtol=1e-13)


def test_temporaries_inside_hooks_and_functions_are_still_reused_and_right(xwb):
    x, w, b = (tg.Tensor(v) for v in xwb)
    seen = {}

    def hook(g):
        before = tg._core.tape_stats()["temporaries_reused"]
        seen["value"] = tg.exp(w * 2.0 + 1.0)  # recorded temporaries of the hook's own frame
        seen["reused"] = tg._core.tape_stats()["temporaries_reused"] - before
        held = (w * g * 3.0, 1.0)
        seen["sum"] = operator.add(*held)
        seen["held"] = held[0].data.copy()
        return None

    class Twice(tg.Function):
        @staticmethod
        def forward(ctx, t):
            return tg.exp(t * 1.0 + 0.0) * 0.0 + t * 2.0  # temporaries under no_grad

        @staticmethod
        def backward(ctx, g):
            return (g * 1.0 + 0.0) * 2.0

    h = x * w + b
    h.register_hook(hook)
    (Twice.apply(h) * 1.0).sum().backward()
    np.testing.assert_allclose(x.grad.data, 2 * xwb[1], rtol=1e-14)
    np.testing.assert_allclose(seen["value"].data, np.exp(2 * xwb[1] + 1.0), rtol=1e-14)
    np.testing.assert_allclose(seen["held"], 6.0 * xwb[1], rtol=1e-15)
    np.testing.assert_allclose(seen["sum"].data, 6.0 * xwb[1] + 1.0, rtol=1e-15)
    assert seen["reused"] >= 1


def test_the_chain_reuses_temporaries_from_its_first_call(xwb):
    """Calls of tanh and exp are elided before CPython specialises the call site."""
    x, w, b = (tg.Tensor(v) for v in xwb)
    before = tg._core.tape_stats()["temporaries_reused"]
    chain(tg, x, w, b)
    first = tg._core.tape_stats()["temporaries_reused"] - before
    for _ in range(10):
        chain(tg, x, w, b)
    before = tg._core.tape_stats()["temporaries_reused"]
    chain(tg, x, w, b)
    assert first == tg._core.tape_stats()["temporaries_reused"] - before >= 5


def test_the_first_elisions_on_several_threads_at_once():
    """The first look at a code object imports tapegrad._stack, which lets other
    threads run; a thread that came meanwhile found the setup half done (a crash)."""
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent("""
        import threading
        import numpy as np
        import tapegrad as tg
        barrier = threading.Barrier(4)
        def work():
            x = tg.Tensor(np.ones(40_000))
            barrier.wait()
            for _ in range(20):
                y = tg.exp(x * 2.0 + 1.0)
            assert (y.data == np.exp(3.0)).all()
        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads: t.start()
        for t in threads: t.join()
        print("ok")
    """)
    for _ in range(3):
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
