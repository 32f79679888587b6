"""Attacks on forward mode over compiled tapes: cf.jvp and the forward cf.jacobian.

Each test compares the compiled tangent sweep (Note [Tangent sweep] in
csrc/tangents.hpp) with reverse mode computed another way: eager tapegrad's
Jacobian (tg.jacobian), closed forms, central finite differences, the compiled
hvp, and torch.autograd.functional.jvp where torch is installed. Six began as
strict xfails, bugs with a minimal repro each, now fixed (a tall jacobian with
hooks, an empty input or a list argument; rows only a guard reads; a
Function's gradient of the wrong shape; a complex tangent); the others are
attacks that held.
"""

import gc
import sys
import threading
import tracemalloc
import warnings
from typing import ClassVar

import numpy as np
import pytest

import tapegrad as tg
from tapegrad.scipy import linalg as tsl

from functions import Cube, Double, Square, WrongCount

F64 = dict(rtol=1e-10, atol=1e-12)


def _eager_jvp(f, args, tangents):
    """J t from eager tapegrad's reverse-mode Jacobian: the sum over inputs of J_k t_k."""
    jac = tg.jacobian(f, tuple(tg.Tensor(np.asarray(a, dtype=np.float64)) for a in args))
    total = 0.0
    for block, t in zip(jac, tangents):
        t = np.asarray(t, dtype=np.float64)
        total = total + np.tensordot(np.asarray(block.data, dtype=np.float64), t, axes=t.ndim)
    return total


def _jvp_twice(f, args, tangents):
    """cf.jvp on the call that traces and on one that replays: both results."""
    compiled = tg.compile(f, argnums=tuple(range(len(args))))
    return [compiled.jvp(tuple(args), tuple(tangents))[1] for _ in range(2)]


# ---- bugs found here (strict xfails until fixed): each a minimal repro ----

def test_a_tall_jacobian_agrees_with_eager_when_a_hook_scales_the_gradient():
    def f(x):
        y = tg.sin(x)
        y.register_hook(lambda g: g * 10.0)
        return tg.concatenate([y, y, y]) * 2.0

    x = np.array([0.3, 0.5])
    np.testing.assert_allclose(tg.compile(f).jacobian(x), tg.jacobian(f, tg.Tensor(x)).data, **F64)


def test_a_tall_jacobian_with_an_empty_input_gives_an_empty_block():
    def f(x, y):
        return tg.sum(x) + y * np.ones(3)

    jx, jy = tg.compile(f, argnums=(0, 1)).jacobian((np.zeros(0), 2.0))
    assert jx.shape == (3, 0)
    np.testing.assert_array_equal(jy, np.ones(3))


@pytest.mark.parametrize("fallback", [None, "eager"])
def test_the_jacobian_of_an_empty_output_is_an_empty_block_of_each_inputs_dtype(fallback):
    # No output element: no sweep at all, and blocks of shape (0, *input.shape)
    # (torch.autograd.functional.jacobian raises here; eager's empty answer is ours).
    def f(x, y):
        if fallback:
            float(tg.sum(x))  # an escape: the driver runs eagerly
        return x[:0] * tg.sum(y)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", tg.TraceWarning)
        jx, jy = tg.compile(f, fallback=fallback).jacobian((np.ones(3), np.ones((1, 2), np.float32)))
    assert (jx.shape, jx.dtype) == ((0, 3), np.float64)
    assert (jy.shape, jy.dtype) == ((0, 1, 2), np.float32)


def test_a_tall_jacobian_of_a_list_argument_works_as_the_reverse_one():
    def f(ps):
        return tg.concatenate([ps[0], ps[1], ps[0] * ps[1]])

    ps = [np.array([1.0, 2.0]), np.array([3.0, 4.0])]
    jac = tg.compile(f).jacobian(ps)  # 6 outputs, 4 inputs: forward sweeps
    blocks = tg.jacobian(lambda a, b: f([a, b]), tuple(tg.Tensor(p) for p in ps))
    want = np.stack([b.data for b in blocks], axis=1)
    np.testing.assert_allclose(jac, want, **F64)


