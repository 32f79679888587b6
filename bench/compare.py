"""tapegrad against its baseline and its peers, side by side in one run.

    python bench/compare.py            # default run, about 7.5 minutes
    python bench/compare.py --quick    # under a minute: smallest sizes, peers' workloads once
    python bench/compare.py --full     # adds the 1e6-op scalar graphs
    python bench/compare.py --quiet    # no progress line on stderr

While it runs, a line on stderr shows the workload, library and repeat it is on and an
estimate of the time left (drawn by tqdm when installed); not with --quiet, nor when
stderr is not a terminal.

It needs only `pip install .`: a peer that is not installed (PyTorch, HIPS autograd) is
skipped, scikit-learn's digits are replaced by random data of their shape, and the chart
needs matplotlib. It says so in one line each, on stderr and in the results file;
`pip install ".[bench]"` installs all of them but PyTorch (`pip install torch`).

Libraries: tapegrad, tapegrad.reference (the seed design in pure Python), and
PyTorch and HIPS autograd when installed. Each repeat runs every library in
turn (interleaved), and the tables show medians of the repeats. It prints the
tables, writes bench/RESULTS.md with the machine and the command, and a PNG
chart when matplotlib is present.

Workloads (DESIGN.md section 6), one module each in bench/workloads/, listed in
bench/workloads/__init__.py:
- scalar: the recipe below on Python-float Tensors, 13 recorded ops per
  iteration, 8 inputs; forward and backward ns per op, and the memory the
  recorded graph holds per op (RSS growth, measured in a fresh process); beside
  the reference, the seed's own code as written.
- elementwise: sum(tanh(x*w + b) * exp(-x*x) + log(1 + w*w) / (1 + b*b)) and its
  gradient w.r.t. x, w, b, at 1 to 1e6 float64 elements, next to the same
  gradient written by hand in numpy (the floor), and torch.compile at 1e6.
- overhead: what an array op costs beyond numpy's own work, on 1-element arrays.
- mlp: a training step of a 64-128-128-10 MLP on scikit-learn's digits, batches
  64 and 1024, float32 and float64, next to the step written by hand in numpy,
  and torch.compile of the loss.
- loop: RSS after 1,000 and 10,000 PyTorch-style steps (backward(), no
  clear_history), tapegrad and PyTorch (not with --quick).
- hvp: a Hessian-vector product of the MLP loss w.r.t. all six parameters
  (double backward: the gradient with create_graph, then the gradient of its
  dot product with v), tapegrad and PyTorch, float64, batches 64 and 1024.
- gmm: ADBench's GMM objective with einsum, value and gradient, d = 10 and 64,
  k = 25 and 100, n = 1000, float64.
- lstsq: a regularised least-squares fit through np.linalg.solve, value and
  gradient, A of 256 x 64 and 2048 x 512, float64.
- ode: RK4 of the Lotka-Volterra equations over 100 and 1000 steps (scalar-heavy),
  the gradient of a loss of the final state w.r.t. the 4 parameters, beside
  torch.compile and Python floats without AD (the floor).
Beside the eager "tapegrad" rows, "tapegrad compiled" rows run the same value and
gradient through tapegrad.compile (the scalar, elementwise, mlp, hvp, gmm, lstsq
and ode workloads), with their first call (the trace) in a column of its own; and
"torch.compile" rows (elementwise, mlp, gmm, lstsq, ode) PyTorch's compiler, in the
first repeat only (each first call compiles for seconds), not with --quick.

One library's run of one workload, in this process (what the bench spawns):
    python bench/compare.py --child WORKLOAD LIBRARY SIZE...
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

# One thread everywhere, as in ../shared/anchors; set before numpy loads BLAS.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # loaded by path (the tests do): find runner and workloads
    sys.path.insert(0, str(HERE))

import report  # noqa: E402
import runner  # noqa: E402
from runner import Workload, load_peer  # noqa: E402
from workloads import BY_NAME, REGISTRY, gmm, lstsq, mlp, scalar  # noqa: E402

# tests/test_products.py and tests/test_linalg.py check these workloads against PyTorch.
gmm_data, gmm_tapegrad, gmm_torch = gmm.data, gmm.tapegrad_step, gmm.torch_step
lstsq_data, lstsq_tapegrad, lstsq_torch = lstsq.data, lstsq.tapegrad_step, lstsq.torch_step


def skip_notices(workloads: list[Workload], chart: Path) -> list[str]:
    """One line per optional module that is not installed: what the run leaves out without
    it, and how to install it."""
    peers: dict[str, dict[str, None]] = {}  # module -> the libraries needing it (in order)
    for workload in workloads:
        for library in runner.missing(workload.libraries):
            peers.setdefault(runner.PEER_MODULES[library], {})[library] = None
    notices = [f"Skipped the {' and '.join(libraries)} rows: {module} is not installed; "
               f"{runner.how_to_install(module)}" for module, libraries in peers.items()]
    if not mlp.DIGITS and any(w.name == "mlp" for w in workloads):
        notices.append("The MLP workloads run on random data of the digits' shape: "
                       f"scikit-learn is not installed; {runner.how_to_install('sklearn')}")
    if not runner.module_installed("matplotlib"):
        notices.append(f"No chart ({chart.name}): matplotlib is not installed; "
                       f"{runner.how_to_install('matplotlib')}")
    return notices


def table_note(workload: Workload) -> str:
    """The line under a table naming the libraries it left out as not installed."""
    left_out = runner.missing(workload.libraries)
    return f"\n\nNot run here (not installed): {', '.join(left_out)}." if left_out else ""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--quick", action="store_true",
                       help="smallest sizes, few repeats, the peers' workloads once (< 1 min)")
    group.add_argument("--full", action="store_true", help="add the 1e6-op scalar graphs")
    parser.add_argument("--repeats", type=int, help="repeats per measurement (median taken)")
    parser.add_argument("--output", default=str(HERE / "RESULTS.md"), help="results file")
    parser.add_argument("--quiet", action="store_true",
                        help="no progress line on stderr (what it skips is still said)")
    parser.add_argument("--memory-child", nargs=2, metavar=("LIB", "N"), help=argparse.SUPPRESS)
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        name, library, *sizes = args.child
        load_peer(library)
        print(json.dumps(BY_NAME[name].child(library, sizes)))
        return
    if args.memory_child:
        scalar.memory_child(args.memory_child[0], int(args.memory_child[1]))
        return

    mode = "quick" if args.quick else "full" if args.full else "default"
    repeats = args.repeats or (3 if args.quick else 5)
    command = "python bench/compare.py" + "".join(f" {a}" for a in (argv or sys.argv[1:]))
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    chart = output.with_suffix(".png")
    workloads = [workload.for_mode(mode) for workload in REGISTRY]
    # (workload, its sizes, its repeats) of the workloads this mode runs
    selected = [(workload, sizes,
                 workload.quick_repeats if args.quick and workload.quick_repeats else repeats)
                for workload in workloads if (sizes := workload.sizes_for(mode)) is not None]
    notices = skip_notices([workload for workload, _, _ in selected], chart)
    for notice in notices:
        print(notice, file=sys.stderr)

    started = time.perf_counter()
    rows = {}
    plan = [task for workload, sizes, n in selected
            for task in workload.plan(workload, sizes, n)]
    runner.PROGRESS.start(plan, runner.progress_renderer(sys.stderr, args.quiet))
    try:
        for workload, sizes, n in selected:
            rows[workload.name] = workload.measure(workload, sizes, n)
    finally:
        runner.PROGRESS.finish()
    elapsed = time.perf_counter() - started

    sections = []
    for workload in workloads:
        table = (workload.table(workload, rows[workload.name]) + table_note(workload)
                 if workload.name in rows else f"(not run with --{mode})")
        print(f"{workload.title}\n{table}\n")
        sections.append((workload.title, workload.description.format(repeats=repeats), table))
    text = report.results_text(command, elapsed, repeats, sections, notices)
    has_chart = (runner.module_installed("matplotlib")
                 and report.write_chart(rows["scalar"], rows["elementwise"], chart))
    if has_chart:
        text += f"\n![chart]({chart.name})\n"
    output.write_text(text)
    wrote = args.output + (f" and {chart}" if has_chart else "")
    print(f"wrote {wrote} in {elapsed:.0f} s")


if __name__ == "__main__":
    main()
