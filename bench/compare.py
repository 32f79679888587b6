"""tapegrad against its baseline and its peers, side by side in one run.

    python bench/compare.py            # default run, about 3.5 minutes
    python bench/compare.py --quick    # under 30 s
    python bench/compare.py --full     # adds the 1e6-op scalar graphs

Libraries: tapegrad, tapegrad.reference (the seed design in pure Python), and
PyTorch and HIPS autograd when installed. Each repeat runs every library in
turn (interleaved), and the tables show medians of the repeats. It prints the
tables, writes bench/RESULTS.md with the machine and the command, and a PNG
chart when matplotlib is present.

Workloads (DESIGN.md section 6):
- scalar: the recipe below on Python-float Tensors, 13 recorded ops per
  iteration, 8 inputs; forward and backward ns per op, and the memory the
  recorded graph holds per op (RSS growth, measured in a fresh process).
- elementwise: sum(tanh(x*w + b) * exp(-x*x) + log(1 + w*w) / (1 + b*b)) and its
  gradient w.r.t. x, w, b, at 1 to 1e6 float64 elements, next to the same
  gradient written by hand in numpy (the floor).
- mlp: a training step of a 64-128-128-10 MLP on scikit-learn's digits, batches
  64 and 1024, float32 and float64, next to the step written by hand in numpy.
- training loop: RSS after 1,000 and 10,000 PyTorch-style steps (backward(),
  no clear_history), tapegrad and PyTorch (not with --quick).
- hvp: a Hessian-vector product of the MLP loss w.r.t. all six parameters
  (double backward: the gradient with create_graph, then the gradient of its
  dot product with v), tapegrad and PyTorch, float64, batches 64 and 1024.
- gmm: ADBench's GMM objective with einsum, value and gradient, d = 10 and 64,
  k = 25 and 100, n = 1000, float64.
- lstsq: a regularised least-squares fit through np.linalg.solve, value and
  gradient, A of 256 x 64 and 2048 x 512, float64.
"""

from __future__ import annotations

import argparse
import gc
import importlib.metadata
import importlib.util
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

# One thread everywhere, as in ../shared/anchors; set before numpy loads BLAS.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

import tapegrad  # noqa: E402
from tapegrad import reference  # noqa: E402

HERE = Path(__file__).resolve().parent
OPS_PER_ITERATION = 13


# Peers are imported only by the child process that measures them: a loaded
# torch fills the heap that every full garbage collection walks.
torch = None
hips = None


def load_peer(name: str) -> None:
    global torch, hips
    if name == "PyTorch":
        import torch as module

        module.set_num_threads(1)
        torch = module
    elif name == "HIPS autograd":
        import warnings

        warnings.filterwarnings("ignore")  # its deprecation noise would bury the tables
        import autograd as module

        hips = module


def installed(name: str) -> bool:
    module = {"PyTorch": "torch", "HIPS autograd": "autograd"}.get(name)
    return module is None or importlib.util.find_spec(module) is not None


def peer_version(module: str) -> str | None:
    try:
        return importlib.metadata.version(module)
    except importlib.metadata.PackageNotFoundError:
        return None


# ---------------------------------------------------------------- scalar


def scalar_recipe(acc, x, y, p, n_iter, log, exp, sin, tanh):
    for k in range(n_iter):
        acc = acc * 0.999 + log(x) * y - sin(y) + tanh(p[k % 6] * acc) / (1 + exp(-x))
    return acc


SCALAR_INPUTS = [0.7, 1.3, 0.11, 0.23, 0.37, 0.41, 0.53, 0.67]


def scalar_plain(n_iter):
    x, y, *p = SCALAR_INPUTS
    t0 = time.perf_counter()
    scalar_recipe(0.5, x, y, p, n_iter, math.log, math.exp, math.sin, math.tanh)
    return time.perf_counter() - t0, None


def scalar_seed_style(module):
    def run(n_iter):
        module.clear_history()
        inputs = [module.Tensor(v) for v in SCALAR_INPUTS]
        x, y, *p = inputs
        t0 = time.perf_counter()
        acc = scalar_recipe(0.5, x, y, p, n_iter, module.log, module.exp, module.sin, module.tanh)
        t1 = time.perf_counter()
        grads = module.compute_gradients(acc, inputs)
        t2 = time.perf_counter()
        module.clear_history()
        return t1 - t0, t2 - t1, grads

    return run


def scalar_torch(n_iter):
    inputs = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in SCALAR_INPUTS]
    x, y, *p = inputs
    t0 = time.perf_counter()
    acc = scalar_recipe(0.5, x, y, p, n_iter, torch.log, torch.exp, torch.sin, torch.tanh)
    t1 = time.perf_counter()
    acc.backward()
    t2 = time.perf_counter()
    return t1 - t0, t2 - t1, [float(t.grad) for t in inputs]


def scalar_hips(n_iter):
    anp = hips.numpy

    def f(values):
        x, y, *p = values
        return scalar_recipe(0.5, x, y, p, n_iter, anp.log, anp.exp, anp.sin, anp.tanh)

    t0 = time.perf_counter()
    grads = hips.grad(f)(list(SCALAR_INPUTS))
    # HIPS autograd records and differentiates in one call: reported as total only.
    return time.perf_counter() - t0, None, [float(g) for g in grads]


def scalar_memory_child(library: str, n_iter: int) -> None:
    """Fresh process: RSS growth while the graph is held, printed as bytes per op."""

    def rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    module = {"tapegrad": tapegrad, "reference": reference}.get(library)
    gc.collect()
    if module is not None:
        module.clear_history()
        x, y, *p = [module.Tensor(v) for v in SCALAR_INPUTS]
        before = rss()
        acc = scalar_recipe(0.5, x, y, p, n_iter, module.log, module.exp, module.sin, module.tanh)
    elif library == "torch":
        load_peer("PyTorch")
        x, y, *p = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in SCALAR_INPUTS]
        before = rss()
        acc = scalar_recipe(0.5, x, y, p, n_iter, torch.log, torch.exp, torch.sin, torch.tanh)
    else:
        raise SystemExit(f"unknown library {library}")
    after = rss()
    print((after - before) / (n_iter * OPS_PER_ITERATION))
    del acc


