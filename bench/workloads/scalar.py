"""The scalar recipe on Python-float Tensors: forward and backward ns per op, graph memory."""

from __future__ import annotations

import gc
import math
import os
import time
from dataclasses import dataclass

from runner import (
    Task,
    Workload,
    available,
    fmt,
    interleaved,
    markdown_table,
    median_of,
    run_child,
    schedule,
)

import tapegrad
from tapegrad import reference
from workloads import seed_code

OPS_PER_ITERATION = 13
INPUTS = [0.7, 1.3, 0.11, 0.23, 0.37, 0.41, 0.53, 0.67]
PLAIN = "Python floats, no AD"
SEED = "seed's code as written"
COMPILED = "tapegrad compiled"
MEMORY_AT = 100_000  # the size whose graph memory is measured


def recipe(acc, x, y, p, n_iter, log, exp, sin, tanh):
    for k in range(n_iter):
        acc = acc * 0.999 + log(x) * y - sin(y) + tanh(p[k % 6] * acc) / (1 + exp(-x))
    return acc


def plain(n_iter: int) -> float:
    x, y, *p = INPUTS
    t0 = time.perf_counter()
    recipe(0.5, x, y, p, n_iter, math.log, math.exp, math.sin, math.tanh)
    return time.perf_counter() - t0


def seed_style(module):
    """The recipe on `module`'s Tensors (tapegrad's, the reference's, the seed's own)."""

    def run(n_iter):
        module.clear_history()
        inputs = [module.Tensor(v) for v in INPUTS]
        x, y, *p = inputs
        t0 = time.perf_counter()
        acc = recipe(0.5, x, y, p, n_iter, module.log, module.exp, module.sin, module.tanh)
        t1 = time.perf_counter()
        grads = module.compute_gradients(acc, inputs)
        t2 = time.perf_counter()
        module.clear_history()
        return t1 - t0, t2 - t1, grads

    return run


def compiled_style():
    """The recipe through tapegrad.compile, one compiled function per n_iter: the first
    call traces (its time is the "first run"), later calls replay the tape natively."""
    functions = {}

    def run(n_iter):
        function = functions.get(n_iter)
        if function is None:
            def recipe_of(inputs):
                x, y, *p = inputs
                return recipe(0.5, x, y, p, n_iter, tapegrad.log, tapegrad.exp, tapegrad.sin,
                              tapegrad.tanh)

            function = functions[n_iter] = tapegrad.compile(recipe_of)
        t0 = time.perf_counter()
        _, grads = function.value_and_grad(INPUTS)
        # Value and gradient in one call: reported as total only.
        return time.perf_counter() - t0, None, grads

    return run


def with_torch(n_iter):
    import torch

    inputs = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in INPUTS]
    x, y, *p = inputs
    t0 = time.perf_counter()
    acc = recipe(0.5, x, y, p, n_iter, torch.log, torch.exp, torch.sin, torch.tanh)
    t1 = time.perf_counter()
    acc.backward()
    t2 = time.perf_counter()
    return t1 - t0, t2 - t1, [float(t.grad) for t in inputs]


def with_hips(n_iter):
    import autograd
    import autograd.numpy as anp

    def f(values):
        x, y, *p = values
        return recipe(0.5, x, y, p, n_iter, anp.log, anp.exp, anp.sin, anp.tanh)

    t0 = time.perf_counter()
    grads = autograd.grad(f)(list(INPUTS))
    # HIPS autograd records and differentiates in one call: reported as total only.
    return time.perf_counter() - t0, None, [float(g) for g in grads]


LIBRARIES = {
    "tapegrad": lambda: seed_style(tapegrad),
    COMPILED: compiled_style,
    "reference": lambda: seed_style(reference),
    SEED: lambda: seed_style(seed_code),
    "PyTorch": lambda: with_torch,
    "HIPS autograd": lambda: with_hips,
}
SEED_STYLE_MODULES = {"tapegrad": tapegrad, "reference": reference, SEED: seed_code}
SKIPPED = {"PyTorch": "skipped: PyTorch crashes freeing a 1e6-op graph (anchors)",
           "HIPS autograd": "skipped: minutes per run at this size"}


def runs(library: str, n_ops) -> bool:
    if library == "PyTorch":
        return int(n_ops) < 1_000_000  # PyTorch crashes freeing a 1e6-op graph (anchors/peers.md)
    return not (library == "HIPS autograd" and int(n_ops) > 100_000)  # minutes per run


def child(library: str, sizes: list[str]) -> dict:
    """Per size: forward and backward seconds of a warm run, the first run's total, plain
    floats' time, and the gradients."""
    run = LIBRARIES[library]()
    out = {}
    for size in sizes:
        # Twice: the first run touches fresh memory (cold); the second is what
        # a loop that records and differentiates again and again sees (warm).
        n_iter = int(size) // OPS_PER_ITERATION
        gc.collect()
        cold_forward, cold_backward, _ = run(n_iter)
        gc.collect()
        forward, backward, grads = run(n_iter)
        out[size] = {"forward": forward, "backward": backward,
                     "first_run": cold_forward + (cold_backward or 0.0),
                     "plain": plain(n_iter), "grads": [float(g) for g in grads]}
    return out


