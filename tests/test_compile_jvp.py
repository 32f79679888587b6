"""Forward mode on compiled tapes: jvp and the forward Jacobian (Note [Tangent sweep]).

A compiled function's jvp replays the values, then carries the tangents forward
through the same rows, each by its op's tangent rule (Note [Tangent rules] in
csrc/array_ops.hpp). Every check here compares J t with reverse mode computed
another way: eager tapegrad's Jacobians and gradients (the op tables'
backwards on a fresh tape), the compiled vjp (<u, J t> = <J^T u, t>), and
torch.autograd.functional.jvp where torch is installed.
"""

import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from test_catalogue import OPS, function_of, sample_inputs
from test_compile_catalogue import REPLAY_RAISES, _callable

import tapegrad as tg
from tapegrad import catalogue

from opcatalog import needs_scipy, one_value

TOL = {np.float64: dict(rtol=1e-9, atol=1e-11), np.float32: dict(rtol=2e-3, atol=2e-4)}


def _eager_jvp(f, args, tangents):
    """J t from eager tapegrad's reverse-mode Jacobian: sum over inputs of J_k t_k."""
    jac = tg.jacobian(f, tuple(tg.Tensor(a) for a in args))
    total = 0.0
    for block, t in zip(jac, tangents):
        block = np.asarray(block.data, dtype=np.float64)
        t = np.asarray(t, dtype=np.float64)
        total = total + np.tensordot(block, t, axes=t.ndim)
    return total


def _vector_function(fn, call, tensors, rng):
    """op(*xs) * w, for a fixed random w of the op's output shape: a vector output."""
    def op(*xs):
        args, kwargs = call(list(xs))
        return one_value(fn(*args, **kwargs), tg.stack, tg.concatenate)

    weights = rng.uniform(0.5, 1.5, size=op(*tensors).shape)
    return lambda *xs: op(*xs) * weights


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", [n for n in OPS if n not in REPLAY_RAISES])
def test_every_op_jvp_equals_the_eager_jacobian_times_the_tangents(name, dtype):
    if needs_scipy(name):
        pytest.importorskip("scipy")
    rng = np.random.default_rng(41)
    arrays, call = sample_inputs(name, rng, dtype)
    f = _vector_function(_callable(name, None), call, [tg.Tensor(a) for a in arrays], rng)
    tangents = tuple(rng.uniform(-1, 1, size=np.shape(a)).astype(dtype) for a in arrays)
    compiled = tg.compile(f, argnums=tuple(range(len(arrays))))
    for call_args in (arrays, sample_inputs(name, rng, dtype)[0]):  # the trace, then a replay
        value, jt = compiled.jvp(tuple(call_args), tangents)
        want = _eager_jvp(f, call_args, tangents)
        np.testing.assert_allclose(np.asarray(jt, dtype=np.float64), want, **TOL[dtype],
                                   err_msg=name)
        assert np.shape(jt) == np.shape(value)
        assert np.asarray(jt).dtype == np.asarray(value).dtype
    assert compiled.trace_count == 1


@pytest.mark.parametrize("name", [n for n in OPS if catalogue.OPS[n].kind == "elementwise"])
def test_elementwise_ops_on_python_floats_take_the_scalar_rows_tangents(name):
    rng = np.random.default_rng(7)
    arrays, _ = sample_inputs(name, rng)
    xs = tuple(float(a.flat[0]) for a in arrays)
    fn = function_of(name)
    compiled = tg.compile(fn, argnums=tuple(range(len(xs))))
    for scale in (1.0, 0.9):
        args = tuple(x * scale for x in xs)
        ts = tuple(0.5 + k for k in range(len(xs)))
        _, jt = compiled.jvp(args, ts)
        _, grads = tg.value_and_grad(fn, tuple(range(len(xs))))(*args)
        assert isinstance(jt, float)
        assert jt == pytest.approx(sum(g * t for g, t in zip(grads, ts)), rel=1e-12, abs=1e-14)


def _mlp(w1, b1, w2, x):
    h = tg.tanh(x @ w1 + b1)
    return tg.log_softmax(h @ w2, axis=-1)