class NoGradient(Square):
    """A value f only branches on: its backward is never needed, so it raises."""

    @staticmethod
    def backward(ctx, g):
        raise NotImplementedError("NoGradient has no gradient")


def _branches_on_a_function(x):
    if tg.sum(NoGradient.apply(x)) > 1.0:
        return x * 2.0
    return x * 3.0


def test_gradients_never_call_the_backward_of_a_row_only_a_guard_reads():
    x = np.array([1.0, 2.0])
    np.testing.assert_array_equal(tg.jacobian(_branches_on_a_function, tg.Tensor(x)).data,
                                  2.0 * np.eye(2))
    compiled = tg.compile(lambda x: tg.sum(_branches_on_a_function(x)))
    assert compiled.value_and_grad(x)[1].tolist() == [2.0, 2.0]


def test_jvp_skips_rows_that_only_a_guard_reads():
    x = np.array([1.0, 2.0])
    _, jt = tg.compile(_branches_on_a_function).jvp(x, np.array([1.0, -1.0]))
    np.testing.assert_array_equal(jt, [2.0, -2.0])


class ScalarGradient(Double):
    """A wrong backward: one number for an input of shape (3,)."""

    @staticmethod
    def backward(ctx, g):
        return np.sum(g) * 2.0


def test_gradients_refuse_a_function_gradient_of_the_wrong_shape():
    with pytest.raises(ValueError, match=r"ScalarGradient.*shape \(\) for input 0, whose shape is \(3,\)"):
        tg.compile(lambda x: tg.sum(ScalarGradient.apply(x))).value_and_grad(np.ones(3))
    with pytest.raises(ValueError, match=r"shape \(\) for input 0, whose shape is \(3,\)"):
        tg.jacobian(ScalarGradient.apply, tg.Tensor(np.ones(3)))


def test_jvp_refuses_a_function_gradient_of_the_wrong_shape():
    with pytest.raises(ValueError, match=r"ScalarGradient.*shape \(\) for input 0"):
        tg.compile(ScalarGradient.apply).jvp(np.ones(3), np.array([1.0, 0.0, 0.0]))


def test_jvp_refuses_a_complex_tangent():
    with pytest.raises((TypeError, ValueError), match="complex"):
        tg.compile(lambda x: x * 2.0).jvp(np.ones(3), np.ones(3) * 1j)


# ---- inputs and tangents (held) ----

@pytest.mark.parametrize("kind", ["list", "int array", "F-ordered", "byteswapped", "read-only",
                                  "strided", "Tensor without grad"])
def test_tangents_of_any_array_like_layout_give_the_same_jvp(kind):
    x = np.arange(6.0).reshape(2, 3) - 2.0
    t = np.array([[1.0, -2.0, 0.5], [3.0, 0.0, -1.0]])
    given = {
        "list": t.tolist(),
        "int array": (t * 2).astype(np.int64),
        "F-ordered": np.asfortranarray(t),
        "byteswapped": t.astype(">f8"),
        "read-only": np.array(t),
        "strided": np.repeat(t, 2, axis=1)[:, ::2],
        "Tensor without grad": tg.Tensor(t, requires_grad=False),
    }[kind]
    if kind == "read-only":
        given.flags.writeable = False
    want_t = t * 2 if kind == "int array" else t
    compiled = tg.compile(lambda x: tg.sin(x) * x)
    for _ in range(2):
        _, jt = compiled.jvp(x, given)
        np.testing.assert_allclose(jt, (np.cos(x) * x + np.sin(x)) * want_t, **F64)


@pytest.mark.parametrize("x", [3.0, 3, np.float64(3.0), np.float32(3.0), np.array(3.0)],
                         ids=["float", "int", "float64", "float32", "0-d"])