def memory_child(library: str, n_iter: int) -> None:
    """Fresh process: RSS growth while the graph is held, printed as bytes per op."""
    from runner import load_peer

    def rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    module = SEED_STYLE_MODULES.get(library)
    gc.collect()
    if module is not None:
        module.clear_history()
        x, y, *p = [module.Tensor(v) for v in INPUTS]
        before = rss()
        acc = recipe(0.5, x, y, p, n_iter, module.log, module.exp, module.sin, module.tanh)
    elif library == "PyTorch":
        load_peer(library)
        import torch

        x, y, *p = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in INPUTS]
        before = rss()
        acc = recipe(0.5, x, y, p, n_iter, torch.log, torch.exp, torch.sin, torch.tanh)
    else:
        raise SystemExit(f"no graph memory measured for {library}")
    after = rss()
    print((after - before) / (n_iter * OPS_PER_ITERATION))
    del acc


def memory_task(library: str, n_ops: int) -> Task:
    return Task("scalar", library, (str(n_ops // OPS_PER_ITERATION),),
                what=f"graph memory at {n_ops:,} ops")


def measures_memory(library: str, n_ops: int) -> bool:
    return n_ops == MEMORY_AT and (library in SEED_STYLE_MODULES or library == "PyTorch")


def memory(library: str, n_ops: int) -> float | None:
    task = memory_task(library, n_ops)
    out = run_child(task, "--memory-child", library, *task.sizes)
    try:
        return float(out.stdout.strip())
    except ValueError:
        return None


@dataclass
class ScalarRow:
    """One library at one size, per recorded op in ns (None: not measured); a skipped
    library has only a note."""

    ops: int
    library: str
    forward: float | None = None
    backward: float | None = None
    total: float | None = None
    first_run: float | None = None
    memory: float | None = None
    note: str = ""


def plan(workload: Workload, sizes: list, repeats: int) -> list[Task]:
    """The timing children, then the memory children that `measure` runs after them."""
    memory_tasks = [memory_task(name, n_ops) for n_ops in sizes
                    for name in available(workload.libraries)
                    if measures_memory(name, n_ops) and runs(name, n_ops)]
    return schedule(workload, sizes, repeats) + memory_tasks


def measure(workload: Workload, sizes: list, repeats: int) -> list[ScalarRow]:
    libraries = available(workload.libraries)
    samples = interleaved(workload, schedule(workload, sizes, repeats))
    rows = []
    for n_ops in sizes:
        key, ops = str(n_ops), (n_ops // OPS_PER_ITERATION) * OPS_PER_ITERATION

        def per_op(seconds, ops=ops):
            return None if seconds is None else seconds / ops * 1e9

        plain_time = per_op(median_of([s["plain"] for name in libraries
                                       for s in samples.get((key, name), [])]))
        rows.append(ScalarRow(ops, PLAIN, forward=plain_time, total=plain_time))
        for name in libraries:
            results = samples.get((key, name))
            if not results:
                rows.append(ScalarRow(ops, name, note=SKIPPED.get(name, "skipped")))
                continue
            forward = median_of([s["forward"] for s in results])
            backward = median_of([s["backward"] for s in results if s["backward"] is not None])
            rows.append(ScalarRow(
                ops, name, per_op(forward), per_op(backward),
                per_op(forward + backward if backward is not None else forward),
                per_op(median_of([s["first_run"] for s in results])),
                memory(name, n_ops) if measures_memory(name, n_ops) else None))
    return rows


def table(workload: Workload, rows: list[ScalarRow]) -> str:
    ours = {row.ops: row.total for row in rows if row.library == "tapegrad"}

    def cells(row: ScalarRow) -> list[str]:
        if row.note:
            return [f"{row.ops:,}", row.library, row.note, "", "", "", "", ""]
        ratio = "1x" if row.library == "tapegrad" else f"{row.total / ours[row.ops]:.1f}x"
        return [f"{row.ops:,}", row.library, fmt(row.forward), fmt(row.backward),
                fmt(row.total), ratio, fmt(row.first_run), fmt(row.memory)]

    return markdown_table(["ops", "library", "forward ns/op", "backward ns/op", "total ns/op",
                           "vs tapegrad", "first run (compiled: the trace), total ns/op",
                           "graph memory B/op"],
                          [cells(row) for row in rows])


WORKLOAD = Workload(
    name="scalar",
    title="Scalar recipe",
    description="""\
`acc = acc*0.999 + log(x)*y - sin(y) + tanh(p[k%6]*acc) / (1 + exp(-x))`, 13 recorded ops
per iteration, gradient w.r.t. x, y, p0..p5. Each process runs every size twice: the
forward, backward and total columns are the second run (what a loop that records and
differentiates again and again sees: buffers warm); "first run" is the first, which also
pays for touching fresh memory. Graph memory: RSS growth while the recorded graph is held,
in a fresh process, at 1e5 ops. HIPS autograd records and differentiates in one call, and
"tapegrad compiled" (`tapegrad.compile` of the recipe as a function of its 8 inputs) gives
value and gradient in one native replay, so only their totals are shown; the compiled "first
run" is its first call, which traces the recipe and replays it once. "seed's code as written"
is the founding design transcribed as it was written (bench/workloads/seed_code.py: one
closure per op, Tensors only), beside `tapegrad.reference`, which keeps that design with
the seed's whole surface. No torch.compile row: it would compile the loop unrolled, a graph
of 1e4 to 1e6 ops (the RK4 workload compiles one step instead; its whole unrolled loss had
not compiled in minutes at 5,400 ops).""",
    libraries=tuple(LIBRARIES),
    sizes={"quick": [10_000], "default": [10_000, 100_000],
           "full": [10_000, 100_000, 1_000_000]},
    child=child,
    measure=measure,
    table=table,
    plan=plan,
    options={"rtol": 1e-8, "runs": runs},
)
