"""Memory over long loops: records are reclaimed when nothing can use them again.

Note [Reclaiming records] in csrc/tape.hpp. The bounds would break with a leak:
the tape would hold every step's records (thousands of rows per step here).
"""

import os
import tracemalloc

import numpy as np
import pytest

import tapegrad as tg
from tapegrad import _core

from functions import Square


def _rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_training_loop_without_clear_history_stays_flat(rng):
    x = rng.uniform(-1, 1, size=(32, 8))
    target = rng.uniform(-1, 1, size=(32, 2))
    w = tg.Tensor(rng.uniform(-1, 1, size=(8, 2)))
    b = tg.Tensor(np.zeros(2))
    rows, traced, rss = [], [], []
    tracemalloc.start()
    try:
        for step in range(2000):
            loss = ((tg.tanh(x @ w + b) - target) ** 2).mean()
            loss.backward()
            with tg.no_grad():
                w -= 0.1 * w.grad
                b -= 0.1 * b.grad
            w.grad = b.grad = None
            if step in (200, 1999):
                rows.append(_core.tape_rows())
                traced.append(tracemalloc.get_traced_memory()[0])
                rss.append(_rss_bytes())
    finally:
        tracemalloc.stop()
    assert rows[1] <= 64, rows  # one step's records, not 2,000 steps'
    assert traced[1] - traced[0] < 200_000, traced
    if "libasan" not in os.environ.get("LD_PRELOAD", ""):  # ASan's quarantine keeps freed memory
        assert rss[1] - rss[0] < 8 << 20, rss
    assert loss.item() < 0.5


def test_scalar_training_loop_stays_flat():
    p = [tg.Tensor(0.1 * k) for k in range(4)]
    for step in range(3000):
        acc = p[0]
        for k in range(1, 4):
            acc = tg.tanh(acc * p[k] + 0.5)
        acc.backward()
        with tg.no_grad():
            for t in p:
                t -= 0.01 * t.grad
                t.grad = None
        if step == 10:
            early = _core.tape_rows()
    assert _core.tape_rows() <= early + 16


def test_evaluation_loop_that_drops_its_graphs_stays_bounded(rng):
    w = tg.Tensor(rng.uniform(size=50))
    peak = 0
    traced, rss = [], []
    tracemalloc.start()
    try:
        for step in range(50_000):  # 4 rows a step: the tape is dropped three times
            _ = tg.tanh(w * 2.0 + 1.0).sum().item()  # the graph dies at once
            peak = max(peak, _core.tape_rows())
            if step % 500 == 0:
                traced.append(tracemalloc.get_traced_memory()[0])
                rss.append(_rss_bytes())
    finally:
        tracemalloc.stop()
    assert peak <= _core.RECLAIM_ROWS + 64  # records of dead graphs do not pile up
    # Memory saws up to one tape's worth (RECLAIM_ROWS rows) and back, three times; with
    # the records kept, the second half's peak would be twice the first's.
    half = len(traced) // 2
    assert max(traced[half:]) < 1.5 * max(traced[:half]), traced
    if "libasan" not in os.environ.get("LD_PRELOAD", ""):
        assert max(rss[half:]) < max(rss[:half]) + (8 << 20), rss


def test_seed_style_history_is_kept_until_clear_history():
    a = tg.Tensor(3.0, "a")
    out = tg.Tensor(a.data ** 2)
    tg.operation_history.append(tg.OperationRecord(["a"], [out.label], lambda g: [2 * 3.0 * g]))
    y = out * 2.0
    y.backward()  # frees what it traversed, but a user record keeps the history
    assert a.grad.data == 12.0
    del y
    z = a * 1.0
    assert len(tg.operation_history) == 3
    assert tg.compute_gradients(z, [a]) == [1.0]