def test_scalar_inputs_of_every_kind_take_a_number_tangent(x):
    value, jt = tg.compile(lambda x: x * x * x).jvp(x, 0.5)
    assert value == pytest.approx(27.0) and jt == pytest.approx(13.5)
    assert isinstance(jt, float)


def test_mixed_float_dtypes_cast_the_tangent_to_the_input():
    compiled = tg.compile(lambda x: x * x)
    _, jt32 = compiled.jvp(np.full(3, 2.0, np.float32), np.full(3, 0.1))
    assert jt32.dtype == np.float32
    np.testing.assert_allclose(jt32, 0.4, rtol=1e-6)
    _, jt64 = compiled.jvp(np.full(3, 2.0), np.full(3, 0.1, np.float32))
    assert jt64.dtype == np.float64
    np.testing.assert_allclose(jt64, 4.0 * np.float32(0.1), rtol=1e-15)


def test_nonfinite_and_zero_tangents_propagate_elementwise():
    _, jt = tg.compile(lambda x: tg.exp(x) * 2.0).jvp(np.zeros(4), np.array([np.nan, np.inf, 0.0, 1.0]))
    np.testing.assert_array_equal(jt, [np.nan, np.inf, 0.0, 2.0])


def test_bad_tangents_raise_and_leave_the_function_usable():
    compiled = tg.compile(lambda x, y: x * y, argnums=(0, 1))
    args = (np.ones(3), np.full(3, 2.0))
    for bad in [(np.ones(3),), (np.ones(3), np.ones(2)), (np.ones(3), 1.0), (np.ones(3), None)]:
        with pytest.raises(ValueError, match="jvp"):
            compiled.jvp(args, bad)
    _, jt = compiled.jvp(args, (np.ones(3), np.full(3, 10.0)))
    np.testing.assert_array_equal(jt, [12.0, 12.0, 12.0])


def test_refcounts_of_inputs_and_tangents_are_unchanged():
    x, t = np.linspace(-1, 1, 5), np.linspace(2, 3, 5)
    compiled = tg.compile(lambda x: tg.concatenate([tg.tanh(x), Cube.apply(x)]))
    compiled.jvp(x, t)
    compiled.jacobian(x)
    before = sys.getrefcount(x), sys.getrefcount(t)
    for _ in range(20):
        compiled.jvp(x, t)
        compiled.jacobian(x)
    assert (sys.getrefcount(x), sys.getrefcount(t)) == before


def test_memory_is_flat_over_thousands_of_jvp_calls():
    rng = np.random.default_rng(3)
    w = rng.normal(size=(6, 6))
    spd = np.array([[3.0, 1.0], [1.0, 2.0]])

    def f(x, s):
        y = tg.tanh(x @ w) * s
        m = tg.reshape(y[:4], (2, 2))
        return tg.concatenate([tg.exp(y) * s, np.linalg.eigh(m + m.T + spd)[0],
                               tg.cumprod(y[:3], axis=0)])

    compiled = tg.compile(f, argnums=(0, 1))
    x, t = rng.normal(size=6), rng.normal(size=6)
    gc.collect()
    tracemalloc.start()  # from the first call: a cache's churn is then no growth
    try:
        for _ in range(1500):  # fills bounded caches (tens of KB)
            compiled.jvp((x, 0.7), (t, 0.3))
        gc.collect()
        start = tracemalloc.get_traced_memory()[0]
        for _ in range(1500):
            compiled.jvp((x, 0.7), (t, 0.3))
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - start
    finally:
        tracemalloc.stop()
    assert grown < 1500 * 4  # bytes: a leak of one small object per call would show


# ---- graph shapes (held): J t against eager's reverse Jacobian ----

