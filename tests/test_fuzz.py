"""Differential fuzzing: random programs from the op tables against three oracles.

Hypothesis builds programs over a pool of values: the inputs (arrays of
mutually broadcastable shapes, 0-d included), constants, and every value
computed so far, so subexpressions are reused. Each step applies a curated
step (elementwise, reductions kept broadcastable, softmax, matmul by a
constant, flips, transposes there and back, where...) or any op of the
catalogue that has test data in tests/opcatalog.py (so a new op is fuzzed too).
The gradients must agree with
- tapegrad.reference, when every op of the program is one the reference has;
- central finite differences in float64, when every op is smooth;
- PyTorch, when installed, to first and second order (create_graph);
- and with a value updated in place halfway through, PyTorch on the same
  program recomputed with the values each op saw (Note [Versions]).

CI runs TAPEGRAD_FUZZ_EXAMPLES examples (60) with a fixed seed;
tools/fuzz.sh --long SECONDS runs random seeds for as long as asked. A bug it
finds becomes a regression test (see the end of this file).
"""

import os

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tapegrad as tg
from tapegrad import catalogue, reference

import opcatalog

EXAMPLES = int(os.environ.get("TAPEGRAD_FUZZ_EXAMPLES", "60"))
RANDOM = os.environ.get("TAPEGRAD_FUZZ_RANDOM") == "1"  # tools/fuzz.sh --long
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=not RANDOM,
                    database=None)


class TorchOps:
    """numpy-style names for the few torch functions the steps use."""

    def __init__(self, torch):
        self.t = torch

    def __getattr__(self, name):
        return getattr(self.t, name)

    def sum(self, v, axis, keepdims):
        return v.sum(dim=axis, keepdim=keepdims) if axis is not None else (
            v.sum().reshape((1,) * v.ndim) if keepdims else v.sum())

    def mean(self, v, axis, keepdims):
        return v.mean(dim=axis, keepdim=keepdims)

    def max(self, v, axis, keepdims):
        return v.amax(dim=axis, keepdim=keepdims)

    def logsumexp(self, v, axis, keepdims):
        return self.t.logsumexp(v, dim=axis, keepdim=keepdims)

    def softmax(self, v, axis):
        return self.t.softmax(v, dim=axis)

    def log_softmax(self, v, axis):
        return self.t.log_softmax(v, dim=axis)

    def where(self, mask, a, b):
        return self.t.where(self.t.as_tensor(mask), a, b)

    def flip(self, v, axis):
        return self.t.flip(v, (axis,))

    def constant(self, a):
        return self.t.as_tensor(a, dtype=self.t.float64)

    def swap(self, v):
        return v.transpose(-1, -2)

    def function(self, name):
        return torch_function(self.t, name)

    def stack(self, values):
        return self.t.stack(list(values))

    def concatenate(self, values):
        return self.t.cat(list(values))


def torch_function(torch, name):
    """torch's function of a catalogue name (numpy's names, torch.special's), or None."""
    name = {"power": "pow"}.get(name, name)
    for space in (torch, torch.special):
        fn = getattr(space, name.rsplit(".", 1)[-1], None)
        if callable(fn):
            return fn
    return None


class TapegradOps:
    """The same names on tapegrad (or the reference, for the elementwise ones)."""

    def __init__(self, module):
        self.m = module

    def __getattr__(self, name):
        return getattr(self.m, name)

    def sum(self, v, axis, keepdims):
        return self.m.sum(v, axis=axis, keepdims=keepdims)

    def mean(self, v, axis, keepdims):
        return self.m.mean(v, axis=axis, keepdims=keepdims)

    def max(self, v, axis, keepdims):
        return self.m.max(v, axis=axis, keepdims=keepdims)

    def logsumexp(self, v, axis, keepdims):
        return self.m.logsumexp(v, axis=axis, keepdims=keepdims)

    def softmax(self, v, axis):
        return self.m.softmax(v, axis=axis)

    def log_softmax(self, v, axis):
        return self.m.log_softmax(v, axis=axis)

    def flip(self, v, axis):
        index = [slice(None)] * v.ndim
        index[axis] = slice(None, None, -1)
        return v[tuple(index)]

    def constant(self, a):
        return a

    def swap(self, v):
        return self.m.swapaxes(v, -1, -2)

    def function(self, name):
        fn = self.m
        for part in name.split("."):
            fn = getattr(fn, part)
        return fn


