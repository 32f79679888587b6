"""scipy.special's ufuncs: values against scipy (and mpmath), dispatch, polygamma.

tapegrad computes these itself (csrc/special.cpp): their values are checked
against scipy over wide ranges, poles and tails included; where scipy's own value
is the less accurate (against mpmath), tapegrad's may differ by being closer.
Gradients are checked by the catalogue-driven tests (tests/opcatalog.py).
"""

import numpy as np
import pytest

import tapegrad as tg

sp = pytest.importorskip("scipy.special")


def _grid(*pieces):
    return np.concatenate([np.asarray(p, dtype=float) for p in pieces])


def _close_to_scipy(ours, theirs, rtol=1e-14, atol=0.0, truth=None):
    """ours matches scipy within rtol, or (given the exact values) is no farther from them."""
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    same = (ours == theirs) | (np.isnan(ours) & np.isnan(theirs))
    near = np.abs(ours - theirs) <= atol + rtol * np.abs(theirs)
    ok = same | near
    if truth is not None:
        ok |= np.abs(ours - truth) <= np.abs(theirs - truth) + 4e-16 * np.abs(truth)
    bad = ~ok
    assert not bad.any(), (f"differs from scipy at {np.flatnonzero(bad)[:5]}: ours "
                           f"{ours[bad][:5]}, scipy {theirs[bad][:5]}")


def _mp(fn, x, dps=40):
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = dps
    return np.array([float(fn(mpmath, mpmath.mpf(float(v)))) for v in x])


# ---- values tapegrad computes itself, against scipy ----

WIDE = _grid(np.linspace(-30, 30, 601), np.geomspace(1e-300, 1e3, 200), -np.geomspace(1e-300, 1e3, 200),
             [0.0, -0.0, np.inf, -np.inf, np.nan])


def test_digamma_and_polygamma_values():
    x = _grid(WIDE, np.linspace(-5, 5, 1001), [1.4616321449683623, -0.504083008264455409, 1e10, 1e17,
                                              1e300, -1, -2, -100, -100.5])
    with np.errstate(all="ignore"):
        _close_to_scipy(tg.digamma(x), sp.digamma(x), rtol=1e-14, atol=1e-15)
        # (below -20 the alternating Euler-Maclaurin sums of scipy and of tapegrad both lose
        # digits: at -100.5, polygamma(4) is off by 2e-8 relative in scipy)
        for n in range(1, 5):
            y = x[(x > -20) & (x < 1e15)]
            _close_to_scipy(tg.polygamma(n, y), sp.polygamma(n, y), rtol=1e-14)
    # Far left (x < -1e4) polygamma reflects: scipy's direct sum takes |x| terms there
    # (0.7 s at -1e7), and mpmath's too, so beyond 2e4 the exact values come from the
    # reflection formula in mpmath (DLMF 5.15.6), with its derivatives of cot.
    near_edge = np.array([-1e4 - 0.5, -1e4 - 0.25, -12345.75, -2e4 - 0.9])
    far = -np.geomspace(1e5, 1e15, 6) - 0.25
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 60
    for n in (1, 2, 5):
        exact = _mp(lambda m, v, n=n: m.polygamma(n, v), near_edge)
        np.testing.assert_allclose(tg.polygamma(n, near_edge), exact, rtol=1e-13)
        reflected = [float((-1) ** n * mpmath.polygamma(n, 1 - mpmath.mpf(v))
                           - mpmath.pi * mpmath.diff(lambda t: mpmath.cot(mpmath.pi * t), mpmath.mpf(v), n))
                     for v in far]
        np.testing.assert_allclose(tg.polygamma(n, far), reflected, rtol=1e-12)
    # near the roots, relative accuracy against the exact values
    near = _grid(1.4616321449683623 + np.linspace(-0.4, 0.4, 81), -0.504083008264455409
                 + np.linspace(-0.25, 0.25, 51))
    exact = _mp(lambda m, v: m.digamma(v), near)
    np.testing.assert_allclose(tg.digamma(near), exact, rtol=1e-13, atol=1e-300)


