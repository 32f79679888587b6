"""A regularised least-squares fit through np.linalg.solve, value and gradient.

x = solve(A^T A + I, A^T b), loss = |A x - b|^2, and its gradient w.r.t. A and b
(n points, d unknowns).
"""

from __future__ import annotations

import math
from functools import partial

import numpy as np
from runner import TORCH_COMPILE, Workload, without_compile

import tapegrad
from workloads import objective

CONFIGS = ["256-64", "2048-512"]  # n-d


def data(n, d):
    rng = np.random.default_rng(5)
    return rng.normal(size=(n, d)) / math.sqrt(d), rng.normal(size=(n, 1))


def lstsq_objective(m, a, b):
    """Written once; m supplies solve, eye and sum (numpy's on Tensors, torch's, HIPS's)."""
    gram = a.T @ a + m.eye(a.shape[1])
    x = m.solve(gram, a.T @ b)
    r = a @ x - b
    return m.sum(r * r)


class Numpy:
    """numpy's own functions, called on Tensors (they record through dispatch)."""

    solve = staticmethod(np.linalg.solve)
    eye = staticmethod(np.eye)
    sum = staticmethod(np.sum)


def tapegrad_step(a, b):
    params = [tapegrad.Tensor(v) for v in (a, b)]

    def step():
        value = lstsq_objective(Numpy, *params)
        return value.item(), [g.data for g in tapegrad.grad(value, params)]

    return step


def tapegrad_compiled_step(a, b):
    """The same objective through tapegrad.compile: traced on the first call, then replayed."""
    objective = tapegrad.compile(lambda *params: lstsq_objective(Numpy, *params), argnums=(0, 1))

    def step():
        value, grads = objective.value_and_grad(a, b)
        return value, list(grads)

    return step


def torch_step(a, b, compiled: bool = False):
    """PyTorch eager; or the objective through torch.compile (its backward compiled too)."""
    import torch

    params = [torch.from_numpy(v).requires_grad_() for v in (a, b)]

    class Torch:
        solve = staticmethod(torch.linalg.solve)
        sum = staticmethod(torch.sum)

        @staticmethod
        def eye(n):
            return torch.eye(n, dtype=torch.float64)

    objective_of = torch.compile(lstsq_objective) if compiled else lstsq_objective

    def step():
        value = objective_of(Torch, *params)
        grads = torch.autograd.grad(value, params)
        return value.item(), [g.numpy() for g in grads]

    return step


def hips_step(a, b):
    import autograd
    import autograd.numpy as anp

    class Hips:
        solve = staticmethod(anp.linalg.solve)
        eye = staticmethod(anp.eye)
        sum = staticmethod(anp.sum)

    value_and_grad = autograd.value_and_grad(lambda params: lstsq_objective(Hips, *params))

    def step():
        value, grads = value_and_grad([a, b])
        return float(value), [np.asarray(g) for g in grads]

    return step


LIBRARIES = {"tapegrad": tapegrad_step, "tapegrad compiled": tapegrad_compiled_step,
             "PyTorch": torch_step, TORCH_COMPILE: partial(torch_step, compiled=True),
             "HIPS autograd": hips_step}


def child(library: str, sizes: list[str]) -> dict:
    """Per "n-d": seconds per value and gradient, the value, and gradient samples."""
    return objective.child(sizes, lambda n, d: LIBRARIES[library](*data(n, d)),
                           lambda n, d: 5 if d >= 512 else 50)


WORKLOAD = Workload(
    name="lstsq",
    title="Least squares through `np.linalg.solve`",
    description="""\
x = solve(AᵀA + I, Aᵀb), loss = |Ax − b|² for A of n × d and b of n × 1, float64, written
once for every library; per value and gradient w.r.t. A and b, after the first call and
one warm-up call; "tapegrad compiled" is the same function through `tapegrad.compile`, whose
first call traces it; torch.compile compiles the objective (forward and backward), in the
first repeat only and not with --quick. Values are checked against the first library's to
1e-10, gradients to 1e-8.""",
    libraries=tuple(LIBRARIES),
    sizes={"quick": CONFIGS[:1], "default": CONFIGS},
    quick_repeats=1,
    quick_libraries=without_compile(LIBRARIES),
    child=child,
    options={**objective.OPTIONS, "columns": ("n", "d")},
)
