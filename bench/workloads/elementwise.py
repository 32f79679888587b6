"""An elementwise chain over float64 arrays, forward and backward, against numpy by hand."""

from __future__ import annotations

import gc
import time

import numpy as np
from runner import TORCH_COMPILE, Workload, gradient_samples, without_compile

import tapegrad
from tapegrad import reference

TORCH_COMPILE_SIZE = 1_000_000  # the one size torch.compile runs at: each size compiles anew


def inputs(n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.uniform(0.1, 1.0, size=n) for _ in range(3)]


def by_hand(arrays):
    """The hand-written gradient: the floor."""
    x, w, b = arrays
    t0 = time.perf_counter()
    u = x * w + b
    th = np.tanh(u)
    e = np.exp(-x * x)
    lw = np.log(1 + w * w)
    ib = 1 / (1 + b * b)
    _ = np.sum(th * e + lw * ib)
    dth = (1 - th * th) * e
    gx = dth * w - 2 * x * th * e
    gw = dth * x + 2 * w / (1 + w * w) * ib
    gb = dth - 2 * b * lw * ib * ib
    return time.perf_counter() - t0, [gx, gw, gb]


def chain(lib, x, w, b):
    return lib.tanh(x * w + b) * lib.exp(-x * x) + lib.log(1 + w * w) / (1 + b * b)


def seed_style(module, make=None):
    """compute_gradients on Tensors made from the arrays: by `make`, else module.Tensor."""
    make = make or module.Tensor

    def run(arrays):
        module.clear_history()
        t0 = time.perf_counter()
        tensors = [make(a) for a in arrays]
        y = chain(module, *tensors)
        grads = module.compute_gradients(y, tensors)  # seeded with ones: the gradient of sum(y)
        elapsed = time.perf_counter() - t0
        module.clear_history()
        return elapsed, grads

    return run


def compiled_style():
    """value_and_grad of the chain's sum through tapegrad.compile: the first call at a shape
    traces, later calls replay the tape natively."""
    function = tapegrad.compile(lambda x, w, b: tapegrad.sum(chain(tapegrad, x, w, b)),
                                argnums=(0, 1, 2))

    def run(arrays):
        t0 = time.perf_counter()
        _, grads = function.value_and_grad(*arrays)
        return time.perf_counter() - t0, grads

    return run


def torch_style(compiled: bool = False):
    """PyTorch eager; or the chain's sum through torch.compile (its backward compiled too)."""
    import torch

    function = lambda x, w, b: chain(torch, x, w, b).sum()  # noqa: E731
    function = torch.compile(function) if compiled else function

    def run(arrays):
        t0 = time.perf_counter()
        tensors = [torch.from_numpy(a).requires_grad_() for a in arrays]
        function(*tensors).backward()
        elapsed = time.perf_counter() - t0
        return elapsed, [t.grad.numpy() for t in tensors]

    return run


def with_hips(arrays):
    import autograd
    import autograd.numpy as anp

    t0 = time.perf_counter()
    grads = autograd.grad(lambda v: anp.sum(chain(anp, *v)))(list(arrays))
    return time.perf_counter() - t0, grads


LIBRARIES = {
    "numpy by hand (floor)": lambda: by_hand,
    # Sharing the inputs, as PyTorch's from_numpy does; Tensor(a) copies them
    # (a recorded gradient must not see later writes), measured on the next row.
    "tapegrad": lambda: seed_style(tapegrad, lambda a: tapegrad.as_tensor(a, requires_grad=True)),
    "tapegrad, Tensor(a) copies": lambda: seed_style(tapegrad),
    "tapegrad compiled": compiled_style,
    "reference": lambda: seed_style(reference),
    "PyTorch": torch_style,
    TORCH_COMPILE: lambda: torch_style(compiled=True),
    "HIPS autograd": lambda: with_hips,
}


def child(library: str, sizes: list[str]) -> dict:
    """Per size: seconds per forward and backward in a loop's steady state, the first
    call's seconds, the gradients."""
    run = LIBRARIES[library]()
    out = {}
    for size in sizes:
        n = int(size)
        arrays = inputs(n)
        # Small sizes: time a batch of calls. Every size: a loop's steady state,
        # after warm-up calls (allocators, tapegrad's buffer pool), timing
        # several calls, since 8 MB arrays fault pages on some calls only.
        inner = max(5, min(200, 20_000 // n))
        first_call, _ = run(arrays)
        for _ in range(2):
            run(arrays)
        gc.collect()
        elapsed = 0.0
        for _ in range(inner):
            t, grads = run(arrays)
            elapsed += t
        out[size] = {"seconds": elapsed / inner, "first_call": first_call,
                     "grads": gradient_samples(grads, 50)}
    return out


WORKLOAD = Workload(
    name="elementwise",
    title="Elementwise chain",
    description=f"""\
`sum(tanh(x*w + b) * exp(-x*x) + log(1 + w*w) / (1 + b*b))`, gradient w.r.t. x, w, b (all
arrays of the given size). The floor is the same gradient written by hand in numpy. Per
call, after 3 warm-up calls (a loop's steady state), averaged over at least 5 calls; the
first of the warm-up calls is the last column (each size runs in one process after the
smaller ones, so only the first size's pays for first use). "tapegrad compiled" is
`tapegrad.compile` of the chain's sum, `value_and_grad` w.r.t. x, w, b: its first call at
each size traces. torch.compile compiles the chain's sum (forward and backward); its first
call spends seconds compiling, so it runs at {TORCH_COMPILE_SIZE:,} elements only, in the
first repeat only.""",
    libraries=tuple(LIBRARIES),
    sizes={"quick": [1, 100, 10_000], "default": [1, 100, 10_000, 1_000_000]},
    quick_libraries=without_compile(LIBRARIES),
    child=child,
    options={"rtol": 1e-9, "columns": ("elements",), "cells": lambda size: [f"{int(size):,}"],
             "time": "forward + backward", "ratios": {"vs numpy floor": "first"},
             "runs": lambda library, size: (library != TORCH_COMPILE
                                            or int(size) == TORCH_COMPILE_SIZE),
             "first_repeat_only": (TORCH_COMPILE,)},
)