_RNG = np.random.default_rng(21)
_X3, _T3 = _RNG.normal(size=3), _RNG.normal(size=3)
_X34, _T34 = _RNG.normal(size=(3, 4)), _RNG.normal(size=(3, 4))
_COND = np.array([True, False, True])
GRAPHS = {
    "input used twice": (lambda x: x * x * tg.sin(x), [_X3], [_T3]),
    "scalars used twice": (lambda a, b: a * b * a - b / a, [1.5, -0.7], [0.3, 2.0]),
    "unused input": (lambda x, y: x * 2.0, [_X3, _X3], [_T3, _T3]),
    "output is an input": (lambda x, y: y, [_X3, _X3 + 1], [_T3, 2 * _T3]),
    "(3,1) and (4,) broadcast": (lambda a, b: a * b + tg.abs(a) ** b,
                                 [_RNG.normal(size=(3, 1)), _RNG.normal(size=4)],
                                 [_RNG.normal(size=(3, 1)), _RNG.normal(size=4)]),
    "scalar rows feed array rows": (lambda s, y: tg.sin(s) * tg.exp(y) + s, [0.4, _X3], [1.2, _T3]),
    "a reduction feeds its input's row": (lambda y: tg.sum(y * y) * y, [_X3], [_T3]),
    "repeated advanced indices": (lambda x: x[np.array([0, 0, 2, 1, 0])] * x[np.array([1, 1, 1, 0, 2])], [_X3], [_T3]),
    "2-d advanced indices": (lambda x: x[np.array([0, 2, 2]), np.array([1, 1, 3])] ** 2, [_X34], [_T34]),
    "boolean mask from values": (lambda x: x[x > 0] ** 2, [_X3], [_T3]),
    "where, constant condition": (lambda x, y: np.where(_COND, x, y * y), [_X3, _X3 + 1], [_T3, 2 * _T3]),
    "where, a number branch": (lambda x: np.where(_COND, x * x, 5.0), [_X3], [_T3]),
    "concatenate with constants": (lambda x: np.concatenate([x, np.ones(2), x * x]), [_X3], [_T3]),
    "stack with constants": (lambda x: np.stack([x, np.ones(3), tg.exp(x)]), [_X3], [_T3]),
    "einsum trace": (lambda a: np.einsum("ii->", a) * a, [_X34[:, :3]], [_T34[:, :3]]),
    "einsum diagonal": (lambda a: np.einsum("ii->i", a) * 2.0, [_X34[:, :3]], [_T34[:, :3]]),
    "einsum of one operand twice": (lambda a: np.einsum("ij,ij->i", a, a), [_X34], [_T34]),
    "matmul 1-D @ 1-D": (lambda a, b: a @ b, [_X3, _X3 + 1], [_T3, 2 * _T3]),
    "matmul 1-D @ 2-D": (lambda a, b: a @ b, [_X3, _X34], [_T3, _T34]),
    "matmul batch @ 1-D": (lambda a, b: a @ b, [_RNG.normal(size=(2, 3, 4)), _RNG.normal(size=4)],
                           [_RNG.normal(size=(2, 3, 4)), _RNG.normal(size=4)]),
    "matmul x @ x": (lambda a: a @ a, [_X34[:, :3]], [_T34[:, :3]]),
    "clip with Tensor bounds": (lambda x, lo, hi: np.clip(x, lo, hi),
                                [np.array([-1.0, 0.1, 2.0]), np.full(3, -0.2), np.full(3, 0.3)],
                                [_T3, 2 * _T3, 3 * _T3]),
    "max with ties": (lambda x: np.max(x, axis=0) * 3.0, [np.array([[1.0, 2.0], [1.0, 0.0]])],
                      [np.array([[0.3, 0.5], [-0.9, 4.0]])]),
    "min with ties, keepdims": (lambda x: np.min(x, axis=1, keepdims=True) * x,
                                [np.array([[1.0, 1.0], [3.0, 0.0]])], [np.array([[0.3, 0.5], [-0.9, 4.0]])]),
    "maximum with ties": (lambda x, y: np.maximum(x, y), [np.array([1.0, 2.0]), np.array([1.0, 3.0])],
                          [np.array([0.3, 0.5]), np.array([-0.9, 4.0])]),
    "std at zero spread": (lambda x: np.std(x, axis=1) + 1.0, [np.ones((2, 3))], [_T34[:2, :3]]),
    "prod with zeros": (lambda x: np.prod(x, axis=0), [np.array([[0.0, 2.0], [0.0, 3.0], [4.0, 0.0]])],
                        [_T34[:, :2]]),
    "cumprod with zeros": (lambda x: np.cumprod(x), [np.array([2.0, 0.0, 3.0, 0.0])], [_T34[0]]),
    "astype round trip": (lambda x: (x.astype(np.float32) * 2).astype(np.float64) ** 2, [np.array([0.5, 0.25, 2.0])], [_T3]),
    "Function with two outputs": (lambda x: Cube.apply(x) * tg.sum(Cube.apply(x)), [_X3], [_T3]),
}


