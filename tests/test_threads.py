"""Threads: four threads record and differentiate at once, with correct results.

Each thread has its own tape. The stress test runs 4 threads for
TAPEGRAD_STRESS_SECONDS (10 by default; tools/fuzz.sh --long raises it), each
building its own graphs (scalars, arrays, a Function, hooks, create_graph),
mixing no_grad, and reading a parameter tensor and a constant array that all
threads share. Every gradient is checked against its closed form.
"""

import os
import threading
import time

import numpy as np
import pytest

import tapegrad as tg

from functions import Cube

SECONDS = float(os.environ.get("TAPEGRAD_STRESS_SECONDS", "10"))


def _run_threads(target, args_list):
    """One thread per argument tuple, started together and joined."""
    threads = [threading.Thread(target=target, args=args) for args in args_list]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def _worker(k, shared_w, shared_const, deadline, counts, errors):
    rng = np.random.default_rng(k)
    try:
        n = 0
        while time.monotonic() < deadline:
            # Scalars, seed style, on this thread's own history.
            tg.clear_history()
            x = tg.Tensor(float(rng.uniform(0.5, 2.0)), f"x{k}")
            y = tg.log(x) * x + tg.sin(x)
            (gx,) = tg.compute_gradients(y, [x])
            assert abs(gx - (np.log(x.data) + 1 + np.cos(x.data))) < 1e-12
            # Arrays, with the shared parameter (read, never written) and constant.
            v = rng.uniform(-1, 1, size=4)
            loss = (tg.tanh(shared_w * v) * shared_const).sum()
            (gw,) = tg.grad(loss, shared_w)
            want = (1 - np.tanh(shared_w.data * v) ** 2) * v * shared_const
            np.testing.assert_allclose(gw.data, want, rtol=1e-12)
            # no_grad records nothing, and is this thread's alone.
            with tg.no_grad():
                z = shared_w * 2.0
                assert not z.requires_grad
            assert tg.is_grad_enabled()
            # A Function, a hook and a second derivative.
            p = tg.Tensor(float(rng.uniform(0.5, 1.5)))
            q = Cube.apply(p)
            q.register_hook(lambda g: g * 2.0)
            q.backward()
            assert abs(p.grad.data - 6 * p.data ** 2) < 1e-12
            (d1,) = tg.grad(p ** 4, p, create_graph=True)
            (d2,) = tg.grad(d1, p)
            assert abs(d2.data - 12 * p.data ** 2) < 1e-9
            n += 1
        counts[k] = n
    except BaseException as e:  # reported by the main thread
        errors.append((k, repr(e)))


def test_four_threads_record_and_differentiate_at_once():
    shared_w = tg.Tensor(np.array([0.1, -0.4, 0.8, 1.2]))
    shared_const = np.array([1.0, 2.0, 0.5, -1.0])
    deadline = time.monotonic() + SECONDS
    counts, errors = {}, []
    _run_threads(_worker, [(k, shared_w, shared_const, deadline, counts, errors)
                           for k in range(4)])
    assert errors == []
    assert sorted(counts) == [0, 1, 2, 3] and min(counts.values()) > 0
    # The main thread's tape is untouched by the others.
    x = tg.Tensor(2.0)
    assert tg.grad(x * x, x)[0].data == 4.0


def test_concurrent_backward_into_one_leaf_adds_every_gradient():
    """Note [Concurrent accumulation]: numpy releases the GIL inside the add into
    .grad, so the read-add-write must not lose another thread's gradient."""
    rng = np.random.default_rng(0)
    w = tg.Tensor(rng.uniform(-0.5, 0.5, size=(50, 50)))
    xs = [rng.uniform(-1, 1, size=(64, 50)) for _ in range(4)]
    steps = 150

    def step(x):
        tg.sum(tg.tanh(x @ w) ** 2).backward()

    def worker(x):
        try:
            for _ in range(steps):
                step(x)
        except BaseException as e:  # reported by the main thread
            errors.append(repr(e))

    errors = []
    _run_threads(worker, [(x,) for x in xs])
    assert errors == []
    concurrent = w.grad.data.copy()
    w.grad = None
    for x in xs:  # the same gradients, one at a time
        for _ in range(steps):
            step(x)
    np.testing.assert_allclose(concurrent, w.grad.data, rtol=1e-9, atol=1e-9)


def test_concurrent_create_graph_backward_into_one_leaf_adds_every_gradient():
    w = tg.Tensor(np.linspace(-1, 1, 200 * 200).reshape(200, 200))

    def worker():
        for _ in range(20):
            tg.sum(w * w * w).backward(create_graph=True)

    _run_threads(worker, [()] * 4)
    np.testing.assert_allclose(w.grad.data, 80 * 3 * w.data ** 2, rtol=1e-9)


class _Worker:
    """A thread that runs the jobs it is given, in order, on its own tape."""

    def __init__(self):
        import queue

        self.jobs, self.results = queue.Queue(), queue.Queue()
        self.thread = threading.Thread(target=self._loop)
        self.thread.start()

    def _loop(self):
        while (job := self.jobs.get()) is not None:
            try:
                self.results.put(job())
            except BaseException as e:  # handed to the caller
                self.results.put(e)

    def run(self, job):
        self.jobs.put(job)
        result = self.results.get()
        if isinstance(result, BaseException):
            raise result
        return result

    def finish(self):
        self.jobs.put(None)
        self.thread.join()


