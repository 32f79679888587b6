"""What an array op costs beyond numpy's own work, on 1-element arrays."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from runner import Task, Workload, fmt_time, markdown_table, median_of, spawn

import tapegrad

# name -> the call, on 1-element arrays t and u (Tensors that require grad, or
# the ndarrays themselves for numpy's own time).
OPS = {
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
CALLS = 2_000  # per batch


class _NumpyOps:
    """numpy's spelling of the ops tapegrad has as functions."""

    tanh = staticmethod(np.tanh)
    maximum = staticmethod(np.maximum)

    @staticmethod
    def log_softmax(x, axis):
        m = x.max(axis=axis, keepdims=True)
        return x - m - np.log(np.exp(x - m).sum(axis=axis, keepdims=True))


def child(library: str, sizes: list[str]) -> dict:
    """Per op, batches of calls by tapegrad (computed and recorded) and by numpy,
    interleaved in this one process; `sizes` is the number of batches."""
    repeats = int(sizes[0])
    t_np, u_np = np.array([[0.5]]), np.array([[0.25]])
    out = {}
    for name, op in OPS.items():
        times = {"tapegrad": [], "numpy": []}
        for _ in range(repeats):
            for lib in times:
                if lib == "tapegrad":
                    tapegrad.clear_history()
                    args = (tapegrad, tapegrad.Tensor(t_np), tapegrad.Tensor(u_np))
                else:
                    args = (_NumpyOps, t_np, u_np)
                t0 = time.perf_counter()
                for _ in range(CALLS):
                    op(*args)
                times[lib].append((time.perf_counter() - t0) / CALLS)
        tapegrad.clear_history()
        out[name] = {"tapegrad": median_of(times["tapegrad"]), "numpy": median_of(times["numpy"])}
    return out


@dataclass
class OverheadRow:
    op: str
    tapegrad: float  # seconds per call, computed and recorded
    numpy: float  # seconds per call of numpy's own spelling


def plan(workload: Workload, sizes: list, repeats: int) -> list[Task]:
    """One process, tapegrad and numpy interleaved in it, `repeats` batches of each."""
    return [Task(workload.name, "tapegrad", (str(repeats),),
                 what=f"{len(OPS)} ops, {repeats} batches each")]


def measure(workload: Workload, sizes: list, repeats: int) -> list[OverheadRow]:
    result = spawn(*plan(workload, sizes, repeats))
    return [OverheadRow(op, r["tapegrad"], r["numpy"]) for op, r in result.items()]


def table(workload: Workload, rows: list[OverheadRow]) -> str:
    return markdown_table(
        ["op", "tapegrad (computed and recorded)", "numpy", "overhead"],
        [[f"`{row.op}`", fmt_time(row.tapegrad), fmt_time(row.numpy),
          fmt_time(row.tapegrad - row.numpy) if row.tapegrad > row.numpy
          else "none (faster than numpy's spelling)"] for row in rows])


WORKLOAD = Workload(
    name="overhead",
    title="Array-op overhead",
    description="""\
What an array op costs beyond numpy's own work: each op on 1-element float64 arrays (`t`
and `u`, shape (1, 1)), 2,000 times in a row, computed and recorded by tapegrad (Tensors
that require grad), and the same call on the ndarrays; medians of {repeats} batches, per op.""",
    libraries=("tapegrad",),
    sizes={"quick": [], "default": []},  # its batches are the run's repeats
    child=child,
    measure=measure,
    table=table,
    plan=plan,
)