def test_jvp_passes_the_dot_product_test_against_the_compiled_vjp():
    rng = np.random.default_rng(3)
    args = (rng.normal(size=(4, 5)), rng.normal(size=5), rng.normal(size=(5, 3)), rng.normal(size=(6, 4)))
    ts = tuple(rng.normal(size=a.shape) for a in args)
    compiled = tg.compile(_mlp)
    value, jt = compiled.jvp(args, ts)
    u = rng.normal(size=value.shape)
    _, vjps = compiled.vjp(args, u)
    assert np.vdot(u, jt) == pytest.approx(sum(np.vdot(g, t) for g, t in zip(vjps, ts)), rel=1e-12)


def test_jacobian_picks_forward_mode_for_tall_outputs_and_agrees_with_reverse():
    rng = np.random.default_rng(5)
    w = rng.normal(size=(2, 30))

    def tall(x):  # 2 inputs, 30 outputs: a forward sweep per input
        return tg.sin(x @ w) * tg.sum(x * x)

    x = rng.normal(size=2)
    got = tg.compile(tall).jacobian(x)
    want = tg.jacobian(tall, tg.Tensor(x)).data
    assert got.shape == (30, 2)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)
    # the same function made wide: a reverse sweep per output
    wide = tg.compile(lambda x: tg.sum(tg.sin(x[:, None] * w[0]), axis=1))
    xw = rng.normal(size=40)
    np.testing.assert_allclose(wide.jacobian(xw), tg.jacobian(
        lambda x: tg.sum(tg.sin(x[:, None] * w[0]), axis=1), tg.Tensor(xw)).data, rtol=1e-12)


def test_a_tall_jacobian_runs_the_forward_once():
    calls = []

    def f(x):
        calls.append(1)
        return tg.exp(x[0] * np.arange(50.0)) + x[1]

    compiled = tg.compile(f)
    x = np.array([0.1, 0.2])
    compiled.jacobian(x)  # traces
    calls.clear()
    jac = compiled.jacobian(np.array([0.3, -0.2]))
    assert calls == []  # replayed: f's Python did not run
    np.testing.assert_allclose(jac[:, 0], np.arange(50.0) * np.exp(0.3 * np.arange(50.0)))
    np.testing.assert_allclose(jac[:, 1], np.ones(50))


