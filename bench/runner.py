"""The bench's machinery: a workload entry, fresh processes, interleaved repeats, checks.

A workload is one `Workload` entry (bench/workloads/__init__.py lists them). Its child
function runs in a fresh process per library (`python bench/compare.py --child NAME
LIBRARY SIZE...`) and prints one JSON object: per size, a dict of named fields. Its
`measure` function runs in the parent: it spawns the children and turns their samples
into rows, which its `table` function formats as a markdown table.
"""

from __future__ import annotations

import importlib.util
import json
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

COMPARE = Path(__file__).resolve().parent / "compare.py"

PEER_MODULES = {"PyTorch": "torch", "HIPS autograd": "autograd"}


# ---------------------------------------------------------------- peers


def load_peer(library: str) -> None:
    """Import a peer in the child process that measures it, configured as the bench runs it.

    Peers are imported only there (workloads import them inside their functions): a loaded
    torch fills the heap that every full garbage collection walks.
    """
    if library == "PyTorch":
        import torch

        torch.set_num_threads(1)
    elif library == "HIPS autograd":
        import warnings

        warnings.filterwarnings("ignore")  # its deprecation noise would bury the tables
        import autograd  # noqa: F401


def installed(library: str) -> bool:
    module = PEER_MODULES.get(library)
    return module is None or importlib.util.find_spec(module) is not None


def available(libraries) -> list[str]:
    return [name for name in libraries if installed(name)]


# ------------------------------------------------------------ processes


def spawn(workload: str, library: str, sizes: list) -> dict[str, dict]:
    """Run one library's child in a fresh process: per size (as a string), its fields."""
    result = subprocess.run(
        [sys.executable, str(COMPARE), "--child", workload, library, *map(str, sizes)],
        capture_output=True, text=True, check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"{library} ({workload}) failed:\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def interleaved(workload: Workload, libraries: list[str], sizes: list, repeats: int,
                process_per_size: bool = False,
                runs: Callable[[str, Any], bool] = lambda library, size: True,
                first_repeat_only: tuple[str, ...] = (),
                ) -> dict[tuple[str, str], list[dict]]:
    """Every repeat runs every library in turn, each in a fresh process, and checks each
    result against the first library's (`check_result`). Returns (size, library) -> the
    result of each repeat. `process_per_size`: a fresh process per size too, as a training
    run is (what one size leaves behind, a buffer pool full of another shape, does not slow
    the next). `runs(library, size)` leaves out what a library cannot run;
    `first_repeat_only` names libraries run in the first repeat only (those whose every
    process spends seconds compiling)."""
    samples: dict[tuple[str, str], list[dict]] = {}
    truth: dict[str, dict] = {}
    groups = [[size] for size in sizes] if process_per_size else [sizes]
    for repeat in range(repeats):
        for group in groups:
            for library in libraries:
                if repeat and library in first_repeat_only:
                    continue
                wanted = [size for size in group if runs(library, size)]
                if not wanted:
                    continue
                for key, result in spawn(workload.name, library, wanted).items():
                    samples.setdefault((key, library), []).append(result)
                    want = truth.setdefault(key, result)
                    rtol = workload.options["rtol"]
                    check_result(f"{library} ({workload.name} {key})", result, want,
                                 rtol(key) if callable(rtol) else rtol)
    return samples


def check_result(label: str, result: dict, want: dict, rtol: float) -> None:
    """The objective's value to 1e-10 (when the workload reports one) and the gradient
    samples to rtol, against the first library's."""
    if "value" in result and abs(result["value"] - want["value"]) > 1e-10 * abs(want["value"]):
        raise SystemExit(f"{label}: objective {result['value']!r}, "
                         f"the first library's {want['value']!r}")
    for got, expected in zip(result["grads"], want["grads"]):
        if not np.allclose(np.asarray(got, dtype=float), np.asarray(expected, dtype=float),
                           rtol=rtol, atol=1e-9):
            raise SystemExit(f"{label}: gradients disagree with the first library's; "
                             "benchmark aborted")


def median_of(samples: list) -> float | None:
    return statistics.median(samples) if samples else None


# -------------------------------------------- timed workloads: one time per size


@dataclass
class TimedRow:
    """One library at one size: the median seconds, ratios to baseline libraries, and the
    median first call (None when the child does not report one)."""

    size: str
    library: str
    seconds: float
    ratios: dict[str, float | None]
    first_call: float | None = None


