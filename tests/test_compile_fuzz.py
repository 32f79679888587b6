"""The compile oracle (issue 14): random programs, compiled and replayed, against eager tapegrad.

tests/test_fuzz.py's generator builds the programs; this file adds steps that
branch on values (``if sum(u) > c``, ``max()`` of two scalars, a boolean mask,
a loop whose trip count depends on a value), so that guards are fuzzed too.
Each program P is compiled with tapegrad.compile, called on the inputs that
generated it (the trace), then on fresh random inputs of the same shapes (the
negated inputs first, which send ``sum(u) > 0`` the other way); every value and
gradient must equal eager tapegrad.value_and_grad on the same inputs, to
rounding, since the replay runs the same formulas. The same holds to second
order for ``sum(grad(P(x), x, create_graph=True) * v)``. On each fresh call,
forward mode too: the compiled jvp's J t equals the eager gradients dotted
with t.

A program whose steps read a value into Python raises TraceError, which the
compiled function is allowed to do: such programs are counted, by the step
that raised, and at least half of the programs must compile.

Same budget as test_fuzz.py: TAPEGRAD_FUZZ_EXAMPLES examples per test with a
fixed seed (TAPEGRAD_FUZZ_RANDOM=1 draws random ones).
"""

from __future__ import annotations

import collections
import warnings
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tapegrad as tg

import test_fuzz as fuzz

# Same formulas, same order of operations: only rounding may differ.
RTOL = 1e-12
ATOL = 1e-13
FRESH_CALLS = 3


# ---- steps that branch on values (guards) ----

def _threshold(k):
    return (k % 5 - 2) * 0.25


def _branch_on_sum(o, name, u, v, k):
    # if sum(u) > c: a unary step of u, else u * v (the shapes may differ)
    if o.sum(u, None, False) > _threshold(k):
        return fuzz.UNARY[name][0](o, u)
    return u * v


def _max_of_scalars(o, name, u, v, k):
    # Python's max() of two 0-d Tensors compares them: a guard
    return u * max(o.sum(u, None, False), o.sum(v, None, False) + _threshold(k))


def _boolean_mask(o, name, u, v, k):
    # the elements above c: the mask is guarded as a whole
    return o.sum(o.tanh(u[u > _threshold(k)]) * 2.0, None, False) if u.ndim else u * 2.0


def _loop_until(o, name, u, v, k):
    # a trip count set by a value: each test of the condition is a guard
    grown = u
    for _ in range(3):
        if o.sum(grown * grown, None, False) >= 1.0 + k % 4:
            break
        grown = grown * 1.5 + 0.25
    return grown


BRANCHES: dict[str, Callable] = {
    "branch_on_sum": _branch_on_sum,
    "max_of_scalars": _max_of_scalars,
    "boolean_mask": _boolean_mask,
    "loop_until": _loop_until,
}

step = st.one_of(
    fuzz.step,
    st.tuples(st.sampled_from(sorted(BRANCHES)), st.sampled_from(sorted(fuzz.UNARY)),
              fuzz.index, fuzz.index, fuzz.index),
)
programs = st.lists(step, min_size=1, max_size=8)

# Steps whose create_graph backward reads a value (a sign, a mask: recording.hpp's
# sign_of and compare record guards while compile traces); the oracle found
# replays that reused the traced sign or mask before those guards existed.
STEPS_WITH_KINKS = [
    ("unary", "abs"), ("unary", "relu"), ("binary", "maximum"), ("binary", "minimum"),
    ("binary_const", "maximum"), ("binary_const", "minimum"), ("array", "max_keep"),
    ("catalogue", "abs"), ("catalogue", "fabs"), ("catalogue", "relu"),
    ("catalogue", "maximum"), ("catalogue", "minimum"), ("catalogue", "fmax"),
    ("catalogue", "fmin"), ("catalogue", "fmod"), ("catalogue", "remainder"),
    ("catalogue", "copysign"), ("catalogue", "i1"), ("catalogue", "rgamma"),
    ("catalogue", "sinc"), ("catalogue_array", "clip"),
]

second_order_programs = st.lists(step, min_size=1, max_size=8)


def _describe(program_step):
    kind, name = program_step[:2]
    return f"{kind}:{name}" if name else kind