class Cube(tg.Function):
    """x ** 3 with a hand-written backward: the tangent comes from the backward."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x ** 3

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * 3 * x ** 2


class SplitScale(tg.Function):
    """Two outputs of different shapes: (x * a, sum(x) ** 2)."""

    @staticmethod
    def forward(ctx, x, a):
        ctx.save_for_backward(x, a)
        return x * a, np.sum(x) ** 2

    @staticmethod
    def backward(ctx, g1, g2):
        x, a = ctx.saved_tensors
        return g1 * a + 2 * np.sum(x) * g2, g1 * x


def test_a_function_row_gets_its_tangent_from_its_backward():
    def f(x, a):
        y, s = SplitScale.apply(x, a)
        return Cube.apply(y) * s + a

    rng = np.random.default_rng(11)
    x, a = rng.normal(size=4), rng.normal(size=4)
    tx, ta = rng.normal(size=4), rng.normal(size=4)
    compiled = tg.compile(f, argnums=(0, 1))
    for args in ((x, a), (x * 1.5, a - 0.3)):
        _, jt = compiled.jvp(args, (tx, ta))
        np.testing.assert_allclose(jt, _eager_jvp(f, args, (tx, ta)), rtol=1e-12)
    assert compiled.trace_count == 1


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_broadcasts_scalars_and_constants_carry_tangents(dtype):
    rng = np.random.default_rng(2)
    c = rng.normal(size=(3, 1)).astype(dtype)

    def f(s, row, col):
        return s * tg.exp(row) + col * c - tg.sum(col) / (1.0 + s * s)

    args = (0.7, rng.normal(size=4).astype(dtype), rng.normal(size=(3, 1)).astype(dtype))
    ts = (0.3, rng.normal(size=4).astype(dtype), rng.normal(size=(3, 1)).astype(dtype))
    value, jt = tg.compile(f, argnums=(0, 1, 2)).jvp(args, ts)
    assert jt.shape == value.shape == (3, 4) and jt.dtype == dtype
    np.testing.assert_allclose(jt, _eager_jvp(f, args, ts), **TOL[dtype])


def test_zero_tangents_unused_inputs_and_constant_outputs():
    compiled = tg.compile(lambda x, y: x * 2.0)
    assert compiled.jvp((3.0, 4.0), (1.0, 5.0)) == (6.0, 2.0)
    assert compiled.jvp((3.0, 4.0), (0.0, 5.0)) == (6.0, 0.0)
    _, jt = tg.compile(lambda x: x).jvp(np.ones(3), np.arange(3.0))
    np.testing.assert_array_equal(jt, np.arange(3.0))
    constant = tg.compile(lambda x: tg.tensor(np.ones(2)) * 3.0)
    value, jt = constant.jvp(np.ones(2), np.ones(2))
    np.testing.assert_array_equal(value, [3.0, 3.0])
    np.testing.assert_array_equal(jt, [0.0, 0.0])


def test_guards_hold_in_forward_mode_too():
    def piecewise(x):
        if tg.sum(x) > 0:
            return x * x
        return tg.sin(x)

    compiled = tg.compile(piecewise)
    t = np.array([1.0, 2.0])
    _, up = compiled.jvp(np.array([1.0, 2.0]), t)
    np.testing.assert_allclose(up, 2 * np.array([1.0, 2.0]) * t)
    _, down = compiled.jvp(np.array([-1.0, -2.0]), t)  # the other branch: traced too
    np.testing.assert_allclose(down, np.cos([-1.0, -2.0]) * t)
    assert compiled.trace_count == 2
    _, again = compiled.jvp(np.array([3.0, 1.0]), t)  # the first path, replayed
    np.testing.assert_allclose(again, 2 * np.array([3.0, 1.0]) * t)
    assert compiled.trace_count == 2


def test_jvp_after_gradients_and_gradients_after_jvp_share_the_trace():
    rng = np.random.default_rng(8)
    w = rng.normal(size=(5, 5))

    def f(x):
        return tg.sum(tg.tanh(x @ w) ** 2)  # fused elementwise rows between two array ops

    compiled = tg.compile(f)
    x, t = rng.normal(size=5), rng.normal(size=5)
    v1, g1 = compiled.value_and_grad(x)
    v2, jt = compiled.jvp(x, t)
    v3, g3 = compiled.value_and_grad(x)
    assert v1 == v2 == v3
    np.testing.assert_array_equal(g1, g3)
    assert jt == pytest.approx(np.vdot(g1, t), rel=1e-12)
    assert compiled.trace_count == 1


def test_bad_tangents_raise_with_the_shapes():
    compiled = tg.compile(lambda x: tg.sum(x * x))
    with pytest.raises(ValueError, match=r"jvp's v must have the inputs' shapes: \(3,\) and \(2,\)"):
        compiled.jvp(np.ones(3), np.ones(2))
    with pytest.raises(ValueError, match="one v per input"):
        tg.compile(lambda a, b: a * b).jvp((1.0, 2.0), (1.0,))
    assert compiled.jvp(np.ones(3), np.ones(3)) == (3.0, 6.0)  # still usable


def test_with_fallback_eager_every_driver_runs_on_the_eager_tape():
    def reads(x):  # float() reads a value: no trace, so fallback="eager" runs f eagerly
        return x * float(tg.sum(x)) + tg.sin(x)

    def scalar(x):
        return tg.sum(x ** 3) * float(tg.sum(x))

    x, t = np.array([1.0, 2.0]), np.array([1.0, 0.5])
    compiled, compiled_scalar = tg.compile(reads, fallback="eager"), tg.compile(scalar, fallback="eager")
    with pytest.warns(tg.TraceWarning):
        value, jt = compiled.jvp(x, t)
    jac = tg.jacobian(reads, tg.Tensor(x)).data  # float() is a constant there too
    np.testing.assert_allclose(value, reads(x))
    np.testing.assert_allclose(jt, jac @ t, rtol=1e-12)
    np.testing.assert_allclose(compiled.vjp(x, t)[1], t @ jac, rtol=1e-12)
    np.testing.assert_allclose(compiled.jacobian(x), jac, rtol=1e-12)
    hess = tg.hessian(scalar, tg.Tensor(x)).data
    with pytest.warns(tg.TraceWarning):
        np.testing.assert_allclose(compiled_scalar.hessian(x), hess, rtol=1e-12)
    with warnings.catch_warnings():  # one TraceWarning per compiled function, drivers too
        warnings.simplefilter("error", tg.TraceWarning)
        np.testing.assert_allclose(compiled_scalar.hvp(x, t)[1], hess @ t, rtol=1e-12)
    assert compiled.trace_count == 0


def test_threads_each_get_their_own_tangents():
    rng = np.random.default_rng(4)
    w = rng.normal(size=(8, 8))
    compiled = tg.compile(lambda x: tg.tanh(x @ w) * x)
    inputs = [rng.normal(size=8) for _ in range(8)]
    tangents = [rng.normal(size=8) for _ in range(8)]
    want = [_eager_jvp(lambda x: tg.tanh(x @ w) * x, (x,), (t,)) for x, t in zip(inputs, tangents)]

    def work(k):
        for _ in range(20):
            _, jt = compiled.jvp(inputs[k], tangents[k])
            np.testing.assert_allclose(jt, want[k], rtol=1e-12)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(work, range(8)))  # a worker's failure is raised here


# ---- torch's jvp as the oracle (torch.autograd.functional: importing torch.func warns) ----

def _torch_cases(torch):
    return {
        "mlp": (_mlp, lambda w1, b1, w2, x: torch.log_softmax(torch.tanh(x @ w1 + b1) @ w2, -1),
                [(4, 5), (5,), (5, 3), (6, 4)]),
        "solve and inv": (
            lambda a, b: tg.linalg.solve(a, b) + tg.linalg.inv(a) @ b,
            lambda a, b: torch.linalg.solve(a, b) + torch.linalg.inv(a) @ b,
            [(3, 3), (3,)]),
        "cholesky and eigh": (
            lambda a: tg.linalg.cholesky(a @ a.T + 3 * np.eye(3)).sum(axis=0) * tg.linalg.eigh(a @ a.T)[0],
            lambda a: torch.linalg.cholesky(a @ a.T + 3 * torch.eye(3, dtype=a.dtype)).sum(0)
            * torch.linalg.eigh(a @ a.T)[0],
            [(3, 3)]),
        "reductions": (
            lambda x: tg.stack([tg.max(x, axis=0), tg.prod(x, axis=0), tg.std(x, axis=0),
                                tg.logsumexp(x, axis=0)]),
            lambda x: torch.stack([x.amax(0), x.prod(0), x.std(0, correction=0),
                                   torch.logsumexp(x, 0)]),
            [(4, 3)]),
        "cumprod and einsum": (
            lambda x, y: tg.cumprod(x, axis=0) * tg.einsum("ij,jk->ik", x, y).sum(),
            lambda x, y: torch.cumprod(x, 0) * torch.einsum("ij,jk->ik", x, y).sum(),
            [(3, 2), (2, 4)]),
    }


@pytest.mark.parametrize("case", ["mlp", "solve and inv", "cholesky and eigh", "reductions",
                                  "cumprod and einsum"])
def test_jvp_matches_torch_jvp(case):
    torch = pytest.importorskip("torch")
    ours, theirs, shapes = _torch_cases(torch)[case]
    rng = np.random.default_rng(12)
    args = tuple(rng.normal(size=s) + (3 * np.eye(3) if s == (3, 3) else 0) for s in shapes)
    ts = tuple(rng.normal(size=s) for s in shapes)
    value, jt = tg.compile(ours, argnums=tuple(range(len(args)))).jvp(args, ts)
    t_value, t_jt = torch.autograd.functional.jvp(theirs, tuple(torch.tensor(a) for a in args),
                                                  tuple(torch.tensor(t) for t in ts))
    np.testing.assert_allclose(value, t_value.numpy(), rtol=1e-10)
    np.testing.assert_allclose(jt, t_jt.numpy(), rtol=1e-9, atol=1e-12)
