"""RK4 integration of the Lotka-Volterra equations: the gradient of a loss of the final
state w.r.t. the 4 parameters. Scalar-heavy: about 54 recorded ops per step on 0-d values.
"""

from __future__ import annotations

import gc
import time
from typing import Callable

from runner import TORCH_COMPILE, Workload, timed

import tapegrad
from tapegrad import reference

PARAMETERS = [1.5, 1.0, 1.0, 3.0]  # alpha, beta, delta, gamma: prey growth, predation, ...
START = (1.0, 1.0)  # prey, predators
HORIZON = 5.0  # the time integrated over, in N equal steps
PLAIN = "Python floats, no AD (floor)"
# Their calls grow faster than N (the garbage collector walks their graphs): at most this N.
SLOW = ("reference", "HIPS autograd")
MAX_SLOW_STEPS = 100
TORCH_COMPILE_STEPS = 100  # the one size torch.compile runs at: each size compiles anew


def rk4_step(u, v, params, h):
    """One RK4 step of du/dt = alpha u - beta u v, dv/dt = delta u v - gamma v. Written
    once with + - * only, for floats and every library's scalars."""
    alpha, beta, delta, gamma = params

    def rhs(u, v):
        uv = u * v
        return alpha * u - beta * uv, delta * uv - gamma * v

    k1u, k1v = rhs(u, v)
    k2u, k2v = rhs(u + h / 2 * k1u, v + h / 2 * k1v)
    k3u, k3v = rhs(u + h / 2 * k2u, v + h / 2 * k2v)
    k4u, k4v = rhs(u + h * k3u, v + h * k3v)
    return (u + h / 6 * (k1u + 2 * k2u + 2 * k3u + k4u),
            v + h / 6 * (k1v + 2 * k2v + 2 * k3v + k4v))


def final_state_loss(params, n_steps: int, step: Callable = rk4_step):
    """RK4 from START over HORIZON in n_steps steps; the loss is u^2 + v^2 at the end."""
    h = HORIZON / n_steps
    u, v = START
    for _ in range(n_steps):
        u, v = step(u, v, params, h)
    return u * u + v * v


def loss_of(n_steps: int, step: Callable = rk4_step) -> Callable:
    def loss(params):
        return final_state_loss(params, n_steps, step)

    return loss


# Each make_step(n_steps) returns step() -> (value, gradient w.r.t. PARAMETERS as floats).


def tapegrad_step(n_steps):
    value_and_grad = tapegrad.value_and_grad(loss_of(n_steps))
    return lambda: value_and_grad(PARAMETERS)


def tapegrad_compiled_step(n_steps):
    """The same loss through tapegrad.compile: the first call traces, later calls replay."""
    value_and_grad = tapegrad.compile(loss_of(n_steps)).value_and_grad
    return lambda: value_and_grad(PARAMETERS)


def reference_step(n_steps):
    def step():
        params = [reference.Tensor(p) for p in PARAMETERS]
        value = final_state_loss(params, n_steps)
        grads = reference.compute_gradients(value, params)
        reference.clear_history()
        return float(value.data), [float(g) for g in grads]

    return step


def torch_step(n_steps, compiled: bool = False):
    """PyTorch eager; or with torch.compile of one RK4 step, the loop in Python."""
    import torch

    loss = loss_of(n_steps, torch.compile(rk4_step) if compiled else rk4_step)

    def step():
        params = [torch.tensor(p, dtype=torch.float64, requires_grad=True) for p in PARAMETERS]
        value = loss(params)
        grads = torch.autograd.grad(value, params)
        return value.item(), [float(g) for g in grads]

    return step


def hips_step(n_steps):
    import autograd

    value_and_grad = autograd.value_and_grad(loss_of(n_steps))

    def step():
        value, grads = value_and_grad(list(PARAMETERS))
        return float(value), [float(g) for g in grads]

    return step


def plain_step(n_steps):
    loss = loss_of(n_steps)
    return lambda: (loss(PARAMETERS), [])


LIBRARIES = {
    "tapegrad": tapegrad_step,
    "tapegrad compiled": tapegrad_compiled_step,
    "reference": reference_step,
    "PyTorch": torch_step,
    TORCH_COMPILE: lambda n_steps: torch_step(n_steps, compiled=True),
    "HIPS autograd": hips_step,
    # Last: the gradients of the first library are what the others are checked against.
    PLAIN: plain_step,
}


def runs(library: str, size) -> bool:
    if library == TORCH_COMPILE:
        return int(size) == TORCH_COMPILE_STEPS
    return library not in SLOW or int(size) <= MAX_SLOW_STEPS


def child(library: str, sizes: list[str]) -> dict:
    """Per number of steps: seconds per value and gradient (after the first call and, when
    that took under 0.1 s, one warm-up call; as many calls as fit in 0.1 s, at least one),
    the first call's seconds, the value and the gradient."""
    out = {}
    for size in sizes:
        step = LIBRARIES[library](int(size))
        first_call, (value, grads) = timed(step)
        if first_call < 0.1:  # a slow call has warmed up allocators enough by itself
            step()
        gc.collect()
        calls, t0 = 0, time.perf_counter()
        while calls < 1 or time.perf_counter() - t0 < 0.1:
            step()
            calls += 1
        out[size] = {"seconds": (time.perf_counter() - t0) / calls, "first_call": first_call,
                     "value": value, "grads": [list(map(float, grads))] if grads else []}
    return out


WORKLOAD = Workload(
    name="ode",
    title="RK4 ODE (Lotka-Volterra)",
    description=f"""\
du/dt = αu − βuv, dv/dt = δuv − γv from (u, v) = {START} over t in [0, {HORIZON}] in N RK4
steps (about 54 recorded ops per step, on 0-d values); loss u² + v² at the end, its value
and gradient w.r.t. (α, β, δ, γ) = {tuple(PARAMETERS)}, written once for every library.
Per value and gradient, after the first call (the last column; a compiled function's is
its trace) and, when that is quick, one warm-up call. "tapegrad" is
`tapegrad.value_and_grad(loss)`, "tapegrad compiled"
`tapegrad.compile(loss).value_and_grad`; the floor computes the value alone with Python
floats. torch.compile compiles `rk4_step` (the loop stays in Python: compiling the whole
loss, its loop unrolled, had not finished in minutes at N = 100); it recompiles for each
step size h (a constant of its graph), and its first call spends seconds compiling (less
when torch's on-disk compile cache holds the graph from an earlier run), so it runs at N =
{TORCH_COMPILE_STEPS} only, in the first repeat only. With --quick, the peers
and the reference do not run. The reference and HIPS autograd run at N ≤ {MAX_SLOW_STEPS}
only: at N = 1000 a call takes seconds, and grows faster than N as Python's garbage
collector walks their graphs. Values are checked against the first library's to 1e-10,
gradients to 1e-8.""",
    libraries=tuple(LIBRARIES),
    sizes={"quick": [50], "default": [100, 1000]},
    child=child,
    quick_repeats=1,
    # --quick: tapegrad's rows and the floor (the peers' imports would be most of its time).
    quick_libraries=("tapegrad", "tapegrad compiled", PLAIN),
    options={"rtol": 1e-8, "columns": ("steps",), "cells": lambda size: [size],
             "time": "value and gradient", "ratios": {"vs floor": PLAIN}, "runs": runs,
             "first_repeat_only": (TORCH_COMPILE,)},
)
