"""No silent wrong gradient when values change: in-place updates, `.data =`, writes
into arrays the user still holds, and memory tapegrad reuses.

The rule (README, Guarantees): a recorded graph keeps the values it saw. Every
gradient call on it answers for the tensor objects themselves, with those values,
whatever happened to the tensors or to the caller's arrays afterwards.
"""

import threading
import weakref

import numpy as np
import pytest

import tapegrad as tg

from functions import Cube

BIG = 100_000  # 800 KB of float64: pooled, and large enough for temporaries


# ---- memory the user can still see is never reused (Note [Unseen arrays]) ----


def test_the_pool_never_revives_an_array_the_user_still_refers_to_weakly():
    x = tg.Tensor(np.ones(BIG))
    c = np.full(BIG, 7.0)
    ref = weakref.ref(c)
    (x * c).sum().backward()
    del c
    tg.clear_history()
    z = x * 5.0
    np.testing.assert_array_equal(z.data, 5.0)
    # Either the array was freed (our reference was the last strong one), or it
    # still holds what the user wrote; never z's values.
    assert ref() is None or (ref() == 7.0).all()


def test_a_weakly_held_result_array_is_not_taken_for_a_temporary():
    x = tg.Tensor(np.ones(BIG))
    refs = []

    def watched(t):
        refs.append(weakref.ref(t.data))
        return t

    z = watched(x * 2.0) + 1.0  # the product is a temporary, but its array is watched
    np.testing.assert_array_equal(z.data, 3.0)
    assert refs[0]() is None or (refs[0]() == 2.0).all()


# ---- in-place updates under no_grad (Note [Versions]) ----


def test_compute_gradients_after_an_in_place_update_uses_the_old_value():
    old = np.array([0.5, -1.5, 2.0])
    w = tg.Tensor(old)
    y = tg.sum(w * w * w)
    with tg.no_grad():
        w += 0.25
    np.testing.assert_array_equal(w.data, old + 0.25)
    (gw,) = tg.compute_gradients(y, [w])
    np.testing.assert_allclose(gw, 3 * old ** 2)
    (g,) = tg.grad(y, [w], retain_graph=True)
    np.testing.assert_allclose(g.data, 3 * old ** 2)
    y.backward()
    np.testing.assert_allclose(w.grad.data, 3 * old ** 2)


def test_a_scalar_updated_in_place():
    s = tg.Tensor(1.5)
    f = s * s
    with tg.no_grad():
        s *= 0.5
    assert s.data == 0.75
    assert tg.compute_gradients(f, [s]) == [3.0]
    g = s * s * s  # a new graph sees the new value
    assert tg.compute_gradients(g, [s]) == [3 * 0.75 ** 2]
    assert tg.compute_gradients(f + g, [s]) == [3.0 + 3 * 0.75 ** 2]


def test_old_and_new_values_in_one_graph_both_count():
    w = tg.Tensor(np.array([1.0, 2.0]))
    y_old = w * w
    with tg.no_grad():
        w -= 0.5
    y_new = w * 3.0
    (gw,) = tg.compute_gradients(tg.sum(y_old + y_new), [w])
    np.testing.assert_allclose(gw, 2 * np.array([1.0, 2.0]) + 3.0)
    tg.sum(y_old + y_new).backward()
    np.testing.assert_allclose(w.grad.data, 2 * np.array([1.0, 2.0]) + 3.0)


def test_a_tape_context_target_recorded_before_an_update():
    old = np.array([0.5, 1.5])
    w = tg.Tensor(old)
    with tg.Tape(persistent=True) as tape:
        y = tg.sum(tg.exp(w) * w)
    with tg.no_grad():
        w *= 2.0
    np.testing.assert_allclose(tape.gradient(y, w).data, np.exp(old) * (1 + old))
    with tape:
        z = tg.sum(w * w)
    np.testing.assert_allclose(tape.gradient(z, w).data, 2 * w.data)


def test_create_graph_backward_after_an_update_differentiates_the_old_value():
    old = np.array([0.5, -1.5, 2.0])
    w = tg.Tensor(old)
    y = tg.sum(w * w * w)
    with tg.no_grad():
        w += 0.25
    y.backward(create_graph=True)
    np.testing.assert_allclose(w.grad.data, 3 * old ** 2)
    (second,) = tg.grad(tg.sum(w.grad), w)
    np.testing.assert_allclose(second.data, 6 * old)


