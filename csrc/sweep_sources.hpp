// What a sweep is asked for: its sources, the rows that lead to them, and
// the checks on what it reached (versions, stale rows).
#pragma once

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <cstdint>
#include <vector>

#include "sweep_errors.hpp"
#include "tape.hpp"
#include "tensor.hpp"

namespace tapegrad {

// A tensor gradients are asked for, and its node (UINT32_MAX: not on this tape).
struct Source {
    TensorObject* tensor;
    uint32_t node;
};

// The layout of a tensor's value on `node` (UINT32_MAX: its own value): an
// ndarray, or nullptr for a number (borrowed).
PyObject* value_layout(const Tape& tape, uint32_t node, TensorObject* t);

// `value` (a new reference, passed through) made read-only if it is an array
// of the sweep's own, for a gradient handed out as a Tensor (Note [Immutable values]).
PyObject* read_only(PyObject* value);

// A tensor asked for as a source, at the row where its gradient collects
// (Note [Versions] in tensor.hpp).
Source source_of(const Tape& tape, TensorObject* t);

// Note [Needed rows]
// torch.autograd.grad runs only the part of the graph between the outputs
// and the inputs, and frees only that: a branch that does not lead to an
// input is neither computed nor freed, and a later backward() through it
// still works. tapegrad.grad() and Tape.gradient() do the same with this
// mask: a row is needed when a gradient can go from it to a source. Stale
// rows are needed (their check decides, Note [Stale tensors]). Empty (every
// row needed) while seed-style records are on the tape: their outputs may be
// used before the record that names them.
std::vector<uint8_t> needed_rows(const Tape& t, const std::vector<Source>& sources, size_t top);

// Note [Versions]: the rows of the sources' retired values, appended to
// `sources` so that the sweep goes down to them too.
void add_retired(const Tape& tape, std::vector<Source>& sources);

// Note [Versions]: false with an error set when a gradient reached one of
// the first n sources through a value of another shape or dtype than its
// current one.
template <class S>
bool check_versions(const Tape& tape, const S& sweep, const std::vector<Source>& sources, size_t n) {
    for (size_t k = 0; k < n; ++k) {
        const Source& s = sources[k];
        if (s.node != UINT32_MAX && sweep.reached_node(s.node) && !same_layout_as(tape, s.node, s.tensor))
            return version_error(tape, s.tensor, s.node);
        const auto* rows = tape.foreign().retired_rows(reinterpret_cast<PyObject*>(s.tensor));
        if (!rows) continue;
        for (uint32_t row : *rows)
            if (sweep.reached_node(row)) return version_error(tape, s.tensor, row);
    }
    return true;
}

// A stale row (Note [Stale tensors] in tensor.cpp) was reached: its history
// is not on this tape. False with an error set when a source may be missing
// a gradient through it: a source made before it (history gone), or one its
// history on another tape reaches. `every_leaf` (backward()): every leaf is
// a source, wherever it is, so history that is gone always raises.
bool check_stale(Tape& t, uint32_t row, const std::vector<Source>& sources, bool every_leaf);

}  // namespace tapegrad
