"""tapegrad.compile over the whole op catalogue and numpy's calls on Tensors.

Every op with test data (tests/opcatalog.py), called as tapegrad's function and
as each numpy or scipy callable that dispatches to it, inside a small scalar
function that is compiled, traced once and replayed on new values: each replay
must equal eager tapegrad on the same values, value and gradients. An op whose
record depends on values read in Python (a sort's permutation) must raise
TraceError instead: REPLAY_RAISES lists them with the reason, so that a new
false escape fails here, and so does a value read that stops raising.
"""

import importlib

import numpy as np
import pytest
from test_catalogue import OPS, function_of, sample_inputs
from test_compile import check_against_eager

import tapegrad as tg
from tapegrad import catalogue
from tapegrad.scipy import special, stats

from opcatalog import needs_scipy, one_value

# Ops whose eager path reads values in Python to decide what it records: under
# compile they raise TraceError (as each of their numpy callables does).
REPLAY_RAISES = {
    "sort": "the permutation is np.argsort of the values; a replay would gather in a stale order",
    "partition": "the arrangement is np.argpartition of the values",
    "scipy.special.logsumexp": "with b= the shift max(a) is read from the values (a constant "
                               "of the trace that could overflow exp on other values)",
}

CASES = [(name, path) for name in OPS for path in (None, *catalogue.OPS[name].numpy)]


def _callable(name, path):
    """tapegrad's function for op `name` (path None), or the numpy or scipy callable at path."""
    if path is None:
        return function_of(name)
    module, _, attribute = path.rpartition(".")
    if module.startswith("scipy"):
        pytest.importorskip(module)
    return getattr(importlib.import_module(module), attribute)


def _scalar_function(fn, call, tensors, rng):
    """sum(op(*xs) * w) for a fixed random w of the op's output shape."""
    def op(*xs):
        args, kwargs = call(list(xs))
        return one_value(fn(*args, **kwargs), tg.stack, tg.concatenate)

    weights = rng.uniform(0.5, 1.5, size=op(*tensors).shape)
    return lambda *xs: tg.sum(op(*xs) * weights)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name, path", CASES, ids=[p or n for n, p in CASES])
def test_every_op_replays_as_eager_or_raises_listed(name, path, dtype):
    if needs_scipy(name):
        pytest.importorskip("scipy")
    rng = np.random.default_rng(14)
    arrays, call = sample_inputs(name, rng, dtype)
    fn = _callable(name, path)
    f = _scalar_function(fn, call, [tg.Tensor(a) for a in arrays], rng)
    argnums = tuple(range(len(arrays)))
    if name in REPLAY_RAISES:
        with pytest.raises(tg.TraceError, match=r"test_compile_catalogue\.py:\d+"):
            tg.compile(f, argnums=argnums).value_and_grad(*arrays)
        return
    nudged = [np.asarray(a * (1 + 0.01 * rng.uniform(-1, 1, size=a.shape)), dtype=dtype)
              for a in arrays]  # a 0-d array stays one (see the numpy scalar test below)
    fresh = sample_inputs(name, rng, dtype)[0]
    cf = check_against_eager(f, [arrays, nudged, fresh], argnums=argnums)
    assert cf.trace_count == 1  # each later call replayed: none traced again


@pytest.mark.parametrize("name", [n for n in OPS if catalogue.OPS[n].kind == "elementwise"])
def test_elementwise_ops_on_python_floats_replay_as_eager(name):
    """Scalar rows: the replay's own loop over plain floats (Note [Hot ops])."""
    if needs_scipy(name):
        pytest.importorskip("scipy")
    rng = np.random.default_rng(7)
    fn = function_of(name)
    calls = [tuple(float(a.flat[k]) for a in sample_inputs(name, rng)[0]) for k in range(4)]
    cf = check_against_eager(lambda *xs: fn(*xs) * 1.3 + xs[0] * xs[-1], calls,
                             argnums=tuple(range(len(calls[0]))))
    assert cf.trace_count == 1


def test_the_listed_ops_exist():
    assert REPLAY_RAISES.keys() <= set(OPS)


# ---- numpy's calls on Tensors, operators and indexing ----

_rng = np.random.default_rng(41)
_A = [_rng.uniform(-2, 2, size=(3, 4)) for _ in range(3)]
_B = [_rng.uniform(-2, 2, size=(4, 3)) for _ in range(3)]
_SQUARE = [_rng.uniform(-1, 1, size=(3, 3)) + 3 * np.eye(3) for _ in range(3)]
_W = _rng.uniform(0.5, 1.5, size=(3, 4))
_MASK = _rng.uniform(size=(3, 4)) > 0.4
_NAN_AT = [np.eye(3, 4, dtype=bool), np.eye(3, 4, dtype=bool), np.eye(3, 4, k=1, dtype=bool)]
_A_NAN = [np.where(at, np.nan, a) for at, a in zip(_NAN_AT, _A)]
_A_NONFINITE = [np.where(_MASK, a, v) for a, v in zip(_A, (np.nan, np.inf, -np.inf))]


