"""Every op with its closed-form derivative and a domain to test it on.

Unary: name -> (numpy forward, derivative f'(a), (low, high)).
Binary: name -> (numpy forward, (df/da, df/db), (low, high) for a, (low, high) for b).
TORCH: an elementwise op's PyTorch counterpart (a dotted name in torch, or a composition
of torch's ops where it has none), or None.
The scipy.special forwards and derivatives import scipy when called, and skip the
test where it is not installed.
"""

import importlib

import numpy as np
import pytest


def _sp(name):
    """scipy.special's function `name`, imported when the test calls it (skips without scipy)."""
    def call(*args):
        return getattr(pytest.importorskip("scipy.special"), name)(*args)
    return call

UNARY = {
    "negative": (np.negative, lambda a: -np.ones_like(a), (-2, 2)),
    "abs": (np.abs, np.sign, (-2, 2)),
    "exp": (np.exp, np.exp, (-2, 2)),
    "log": (np.log, lambda a: 1 / a, (0.2, 3)),
    "sqrt": (np.sqrt, lambda a: 0.5 / np.sqrt(a), (0.2, 3)),
    "sin": (np.sin, np.cos, (-3, 3)),
    "cos": (np.cos, lambda a: -np.sin(a), (-3, 3)),
    "tan": (np.tan, lambda a: 1 / np.cos(a) ** 2, (-1.2, 1.2)),
    "tanh": (np.tanh, lambda a: 1 - np.tanh(a) ** 2, (-2, 2)),
    "sigmoid": (
        lambda a: 1 / (1 + np.exp(-a)),
        lambda a: np.exp(-a) / (1 + np.exp(-a)) ** 2,
        (-4, 4),
    ),
    "relu": (lambda a: np.maximum(a, 0), lambda a: (a > 0).astype(float), (-2, 2)),
    "fabs": (np.fabs, np.sign, (-2, 2)),
    "exp2": (np.exp2, lambda a: np.exp2(a) * np.log(2), (-2, 2)),
    "expm1": (np.expm1, np.exp, (-2, 2)),
    "log2": (np.log2, lambda a: 1 / (a * np.log(2)), (0.2, 3)),
    "log10": (np.log10, lambda a: 1 / (a * np.log(10)), (0.2, 3)),
    "log1p": (np.log1p, lambda a: 1 / (1 + a), (-0.5, 2)),
    "cbrt": (np.cbrt, lambda a: np.cbrt(a) ** -2 / 3, (0.3, 3)),
    "square": (np.square, lambda a: 2 * a, (-2, 2)),
    "reciprocal": (np.reciprocal, lambda a: -1 / a**2, (0.5, 2)),
    "arcsin": (np.arcsin, lambda a: 1 / np.sqrt(1 - a**2), (-0.9, 0.9)),
    "arccos": (np.arccos, lambda a: -1 / np.sqrt(1 - a**2), (-0.9, 0.9)),
    "arctan": (np.arctan, lambda a: 1 / (1 + a**2), (-2, 2)),
    "sinh": (np.sinh, np.cosh, (-2, 2)),
    "cosh": (np.cosh, np.sinh, (-2, 2)),
    "arcsinh": (np.arcsinh, lambda a: 1 / np.sqrt(a**2 + 1), (-2, 2)),
    "arccosh": (np.arccosh, lambda a: 1 / np.sqrt(a**2 - 1), (1.2, 3)),
    "arctanh": (np.arctanh, lambda a: 1 / (1 - a**2), (-0.9, 0.9)),
    "deg2rad": (np.deg2rad, lambda a: np.full_like(a, np.pi / 180), (-3, 3)),
    "rad2deg": (np.rad2deg, lambda a: np.full_like(a, 180 / np.pi), (-3, 3)),
    "sinc": (np.sinc, lambda a: (np.cos(np.pi * a) - np.sinc(a)) / a, (-2, 2)),
    # scipy.special
    "erf": (_sp("erf"), lambda a: 2 / np.sqrt(np.pi) * np.exp(-a**2), (-2, 2)),
    "erfc": (_sp("erfc"), lambda a: -2 / np.sqrt(np.pi) * np.exp(-a**2), (-2, 2)),
    "erfinv": (_sp("erfinv"), lambda a: np.sqrt(np.pi) / 2 * np.exp(_sp("erfinv")(a) ** 2), (-0.9, 0.9)),
    "erfcinv": (_sp("erfcinv"), lambda a: -np.sqrt(np.pi) / 2 * np.exp(_sp("erfcinv")(a) ** 2), (0.1, 1.9)),
    "gamma": (_sp("gamma"), lambda a: _sp("gamma")(a) * _sp("digamma")(a), (0.5, 3)),
    "gammaln": (_sp("gammaln"), _sp("digamma"), (0.5, 4)),
    "digamma": (_sp("digamma"), lambda a: _sp("polygamma")(1, a), (0.5, 4)),
    "rgamma": (_sp("rgamma"), lambda a: -_sp("digamma")(a) * _sp("rgamma")(a), (-2.5, 3)),
    "logit": (_sp("logit"), lambda a: 1 / (a * (1 - a)), (0.1, 0.9)),
    "ndtr": (_sp("ndtr"), lambda a: np.exp(-a**2 / 2) / np.sqrt(2 * np.pi), (-3, 3)),
    "log_ndtr": (_sp("log_ndtr"), lambda a: np.exp(-a**2 / 2) / np.sqrt(2 * np.pi) / _sp("ndtr")(a),
                 (-5, 3)),
    "ndtri": (_sp("ndtri"), lambda a: np.sqrt(2 * np.pi) * np.exp(_sp("ndtri")(a) ** 2 / 2), (0.05, 0.95)),
    "i0": (_sp("i0"), _sp("i1"), (-3, 3)),
    "i1": (_sp("i1"), lambda a: _sp("i0")(a) - _sp("i1")(a) / a, (-3, 3)),
}