def scalar_memory(library: str, n_iter: int) -> float | None:
    out = subprocess.run(
        [sys.executable, __file__, "--memory-child", library, str(n_iter)],
        capture_output=True, text=True, check=False,
    )
    try:
        return float(out.stdout.strip())
    except ValueError:
        return None


# ----------------------------------------------------------- elementwise


def elementwise_inputs(n):
    rng = np.random.default_rng(0)
    return [rng.uniform(0.1, 1.0, size=n) for _ in range(3)]


def elementwise_numpy(arrays):
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


def elementwise_f(lib, x, w, b):
    return lib.tanh(x * w + b) * lib.exp(-x * x) + lib.log(1 + w * w) / (1 + b * b)


def elementwise_seed_style(module, make=None):
    """compute_gradients on Tensors made from the arrays: by `make`, else module.Tensor."""
    make = make or module.Tensor

    def run(arrays):
        module.clear_history()
        t0 = time.perf_counter()
        inputs = [make(a) for a in arrays]
        y = elementwise_f(module, *inputs)
        grads = module.compute_gradients(y, inputs)  # seeded with ones: the gradient of sum(y)
        elapsed = time.perf_counter() - t0
        module.clear_history()
        return elapsed, grads

    return run


def elementwise_torch(arrays):
    t0 = time.perf_counter()
    inputs = [torch.from_numpy(a).requires_grad_() for a in arrays]
    elementwise_f(torch, *inputs).sum().backward()
    elapsed = time.perf_counter() - t0
    return elapsed, [t.grad.numpy() for t in inputs]


def elementwise_hips(arrays):
    anp = hips.numpy
    t0 = time.perf_counter()
    grads = hips.grad(lambda v: anp.sum(elementwise_f(anp, *v)))(list(arrays))
    return time.perf_counter() - t0, grads


# -------------------------------------------------------------------- mlp

MLP_SIZES = [64, 128, 128, 10]
MLP_LR = 0.05
MLP_CONFIGS = [(64, "float64"), (1024, "float64"), (64, "float32"), (1024, "float32")]


def mlp_data(batch, dtype, steps):
    """Batches of scikit-learn's digits (random ones of the same shape without it)."""
    try:
        from sklearn.datasets import load_digits

        digits = load_digits()
        x, labels = digits.data / 16.0, digits.target
    except ImportError:
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


def mlp_init(dtype):
    rng = np.random.default_rng(1)
    params = []
    for fan_in, fan_out in zip(MLP_SIZES[:-1], MLP_SIZES[1:]):
        bound = np.sqrt(6.0 / (fan_in + fan_out))
        params.append(rng.uniform(-bound, bound, size=(fan_in, fan_out)).astype(dtype))
        params.append(np.zeros(fan_out, dtype=dtype))
    return params


def tapegrad_mlp_loss(params, x, y):
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


def torch_mlp_loss(params, x, y):
    """The same loss in PyTorch, on numpy batches."""
    h = torch.from_numpy(x)
    for i in (0, 2):
        h = torch.tanh(h @ params[i] + params[i + 1])
    logits = h @ params[4] + params[5]
    return -(torch.log_softmax(logits, dim=1) * torch.from_numpy(y)).sum() / len(x)


def mlp_numpy():
    def make(dtype):
        w1, b1, w2, b2, w3, b3 = params = mlp_init(dtype)

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
                p -= MLP_LR * g
            return grads

        return step

    return make


def mlp_tapegrad():
    def make(dtype):
        params = [tapegrad.Tensor(a) for a in mlp_init(dtype)]

        def step(x, y):
            grads = tapegrad.compute_gradients(tapegrad_mlp_loss(params, x, y), params)
            tapegrad.clear_history()
            with tapegrad.no_grad():  # the tape let go of the values: updated in place
                for p, g in zip(params, grads):
                    p -= MLP_LR * g
            return grads

        return step

    return make


def mlp_torch():
    def make(dtype):
        params = [torch.from_numpy(a).requires_grad_() for a in mlp_init(dtype)]

        def step(x, y):
            torch_mlp_loss(params, x, y).backward()
            grads = []
            with torch.no_grad():
                for p in params:
                    grads.append(p.grad.numpy().copy())
                    p -= MLP_LR * p.grad
                    p.grad = None
            return grads

        return step

    return make


def mlp_hips():
    anp = hips.numpy

    def make(dtype):
        params = mlp_init(dtype)

        def loss(ps, x, y):
            h = x
            for i in (0, 2):
                h = anp.tanh(anp.dot(h, ps[i]) + ps[i + 1])
            logits = anp.dot(h, ps[4]) + ps[5]
            m = anp.max(logits, axis=1, keepdims=True)
            log_p = logits - m - anp.log(anp.sum(anp.exp(logits - m), axis=1, keepdims=True))
            return -anp.sum(log_p * y) / len(x)

        gradient = hips.grad(loss)

        def step(x, y):
            grads = gradient(params, x, y)
            for p, g in zip(params, grads):
                p -= MLP_LR * g
            return grads

        return step

    return make


MLP_LIBRARIES = {
    "numpy by hand (floor)": mlp_numpy,
    "tapegrad": mlp_tapegrad,
    "PyTorch": mlp_torch,
    "HIPS autograd": mlp_hips,
}


def mlp_child(library, configs):
    """Per config: seconds per training step, and the first step's gradients."""
    make = MLP_LIBRARIES[library]()
    out = {}
    for key in configs:
        batch, dtype = key.split("-")
        batch = int(batch)
        steps, warm_up = (40, 10) if batch <= 64 else (10, 10)
        step = make(dtype)
        batches = mlp_data(batch, dtype, steps + warm_up)
        first = step(*batches[0])
        # Warm-up, as a training loop is after its first steps: allocators settle
        # (tapegrad's buffer pool, glibc's heap for numpy and PyTorch alike).
        for x, y in batches[1:warm_up]:
            step(x, y)
        gc.collect()
        t0 = time.perf_counter()
        for x, y in batches[warm_up:]:
            step(x, y)
        out[key] = [(time.perf_counter() - t0) / steps,
                    [np.asarray(g, dtype=float).ravel()[:40].tolist() for g in first]]
    return out