def _ndim(v):
    return v.ndim


# name -> (fn(ops, u, v, c), smooth, in the reference). u and v are pool
# members; c is a per-step constant (a float, used by some steps).
UNARY = {
    "tanh": (lambda o, u: o.tanh(u), True, True),
    "sin": (lambda o, u: o.sin(u), True, True),
    "cos": (lambda o, u: o.cos(u), True, True),
    "exp_tanh": (lambda o, u: o.exp(o.tanh(u)), True, True),
    "log_safe": (lambda o, u: o.log(1.0 + u * u), True, True),
    "sqrt_safe": (lambda o, u: o.sqrt(1.0 + u * u), True, True),
    "sigmoid": (lambda o, u: o.sigmoid(u), True, True),
    "neg": (lambda o, u: -u, True, True),
    "abs": (lambda o, u: o.abs(u), False, True),
    "relu": (lambda o, u: o.relu(u), False, True),
}
BINARY = {
    "add": (lambda o, u, v: u + v, True, True),
    "sub": (lambda o, u, v: u - v, True, True),
    "mul": (lambda o, u, v: u * v, True, True),
    "div_safe": (lambda o, u, v: u / (1.0 + v * v), True, True),
    "pow_safe": (lambda o, u, v: (1.0 + u * u) ** o.tanh(v), True, True),
    "maximum": (lambda o, u, v: o.maximum(u, v), False, False),
    "minimum": (lambda o, u, v: o.minimum(u, v), False, False),
}


def _axis(u, k):
    n = _ndim(u)
    return (k % n) - n if n else None  # a negative axis, or None for 0-d


# Array steps keep every value broadcastable with the others: reductions keep
# their axes, and shape changes are undone.
ARRAY = {
    "sum_keep": (lambda o, u, k: o.sum(u, _axis(u, k), True), True),
    "mean_keep": (lambda o, u, k: o.mean(u, _axis(u, k), True) if _ndim(u) else u * 1.0, True),
    "max_keep": (lambda o, u, k: o.max(u, _axis(u, k), True) if _ndim(u) else u * 1.0, False),
    "logsumexp_keep": (lambda o, u, k: o.logsumexp(u, _axis(u, k), True) if _ndim(u) else u,
                       True),
    "softmax": (lambda o, u, k: o.softmax(u, _axis(u, k)) if _ndim(u) else u, True),
    "log_softmax": (lambda o, u, k: o.log_softmax(u, _axis(u, k)) if _ndim(u) else u, True),
    "flip": (lambda o, u, k: o.flip(u, _axis(u, k)) if _ndim(u) else u, True),
    "swap_there_and_back": (lambda o, u, k: o.swap(o.tanh(o.swap(u))) if _ndim(u) >= 2
                            else o.tanh(u), True),
}


# Steps drawn from the whole op catalogue (Note [Catalogue]): an op added to
# the catalogue with its test data in tests/opcatalog.py is fuzzed too.
# Elementwise ops get operands squashed smoothly into the domain their test
# data declares; array ops run on operands of their sample's shapes built from
# the pool value, and their weighted result is summed to a scalar.
CATALOGUE_ELEMENTWISE = sorted(
    f for f, op in catalogue.OPS.items()
    if op.kind == "elementwise" and (f in opcatalog.UNARY or f in opcatalog.BINARY
                                     or f in opcatalog.TIES)
    and (opcatalog.have_scipy() or not opcatalog.needs_scipy(f)))
CATALOGUE_ARRAY = sorted(
    f for f, op in catalogue.OPS.items()
    if op.kind != "elementwise" and f in opcatalog.ARRAY and opcatalog.ARRAY[f].available
    and (opcatalog.have_scipy() or not opcatalog.needs_scipy(f)))


