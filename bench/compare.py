"""tapegrad against its baseline and its peers, side by side in one run.

    python bench/compare.py            # default run, about 7.5 minutes
    python bench/compare.py --quick    # under 40 s: smallest sizes, peers' workloads once
    python bench/compare.py --full     # adds the 1e6-op scalar graphs

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
  gradient written by hand in numpy (the floor).
- overhead: what an array op costs beyond numpy's own work, on 1-element arrays.
- mlp: a training step of a 64-128-128-10 MLP on scikit-learn's digits, batches
  64 and 1024, float32 and float64, next to the step written by hand in numpy.
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
and ode workloads), with their first call (the trace) in a column of its own.

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
from runner import load_peer  # noqa: E402
from workloads import BY_NAME, REGISTRY, gmm, lstsq, scalar  # noqa: E402

# tests/test_products.py and tests/test_linalg.py check these workloads against PyTorch.
gmm_data, gmm_tapegrad, gmm_torch = gmm.data, gmm.tapegrad_step, gmm.torch_step
lstsq_data, lstsq_tapegrad, lstsq_torch = lstsq.data, lstsq.tapegrad_step, lstsq.torch_step


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--quick", action="store_true",
                       help="smallest sizes, few repeats, the peers' workloads once (< 40 s)")
    group.add_argument("--full", action="store_true", help="add the 1e6-op scalar graphs")
    parser.add_argument("--repeats", type=int, help="repeats per measurement (median taken)")
    parser.add_argument("--output", default=str(HERE / "RESULTS.md"), help="results file")
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
    started = time.perf_counter()
    rows = {}
    workloads = [workload.for_mode(mode) for workload in REGISTRY]
    for workload in workloads:
        sizes = workload.sizes_for(mode)
        if sizes is not None:
            runs = workload.quick_repeats if args.quick and workload.quick_repeats else repeats
            rows[workload.name] = workload.measure(workload, sizes, runs)
    elapsed = time.perf_counter() - started

    sections = []
    for workload in workloads:
        table = (workload.table(workload, rows[workload.name]) if workload.name in rows
                 else f"(not run with --{mode})")
        print(f"{workload.title}\n{table}\n")
        sections.append((workload.title, workload.description.format(repeats=repeats), table))
    text = report.results_text(command, elapsed, repeats, sections)
    chart = Path(args.output).with_suffix(".png")
    has_chart = report.write_chart(rows["scalar"], rows["elementwise"], chart)
    if has_chart:
        text += f"\n![chart]({chart.name})\n"
    Path(args.output).write_text(text)
    wrote = args.output + (f" and {chart}" if has_chart else "")
    print(f"wrote {wrote} in {elapsed:.0f} s")


if __name__ == "__main__":
    main()