def test_a_function_sees_the_saved_value_not_an_updated_one():
    for old in (2.0, np.array([2.0, -1.0])):
        w = tg.Tensor(old)
        y = Cube.apply(w)
        with tg.no_grad():
            w -= 1.0
        (g,) = tg.compute_gradients(tg.sum(y) if np.ndim(old) else y, [w])
        np.testing.assert_allclose(g, 3 * np.asarray(old) ** 2)
        (g2,) = tg.grad(tg.sum(y) if np.ndim(old) else y, [w], create_graph=True)
        np.testing.assert_allclose(g2.data, 3 * np.asarray(old) ** 2)
        (h,) = tg.grad(tg.sum(g2) if np.ndim(old) else g2, [w])
        np.testing.assert_allclose(h.data, 6 * np.asarray(old))


def test_assigning_data_keeps_the_earlier_graph():
    w = tg.Tensor(np.array([1.0, 3.0]))
    y = tg.sum(w * w)
    w.data = np.array([10.0, 20.0])
    np.testing.assert_allclose(tg.compute_gradients(y, [w])[0], [2.0, 6.0])
    np.testing.assert_allclose(tg.compute_gradients(tg.sum(w * w), [w])[0], [20.0, 40.0])
    s = tg.Tensor(2.0)
    f = s * s
    s.data = 5.0
    assert tg.compute_gradients(f, [s]) == [4.0]


def test_an_update_of_a_recorded_tensor_keeps_its_history():
    """As PyTorch: an update under no_grad is not differentiated; the tensor keeps its node."""
    x = tg.Tensor(np.array([1.0, 2.0]))
    h = x * 2.0
    y_old = tg.sum(h * h)
    with tg.no_grad():
        h += 1.0
    z = tg.sum(h * 3.0)
    np.testing.assert_allclose(tg.compute_gradients(z, [x])[0], [6.0, 6.0])
    np.testing.assert_allclose(tg.compute_gradients(y_old, [h])[0], [4.0, 8.0])
    np.testing.assert_allclose(tg.compute_gradients(y_old + z, [h])[0], [7.0, 11.0])
    np.testing.assert_allclose(tg.compute_gradients(y_old + z, [x])[0], [14.0, 22.0])


def test_a_hook_runs_once_on_the_whole_gradient_across_values():
    w = tg.Tensor(np.array([1.0, 2.0]))
    seen = []
    w.register_hook(lambda g: seen.append(g.data.copy()))
    y_old = w * w
    with tg.no_grad():
        w *= 10.0
    tg.sum(y_old + w).backward()
    assert len(seen) == 1
    np.testing.assert_allclose(seen[0], [3.0, 5.0])


def test_a_labelled_user_record_after_an_update_names_the_new_value():
    x = tg.Tensor(2.0, "x")
    with tg.no_grad():
        x += 1.0
    y = tg.Tensor(9.0, "y")
    tg.operation_history.append(tg.OperationRecord(["x"], ["y"], lambda g: [g * 2 * 3.0]))
    assert tg.compute_gradients(y, [x]) == [6.0]


# ---- what in-place updates keep and refuse ----


def test_an_update_keeps_shape_and_dtype_and_refuses_to_broadcast_up():
    w = tg.Tensor(np.ones(3, dtype=np.float32))
    with tg.no_grad():
        w -= np.full(3, 0.5)  # float64 into float32: numpy's same_kind casting
        assert w.dtype == np.float32
        np.testing.assert_array_equal(w.data, 0.5)
        with pytest.raises(ValueError, match=r"'tensor_\d+' -= x: .*shape"):
            w -= np.ones((2, 3))
        s = tg.Tensor(1.0)
        with pytest.raises(ValueError, match="scalar"):
            s += np.ones(3)
        with pytest.raises(TypeError, match="str"):
            s += "a"
    np.testing.assert_array_equal(w.data, 0.5)
    assert s.data == 1.0