def _into(o, u, low, high):
    return low + (high - low) * o.sigmoid(u)


def _catalogue_elementwise(o, name, u, v):
    fn = o.function(name)
    if name in opcatalog.UNARY:
        low, high = opcatalog.UNARY[name][2]
        return fn(_into(o, u, low, high))
    (a_low, a_high), (b_low, b_high) = (opcatalog.BINARY[name][2:4] if name in opcatalog.BINARY
                                        else ((-2, 2), (-2, 2)))
    return fn(_into(o, u, a_low, a_high), _into(o, v, b_low, b_high))


def _catalogue_array(o, name, u, k, torch_call=False):
    sample = opcatalog.ARRAY[name]
    rng = np.random.default_rng(k)
    shift = o.tanh(o.sum(u, None, False)) * 0.1  # every operand depends on u
    operands = [o.constant(rng.uniform(sample.low, sample.high, size=shape)) + shift
                for shape in sample.shapes]
    if torch_call:
        out = sample.torch(*operands)
    else:
        args, kwargs = sample.call(operands)
        out = o.function(name)(*args, **kwargs)
    out = opcatalog.one_value(out, o.stack, o.concatenate)
    weights = o.constant(rng.uniform(0.5, 1.5, size=tuple(out.shape)))
    return o.sum(out * weights, None, False)


def _matrix(n, k):
    rng = np.random.default_rng(k)
    return rng.uniform(-1, 1, size=(n, n))


def _run(ops, program, inputs):
    pool = _steps(ops, program, list(inputs))
    return _total(pool, len(inputs))


def _steps(ops, program, pool):
    """Runs the program's steps, appending each value to the pool (returned)."""
    for step in program:
        kind, name, i, j, k = step
        u, v = pool[i % len(pool)], pool[j % len(pool)]
        if kind == "unary":
            out = UNARY[name][0](ops, u)
        elif kind == "binary":
            out = BINARY[name][0](ops, u, v)
        elif kind == "binary_const":
            out = BINARY[name][0](ops, u, ops.constant((k % 7 - 3) / 2.0 + 0.25))
        elif kind == "array":
            out = ARRAY[name][0](ops, u, k)
        elif kind == "catalogue":
            out = _catalogue_elementwise(ops, name, u, v)
        elif kind == "catalogue_array":
            out = _catalogue_array(ops, name, u, k, isinstance(ops, TorchOps))
        elif kind == "matmul_const":  # u @ C keeps u's shape (C square on its last axis)
            n = tuple(u.shape)
            out = u @ ops.constant(_matrix(n[-1], k)) if n else u * 2.0
        else:  # where, with a constant mask of u's shape
            mask = np.random.default_rng(k).uniform(size=tuple(u.shape)) > 0.5
            out = ops.where(mask, u, v)
        pool.append(out)
    return pool


def _total(pool, n_inputs):
    # Every input contributes, through the last value and a reused early one.
    total = pool[-1]
    for x in pool[:n_inputs]:
        total = total + x * 0.5
    return total


def _program_flags(program):
    smooth = all(
        (UNARY[s[1]][1] if s[0] == "unary" else BINARY[s[1]][1] if s[0].startswith("binary")
         else ARRAY[s[1]][1] if s[0] == "array"
         else s[1] not in opcatalog.KINKS if s[0] == "catalogue"
         else opcatalog.ARRAY[s[1]].smooth if s[0] == "catalogue_array"
         else s[0] == "matmul_const")
        for s in program)
    in_reference = all(s[0] in ("unary", "binary", "binary_const") and
                       (UNARY if s[0] == "unary" else BINARY)[s[1]][2] for s in program)
    return smooth, in_reference


