// Gradients: the reverse sweep over the calling thread's tape.
#pragma once

#define PY_SSIZE_T_CLEAN
#include <Python.h>

namespace tapegrad {

// compute_gradients(target, sources, grad_output): a list with one gradient
// per source (a float, or an ndarray of the source's shape and dtype).
PyObject* compute_gradients(PyObject* target, PyObject* sources, PyObject* grad_output);

}  // namespace tapegrad