BINARY = {
    "add": (np.add, (lambda a, b: np.ones_like(a * b), lambda a, b: np.ones_like(a * b)),
            (-2, 2), (-2, 2)),
    "subtract": (np.subtract, (lambda a, b: np.ones_like(a * b), lambda a, b: -np.ones_like(a * b)),
                 (-2, 2), (-2, 2)),
    "multiply": (np.multiply, (lambda a, b: b + 0 * a, lambda a, b: a + 0 * b), (-2, 2), (-2, 2)),
    "divide": (np.divide, (lambda a, b: 1 / b + 0 * a, lambda a, b: -a / b**2), (-2, 2), (0.5, 2)),
    "power": (np.power, (lambda a, b: b * a ** (b - 1), lambda a, b: a**b * np.log(a)),
              (0.3, 2), (-2, 2)),
    "float_power": (np.float_power, (lambda a, b: b * a ** (b - 1), lambda a, b: a**b * np.log(a)),
                    (0.3, 2), (-2, 2)),
    "fmax": (np.fmax, (lambda a, b: (a >= b) + 0.0, lambda a, b: (a < b) + 0.0), (-2, 2), (-2, 2)),
    "fmin": (np.fmin, (lambda a, b: (a <= b) + 0.0, lambda a, b: (a > b) + 0.0), (-2, 2), (-2, 2)),
    "logaddexp": (np.logaddexp, (lambda a, b: 1 / (1 + np.exp(b - a)), lambda a, b: 1 / (1 + np.exp(a - b))),
                  (-2, 2), (-2, 2)),
    "logaddexp2": (np.logaddexp2, (lambda a, b: 1 / (1 + 2 ** (b - a)), lambda a, b: 1 / (1 + 2 ** (a - b))),
                   (-2, 2), (-2, 2)),
    "arctan2": (np.arctan2, (lambda a, b: b / (a**2 + b**2), lambda a, b: -a / (a**2 + b**2)),
                (-2, 2), (0.3, 2)),
    "hypot": (np.hypot, (lambda a, b: a / np.hypot(a, b), lambda a, b: b / np.hypot(a, b)), (-2, 2), (-2, 2)),
    "remainder": (np.remainder, (lambda a, b: np.ones_like(a * b), lambda a, b: -np.floor(a / b)),
                  (-3, 3), (0.7, 2)),
    "fmod": (np.fmod, (lambda a, b: np.ones_like(a * b), lambda a, b: -np.trunc(a / b)), (-3, 3), (0.7, 2)),
    "copysign": (np.copysign, (lambda a, b: np.sign(a) * np.sign(b), lambda a, b: np.zeros_like(a * b)),
                 (-2, 2), (-2, 2)),
    # scipy.special
    "beta": (_sp("beta"), (lambda a, b: _sp("beta")(a, b) * (_sp("digamma")(a) - _sp("digamma")(a + b)),
                           lambda a, b: _sp("beta")(a, b) * (_sp("digamma")(b) - _sp("digamma")(a + b))),
             (0.5, 3), (0.5, 3)),
    "betaln": (_sp("betaln"), (lambda a, b: _sp("digamma")(a) - _sp("digamma")(a + b),
                               lambda a, b: _sp("digamma")(b) - _sp("digamma")(a + b)), (0.5, 3), (0.5, 3)),
    "xlogy": (_sp("xlogy"), (lambda a, b: np.log(b) + 0 * a, lambda a, b: a / b), (-2, 2), (0.2, 3)),
    "xlog1py": (_sp("xlog1py"), (lambda a, b: np.log1p(b) + 0 * a, lambda a, b: a / (1 + b)),
                (-2, 2), (-0.5, 2)),
}