def test_a_stale_tensor_from_a_cleared_or_finished_thread_raises():
    """A's tape is older than B's; x is B's. A computes t = x * x, then clears its
    history (or exits): a gradient through t on B must not take t as a constant,
    although x was made after A's tape (epochs of two tapes are not ordered)."""
    for finish in ("clear", "exit"):
        a = _Worker()
        a.run(lambda: tg.Tensor(1.0))  # A's tape exists first
        b = _Worker()
        x = b.run(lambda: tg.Tensor(2.0, "x"))
        t = a.run(lambda x=x: x * x)
        if finish == "clear":
            a.run(tg.clear_history)
        else:
            a.finish()

        def differentiate(t=t, x=x):
            try:
                return tg.grad(t * 3.0 + x, x)[0].data
            except RuntimeError as e:
                return str(e)

        got = b.run(differentiate)
        b.finish()
        if finish == "clear":
            a.finish()
        assert got == 13.0 or "history is gone" in got, got


def test_another_threads_default_label_names_its_own_tensor():
    """Note [Foreign labels]: tensor_0 of the main thread is not B's tensor_0."""
    a, b = tg.Tensor(2.0), tg.Tensor(3.0)  # this thread's tensor_0 and tensor_1
    got = {}

    def thread_b():
        tg.Tensor(10.0)  # B's own tensor_0 and tensor_1
        tg.Tensor(20.0)
        out = tg.Tensor(a.data * b.data)
        tg.operation_history.append(tg.OperationRecord(
            [a.label, b.label], [out.label], lambda g: [g * b.data, g * a.data]))
        got["grads"] = tg.compute_gradients(out, [a, b])
        # The same labels as plain strings: a is on this tape now, so tensor_0 is ambiguous.
        out2 = tg.Tensor(1.0)
        with pytest.raises(ValueError, match="names two tensors"):
            tg.operation_history.append(tg.OperationRecord(["tensor_0"], [out2.label], lambda g: [g]))

    worker = _Worker()
    worker.run(thread_b)
    worker.finish()
    assert got["grads"] == [3.0, 2.0]
    assert type(a.label) is str  # on its own thread, a plain str


def _shared_worker(k, shared, deadline, counts, errors):
    """Large arrays (the pool and temporaries at work), an intermediate of the main
    thread used here (a foreign row), short-lived threads that record and exit, and
    backward() into the shared leaf, counted so the main thread can check the sum."""
    rng = np.random.default_rng(100 + k)
    x = shared["xs"][k]
    try:
        n = 0
        while time.monotonic() < deadline:
            # Temporaries and pooled buffers: 40,000 elements, checked against numpy.
            a = rng.uniform(0.1, 1.0, size=40_000)
            t = tg.Tensor(a)
            y = tg.tanh(t * 2.0 + 1.0) * tg.exp(-t * t)
            (g,) = tg.grad(tg.sum(y), t)
            th, e = np.tanh(2 * a + 1), np.exp(-a * a)
            np.testing.assert_allclose(g.data, 2 * (1 - th * th) * e - 2 * a * th * e,
                                       rtol=1e-10, atol=1e-13)
            # The main thread's intermediate h = tanh(W) as a foreign row here.
            h = shared["h"]
            (gh,) = tg.grad(tg.sum(h * h * 3.0), h)
            np.testing.assert_allclose(gh.data, 6 * h.data, rtol=1e-13)
            # A thread that records with the shared intermediate, then exits.
            out = {}
            child = threading.Thread(target=lambda out=out, h=h: out.update(v=tg.sum(h * 2.0).data))
            child.start()
            child.join()
            assert out["v"] == pytest.approx(2 * h.data.sum())
            # backward() into the shared leaf: the main thread checks the total.
            tg.sum(tg.tanh(x @ shared["W"]) ** 2).backward()
            counts[k] = counts.get(k, 0) + 1
            n += 1
            tg.clear_history()
        assert n > 0
    except BaseException as e:  # reported by the main thread
        errors.append((k, repr(e)))


def test_threads_share_arrays_intermediates_and_a_leaf():
    rng = np.random.default_rng(0)
    w = tg.Tensor(rng.uniform(-0.5, 0.5, size=(40, 40)))
    shared = {"W": w, "h": tg.tanh(w), "xs": [rng.uniform(-1, 1, size=(32, 40)) for _ in range(4)]}
    deadline = time.monotonic() + SECONDS / 2
    counts, errors = {}, []
    _run_threads(_shared_worker, [(k, shared, deadline, counts, errors) for k in range(4)])
    assert errors == []
    total = w.grad.data.copy()
    w.grad = None
    for k, x in enumerate(shared["xs"]):  # each thread's gradient, as many times as it ran
        tg.sum(tg.tanh(x @ w) ** 2).backward()
        one = w.grad.data.copy()
        w.grad = None
        total -= counts[k] * one
    np.testing.assert_allclose(total, 0.0, atol=1e-8 * max(counts.values()))


def test_a_label_copied_from_another_threads_tensor_names_the_new_tensor():
    """Note [Foreign labels]: t = Tensor(v, label=x.label) with x another thread's tensor
    keeps the text only; a record naming t's label resolves to t, not to x."""
    x = tg.Tensor(2.0)  # this thread's tensor_0
    got = {}

    def thread_b():
        tg.Tensor(0.0)  # B's own tensor_0
        t = tg.Tensor(3.0, label=x.label)  # x.label, read here, remembers x
        assert type(t.label) is str
        out = tg.Tensor(t.data * 2.0, "out")
        tg.operation_history.append(tg.OperationRecord([t.label], ["out"], lambda g: [2.0 * g]))
        got["grads"] = tg.compute_gradients(out, [t, x])

    worker = _Worker()
    worker.run(thread_b)
    worker.finish()
    assert got["grads"] == [2.0, 0.0]