class Program:
    """P(*inputs): a program's steps on the pool, its total weighted to a scalar.

    ``running`` names the step being run, so that a TraceError can be put down to it.
    """

    def __init__(self, program: list, seed: int) -> None:
        self.program = program
        self.seed = seed
        self.running = "total"
        self.__name__ = "program"

    def __call__(self, *inputs):
        ops = fuzz.TapegradOps(tg)
        pool = list(inputs)
        for program_step in self.program:
            self.running = _describe(program_step)
            kind, name, i, j, k = program_step
            if kind in BRANCHES:
                u, v = pool[i % len(pool)], pool[j % len(pool)]
                pool.append(BRANCHES[kind](ops, name, u, v, k))
            else:
                fuzz._steps(ops, [program_step], pool)
        self.running = "total"
        out = fuzz._total(pool, len(inputs))
        return tg.sum(out * fuzz._weights(tuple(out.shape), self.seed))


class SecondOrder:
    """sum_i <grad_i P(*inputs), v_i> with create_graph: its gradient is P's Hessian times v."""

    def __init__(self, program: Program, directions: list) -> None:
        self.program = program
        self.directions = directions
        self.__name__ = "second_order"

    def __call__(self, *inputs):
        grads = tg.grad(self.program(*inputs), inputs, create_graph=True, allow_unused=True)
        total = tg.tensor(0.0)
        for g, v in zip(grads, self.directions):
            if g is not None:
                total = total + tg.sum(g * v)
        return total


def assert_close(got, want, what):
    """A compiled value or gradient equals the eager one: same type, shape and dtype."""
    if isinstance(want, tuple):
        assert isinstance(got, tuple) and len(got) == len(want), what
        for n, (g, w) in enumerate(zip(got, want)):
            assert_close(g, w, f"{what}[{n}]")
    elif isinstance(want, np.ndarray):
        assert isinstance(got, np.ndarray), (what, type(got))
        assert (got.shape, got.dtype) == (want.shape, want.dtype), what
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL, err_msg=what)
    else:
        assert isinstance(got, float), (what, type(got))
        assert got == pytest.approx(want, rel=RTOL, abs=ATOL), what


def _fresh_inputs(inputs, seed):
    """The negated inputs, then random ones of the same shapes."""
    rng = np.random.default_rng(seed + 12345)
    fresh = [[np.asarray(-x) for x in inputs]]  # -x of a 0-d array is a numpy scalar
    for _ in range(FRESH_CALLS - 1):
        fresh.append([rng.uniform(-1, 1, size=np.shape(x)) for x in inputs])
    return fresh


def check_compiled_against_eager(f, inputs, seed, stats, program):
    """Trace f on inputs, replay it on fresh ones; each call's results equal eager's.

    Returns False when tracing raised TraceError, counted in stats by the step of
    program (which f runs) that was running.
    """
    argnums = tuple(range(len(inputs)))
    compiled = tg.compile(f, argnums=argnums)
    eager_value_and_grad = tg.value_and_grad(f, argnums)

    def eager(*args):
        # a second derivative that is zero (a linear program) warns, eagerly and compiled
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "value_and_grad: the value of .* does not depend")
            return eager_value_and_grad(*args)
    stats["programs"] += 1
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "value_and_grad: the value of .* does not depend")
        try:
            traced = compiled.value_and_grad(*inputs)
        except tg.TraceError:
            stats["raised by " + program.running] += 1
            return False
        stats["compiled"] += 1
        assert_close(traced, eager(*inputs), "the call that traced")
        for n, fresh in enumerate(_fresh_inputs(inputs, seed)):
            traces = compiled.trace_count
            want = eager(*fresh)
            assert_close(compiled.value_and_grad(*fresh), want, f"fresh call {n}")
            stats["replays"] += 1
            stats["replays that took another path"] += compiled.trace_count > traces
            check_forward_mode(compiled, fresh, want, seed + n)
        assert_close(compiled(*inputs), eager(*inputs)[0], "a call for the value alone")
    return True


def check_forward_mode(compiled, inputs, eager_value_and_grads, seed):
    """The tangent sweep (Note [Tangent sweep]) against eager reverse mode: f is
    scalar, so J t is the sum over inputs of <gradient, t>. Other summation
    orders than the gradients': equal to rounding, not bit for bit."""
    rng = np.random.default_rng(seed + 777)
    tangents = tuple(rng.uniform(-1, 1, size=np.shape(x)) for x in inputs)
    value, jt = compiled.jvp(tuple(inputs), tangents)
    want_value, grads = eager_value_and_grads
    want = sum(float(np.vdot(np.asarray(g), t)) for g, t in zip(grads, tangents))
    assert value == pytest.approx(want_value, rel=RTOL, abs=ATOL), "jvp's value"
    assert isinstance(jt, float)
    scale = sum(float(np.vdot(np.abs(np.asarray(g)), np.abs(t))) for g, t in zip(grads, tangents))
    assert abs(jt - want) <= 1e-10 * scale + ATOL, ("jvp", jt, want)


