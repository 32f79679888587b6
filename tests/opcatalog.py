"""Every op with its closed-form derivative and a domain to test it on.

Unary: name -> (numpy forward, derivative f'(a), (low, high)).
Binary: name -> (numpy forward, (df/da, df/db), (low, high) for a, (low, high) for b).
"""

import numpy as np

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
}

# Elementwise ops whose derivative is not smooth everywhere: checked at points away from ties.
TIES = {"maximum", "minimum"}
# Elementwise ops with kinks or jumps inside their test domain (finite differences may cross one).
KINKS = {"abs", "relu", "maximum", "minimum"}


class Sample:
    """How to call a non-elementwise op on inputs of given shapes.

    ``call(xs)`` gives ``(args, kwargs)`` for the op's function (and its numpy
    callable); the method, if any, takes ``args[0]`` as self. ``torch(*ts)`` is
    PyTorch's value for the same call, or None where torch has no such op.
    """

    def __init__(self, shapes, call, torch=None, low=-2.0, high=2.0, smooth=True):
        self.shapes, self.call, self.torch, self.low, self.high = shapes, call, torch, low, high
        self.smooth = smooth  # False: kinks (ties, bounds) where finite differences may land


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
}


def one_value(out, stack, concatenate):
    """An op's result as one array: a list (split's) stacked; a tuple of factors
    (eigh's, svd's, qr's, slogdet's) joined flat, leaving out the plain values among
    them (slogdet's sign, a constant)."""
    if isinstance(out, list):
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