@pytest.mark.parametrize("name", GRAPHS)
def test_jvp_on_each_graph_shape_equals_the_eager_jacobian_times_the_tangents(name):
    f, args, tangents = GRAPHS[name]
    want = _eager_jvp(f, args, tangents)
    for jt in _jvp_twice(f, args, tangents):
        assert np.shape(jt) == np.shape(want)
        np.testing.assert_allclose(jt, want, rtol=1e-6 if "astype" in name else 1e-10, atol=1e-12)


def test_a_constant_output_has_a_zero_tangent():
    value, jt = tg.compile(lambda x: 3.0).jvp(np.ones(2), np.ones(2))
    assert (value, jt) == (3.0, 0.0)


_A = _RNG.normal(size=(3, 3))
_TA = _RNG.normal(size=(3, 3))
_SPD = _A @ _A.T + 3 * np.eye(3)
_TS = _TA + _TA.T
_B, _TB = _RNG.normal(size=(3, 2)), _RNG.normal(size=(3, 2))
LINALG = {
    "inv": (lambda a: np.linalg.inv(a), [_A], [_TA]),
    "solve": (lambda a, b: np.linalg.solve(a, b), [_A, _B], [_TA, _TB]),
    "det": (lambda a: np.linalg.det(a) * a, [_A], [_TA]),
    "slogdet, both parts": (lambda a: np.linalg.slogdet(a)[0] + np.linalg.slogdet(a)[1] * a, [_A], [_TA]),
    "cholesky": (lambda a: np.linalg.cholesky(a), [_SPD], [_TS]),
    "solve_triangular": (lambda a, b: tsl.solve_triangular(a, b, lower=True), [np.tril(_SPD), _B], [_TA, _TB]),
    "eigh, both parts": (lambda a: np.linalg.eigh(a)[0] @ (np.linalg.eigh(a)[1] ** 2), [_SPD], [_TS]),
    "svd, every part": (lambda a: np.linalg.svd(a, full_matrices=False)[0] ** 2 @ np.diag(np.linalg.svd(a)[1])
                        @ np.linalg.svd(a, full_matrices=False)[2], [_B], [_TB]),
    "qr, both parts": (lambda a: np.linalg.qr(a)[0] @ (np.linalg.qr(a)[1] ** 2), [_B], [_TB]),
    "pinv": (lambda a: np.linalg.pinv(a), [_B], [_TB]),
    "expm": (lambda a: tsl.expm(a * 0.3), [_A], [_TA]),
    "sqrtm": (lambda a: tsl.sqrtm(a), [_SPD], [_TS]),
    "solve_sylvester": (lambda a, b, q: tsl.solve_sylvester(a, b, q), [_SPD, _SPD + 1, _A], [_TS, _TS, _TA]),
    "batched inv and det": (lambda a: np.linalg.inv(a) * np.linalg.det(a)[:, None, None],
                            [_RNG.normal(size=(2, 3, 3))], [_RNG.normal(size=(2, 3, 3))]),
}


