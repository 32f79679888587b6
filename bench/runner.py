"""The bench's machinery: a workload entry, fresh processes, interleaved repeats, checks.

A workload is one `Workload` entry (bench/workloads/__init__.py lists them). Its child
function runs in a fresh process per library (`python bench/compare.py --child NAME
LIBRARY SIZE...`) and prints one JSON object: per size, a dict of named fields. Its
`measure` function runs in the parent: it spawns the children and turns their samples
into rows, which its `table` function formats as a markdown table. Its `plan` lists those
children (`Task`s) beforehand, for the progress line (`Progress`), which the parent draws
as each child starts.
"""

from __future__ import annotations

import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, TextIO

import numpy as np

COMPARE = Path(__file__).resolve().parent / "compare.py"

# The module each peer library needs; a library not listed needs only tapegrad and numpy.
TORCH_COMPILE = "torch.compile"  # PyTorch with the workload's function through torch.compile
PEER_MODULES = {"PyTorch": "torch", TORCH_COMPILE: "torch", "HIPS autograd": "autograd"}
# The optional modules the bench uses that `pip install ".[bench]"` installs (by their
# distribution names); torch is not in the extra (a large download), so it is named alone.
BENCH_EXTRA = {"autograd": "autograd", "sklearn": "scikit-learn", "matplotlib": "matplotlib",
               "tqdm": "tqdm"}


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


def without_compile(libraries) -> tuple[str, ...]:
    """The libraries but torch.compile: what --quick runs (its first call compiles for seconds)."""
    return tuple(name for name in libraries if name != TORCH_COMPILE)


def module_installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def installed(library: str) -> bool:
    module = PEER_MODULES.get(library)
    return module is None or module_installed(module)


def available(libraries) -> list[str]:
    return [name for name in libraries if installed(name)]


def missing(libraries) -> list[str]:
    """The libraries left out because their module is not installed."""
    return [name for name in libraries if not installed(name)]


def how_to_install(module: str) -> str:
    """The command that installs an optional module of the bench."""
    if module in BENCH_EXTRA:
        return f'`pip install ".[bench]"` (or `pip install {BENCH_EXTRA[module]}`)'
    return f"`pip install {module}`"


# ------------------------------------------------------------ processes


@dataclass(frozen=True)
class Task:
    """One fresh process of the bench: a library's child for one workload at some sizes, in
    one repeat. The progress line shows its label while it runs."""

    workload: str
    library: str
    sizes: tuple[str, ...] = ()
    repeat: int = 1  # counted from 1
    repeats: int = 1
    what: str = ""  # what it measures, shown instead of the sizes when they say too little

    def label(self) -> str:
        """E.g. "mlp · PyTorch · repeat 2/5 · 64-float64"."""
        parts = [self.workload, self.library]
        if self.repeats > 1:
            parts.append(f"repeat {self.repeat}/{self.repeats}")
        if self.what or self.sizes:
            parts.append(self.what or ", ".join(self.sizes))
        return " · ".join(parts)


def run_child(task: Task, *arguments: str) -> subprocess.CompletedProcess:
    """compare.py with `arguments` in a fresh process, shown on the progress line."""
    with PROGRESS.running(task):
        return subprocess.run([sys.executable, str(COMPARE), *arguments],
                              capture_output=True, text=True, check=False)