# ---------------------------------------------------- Hessian-vector product

HVP_BATCHES = [64, 1024]


def hvp_child(library, batches):
    """Seconds per Hessian-vector product of the MLP loss, and the first product."""
    rng = np.random.default_rng(2)
    init = mlp_init("float64")
    vs = [rng.normal(size=a.shape) for a in init]
    if library == "tapegrad":
        params = [tapegrad.Tensor(a) for a in init]

        def product(x, y):
            grads = tapegrad.grad(tapegrad_mlp_loss(params, x, y), params, create_graph=True)
            dot = sum((g * v).sum() for g, v in zip(grads, vs))
            return [h.data for h in tapegrad.grad(dot, params)]
    else:
        params = [torch.from_numpy(a).requires_grad_() for a in init]
        tvs = [torch.from_numpy(v) for v in vs]

        def product(x, y):
            grads = torch.autograd.grad(torch_mlp_loss(params, x, y), params, create_graph=True)
            dot = sum((g * v).sum() for g, v in zip(grads, tvs))
            return [h.numpy() for h in torch.autograd.grad(dot, params)]

    out = {}
    for batch in batches:
        steps = 20 if batch <= 64 else 5
        data = mlp_data(batch, "float64", steps + 3)
        first = product(*data[0])
        for x, y in data[1:3]:
            product(x, y)
        gc.collect()
        t0 = time.perf_counter()
        for x, y in data[3:]:
            product(x, y)
        out[batch] = [(time.perf_counter() - t0) / steps,
                      [np.asarray(h).ravel()[:40].tolist() for h in first]]
    return out


def bench_hvp(batches, repeats):
    names = available(["tapegrad", "PyTorch"])
    samples = {}
    for _ in range(repeats):
        for name in names:
            for batch, (seconds, products) in spawn("hvp", name, batches).items():
                samples.setdefault((batch, name), []).append(seconds)
                truth = samples.setdefault((batch, "products"), products)
                check_close(f"{name} (hvp, batch {batch})", products, truth, 1e-7)
    rows = []
    for batch in batches:
        torch_time = median_of(samples.get((batch, "PyTorch"), []))
        for name in names:
            m = median_of(samples[(batch, name)])
            rows.append((batch, name, m, m / torch_time if torch_time else None))
    return rows


def hvp_table(rows):
    lines = ["| batch | library | per Hessian-vector product | vs PyTorch |", "|---|---|---|---|"]
    for batch, name, t, vs_torch in rows:
        lines.append(f"| {batch} | {name} | {fmt_time(t)} | "
                     f"{'–' if vs_torch is None else f'{vs_torch:.2f}x'} |")
    return "\n".join(lines)


# ------------------------------------------------------------------ GMM

# ADBench's GMM objective (Srajer et al. 2018), as its PyTorch version writes it
# with einsum: d dimensions, k components, n points; gamma = 1, m = 0.
GMM_CONFIGS = [(10, 25), (64, 25), (10, 100), (64, 100)]
GMM_POINTS = 1000
GMM_GAMMA, GMM_M = 1.0, 0


