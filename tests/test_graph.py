"""Graph shapes: reuse, fan-out and fan-in, long chains, clear_history and threads."""

import threading

import numpy as np
import pytest

import tapegrad


def test_reused_subexpressions(impl):
    a = impl.Tensor(3.0)
    b = a + a
    c = b + b
    assert c.data == 12.0
    assert impl.compute_gradients(c, [a, b]) == [4.0, 2.0]


def test_fan_out_and_fan_in(impl):
    x = impl.Tensor(0.5)
    u, v, w = impl.sin(x), impl.exp(x), x * x
    y = u * v + w / v
    (g,) = impl.compute_gradients(y, [x])
    s, c, e = np.sin(0.5), np.cos(0.5), np.exp(0.5)
    expected = c * e + s * e + (2 * 0.5 * e - 0.25 * e) / e**2
    assert g == pytest.approx(expected, rel=1e-12)


def test_same_tensor_as_both_operands(impl):
    x = impl.Tensor(np.array([1.0, -2.0]))
    np.testing.assert_array_equal(impl.compute_gradients(x * x, [x])[0], [2.0, -4.0])
    np.testing.assert_array_equal(impl.compute_gradients(x / x, [x])[0], [0.0, 0.0])


def test_intermediate_sources(impl):
    x = impl.Tensor(2.0)
    h = x * 3.0
    y = h * h
    gx, gh = impl.compute_gradients(y, [x, h])
    assert (gx, gh) == (36.0, 12.0)


def test_million_op_chain_needs_no_recursion():
    x = tapegrad.Tensor(1.0)
    y = x
    for _ in range(1_000_000):
        y = y * 1.0000001
    (g,) = tapegrad.compute_gradients(y, [x])
    assert g == pytest.approx(1.0000001**1_000_000, rel=1e-9)
    assert len(tapegrad.operation_history) == 1_000_000


def test_duplicate_labels_never_mix_gradients():
    a = tapegrad.Tensor(2.0, "x")
    b = tapegrad.Tensor(3.0, "x")
    y = a * 10.0 + b * 100.0
    assert tapegrad.compute_gradients(y, [a, b]) == [10.0, 100.0]


def test_reference_keeps_the_seed_label_collision():
    """The reference is the seed design, limits included (documented in its docstring)."""
    from tapegrad import reference as ref

    ref.clear_history()
    a = ref.Tensor(2.0, "x")
    b = ref.Tensor(3.0, "x")
    y = a * 10.0 + b * 100.0
    assert ref.compute_gradients(y, [a, b]) == [110.0, 110.0]



def test_reference_records_its_tensor_operands_only():
    """Constants on either side get no input key; each gradient comes back in its tensor's
    form: summed over broadcast axes, in its dtype, a float for a float."""
    from tapegrad import reference as ref

    ref.clear_history()
    x = ref.Tensor(3.0, "x")
    w = ref.Tensor(np.ones((1, 3), dtype=np.float32), "w")
    left, right, alone = 2.0 * x, x - 5.0, ref.exp(1.0)
    assert [r.input_keys for r in ref.operation_history] == [["x"], ["x"], []]
    assert left.data == 6.0 and right.data == -2.0 and alone.data == pytest.approx(np.e)
    assert ref.operation_history[0].backward_fn(1.5) == [3.0]
    y = ref.tanh(w * np.arange(6.0).reshape(2, 3)) * x
    gw, gx = ref.compute_gradients(y, [w, x])
    assert gw.shape == (1, 3) and gw.dtype == np.float32 and isinstance(gx, float)
    want = 3.0 * (np.arange(6.0).reshape(2, 3) / np.cosh(np.arange(6.0).reshape(2, 3)) ** 2)
    np.testing.assert_allclose(gw, want.sum(axis=0, keepdims=True), rtol=1e-6)


def test_tensors_survive_clear_history_as_values():
    w = tapegrad.Tensor(3.0, "w")
    old = w * 2.0
    tapegrad.clear_history()
    assert len(tapegrad.operation_history) == 0
    assert old.data == 6.0 and old.label == "tensor_1"
    fresh = tapegrad.Tensor(1.0)
    assert fresh.label == "tensor_0"  # numbering restarted
    y = w * fresh  # an old leaf feeds a new op
    assert tapegrad.compute_gradients(y, [w, fresh]) == [1.0, 3.0]


def test_gradient_through_cleared_history_raises():
    w = tapegrad.Tensor(3.0, "w")
    old = w * 2.0
    tapegrad.clear_history()
    with pytest.raises(RuntimeError, match=r"history of the target .* is gone.*clear_history"):
        tapegrad.compute_gradients(old, [w])
    late = tapegrad.Tensor(5.0, "late")
    y = old * late
    with pytest.raises(RuntimeError, match=r"'w' flows through .* whose history is gone"):
        tapegrad.compute_gradients(y, [w, late])
    # A source made after the clear cannot have fed `old`: its gradient is well defined.
    assert tapegrad.compute_gradients(y, [late]) == [6.0]
    assert tapegrad.compute_gradients(old, [old]) == [1.0]