def test_an_update_writes_in_place_only_when_nothing_else_holds_the_array():
    w = tg.Tensor(np.ones(BIG))
    tg.clear_history()  # the tape no longer holds w's value
    before = id(w.data)
    with tg.no_grad():
        w -= 1.0
    assert id(w.data) == before  # written into its own array: no copy
    y = tg.sum(w * w)  # the tape holds w's value now
    kept = w.data
    with tg.no_grad():
        w += 2.0
    assert w.data is not kept and (kept == 0.0).all()
    np.testing.assert_array_equal(tg.compute_gradients(y, [w])[0], 0.0)


def test_outside_no_grad_an_update_records_a_new_tensor():
    x = tg.Tensor(np.array([1.0, 2.0]))
    h = x * 2.0
    first = h
    h += 1.0
    assert h is not first and first.data.tolist() == [2.0, 4.0]
    np.testing.assert_allclose(tg.compute_gradients(tg.sum(h * h), [x])[0], [12.0, 20.0])
    with pytest.raises(RuntimeError, match=r"leaf that requires grad.*no_grad"):
        x += 1.0


# ---- values the caller still holds (Note [Immutable values]) ----


def test_writing_into_the_callers_array_cannot_change_a_gradient():
    a = np.array([1.0, 2.0, 3.0])
    t = tg.Tensor(a)
    y = tg.sum(t * t)
    a[0] = 100.0
    np.testing.assert_allclose(tg.compute_gradients(y, [t])[0], [2.0, 4.0, 6.0])
    np.testing.assert_array_equal(t.data, [1.0, 2.0, 3.0])


def test_a_view_of_the_callers_array_is_copied_too():
    a = np.arange(12.0).reshape(3, 4)
    t = tg.Tensor(a[:, ::2])
    y = tg.sum(t * t)
    a[:] = -1.0
    np.testing.assert_allclose(tg.compute_gradients(y, [t])[0], 2 * np.arange(12.0).reshape(3, 4)[:, ::2])


def test_a_tensors_value_is_read_only():
    t = tg.Tensor(np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match="read-only"):
        t.data[0] = 5.0
    t.data = np.array([3.0, 4.0])
    with pytest.raises(ValueError, match="read-only"):
        t.data[0] = 5.0


def test_as_tensor_and_copy_false_share_the_callers_array():
    a = np.array([1.0, 2.0])
    t = tg.as_tensor(a)
    assert t.data is a and not t.requires_grad
    u = tg.Tensor(a, copy=False)
    assert u.data is a and u.requires_grad
    v = tg.as_tensor([1, 2])  # converted: a new array
    assert v.dtype == np.float64


def test_constants_a_backward_reads_are_kept_as_they_were():
    x = tg.Tensor(np.array([1.0, 2.0]))
    c = np.array([3.0, 4.0])
    y = tg.sum(x * c)
    m = np.array([[1.0, 2.0], [3.0, 4.0]])
    z = tg.sum(m @ x)
    c[:] = 100.0
    m[:] = 100.0
    np.testing.assert_allclose(tg.compute_gradients(y, [x])[0], [3.0, 4.0])
    np.testing.assert_allclose(tg.compute_gradients(z, [x])[0], [4.0, 6.0])


def test_a_constant_saved_by_a_function_is_its_value_then():
    class Scale(tg.Function):
        @staticmethod
        def forward(ctx, x, k):
            ctx.save_for_backward(k)
            return x.data * k.data

        @staticmethod
        def backward(ctx, g):
            (k,) = ctx.saved_tensors
            return g * k, None

    k = tg.tensor(3.0)
    x = tg.Tensor(2.0)
    y = Scale.apply(x, k)
    k += 1.0  # a constant may change at any time: here it is rebound...
    with tg.no_grad():
        k.data = 10.0  # ...and this one's value is replaced
    assert tg.compute_gradients(y, [x]) == [3.0]


# ---- a new value of another shape (Note [Versions]) ----


def test_a_new_shape_makes_the_old_graph_raise_rather_than_answer_wrong():
    w = tg.Tensor(np.array([1.0, 2.0, 3.0]))
    y = tg.sum(w * w)
    w.data = np.zeros(5)
    with pytest.raises(ValueError, match=r"earlier value, of shape \(3,\).*now has shape \(5,\)"):
        tg.compute_gradients(y, [w])
    z = tg.sum(w + 1.0)  # the new value: a graph of its own
    np.testing.assert_array_equal(tg.compute_gradients(z, [w])[0], np.ones(5))
    with pytest.raises(ValueError, match="earlier value"):
        tg.compute_gradients(y, [w])
    with pytest.raises(ValueError, match="earlier value"):
        y.backward()
    s = tg.Tensor(2.0)
    f = s * s
    s.data = np.array([1.0, 2.0])
    with pytest.raises(ValueError, match="earlier value"):
        tg.grad(f, s)


