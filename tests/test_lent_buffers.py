"""Gradients a compiled replay returns are lent (Note [Lent buffers] in csrc/pool.hpp).

The caller gets a view of a pooled array; once nothing holds the view, the next
call writes its gradients into the same memory. These tests check both halves:
that the memory does come back (so a training loop runs in memory it has
touched), and that it never comes back while anything can still see it.
"""

import gc
import weakref

import numpy as np
import pytest

import tapegrad as tg

N = 50_000  # large enough to be pooled (BufferPool::MIN_BYTES)


def _loss(x, w):
    return tg.sum(tg.tanh(x * w) * x + w * w)


def _want(x, w):
    t = np.tanh(x * w)
    return (t + x * w * (1 - t * t), x * x * (1 - t * t) + 2 * w)


@pytest.fixture
def inputs():
    rng = np.random.default_rng(0)
    return rng.uniform(-1, 1, N), rng.uniform(-1, 1, N)


def test_a_dropped_gradient_memory_is_written_again_by_the_next_call(inputs):
    f = tg.compile(_loss, argnums=(0, 1))
    f.value_and_grad(*inputs)
    _, (gx, gw) = f.value_and_grad(*inputs)
    addresses = {gx.ctypes.data, gw.ctypes.data}
    assert gx.base is not None and not gx.flags.owndata  # a view of the lent array
    del gx, gw
    _, (gx, gw) = f.value_and_grad(inputs[0] * 0.5, inputs[1])
    assert {gx.ctypes.data, gw.ctypes.data} == addresses
    for got, want in zip((gx, gw), _want(inputs[0] * 0.5, inputs[1])):
        np.testing.assert_allclose(got, want, rtol=1e-12)


def test_gradients_the_caller_keeps_never_change(inputs):
    f = tg.compile(_loss, argnums=(0, 1))
    kept, copies = [], []
    for k in range(20):  # more calls than the pool tracks lent arrays
        _, grads = f.value_and_grad(inputs[0] * (1 + 0.05 * k), inputs[1])
        kept.append(grads)
        copies.append([g.copy() for g in grads])
    for grads, saved in zip(kept, copies):
        for g, s in zip(grads, saved):
            np.testing.assert_array_equal(g, s)
    addresses = [g.ctypes.data for grads in kept for g in grads]
    assert len(set(addresses)) == len(addresses)


@pytest.mark.parametrize("hold", ["a slice", "the base", "a weak reference to the base",
                                  "a memoryview"])
def test_anything_that_can_still_see_a_gradient_keeps_its_memory_from_reuse(inputs, hold):
    f = tg.compile(_loss, argnums=(0, 1))
    f.value_and_grad(*inputs)
    _, (gx, _gw) = f.value_and_grad(*inputs)
    saved = gx.copy()
    holder = {"a slice": lambda g: g[::2], "the base": lambda g: g.base,
              "a weak reference to the base": lambda g: weakref.ref(g.base),
              "a memoryview": memoryview}[hold](gx)
    base = gx.base
    address = gx.ctypes.data
    del gx, _gw
    if hold == "a weak reference to the base":
        del base  # only the weak reference is left
        _, (gx2, gw2) = f.value_and_grad(-inputs[0], inputs[1])
        assert holder() is not None  # the pool still holds it, and must not write it
        np.testing.assert_array_equal(holder(), saved)
        assert address not in (gx2.ctypes.data, gw2.ctypes.data)
        return
    _, (gx2, gw2) = f.value_and_grad(-inputs[0], inputs[1])
    assert address not in (gx2.ctypes.data, gw2.ctypes.data)
    seen = np.asarray(holder)
    np.testing.assert_array_equal(seen, saved[::2] if hold == "a slice" else saved)
    del base


def test_values_and_jvps_are_lent_too(inputs):
    f = tg.compile(lambda x, w: tg.tanh(x * w))
    t = np.ones(N)
    value, jt = f.jvp(inputs, (t, t))
    saved = value.copy(), jt.copy()
    v2, j2 = f.jvp((inputs[0] * 2, inputs[1]), (t, t))
    np.testing.assert_array_equal(value, saved[0])  # the first results, kept, are untouched
    np.testing.assert_array_equal(jt, saved[1])
    addresses = {value.ctypes.data, jt.ctypes.data}
    del value, jt, v2, j2
    value, jt = f.jvp(inputs, (t, t))
    assert {value.ctypes.data, jt.ctypes.data} & addresses
    np.testing.assert_array_equal(value, saved[0])
    np.testing.assert_array_equal(jt, saved[1])


def test_lent_arrays_die_with_the_compiled_function_and_their_views(inputs):
    f = tg.compile(_loss, argnums=(0, 1))
    _, (gx, gw) = f.value_and_grad(*inputs)
    watch = weakref.ref(gx.base)
    del f
    gc.collect()
    assert watch() is not None  # the caller's view holds it
    np.testing.assert_allclose(gx, _want(*inputs)[0], rtol=1e-12)
    del gx, gw
    gc.collect()
    assert watch() is None


def _mlp_loss(w1, w2, x):
    return tg.sum(tg.tanh(tg.tanh(x @ w1) @ w2))


@pytest.mark.parametrize("keep", [False, True])
def test_arrays_no_replay_takes_again_are_freed_not_hoarded(keep):
    # A matrix product's output is numpy's allocation, never taken from the pool: given
    # back, or lent and dropped, it must go back to malloc within a replay or two, not
    # wait until the pool's bounds (a training loop's first steps faulted fresh pages
    # in until then). keep: the loop holds the last gradients through the next call.
    rng = np.random.default_rng(1)
    w1, w2, x = rng.normal(size=(64, 128)), rng.normal(size=(128, 128)), rng.normal(size=(64, 64))
    f = tg.compile(_mlp_loss, argnums=(0, 1))
    counts, grads = [], None
    for step in range(40):
        if not keep:
            grads = None
        _, grads = f.value_and_grad(w1, w2, x * (1 + 0.01 * step))  # noqa: RUF059 (held)
        (trace,) = [t for traces in f._traces.values() for t in traces]
        counts.append(trace.pooled_arrays)
    assert max(counts[5:]) == counts[5] <= 12, counts
