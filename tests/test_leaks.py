"""Leaks: each path repeated a few thousand times, with bounds a leak would break.

For every path (ops and backward, Function, hooks, create_graph, seed-style
records, Tape, and exceptions raised in the middle of a backward, where
reference cycles hide) the loop runs 2,000 times after a warm-up; Python's
traced memory and the process's RSS must stay flat, and the reference counts
of the user's arrays, the constants used and the Tensors must come back to
what they were once the graphs are gone.
"""

import gc
import os
import sys
import tracemalloc

import numpy as np
import pytest

import tapegrad as tg

from functions import Square

# Two halves of 1,000 steps; tools/sanitize.sh's leak pass needs the paths run, not the
# bounds, and sets fewer (every malloc unwinds the stack there).
STEPS = int(os.environ.get("TAPEGRAD_LEAK_STEPS", "2000"))
UNDER_ASAN = "libasan" in os.environ.get("LD_PRELOAD", "")  # its quarantine keeps freed memory


def _rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class Broken(tg.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * 3.0

    @staticmethod
    def backward(ctx, g):
        raise ArithmeticError("broken backward")


def _make_paths(data, const, w):
    """name -> one step of that path; every step checks its own result."""

    def ops_backward():
        loss = (tg.tanh(tg.tensor(data) * w) @ const).sum()
        loss.backward()
        assert w.grad.shape == w.shape
        w.grad = None

    def function():
        y = Square.apply(w).sum() * 2.0
        y.backward()
        np.testing.assert_allclose(w.grad.data, 4 * w.data)
        w.grad = None

    def hooks():
        h = w * const
        h.register_hook(lambda g: g * 2.0)
        h.sum().backward()
        np.testing.assert_allclose(w.grad.data, 2 * const)
        w.grad = None

    def create_graph():
        (g,) = tg.grad((w ** 3).sum(), w, create_graph=True)
        (h,) = tg.grad((g * const).sum(), w)
        np.testing.assert_allclose(h.data, 6 * w.data * const)

    def seed_style():
        tg.clear_history()
        x = tg.Tensor(data, "x")
        out = tg.Tensor(data * 2.0, "out")
        tg.operation_history.append(tg.OperationRecord(["x"], ["out"], lambda g: [g * 2.0]))
        (gx,) = tg.compute_gradients((out * const[0]).sum(), [x])
        np.testing.assert_allclose(gx, np.full(data.shape, 2.0 * const[0]))
        tg.clear_history()

    def tape():
        with tg.Tape() as t:
            y = (w * w).sum()
        np.testing.assert_allclose(t.gradient(y, w).data, 2 * w.data)

    def raising_record():
        x = tg.Tensor(data)
        out = tg.Tensor(data.copy())
        tg.operation_history.append(
            tg.OperationRecord([x], [out], lambda g: (_ for _ in ()).throw(KeyError("bad"))))
        with pytest.raises(KeyError):
            tg.compute_gradients((out * w[0]).sum(), [x])
        tg.clear_history()

    def raising_function():
        with pytest.raises(ArithmeticError):
            (Broken.apply(w) * const).sum().backward()

    def raising_hook():
        h = w * 1.0
        h.register_hook(lambda g: 1 / 0)
        with pytest.raises(ZeroDivisionError):
            h.sum().backward()

    def raising_under_create_graph():
        with pytest.raises(ArithmeticError):
            tg.grad((Broken.apply(w) * w).sum(), w, create_graph=True)

    def hook_cycle():
        # Note [Tracked tensors]: the hook's default argument refers back to t.
        t = tg.Tensor(data)
        t.register_hook(lambda g, t=t: g)
        (t * const).sum().backward()
        np.testing.assert_allclose(t.grad.data, np.broadcast_to(const, data.shape))

    def linalg():
        # Native linear-algebra ops, packed decompositions and their create_graph
        # backwards (csrc/linalg.hpp), whose values the Python functions slice.
        m = tg.tensor(data[:4]) * w + np.eye(4) * 3.0
        u, s, vh = tg.linalg.svd(m)
        y = tg.linalg.det(m) + tg.linalg.eigh(m @ m.T)[1].sum() + (u * s).sum() + vh.sum()
        (g,) = tg.grad(y + tg.linalg.solve(m, const).sum() + tg.linalg.slogdet(m)[1], w,
                       create_graph=True)
        (h,) = tg.grad((g * const).sum(), w)
        assert np.isfinite(h.data).all()

    def linalg_raising():
        x = tg.Tensor(np.diag([1.0, 1.0, 2.0]))  # a repeated eigenvalue
        with pytest.raises(np.linalg.LinAlgError):
            tg.grad((tg.linalg.eigh(x)[1] * w[:3]).sum(), x, create_graph=True)

    def grad_cycle():
        t, u = tg.Tensor(data), tg.Tensor(data)
        t.grad = u
        u.grad = t
        tg.clear_history()  # the tape lets go of its leaves: only the cycle holds them

    return {f.__name__: f for f in (ops_backward, function, hooks, create_graph, seed_style,
                                     tape, raising_record, raising_function, raising_hook,
                                     raising_under_create_graph, hook_cycle, grad_cycle,
                                     linalg, linalg_raising)}


PATHS = sorted(_make_paths(None, None, None))


@pytest.mark.parametrize("path", PATHS)
def test_repeated_path_does_not_leak(path, rng):
    data = rng.uniform(-1, 1, size=(8, 4))
    const = rng.uniform(0.5, 1.5, size=4)
    w = tg.Tensor(rng.uniform(-1, 1, size=4))
    tg.clear_history()  # the tape holds w since its creation
    gc.collect()
    before = {"data": sys.getrefcount(data), "const": sys.getrefcount(const),
              "w": sys.getrefcount(w)}
    step = _make_paths(data, const, w)[path]
    for _ in range(50):  # warm-up: caches, the buffer pool, pytest's machinery
        step()
    tracemalloc.start()
    try:
        # Compared after a first half, so both points hold one step's steady state.
        for _ in range(STEPS // 2):
            step()
        gc.collect()
        traced0, rss0 = tracemalloc.get_traced_memory()[0], _rss_bytes()
        for _ in range(STEPS // 2):
            step()
        gc.collect()
        traced1, rss1 = tracemalloc.get_traced_memory()[0], _rss_bytes()
    finally:
        tracemalloc.stop()
    # A leak of one small object per step is 1,000 objects: over 50 KB.
    assert traced1 - traced0 < 50_000, (traced0, traced1)
    if not UNDER_ASAN:
        assert rss1 - rss0 < 4 << 20, (rss0, rss1)
    del step
    tg.clear_history()
    gc.collect()
    after = {"data": sys.getrefcount(data), "const": sys.getrefcount(const),
             "w": sys.getrefcount(w)}
    assert after == before


def test_only_tensors_with_a_grad_or_hooks_are_tracked():
    """Note [Tracked tensors]: op results are never walked by the collector."""
    w = tg.Tensor(np.ones(3))
    y = w * 2.0
    assert not gc.is_tracked(y)
    y.register_hook(lambda g: g)
    assert gc.is_tracked(y)
    z = w * 3.0
    z.grad = tg.tensor(np.zeros(3))
    assert gc.is_tracked(z)
    (w * w).sum().backward()
    assert gc.is_tracked(w)
    assert gc.get_referents(z) and any(r is z.grad for r in gc.get_referents(z))