index = st.integers(0, 99)
step = st.one_of(
    st.tuples(st.just("unary"), st.sampled_from(sorted(UNARY)), index, index, index),
    st.tuples(st.sampled_from(["binary", "binary_const"]), st.sampled_from(sorted(BINARY)),
              index, index, index),
    st.tuples(st.just("array"), st.sampled_from(sorted(ARRAY)), index, index, index),
    st.tuples(st.sampled_from(["matmul_const", "where"]), st.just(""), index, index, index),
    st.tuples(st.just("catalogue"), st.sampled_from(CATALOGUE_ELEMENTWISE), index, index, index),
    st.tuples(st.just("catalogue_array"), st.sampled_from(CATALOGUE_ARRAY), index, index, index),
)


def _torch_has(torch, program):
    """Whether torch has every catalogue op of the program (the others are checked without it)."""
    return all(
        (s[0] != "catalogue" or torch_function(torch, s[1]) is not None)
        and (s[0] != "catalogue_array" or opcatalog.ARRAY[s[1]].torch is not None)
        for s in program)
programs = st.lists(step, min_size=1, max_size=8)
shape_sets = st.integers(1, 3).flatmap(
    lambda n: hnp.mutually_broadcastable_shapes(num_shapes=n, min_dims=0, max_dims=3,
                                                max_side=3))


def _inputs(shapes, seed):
    rng = np.random.default_rng(seed)
    return [rng.uniform(-1, 1, size=s) for s in shapes.input_shapes]


def _weights(shape, seed):
    return np.random.default_rng(seed + 1).uniform(0.5, 1.5, size=shape)


@SETTINGS
@given(program=programs, shapes=shape_sets, seed=st.integers(0, 999))
def test_random_programs_against_the_oracles(program, shapes, seed):
    smooth, in_reference = _program_flags(program)
    values = _inputs(shapes, seed)
    ours = [tg.Tensor(v) for v in values]
    out = _run(TapegradOps(tg), program, ours)
    w = _weights(np.shape(out.data), seed)
    grads = tg.compute_gradients(out, ours, grad_output=w if np.ndim(out.data) else None)
    for g, v in zip(grads, values):
        assert np.shape(g) == v.shape
    if in_reference:
        reference.clear_history()
        theirs = [reference.Tensor(v) for v in values]
        ref_out = _run(TapegradOps(reference), program, theirs)
        np.testing.assert_allclose(out.data, ref_out.data, rtol=1e-12, atol=1e-12)
        ref_grads = reference.compute_gradients(ref_out, theirs,
                                                grad_output=w if np.ndim(out.data) else None)
        for g, r in zip(grads, ref_grads):
            np.testing.assert_allclose(g, r, rtol=1e-9, atol=1e-12)
    if smooth:
        assert tg.gradcheck(lambda *t: _run(TapegradOps(tg), program, t), ours, atol=1e-4)


@SETTINGS
@given(program=programs, shapes=shape_sets, seed=st.integers(0, 999))
def test_random_programs_against_torch_to_second_order(program, shapes, seed):
    torch = pytest.importorskip("torch")
    assume(_torch_has(torch, program))
    values = _inputs(shapes, seed)
    ours = [tg.Tensor(v) for v in values]
    theirs = [torch.tensor(v, requires_grad=True) for v in values]
    out = _run(TapegradOps(tg), program, ours)
    ref = _run(TorchOps(torch), program, theirs)
    np.testing.assert_allclose(out.data, ref.detach().numpy(), rtol=1e-10, atol=1e-12)
    w = _weights(np.shape(out.data), seed)
    grads = tg.grad((out * w).sum() if np.ndim(out.data) else out * float(w), ours,
                    create_graph=True, allow_unused=True)
    ref_grads = torch.autograd.grad((ref * torch.tensor(w)).sum(), theirs, create_graph=True,
                                    allow_unused=True)
    for g, r, v in zip(grads, ref_grads, values):
        want = np.zeros_like(v) if r is None else r.detach().numpy()
        np.testing.assert_allclose(np.zeros_like(v) if g is None else g.data, want,
                                   rtol=1e-9, atol=1e-12)
    # Second order: the gradient of <u, grad> for a fixed u, against torch's double backward.
    us = [_weights(v.shape, seed + k) for k, v in enumerate(values)]
    dot = sum(((g * u).sum() for g, u in zip(grads, us) if g is not None and g.requires_grad),
              start=tg.tensor(0.0))
    ref_dot = sum(((r * torch.tensor(u)).sum() for r, u in zip(ref_grads, us)
                   if r is not None and r.requires_grad), start=torch.tensor(0.0))
    # Where ours has no history the gradient is constant, and torch's derivative must be 0.
    second = (tg.grad(dot, ours, allow_unused=True) if dot.requires_grad
              else (None,) * len(ours))
    ref_second = (torch.autograd.grad(ref_dot, theirs, allow_unused=True)
                  if ref_dot.requires_grad else (None,) * len(theirs))
    for g, r, v in zip(second, ref_second, values):
        want = np.zeros_like(v) if r is None else r.numpy(force=True)
        np.testing.assert_allclose(np.zeros_like(v) if g is None else g.data, want,
                                   rtol=1e-8, atol=1e-11)