@pytest.mark.parametrize("name", LINALG)
def test_jvp_through_each_linalg_op_equals_the_eager_jacobian(name):
    pytest.importorskip("scipy")
    f, args, tangents = LINALG[name]
    want = _eager_jvp(f, args, tangents)
    for jt in _jvp_twice(f, args, tangents):
        np.testing.assert_allclose(jt, want, rtol=1e-7, atol=1e-10)


def test_jvp_through_linalg_agrees_with_central_differences():
    pytest.importorskip("scipy")

    def f(a):
        w, v = np.linalg.eigh(a)
        return tg.concatenate([w, tg.reshape(v ** 2, (-1,)), tg.reshape(np.linalg.cholesky(a), (-1,)),
                               tg.reshape(tsl.expm(a * 0.2), (-1,))])

    _, jt = tg.compile(f).jvp(_SPD, _TS)
    h = 1e-6
    fd = (f(tg.Tensor(_SPD + h * _TS)).data - f(tg.Tensor(_SPD - h * _TS)).data) / (2 * h)
    np.testing.assert_allclose(jt, fd, rtol=1e-6, atol=1e-7)


# ---- Functions (held) ----

class TensorGradient(tg.Function):
    @staticmethod
    def forward(ctx, x, unused):
        ctx.save_for_backward(x)
        return np.sin(x) + 0.0 * unused

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * tg.cos(x), None  # a Tensor, and None for an input with no gradient


def test_a_function_returning_tensors_and_none_gradients_has_the_right_tangent():
    x, y = np.array([0.2, -1.0]), np.array([3.0, 4.0])
    tx, ty = np.array([1.0, 2.0]), np.array([5.0, 6.0])
    for jt in _jvp_twice(lambda x, y: TensorGradient.apply(x, y) * x, (x, y), (tx, ty)):
        np.testing.assert_allclose(jt, (np.cos(x) * x + np.sin(x)) * tx, **F64)


class Raises(Double):
    @staticmethod
    def backward(ctx, g):
        raise RuntimeError("boom in backward")


@pytest.mark.parametrize("function, error, match", [
    (Raises, RuntimeError, "boom in backward"),
    (WrongCount, ValueError, "WrongCount.backward returned 2 gradients for the 1 arguments"),
])
def test_a_function_backward_that_fails_raises_through_jvp_and_the_trace_stays_usable(function, error, match):
    compiled = tg.compile(lambda x: function.apply(x) * x)
    x = np.array([1.0, 2.0])
    for _ in range(2):
        with pytest.raises(error, match=match):
            compiled.jvp(x, np.ones(2))
        np.testing.assert_array_equal(compiled(x), 2.0 * x * x)
    assert compiled.trace_count == 1


class Reenters(Square):
    """x**2, whose backward calls the compiled function's own jvp (reentrancy)."""

    compiled = None
    inner: ClassVar[list] = []

    @staticmethod
    def backward(ctx, g):
        compiled, Reenters.compiled = Reenters.compiled, None  # one level: the inner call's
        if compiled is not None:                                # own backward does not reenter
            try:
                Reenters.inner.append(compiled.jvp(np.array([0.5, 0.25]), np.array([1.0, 0.0]))[1])
            finally:
                Reenters.compiled = compiled
        return Square.backward(ctx, g)


def test_a_function_backward_may_call_the_same_compiled_jvp():
    def f(x):
        return tg.sin(Reenters.apply(x)) * x

    compiled = tg.compile(f)
    x, t = np.array([0.3, -0.4]), np.array([0.7, 0.2])
    compiled(x)
    Reenters.compiled, Reenters.inner = compiled, []
    try:
        _, jt = compiled.jvp(x, t)
    finally:
        Reenters.compiled = None
    np.testing.assert_allclose(jt, (np.cos(x * x) * 2 * x * x + np.sin(x * x)) * t, **F64)
    assert len(Reenters.inner) == 2  # one backward per output element
    for inner in Reenters.inner:
        np.testing.assert_allclose(inner, [np.cos(0.25) * 0.5 + np.sin(0.25), 0.0], **F64)