# ---- across threads ----


def test_an_update_on_another_thread_reaches_this_threads_graphs():
    w = tg.Tensor(np.array([1.0, 2.0]))
    got, errors = {}, []
    recorded, updated = threading.Event(), threading.Event()

    def worker():
        try:
            y_old = tg.sum(w * w)  # w is another thread's: a foreign row here
            recorded.set()
            updated.wait()
            y_new = tg.sum(w * w * w)
            got["old"] = tg.compute_gradients(y_old, [w])[0]
            got["new"] = tg.compute_gradients(y_new, [w])[0]
            got["both"] = tg.compute_gradients(y_old + y_new, [w])[0]
        except BaseException as e:
            errors.append(repr(e))
            recorded.set()

    thread = threading.Thread(target=worker)
    thread.start()
    recorded.wait()
    with tg.no_grad():
        w += 1.0
    updated.set()
    thread.join()
    assert errors == []
    np.testing.assert_allclose(got["old"], [2.0, 4.0])
    np.testing.assert_allclose(got["new"], [12.0, 27.0])
    np.testing.assert_allclose(got["both"], [14.0, 31.0])


def test_in_place_add_into_a_constant_outside_no_grad_is_recorded():
    """`total = tg.tensor(0.0); total += w * w` must record (as PyTorch), not update a constant silently."""
    torch = pytest.importorskip("torch")
    w = tg.Tensor(2.0)
    total = tg.tensor(0.0)
    for _ in range(3):
        total += w * w
    (total + w).backward()
    wt = torch.tensor(2.0, dtype=torch.float64, requires_grad=True)
    tt = torch.tensor(0.0, dtype=torch.float64)
    for _ in range(3):
        tt += wt * wt
    (tt + wt).backward()
    assert total.requires_grad == tt.requires_grad  # True in PyTorch
    assert w.grad.data == pytest.approx(wt.grad.item())  # 13.0; tapegrad gives 1.0


def test_in_place_add_of_a_recorded_array_into_a_constant_array_is_recorded():
    """The array case of the same: an accumulator that does not require grad, += a recorded tensor."""
    v = tg.Tensor(np.array([1.0, 2.0]))
    acc = tg.Tensor(np.zeros(2), requires_grad=False)
    acc += v * 3.0
    (g,) = tg.grad(tg.sum(acc * v), v, allow_unused=True)
    assert g is not None
    np.testing.assert_allclose(g.data, 6.0 * v.data)  # d sum(3 v * v) / dv


def test_in_place_add_of_a_0d_array_into_a_scalar_tensor():
    """`s += tg.sum(v)` under no_grad (a 0-d array into a float tensor) works, as in PyTorch, rather than 'must give a scalar'."""
    s = tg.Tensor(1.0)
    v = tg.Tensor(np.array([1.0, 2.0]))
    with tg.no_grad():
        s += tg.sum(v)
    assert float(np.asarray(s.data)) == 4.0


def test_a_read_only_array_of_the_caller_is_copied_too():
    """Tensor(a) of a read-only array shares it; the caller sets writeable=True and writes: the graph must not change."""
    a = np.array([1.0, 2.0, 3.0])
    a.flags.writeable = False
    t = tg.Tensor(a)
    y = tg.sum(t * t)
    a.flags.writeable = True  # the caller owns a: numpy lets it do this
    a[:] = 100.0
    np.testing.assert_array_equal(t.data, [1.0, 2.0, 3.0])
    np.testing.assert_allclose(tg.compute_gradients(y, [t])[0], [2.0, 4.0, 6.0])


def test_a_read_only_constant_of_the_caller_is_copied_too():
    """`x * c` with a read-only ndarray c the caller later unfreezes and overwrites: the backward keeps c's old value."""
    x = tg.Tensor(np.array([1.0, 2.0]))
    c = np.array([3.0, 4.0])
    c.flags.writeable = False
    y = tg.sum(x * c)
    c.flags.writeable = True
    c[:] = -1.0
    np.testing.assert_allclose(tg.compute_gradients(y, [x])[0], [3.0, 4.0])