@SETTINGS
@given(program=programs, shapes=shape_sets, seed=st.integers(0, 999), cut=st.integers(0, 8),
       target=index, how=st.sampled_from(["+=", "*=", "data"]))
def test_random_programs_with_an_update_against_the_values_the_graph_saw(
        program, shapes, seed, cut, target, how):
    """Note [Versions]: halfway through, a value of the pool (an input or an
    intermediate) is updated in place under no_grad, or given new .data; the
    second half uses the new value. The gradients must be those of recomputing
    from scratch with the values each op saw: the new value is the old one plus
    a constant (an update under no_grad is not differentiated, as in PyTorch)."""
    torch = pytest.importorskip("torch")
    assume(_torch_has(torch, program))
    values = _inputs(shapes, seed)
    ours = [tg.Tensor(v) for v in values]
    theirs = [torch.tensor(v, requires_grad=True) for v in values]
    pool = _steps(TapegradOps(tg), program[:cut], list(ours))
    ref_pool = _steps(TorchOps(torch), program[:cut], list(theirs))
    changed = pool[target % len(pool)]
    old = np.array(changed.data, dtype=np.float64)
    rng = np.random.default_rng(seed + 7)
    with tg.no_grad():
        if how == "+=":
            changed += float(rng.uniform(-1, 1))
        elif how == "*=":
            changed *= float(rng.uniform(0.5, 1.5))
        else:
            changed.data = rng.uniform(-1, 1, size=old.shape)
    delta = torch.tensor(np.asarray(changed.data, dtype=np.float64) - old)
    # The same object may stand at several places of the pool (a step returning its input).
    ref_pool = [r + delta if p is changed else r for p, r in zip(pool, ref_pool)]
    pool = _steps(TapegradOps(tg), program[cut:], pool)
    ref_pool = _steps(TorchOps(torch), program[cut:], ref_pool)
    out, ref = _total(pool, len(ours)), _total(ref_pool, len(theirs))
    np.testing.assert_allclose(out.data, ref.detach().numpy(), rtol=1e-10, atol=1e-12)
    w = _weights(np.shape(out.data), seed)
    grads = tg.compute_gradients(out, ours, grad_output=w)
    ref_grads = torch.autograd.grad((ref * torch.tensor(w)).sum(), theirs, allow_unused=True)
    for g, r, v in zip(grads, ref_grads, values):
        np.testing.assert_allclose(g, np.zeros_like(v) if r is None else r.numpy(),
                                   rtol=1e-9, atol=1e-12)
    graph_grads = tg.grad(tg.sum(out * w), ours, create_graph=True, allow_unused=True)
    for g, r, v in zip(graph_grads, ref_grads, values):
        np.testing.assert_allclose(np.zeros_like(v) if g is None else g.data,
                                   np.zeros_like(v) if r is None else r.numpy(),
                                   rtol=1e-9, atol=1e-12)


# ---- regression tests: bugs the fuzzer found ----
