// The gradient entry points: compute_gradients (the seed's), backward and grad.
#pragma once

#define PY_SSIZE_T_CLEAN
#include <Python.h>

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

}  // namespace tapegrad