def test_gamma_family_values():
    x = _grid(np.linspace(-30, 30, 601) + 0.001, np.geomspace(1e-300, 171.6, 300),
              -np.geomspace(1e-300, 170, 200), [0.0, -0.0, -1.0, -2.0, -171.5, -180.5, 171.5, 172.0,
                                                np.inf, np.nan])
    with np.errstate(all="ignore"):
        _close_to_scipy(tg.gammaln(x), sp.gammaln(x), rtol=1e-14, atol=1e-15)
        truth = _mp(lambda m, v: m.rgamma(v) if m.isfinite(v) else 0, x[np.isfinite(x)])
        _close_to_scipy(tg.rgamma(x[np.isfinite(x)]), sp.rgamma(x[np.isfinite(x)]), rtol=1e-13, truth=truth)
        finite = np.isfinite(x) & ~((x <= 0) & (x == np.floor(x)))
        _close_to_scipy(tg.gamma(x[finite]), sp.gamma(x[finite]), rtol=1e-13,
                        truth=_mp(lambda m, v: m.gamma(v), x[finite]))
        _close_to_scipy(tg.gamma(x[~finite]), sp.gamma(x[~finite]))


def test_beta_values():
    rng = np.random.default_rng(0)
    a = _grid(rng.uniform(-20, 150, 3000), [0.0, -1.0, 1.0, -1.5, 2.5, 1e7, 3e8])
    b = _grid(rng.uniform(-20, 20, 3000), [1.0, 1.0, 0.0, 2.0, -3.5, 0.5, 2.0])
    moderate = (np.abs(a + b) < 171) & (np.abs(a) < 171) | (np.abs(a) > 1e6)
    with np.errstate(all="ignore"):
        _close_to_scipy(tg.beta(a[moderate], b[moderate]), sp.beta(a[moderate], b[moderate]))
        _close_to_scipy(tg.betaln(a[moderate], b[moderate]), sp.betaln(a[moderate], b[moderate]),
                        atol=1e-15)
    # Beyond gamma's range both compute in logs, and the error of log B (|log B| eps)
    # becomes relative: against the exact values, as scipy's own.
    big_a, big_b = rng.uniform(100, 400, 40), rng.uniform(30, 200, 40)
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 40
    exact = np.array([float(mpmath.beta(aa, bb)) for aa, bb in zip(big_a, big_b)])
    np.testing.assert_allclose(tg.beta(big_a, big_b), exact, rtol=1e-12)
    np.testing.assert_allclose(sp.beta(big_a, big_b), exact, rtol=1e-12)
    np.testing.assert_allclose(tg.betaln(big_a, big_b), np.log(exact), rtol=1e-14)


def test_error_function_inverses_and_normal_values():
    y = _grid(np.linspace(-1, 1, 2001), 1 - np.geomspace(1e-16, 0.5, 100), -1 + np.geomspace(1e-16, 0.5, 100),
              np.geomspace(1e-300, 1e-3, 100), [1.5, -1.5, np.nan])
    with np.errstate(all="ignore"):
        _close_to_scipy(tg.erfinv(y), sp.erfinv(y), rtol=2e-14, atol=1e-300)
        z = _grid(np.linspace(0, 2, 2001), np.geomspace(1e-300, 0.5, 200), 2 - np.geomspace(1e-16, 0.5, 100),
                  [-1.0, 3.0, np.nan])
        _close_to_scipy(tg.erfcinv(z), sp.erfcinv(z), rtol=2e-14)
        p = _grid(np.linspace(0, 1, 2001), np.geomspace(1e-300, 0.5, 200), 1 - np.geomspace(1e-16, 0.5, 100),
                  [-0.5, 1.5, np.nan])
        _close_to_scipy(tg.ndtri(p), sp.ndtri(p), rtol=2e-14)
        x = _grid(np.linspace(-40, 40, 801), -np.geomspace(1, 1e10, 100), [np.inf, -np.inf, np.nan])
        _close_to_scipy(tg.ndtr(x), sp.ndtr(x), rtol=1e-13,
                        truth=_mp(lambda m, v: m.ncdf(v), x))
        _close_to_scipy(tg.log_ndtr(x), sp.log_ndtr(x), rtol=1e-13,
                        truth=_mp(lambda m, v: (m.log1p(-m.ncdf(-v)) if v > 0 else m.log(m.ncdf(v)))
                                  if m.isfinite(v) else (0 if v > 0 else -m.inf), x))


