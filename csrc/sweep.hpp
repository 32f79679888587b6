// Gradients: the reverse sweep over the calling thread's tape.
#pragma once

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <cstdint>
#include <vector>

#include "tape.hpp"
#include "tensor.hpp"

namespace tapegrad {

// compute_gradients(target, sources, grad_output): a list with one gradient
// per source (a float, or an ndarray of the source's shape and dtype).
PyObject* compute_gradients(PyObject* target, PyObject* sources, PyObject* grad_output);

// t.backward(gradient, retain_graph, create_graph): accumulates into the .grad
// of every leaf that requires grad; unless retain_graph, what it traversed
// cannot be again. With create_graph the gradients have history.
bool backward(PyObject* target, PyObject* gradient, bool retain_graph, bool create_graph);

// tapegrad.grad(outputs, inputs, grad_outputs, retain_graph, create_graph,
// allow_unused): a tuple with one Tensor (or None) per input, as torch.autograd.grad.
PyObject* grad(PyObject* outputs, PyObject* inputs, PyObject* grad_outputs, bool retain_graph,
               bool create_graph, bool allow_unused);

// ---- shared by the numeric sweep (sweep.cpp) and the recording one (graph_sweep.cpp) ----

// A tensor gradients are asked for, and its node (UINT32_MAX: not on this tape).
struct Source {
    TensorObject* tensor;
    uint32_t node;
};

// Sets the error for a source (the k-th of `what`'s) that does not require
// grad, and returns false; true for one that does.
bool constant_source_error(const char* what, Py_ssize_t k, TensorObject* t);

// The layout of a tensor's value on `node` (UINT32_MAX: its own value): an
// ndarray, or nullptr for a number (borrowed).
PyObject* value_layout(const Tape& tape, uint32_t node, TensorObject* t);

// `value` (a new reference, passed through) made read-only if it is an array
// of the sweep's own, for a gradient handed out as a Tensor (Note [Immutable values]).
PyObject* read_only(PyObject* value);

// A tensor asked for as a source, at the row where its gradient collects
// (Note [Versions] in tensor.hpp).
Source source_of(const Tape& tape, TensorObject* t);

// Sets the error for a source whose value changed shape or dtype after the
// graph used it on `row`; false.
bool version_error(const Tape& tape, const Source& s, uint32_t row);

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
            return version_error(tape, s, s.node);
        const auto* rows = tape.foreign().retired_rows(reinterpret_cast<PyObject*>(s.tensor));
        if (!rows) continue;
        for (uint32_t row : *rows)
            if (sweep.reached_node(row)) return version_error(tape, s, row);
    }
    return true;
}

// Why a tensor's records can be gone, and what to do about each cause.
extern const char* const HISTORY_GONE;

// A tensor's label as a new str.
PyObject* label_text(TensorObject* t);

// Sets the error for a gradient reaching a row a backward() freed; false.
bool freed_error(const Tape& t, uint32_t row);

// A stale row (Note [Stale tensors] in tensor.cpp) was reached: its history
// is not on this tape. False with an error set when a source may be missing
// a gradient through it: a source made before it (history gone), or one its
// history on another tape reaches. `every_leaf` (backward()): every leaf is
// a source, wherever it is, so history that is gone always raises.
bool check_stale(Tape& t, uint32_t row, const std::vector<Source>& sources, bool every_leaf);

// Note [Quiet numpy]
// NaN and inf propagate through a backward as values (0 * inf is NaN, as in
// PyTorch); numpy's floating-point warnings are silenced while a sweep runs
// array formulas, set once per sweep and restored after. numpy 2 keeps its
// error settings in a context variable, set here directly (two C calls);
// with an older numpy, np.seterr is called instead.
class QuietNumpy {
public:
    QuietNumpy() = default;
    QuietNumpy(const QuietNumpy&) = delete;
    QuietNumpy& operator=(const QuietNumpy&) = delete;
    bool active() const { return token != nullptr || saved != nullptr; }
    bool start();
    ~QuietNumpy();

private:
    PyObject* token = nullptr;  // from PyContextVar_Set, for the reset
    PyObject* seterr = nullptr;  // the fallback: np.seterr,
    PyObject* saved = nullptr;   // and the previous settings, a dict
};

}  // namespace tapegrad
