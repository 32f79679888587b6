"""A Hessian-vector product of the MLP loss (double backward), against PyTorch."""

from __future__ import annotations

import gc
import time

import numpy as np
from runner import Workload, gradient_samples, timed

import tapegrad
from workloads import mlp


def gradient_dot(params, vs, x, y):
    """sum(grad(loss) * v): its gradient w.r.t. params is the Hessian-vector product."""
    grads = tapegrad.grad(mlp.tapegrad_loss(params, x, y), params, create_graph=True)
    return sum((g * v).sum() for g, v in zip(grads, vs))


def tapegrad_product(params, vs):
    params = [tapegrad.Tensor(a) for a in params]

    def product(x, y):
        return [h.data for h in tapegrad.grad(gradient_dot(params, vs, x, y), params)]

    return product


def tapegrad_compiled_product(params, vs):
    """The gradient of gradient_dot through tapegrad.compile: the first product traces
    both sweeps, later products replay them natively."""
    compiled = tapegrad.compile(gradient_dot)

    def product(x, y):
        return list(compiled.grad(params, vs, x, y))

    return product


def torch_product(params, vs):
    import torch

    params = [torch.from_numpy(a).requires_grad_() for a in params]
    tvs = [torch.from_numpy(v) for v in vs]

    def product(x, y):
        grads = torch.autograd.grad(mlp.torch_loss(params, x, y), params, create_graph=True)
        dot = sum((g * v).sum() for g, v in zip(grads, tvs))
        return [h.numpy() for h in torch.autograd.grad(dot, params)]

    return product


LIBRARIES = {"tapegrad": tapegrad_product, "tapegrad compiled": tapegrad_compiled_product,
             "PyTorch": torch_product}


def child(library: str, sizes: list[str]) -> dict:
    """Per batch: seconds per Hessian-vector product of the MLP loss, the first product's
    seconds, and the first product."""
    rng = np.random.default_rng(2)
    params = mlp.init("float64")
    vs = [rng.normal(size=a.shape) for a in params]
    product = LIBRARIES[library](params, vs)
    out = {}
    for size in sizes:
        steps = 20 if int(size) <= 64 else 5
        batches = mlp.data(int(size), "float64", steps + 3)
        first_call, first = timed(product, *batches[0])
        for x, y in batches[1:3]:
            product(x, y)
        gc.collect()
        t0 = time.perf_counter()
        for x, y in batches[3:]:
            product(x, y)
        out[size] = {"seconds": (time.perf_counter() - t0) / steps, "first_call": first_call,
                     "grads": gradient_samples(first)}
    return out


WORKLOAD = Workload(
    name="hvp",
    title="Hessian-vector product",
    description="""\
The batch's MLP loss (float64), differentiated twice: `grad(loss, params,
create_graph=True)`, then the gradient of `sum(g * v)` for a fixed random `v`, w.r.t. all
six parameters; per product, after 2 warm-up products. "tapegrad compiled" is
`tapegrad.compile` of `sum(grad(loss, params, create_graph=True) * v)` and its gradient:
the double backward is recorded once, and its first product (the last column) traces it.
The products are checked against
the first library's. No torch.compile row: "torch.compile with aot_autograd does not
currently support double backward" (torch 2.13).""",
    libraries=tuple(LIBRARIES),
    sizes={"quick": [64], "default": [64, 1024]},
    quick_repeats=1,
    child=child,
    options={"rtol": 1e-7, "columns": ("batch",), "time": "per Hessian-vector product",
             "ratios": {"vs PyTorch": "PyTorch"}},
)