# ---- create_graph inside f: jvp of a gradient is a Hessian-vector product (held) ----

def test_jvp_of_a_gradient_equals_hvp_eager_and_finite_differences():
    rng = np.random.default_rng(5)
    w = rng.normal(size=(3, 3))

    def loss(x):
        return tg.sum(tg.tanh(x @ w) ** 2) + tg.sum(x ** 3) / 3 + tg.logsumexp(x * x, axis=0)

    def gradient(x):
        (g,) = tg.grad(loss(x), (x,), create_graph=True)
        return g

    x, t = rng.normal(size=3), rng.normal(size=3)
    _, jt = tg.compile(gradient).jvp(x, t)
    np.testing.assert_allclose(jt, tg.compile(loss).hvp(x, t)[1], **F64)
    np.testing.assert_allclose(jt, _eager_jvp(gradient, (x,), (t,)), **F64)
    h = 1e-6
    fd = (gradient(tg.Tensor(x + h * t)).data - gradient(tg.Tensor(x - h * t)).data) / (2 * h)
    np.testing.assert_allclose(jt, fd, rtol=1e-6, atol=1e-8)


def test_a_tall_jacobian_of_a_gradient_runs_forward_and_equals_eager():
    def tall(x):
        (g,) = tg.grad(tg.sum(tg.sin(x) * x), (x,), create_graph=True)
        return tg.concatenate([g, g * 2.0, g ** 2])

    x = np.array([0.3, -1.2, 2.0])
    np.testing.assert_allclose(tg.compile(tall).jacobian(x), tg.jacobian(tall, tg.Tensor(x)).data, **F64)


# ---- guards (held) ----

def test_a_loop_with_a_value_dependent_trip_count_keeps_each_path_right():
    def newton_sqrt(a):
        x = a * 1.0
        for _ in range(60):
            if abs(x * x - a) <= 1e-12 * a:
                break
            x = 0.5 * (x + a / x)
        return x

    compiled = tg.compile(newton_sqrt)
    for a in [2.0, 9.0, 2.0, 100.0]:
        value, jt = compiled.jvp(a, 1.0)
        assert value == pytest.approx(np.sqrt(a), rel=1e-12)
        assert jt == pytest.approx(_eager_jvp(newton_sqrt, (a,), (1.0,)), rel=1e-12)
        assert jt == pytest.approx(0.5 / np.sqrt(a), rel=1e-6)
    assert compiled.trace_count == 3


# ---- the trace after a jvp (held) ----

@pytest.mark.parametrize("name", ["fused chain", "softmax and matmul", "reductions reading outputs"])
def test_fused_replays_and_gradients_stay_right_around_jvp_calls(name):
    rng = np.random.default_rng(13)
    w = rng.normal(size=(6, 6))
    f = {
        "fused chain": lambda x: tg.sum(tg.tanh(x * 2.0 + 1.0) * tg.exp(-x * x) + tg.log(1.0 + x * x)),
        "softmax and matmul": lambda x: tg.sum(tg.log_softmax(tg.tanh(x @ w + 1.0) * 2.0 - x, axis=0) ** 2),
        "reductions reading outputs": lambda x: tg.std(tg.tanh(x) * x) + tg.max(x * x + 1.0) * tg.sum(tg.sqrt(1.0 + x * x)),
    }[name]
    compiled = tg.compile(f)
    eager = tg.value_and_grad(f)
    for _ in range(3):
        x1, x2, x3 = rng.normal(size=(3, 6))
        t = rng.normal(size=6)
        _, jt = compiled.jvp(x2, t)
        for x in (x1, x3):
            value, grad = compiled.value_and_grad(x)
            want_value, want_grad = eager(x)
            assert value == pytest.approx(want_value, rel=1e-13)
            np.testing.assert_allclose(grad, want_grad, **F64)
            assert compiled(x) == pytest.approx(want_value, rel=1e-13)
        assert jt == pytest.approx(np.dot(eager(x2)[1], t), rel=1e-10)
    assert compiled.trace_count == 1


