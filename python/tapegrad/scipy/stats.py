"""scipy.stats distributions on Tensors, as short compositions of recorded ops.

``norm`` (pdf, logpdf, cdf, logcdf, sf, logsf), ``t`` (pdf, logpdf), ``gamma``,
``beta`` and ``chi2`` (pdf, logpdf), ``poisson`` (pmf, logpmf), ``dirichlet`` and
``multivariate_normal`` (pdf, logpdf; through ``tapegrad.linalg.cholesky``), with
scipy's signatures (``loc`` and ``scale``, which may be Tensors too). These are the
ones HIPS autograd's ``autograd.scipy.stats`` differentiates, less those that need an
incomplete gamma or beta function (``t.cdf``, ``gamma.cdf``, ...).
Every argument is differentiated where it is a Tensor; outside the support a
log density is -inf, as scipy's.

Example:
    >>> import tapegrad as tg
    >>> from tapegrad.scipy.stats import norm
    >>> x = tg.Tensor(0.5)
    >>> round(norm.logpdf(x).data, 6)
    -1.043939
    >>> tg.compute_gradients(norm.logpdf(x), [x])[0]
    -0.5
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np

from .. import catalogue
from .._args import compared, shape_of
from ..array_ops import getitem, transpose
from ..linalg import cholesky
from .linalg import solve_triangular

_LOG_SQRT_2PI = 0.5 * np.log(2 * np.pi)


def _f(name: str) -> Any:
    return catalogue.IMPLEMENTATIONS[name]


def _where_inside(inside: Any, value: Any, outside: float) -> Any:
    """value where the constant mask holds, else `outside` (its gradient is 0 there)."""
    if np.all(inside):
        return value
    return _f("where")(inside, value, outside)


def _data(x: Any) -> Any:
    return getattr(x, "data", x)


# ---- norm ----

def _norm_logpdf(x: Any, loc: Any = 0.0, scale: Any = 1.0) -> Any:
    z = (x - loc) / scale
    return -0.5 * z * z - _LOG_SQRT_2PI - _f("log")(scale)


def _norm_pdf(x: Any, loc: Any = 0.0, scale: Any = 1.0) -> Any:
    return _f("exp")(_norm_logpdf(x, loc, scale))


def _norm_cdf(x: Any, loc: Any = 0.0, scale: Any = 1.0) -> Any:
    return _f("ndtr")((x - loc) / scale)


def _norm_logcdf(x: Any, loc: Any = 0.0, scale: Any = 1.0) -> Any:
    return _f("log_ndtr")((x - loc) / scale)


def _norm_sf(x: Any, loc: Any = 0.0, scale: Any = 1.0) -> Any:
    return _f("ndtr")((loc - x) / scale)


def _norm_logsf(x: Any, loc: Any = 0.0, scale: Any = 1.0) -> Any:
    return _f("log_ndtr")((loc - x) / scale)


norm = SimpleNamespace(logpdf=_norm_logpdf, pdf=_norm_pdf, cdf=_norm_cdf, logcdf=_norm_logcdf,
                       sf=_norm_sf, logsf=_norm_logsf)
"""The normal distribution: ``norm.logpdf(x, loc=0, scale=1)`` and the others, as scipy's."""


# ---- t ----

def _t_logpdf(x: Any, df: Any, loc: Any = 0.0, scale: Any = 1.0) -> Any:
    z = (x - loc) / scale
    half = (df + 1.0) * 0.5
    return (_f("gammaln")(half) - _f("gammaln")(df * 0.5) - 0.5 * _f("log")(df * np.pi)
            - _f("log")(scale) - half * _f("log1p")(z * z / df))


def _t_pdf(x: Any, df: Any, loc: Any = 0.0, scale: Any = 1.0) -> Any:
    return _f("exp")(_t_logpdf(x, df, loc, scale))


t = SimpleNamespace(logpdf=_t_logpdf, pdf=_t_pdf)
"""Student's t: ``t.logpdf(x, df, loc=0, scale=1)`` and ``t.pdf``."""


# ---- gamma, chi2, beta ----

def _gamma_logpdf(x: Any, a: Any, loc: Any = 0.0, scale: Any = 1.0) -> Any:
    z = (x - loc) / scale
    inside = compared(z, ">=", 0)  # a guard under compile
    safe = _where_inside(inside, z, 1.0)
    value = _f("xlogy")(a - 1.0, safe) - safe - _f("gammaln")(a) - _f("log")(scale)
    return _where_inside(inside, value, -np.inf)


def _chi2_logpdf(x: Any, df: Any, loc: Any = 0.0, scale: Any = 1.0) -> Any:
    return _gamma_logpdf(x, df * 0.5, loc, scale * 2.0)


def _beta_logpdf(x: Any, a: Any, b: Any, loc: Any = 0.0, scale: Any = 1.0) -> Any:
    z = (x - loc) / scale
    inside = compared(z, ">=", 0) & compared(z, "<=", 1)
    safe = _where_inside(inside, z, 0.5)
    density = (_f("xlogy")(a - 1.0, safe) + _f("xlog1py")(b - 1.0, -safe) - _f("betaln")(a, b)
               - _f("log")(scale))
    return _where_inside(inside, density, -np.inf)


def _gamma_pdf(x: Any, a: Any, loc: Any = 0.0, scale: Any = 1.0) -> Any:
    return _f("exp")(_gamma_logpdf(x, a, loc, scale))


