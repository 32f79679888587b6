"""ADBench's GMM objective with einsum, value and gradient.

ADBench's GMM objective (Srajer et al. 2018), as its PyTorch version writes it with
einsum: d dimensions, k components, n points; gamma = 1, m = 0.
"""

from __future__ import annotations

import math
from functools import partial
from types import SimpleNamespace

import numpy as np
from runner import TORCH_COMPILE, Workload, without_compile

import tapegrad
from workloads import objective

POINTS = 1000
GAMMA, M = 1.0, 0
CONFIGS = ["10-25", "64-25", "10-100", "64-100"]  # d-k


def data(d, k, n=POINTS):
    """alphas (k), means (k, d), icf (k, d(d+1)/2) and the points x (n, d)."""
    rng = np.random.default_rng(3)
    return (rng.normal(size=k), rng.normal(size=(k, d)),
            rng.normal(size=(k, d * (d + 1) // 2)) * 0.1, rng.normal(size=(n, d)))


def tril_index(d):
    """Where each entry of L's strictly lower part is in [0, icf[:, d:]]: column by
    column, as ADBench fills it; 0 (the padding) above and on the diagonal."""
    index = np.zeros((d, d), dtype=np.intp)
    rows, cols = np.tril_indices(d, -1)
    order = np.lexsort((rows, cols))  # column-major order of the lower triangle
    index[rows[order], cols[order]] = np.arange(1, len(order) + 1)
    return index


def multigammaln(a, p):
    return p * (p - 1) / 4 * math.log(math.pi) + sum(
        math.lgamma(a + (1 - j) / 2) for j in range(1, p + 1))


def gmm_objective(m, alphas, means, icf, x, index):
    """The objective written once; m supplies exp, sum(x, axis), einsum,
    logsumexp(x, axis) and concatenate(list, axis) (numpy's on Tensors, torch's,
    HIPS autograd's)."""
    n, d = x.shape
    k = alphas.shape[0]
    log_qdiag = icf[:, :d]
    qdiag = m.exp(log_qdiag)
    sum_qs = m.sum(log_qdiag, 1)
    lower = m.concatenate([np.zeros((k, 1)), icf[:, d:]], 1)[:, index]  # L's strict lower part
    xc = x[:, None, :] - means[None, :, :]  # (n, k, d)
    qxc = qdiag[None] * xc + m.einsum("ijk,mik->mij", lower, xc)  # Q_k (x_i - mu_k)
    inner = alphas + sum_qs - 0.5 * m.sum(qxc * qxc, 2)
    const = -n * d * 0.5 * math.log(2 * math.pi)
    big_n = d + M + 1
    squares = m.sum(qdiag * qdiag, 1) + m.sum(icf[:, d:] * icf[:, d:], 1)
    prior = m.sum(0.5 * GAMMA * GAMMA * squares - M * sum_qs, None)
    log_c = big_n * d * math.log(GAMMA / math.sqrt(2)) - multigammaln(0.5 * big_n, d)
    prior = prior - k * log_c
    return const + m.sum(m.logsumexp(inner, 1), None) - n * m.logsumexp(alphas, 0) + prior


def functions(module, logsumexp) -> SimpleNamespace:
    """What gmm_objective calls, from numpy or a numpy-like module (HIPS autograd's)."""
    return SimpleNamespace(
        exp=module.exp, einsum=module.einsum, concatenate=module.concatenate,
        sum=lambda x, axis: module.sum(x, axis=axis),
        logsumexp=lambda x, axis: logsumexp(x, axis=axis))


# numpy's own functions, called on Tensors (they record through dispatch).
NUMPY_ON_TENSORS = functions(np, tapegrad.logsumexp)


def tapegrad_step(alphas, means, icf, x):
    params = [tapegrad.Tensor(a) for a in (alphas, means, icf)]
    index = tril_index(x.shape[1])

    def step():
        value = gmm_objective(NUMPY_ON_TENSORS, *params, x, index)
        return value.item(), [g.data for g in tapegrad.grad(value, params)]

    return step


def tapegrad_compiled_step(alphas, means, icf, x):
    """The same objective through tapegrad.compile: traced on the first call, then replayed."""
    index = tril_index(x.shape[1])
    objective = tapegrad.compile(
        lambda *arrays: gmm_objective(NUMPY_ON_TENSORS, *arrays, index), argnums=(0, 1, 2))

    def step():
        value, grads = objective.value_and_grad(alphas, means, icf, x)
        return value, list(grads)

    return step


def torch_step(alphas, means, icf, x, compiled: bool = False):
    """PyTorch eager; or the objective through torch.compile (its backward compiled too)."""
    import torch

    params = [torch.from_numpy(a).requires_grad_() for a in (alphas, means, icf)]
    points = torch.from_numpy(x)
    index = torch.from_numpy(tril_index(x.shape[1]))

    class Torch:
        exp = staticmethod(torch.exp)
        einsum = staticmethod(torch.einsum)

        @staticmethod
        def sum(t, axis):
            return t.sum() if axis is None else t.sum(axis)

        @staticmethod
        def logsumexp(t, axis):
            return torch.logsumexp(t, axis)

        @staticmethod
        def concatenate(seq, axis):
            return torch.cat([torch.as_tensor(s) for s in seq], axis)

    objective_of = torch.compile(gmm_objective) if compiled else gmm_objective

    def step():
        value = objective_of(Torch, *params, points, index)
        grads = torch.autograd.grad(value, params)
        return value.item(), [g.numpy() for g in grads]

    return step


def hips_step(alphas, means, icf, x):
    import autograd
    import autograd.numpy as anp
    from autograd.scipy.special import logsumexp

    index = tril_index(x.shape[1])
    hips = functions(anp, logsumexp)
    value_and_grad = autograd.value_and_grad(lambda ps: gmm_objective(hips, *ps, x, index))

    def step():
        value, grads = value_and_grad([alphas, means, icf])
        return float(value), [np.asarray(g) for g in grads]

    return step


LIBRARIES = {"tapegrad": tapegrad_step, "tapegrad compiled": tapegrad_compiled_step,
             "PyTorch": torch_step, TORCH_COMPILE: partial(torch_step, compiled=True),
             "HIPS autograd": hips_step}


def child(library: str, sizes: list[str]) -> dict:
    """Per "d-k": seconds per value and gradient, the value, and gradient samples."""
    return objective.child(sizes, lambda d, k: LIBRARIES[library](*data(d, k)),
                           lambda d, k: 3 if d * k >= 64 * 100 else 5)


WORKLOAD = Workload(
    name="gmm",
    title="GMM objective",
    description=f"""\
ADBench's Gaussian mixture objective (Srajer et al. 2018: log-sum-exp over k components of
n = {POINTS} points in d dimensions, lower-triangular Cholesky-style factors with
exponentiated diagonals, Wishart prior with gamma = 1, m = 0), written once for every
library with `einsum("ijk,mik->mij", L, xc)` for the factors' products, as ADBench's
PyTorch version writes it; float64. Per value and gradient w.r.t. alphas, means and icf,
after the first call and one warm-up call; "tapegrad compiled" is the same function through
`tapegrad.compile`, whose first call traces it; torch.compile compiles the objective
(forward and backward), in the first repeat only and not with --quick. Values are checked
against the first library's to 1e-10, gradients to 1e-8.""",
    libraries=tuple(LIBRARIES),
    sizes={"quick": CONFIGS[:1], "default": CONFIGS},
    quick_repeats=1,
    quick_libraries=without_compile(LIBRARIES),
    child=child,
    options={**objective.OPTIONS, "columns": ("d", "k")},
)