def test_gradient_tensors_cannot_be_written_under_a_graph_that_uses_them():
    """Gradients returned as Tensors (tg.grad, .grad) are writable; writing one changes a recorded graph's gradient."""
    w = tg.Tensor(np.array([1.0, 2.0]))
    (g,) = tg.grad(tg.sum(w * w * w), w)  # 3 w^2 = [3, 12]
    z = tg.sum(w * g)  # mul's backward reads g
    tg.sum(w * w).backward()  # w.grad = [2, 4]
    pen = tg.sum(w * w.grad)
    for value in (g.data, w.grad.data):
        try:
            value[:] = 0.0  # zeroing gradients in place, as with torch's .zero_()
        except ValueError:
            pass  # read-only, as every other Tensor value: fine
    np.testing.assert_allclose(tg.compute_gradients(z, [w])[0], [3.0, 12.0])
    np.testing.assert_allclose(tg.compute_gradients(pen, [w])[0], [2.0, 4.0])


def test_an_array_saved_for_backward_keeps_its_value():
    """ctx.save_for_backward(ndarray) then the caller writes the array: the backward must see the saved value."""

    class Scale(tg.Function):
        @staticmethod
        def forward(ctx, x, k):
            ctx.save_for_backward(k)
            return x.data * k

        @staticmethod
        def backward(ctx, g):
            (k,) = ctx.saved_tensors
            return g * k, None

    k = np.array([3.0, 4.0])
    x = tg.Tensor(np.array([1.0, 1.0]))
    y = tg.sum(Scale.apply(x, k))
    k[:] = 100.0
    np.testing.assert_allclose(tg.compute_gradients(y, [x])[0], [3.0, 4.0])


def test_an_index_array_the_caller_reuses_does_not_change_the_gradient():
    """x[idx] keeps idx by reference (ArrayRecord params): refilling idx after the forward moves the gradient."""
    torch = pytest.importorskip("torch")
    x = tg.Tensor(np.array([1.0, 2.0, 3.0]))
    idx = np.array([0, 0, 2])
    y = tg.sum(x[idx] * np.array([1.0, 2.0, 3.0]))
    idx[:] = 1  # e.g. a minibatch index buffer refilled for the next step
    xt = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64, requires_grad=True)
    (xt[[0, 0, 2]] * torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)).sum().backward()
    np.testing.assert_allclose(tg.compute_gradients(y, [x])[0], xt.grad.numpy())  # [3, 0, 3] (was [0, 6, 0])


def test_a_boolean_mask_the_caller_reuses_does_not_change_the_gradient():
    """x[mask] with mask rewritten after the forward: the gradient is the one of the mask used (it raises instead)."""
    x = tg.Tensor(np.array([1.0, 2.0, 3.0]))
    mask = np.array([True, False, True])
    y = tg.sum(x[mask] * 2.0)
    mask[:] = False
    np.testing.assert_allclose(tg.compute_gradients(y, [x])[0], [2.0, 0.0, 2.0])


def test_where_condition_and_clip_bounds_are_kept_as_they_were():
    """tg.where's condition and tg.clip's array bounds are kept by reference too: writing them changes the gradient."""
    torch = pytest.importorskip("torch")
    x = tg.Tensor(np.array([1.0, 2.0, 3.0]))
    cond = np.array([True, False, True])
    c = np.array([5.0, 5.0, 5.0])
    y = tg.sum(tg.where(cond, x, c) * x)
    hi = np.array([1.5, 1.5, 1.5])
    z = tg.sum(tg.clip(x, 0.0, hi))
    cond[:] = False
    hi[:] = 10.0
    xt = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64, requires_grad=True)
    (torch.where(torch.tensor([True, False, True]), xt, torch.tensor(5.0, dtype=torch.float64)) * xt).sum().backward()
    np.testing.assert_allclose(tg.compute_gradients(y, [x])[0], xt.grad.numpy())  # [2, 5, 6] (was [1, 5, 3])
    np.testing.assert_allclose(tg.compute_gradients(z, [x])[0], [1.0, 0.0, 0.0])  # (was [1, 1, 1])


# ---- compaction (Note [Compaction]) keeps updated tensors whole ----

