"""Forward + backward of each linear-algebra function: tapegrad against PyTorch.

float64, one thread for BLAS/LAPACK and torch (set before numpy is imported);
times are this process's CPU time (time.process_time). For each op and size,
tapegrad's and torch's timings alternate, one batch of calls each per repeat,
and the medians of the per-call times are reported with their ratio. Each call
computes the op, a weighted sum of all its outputs, and the gradient with respect
to the input matrix.

    python bench/linalg_speed.py [--sizes 64 512] [--repeats 7] [--ops inv det ...]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import numpy as np  # noqa: E402
import torch  # noqa: E402

import tapegrad as tg  # noqa: E402
from tapegrad import linalg as la  # noqa: E402
from tapegrad.scipy import linalg as sla  # noqa: E402

torch.set_num_threads(1)


def _sym(x):
    return (x + x.T) * 0.5


def _spd(x, lib):
    n = x.shape[-1]
    eye = np.eye(n) if lib == "tg" else torch.eye(n, dtype=torch.float64)
    return x @ x.T / n + eye


# name -> (tapegrad fn(x, extra), torch fn(x, extra), input kind); each returns a list of outputs.
OPS = {
    "inv": (lambda x, e: [la.inv(x)], lambda x, e: [torch.linalg.inv(x)], "gen"),
    "det": (lambda x, e: [la.det(x)], lambda x, e: [torch.linalg.det(x)], "gen"),
    "slogdet": (lambda x, e: [la.slogdet(x)[1]], lambda x, e: [torch.linalg.slogdet(x)[1]], "gen"),
    "solve": (lambda x, e: [la.solve(x, e)], lambda x, e: [torch.linalg.solve(x, e)], "gen"),
    "cholesky": (lambda x, e: [la.cholesky(x)], lambda x, e: [torch.linalg.cholesky(x)], "spd"),
    "eigh": (lambda x, e: list(la.eigh(x)), lambda x, e: list(torch.linalg.eigh(x)), "sym"),
    "svd": (lambda x, e: list(la.svd(x, full_matrices=False)),
            lambda x, e: list(torch.linalg.svd(x, full_matrices=False)), "gen"),
    "qr": (lambda x, e: list(la.qr(x)), lambda x, e: list(torch.linalg.qr(x)), "gen"),
    "pinv": (lambda x, e: [la.pinv(x)], lambda x, e: [torch.linalg.pinv(x)], "gen"),
    "norm_fro": (lambda x, e: [la.norm(x)], lambda x, e: [torch.linalg.norm(x)], "gen"),
    "norm_2": (lambda x, e: [la.norm(x, 2)], lambda x, e: [torch.linalg.matrix_norm(x, 2)], "gen"),
    "matrix_power_5": (lambda x, e: [la.matrix_power(x, 5)],
                       lambda x, e: [torch.linalg.matrix_power(x, 5)], "scaled"),
    "solve_triangular": (lambda x, e: [sla.solve_triangular(x, e, lower=True)],
                         lambda x, e: [torch.linalg.solve_triangular(x, e, upper=False)], "gen"),
    "cho_solve": (lambda x, e: [sla.cho_solve((x, True), e)],
                  lambda x, e: [torch.cholesky_solve(e, x.tril())], "gen"),
    "expm": (lambda x, e: [sla.expm(x)], lambda x, e: [torch.linalg.matrix_exp(x)], "scaled"),
    "sqrtm": (lambda x, e: [sla.sqrtm(x)], None, "spd"),
}


def _inputs(kind, n, rng):
    a = rng.normal(size=(n, n))
    if kind == "gen":
        a = a / np.sqrt(n) + 2 * np.eye(n)
    elif kind == "sym":
        a = _sym(a)
    elif kind == "spd":
        a = a @ a.T / n + np.eye(n)
    else:  # "scaled": spectral radius about 1
        a = a / (2 * np.sqrt(n))
    return a, rng.normal(size=(n, n))


def _step_tg(fn, a, e, weights):
    x = tg.Tensor(a)
    outs = fn(x, e)
    loss = sum((o * w).sum() for o, w in zip(outs, weights))
    return tg.grad(loss, x)[0]


def _step_torch(fn, a, e, weights):
    x = torch.from_numpy(a).requires_grad_()
    outs = fn(x, torch.from_numpy(e))
    loss = sum((o * w).sum() for o, w in zip(outs, weights))
    return torch.autograd.grad(loss, x)[0]


def _time(step, calls):
    # CPU time of this process: on a shared machine, time spent waiting for a
    # core is not the code's. Every library here runs on one thread.
    start = time.process_time()
    for _ in range(calls):
        step()
    return (time.process_time() - start) / calls


def _measure(name, n, repeats, rng):
    """Median seconds per call: (tapegrad, torch or None)."""
    tg_fn, torch_fn, kind = OPS[name]
    a, e = _inputs(kind, n, rng)
    shapes = [np.shape(o.data) for o in tg_fn(tg.Tensor(a), e)]
    weights = [rng.uniform(0.5, 1.5, size=s) for s in shapes]
    tweights = [torch.from_numpy(w) for w in weights]
    steps = [lambda: _step_tg(tg_fn, a, e, weights)]
    if torch_fn is not None:
        steps.append(lambda: _step_torch(torch_fn, a, e, tweights))
    once = sum(_time(step, 1) for step in steps)  # a warm-up, and the batch's size
    calls = max(1, int(0.02 / max(once, 1e-6)))
    times = [[] for _ in steps]
    for _ in range(repeats):
        for step, t in zip(steps, times):
            t.append(_time(step, calls))
    medians = [statistics.median(t) for t in times]
    return medians[0], (medians[1] if len(medians) > 1 else None)


def run(names, sizes, repeats):
    rng = np.random.default_rng(0)
    print(f"{'op':18s} {'n':>4s} {'tapegrad':>12s} {'torch':>12s} {'ratio':>6s}")
    for n in sizes:
        for name in names:
            ours, theirs = _measure(name, n, repeats, rng)
            row = f"{name:18s} {n:4d} {ours * 1e6:10.1f}us "
            if theirs is None:
                print(row + f"{'(none)':>12s}")
            else:
                print(row + f"{theirs * 1e6:10.1f}us {ours / theirs:6.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 512])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--ops", nargs="+", default=list(OPS), choices=list(OPS))
    args = parser.parse_args()
    run(args.ops, args.sizes, args.repeats)