def spawn(task: Task) -> dict[str, dict]:
    """Run one library's child in a fresh process: per size (as a string), its fields."""
    result = run_child(task, "--child", task.workload, task.library, *task.sizes)
    if result.returncode != 0:
        raise SystemExit(f"{task.library} ({task.workload}) failed:\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def schedule(workload: Workload, sizes: list, repeats: int) -> list[Task]:
    """The children `interleaved` runs, in order: every repeat runs every installed library
    in turn. From the workload's options: `process_per_size`, a fresh process per size too,
    as a training run is (what one size leaves behind, a buffer pool full of another shape,
    does not slow the next); `runs(library, size)` leaves out what a library cannot run;
    `first_repeat_only` names libraries run in the first repeat only (those whose every
    process spends seconds compiling)."""
    options = workload.options
    runs = options.get("runs", lambda library, size: True)
    first_repeat_only = options.get("first_repeat_only", ())
    groups = [[size] for size in sizes] if options.get("process_per_size") else [sizes]
    tasks = []
    for repeat in range(1, repeats + 1):
        for group in groups:
            for library in available(workload.libraries):
                if repeat > 1 and library in first_repeat_only:
                    continue
                wanted = tuple(str(size) for size in group if runs(library, size))
                if wanted:
                    tasks.append(Task(workload.name, library, wanted, repeat, repeats))
    return tasks


def interleaved(workload: Workload, tasks: list[Task]) -> dict[tuple[str, str], list[dict]]:
    """Runs the tasks (from `schedule`) and checks each result against the first library's
    (`check_result`). Returns (size, library) -> the result of each repeat."""
    samples: dict[tuple[str, str], list[dict]] = {}
    truth: dict[str, dict] = {}
    rtol = workload.options["rtol"]
    for task in tasks:
        for key, result in spawn(task).items():
            samples.setdefault((key, task.library), []).append(result)
            want = truth.setdefault(key, result)
            check_result(f"{task.library} ({workload.name} {key})", result, want,
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
    options["first_repeat_only"] the libraries that run once (see `schedule`)."""
    libraries = available(workload.libraries)
    samples = interleaved(workload, schedule(workload, sizes, repeats))
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
    - plan: plan(workload, sizes, repeats) -> the `Task`s its measure runs, in order (what
      the progress line counts); by default `schedule`, which `measure_timed` runs.
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
    plan: Callable[[Workload, list, int], list[Task]] = schedule
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


# ------------------------------------------------------------- progress


class Progress:
    """Which child the bench is on, how many of the planned ones are done, and an estimate
    of the time left, drawn by a renderer (`progress_renderer`). It is drawn when a child
    starts, never while one runs: the children time themselves while the parent waits.

    A child not yet run is estimated as the mean time of the finished children most like
    it: the same workload, library and sizes (an earlier repeat); else the same workload
    and library; else the same library (its import is most of a short child, torch's above
    all); else all of them.
    """

    def __init__(self, plan: list[Task] = (), renderer: Any = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.start(plan, renderer, clock)

    def start(self, plan: list[Task], renderer: Any = None,
              clock: Callable[[], float] = time.monotonic) -> None:
        """Begin a run of the planned tasks; `renderer` None draws nothing."""
        self.pending = list(plan)
        self.finished: list[tuple[Task, float]] = []
        self.renderer = renderer
        self.clock = clock
        self.started = clock()

    def estimate(self, task: Task) -> float | None:
        """Seconds `task` is expected to take; None before any child finished."""
        likeness = (lambda t: (t.workload, t.library, t.sizes, t.what),
                    lambda t: (t.workload, t.library), lambda t: t.library, lambda t: ())
        for key in likeness:
            times = [seconds for done, seconds in self.finished if key(done) == key(task)]
            if times:
                return statistics.mean(times)
        return None

    def time_left(self) -> float | None:
        """Estimated seconds of the tasks not finished; None before any child finished."""
        estimates = [self.estimate(task) for task in self.pending]
        return None if None in estimates else sum(estimates)

    def line(self, task: Task) -> str:
        """The text beside the bar while `task` runs: the estimate first, so that a narrow
        terminal cuts the label rather than it."""
        left = self.time_left()
        return f"{'~' + fmt_duration(left) if left is not None else '?'} left · {task.label()}"

    @contextmanager
    def running(self, task: Task) -> Iterator[None]:
        """Draw the line for `task`, then time it (its time feeds the estimates)."""
        if self.renderer is not None:
            total = len(self.finished) + len(self.pending) + (task not in self.pending)
            self.renderer.show(len(self.finished), total, self.line(task))
        started = self.clock()
        yield
        self.finished.append((task, self.clock() - started))
        if task in self.pending:
            self.pending.remove(task)

    def finish(self) -> None:
        """Clear the line (the tables print where it was)."""
        if self.renderer is not None:
            self.renderer.close()
            self.renderer = None


PROGRESS = Progress()  # what run_child reports to; compare.py starts it with the run's plan


class ProgressLine:
    """A bar and a text on one line of a terminal, rewritten in place; what the bench draws
    when tqdm is not installed (`pip install .` alone does not install it)."""

    BAR = 20

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.drawn = 0  # characters on the line now

    def width(self) -> int:
        try:
            columns = os.get_terminal_size(self.stream.fileno()).columns
        except (OSError, ValueError, AttributeError):
            columns = 0
        return columns or 80  # some pseudo-terminals report 0 columns

    def show(self, done: int, total: int, text: str) -> None:
        filled = self.BAR * done // max(total, 1)
        line = f"[{'#' * filled}{'.' * (self.BAR - filled)}] {done}/{total} {text}"
        line = line[:self.width() - 1]  # a wrapped line cannot be rewritten with \r
        self.stream.write("\r" + line.ljust(self.drawn))
        self.stream.flush()
        self.drawn = len(line)

    def close(self) -> None:
        if self.drawn:
            self.stream.write("\r" + " " * self.drawn + "\r")
            self.stream.flush()
            self.drawn = 0


class TqdmLine:
    """The same line drawn by tqdm, when it is installed."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.bar = None  # made at the first show: tqdm draws when made

    def show(self, done: int, total: int, text: str) -> None:
        if self.bar is None:
            import tqdm

            tqdm.tqdm.monitor_interval = 0  # no monitor thread waking while a child runs
            self.bar = tqdm.tqdm(total=total, initial=done, desc=text, file=self.stream,
                                 leave=False, dynamic_ncols=True,
                                 bar_format="{bar:20}| {n_fmt}/{total_fmt} {desc}")
            return
        self.bar.total, self.bar.n = total, done
        self.bar.set_description_str(text, refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def progress_renderer(stream: TextIO, quiet: bool) -> ProgressLine | TqdmLine | None:
    """What draws the progress on `stream`: nothing with --quiet or off a terminal (a log
    file gets no carriage returns), tqdm when installed, else the built-in line."""
    if quiet or not stream.isatty():
        return None
    return TqdmLine(stream) if module_installed("tqdm") else ProgressLine(stream)


def fmt_duration(seconds: float) -> str:
    """E.g. "45 s", "7m05s", "1h02m"."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    return f"{minutes // 60}h{minutes % 60:02d}m"


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