# Enough discarded ops to make the tape compact while older results stay alive
# (Note [Compaction]: compact_at starts at RECLAIM_ROWS = 65,536 rows).
COMPACT = 70_000


def _updated_leaf_then_compaction():
    """x feeds a kept graph y, is updated under no_grad, then the tape compacts."""
    x = tg.Tensor(2.0, "x")
    y = x * x  # kept alive: this graph saw x == 2
    with tg.no_grad():
        x -= 1.0  # x == 1 now
    for _ in range(COMPACT):
        x * 2.0  # discarded results: the first pushes x's version row, compaction drops it
    z = x * 3.0  # a graph of the new value
    return x, y, z


def test_compaction_keeps_an_updated_leaf_connected_to_its_old_graph():
    """compute_gradients/grad after compaction must still count the graph that saw x's old value."""
    x, y, z = _updated_leaf_then_compaction()
    # d(x_old^2 + 3 x_new)/dx with x_old = 2: 2 * 2 + 3 = 7, and 4 for y alone.
    assert tg.compute_gradients(y, [x]) == [4.0]
    assert tg.compute_gradients(y + z, [x]) == [7.0]
    (g,) = tg.grad(y + z, [x], retain_graph=True)
    assert g.data == 7.0


def test_compaction_keeps_a_leaf_hook_running_once_on_its_whole_gradient():
    """After compaction a leaf's hook must run once on the total (as before compaction), not once per row."""
    x = tg.Tensor(2.0, "x")
    seen = []
    x.register_hook(lambda g: seen.append(float(g.data)) or tg.clip(g, -1.0, 1.0))
    y = x * x
    with tg.no_grad():
        x -= 1.0
    for _ in range(COMPACT):
        x * 2.0
    z = x * 3.0
    (y + z).backward()
    assert seen == [7.0]
    assert x.grad.data == 1.0  # the clipping hook saw 7 and returned 1 (got clip(4) + clip(3) = 2)


def test_compaction_of_a_tape_context_keeps_an_updated_foreign_leaf_connected():
    """Same in a persistent tapegrad.Tape: the leaf's foreign row must not be re-entered as a new identity."""
    w = tg.Tensor(2.0, "w")
    with tg.Tape(persistent=True) as tape:
        y = w * w
    with tg.no_grad():
        w -= 1.0
    with tape:
        for _ in range(COMPACT):
            w * 2.0
        z = w * 3.0
        total = y + z
    assert tape.gradient(y, w) is not None and tape.gradient(y, w).data == 4.0
    assert tape.gradient(total, w).data == 7.0


def test_reinit_of_a_tensor_raises_rather_than_give_it_a_second_identity():
    """x.__init__(...) again made compute_gradients and backward() disagree on one graph (3.0
    against 7.0), and a new shape gave zeros: a tensor is made once; t.data = ... updates it."""
    x = tg.Tensor(2.0, "x")
    y = x * x
    with pytest.raises(RuntimeError, match=r"already made.*t.data ="):
        x.__init__(5.0, "x")
    h = x * 2.0
    with pytest.raises(RuntimeError, match="already made"):
        h.__init__(np.array([7.0, 7.0, 7.0]))
    assert tg.compute_gradients(y, [x]) == [4.0]
    y.backward()
    assert x.grad.data == 4.0


# ---- accumulating a loss: `loss = 0; for ...: loss += term` (DESIGN 4.2) ----

ACC_STARTS = {
    "int": lambda: 2,
    "float": lambda: 0.5,
    "numpy_float": lambda: np.float64(0.5),
    "array_0d": lambda: np.array(0.5),
    "constant_tensor": lambda: tg.Tensor(0.5, requires_grad=False),
    "tensor_factory": lambda: tg.tensor(0.5),
}
ACC_OPS = {"+=": lambda a, b: a + b, "-=": lambda a, b: a - b, "*=": lambda a, b: a * b,
           "/=": lambda a, b: a / b}


def _accumulate(start, op, w, lib_sum):
    loss = start
    for i in range(3):
        term = lib_sum(w * w * (i + 1.0)) + 1.0
        if op == "+=":
            loss += term
        elif op == "-=":
            loss -= term
        elif op == "*=":
            loss *= term
        else:
            loss /= term
    return loss


