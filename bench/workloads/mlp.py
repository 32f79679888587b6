"""A training step of a 64-128-128-10 MLP on the digits, against the step by hand in numpy.

The model, its data and its loss here serve the Hessian-vector product and the training
loop workloads too.
"""

from __future__ import annotations

import gc
import importlib.util
import time

import numpy as np
from runner import TORCH_COMPILE, Workload, gradient_samples, timed, without_compile

import tapegrad

SIZES = [64, 128, 128, 10]
LR = 0.05
CONFIGS = ["64-float64", "1024-float64", "64-float32", "1024-float32"]  # batch-dtype
DIGITS = importlib.util.find_spec("sklearn") is not None


def data(batch, dtype, steps):
    """Batches of scikit-learn's digits (random ones of the same shape without it)."""
    if DIGITS:
        from sklearn.datasets import load_digits

        digits = load_digits()
        x, labels = digits.data / 16.0, digits.target
    else:
        rng = np.random.default_rng(0)
        x, labels = rng.uniform(0, 1, size=(1797, 64)), rng.integers(0, 10, size=1797)
    rng = np.random.default_rng(0)
    batches = []
    for _ in range(steps):
        idx = rng.integers(0, len(x), size=batch)
        onehot = np.zeros((batch, 10), dtype=dtype)
        onehot[np.arange(batch), labels[idx]] = 1
        batches.append((np.ascontiguousarray(x[idx], dtype=dtype), onehot))
    return batches


def init(dtype):
    rng = np.random.default_rng(1)
    params = []
    for fan_in, fan_out in zip(SIZES[:-1], SIZES[1:]):
        bound = np.sqrt(6.0 / (fan_in + fan_out))
        params.append(rng.uniform(-bound, bound, size=(fan_in, fan_out)).astype(dtype))
        params.append(np.zeros(fan_out, dtype=dtype))
    return params


def tapegrad_loss(params, x, y):
    """Mean softmax cross-entropy of the MLP on one batch (y one-hot), recorded.

    The batch is shared with tapegrad (as_tensor), as PyTorch's from_numpy shares
    it: a raw ndarray that a backward reads is copied into the tape, so that
    writing into it later cannot change a gradient.
    """
    x, y = tapegrad.as_tensor(x), tapegrad.as_tensor(y)
    h = x
    for i in (0, 2):
        h = tapegrad.tanh(h @ params[i] + params[i + 1])
    logits = h @ params[4] + params[5]
    return -(tapegrad.log_softmax(logits, axis=1) * y).sum() / float(len(x))


def torch_loss(params, x, y):
    """The same loss in PyTorch, on numpy batches."""
    import torch

    h = torch.from_numpy(x)
    for i in (0, 2):
        h = torch.tanh(h @ params[i] + params[i + 1])
    logits = h @ params[4] + params[5]
    return -(torch.log_softmax(logits, dim=1) * torch.from_numpy(y)).sum() / len(x)


def numpy_step(dtype):
    w1, b1, w2, b2, w3, b3 = params = init(dtype)

    def step(x, y):
        h1 = np.tanh(x @ w1 + b1)
        h2 = np.tanh(h1 @ w2 + b2)
        logits = h2 @ w3 + b3
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        dlogits = (e / e.sum(axis=1, keepdims=True) - y) / len(x)
        da2 = (dlogits @ w3.T) * (1 - h2 * h2)
        da1 = (da2 @ w2.T) * (1 - h1 * h1)
        grads = [x.T @ da1, da1.sum(axis=0), h1.T @ da2, da2.sum(axis=0),
                 h2.T @ dlogits, dlogits.sum(axis=0)]
        for p, g in zip(params, grads):
            p -= LR * g
        return grads

    return step


def tapegrad_step(dtype):
    params = [tapegrad.Tensor(a) for a in init(dtype)]

    def step(x, y):
        grads = tapegrad.compute_gradients(tapegrad_loss(params, x, y), params)
        tapegrad.clear_history()
        with tapegrad.no_grad():  # the tape let go of the values: updated in place
            for p, g in zip(params, grads):
                p -= LR * g
        return grads

    return step