TORCH = {
    "negative": "neg", "abs": "abs", "exp": "exp", "log": "log", "sqrt": "sqrt", "sin": "sin",
    "cos": "cos", "tan": "tan", "tanh": "tanh", "sigmoid": "sigmoid", "relu": "relu", "add": "add",
    "subtract": "sub", "multiply": "mul", "divide": "div", "power": "pow", "maximum": "maximum",
    "minimum": "minimum", "fabs": "abs", "exp2": "exp2", "expm1": "expm1", "log2": "log2",
    "log10": "log10", "log1p": "log1p", "square": "square",
    "reciprocal": "reciprocal", "arcsin": "arcsin", "arccos": "arccos", "arctan": "arctan",
    "sinh": "sinh", "cosh": "cosh", "arcsinh": "arcsinh", "arccosh": "arccosh",
    "arctanh": "arctanh", "deg2rad": "deg2rad", "rad2deg": "rad2deg", "sinc": "sinc",
    "float_power": "float_power", "fmax": "fmax", "fmin": "fmin", "logaddexp": "logaddexp",
    "logaddexp2": "logaddexp2", "arctan2": "arctan2", "hypot": "hypot", "remainder": "remainder",
    "fmod": "fmod", "copysign": "copysign", "erf": "special.erf", "erfc": "special.erfc",
    "erfinv": "special.erfinv", "gammaln": "special.gammaln",
    "digamma": "special.digamma", "logit": "special.logit", "ndtr": "special.ndtr",
    "log_ndtr": "special.log_ndtr", "ndtri": "special.ndtri", "i0": "special.i0",
    "i1": "special.i1", "xlogy": "special.xlogy", "xlog1py": "special.xlog1py",
    # 1/gamma(x) = sin(pi x) gamma(1 - x) / pi (reflection) where x < 1
    "rgamma": lambda torch: lambda x: torch.where(
        x < 1, torch.sin(np.pi * x) * torch.special.gammaln(1 - x).exp() / np.pi,
        (-torch.special.gammaln(x)).exp()),
    # torch lacks these: compositions of its ops on each op's domain in UNARY/BINARY
    "cbrt": lambda torch: lambda x: x.pow(1 / 3),
    "erfcinv": lambda torch: lambda x: torch.special.erfinv(1 - x),
    "gamma": lambda torch: lambda x: torch.special.gammaln(x).exp(),
    "beta": lambda torch: lambda a, b: (torch.special.gammaln(a) + torch.special.gammaln(b)
                                        - torch.special.gammaln(a + b)).exp(),
    "betaln": lambda torch: lambda a, b: (torch.special.gammaln(a) + torch.special.gammaln(b)
                                          - torch.special.gammaln(a + b)),
}

# Where PyTorch is the less accurate: its trigamma (digamma's derivative, gammaln's
# second) is off by up to 5e-10 relative (against mpmath; tapegrad's matches scipy's
# and mpmath's to 1e-15, tests/test_special.py).
TORCH_RTOL = {"digamma": 2e-9, "gammaln": 2e-9, "gamma": 2e-9, "beta": 2e-9, "betaln": 2e-9,
              "rgamma": 2e-9}


def torch_op(torch, name):
    """PyTorch's function for elementwise op `name`, or None where it has none."""
    path = TORCH[name]
    if path is None:
        return None
    if callable(path):
        return path(torch)
    target = torch
    for part in path.split("."):
        target = getattr(target, part)
    return target

