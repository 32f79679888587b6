"""tapegrad.Tape, and tensors used on more than one tape (Note [Foreign tensors])."""

import threading

import numpy as np
import pytest

import tapegrad as tg


def test_tape_records_on_its_own():
    x = tg.Tensor(3.0)
    before = len(tg.operation_history)
    with tg.Tape() as tape:
        y = x * x + tg.sin(x)
    assert len(tg.operation_history) == before  # the default tape saw nothing
    assert tape.gradient(y, x).data == pytest.approx(6.0 + np.cos(3.0))
    with pytest.raises(RuntimeError, match="non-persistent tape computes one gradient"):
        tape.gradient(y, x)


def test_persistent_tape_and_unconnected_sources():
    w = tg.Tensor(np.array([1.0, 2.0]))
    u = tg.Tensor(5.0)
    with tg.Tape(persistent=True) as tape:
        z = (w * w).sum()
    gw, gu = tape.gradient(z, [w, u])
    np.testing.assert_array_equal(gw.data, [2.0, 4.0])
    assert gu is None
    np.testing.assert_array_equal(tape.gradient(z, [w])[0].data, [2.0, 4.0])


def test_a_leaf_used_on_two_tapes_keeps_both_gradients():
    w = tg.Tensor(2.0)
    y = w * 3.0  # on the default tape
    with tg.Tape(persistent=True) as tape:
        z = w * w * w
    q = w * 5.0  # the default tape again
    assert tg.compute_gradients(y, [w]) == [3.0]
    assert tg.compute_gradients(q, [w]) == [5.0]
    assert tape.gradient(z, w).data == 12.0


def test_nested_tapes_record_on_the_innermost():
    x = tg.Tensor(1.5)
    with tg.Tape(persistent=True) as outer:
        a = x * x
        with tg.Tape() as inner:
            b = x * 4.0
        c = a * 2.0
    assert inner.gradient(b, x).data == 4.0
    assert outer.gradient(c, x).data == 4 * 1.5
    # `a` lives on the outer tape: differentiating through it on another raises, never zeros.
    with tg.Tape() as other:
        d = a * 3.0
    with pytest.raises(RuntimeError, match="recorded on another tape"):
        other.gradient(d, x)


def test_tapes_must_exit_in_order():
    t1, t2 = tg.Tape(), tg.Tape()
    t1.__enter__()
    t2.__enter__()
    with pytest.raises(RuntimeError, match="reverse order"):
        t1.__exit__(None, None, None)
    t2.__exit__(None, None, None)
    t1.__exit__(None, None, None)
    assert (tg.Tensor(1.0) * 2.0).requires_grad  # back on the default tape


def test_a_tensor_shared_by_two_threads_keeps_its_gradient_on_each():
    w = tg.Tensor(2.0)
    y = w * 3.0  # w lives on the main thread's tape
    result = {}

    def other():
        z = w * w
        result["other"] = tg.compute_gradients(z, [w])

    thread = threading.Thread(target=other)
    thread.start()
    thread.join()
    assert result["other"] == [4.0]
    assert tg.compute_gradients(y, [w]) == [3.0]  # not cut by the other thread's use


def test_a_source_used_on_the_other_threads_tape_cannot_hide_there():
    box = {}
    ready, done = threading.Event(), threading.Event()

    def other():
        w = tg.Tensor(np.array([0.5, 1.5]))
        box["v"], box["w"] = tg.sin(w) * 2.0, w  # v's history is on this thread's tape
        ready.set()
        done.wait()

    thread = threading.Thread(target=other)
    thread.start()
    ready.wait()
    try:
        v, w = box["v"], box["w"]
        x = tg.Tensor(np.array([1.0, 2.0]))  # made here, never used there: no gradient is lost
        np.testing.assert_allclose(tg.grad((v * x).sum(), x)[0].data, v.data)
        with pytest.raises(RuntimeError, match=r"'tensor_\d+' flows through 'tensor_\d+'"):
            tg.grad((v * x).sum(), w)  # w fed v over there: its gradient would be missing
    finally:
        done.set()
        thread.join()


def test_grad_mode_is_the_threads_not_the_tapes():
    """As in PyTorch: entering a Tape inside no_grad() does not turn recording back on."""
    x = tg.Tensor(2.0)
    with tg.no_grad(), tg.Tape():
        assert not tg.is_grad_enabled()
        assert not (x * x).requires_grad
    with tg.Tape():
        with tg.no_grad():
            assert not (x * x).requires_grad
        assert tg.is_grad_enabled()
    assert tg.is_grad_enabled()
    with tg.no_grad():
        tape = tg.Tape(persistent=True)
        with tape:
            y = x * x
        assert not y.requires_grad
    with tape, tg.enable_grad():
        y = x * x
    assert tape.gradient(y, x).data == 4.0


def test_a_path_through_another_tape_raises_rather_than_drop_its_gradient():
    """x reaches the Tape only through a, so grad(c, x) would miss b's path."""
    x = tg.Tensor(np.array([0.3, 0.8, 1.1]))
    a = x * x
    with tg.Tape() as tape:
        b = tg.exp(a)
    c = (b * x).sum()
    with pytest.raises(RuntimeError, match="recorded on another tape"):
        tg.grad(c, x)
    with pytest.raises(RuntimeError, match="recorded on another tape"):
        tg.compute_gradients(c, [x])
    with pytest.raises(RuntimeError, match="recorded on another tape"):
        c.backward()
    # A source the other tape's history does not reach is answered.
    y = tg.Tensor(2.0)
    d = (b * y).sum()
    np.testing.assert_allclose(tg.grad(d, y)[0].data, np.exp(x.data ** 2).sum())
    with tg.Tape(persistent=True) as outer:
        a2 = x * x
        with tg.Tape() as inner:
            b2 = tg.exp(a2)
        c2 = (b2 * x).sum()
    with pytest.raises(RuntimeError, match="recorded on another tape"):
        outer.gradient(c2, x)
    del tape, inner  # their records are gone with them: the same gradients are refused
    with pytest.raises(RuntimeError, match="history is gone"):
        tg.grad(c, x)
    with pytest.raises(RuntimeError, match="history is gone"):
        outer.gradient(c2, x)


def test_backward_through_history_that_is_gone_raises():
    a = tg.Tensor(np.array([1.0, 2.0]))
    t = tg.Tensor(np.array([3.0, 4.0]))
    w = a * a
    (t * w).sum().backward()  # frees what it traversed, w's record included
    with pytest.raises(RuntimeError, match=r"backward through the graph a second time|history is gone"):
        w.sum().backward()
    h = a * 3.0
    tg.clear_history()
    with pytest.raises(RuntimeError, match="history is gone"):
        (h * 2.0).sum().backward()