def test_logit_xlogy_bessel_values():
    p = _grid(np.linspace(-0.5, 1.5, 2001), np.geomspace(1e-300, 0.5, 100), [np.nan])
    with np.errstate(all="ignore"):
        _close_to_scipy(tg.logit(p), sp.logit(p), rtol=1e-14, atol=1e-16)
        x, y = np.meshgrid(_grid([0.0, -0.0, 1.0, -2.5, 1e-300, 1e300, np.nan]),
                           _grid([0.0, -1.0, 0.5, 3.0, 1e-300, np.inf, np.nan, -2.0]))
        _close_to_scipy(tg.xlogy(x, y), sp.xlogy(x, y))
        _close_to_scipy(tg.xlog1py(x, y), sp.xlog1py(x, y))
        v = _grid(np.linspace(-50, 50, 1001), np.geomspace(1e-300, 713.9, 200), [714.0, -714.0, np.nan, 0.0])
        _close_to_scipy(tg.i0(v), sp.i0(v), rtol=1e-14)
        _close_to_scipy(tg.i1(v), sp.i1(v), rtol=1e-14)
        # At infinity, the limits (scipy gives NaN; PyTorch's i0 gives inf too).
        np.testing.assert_array_equal(tg.i0(np.array([np.inf, -np.inf])), [np.inf, np.inf])
        np.testing.assert_array_equal(tg.i1(np.array([np.inf, -np.inf])), [np.inf, -np.inf])


def test_float32_values_are_float32_and_rounded_from_double():
    x = np.linspace(0.1, 0.9, 9, dtype=np.float32)
    for name in ("erfinv", "logit", "digamma", "gammaln", "ndtri", "i1"):
        out = getattr(tg, name)(tg.Tensor(x))
        assert out.data.dtype == np.float32
        np.testing.assert_allclose(out.data, getattr(sp, name)(x.astype(np.float64)), rtol=1e-6)


# ---- dispatch ----

def test_scipy_ufuncs_record_on_tensors():
    x = tg.Tensor(np.array([0.3, 0.6]))
    for ufunc, ours in [(sp.erf, tg.erf), (sp.expit, tg.sigmoid), (sp.psi, tg.digamma),
                        (sp.gammaln, tg.gammaln), (sp.log_ndtr, tg.log_ndtr)]:
        out = ufunc(x)
        assert isinstance(out, tg.Tensor) and out.requires_grad
        np.testing.assert_array_equal(out.data, ours(x).data)
    out = sp.xlogy(x, 2.0)
    assert isinstance(out, tg.Tensor)
    np.testing.assert_allclose(tg.grad(out.sum(), x)[0].data, np.log(2.0) * np.ones(2))
    out = sp.ive(1.5, x)
    np.testing.assert_allclose(out.data, sp.ive(1.5, x.data), rtol=1e-15)
    with pytest.raises(TypeError, match="order v is not differentiated"):
        sp.ive(x, 1.0)


def test_polygamma_order_is_a_checked_constant():
    x = tg.Tensor(1.5)
    for order, expect in [(0, sp.digamma(1.5)), (3, sp.polygamma(3, 1.5)), (2.0, sp.polygamma(2, 1.5))]:
        assert float(tg.polygamma(order, x).data) == pytest.approx(float(expect), rel=1e-14)
    with pytest.raises(ValueError, match="polygamma: the order n must be an integer from 0 to 1048576, got -1"):
        tg.polygamma(-1, x)
    with pytest.raises(ValueError, match="got 2147483647"):
        tg.polygamma(2**31 - 1, x)
    with pytest.raises(ValueError, match="from 0 to 1048576, got -3"):  # the native op checks too
        tg._core.array_op(tg._core.OP_CODES["polygamma"], (x,), (-3,))
    with pytest.raises(TypeError, match=r"integer >= 0, got 1\.5"):
        tg.polygamma(1.5, x)
    with pytest.raises(TypeError, match="not a Tensor"):
        tg.polygamma(tg.Tensor(1.0), x)
    # every order records: the third derivative of digamma is polygamma(3)
    (d1,) = tg.grad(tg.digamma(x), x, create_graph=True)
    (d2,) = tg.grad(d1, x, create_graph=True)
    (d3,) = tg.grad(d2, x)
    assert float(d3.data) == pytest.approx(float(sp.polygamma(3, 1.5)), rel=1e-13)