def _twice(f):
    """f(a) + f(b): the same calls on two arguments (for the pair cases)."""
    return lambda a, b: f(a) + f(b)


# name -> (f, calls, traces): f's replays equal eager on every call; `traces` counts
# the paths its guards took (a call whose guard comes out otherwise traces again).
NUMPY_CALLS = {
    "np.sum axis keepdims": (lambda t: np.sum(np.sum(t, axis=0, keepdims=True) * _W), _A, 1),
    "np.mean np.var np.std": (lambda t: np.mean(t, axis=1) @ np.var(t, axis=1) + np.std(t), _A, 1),
    "np.max np.min np.prod": (lambda t: np.sum(np.max(t, axis=0)) - np.min(t) + np.prod(t[0]), _A, 1),
    "np.where plain condition": (lambda t: np.sum(np.where(_MASK, t, t * t)), _A, 1),
    "np.where Tensor comparison": (lambda t: np.sum(np.where(t > 0, t, -2 * t)), _A, 3),
    "np.where Tensor condition": (lambda t: np.sum(np.where(t[0] - t[0] + t[1], t[2], 1.0)),
                                  [_A[0], _A[1], np.vstack([_A[2][:1], np.zeros(4), _A[2][2:]])], 2),
    "t[int] t[slice] t[ints]": (lambda t: t[1, 2] * np.sum(t[:, 1:3]) + np.sum(t[[0, 2, 2], 1]),
                                _A, 1),
    "t[plain mask]": (lambda t: np.sum(t[_MASK] ** 2), _A, 1),
    "t[t > 0]": (lambda t: np.sum(t[t > 0] ** 2), _A, 3),
    "np.concatenate np.stack": (lambda t: np.sum(np.concatenate([t, 2 * t]) ** 2)
                                + np.sum(np.stack([t, t * t], axis=1) * 0.5), _A, 1),
    "t @ u, np.dot, np.einsum, np.tensordot, np.outer": (
        lambda t, u: (np.sum(t @ u) + np.sum(np.dot(t, u) ** 2) + np.einsum("ij,jk->", t, u)
                      + np.sum(np.tensordot(t, u, axes=([1], [0]))) + np.sum(np.outer(t[0], u[0]))),
        list(zip(_A, _B)), 1),
    "np.linalg.solve inv det": (lambda s, b: np.sum(np.linalg.solve(s, b[:3, :2]))
                                + np.sum(np.linalg.inv(s)) + np.linalg.det(s),
                                list(zip(_SQUARE, _B)), 1),
    "np.linalg.slogdet sign": (
        lambda s: (lambda sign, logdet: sign * np.exp(logdet))(*np.linalg.slogdet(s)),
        [_SQUARE[0], -_SQUARE[1], _SQUARE[2]], 2),
    "np.linalg.norm at zero": (lambda t: np.linalg.norm(t) + np.linalg.norm(t, axis=1) @ t[:, 0],
                               [_A[0], np.zeros((3, 4)), _A[1]], 2),
    "np.linalg.norm ord=0 count": (lambda t: np.linalg.norm(t[0], ord=0) * np.sum(t),
                                   [_A[0], np.vstack([np.zeros(4), _A[1][1:]]), _A[2]], 2),
    "np.nansum np.nanmean": (lambda t: np.nansum(t * 2.0) + np.sum(np.nanmean(t, axis=0)),
                             _A_NAN, 2),
    "np.nan_to_num": (lambda t: np.sum(np.nan_to_num(t, posinf=3.0, neginf=-4.0) * _W),
                      _A_NONFINITE, 3),
    "np.average weights": (lambda t, u: np.sum(np.average(t, axis=1, weights=u[:, 0] * u[:, 0] + 1)),
                           list(zip(_A, _B)), 1),
    "np.std where": (lambda t: np.std(t, where=_MASK) + np.var(t, where=_MASK, axis=0) @ t[0], _A, 1),
    "np.max initial where": (lambda t: np.sum(np.max(t, axis=0, initial=0.5, where=_MASK)),
                             [_A[0], _A[0] + 0.01, _A[0] - 5.0], 2),
    "np.zeros_like np.shape np.size np.ndim np.result_type": (
        lambda t: np.sum(t * (np.ones_like(t) + np.full_like(t, 2.0) + np.zeros_like(t)))
        * np.shape(t)[0] * np.size(t) * np.ndim(t) + np.sum(t.astype(np.result_type(t))), _A, 1),
    "np.greater np.less np.isnan np.isinf np.isfinite": (
        lambda t: np.sum(np.where(np.greater(t, 0.5) | np.less(1.0, t) | np.isinf(t), t, -t))
        + np.sum(np.where(np.isnan(t) | ~np.isfinite(t), 0.0, t)), _A, 3),
    "ufuncs": (lambda t: np.sum(np.tanh(t) * np.exp(-t * t) + np.log1p(t * t) + np.maximum(t, 0.1)),
               _A, 1),
    "scipy.stats densities": (lambda t: np.sum(stats.gamma.logpdf(t, 2.0) + stats.beta.logpdf(
        t * 0.2, 2.0, 3.0)) + np.sum(stats.multivariate_normal.logpdf(t, np.zeros(4), np.eye(4))),
        _A, 3),
    "jacobian hessian hvp vjp with create_graph": (
        lambda t: (np.sum(tg.jacobian(np.sin, t[0], create_graph=True))
                   + np.sum(tg.hessian(lambda y: np.sum(y ** 3), t[0], create_graph=True))
                   + np.sum(tg.hvp(lambda y: np.sum(y ** 3), t[0], _W[0], create_graph=True)[1])
                   + np.sum(tg.vjp(np.tanh, t[1], _W[1], create_graph=True)[1])), _A, 1),
}