def test_a_retained_graph_is_kept():
    x = tg.Tensor(2.0)
    y = x * x * x
    y.backward(retain_graph=True)
    _ = tg.Tensor(1.0) * 3.0  # a safe point: nothing may be reclaimed
    y.backward()
    assert x.grad.data == 24.0


def test_user_arrays_refcounts_are_restored_after_the_graph_is_freed(rng):
    import sys

    data = rng.uniform(size=(4, 3))
    const = rng.uniform(size=3)
    before = (sys.getrefcount(data), sys.getrefcount(const))
    x = tg.Tensor(data)
    y = (tg.tanh(x * const) @ np.ones((3, 2))).sum()
    y.backward()
    del x, y
    tg.clear_history()
    assert (sys.getrefcount(data), sys.getrefcount(const)) == before
    # The same through reclaiming (no clear_history): the next step's first op frees the last.
    w = tg.Tensor(rng.uniform(size=3))
    for _ in range(3):
        loss = (w * const).sum()
        loss.backward()
    _ = w * 1.0  # a safe point after the last backward: the tape is reclaimed
    assert sys.getrefcount(const) == before[1]


def test_seed_style_loop_with_clear_history_stays_flat():
    x = tg.Tensor(0.5, "x")
    for step in range(2000):
        tg.clear_history()
        y = tg.sin(x) * x + tg.exp(x) / (1.0 + x * x)
        (g,) = tg.compute_gradients(y, [x])
        assert g == pytest.approx(np.cos(0.5) * 0.5 + np.sin(0.5)
                                  + np.exp(0.5) / 1.25 - np.exp(0.5) * 1.0 / 1.25**2)
        if step == 10:
            early = (_core.tape_rows(), _rss_bytes())
    assert _core.tape_rows() == early[0]
    if "libasan" not in os.environ.get("LD_PRELOAD", ""):
        assert _rss_bytes() - early[1] < 4 << 20


# ---- Note [Compaction]: records that no live tensor can reach go, even while
# some recorded tensors stay alive ----

