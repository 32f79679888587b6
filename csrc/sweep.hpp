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

// Why a tensor's records can be gone, and what to do about each cause.
extern const char* const HISTORY_GONE;

// A tensor's label as a new str.
PyObject* label_text(TensorObject* t);

// Sets the error for a gradient reaching a row a backward() freed; false.
bool freed_error(const Tape& t, uint32_t row);

// A stale row (Note [Stale tensors] in tensor.cpp) was reached: its history
// is gone, so a source made no later than it might be missing a gradient.
bool check_stale(Tape& t, uint32_t row, const std::vector<Source>& sources);

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