# ---- threads (held) ----

def test_threads_mixing_jvp_jacobian_and_gradients_with_function_rows():
    rng = np.random.default_rng(17)
    w = rng.normal(size=(5, 5))

    def f(x):
        y = Cube.apply(tg.tanh(x @ w))
        return tg.concatenate([y, tg.sin(y) * x])

    def loss(x):
        return tg.sum(f(x) ** 2)

    jvp_of, jacobian_of, loss_of = tg.compile(f), tg.compile(f), tg.compile(loss)
    xs, ts = rng.normal(size=(6, 5)), rng.normal(size=(6, 5))
    want_jvp = [_eager_jvp(f, (x,), (t,)) for x, t in zip(xs, ts)]
    want_jac = [tg.jacobian(f, tg.Tensor(x)).data for x in xs]
    want_grad = [tg.value_and_grad(loss)(x)[1] for x in xs]
    errors = []

    def work(k):
        try:
            for i in range(10):
                if (k + i) % 3 == 0:
                    np.testing.assert_allclose(jvp_of.jvp(xs[k], ts[k])[1], want_jvp[k], **F64)
                elif (k + i) % 3 == 1:
                    np.testing.assert_allclose(jacobian_of.jacobian(xs[k]), want_jac[k], **F64)
                else:
                    np.testing.assert_allclose(loss_of.grad(xs[k]), want_grad[k], **F64)
                    assert loss_of.jvp(xs[k], ts[k])[1] == pytest.approx(np.dot(want_grad[k], ts[k]), rel=1e-10)
        except Exception as e:  # reported below
            errors.append(e)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # threads switch inside the Functions' Python
    try:
        threads = [threading.Thread(target=work, args=(k,)) for k in range(6)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    finally:
        sys.setswitchinterval(interval)
    assert errors == []


# ---- torch's jvp as the oracle (held) ----

def _torch_graphs(torch):
    return {
        "broadcast and clip": (
            lambda a, b: np.clip(a * b, -0.5, 0.5) + tg.exp(a) / (1.0 + b * b),
            lambda a, b: torch.clamp(a * b, -0.5, 0.5) + torch.exp(a) / (1.0 + b * b),
            [(3, 1), (4,)]),
        "indexing and einsum": (
            lambda x: np.einsum("ij,ij->i", x[np.array([0, 0, 2])], x[np.array([1, 1, 0])]),
            lambda x: torch.einsum("ij,ij->i", x[[0, 0, 2]], x[[1, 1, 0]]),
            [(3, 4)]),
        "qr and svd": (
            lambda a: np.linalg.qr(a)[1] ** 2 + np.linalg.svd(a, compute_uv=False)[:, None],
            lambda a: torch.linalg.qr(a)[1] ** 2 + torch.linalg.svdvals(a)[:, None],
            [(4, 3)]),
    }


@pytest.mark.parametrize("case", ["broadcast and clip", "indexing and einsum", "qr and svd"])
def test_jvp_matches_torch_on_more_graphs(case):
    torch = pytest.importorskip("torch")
    ours, theirs, shapes = _torch_graphs(torch)[case]
    rng = np.random.default_rng(19)
    args = tuple(rng.normal(size=s) for s in shapes)
    ts = tuple(rng.normal(size=s) for s in shapes)
    value, jt = tg.compile(ours, argnums=tuple(range(len(args)))).jvp(args, ts)
    t_value, t_jt = torch.autograd.functional.jvp(theirs, tuple(torch.tensor(a) for a in args),
                                                  tuple(torch.tensor(t) for t in ts))
    np.testing.assert_allclose(value, t_value.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(jt, t_jt.numpy(), rtol=1e-9, atol=1e-12)
