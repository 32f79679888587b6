"""bench/RESULTS.md and its chart: the machine, the command, each workload's section."""

from __future__ import annotations

import importlib.metadata
import os
import platform
from pathlib import Path

import numpy as np

import tapegrad


def peer_version(module: str) -> str | None:
    try:
        return importlib.metadata.version(module)
    except importlib.metadata.PackageNotFoundError:
        return None


def machine_description() -> str:
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


def results_text(command: str, elapsed: float, repeats: int,
                 sections: list[tuple[str, str, str]], notices: list[str] = ()) -> str:
    """The whole of RESULTS.md but the chart: a header (with what the run skipped, one
    notice each), then per workload its (title, description, table)."""
    env_note = ", ".join(f"{k}={os.environ[k]}" for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
                         if k in os.environ) or "OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset"
    text = f"""# Benchmark results

Written by `bench/compare.py`; do not edit by hand.

- Command: `{command}` ({elapsed:.0f} s)
- Machine: {machine_description()}
- One thread (OMP/OPENBLAS/MKL_NUM_THREADS=1, torch.set_num_threads(1), and so tapegrad's fused
  groups too); {env_note};
  Python's garbage collector on, as users run. Medians of {repeats} interleaved repeats.
- Each library runs in its own fresh process per repeat, so one library's objects never
  slow another's garbage collection. Gradients of every library are checked against the
  first library's.
"""
    for notice in notices:
        text += f"- {notice}\n"
    for title, description, table in sections:
        text += f"\n## {title}\n{description}\n\n{table}\n"
    return text


def write_chart(scalar_rows, elementwise_rows, path: Path) -> bool:
    """The scalar recipe's largest size and the elementwise chain; False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    largest = max(row.ops for row in scalar_rows)
    bars = [row for row in scalar_rows if row.ops == largest and row.total is not None]
    left.barh([row.library for row in bars], [row.total for row in bars], color="tab:blue")
    left.set_xscale("log")
    left.set_xlabel("ns per recorded op (forward + backward), log scale")
    left.set_title(f"scalar recipe, {largest:,} ops")
    for name in dict.fromkeys(row.library for row in elementwise_rows):
        points = [(int(row.size), row.seconds) for row in elementwise_rows if row.library == name]
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
