"""What the compiled targets stand against: the work no replay can skip, timed beside it.

A compiled replay gives the Python function's answer, bit for bit, so it runs the kernels
the function runs: BLAS's matrix products, numpy's tanh, exp and log. This script times
that unavoidable work alone, next to the hand-written step (the targets' floor, DESIGN 6)
and the compiled one, in one process, one thread, medians of interleaved repeats:

- MLP batch 64, float64: the step by hand; its eight matrix products alone; with its two
  tanh; with its SGD update. What a replay must run is at least the last of these.
- Elementwise chain at 1e6: the hand-written gradient; numpy's tanh, exp and log of the
  chain alone, over cache-sized blocks of their arguments (out= buffers: no allocation);
  with a copy of the bytes every replay reads and writes (three inputs in, three gradients
  out). Everything else a replay does (the chain's arithmetic, its backward) could in
  principle happen in registers.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/floors.py

prints the tables and writes them to bench/FLOORS.md (``--output``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

# One thread, as bench/compare.py runs every library; set before numpy loads BLAS.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "TAPEGRAD_NUM_THREADS"):
    os.environ[_var] = "1"

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402
import report  # noqa: E402
from workloads import elementwise, mlp  # noqa: E402

BLOCK = 16384  # elements: a block of each array stays in this machine's L2


def median_seconds(candidates: dict, repeats: int, calls: int) -> dict[str, float]:
    """Seconds per call of each candidate: medians of `repeats` rounds, interleaved."""
    samples: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(repeats):
        for name, call in candidates.items():
            t0 = time.perf_counter()
            for _ in range(calls):
                call()
            samples[name].append((time.perf_counter() - t0) / calls)
    return {name: statistics.median(s) for name, s in samples.items()}


def mlp_candidates() -> dict:
    """The MLP step (batch 64, float64) by hand, compiled, and the kernels it cannot skip."""
    batches = iter(mlp.data(64, "float64", 100_000))
    w1, b1, w2, b2, w3, b3 = params = mlp.init("float64")
    x, y = next(batches)

    def products():
        h1 = x @ w1
        h2 = h1 @ w2
        logits = h2 @ w3
        d2 = logits @ w3.T
        d1 = d2 @ w2.T
        return x.T @ d1, h1.T @ d2, h2.T @ logits

    def products_tanh():
        h1 = np.tanh(x @ w1)
        h2 = np.tanh(h1 @ w2)
        logits = h2 @ w3
        d2 = logits @ w3.T
        d1 = d2 @ w2.T
        return x.T @ d1, h1.T @ d2, h2.T @ logits

    def products_tanh_update():
        g1, g2, g3 = products_tanh()
        for p, g in zip(params, (g1, b1, g2, b2, g3, b3)):
            p -= 0.0 * g  # the step's update, leaving the weights as they were

    by_hand, compiled = mlp.numpy_step("float64"), mlp.tapegrad_compiled_step("float64")
    compiled(x, y)  # the trace
    return {"the step by hand (the floor)": lambda: by_hand(x, y),
            "its 8 matrix products alone": products,
            "+ its 2 tanh": products_tanh,
            "+ its SGD update": products_tanh_update,
            "tapegrad compiled step": lambda: compiled(x, y)}


def elementwise_candidates(n: int) -> dict:
    """The chain at n elements by hand, compiled, and the work a same-bits replay must do."""
    arrays = elementwise.inputs(n)
    x, w, b = arrays
    # The arguments of the chain's tanh, exp and log, computed before the clock starts.
    arguments = [x * w + b, -(x * x), 1 + w * w]
    functions = [np.tanh, np.exp, np.log]
    results = [np.empty(BLOCK) for _ in functions]

    def transcendentals():
        for s in range(0, n, BLOCK):
            k = min(BLOCK, n - s)
            for f, a, out in zip(functions, arguments, results):
                f(a[s:s + k], out=out[:k])

    gradients = [np.empty(n) for _ in arrays]

    def bytes_moved():  # three inputs read, three gradients written: no replay moves less
        for a, out in zip(arrays, gradients):
            np.copyto(out, a)

    compiled = elementwise.compiled_style()
    compiled(arrays)  # the trace
    floor = "the hand-written gradient (the floor), beside the others"
    return {floor: lambda: elementwise.by_hand(arrays),
            "numpy's tanh, exp and log alone, in blocks": transcendentals,
            "+ inputs read, gradients written": lambda: (transcendentals(), bytes_moved()),
            "tapegrad compiled value_and_grad": lambda: compiled(arrays)}


def floor_alone(n: int, repeats: int) -> float:
    """Seconds per call of the hand-written gradient alone in a fresh process, as a numpy
    user's loop runs it (and bench/compare.py times it, a process per library): there glibc
    gives the freed pages of numpy's 8 MB temporaries back to the system between calls, and
    the next call faults them in."""
    code = ("import statistics, sys; sys.path.insert(0, sys.argv[1]); "
            "from workloads import elementwise as e; a = e.inputs(int(sys.argv[2])); "
            "[e.by_hand(a) for _ in range(3)]; "
            "print(statistics.median(e.by_hand(a)[0] for _ in range(int(sys.argv[3]))))")
    done = subprocess.run([sys.executable, "-c", code, str(HERE), str(n), str(repeats)],
                          capture_output=True, text=True, check=True)
    return float(done.stdout)


def table(seconds: dict[str, float], unit: str, scale: float, target: float) -> str:
    floor = next(iter(seconds.values()))
    lines = [f"| | {unit} | x the floor |", "|---|---:|---:|"]
    lines += [f"| {name} | {s * scale:.4g} | {s / floor:.2f}x |" for name, s in seconds.items()]
    lines.append(f"| the target (DESIGN 6) | {target * floor * scale:.4g} | {target:.2f}x |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=11)
    parser.add_argument("--size", type=int, default=1_000_000, help="elementwise elements")
    parser.add_argument("--output", default=str(HERE / "FLOORS.md"))
    args = parser.parse_args()
    t0 = time.perf_counter()
    mlp_table = table(median_seconds(mlp_candidates(), args.repeats, 50), "µs per step", 1e6, 0.75)
    chain = median_seconds(elementwise_candidates(args.size), args.repeats, 3)
    chain["the hand-written gradient, alone in a process"] = floor_alone(args.size, args.repeats)
    chain_table = table(chain, "ms per call", 1e3, 0.4)
    command = "python bench/floors.py" + "".join(f" {a}" for a in sys.argv[1:])
    text = f"""# What the compiled targets stand against

Written by `bench/floors.py`; do not edit by hand. A replay gives the Python function's
answer bit for bit, so it runs the same BLAS and numpy kernels; the rows below time those
kernels alone beside the floor and the compiled replay.

- Command: `{command}` ({time.perf_counter() - t0:.0f} s)
- Machine: {report.machine_description()}
- One thread everywhere (tapegrad's fused groups too); medians of {args.repeats}
  interleaved repeats.

## MLP batch 64, float64

{mlp_table}

## Elementwise chain at {args.size:,} elements

{chain_table}

The floor here is the first row. The hand-written gradient alone in a process (the last
row; bench/compare.py runs each library in a process of its own) is slower: there glibc
returns the pages of numpy's 8 MB temporaries to the system between calls, and each call
faults them in again. Beside the others here, or with `MALLOC_TRIM_THRESHOLD_` and
`MALLOC_MMAP_THRESHOLD_` set high, it does not. A replay's pooled buffers never pay that.
"""
    print(text)
    Path(args.output).write_text(text)


if __name__ == "__main__":
    main()