def _garbage_graphs(w, rows):
    """Records about `rows` rows of graphs that die at once."""
    for _ in range(rows // 4):
        tg.tanh(w * 2.0 + 1.0).sum()


def test_evaluation_loop_that_keeps_its_last_result_stays_flat(rng):
    w = tg.Tensor(rng.uniform(size=2_000))
    out = None
    peak_rows = 0
    rss = []
    for step in range(50_000):  # 4 rows a step: compacted several times
        out = tg.tanh(w * 2.0 + 1.0).sum()  # the previous result lives until this returns
        peak_rows = max(peak_rows, _core.tape_rows())
        if step in (20_000, 49_999):
            rss.append(_rss_bytes())
    assert peak_rows <= 2 * _core.RECLAIM_ROWS + 64
    if "libasan" not in os.environ.get("LD_PRELOAD", ""):  # ASan's quarantine keeps freed memory
        assert rss[1] - rss[0] < 8 * 2**20  # each step's arrays are 16 KB: a leak shows at once
    (g,) = tg.grad(out, w)  # the last graph is still whole
    np.testing.assert_allclose(g.data, 2 * (1 - np.tanh(w.data * 2 + 1) ** 2))


def test_tensors_kept_across_compactions_keep_their_history():
    x = tg.Tensor(np.array([0.5, 1.5]), "x")
    kept = tg.sin(x) * x  # lives through the loop below
    kept.label = "kept"
    constant = tg.tensor(np.array([2.0, 3.0]))
    early = kept * constant  # a constant leaf entered before the compactions
    hooked = x * 1.0
    seen = []
    hooked.register_hook(lambda g: seen.append(g.data.copy()))
    w = tg.Tensor(np.ones(3))
    epoch_rows = _core.tape_rows()
    _garbage_graphs(w, 3 * _core.RECLAIM_ROWS)
    assert _core.tape_rows() < epoch_rows + _core.RECLAIM_ROWS  # compacted, more than once
    late = early * kept + constant * hooked  # old tensors used again after compaction
    gx = tg.grad(late.sum(), x)[0].data
    v = x.data
    k = np.sin(v) * v
    dk = np.cos(v) * v + np.sin(v)
    np.testing.assert_allclose(gx, 2 * k * dk * np.array([2.0, 3.0]) + np.array([2.0, 3.0]))
    np.testing.assert_allclose(seen[-1], [2.0, 3.0])
    assert kept.label == "kept"


def test_function_records_and_leaf_grads_survive_compaction():
    x = tg.Tensor(3.0)
    y = Square.apply(x)
    _garbage_graphs(tg.Tensor(np.ones(2)), 3 * _core.RECLAIM_ROWS)
    (y * y).backward()
    assert x.grad.data == pytest.approx(4 * 27.0)
    # And differentiated twice through the compacted tape.
    z = Square.apply(x)
    _garbage_graphs(tg.Tensor(np.ones(2)), 3 * _core.RECLAIM_ROWS)
    (g,) = tg.grad(z * z, x, create_graph=True)
    assert tg.grad(g, x)[0].data == pytest.approx(12 * 9.0)


def test_dropping_the_last_tensor_after_compactions_empties_the_tape():
    x = tg.Tensor(2.0)
    kept = x * x
    _garbage_graphs(tg.Tensor(np.ones(2)), 3 * _core.RECLAIM_ROWS)
    kept.backward()
    assert x.grad.data == 4.0
    del kept
    y = x * 3.0  # a safe point: everything left was freed or is dead
    assert _core.tape_rows() <= 3
    assert tg.grad(y, x)[0].data == 3.0


def _assert_rss_growth_below(step, steps, settled, bound):
    """Runs step(k) for k < steps; RSS may grow by less than bound after step `settled`
    (not checked under ASan, whose allocator keeps freed memory in quarantine)."""
    rss = []
    for k in range(steps):
        step(k)
        if k in (settled, steps - 1):
            rss.append(_rss_bytes())
    if "libasan" not in os.environ.get("LD_PRELOAD", ""):
        assert rss[1] - rss[0] < bound, rss


def test_evaluation_loop_over_large_arrays_is_bounded_by_bytes(rng):
    w = tg.Tensor(rng.uniform(size=(256, 256)))
    x = rng.uniform(size=(256, 256))  # 512 KB arrays: 65,536 rows of them would be 32 GB
    _assert_rss_growth_below(lambda k: (tg.tanh(x @ w) * 2.0).sum().item(), 600, 100, 2 * _core.RECLAIM_BYTES)
    assert tg._core.tape_stats()["rows"] < 600 * 4


def test_index_copies_count_toward_the_memory_bound(rng):
    # w[mask] keeps a copy of the mask (Note [Immutable values]): 100 KB a step for
    # an 8 KB result. Counting only results, 3,000 steps would hold 300 MB of masks.
    w = tg.Tensor(rng.uniform(size=100_000))
    mask = rng.uniform(size=100_000) < 0.01
    _assert_rss_growth_below(lambda k: w[mask].sum().item(), 3000, 500, 2 * _core.RECLAIM_BYTES)
    assert tg._core.tape_stats()["rows"] < 3000 * 2


def test_scaling_by_constants_keeps_no_values(rng):
    # t * c needs only c for t's gradient, t / c likewise, and + needs nothing: a chain
    # of them keeps no array (it kept every step's, 800 KB each, before Mul and Div
    # declared what each input's gradient reads).
    w = tg.Tensor(rng.uniform(size=100_000))
    chain = [w]

    def step(k):
        chain[0] = chain[0] * 0.999 / 1.001 + 0.001

    _assert_rss_growth_below(step, 300, 20, 64 << 20)
    expected = (0.999 / 1.001) ** 300
    np.testing.assert_allclose(tg.grad(chain[0].sum(), w)[0].data, np.full(100_000, expected), rtol=1e-12)


class _Scale(tg.Function):
    """Saves a recorded tensor (its input) and its own output."""

    @staticmethod
    def forward(ctx, x):
        out = x * 3.0
        ctx.save_for_backward(x, out)
        return out

    @staticmethod
    def backward(ctx, g):
        x, out = ctx.saved_tensors
        return g * out / x  # 3, written with both saved tensors


def test_function_saved_tensors_do_not_keep_their_records_alive():
    w = tg.Tensor(np.array([1.0, 2.0]))
    for _ in range(200):
        _ = _Scale.apply(tg.sin(w) + 2.0).sum().item()  # no backward: the graph just dies
    probe = w * 1.0  # a safe point
    assert tg._core.tape_stats()["live"] == 1  # probe alone
    del probe
    y = _Scale.apply(tg.sin(w) + 2.0).sum()
    y.backward()
    np.testing.assert_allclose(w.grad.data, 3 * np.cos(w.data))
    w.grad = None
    del y
    probe = w * 1.0
    assert tg._core.tape_stats()["rows"] <= 3  # all reclaimed after that backward
    del probe


def test_function_saved_tensors_survive_compaction():
    w = tg.Tensor(np.array([0.5, 1.5]))
    y = _Scale.apply(tg.sin(w) + 2.0)  # saves the recorded sin(w) + 2
    _garbage_graphs(tg.Tensor(np.ones(2)), 3 * _core.RECLAIM_ROWS)
    (g,) = tg.grad(y.sum() * y.sum(), w, create_graph=True)
    s = 3 * (np.sin(w.data) + 2).sum()
    np.testing.assert_allclose(g.data, 2 * s * 3 * np.cos(w.data))
    (h,) = tg.grad(g.sum(), w)
    want = 2 * 9 * np.cos(w.data) * np.cos(w.data).sum() - 2 * s * 3 * np.sin(w.data)
    np.testing.assert_allclose(h.data, want)


def test_a_tensor_of_another_thread_survives_compaction_of_both_tapes():
    import threading

    box = {}
    ready, go = threading.Event(), threading.Event()

    def other():
        w = tg.Tensor(np.array([0.5, 1.5]))
        box["v"], box["w"] = tg.sin(w) * 2.0, w  # recorded on this thread's tape
        ready.set()
        go.wait()
        _garbage_graphs(tg.Tensor(np.ones(2)), 3 * _core.RECLAIM_ROWS)  # compacts it
        box["gw"] = tg.grad(box["v"].sum(), box["w"])[0].data

    thread = threading.Thread(target=other)
    thread.start()
    ready.wait()
    v, x = box["v"], tg.Tensor(np.array([2.0, 3.0]))
    y = (v * x).sum()  # v has an entry of its own on this tape
    _garbage_graphs(tg.Tensor(np.ones(2)), 3 * _core.RECLAIM_ROWS)  # compacts this one
    np.testing.assert_allclose(tg.grad(y, x)[0].data, v.data)
    go.set()
    thread.join()
    np.testing.assert_allclose(box["gw"], 2 * np.cos([0.5, 1.5]))
    np.testing.assert_allclose(tg.grad((v * x).sum(), v)[0].data, [2.0, 3.0])


def test_a_plain_backward_into_a_recorded_grad_does_not_pin_the_tape():
    """backward(create_graph=True) then backward(): the plain backward wrote into the recorded
    .grad in place and unbound it without dropping its live count, so the tape never reset
    again and grew every step. A .grad with history now accumulates out of place."""
    a = tg.Tensor(np.ones(1000))
    tg.sum(a * a * a).backward(create_graph=True)
    tg.sum(a * a).backward()
    a.grad = None
    rows = []
    for _ in range(5):
        tg.sum(tg.tanh(a * 2.0)).backward()
        a.grad = None
        rows.append(tg._core.tape_stats()["rows"])
    assert rows[-1] == rows[0], rows  # was 15, 18, 21, 24, 27