def tapegrad_compiled_step(dtype):
    """The loss's gradient through tapegrad.compile (the first step traces, later steps
    replay the tape natively); the update in numpy."""
    params = init(dtype)
    loss = tapegrad.compile(tapegrad_loss)

    def step(x, y):
        _, grads = loss.value_and_grad(params, x, y)
        for p, g in zip(params, grads):
            p -= LR * g
        return grads

    return step


def torch_step(dtype, compiled: bool = False):
    """PyTorch eager; or with the loss through torch.compile (its backward compiled too)."""
    import torch

    params = [torch.from_numpy(a).requires_grad_() for a in init(dtype)]
    loss = torch.compile(torch_loss) if compiled else torch_loss

    def step(x, y):
        loss(params, x, y).backward()
        grads = []
        with torch.no_grad():
            for p in params:
                grads.append(p.grad.numpy().copy())
                p -= LR * p.grad
                p.grad = None
        return grads

    return step


def hips_step(dtype):
    import autograd
    import autograd.numpy as anp

    params = init(dtype)

    def loss(ps, x, y):
        h = x
        for i in (0, 2):
            h = anp.tanh(anp.dot(h, ps[i]) + ps[i + 1])
        logits = anp.dot(h, ps[4]) + ps[5]
        m = anp.max(logits, axis=1, keepdims=True)
        log_p = logits - m - anp.log(anp.sum(anp.exp(logits - m), axis=1, keepdims=True))
        return -anp.sum(log_p * y) / len(x)

    gradient = autograd.grad(loss)

    def step(x, y):
        grads = gradient(params, x, y)
        for p, g in zip(params, grads):
            p -= LR * g
        return grads

    return step


LIBRARIES = {
    "numpy by hand (floor)": numpy_step,
    "tapegrad": tapegrad_step,
    "tapegrad compiled": tapegrad_compiled_step,
    "PyTorch": torch_step,
    TORCH_COMPILE: lambda dtype: torch_step(dtype, compiled=True),
    "HIPS autograd": hips_step,
}


def child(library: str, sizes: list[str]) -> dict:
    """Per "batch-dtype": seconds per training step, the first step's seconds and its
    gradients."""
    out = {}
    for size in sizes:
        batch, dtype = size.split("-")
        steps, warm_up = (40, 10) if int(batch) <= 64 else (10, 10)
        step = LIBRARIES[library](dtype)
        batches = data(int(batch), dtype, steps + warm_up)
        first_call, first = timed(step, *batches[0])
        # Warm-up, as a training loop is after its first steps: allocators settle
        # (tapegrad's buffer pool, glibc's heap for numpy and PyTorch alike).
        for x, y in batches[1:warm_up]:
            step(x, y)
        gc.collect()
        t0 = time.perf_counter()
        for x, y in batches[warm_up:]:
            step(x, y)
        out[size] = {"seconds": (time.perf_counter() - t0) / steps, "first_call": first_call,
                     "grads": gradient_samples(first)}
    return out


DATA_NOTE = ("scikit-learn's digits" if DIGITS else
             "random data of the digits' shape (scikit-learn is not installed)")

WORKLOAD = Workload(
    name="mlp",
    title="MLP training step",
    description=f"""\
64-128-128-10 with tanh, softmax cross-entropy and SGD on {DATA_NOTE}: forward, gradients of
all six parameters and the update, per step, after 10 warm-up steps (a training loop's
steady state). The floor is the same step with the backward written by hand in numpy.
"tapegrad compiled": the loss's `value_and_grad` through `tapegrad.compile`, the update in
numpy; its first step traces (the last column: every library's first step). torch.compile
compiles `torch_loss` (forward and backward); its first step spends seconds compiling, so
it runs in the first repeat only, and not with --quick.
First-step gradients of every library are checked against the floor's.""",
    libraries=tuple(LIBRARIES),
    # --quick: one configuration, one repeat (process start-up, torch's import above
    # all, is most of a quick run's time).
    sizes={"quick": CONFIGS[:1], "default": CONFIGS},
    quick_repeats=1,
    quick_libraries=without_compile(LIBRARIES),
    child=child,
    options={"rtol": lambda size: 1e-3 if size.endswith("32") else 1e-7,
             # A fresh process per library and configuration, as a training run is.
             "process_per_size": True,
             "columns": ("batch", "dtype"), "time": "per step",
             "ratios": {"vs numpy floor": "first", "vs PyTorch": "PyTorch"},
             "first_repeat_only": (TORCH_COMPILE,)},
)
