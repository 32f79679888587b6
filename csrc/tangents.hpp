// Forward-mode derivatives of a compiled tape: J t, row by row.
//
// Note [Tangent sweep]
// A compiled tape's jvp (Trace::replay with tangents) runs over the rows
// twice, both times in recording order: the values first (the replay's own
// forward, row by row), then the tangents, each row's from its inputs'. A row
// gets its J t from what the op tables already hold:
//   - an elementwise op, scalar or array: the sum over its operands of its
//     backward seeded with the operand's tangent. An elementwise backward
//     multiplies g by a partial derivative, so seeded with t_a it gives
//     d(out)/d(a) t_a, at the output's shape (the kernels give it before any
//     broadcast is summed back);
//   - an array op: its tangent rule (Note [Tangent rules] in array_ops.hpp);
//   - a tapegrad.Function: its backward, one output element at a time (row j
//     of J is the backward of the unit vector e_j).
// A row none of whose inputs has a tangent has none (zero, never computed):
// the pass costs only the rows between the inputs given tangents and the
// output. Hooks are not called: they belong to gradients, as in torch.func.jvp.
#pragma once

#include <pybind11/pybind11.h>

#include <cstdint>
#include <vector>

#include "tape.hpp"

namespace tapegrad {

namespace py = pybind11;

// The tangent of row `output` (a float, or an ndarray of its layout) for one
// direction: direction[k] is the tangent of row inputs[k] (None: zero; a row
// UINT32_MAX is skipped). `order` holds the op rows, ascending, whose values
// a forward has just computed. Throws py::error_already_set.
py::object tangent_of(Tape& tape, const std::vector<uint32_t>& order, const std::vector<uint32_t>& inputs,
                      const py::sequence& direction, uint32_t output);

}  // namespace tapegrad