def gmm_data(d, k, n=GMM_POINTS):
    """alphas (k), means (k, d), icf (k, d(d+1)/2) and the points x (n, d)."""
    rng = np.random.default_rng(3)
    return (rng.normal(size=k), rng.normal(size=(k, d)),
            rng.normal(size=(k, d * (d + 1) // 2)) * 0.1, rng.normal(size=(n, d)))


def gmm_tril_index(d):
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
    big_n = d + GMM_M + 1
    squares = m.sum(qdiag * qdiag, 1) + m.sum(icf[:, d:] * icf[:, d:], 1)
    prior = m.sum(0.5 * GMM_GAMMA * GMM_GAMMA * squares - GMM_M * sum_qs, None)
    log_c = big_n * d * math.log(GMM_GAMMA / math.sqrt(2)) - multigammaln(0.5 * big_n, d)
    prior = prior - k * log_c
    return const + m.sum(m.logsumexp(inner, 1), None) - n * m.logsumexp(alphas, 0) + prior


class _NumpyOnTensors:
    """numpy's own functions, called on Tensors (they record through dispatch)."""

    exp = staticmethod(np.exp)
    einsum = staticmethod(np.einsum)
    concatenate = staticmethod(np.concatenate)

    @staticmethod
    def sum(x, axis):
        return np.sum(x, axis=axis)

    @staticmethod
    def logsumexp(x, axis):
        return tapegrad.logsumexp(x, axis=axis)


def gmm_tapegrad(alphas, means, icf, x):
    params = [tapegrad.Tensor(a) for a in (alphas, means, icf)]
    index = gmm_tril_index(x.shape[1])

    def step():
        value = gmm_objective(_NumpyOnTensors, *params, x, index)
        return value.item(), [g.data for g in tapegrad.grad(value, params)]

    return step


def gmm_torch(alphas, means, icf, x):
    params = [torch.from_numpy(a).requires_grad_() for a in (alphas, means, icf)]
    points = torch.from_numpy(x)
    index = torch.from_numpy(gmm_tril_index(x.shape[1]))

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

    def step():
        value = gmm_objective(Torch, *params, points, index)
        grads = torch.autograd.grad(value, params)
        return value.item(), [g.numpy() for g in grads]

    return step


def gmm_hips(alphas, means, icf, x):
    from autograd.scipy.special import logsumexp

    anp = hips.numpy
    index = gmm_tril_index(x.shape[1])

    class Hips:
        exp = staticmethod(anp.exp)
        einsum = staticmethod(anp.einsum)
        concatenate = staticmethod(anp.concatenate)

        @staticmethod
        def sum(t, axis):
            return anp.sum(t, axis=axis)

        @staticmethod
        def logsumexp(t, axis):
            return logsumexp(t, axis=axis)

    value_and_grad = hips.value_and_grad(
        lambda params: gmm_objective(Hips, *params, x, index))

    def step():
        value, grads = value_and_grad([alphas, means, icf])
        return float(value), [np.asarray(g) for g in grads]

    return step


GMM_LIBRARIES = {"tapegrad": gmm_tapegrad, "PyTorch": gmm_torch, "HIPS autograd": gmm_hips}


def gmm_child(library, configs):
    """Per (d, k): seconds per value and gradient, the value, and gradient samples."""
    return objective_child(
        configs, lambda d, k: GMM_LIBRARIES[library](*gmm_data(d, k)),
        lambda d, k: 3 if d * k >= 64 * 100 else 5)


def objective_child(configs, make_step, steps_for):
    """Per "a-b" config: seconds per call of make_step(a, b)'s step (after one
    warm-up call: allocators settle, einsum plans are cached), the value, and
    gradient samples."""
    out = {}
    for key in configs:
        a, b = map(int, key.split("-"))
        step = make_step(a, b)
        value, grads = step()
        step()
        steps = steps_for(a, b)
        gc.collect()
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        out[key] = [(time.perf_counter() - t0) / steps, value,
                    [np.asarray(g).ravel()[:40].tolist() for g in grads]]
    return out


def bench_gmm(configs, repeats):
    return bench_objective("gmm", GMM_LIBRARIES, [f"{d}-{k}" for d, k in configs], repeats)


def bench_objective(workload, libraries, keys, repeats):
    """Interleaved repeats of a value-and-gradient workload in fresh processes: medians,
    values checked against the first library's to 1e-10 and gradients to 1e-8."""
    names = available(list(libraries))
    samples = {}
    for _ in range(repeats):
        for name in names:
            for key, (seconds, value, grads) in spawn(workload, name, keys).items():
                samples.setdefault((key, name), []).append(seconds)
                want = samples.setdefault((key, "value"), value)
                if abs(value - want) > 1e-10 * abs(want):
                    raise SystemExit(f"{name} ({workload} {key}): objective {value!r}, "
                                     f"the first library's {want!r}")
                truth = samples.setdefault((key, "grads"), grads)
                check_close(f"{name} ({workload} {key})", grads, truth, 1e-8)
    rows = []
    for key in keys:
        torch_time = median_of(samples.get((key, "PyTorch"), []))
        for name in names:
            t = median_of(samples[(key, name)])
            rows.append((key, name, t, t / torch_time if torch_time else None))
    return rows


def gmm_table(rows):
    return objective_table(rows, "| d | k ")


def objective_table(rows, columns):
    """Rows of bench_objective under the config's two named columns ("| d | k ")."""
    lines = [f"{columns}| library | value and gradient | vs PyTorch |", "|---|---|---|---|---|"]
    for key, name, t, vs_torch in rows:
        a, b = key.split("-")
        lines.append(f"| {a} | {b} | {name} | {fmt_time(t)} | "
                     f"{'–' if vs_torch is None else f'{vs_torch:.2f}x'} |")
    return "\n".join(lines)


# ---------------------------------------------------------- least squares

# A regularised least-squares fit through np.linalg.solve: x = solve(A^T A + I, A^T b),
# loss = |A x - b|^2, and its gradient w.r.t. A and b (n points, d unknowns).
LSTSQ_CONFIGS = [(256, 64), (2048, 512)]


def lstsq_data(n, d):
    rng = np.random.default_rng(5)
    return rng.normal(size=(n, d)) / math.sqrt(d), rng.normal(size=(n, 1))


def lstsq_objective(m, a, b):
    """Written once; m supplies solve, eye_like and sum (numpy's on Tensors, torch's, HIPS's)."""
    gram = a.T @ a + m.eye(a.shape[1])
    x = m.solve(gram, a.T @ b)
    r = a @ x - b
    return m.sum(r * r)


def lstsq_tapegrad(a, b):
    params = [tapegrad.Tensor(v) for v in (a, b)]

    class Numpy:
        solve = staticmethod(np.linalg.solve)
        eye = staticmethod(np.eye)
        sum = staticmethod(np.sum)

    def step():
        value = lstsq_objective(Numpy, *params)
        return value.item(), [g.data for g in tapegrad.grad(value, params)]

    return step


def lstsq_torch(a, b):
    params = [torch.from_numpy(v).requires_grad_() for v in (a, b)]

    class Torch:
        solve = staticmethod(torch.linalg.solve)
        sum = staticmethod(torch.sum)

        @staticmethod
        def eye(n):
            return torch.eye(n, dtype=torch.float64)

    def step():
        value = lstsq_objective(Torch, *params)
        grads = torch.autograd.grad(value, params)
        return value.item(), [g.numpy() for g in grads]

    return step


def lstsq_hips(a, b):
    anp = hips.numpy

    class Hips:
        solve = staticmethod(anp.linalg.solve)
        eye = staticmethod(anp.eye)
        sum = staticmethod(anp.sum)

    value_and_grad = hips.value_and_grad(lambda params: lstsq_objective(Hips, *params))

    def step():
        value, grads = value_and_grad([a, b])
        return float(value), [np.asarray(g) for g in grads]

    return step


LSTSQ_LIBRARIES = {"tapegrad": lstsq_tapegrad, "PyTorch": lstsq_torch,
                   "HIPS autograd": lstsq_hips}


def lstsq_child(library, configs):
    """Per (n, d): seconds per value and gradient, the value, and gradient samples."""
    return objective_child(configs, lambda n, d: LSTSQ_LIBRARIES[library](*lstsq_data(n, d)),
                           lambda n, d: 5 if d >= 512 else 50)


def bench_lstsq(configs, repeats):
    return bench_objective("lstsq", LSTSQ_LIBRARIES, [f"{n}-{d}" for n, d in configs], repeats)


def lstsq_table(rows):
    return objective_table(rows, "| n | d ")


# ---------------------------------------------------------- training loop


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def loop_child(library: str) -> dict:
    """PyTorch-style steps (backward(), update in no_grad, no clear_history): RSS over time."""
    batches = mlp_data(64, "float64", 64)
    if library == "tapegrad":
        params = [tapegrad.Tensor(a) for a in mlp_init("float64")]

        def step(x, y):
            tapegrad_mlp_loss(params, x, y).backward()
            with tapegrad.no_grad():
                for p in params:
                    p -= MLP_LR * p.grad
                    p.grad = None
    else:
        params = [torch.from_numpy(a).requires_grad_() for a in mlp_init("float64")]

        def step(x, y):
            torch_mlp_loss(params, x, y).backward()
            with torch.no_grad():
                for p in params:
                    p -= MLP_LR * p.grad
                    p.grad = None

    out = {}
    for k in range(10_000):
        step(*batches[k % len(batches)])
        if k + 1 in (1_000, 10_000):
            out[k + 1] = rss_bytes()
    return out


def bench_loop():
    rows = []
    for name in available(["tapegrad", "PyTorch"]):
        result = spawn("loop", name, [])
        rows.append((name, result[1_000], result[10_000]))
    return rows


def loop_table(rows):
    lines = ["| library | RSS after 1,000 steps | after 10,000 steps | growth |",
             "|---|---|---|---|"]
    for name, early, late in rows:
        lines.append(f"| {name} | {early / 2**20:.1f} MiB | {late / 2**20:.1f} MiB | "
                     f"{(late - early) / 2**20:+.1f} MiB |")
    return "\n".join(lines)


# ------------------------------------------------------- array-op overhead

# name -> the call, on 1-element arrays t and u (Tensors that require grad, or
# the ndarrays themselves for numpy's own time).
OVERHEAD_OPS = {
    "t + u": lambda m, t, u: t + u,
    "tanh(t)": lambda m, t, u: m.tanh(t),
    "t.sum()": lambda m, t, u: t.sum(),
    "t @ u": lambda m, t, u: t @ u,
    "log_softmax(t)": lambda m, t, u: m.log_softmax(t, axis=-1),  # numpy: 6 calls
    "t.reshape(1, 1)": lambda m, t, u: t.reshape(1, 1),
    "t.T": lambda m, t, u: t.T,
    "t[0]": lambda m, t, u: t[0],
    "maximum(t, u)": lambda m, t, u: m.maximum(t, u),
    "np.exp(t)": lambda m, t, u: np.exp(t),
}


class _NumpyOps:
    """numpy's spelling of the ops tapegrad has as functions."""

    tanh = staticmethod(np.tanh)
    maximum = staticmethod(np.maximum)

    @staticmethod
    def log_softmax(x, axis):
        m = x.max(axis=axis, keepdims=True)
        return x - m - np.log(np.exp(x - m).sum(axis=axis, keepdims=True))


def overhead_child(repeats: int) -> dict:
    """Per op on 1-element arrays: tapegrad's time (computed and recorded) and numpy's."""
    t_np, u_np = np.array([[0.5]]), np.array([[0.25]])
    out = {}
    for name, op in OVERHEAD_OPS.items():
        times = {"tapegrad": [], "numpy": []}
        for _ in range(repeats):
            for lib in times:
                if lib == "tapegrad":
                    tapegrad.clear_history()
                    args = (tapegrad, tapegrad.Tensor(t_np), tapegrad.Tensor(u_np))
                else:
                    args = (_NumpyOps, t_np, u_np)
                n = 2_000
                t0 = time.perf_counter()
                for _ in range(n):
                    op(*args)
                times[lib].append((time.perf_counter() - t0) / n)
        tapegrad.clear_history()
        out[name] = [median_of(times["tapegrad"]), median_of(times["numpy"])]
    return out


def bench_overhead(repeats):
    result = spawn("overhead", "tapegrad", [repeats])
    return [(name, t, n) for name, (t, n) in result.items()]


def overhead_table(rows):
    lines = ["| op | tapegrad (computed and recorded) | numpy | overhead |",
             "|---|---|---|---|"]
    for name, t, n in rows:
        extra = fmt_time(t - n) if t > n else "none (faster than numpy's spelling)"
        lines.append(f"| `{name}` | {fmt_time(t)} | {fmt_time(n)} | {extra} |")
    return "\n".join(lines)


# ---------------------------------------------------------------- driver


def median_of(samples):
    return statistics.median(samples) if samples else None


def fmt(value, unit=""):
    if value is None:
        return "–"
    if value >= 100:
        return f"{value:,.0f}{unit}"
    if value >= 10:
        return f"{value:.1f}{unit}"
    return f"{value:.2f}{unit}"


def fmt_time(seconds):
    if seconds is None:
        return "–"
    for unit, scale in (("s", 1), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return fmt(seconds / scale, " " + unit)
    return fmt(seconds / 1e-9, " ns")


def check_close(name, got, want, rtol):
    for g, w in zip(got, want):
        if not np.allclose(np.asarray(g, dtype=float), np.asarray(w, dtype=float), rtol=rtol,
                           atol=1e-9):
            raise SystemExit(f"{name}: gradients disagree with tapegrad; benchmark aborted")


SCALAR_LIBRARIES = {
    "tapegrad": lambda: scalar_seed_style(tapegrad),
    "reference": lambda: scalar_seed_style(reference),
    "PyTorch": lambda: scalar_torch,
    "HIPS autograd": lambda: scalar_hips,
}
ELEMENTWISE_LIBRARIES = {
    "numpy by hand (floor)": lambda: elementwise_numpy,
    # Sharing the inputs, as PyTorch's from_numpy does; Tensor(a) copies them
    # (a recorded gradient must not see later writes), measured on the next row.
    "tapegrad": lambda: elementwise_seed_style(
        tapegrad, lambda a: tapegrad.as_tensor(a, requires_grad=True)),
    "tapegrad, Tensor(a) copies": lambda: elementwise_seed_style(tapegrad),
    "reference": lambda: elementwise_seed_style(reference),
    "PyTorch": lambda: elementwise_torch,
    "HIPS autograd": lambda: elementwise_hips,
}


def available(names):
    return [n for n in names if installed(n)]


def child(workload: str, library: str, sizes: list) -> None:
    """Runs in a fresh process: one library, one workload, every size once; prints JSON.

    A fresh process per library keeps one library's objects from slowing another's
    garbage collection (a full collection walks every tracked object).
    """
    load_peer(library)
    if workload == "loop":
        print(json.dumps(loop_child(library)))
        return
    if workload == "mlp":
        print(json.dumps(mlp_child(library, sizes)))
        return
    if workload == "hvp":
        print(json.dumps(hvp_child(library, sizes)))
        return
    if workload == "overhead":
        print(json.dumps(overhead_child(int(sizes[0]))))
        return
    if workload == "gmm":
        print(json.dumps(gmm_child(library, sizes)))
        return
    if workload == "lstsq":
        print(json.dumps(lstsq_child(library, sizes)))
        return
    if workload == "scalar":
        run = SCALAR_LIBRARIES[library]()
        out = {}
        for n_ops in sizes:
            # Twice: the first run touches fresh memory (cold); the second is what
            # a loop that records and differentiates again and again sees (warm).
            n_iter = n_ops // OPS_PER_ITERATION
            gc.collect()
            cold_fwd, cold_bwd, _ = run(n_iter)
            cold = cold_fwd + (cold_bwd or 0.0)
            gc.collect()
            fwd, bwd, grads = run(n_iter)
            plain, _ = scalar_plain(n_iter)
            out[n_ops] = [fwd, bwd, cold, plain, [float(g) for g in grads]]
    else:
        run = ELEMENTWISE_LIBRARIES[library]()
        out = {}
        for n in sizes:
            arrays = elementwise_inputs(n)
            # Small sizes: time a batch of calls. Every size: a loop's steady state,
            # after warm-up calls (allocators, tapegrad's buffer pool), timing
            # several calls, since 8 MB arrays fault pages on some calls only.
            inner = max(5, min(200, 20_000 // n))
            for _ in range(3):
                run(arrays)
            gc.collect()
            elapsed = 0.0
            for _ in range(inner):
                t, grads = run(arrays)
                elapsed += t
            out[n] = [elapsed / inner, [np.asarray(g).ravel()[:50].tolist() for g in grads]]
    print(json.dumps(out))


def spawn(workload: str, library: str, sizes: list) -> dict:
    result = subprocess.run(
        [sys.executable, __file__, "--child", workload, library, *map(str, sizes)],
        capture_output=True, text=True, check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"{library} ({workload}) failed:\n{result.stderr[-2000:]}")
    parsed = json.loads(result.stdout.strip().splitlines()[-1])
    if workload in ("mlp", "overhead", "gmm", "lstsq"):
        return parsed
    return {int(k): v for k, v in parsed.items()}  # sizes, or the loop's step counts


def bench_scalar(sizes, repeats, with_memory):
    names = available(list(SCALAR_LIBRARIES))
    samples = {}  # (ops, name) -> ([fwd], [bwd])

    def keep(n_ops, name):
        if name == "PyTorch" and n_ops >= 1_000_000:
            return False  # PyTorch crashes freeing a 1e6-op graph (anchors/peers.md)
        return not (name == "HIPS autograd" and n_ops > 100_000)  # minutes per run

    for _ in range(repeats):
        for name in names:
            wanted = [n for n in sizes if keep(n, name)]
            for n_ops, (fwd, bwd, cold, plain, grads) in spawn("scalar", name, wanted).items():
                fw, bw, cl = samples.setdefault((n_ops, name), ([], [], []))
                fw.append(fwd)
                cl.append(cold)
                if bwd is not None:
                    bw.append(bwd)
                samples.setdefault((n_ops, "Python floats, no AD"), ([], [], []))[0].append(plain)
                truth = samples.setdefault((n_ops, "grads"), grads)
                check_close(name, grads, truth, 1e-8)
    rows = []
    for n_ops in sizes:
        ops = (n_ops // OPS_PER_ITERATION) * OPS_PER_ITERATION
        for name in ["Python floats, no AD", *names]:
            if (n_ops, name) not in samples:
                why = {"PyTorch": "skipped: PyTorch crashes freeing a 1e6-op graph (anchors)",
                       "HIPS autograd": "skipped: minutes per run at this size"}
                rows.append((ops, name, None, None, None, None, None, why.get(name, "skipped")))
                continue
            fw, bw, cl = samples[(n_ops, name)]
            f, b, c = median_of(fw), median_of(bw), median_of(cl)
            memory = None
            if with_memory and n_ops == 100_000:
                key = {"tapegrad": "tapegrad", "reference": "reference",
                       "PyTorch": "torch"}.get(name)
                memory = scalar_memory(key, n_ops // OPS_PER_ITERATION) if key else None
            total = f + b if b is not None else f
            rows.append((ops, name, f / ops * 1e9, b / ops * 1e9 if b is not None else None,
                         total / ops * 1e9, c / ops * 1e9 if c is not None else None, memory, ""))
    return rows


def bench_elementwise(sizes, repeats):
    names = available(list(ELEMENTWISE_LIBRARIES))
    samples = {}
    for _ in range(repeats):
        for name in names:
            for n, (elapsed, grads) in spawn("elementwise", name, sizes).items():
                samples.setdefault((n, name), []).append(elapsed)
                truth = samples.setdefault((n, "grads"), grads)
                check_close(name, grads, truth, 1e-9)
    rows = []
    for n in sizes:
        floor = median_of(samples[(n, names[0])])
        for name in names:
            m = median_of(samples[(n, name)])
            rows.append((n, name, m, m / floor))
    return rows


def bench_mlp(configs, repeats):
    names = available(list(MLP_LIBRARIES))
    keys = [f"{batch}-{dtype}" for batch, dtype in configs]
    samples = {}
    for _ in range(repeats):
        # A fresh process per library and configuration, as a training run is:
        # what one configuration leaves behind (allocator state, a buffer pool
        # full of another size) does not slow the next.
        for key in keys:
            for name in names:
                for k, (seconds, grads) in spawn("mlp", name, [key]).items():
                    samples.setdefault((k, name), []).append(seconds)
                    truth = samples.setdefault((k, "grads"), grads)
                    check_close(f"{name} ({k})", grads, truth, 1e-3 if "32" in k else 1e-7)
    rows = []
    for key in keys:
        floor = median_of(samples[(key, names[0])])
        torch_time = median_of(samples.get((key, "PyTorch"), []))
        for name in names:
            m = median_of(samples[(key, name)])
            rows.append((key, name, m, m / floor, m / torch_time if torch_time else None))
    return rows


def mlp_table(rows):
    lines = ["| batch | dtype | library | per step | vs numpy floor | vs PyTorch |",
             "|---|---|---|---|---|---|"]
    for key, name, t, vs_floor, vs_torch in rows:
        batch, dtype = key.split("-")
        lines.append(f"| {batch} | {dtype} | {name} | {fmt_time(t)} | {vs_floor:.2f}x | "
                     f"{'–' if vs_torch is None else f'{vs_torch:.2f}x'} |")
    return "\n".join(lines)


def machine_description():
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    parts = [f"{os.cpu_count()}-core {platform.machine()} ({cpu})",
             f"Python {platform.python_version()}", f"numpy {np.__version__}",
             f"tapegrad {tapegrad.__version__}"]
    for module in ("torch", "autograd"):
        version = peer_version(module)
        if version:
            parts.append(f"{module} {version}")
    return ", ".join(parts)


def scalar_table(rows):
    lines = ["| ops | library | forward ns/op | backward ns/op | total ns/op | vs tapegrad | "
             "first run, total ns/op | graph memory B/op |", "|---|---|---|---|---|---|---|---|"]
    ours = {r[0]: r[4] for r in rows if r[1] == "tapegrad"}
    for ops, name, f, b, total, cold, memory, note in rows:
        if note:
            lines.append(f"| {ops:,} | {name} | {note} | | | | | |")
            continue
        ratio = f"{total / ours[ops]:.1f}x" if name != "tapegrad" else "1x"
        lines.append(f"| {ops:,} | {name} | {fmt(f)} | {fmt(b)} | {fmt(total)} | {ratio} | "
                     f"{fmt(cold)} | {fmt(memory)} |")
    return "\n".join(lines)


def elementwise_table(rows):
    lines = ["| elements | library | forward + backward | vs numpy floor |", "|---|---|---|---|"]
    for n, name, t, ratio in rows:
        lines.append(f"| {n:,} | {name} | {fmt_time(t)} | {ratio:.2f}x |")
    return "\n".join(lines)


def write_chart(scalar_rows, elementwise_rows, path):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    largest = max(ops for ops, *_ in scalar_rows)
    names = [r[1] for r in scalar_rows if r[0] == largest and r[4] is not None]
    totals = [r[4] for r in scalar_rows if r[0] == largest and r[4] is not None]
    left.barh(names, totals, color="tab:blue")
    left.set_xscale("log")
    left.set_xlabel("ns per recorded op (forward + backward), log scale")
    left.set_title(f"scalar recipe, {largest:,} ops")
    for name in dict.fromkeys(r[1] for r in elementwise_rows):
        points = [(n, t) for n, nm, t, _ in elementwise_rows if nm == name]
        right.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=name)
    right.set_xscale("log")
    right.set_yscale("log")
    right.set_xlabel("elements")
    right.set_ylabel("seconds per forward + backward")
    right.set_title("elementwise chain, float64")
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return True


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--quick", action="store_true", help="small sizes, few repeats (< 30 s)")
    group.add_argument("--full", action="store_true", help="add the 1e6-op scalar graphs")
    parser.add_argument("--repeats", type=int, help="repeats per measurement (median taken)")
    parser.add_argument("--output", default=str(HERE / "RESULTS.md"), help="results file")
    parser.add_argument("--memory-child", nargs=2, metavar=("LIB", "N"), help=argparse.SUPPRESS)
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        sizes = (args.child[2:] if args.child[0] in ("mlp", "gmm", "lstsq")
                 else [int(n) for n in args.child[2:]])
        child(args.child[0], args.child[1], sizes)
        return
    if args.memory_child:
        scalar_memory_child(args.memory_child[0], int(args.memory_child[1]))
        return

    if args.quick:
        scalar_sizes, element_sizes, repeats = [10_000], [1, 100, 10_000], args.repeats or 3
    elif args.full:
        scalar_sizes, element_sizes = [10_000, 100_000, 1_000_000], [1, 100, 10_000, 1_000_000]
        repeats = args.repeats or 5
    else:
        scalar_sizes, element_sizes = [10_000, 100_000], [1, 100, 10_000, 1_000_000]
        repeats = args.repeats or 5
    command = "python bench/compare.py" + "".join(f" {a}" for a in (argv or sys.argv[1:]))
    started = time.perf_counter()
    scalar_rows = bench_scalar(scalar_sizes, repeats, with_memory=not args.quick)
    elementwise_rows = bench_elementwise(element_sizes, repeats)
    overhead_rows = bench_overhead(repeats)
    # --quick: one MLP config, one repeat (process start-up, torch's import above
    # all, is most of a quick run's time).
    mlp_rows = bench_mlp(MLP_CONFIGS[:1] if args.quick else MLP_CONFIGS,
                         1 if args.quick else repeats)
    loop_rows = [] if args.quick else bench_loop()
    hvp_rows = bench_hvp(HVP_BATCHES[:1] if args.quick else HVP_BATCHES,
                         1 if args.quick else repeats)
    gmm_rows = bench_gmm(GMM_CONFIGS[:1] if args.quick else GMM_CONFIGS,
                         1 if args.quick else repeats)
    lstsq_rows = bench_lstsq(LSTSQ_CONFIGS[:1] if args.quick else LSTSQ_CONFIGS,
                             1 if args.quick else repeats)
    elapsed = time.perf_counter() - started

    scalar_text = scalar_table(scalar_rows)
    elementwise_text = elementwise_table(elementwise_rows)
    print(f"Scalar recipe (13 recorded ops per iteration; ns per op, medians of {repeats})")
    print(scalar_text)
    print()
    print("Elementwise chain (float64, forward + backward per call)")
    print(elementwise_text)
    print()
    overhead_text = overhead_table(overhead_rows)
    print("Array-op overhead (1-element arrays, per op)")
    print(overhead_text)
    print()
    mlp_text = mlp_table(mlp_rows)
    print("MLP training step (64-128-128-10, tanh, softmax cross-entropy, SGD)")
    print(mlp_text)
    loop_text = loop_table(loop_rows) if loop_rows else "(not run with --quick)"
    print()
    print("Training loop memory (PyTorch-style steps, no clear_history)")
    print(loop_text)
    hvp_text = hvp_table(hvp_rows)
    print()
    print("Hessian-vector product of the MLP loss (float64)")
    print(hvp_text)
    gmm_text = gmm_table(gmm_rows)
    print()
    print(f"GMM objective (ADBench, n={GMM_POINTS}), value and gradient")
    print(gmm_text)
    lstsq_text = lstsq_table(lstsq_rows)
    print()
    print("Least-squares fit through np.linalg.solve, value and gradient")
    print(lstsq_text)
    chart = Path(args.output).with_suffix(".png")
    has_chart = write_chart(scalar_rows, elementwise_rows, chart)
    digits = importlib.util.find_spec("sklearn") is not None
    data_note = ("scikit-learn's digits" if digits else
              "random data of the digits' shape (scikit-learn is not installed)")
    env_note = ", ".join(f"{k}={os.environ[k]}" for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
                         if k in os.environ) or "OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset"
    text = f"""# Benchmark results

Written by `bench/compare.py`; do not edit by hand.

- Command: `{command}` ({elapsed:.0f} s)
- Machine: {machine_description()}
- One thread (OMP/OPENBLAS/MKL_NUM_THREADS=1, torch.set_num_threads(1)); {env_note};
  Python's garbage collector on, as users run. Medians of {repeats} interleaved repeats.
- Each library runs in its own fresh process per repeat, so one library's objects never
  slow another's garbage collection. Gradients of every library are checked against the
  first library's.

## Scalar recipe
`acc = acc*0.999 + log(x)*y - sin(y) + tanh(p[k%6]*acc) / (1 + exp(-x))`, 13 recorded ops
per iteration, gradient w.r.t. x, y, p0..p5. Each process runs every size twice: the
forward, backward and total columns are the second run (what a loop that records and
differentiates again and again sees: buffers warm); "first run" is the first, which also
pays for touching fresh memory. Graph memory: RSS growth while the recorded graph is held,
in a fresh process, at 1e5 ops. HIPS autograd records and differentiates in one call, so
only its total is shown.

{scalar_text}

## Elementwise chain
`sum(tanh(x*w + b) * exp(-x*x) + log(1 + w*w) / (1 + b*b))`, gradient w.r.t. x, w, b (all
arrays of the given size). The floor is the same gradient written by hand in numpy. Per
call, after 3 warm-up calls (a loop's steady state), averaged over at least 5 calls.

{elementwise_text}

## Array-op overhead
What an array op costs beyond numpy's own work: each op on 1-element float64 arrays (`t`
and `u`, shape (1, 1)), 2,000 times in a row, computed and recorded by tapegrad (Tensors
that require grad), and the same call on the ndarrays; medians of {repeats} batches, per op.

{overhead_text}

## MLP training step
64-128-128-10 with tanh, softmax cross-entropy and SGD on {data_note}: forward, gradients of
all six parameters and the update, per step, after 10 warm-up steps (a training loop's
steady state). The floor is the same step with the backward written by hand in numpy.
First-step gradients of every library are checked against the floor's.

{mlp_text}

## Training loop memory
The batch-64 MLP step written PyTorch-style: `loss.backward()`, the update inside
`no_grad()`, `.grad` reset, and no `clear_history()`. RSS of the process after 1,000 and
after 10,000 steps; flat means the records of finished steps are reclaimed.

{loop_text}

## Hessian-vector product
The batch's MLP loss (float64), differentiated twice: `grad(loss, params,
create_graph=True)`, then the gradient of `sum(g * v)` for a fixed random `v`, w.r.t. all
six parameters; per product, after 2 warm-up products. The products are checked against
the first library's.

{hvp_text}

## GMM objective
ADBench's Gaussian mixture objective (Srajer et al. 2018: log-sum-exp over k components of
n = {GMM_POINTS} points in d dimensions, lower-triangular Cholesky-style factors with
exponentiated diagonals, Wishart prior with gamma = 1, m = 0), written once for every
library with `einsum("ijk,mik->mij", L, xc)` for the factors' products, as ADBench's
PyTorch version writes it; float64. Per value and gradient w.r.t. alphas, means and icf,
after one warm-up call. Values are checked against the first library's to 1e-10, gradients
to 1e-8.

{gmm_text}

## Least squares through `np.linalg.solve`
x = solve(AᵀA + I, Aᵀb), loss = |Ax − b|² for A of n × d and b of n × 1, float64, written
once for every library; per value and gradient w.r.t. A and b, after one warm-up call.
Values are checked against the first library's to 1e-10, gradients to 1e-8.

{lstsq_text}
"""
    if has_chart:
        text += f"\n![chart]({chart.name})\n"
    Path(args.output).write_text(text)
    wrote = args.output + (f" and {chart}" if has_chart else "")
    print(f"\nwrote {wrote} in {elapsed:.0f} s")


if __name__ == "__main__":
    main()