def measure_timed(workload: Workload, sizes: list, repeats: int) -> list[TimedRow]:
    """Medians of the children's "seconds" per size and library; options["ratios"] maps
    each ratio column to its baseline library ("first" for the first library run);
    options["runs"](library, size) leaves out what a library cannot run (no row), and
    options["first_repeat_only"] the libraries that run once (see `interleaved`)."""
    libraries = available(workload.libraries)
    samples = interleaved(workload, libraries, sizes, repeats,
                          process_per_size=workload.options.get("process_per_size", False),
                          runs=workload.options.get("runs", lambda library, size: True),
                          first_repeat_only=workload.options.get("first_repeat_only", ()))
    rows = []
    for key in map(str, sizes):
        medians = {name: median_of([s["seconds"] for s in samples.get((key, name), [])])
                   for name in libraries}
        bases = {column: medians.get(libraries[0] if baseline == "first" else baseline)
                 for column, baseline in workload.options.get("ratios", {}).items()}
        for name in libraries:
            if medians[name] is None:
                continue
            ratios = {column: medians[name] / base if base else None
                      for column, base in bases.items()}
            first_calls = [s["first_call"] for s in samples.get((key, name), [])
                           if s.get("first_call") is not None]
            rows.append(TimedRow(key, name, medians[name], ratios, median_of(first_calls)))
    return rows


def timed_table(workload: Workload, rows: list[TimedRow]) -> str:
    """options["columns"]: the size's columns, e.g. ("d", "k") for a size "10-25";
    options["cells"]: the size's cells (default: split at "-"); options["time"]: the time
    column's title. A last column has the first call of each library that reports one
    (a compiled function's first call is its trace)."""
    columns = workload.options["columns"]
    cells = workload.options.get("cells", lambda size: size.split("-"))
    ratio_names = list(workload.options.get("ratios", {}))
    first_calls = any(row.first_call is not None for row in rows)
    return markdown_table(
        [*columns, "library", workload.options["time"], *ratio_names,
         *([FIRST_CALL_COLUMN] if first_calls else [])],
        [[*cells(row.size), row.library, fmt_time(row.seconds),
          *("–" if row.ratios[c] is None else f"{row.ratios[c]:.2f}x" for c in ratio_names),
          *([fmt_time(row.first_call)] if first_calls else [])]
         for row in rows])


FIRST_CALL_COLUMN = "first call (compiled: the trace)"


# -------------------------------------------------------------- workload


@dataclass(frozen=True)
class Workload:
    """One workload of the bench: everything that adding one touches.

    - name: the workload's name on the command line (`--child NAME ...`).
    - title: the heading of its table, printed and in RESULTS.md.
    - description: the text under the heading in RESULTS.md; `{repeats}` is replaced by
      the number of repeats (other braces are doubled).
    - libraries: the libraries it runs, in table order; those not installed are left out.
    - sizes: the sizes (or configurations) of each mode ("quick", "default", "full");
      a mode it is absent from does not run it. "full" defaults to "default".
    - child: child(library, sizes) in a fresh process: per size (a string), a dict.
    - measure: measure(workload, sizes, repeats) in the parent: the table's rows; by
      default `measure_timed` (one time per size and library, ratios to baselines).
    - table: table(workload, rows) -> markdown; by default `timed_table`.
    - quick_repeats: repeats with --quick, when not the run's own.
    - quick_libraries: the libraries run with --quick, when not all of them.
    - options: whatever the workload's own measure and table read (columns, tolerances).
    """

    name: str
    title: str
    description: str
    libraries: tuple[str, ...]
    sizes: dict[str, list]
    child: Callable[[str, list[str]], dict]
    measure: Callable[[Workload, list, int], list] = measure_timed
    table: Callable[[Workload, list], str] = timed_table
    quick_repeats: int | None = None
    quick_libraries: tuple[str, ...] | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def for_mode(self, mode: str) -> Workload:
        """This workload as `mode` runs it (with --quick, its quick_libraries only)."""
        if mode == "quick" and self.quick_libraries is not None:
            return replace(self, libraries=self.quick_libraries)
        return self

    def sizes_for(self, mode: str) -> list | None:
        if mode == "full":
            return self.sizes.get("full", self.sizes.get("default"))
        return self.sizes.get(mode)


# ------------------------------------------------------------ formatting


def markdown_table(head: list[str], rows: list[list[str]]) -> str:
    return "\n".join(["| " + " | ".join(head) + " |", "|" + "---|" * len(head),
                      *("| " + " | ".join(cells) + " |" for cells in rows)])


def fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "–"
    if value >= 100:
        return f"{value:,.0f}{unit}"
    if value >= 10:
        return f"{value:.1f}{unit}"
    return f"{value:.2f}{unit}"


def fmt_time(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    for unit, scale in (("s", 1), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return fmt(seconds / scale, " " + unit)
    return fmt(seconds / 1e-9, " ns")


def timed(call: Callable, *args) -> tuple[float, Any]:
    """(seconds, result) of one call: a first call, which a compiled function spends tracing."""
    t0 = time.perf_counter()
    result = call(*args)
    return time.perf_counter() - t0, result


def gradient_samples(grads, count: int = 40) -> list[list[float]]:
    """The first `count` entries of each gradient, as JSON lists, for the cross-checks."""
    return [np.asarray(g, dtype=float).ravel()[:count].tolist() for g in grads]
