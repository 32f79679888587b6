// einsum's numeric forward: contractions through BLAS, with a cached plan.
//
// Note [Contractions]
// numpy's default einsum loops over every letter at once, element by element,
// where a batched matmul hands the same contraction to BLAS. So
// the einsum op (and with it every einsum backward, an einsum too) runs as
// np.einsum(..., optimize=True) and tensordot do: operands are contracted
// two at a time, each pair as one matmul over a transposed and reshaped view
// of each, (batch, left, contracted) @ (batch, contracted, right).
//   - Which pair first: greedy, the pair whose result is smallest against
//     its operands (opt_einsum's "greedy"); two operands need no search.
//   - Before a pair, each operand drops what no one else reads: repeated
//     letters become their diagonal, letters nobody else has are summed, and
//     a letter of length 1 facing a longer one (broadcasting, as numpy allows
//     for any letter) is squeezed out. A one-operand c_einsum does that.
//   - A pair with nothing to contract is a broadcast multiply; a batch of
//     matrix-vector or dot products is c_einsum's loop, which beats one BLAS
//     call per matrix (measured: 100,000 3x3 matrices, 8x8 and 64x64 ones).
//   - numpy's matmul falls back to a naive loop on views BLAS cannot read
//     (no unit stride in the matrix axes): those are copied first.
//   - The last product is written straight into the output's layout where
//     its axes allow (matmul's out=), so the result is C-contiguous.
// A plan (the order, every permutation and shape) depends only on the spec
// and the shapes; it is built once per (spec, shapes) and cached, so a small
// einsum called in a loop pays no search and no parsing. Operands of mixed
// dtypes are cast to the promoted one first, as numpy's einsum computes (a
// float32 operand summed on its own would lose digits). Numbers (0-d
// operands) multiply the result at the end; a Python float does not promote
// float32 (tapegrad's promotion rule, numpy's NEP 50 for Python scalars), a 0-d
// float64 array does.
//
// Specs are explicit here (Python expands '...' and implicit outputs), and
// validated when a plan is built: ValueErrors name the letter, the operands
// and their shapes.
#pragma once

#include <pybind11/pybind11.h>

#include <vector>

namespace tapegrad {

namespace py = pybind11;

// einsum(specs -> out) of x (ndarrays or floats), a new array.
py::object contract(const py::tuple& specs, const py::object& out, const std::vector<py::object>& x);

// How many contraction plans are cached (for tests).
size_t contraction_plans_cached();

}  // namespace tapegrad
