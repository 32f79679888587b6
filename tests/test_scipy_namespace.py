"""tapegrad.scipy: scipy's Python-level functions (logsumexp, softmax, log_softmax,
scipy.stats distributions) against scipy and finite differences; what a user of any
other scipy function on a Tensor is told; and that importing it does not import scipy."""

import subprocess
import sys

import numpy as np
import pytest

import tapegrad as tg

sp = pytest.importorskip("scipy.special")


def test_import_tapegrad_does_not_import_scipy():
    code = "import sys, tapegrad, tapegrad.scipy.stats; print('scipy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": tg.__path__[0].rsplit("/", 1)[0], "PATH": ""})
    assert out.stdout.strip() == "False"


def test_scipy_namespace_logsumexp_softmax():
    from tapegrad.scipy import special

    rng = np.random.default_rng(3)
    x = rng.normal(size=(3, 4))
    for kwargs in [{}, {"axis": 1}, {"axis": (0, 1), "keepdims": True}, {"axis": 0, "b": x[0] ** 2},
                   {"axis": 1, "b": np.abs(x)}]:
        np.testing.assert_allclose(special.logsumexp(tg.Tensor(x), **kwargs).data,
                                   sp.logsumexp(x, **kwargs), rtol=1e-13)
        b = kwargs.pop("b", None)
        assert tg.gradcheck(lambda t, b=b, kw=kwargs: special.logsumexp(t, b=b, **kw), [tg.Tensor(x)])
    out, sign = special.logsumexp(tg.Tensor(x), axis=1, b=x, return_sign=True)
    want, want_sign = sp.logsumexp(x, axis=1, b=x, return_sign=True)
    np.testing.assert_allclose(out.data, want, rtol=1e-13)
    np.testing.assert_array_equal(sign, want_sign)
    weights = tg.Tensor(np.abs(x))
    assert tg.gradcheck(lambda t, w: special.logsumexp(t, axis=1, b=w), [tg.Tensor(x), weights])
    for name in ("softmax", "log_softmax"):
        for axis in (None, 0, 1, (0, 1)):
            np.testing.assert_allclose(getattr(special, name)(tg.Tensor(x), axis=axis).data,
                                       getattr(sp, name)(x, axis=axis), rtol=1e-13)
        assert tg.gradgradcheck(lambda t, n=name: getattr(special, n)(t), [tg.Tensor(x)])
    assert special.expit is tg.sigmoid and special.psi is tg.digamma and special.erf is tg.erf


def test_scipy_stats_against_scipy():
    stats = pytest.importorskip("scipy.stats")
    from tapegrad.scipy import stats as ours

    rng = np.random.default_rng(4)
    x = rng.uniform(0.1, 0.9, size=5)
    cases = [
        ("norm", "logpdf", (x, 0.3, 1.7)), ("norm", "pdf", (x, 0.3, 1.7)), ("norm", "cdf", (x, 0.3, 1.7)),
        ("norm", "logcdf", (x, -0.2, 0.5)), ("norm", "sf", (x, 0.3, 1.7)), ("norm", "logsf", (x, 0.3, 1.7)),
        ("t", "logpdf", (x, 3.5, 0.2, 1.3)), ("t", "pdf", (x, 3.5)), ("gamma", "logpdf", (x, 2.5, 0.0, 0.7)),
        ("gamma", "pdf", (x - 0.5, 2.5)), ("chi2", "logpdf", (x, 3.0)), ("beta", "logpdf", (x, 2.0, 3.5)),
        ("beta", "pdf", (x * 2, 2.0, 3.5)),
    ]
    for dist, method, args in cases:
        with np.errstate(divide="ignore"):
            want = getattr(getattr(stats, dist), method)(*args)
            got = getattr(getattr(ours, dist), method)(tg.Tensor(args[0]), *args[1:])
        np.testing.assert_allclose(got.data, want, rtol=1e-12, err_msg=f"{dist}.{method}")
        params = [tg.Tensor(np.asarray(a, dtype=float)) for a in args]
        if np.all(np.isfinite(want)):
            assert tg.gradcheck(getattr(getattr(ours, dist), method), params), f"{dist}.{method}"
    k = np.array([0.0, 1.0, 3.0, 7.0])
    np.testing.assert_allclose(ours.poisson.logpmf(k, tg.Tensor(2.5)).data, stats.poisson.logpmf(k, 2.5),
                               rtol=1e-13)
    alpha = np.array([1.5, 2.0, 0.7])
    point = np.array([0.2, 0.5, 0.3])
    np.testing.assert_allclose(ours.dirichlet.logpdf(point, tg.Tensor(alpha)).data,
                               stats.dirichlet.logpdf(point, alpha), rtol=1e-13)
    assert tg.gradcheck(lambda a: ours.dirichlet.logpdf(point, a), [tg.Tensor(alpha)])


def test_scipy_functions_that_cannot_record_say_what_to_use():
    t = tg.Tensor(np.array([0.5, 1.5]))
    with pytest.raises(TypeError, match=r"use tapegrad\.scipy\.special\.logsumexp"):
        sp.logsumexp(t)
    with pytest.raises(TypeError, match=r"tapegrad\.scipy\.special\.polygamma"):
        sp.polygamma(1, t)
    stats = pytest.importorskip("scipy.stats")
    with pytest.raises(TypeError, match=r"tapegrad\.scipy\.stats"):
        stats.norm.logpdf(t)
    with pytest.raises(TypeError, match=r"tapegrad\.Function"):
        sp.comb(t, 2)


def test_multivariate_normal_against_scipy_and_finite_differences():
    stats = pytest.importorskip("scipy.stats")
    from tapegrad.scipy.stats import multivariate_normal

    rng = np.random.default_rng(5)
    a = rng.normal(size=(3, 3))
    cov = a @ a.T + np.eye(3)
    mean = rng.normal(size=3)
    for x in (rng.normal(size=(4, 3)), rng.normal(size=3), rng.normal(size=(2, 2, 3))):
        want = stats.multivariate_normal.logpdf(x, mean, cov)
        got = multivariate_normal.logpdf(tg.Tensor(x), tg.Tensor(mean), tg.Tensor(cov))
        np.testing.assert_allclose(got.data, want, rtol=1e-12)
        plain = multivariate_normal.pdf(x, mean, cov)  # no Tensor: plain values, recorded nowhere
        assert not isinstance(plain, tg.Tensor)
        np.testing.assert_allclose(plain, stats.multivariate_normal.pdf(x, mean, cov), rtol=1e-12)
    x = rng.normal(size=(4, 3))
    # cov's lower triangle is what is read (its Cholesky factor): finite differences agree
    assert tg.gradcheck(lambda u, m, c: multivariate_normal.logpdf(u, m, c),
                        [tg.Tensor(x), tg.Tensor(mean), tg.Tensor(cov)])
    assert tg.gradgradcheck(lambda u, m: multivariate_normal.logpdf(u, m, cov),
                            [tg.Tensor(x), tg.Tensor(mean)])
    np.testing.assert_allclose(multivariate_normal.logpdf(tg.Tensor(x[0]), cov=2.0).data,
                               stats.multivariate_normal.logpdf(x[0], cov=2.0), rtol=1e-12)
    with pytest.raises(ValueError, match="allow_singular=True is not supported"):
        multivariate_normal.logpdf(x, mean, cov, allow_singular=True)
