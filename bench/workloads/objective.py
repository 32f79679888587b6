"""What the value-and-gradient workloads (GMM, least squares) share: their child loop."""

from __future__ import annotations

import gc
import time
from typing import Callable

from runner import TORCH_COMPILE, gradient_samples, timed


def child(sizes: list[str], make_step: Callable, steps_for: Callable[[int, int], int]) -> dict:
    """Per "a-b" size: seconds per call of make_step(a, b)'s step (after the first call and
    one warm-up call: allocators settle, einsum plans are cached, a compiled step has
    traced), the first call's seconds, the value, and gradient samples."""
    out = {}
    for size in sizes:
        a, b = map(int, size.split("-"))
        step = make_step(a, b)
        first_call, (value, grads) = timed(step)
        step()
        steps = steps_for(a, b)
        gc.collect()
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        out[size] = {"seconds": (time.perf_counter() - t0) / steps, "first_call": first_call,
                     "value": value, "grads": gradient_samples(grads)}
    return out


# Values are checked against the first library's to 1e-10 (runner.check_result),
# gradients to this.
# torch.compile's first call compiles for seconds: it runs in the first repeat only.
OPTIONS = {"rtol": 1e-8, "time": "value and gradient", "ratios": {"vs PyTorch": "PyTorch"},
           "first_repeat_only": (TORCH_COMPILE,)}