# Elementwise ops whose derivative is not smooth everywhere: checked at points away from ties.
TIES = {"maximum", "minimum"}
# Elementwise ops with kinks or jumps inside their test domain (finite differences may cross one).
KINKS = {"abs", "relu", "maximum", "minimum", "fabs", "fmax", "fmin", "copysign", "remainder", "fmod"}


class Sample:
    """How to call a non-elementwise op on inputs of given shapes.

    ``call(xs)`` gives ``(args, kwargs)`` for the op's function (and its numpy
    callable); the method, if any, takes ``args[0]`` as self. ``torch(*ts)`` is
    PyTorch's value for the same call, or None where torch has no such op.
    """

    def __init__(self, shapes, call, torch=None, low=-2.0, high=2.0, smooth=True,
                 needs_scipy=False):
        self.shapes, self.torch, self.low, self.high = shapes, torch, low, high
        self.smooth = smooth  # False: kinks (ties, bounds) where finite differences may land
        self.needs_scipy = needs_scipy  # its values come from scipy: skipped without it
        self.call = _skipping_without_scipy(call) if needs_scipy else call

    @property
    def available(self):
        """Whether the op can run here (scipy installed, where it needs it)."""
        if not self.needs_scipy:
            return True
        try:
            importlib.import_module("scipy.special")
        except ImportError:
            return False
        return True


def _skipping_without_scipy(call):
    def with_scipy(xs):
        pytest.importorskip("scipy.special")
        return call(xs)
    return with_scipy