def test_threads_have_separate_histories():
    results = {}
    barrier = threading.Barrier(2)

    def work(name, value, n):
        tapegrad.clear_history()
        x = tapegrad.Tensor(value, name)
        barrier.wait()
        y = x
        for _ in range(n):
            y = y * x
        barrier.wait()
        results[name] = (tapegrad.compute_gradients(y, [x])[0], len(tapegrad.operation_history))

    threads = [threading.Thread(target=work, args=("a", 1.5, 3)),
               threading.Thread(target=work, args=("b", 0.5, 5))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results["a"] == (pytest.approx(4 * 1.5**3), 3)
    assert results["b"] == (pytest.approx(6 * 0.5**5), 5)
    assert len(tapegrad.operation_history) == 0


def test_array_graph_with_broadcast_scalar_and_reuse(rng):
    x = tapegrad.Tensor(rng.uniform(-1, 1, size=(4, 3)))
    w = tapegrad.Tensor(rng.uniform(-1, 1, size=(4, 3)))
    b = tapegrad.Tensor(0.3)
    f = lambda x, w, b: tapegrad.tanh(x * w + b) * tapegrad.exp(-x * x) + tapegrad.log(1 + w * w) / (1 + b * b)  # noqa: E731
    assert tapegrad.gradcheck(f, [x, w, b])


def test_detach_cuts_history_and_constants_record_nothing():
    x = tapegrad.Tensor(3.0)
    c = (x * x).detach()
    assert not c.requires_grad and c.data == 9.0
    before = len(tapegrad.operation_history)
    d = c * 2.0 + tapegrad.exp(c)
    assert not d.requires_grad
    assert len(tapegrad.operation_history) == before
    y = x * c
    assert tapegrad.compute_gradients(y, [x]) == [9.0]
    # A constant's gradient would miss every path through ops that recorded nothing
    # (d above): it is refused, as torch.autograd.grad refuses it.
    with pytest.raises(RuntimeError, match="does not require grad"):
        tapegrad.compute_gradients(y, [x, c])


def test_detach_resolves_a_cleared_history():
    w = tapegrad.Tensor(3.0, "w")
    old = w * 2.0
    tapegrad.clear_history()
    y = old.detach() * w
    assert tapegrad.compute_gradients(y, [w]) == [6.0]


def test_recycled_buffers_never_change_values_users_hold(rng):
    """Arrays the tape releases are reused (Note [Buffer pool]) only when nobody holds them."""
    a = rng.uniform(size=(64, 128))
    kept = []
    for step in range(6):
        x = tapegrad.Tensor(a * (step + 1))
        y = tapegrad.tanh(x * 2.0) + x
        (g,) = tapegrad.compute_gradients(y.sum(), [x])
        kept.append((step, y, y.data.copy(), g, g.copy(), y.data[:2]))
        tapegrad.clear_history()
    for step, y, value, g, g_copy, view in kept:
        np.testing.assert_array_equal(y.data, value)
        np.testing.assert_array_equal(g, g_copy)
        np.testing.assert_array_equal(view, value[:2])
        np.testing.assert_allclose(value, np.tanh(2 * a * (step + 1)) + a * (step + 1))


def test_a_training_loop_reuses_the_buffers_of_its_last_step(rng):
    """Note [Buffer pool]: the output the tape held is released to the pool at the
    reset, and the next step's first op writes into it."""
    a = rng.uniform(size=(64, 128))
    scaled, outputs = [], []
    for _ in range(4):
        x = tapegrad.Tensor(a)
        m = x * 2.0  # its backward reads nothing: the tape does not hold it
        y = tapegrad.tanh(m)  # its backward reads y: held until the reset
        scaled.append(m.data.ctypes.data)
        outputs.append(y.data.ctypes.data)
        del m, y
        tapegrad.clear_history()
    assert scaled[1:] == outputs[:-1]


def test_the_pool_frees_buffers_no_later_graph_asks_for(rng):
    """Each step's arrays have a new shape: the pool keeps about one step's worth, not 64."""
    per_step = []
    for step in range(30):
        x = tapegrad.Tensor(rng.uniform(size=(64, 100 + step)))  # >= 32 KB: pooled
        y = tapegrad.exp(tapegrad.tanh(x) * 2.0)
        tapegrad.compute_gradients(y, [x])
        tapegrad.clear_history()
        per_step.append(tapegrad._core.tape_stats()["pool_arrays"])
    assert 0 < max(per_step[5:]) <= 2 * max(per_step[:2])
    assert per_step[-1] <= per_step[2]


def test_loop_results_are_the_same_with_warm_buffers(rng):
    a = rng.uniform(size=(32, 300))
    results = []
    for _ in range(4):
        x = tapegrad.Tensor(a)
        w = tapegrad.Tensor(a[::-1].copy())
        y = tapegrad.exp(-x * w) / (1.0 + w * w)
        results.append([g.copy() for g in tapegrad.compute_gradients(y, [x, w])])
        tapegrad.clear_history()
    for later in results[1:]:
        for g0, g1 in zip(results[0], later):
            np.testing.assert_array_equal(g0, g1)


def test_the_tape_keeps_only_values_a_backward_reads(rng):
    """Note [Saved values]: x * w feeds only an add, whose backward reads nothing."""
    import weakref

    x = tapegrad.Tensor(rng.uniform(size=1000))
    w = tapegrad.Tensor(rng.uniform(size=1000))
    product = x * w
    dropped = weakref.ref(product.data)
    y = tapegrad.tanh(product + 1.0)  # tanh's backward reads its output: kept
    kept = weakref.ref(y.data)
    z = y * y  # mul's backward reads both operands: y is kept
    del product, y
    assert dropped() is None
    assert kept() is not None
    gx, gw = tapegrad.compute_gradients(z, [x, w])
    t = np.tanh(x.data * w.data + 1.0)
    np.testing.assert_allclose(gx, 2 * t * (1 - t * t) * w.data, rtol=1e-12)
    np.testing.assert_allclose(gw, 2 * t * (1 - t * t) * x.data, rtol=1e-12)
