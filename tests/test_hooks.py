"""Tensor.register_hook: see, and replace, the gradient flowing into a tensor."""

import threading

import numpy as np
import pytest

import tapegrad as tg

from functions import Double


def test_a_hook_sees_and_replaces_a_leaf_gradient():
    w = tg.Tensor(np.array([1.0, 2.0]))
    seen = []
    handle = w.register_hook(lambda g: seen.append(g.data.copy()))
    w.register_hook(lambda g: g * 10.0)
    (w * w).sum().backward()
    np.testing.assert_array_equal(seen[0], [2.0, 4.0])
    np.testing.assert_array_equal(w.grad.data, [20.0, 40.0])
    handle.remove()
    handle.remove()
    w.grad = None
    (w * 3.0).sum().backward()  # a new graph: the remaining hook still applies
    np.testing.assert_array_equal(w.grad.data, [30.0, 30.0])
    assert len(seen) == 1


def test_a_hook_on_an_intermediate_changes_what_flows_on():
    x = tg.Tensor(2.0)
    h = x * 3.0
    h.register_hook(lambda g: 0.5 * g.data)
    y = h * h  # dy/dh = 2h = 12, halved by the hook
    (g,) = tg.compute_gradients(y, [x])
    assert g == 6.0 * 3.0


def test_a_hook_on_a_function_output_runs_before_its_record():
    x = tg.Tensor(1.0)
    y = Double.apply(x)
    y.register_hook(lambda g: g * 100.0)
    (y * 1.0).backward()
    assert x.grad.data == 200.0


def test_hook_errors_are_clear():
    x = tg.Tensor(np.ones(3))
    x.register_hook(lambda g: np.ones(4))
    with pytest.raises(ValueError, match=r"hook returned a gradient of shape \(4,\)"):
        (x * 2.0).sum().backward()
    with pytest.raises(RuntimeError, match="does not require grad"):
        tg.tensor(1.0).register_hook(lambda g: g)
    y = tg.Tensor(2.0)
    (y * y).backward()
    assert y.grad.data == 4.0


def test_a_leaf_hook_registered_after_a_tape_context_used_it_runs_in_that_tape():
    """As torch (hooks registered before the gradient call run): tape.gradient must apply w's hook."""
    torch = pytest.importorskip("torch")
    w = tg.Tensor(2.0)
    with tg.Tape(persistent=True) as tape:
        y = w * w
    w.register_hook(lambda g: g * 10.0)
    with tape:
        y2 = w * w  # recorded after the hook was registered, on the same foreign row
    a = torch.tensor(2.0, dtype=torch.float64, requires_grad=True)
    b = a * a
    a.register_hook(lambda g: g * 10)
    (expected,) = torch.autograd.grad(b, a)
    assert tape.gradient(y, w).data == expected.item()  # 40 (was 4: the hook did not run)
    assert tape.gradient(y2, w).data == expected.item()


def test_a_leaf_hook_registered_while_another_thread_uses_the_leaf_runs_there():
    """A hook registered on the main thread after a worker recorded with the leaf runs in the worker's grad()."""
    u = tg.Tensor(2.0)
    out, errors = {}, []
    recorded, hooked = threading.Event(), threading.Event()

    def worker():
        try:
            y = u * u
            recorded.set()
            hooked.wait()
            out["g"] = tg.grad(y, u)[0].data
        except BaseException as e:
            errors.append(repr(e))
            recorded.set()

    thread = threading.Thread(target=worker)
    thread.start()
    recorded.wait()
    u.register_hook(lambda g: g * 10.0)
    hooked.set()
    thread.join()
    assert errors == []
    assert out["g"] == 40.0  # was 4.0


def test_register_hook_outside_the_tape_context_that_recorded_the_tensor():
    """A non-leaf recorded in a persistent Tape: registering a hook on it outside the `with` must work, not claim 'history is gone'."""
    x = tg.Tensor(2.0)
    with tg.Tape(persistent=True) as tape:
        h = x * 3.0
        z = h * h
    h.register_hook(lambda g: g * 10.0)
    assert tape.gradient(z, x).data == 10.0 * 2 * 6.0 * 3.0


def test_hook_that_frees_its_own_row_makes_the_outer_backward_refuse_it():
    # The hook's grad() (no retain_graph) frees z's graph, this row included: going on
    # through it would be the "second time through the graph" PyTorch refuses.
    x = tg.tensor(np.array([0.5, 1.0]), requires_grad=True)
    y = tg.sin(x)
    z = tg.sum(y * 3.0)
    calls = []

    def hook(g):
        calls.append(1)
        if len(calls) == 1:
            tg.grad(z, x)
        return g

    y.register_hook(hook)
    with pytest.raises(RuntimeError, match=r"second time|retain_graph"):
        z.backward()
    w = tg.tensor(2.0, requires_grad=True)
    (w * w).backward()  # the tape is still usable
    assert w.grad.data == 4.0