def _torch_convolve(a, v, mode="full"):
    """numpy's and scipy's convolve in PyTorch: a correlation with the kernel flipped."""
    import torch

    dims = list(range(v.ndim))
    conv = {1: torch.nn.functional.conv1d, 2: torch.nn.functional.conv2d}[a.ndim]
    full = conv(a[None, None], v.flip(dims)[None, None], padding=[n - 1 for n in v.shape])[0, 0]
    if mode == "full":
        return full
    lengths = ([max(n, m) for n, m in zip(a.shape, v.shape)] if mode == "same1d" else
               list(a.shape) if mode == "same" else
               [abs(n - m) + 1 for n, m in zip(a.shape, v.shape)])
    for axis, (n, m) in enumerate(zip(full.shape, lengths)):
        full = full.narrow(axis, (n - m) // 2, m)
    return full


_TAKE = np.array([[0, 2], [3, 3]])  # an index taken twice: its gradients add up
_ALONG = np.array([[1, 1], [0, 3], [2, 0]])
_LOW = np.arange(12).reshape(3, 4) < 6


def _where_condition(shape):
    return (np.arange(np.prod(shape)).reshape(shape) % 3) != 0


ARRAY = {
    "sum": Sample([(3, 4)], lambda x: ((x[0],), {"axis": 0}), lambda t: t.sum(0)),
    "mean": Sample([(3, 4)], lambda x: ((x[0],), {"axis": 1, "keepdims": True}),
                   lambda t: t.mean(1, keepdim=True)),
    "max": Sample([(3, 4)], lambda x: ((x[0],), {"axis": 1}), lambda t: t.amax(1), smooth=False),
    "min": Sample([(3, 4)], lambda x: ((x[0],), {"axis": 0}), lambda t: t.amin(0), smooth=False),
    "prod": Sample([(3, 4)], lambda x: ((x[0],), {"axis": 1}), lambda t: t.prod(1)),
    "var": Sample([(3, 4)], lambda x: ((x[0],), {"axis": 0, "ddof": 1}), lambda t: t.var(0, correction=1)),
    "std": Sample([(3, 4)], lambda x: ((x[0],), {"axis": 1}), lambda t: t.std(1, correction=0)),
    "logsumexp": Sample([(3, 4)], lambda x: ((x[0],), {"axis": 1}), lambda t: t.logsumexp(1)),
    "softmax": Sample([(3, 4)], lambda x: ((x[0],), {"axis": 0}), lambda t: t.softmax(0)),
    "log_softmax": Sample([(3, 4)], lambda x: ((x[0],), {}), lambda t: t.log_softmax(-1)),
    "matmul": Sample([(3, 4), (4, 2)], lambda x: ((x[0], x[1]), {}), lambda a, b: a @ b),
    "einsum": Sample([(3, 4), (4, 2)], lambda x: (("ij,jk->ik", x[0], x[1]), {}),
                     lambda a, b: __import__("torch").einsum("ij,jk->ik", a, b)),
    "dot": Sample([(3, 4), (4,)], lambda x: ((x[0], x[1]), {}), lambda a, b: a @ b),
    "outer": Sample([(3,), (4,)], lambda x: ((x[0], x[1]), {}), lambda a, b: a.outer(b)),
    "vdot": Sample([(2, 3), (6,)], lambda x: ((x[0], x[1]), {}),
                   lambda a, b: __import__("torch").vdot(a.flatten(), b)),
    "inner": Sample([(2, 3, 4), (5, 4)], lambda x: ((x[0], x[1]), {}),
                    lambda a, b: __import__("torch").inner(a, b)),
    "tensordot": Sample([(2, 3, 4), (4, 3, 5)], lambda x: ((x[0], x[1]), {"axes": ([1, 2], [1, 0])}),
                        lambda a, b: __import__("torch").tensordot(a, b, dims=([1, 2], [1, 0]))),
    "kron": Sample([(2, 3), (3, 2)], lambda x: ((x[0], x[1]), {}),
                   lambda a, b: __import__("torch").kron(a, b)),
    "cross": Sample([(4, 3), (3,)], lambda x: ((x[0], x[1]), {}),
                    lambda a, b: __import__("torch").linalg.cross(a, b.expand(4, 3))),
    "convolve": Sample([(7,), (3,)], lambda x: ((x[0], x[1]), {"mode": "same"}),
                       lambda a, v: _torch_convolve(a, v, "same1d")),
    "scipy.signal.convolve": Sample([(5, 4), (2, 3)], lambda x: ((x[0], x[1]), {}),
                                    lambda a, v: _torch_convolve(a, v)),
    "reshape": Sample([(3, 4)], lambda x: ((x[0], (2, 6)), {}), lambda t: t.reshape(2, 6)),
    "transpose": Sample([(2, 3, 4)], lambda x: ((x[0], (1, 2, 0)), {}), lambda t: t.permute(1, 2, 0)),
    "swapaxes": Sample([(2, 3, 4)], lambda x: ((x[0], 0, 2), {}), lambda t: t.transpose(0, 2)),
    "expand_dims": Sample([(3, 4)], lambda x: ((x[0], 1), {}), lambda t: t.unsqueeze(1)),
    "squeeze": Sample([(3, 1, 4)], lambda x: ((x[0],), {}), lambda t: t.squeeze()),
    "flatten": Sample([(3, 4)], lambda x: ((x[0],), {}), lambda t: t.flatten()),
    "astype": Sample([(3, 4)], lambda x: ((x[0], np.float64), {}), lambda t: t.double()),
    "broadcast_to": Sample([(1, 4)], lambda x: ((x[0], (3, 4)), {}), lambda t: t.expand(3, 4)),
    "concatenate": Sample([(2, 4), (3, 4)], lambda x: (([x[0], x[1]],), {"axis": 0}),
                          lambda a, b: __import__("torch").cat([a, b], 0)),
    "stack": Sample([(3, 4), (3, 4)], lambda x: (([x[0], x[1]],), {"axis": 1}),
                    lambda a, b: __import__("torch").stack([a, b], 1)),
    "split": Sample([(4, 3)], lambda x: ((x[0], 2), {}), lambda t: t.split(2)),
    "where": Sample([(3, 4), (3, 4)], lambda x: ((_where_condition((3, 4)), x[0], x[1]), {}),
                    lambda a, b: __import__("torch").where(
                        __import__("torch").from_numpy(_where_condition((3, 4))), a, b)),
    "clip": Sample([(3, 4)], lambda x: ((x[0], -0.5, 0.7), {}), lambda t: t.clamp(-0.5, 0.7),
                   smooth=False),
    "polygamma": Sample([(3, 4)], lambda x: ((2, x[0]), {}),
                        lambda t: __import__("torch").polygamma(2, t), low=0.5, high=3.0),
    "ive": Sample([(3, 4)], lambda x: ((1.5, x[0]), {}), low=0.1, high=3.0, needs_scipy=True),
    # tapegrad.scipy.special: scipy's signatures and defaults (axis=None: every element)
    "scipy.special.logsumexp": Sample([(3, 4), (3, 4)], lambda x: ((x[0],), {"axis": 1, "b": x[1]}),
                                      lambda a, b: (a + b.log()).logsumexp(1), low=0.2, high=2.0),
    "scipy.special.softmax": Sample([(3, 4)], lambda x: ((x[0],), {}),
                                    lambda t: t.reshape(-1).softmax(0).reshape(3, 4)),
    "scipy.special.log_softmax": Sample([(3, 4)], lambda x: ((x[0],), {"axis": 0}),
                                        lambda t: t.log_softmax(0)),
    # reductions and scans (python/tapegrad/reductions.py)
    "cumsum": Sample([(3, 4)], lambda x: ((x[0],), {"axis": 1}), lambda t: t.cumsum(1)),
    "cumprod": Sample([(3, 4)], lambda x: ((x[0],), {"axis": 0}), lambda t: t.cumprod(0)),
    "diff": Sample([(3, 5)], lambda x: ((x[0],), {"n": 2, "axis": 1}),
                   lambda t: __import__("torch").diff(t, n=2, dim=1)),
    "trace": Sample([(4, 4)], lambda x: ((x[0],), {}), lambda t: t.trace()),
    "ptp": Sample([(3, 4)], lambda x: ((x[0],), {"axis": 1}), lambda t: t.amax(1) - t.amin(1),
                  smooth=False),
    "average": Sample([(3, 4), (4,)], lambda x: ((x[0],), {"axis": 1, "weights": x[1]}),
                      lambda a, w: (a * w).sum(1) / w.sum(), low=0.5, high=2.0),
    "nansum": Sample([(3, 4)], lambda x: ((x[0],), {"axis": 0}), lambda t: t.nansum(0)),
    "nanmean": Sample([(3, 4)], lambda x: ((x[0],), {"axis": 1}), lambda t: t.nanmean(1)),
    "amax": Sample([(3, 4)], lambda x: ((x[0],), {"axis": 1}), lambda t: t.amax(1), smooth=False),
    "amin": Sample([(3, 4)], lambda x: ((x[0],), {"axis": 0}), lambda t: t.amin(0), smooth=False),
    # shapes (python/tapegrad/shapes.py)
    "ravel": Sample([(3, 4)], lambda x: ((x[0],), {}), lambda t: t.reshape(-1)),
    "moveaxis": Sample([(2, 3, 4)], lambda x: ((x[0], 0, -1), {}), lambda t: t.movedim(0, -1)),
    "rollaxis": Sample([(2, 3, 4)], lambda x: ((x[0], 2), {}), lambda t: t.permute(2, 0, 1)),
    "atleast_1d": Sample([()], lambda x: ((x[0],), {}), lambda t: _torch().atleast_1d(t)),
    "atleast_2d": Sample([(3,)], lambda x: ((x[0],), {}), lambda t: _torch().atleast_2d(t)),
    "atleast_3d": Sample([(3,)], lambda x: ((x[0],), {}), lambda t: _torch().atleast_3d(t)),
    "hstack": Sample([(2, 3), (2, 2)], lambda x: (([x[0], x[1]],), {}),
                     lambda a, b: _torch().hstack([a, b])),
    "vstack": Sample([(3,), (2, 3)], lambda x: (([x[0], x[1]],), {}),
                     lambda a, b: _torch().vstack([a, b])),
    "dstack": Sample([(2, 3), (2, 3)], lambda x: (([x[0], x[1]],), {}),
                     lambda a, b: _torch().dstack([a, b])),
    "column_stack": Sample([(3,), (3, 2)], lambda x: (([x[0], x[1]],), {}),
                           lambda a, b: _torch().column_stack([a, b])),
    "append": Sample([(2, 3), (1, 3)], lambda x: ((x[0], x[1]), {"axis": 0}),
                     lambda a, b: _torch().cat([a, b], 0)),
    "array": Sample([(3,), (3,)], lambda x: (([x[0], x[1]],), {}),
                    lambda a, b: _torch().stack([a, b])),
    # pieces of different shapes: joined flat, as one_value joins ours
    "array_split": Sample([(5, 3)], lambda x: ((x[0], 3), {}),
                          lambda t: _torch().cat([p.reshape(-1) for p in t.tensor_split(3)])),
    "hsplit": Sample([(2, 4)], lambda x: ((x[0], 2), {}), lambda t: _torch().hsplit(t, 2)),
    "vsplit": Sample([(4, 2)], lambda x: ((x[0], [1, 3]), {}),
                     lambda t: _torch().cat([p.reshape(-1) for p in _torch().vsplit(t, [1, 3])])),
    "dsplit": Sample([(2, 2, 4)], lambda x: ((x[0], 2), {}), lambda t: _torch().dsplit(t, 2)),
    "repeat": Sample([(2, 3)], lambda x: ((x[0], 2), {"axis": 1}),
                     lambda t: t.repeat_interleave(2, dim=1)),
    "tile": Sample([(2, 3)], lambda x: ((x[0], (2, 1, 2)), {}), lambda t: t.tile((2, 1, 2))),
    "roll": Sample([(3, 4)], lambda x: ((x[0], (1, -2)), {"axis": (0, 1)}),
                   lambda t: t.roll((1, -2), (0, 1))),
    "rot90": Sample([(3, 4)], lambda x: ((x[0],), {}), lambda t: t.rot90(1, (0, 1))),
    "flip": Sample([(3, 4)], lambda x: ((x[0],), {"axis": 1}), lambda t: t.flip((1,))),
    "fliplr": Sample([(3, 4)], lambda x: ((x[0],), {}), lambda t: t.fliplr()),
    "flipud": Sample([(3, 4)], lambda x: ((x[0],), {}), lambda t: t.flipud()),
    "pad": Sample([(3, 4)], lambda x: ((x[0], ((1, 2), (0, 1))), {"constant_values": 0.5}),
                  lambda t: _torch().nn.functional.pad(t, (0, 1, 1, 2), value=0.5)),
    "diag": Sample([(4,)], lambda x: ((x[0],), {"k": 1}), lambda t: _torch().diag(t, 1)),
    "diagonal": Sample([(3, 4)], lambda x: ((x[0],), {"offset": 1}), lambda t: t.diagonal(1)),
    "tril": Sample([(3, 4)], lambda x: ((x[0],), {"k": -1}), lambda t: t.tril(-1)),
    "triu": Sample([(3, 4)], lambda x: ((x[0],), {"k": 1}), lambda t: t.triu(1)),
    # indexing (python/tapegrad/indexing.py)
    "sort": Sample([(3, 4)], lambda x: ((x[0],), {"axis": 0}), lambda t: t.sort(0).values,
                   smooth=False),
    "partition": Sample([(3, 5)], lambda x: ((x[0], 2), {}), smooth=False),
    "take": Sample([(3, 4)], lambda x: ((x[0], _TAKE), {"axis": 1}),
                   lambda t: t[:, _torch().from_numpy(_TAKE)]),
    "take_along_axis": Sample([(3, 4)], lambda x: ((x[0], _ALONG), {"axis": 1}),
                              lambda t: t.take_along_dim(_torch().from_numpy(_ALONG), 1)),
    "select": Sample([(3, 4), (3, 4)],
                     lambda x: (([_where_condition((3, 4)), ~_where_condition((3, 4)) & _LOW],
                                 [x[0], x[1]]), {"default": 0.5}),
                     lambda a, b: _torch().where(
                         _torch().from_numpy(_where_condition((3, 4))), a,
                         _torch().where(_torch().from_numpy(~_where_condition((3, 4)) & _LOW), b,
                                        0.5))),
    "nan_to_num": Sample([(3, 4)], lambda x: ((x[0],), {}), lambda t: t.nan_to_num()),
}


def one_value(out, stack, concatenate):
    """An op's result as one array: a list (split's) stacked, or joined flat when its
    pieces differ in shape (array_split's); a tuple of factors (eigh's, svd's, qr's,
    slogdet's) joined flat, leaving out the plain values among them (slogdet's sign,
    a constant)."""
    if isinstance(out, list):
        if len({tuple(p.shape) for p in out}) > 1:
            return concatenate([p.reshape(-1) for p in out])
        return stack(out)
    if isinstance(out, tuple):
        return concatenate([p.reshape(-1) for p in out if not isinstance(p, (np.ndarray, np.generic))])
    return out


# ---- linear algebra (python/tapegrad/linalg.py, python/tapegrad/scipy/linalg.py) ----
# The calls make the matrices well conditioned (+ 3 I), symmetric or positive
# definite where the function needs it; the constants take the operand's dtype.


def _torch():
    import torch
    return torch


def _eye(x, scale=3.0):
    """scale * I of x's size, in x's dtype (a Tensor's, an ndarray's or a torch tensor's)."""
    n = x.shape[-1]
    if type(x).__module__.startswith("torch"):
        return _torch().eye(n, dtype=x.dtype) * scale
    return np.eye(n, dtype=x.dtype) * scale


def _sym(x):
    return (x + x.T) * 0.5


def _spd(x):
    return x @ x.T + _eye(x)


ARRAY.update({
    "linalg.inv": Sample([(3, 3)], lambda x: ((x[0] + _eye(x[0]),), {}),
                         lambda t: _torch().linalg.inv(t + _eye(t))),
    "linalg.solve": Sample([(3, 3), (3, 2)], lambda x: ((x[0] + _eye(x[0]), x[1]), {}),
                           lambda a, b: _torch().linalg.solve(a + _eye(a), b)),
    "linalg.det": Sample([(3, 3)], lambda x: ((x[0],), {}), lambda t: _torch().linalg.det(t)),
    # A tuple (sign, logabsdet); the sign is a constant.
    "linalg.slogdet": Sample([(3, 3)], lambda x: ((x[0] + _eye(x[0]),), {})),
    "linalg.cholesky": Sample([(3, 3)], lambda x: ((_spd(x[0]),), {}),
                              lambda t: _torch().linalg.cholesky(_spd(t))),
    # Eigenvectors are defined up to sign: checked against torch in tests/test_linalg.py.
    "linalg.eigh": Sample([(3, 3)], lambda x: ((_sym(x[0]),), {})),
    "linalg.eigvalsh": Sample([(3, 3)], lambda x: ((_sym(x[0]),), {}),
                              lambda t: _torch().linalg.eigvalsh(_sym(t))),
    "linalg.svd": Sample([(4, 3)], lambda x: ((x[0],), {"compute_uv": False}),
                         lambda t: _torch().linalg.svdvals(t)),
    "linalg.qr": Sample([(4, 3)], lambda x: ((x[0],), {"mode": "r"}),
                        lambda t: _torch().linalg.qr(t)[1]),
    "linalg.pinv": Sample([(4, 3)], lambda x: ((x[0],), {}), lambda t: _torch().linalg.pinv(t)),
    "linalg.matrix_power": Sample([(3, 3)], lambda x: ((x[0], 3), {}),
                                  lambda t: _torch().linalg.matrix_power(t, 3)),
    "linalg.norm": Sample([(3, 4)], lambda x: ((x[0],), {"ord": "nuc"}),
                          lambda t: _torch().linalg.norm(t, "nuc")),
    "scipy.linalg.solve_triangular": Sample(
        [(3, 3), (3, 2)], lambda x: ((x[0] + _eye(x[0]), x[1]), {"lower": True}),
        lambda a, b: _torch().linalg.solve_triangular(a + _eye(a), b, upper=False)),
    "scipy.linalg.cho_solve": Sample(
        [(3, 3), (3, 2)], lambda x: (((x[0] + _eye(x[0]), True), x[1]), {}),
        lambda c, b: _torch().cholesky_solve(b, (c + _eye(c)).tril())),
    "scipy.linalg.expm": Sample([(3, 3)], lambda x: ((x[0] * 0.5,), {}),
                                lambda t: _torch().linalg.matrix_exp(t * 0.5)),
    # Eigenvalues' real parts >= 1 (Gershgorin): a real principal square root.
    "scipy.linalg.sqrtm": Sample([(3, 3)], lambda x: ((x[0] + _eye(x[0], 4.0),), {}),
                                 low=-1.0, high=1.0),
    "scipy.linalg.solve_sylvester": Sample(
        [(3, 3), (2, 2), (3, 2)], lambda x: ((x[0] + _eye(x[0]), x[1] + _eye(x[1]), x[2]), {})),
})


# Ops whose values come from scipy (tapegrad.scipy.*'s and these): their tests skip without it.
NEEDS_SCIPY = {"ive"}


def needs_scipy(name):
    return name.startswith("scipy.") or name in NEEDS_SCIPY


def have_scipy():
    try:
        import scipy  # noqa: F401
    except ImportError:
        return False
    return True
