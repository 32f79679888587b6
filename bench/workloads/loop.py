"""RSS of PyTorch-style training steps (backward(), no clear_history) over 10,000 steps."""

from __future__ import annotations

import os
from dataclasses import dataclass

from runner import Task, Workload, available, markdown_table, spawn

import tapegrad
from workloads import mlp

CHECKPOINTS = (1_000, 10_000)


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def steps(params, loss, no_grad):
    """A PyTorch-style training step: backward(), the update in no_grad, .grad reset."""

    def step(x, y):
        loss(params, x, y).backward()
        with no_grad():
            for p in params:
                p -= mlp.LR * p.grad
                p.grad = None

    return step


def tapegrad_step():
    return steps([tapegrad.Tensor(a) for a in mlp.init("float64")], mlp.tapegrad_loss,
                 tapegrad.no_grad)


def torch_step():
    import torch

    params = [torch.from_numpy(a).requires_grad_() for a in mlp.init("float64")]
    return steps(params, mlp.torch_loss, torch.no_grad)


LIBRARIES = {"tapegrad": tapegrad_step, "PyTorch": torch_step}


def child(library: str, sizes: list[str]) -> dict:
    """PyTorch-style steps (backward(), update in no_grad, no clear_history): the RSS after
    each checkpoint's number of steps."""
    batches = mlp.data(64, "float64", 64)
    step = LIBRARIES[library]()
    out = {}
    for k in range(CHECKPOINTS[-1]):
        step(*batches[k % len(batches)])
        if k + 1 in CHECKPOINTS:
            out[str(k + 1)] = rss_bytes()
    return out


@dataclass
class LoopRow:
    library: str
    early: int  # RSS in bytes after the first checkpoint's steps
    late: int  # and after the last's


def plan(workload: Workload, sizes: list, repeats: int) -> list[Task]:
    """One run per library: RSS is a level, not a time, and a run takes 10,000 steps."""
    return [Task(workload.name, name, what=f"{CHECKPOINTS[-1]:,} steps")
            for name in available(workload.libraries)]


def measure(workload: Workload, sizes: list, repeats: int) -> list[LoopRow]:
    rows = []
    for task in plan(workload, sizes, repeats):
        result = spawn(task)
        rows.append(LoopRow(task.library, result[str(CHECKPOINTS[0])],
                            result[str(CHECKPOINTS[-1])]))
    return rows


def table(workload: Workload, rows: list[LoopRow]) -> str:
    mib = [(row.early / 2**20, row.late / 2**20) for row in rows]
    return markdown_table(
        ["library", "RSS after 1,000 steps", "after 10,000 steps", "growth"],
        [[row.library, f"{early:.1f} MiB", f"{late:.1f} MiB", f"{late - early:+.1f} MiB"]
         for row, (early, late) in zip(rows, mib)])


WORKLOAD = Workload(
    name="loop",
    title="Training loop memory",
    description="""\
The batch-64 MLP step written PyTorch-style: `loss.backward()`, the update inside
`no_grad()`, `.grad` reset, and no `clear_history()`. RSS of the process after 1,000 and
after 10,000 steps; flat means the records of finished steps are reclaimed.""",
    libraries=tuple(LIBRARIES),
    sizes={"default": []},  # not run with --quick
    child=child,
    measure=measure,
    table=table,
    plan=plan,
)
