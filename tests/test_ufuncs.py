"""numpy's ufuncs beyond the seed's and scipy's binary ones: the gradient conventions at
their edges (against PyTorch, and where PyTorch gives NaN), float_power's dtypes, `%`
and divmod, and the aliases numpy defines.

Values and gradients in general are checked by the catalogue-driven tests
(tests/opcatalog.py feeds test_ops, test_higher_order, test_gradcheck, test_catalogue).
"""

import math

import numpy as np
import pytest

import tapegrad as tg


def _grads(fn, *values, order=1):
    ts = [tg.Tensor(np.asarray(v, dtype=float)) for v in values]
    out = fn(*ts)
    gs = tg.grad(out.sum(), ts, create_graph=order > 1, allow_unused=True)
    return ts, gs


def test_edge_gradients_follow_pytorch():
    torch = pytest.importorskip("torch")

    def theirs(fn, *values):
        ts = [torch.tensor(np.asarray(v, dtype=float), requires_grad=True) for v in values]
        return [g.numpy() for g in torch.autograd.grad(fn(*ts).sum(), ts)]

    nan = np.nan
    cases = [
        (tg.fmax, torch.fmax, [1.0, 1.0, nan, 2.0], [1.0, nan, 1.0, nan]),
        (tg.fmin, torch.fmin, [1.0, 1.0, nan, 2.0], [1.0, nan, 1.0, nan]),
        (tg.arctan2, torch.arctan2, [0.0, 1.0, 0.0], [0.0, 0.0, -1.0]),
        (tg.copysign, torch.copysign, [0.0, 2.0, -2.0, -0.0], [-1.0, -1.0, 0.0, 1.0]),
        (tg.remainder, torch.remainder, [5.5, -5.5, 5.5], [2.0, 2.0, -2.0]),
        (tg.fmod, torch.fmod, [5.5, -5.5, 5.5], [2.0, 2.0, -2.0]),
        (tg.xlogy, torch.special.xlogy, [0.0, 0.0, 2.0], [0.5, -1.0, 0.5]),
        (tg.xlog1py, torch.special.xlog1py, [0.0, 0.0, 2.0], [0.5, -2.0, 0.5]),
        (tg.float_power, torch.float_power, [0.0, 0.0, 2.0], [2.0, 0.0, 0.5]),
    ]
    for ours_fn, torch_fn, a, b in cases:
        _, got = _grads(ours_fn, a, b)
        want = theirs(torch_fn, a, b)
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g.data, w, err_msg=ours_fn.__name__)
    for ours_fn, torch_fn, a in [(tg.sinc, torch.sinc, [0.0, 1.0]), (tg.i1, torch.special.i1, [0.0, 1e-9]),
                                 (tg.fabs, torch.abs, [0.0, -1.0])]:
        _, (g,) = _grads(ours_fn, a)
        np.testing.assert_allclose(g.data, theirs(torch_fn, a)[0], rtol=1e-15)


def test_edge_gradients_where_pytorch_gives_nan():
    # hypot at (0, 0): 0 (PyTorch: NaN); xlogy's y-gradient where x = 0 and y = 0: 0 (PyTorch: NaN)
    _, (ga, gb) = _grads(tg.hypot, [0.0, 3.0], [0.0, 4.0])
    np.testing.assert_array_equal(ga.data, [0.0, 0.6])
    np.testing.assert_array_equal(gb.data, [0.0, 0.8])
    _, (_, gy) = _grads(tg.xlogy, [0.0], [0.0])
    assert gy.data[0] == 0.0
    # sinc's second derivative at 0 is -pi^2/3 (PyTorch: NaN), and smooth around it
    for v, want in [(0.0, -np.pi**2 / 3), (1e-3, None), (0.31, None)]:
        x = tg.Tensor(v)
        (d1,) = tg.grad(tg.sinc(x), x, create_graph=True)
        (d2,) = tg.grad(d1, x)
        u = np.pi * v
        exact = want if want is not None else (
            np.pi**2 * (-(u**2) * np.sin(u) - 2 * u * np.cos(u) + 2 * np.sin(u)) / u**3)
        assert float(d2.data) == pytest.approx(exact, rel=1e-9)
    # rgamma's derivative at its zeros is (-1)^n n!, and its second derivative -2 (-1)^n n! digamma(n+1)
    euler = 0.57721566490153286
    for n in range(4):
        x = tg.Tensor(-float(n))
        (d1,) = tg.grad(tg.rgamma(x), x, create_graph=True)
        (d2,) = tg.grad(d1, x)
        assert float(d1.data) == pytest.approx((-1) ** n * math.factorial(n), rel=1e-13)
        assert float(d2.data) == pytest.approx(-2 * (-1) ** n * math.factorial(n) * (sum(1 / k for k in range(1, n + 1)) - euler),
                                               rel=1e-12)


def test_float_power_computes_in_float64_and_keeps_gradient_dtypes():
    a = tg.Tensor(np.array([1.5, 2.0], dtype=np.float32))
    b = tg.Tensor(np.array([2.0, 0.5], dtype=np.float32))
    out = tg.float_power(a, b)
    assert out.data.dtype == np.float64
    np.testing.assert_array_equal(out.data, np.float_power(a.data, b.data))
    ga, gb = tg.grad(out.sum(), [a, b])
    assert ga.data.dtype == np.float32 and gb.data.dtype == np.float32


def test_remainder_operator_and_divmod():
    a = tg.Tensor(np.array([5.5, -5.5]))
    out = a % 2.0
    np.testing.assert_array_equal(out.data, [1.5, 0.5])
    assert (7.0 % tg.Tensor(2.5)).data == 2.0
    np.testing.assert_array_equal((np.array([5.5, -5.5]) % tg.Tensor(2.0)).data, [1.5, 0.5])
    b = tg.Tensor(2.0)
    gb = tg.grad((a % b).sum(), b)[0]
    assert float(gb.data) == -(2.0 + -3.0)
    assert np.mod(a, 2.0).requires_grad and np.remainder(a, 2.0).requires_grad
    with pytest.raises(TypeError, match=r"divmod\(\) on a Tensor.*a % b"):
        divmod(a, 2.0)


def test_aliases_are_one_entry():
    x = tg.Tensor(np.array([30.0, 90.0]))
    np.testing.assert_array_equal(np.radians(x).data, np.deg2rad(x.data))
    np.testing.assert_array_equal(np.degrees(x).data, np.rad2deg(x.data))
    assert tg.catalogue.OPS["rad2deg"].numpy == ("numpy.rad2deg", "numpy.degrees")
    assert tg.catalogue.OPS["digamma"].numpy == ("scipy.special.digamma", "scipy.special.psi")