@pytest.mark.parametrize("name", NUMPY_CALLS)
def test_numpy_calls_on_tensors_replay_as_eager(name):
    f, calls, traces = NUMPY_CALLS[name]
    calls = [c if isinstance(c, tuple) else (c,) for c in calls]
    cf = check_against_eager(f, calls, argnums=tuple(range(len(calls[0]))))
    assert cf.trace_count == traces


def _into_an_ndarray(t):
    total = np.zeros(())
    total += np.sum(t)  # the ndarray receives a value
    return total


# What reads values into Python: the calls raise TraceError, naming this file's line.
NUMPY_RAISES = {
    "np.sort": lambda t: np.sum(np.sort(t, axis=0) * _W),
    "np.partition": lambda t: np.sum(np.partition(t, 1) * _W),
    "np.argmax (an index from values)": lambda t: t[np.argmax(t[:, 0]), 0],
    "np.floor (values, piecewise constant)": lambda t: np.sum(t - np.floor(t)),
    "np.sign": lambda t: np.sum(t * np.sign(t)),
    "a += t on an ndarray": _into_an_ndarray,
    "scipy.special.logsumexp with b": lambda t: special.logsumexp(t, b=_W),
    "poisson.logpmf with a Tensor count": lambda t: np.sum(stats.poisson.logpmf(t * 0.0 + 2.0, 3.0) + t),
    "hessian without create_graph (a constant)": lambda t: np.sum(
        tg.hessian(lambda y: np.sum(y ** 3), t[0]) * 2.0) * np.sum(t),
    "astype(int) (a plain array of values)": lambda t: np.sum(t * t.astype(int)),
}


@pytest.mark.parametrize("name", NUMPY_RAISES)
def test_numpy_calls_that_read_values_raise(name):
    f = NUMPY_RAISES[name]
    if "special" in name or "poisson" in name:
        pytest.importorskip("scipy")
    with pytest.raises(tg.TraceError, match=r"test_compile_catalogue\.py:\d+"):
        tg.compile(f).value_and_grad(_A[0])
    with pytest.warns(tg.TraceWarning):  # and fallback="eager" gives the eager answer
        got = tg.compile(f, fallback="eager").value_and_grad(_A[0])
    value, grad = tg.value_and_grad(f)(_A[0])
    assert got[0] == value
    np.testing.assert_array_equal(got[1], grad)


def test_a_guard_mask_handed_out_is_a_copy():
    """Masks the op modules make from a Tensor's values are theirs to change: changing
    one leaves the guard's outcome as it was seen."""
    x = np.array([1.0, -2.0, 3.0])

    def f(t):
        present = np.isfinite(t)
        present[0] = False  # the op's own use of its mask
        return np.sum(np.where(present, t, 0.0) ** 2)

    cf = check_against_eager(f, [(x,), (x * 2,), (np.array([np.inf, 1.0, 2.0]),)])
    assert cf.trace_count == 2  # x * 2 replayed: the guard kept the outcome it saw


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_numpy_scalar_arguments_replay_as_eager(dtype):
    def f(x):
        return np.sin(x) * 0.1 + x * x

    check_against_eager(f, [(dtype(3.3),), (dtype(-1.2),)])