@pytest.mark.parametrize("op", sorted(ACC_OPS))
@pytest.mark.parametrize("start", sorted(ACC_STARTS))
def test_accumulating_a_loss_in_place_records_it(start, op):
    torch = pytest.importorskip("torch")
    w = tg.Tensor(np.array([1.0, 2.0]))
    loss = _accumulate(ACC_STARTS[start](), op, w, tg.sum)
    assert isinstance(loss, tg.Tensor) and loss.requires_grad
    (g,) = tg.grad(loss, [w])
    wt = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
    ref = _accumulate(torch.tensor(0.5 if start != "int" else 2.0, dtype=torch.float64), op, wt,
                      torch.sum)
    (ref_g,) = torch.autograd.grad(ref, wt)
    np.testing.assert_allclose(np.asarray(loss.data), ref.item(), rtol=1e-12)
    np.testing.assert_allclose(g.data, ref_g.numpy(), rtol=1e-12)
    assert np.any(g.data != 0.0)


@pytest.mark.parametrize("op", sorted(ACC_OPS))
def test_accumulating_into_a_tensor_with_history_or_an_array(op):
    torch = pytest.importorskip("torch")
    w = tg.Tensor(np.array([1.0, 2.0]))
    starts = [(lambda: w * 0.5 + 1.0, lambda wt: wt * 0.5 + 1.0),
              (lambda: np.full(2, 1.5), lambda wt: torch.full((2,), 1.5, dtype=torch.float64)),
              (lambda: tg.tensor(np.full(2, 1.5)),
               lambda wt: torch.full((2,), 1.5, dtype=torch.float64))]
    for start, ref_start in starts:
        loss = start()
        for i in range(3):
            if op == "+=":
                loss += w * (i + 1.0)
            elif op == "-=":
                loss -= w * (i + 1.0)
            elif op == "*=":
                loss *= w * (i + 1.0)
            else:
                loss /= w * (i + 1.0)
        (g,) = tg.grad(tg.sum(loss * loss), [w])
        wt = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
        ref = ref_start(wt)
        for i in range(3):
            ref = ACC_OPS[op](ref, wt * (i + 1.0))
        (ref_g,) = torch.autograd.grad((ref * ref).sum(), wt)
        np.testing.assert_allclose(loss.data, ref.detach().numpy(), rtol=1e-12)
        np.testing.assert_allclose(g.data, ref_g.numpy(), rtol=1e-12)


def test_in_place_on_an_ndarray_rebinds_and_writes_the_value():
    w = tg.Tensor(np.array([1.0, 2.0]))
    total = np.zeros(2)
    alias = total
    total += w * 3.0
    assert isinstance(total, tg.Tensor) and total.requires_grad
    np.testing.assert_array_equal(alias, [3.0, 6.0])  # out= got the value, as numpy promises
    with pytest.raises(ValueError):  # numpy's rule: out cannot grow
        scalar = np.zeros(())
        scalar += w
    with pytest.raises(TypeError):  # numpy's casting rule: float into int
        counts = np.zeros(2, dtype=int)
        counts += w


def test_only_a_leaf_that_requires_grad_refuses_in_place_outside_no_grad():
    w = tg.Tensor(np.array([1.0, 2.0]))
    for op in ("+=", "-=", "*=", "/="):
        with pytest.raises(RuntimeError, match=r"leaf that requires grad.*no_grad"):
            exec(f"w {op} 1.0", {"w": w})
    with tg.no_grad():
        w -= 0.5
    np.testing.assert_array_equal(w.data, [0.5, 1.5])


@pytest.mark.parametrize("start", [lambda: 0, lambda: 0.0, lambda: np.zeros(()), lambda: tg.tensor(0.0)],
                         ids=["int", "float", "array", "tensor"])
def test_loss_from_zero_plus_equals_as_users_write_it(start):
    """`loss = 0; for ...: loss += term`, as users write it."""
    w = tg.Tensor(np.array([1.0, -2.0]))
    loss = start()
    for k in (1.0, 2.0, 3.0):
        loss += tg.sum(w * w) * k
        loss -= tg.sum(w) * k
    loss.backward()
    np.testing.assert_allclose(np.asarray(loss.data), 6.0 * 5.0 - 6.0 * -1.0)
    np.testing.assert_allclose(w.grad.data, 6.0 * (2.0 * w.data - 1.0))