def _chi2_pdf(x: Any, df: Any, loc: Any = 0.0, scale: Any = 1.0) -> Any:
    return _f("exp")(_chi2_logpdf(x, df, loc, scale))


def _beta_pdf(x: Any, a: Any, b: Any, loc: Any = 0.0, scale: Any = 1.0) -> Any:
    return _f("exp")(_beta_logpdf(x, a, b, loc, scale))


gamma = SimpleNamespace(logpdf=_gamma_logpdf, pdf=_gamma_pdf)
"""The gamma distribution: ``gamma.logpdf(x, a, loc=0, scale=1)`` and ``gamma.pdf``."""
chi2 = SimpleNamespace(logpdf=_chi2_logpdf, pdf=_chi2_pdf)
"""The chi-squared distribution: ``chi2.logpdf(x, df, loc=0, scale=1)`` and ``chi2.pdf``."""
beta = SimpleNamespace(logpdf=_beta_logpdf, pdf=_beta_pdf)
"""The beta distribution: ``beta.logpdf(x, a, b, loc=0, scale=1)`` and ``beta.pdf``."""


# ---- poisson, dirichlet ----

def _poisson_logpmf(k: Any, mu: Any, loc: Any = 0.0) -> Any:
    """k is a count (a constant); mu is differentiated."""
    # k's values make constants of the record (a Tensor k raises under compile).
    k = np.asarray(_data(k), dtype=float) - np.asarray(_data(loc), dtype=float)
    inside = (k >= 0) & (k == np.floor(k))
    safe = np.where(inside, k, 0.0)
    value = _f("xlogy")(safe, mu) - mu - _f("gammaln")(safe + 1)
    return _where_inside(inside, value, -np.inf)


def _poisson_pmf(k: Any, mu: Any, loc: Any = 0.0) -> Any:
    return _f("exp")(_poisson_logpmf(k, mu, loc))


poisson = SimpleNamespace(logpmf=_poisson_logpmf, pmf=_poisson_pmf)
"""The Poisson distribution: ``poisson.logpmf(k, mu, loc=0)`` and ``pmf`` (k not differentiated)."""


def _dirichlet_logpdf(x: Any, alpha: Any) -> Any:
    """x: points of the simplex (its last axis as long as alpha); alpha: concentrations (1-D)."""
    total = _f("sum")(alpha)
    return (_f("sum")(_f("xlogy")(alpha - 1.0, x), axis=-1) + _f("gammaln")(total)
            - _f("sum")(_f("gammaln")(alpha)))


def _dirichlet_pdf(x: Any, alpha: Any) -> Any:
    return _f("exp")(_dirichlet_logpdf(x, alpha))


dirichlet = SimpleNamespace(logpdf=_dirichlet_logpdf, pdf=_dirichlet_pdf)
"""The Dirichlet distribution: ``dirichlet.logpdf(x, alpha)`` and ``dirichlet.pdf``."""

# ---- multivariate_normal ----

def _multivariate_normal_logpdf(x: Any, mean: Any = None, cov: Any = 1.0,
                                allow_singular: bool = False) -> Any:
    """x: points (..., d) (or one, (d,)); mean (d,); cov (d, d) symmetric positive definite,
    of which the lower triangle is read (its Cholesky factor L): the log density
    -(d log(2 pi) + log det(cov) + |L^-1 (x - mean)|^2) / 2, every argument differentiated."""
    if allow_singular:
        raise ValueError("multivariate_normal.logpdf: allow_singular=True is not supported; "
                         "cov must be positive definite (its Cholesky factor is used)")
    # The dimension as scipy infers it: from mean, else from cov, else 1; for d = 1, a 1-D
    # (or 0-d) x is a list of points.
    d = (int(np.prod(shape_of(mean))) if mean is not None
         else shape_of(cov)[0] if len(shape_of(cov)) == 2 else 1)
    if d == 1 and len(shape_of(x)) <= 1:
        x = _f("reshape")(x, (-1, 1))
    if len(shape_of(cov)) < 2:
        cov = cov * np.eye(d)
    diff = x - (0.0 if mean is None else mean)
    lower = cholesky(cov)
    points = _f("reshape")(diff, (-1, d))  # one row per point
    z = solve_triangular(lower, transpose(points), lower=True)
    distance = _f("sum")(z * z, axis=0)
    shape = shape_of(diff)[:-1]  # one value per point, squeezed as scipy's
    distance = _f("reshape")(distance, tuple(n for n in shape if n != 1))
    index = np.arange(d)
    log_det = 2.0 * _f("sum")(_f("log")(getitem(lower, (index, index))))
    return -0.5 * (d * np.log(2 * np.pi) + log_det + distance)


def _multivariate_normal_pdf(x: Any, mean: Any = None, cov: Any = 1.0,
                             allow_singular: bool = False) -> Any:
    return _f("exp")(_multivariate_normal_logpdf(x, mean, cov, allow_singular))


multivariate_normal = SimpleNamespace(logpdf=_multivariate_normal_logpdf,
                                      pdf=_multivariate_normal_pdf)
"""The multivariate normal: ``multivariate_normal.logpdf(x, mean=None, cov=1)`` and ``pdf``
(through the Cholesky factor of cov, which must be positive definite)."""

__all__ = ["beta", "chi2", "dirichlet", "gamma", "multivariate_normal", "norm", "poisson", "t"]