def run_oracle(program_strategy, make_function, stats):
    """Runs the oracle over the fuzz budget; stats counts programs, compiled, raised by step."""

    @fuzz.SETTINGS
    @given(program=program_strategy, shapes=fuzz.shape_sets, seed=st.integers(0, 999))
    def one_program(program, shapes, seed):
        inputs = fuzz._inputs(shapes, seed)
        p = Program(program, seed)
        check_compiled_against_eager(make_function(p, inputs), inputs, seed, stats, p)
        stats["branching programs"] += any(s[0] in BRANCHES for s in program)

    one_program()
    print(dict(stats))  # shown with -s: which steps raise TraceError
    assert stats["compiled"] >= stats["programs"] / 2, dict(stats)
    assert stats["replays that took another path"] > 0, dict(stats)


def test_random_programs_compiled_and_replayed_on_fresh_inputs_match_eager():
    run_oracle(programs, lambda program, inputs: program, collections.Counter())


def _second_order(program, inputs):
    directions = [fuzz._weights(np.shape(x), program.seed + n) for n, x in enumerate(inputs)]
    return SecondOrder(program, directions)


def test_second_order_of_random_programs_compiled_and_replayed_matches_eager():
    run_oracle(second_order_programs, _second_order, collections.Counter())


# ---- mismatches the oracle found, minimized: regression tests ----

def _value_and_grad_both_ways(f, *args):
    compiled = tg.compile(f).value_and_grad(*args)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "value_and_grad: the value of .* does not depend")
        return compiled, tg.value_and_grad(f)(*args)


def test_a_numpy_float64_scalar_argument_gets_the_eager_gradient_type():
    compiled, eager = _value_and_grad_both_ways(tg.sin, np.float64(0.5))
    assert_close(compiled, eager, "sin at np.float64(0.5)")


def test_a_numpy_float32_scalar_argument_is_computed_in_float32():
    compiled, eager = _value_and_grad_both_ways(tg.sin, np.float32(0.5))
    assert compiled[0] == eager[0] == float(np.sin(np.float32(0.5)))


def _derivative_times_x(op):
    def f(x):
        (d,) = tg.grad(tg.sum(op(x)), x, create_graph=True)
        return tg.sum(d * x)
    return f


@pytest.mark.parametrize("op", [
    tg.abs, tg.relu, lambda x: tg.maximum(x, 0.5 * x * x), lambda x: tg.minimum(x, 0.5 * x * x),
    lambda x: tg.clip(x, -1.0, 1.0),
], ids=["abs", "relu", "maximum", "minimum", "clip"])
def test_a_create_graph_gradient_through_a_kink_replays_on_the_other_side(op):
    f = _derivative_times_x(op)
    compiled = tg.compile(f)
    compiled.value_and_grad(np.array([2.0, 0.3]))  # traced here
    fresh = np.array([-2.0, 1.7])  # each element on the other side of its kink
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "value_and_grad: the value of .* does not depend")
        want = tg.value_and_grad(f)(fresh)
    assert_close(compiled.value_and_grad(fresh), want, "replay across the kink")


def test_a_value_that_does_not_depend_on_the_argument_warns_as_eager_does():
    def f(x):
        return tg.tensor(1.0) * 2.0

    with pytest.warns(UserWarning, match="does not depend on"):
        eager = tg.value_and_grad(f)(1.0)
    with pytest.warns(UserWarning, match="does not depend on"):
        assert tg.compile(f).value_and_grad(1.0) == eager
    # x * 0.0 is a dependence (recorded, zero): neither warns
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert tg.compile(lambda x: x * 0.0 + 1.0).value_and_grad(1.0) == (1.0, 0.0)


@pytest.mark.parametrize("kind, name", STEPS_WITH_KINKS)
def test_steps_with_a_kink_replay_to_second_order(kind, name):
    for shapes in [()], [(3,)], [(2, 3), (3,)]:
        for seed in range(3):
            rng = np.random.default_rng(seed)
            inputs = [rng.uniform(-1, 1, size=shape) for shape in shapes]
            program = Program([(kind, name, 0, 1, seed)], seed)
            check_compiled_against_eager(_second_order(program, inputs), inputs, seed,
                                         collections.Counter(), program)
