// The gradient entry points' arguments: targets, given and sources, checked.
#pragma once

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <cstdint>
#include <vector>

#include "tape.hpp"
#include "tensor.hpp"

namespace tapegrad {

// The starting gradient of a target whose value has the layout of `like` (an ndarray, or
// nullptr for a number): a float, or an array of like's shape and dtype.
// `what` names the argument in errors.
PyObject* start_gradient_for(PyObject* like, PyObject* grad_output, const char* what);

// The starting gradient of a target for backward()/grad(): implicit only for one element, as in PyTorch.
PyObject* backward_start_gradient(PyObject* like, PyObject* gradient, const char* what);

// A target of backward() or grad(): its node, or UINT32_MAX with an error set.
uint32_t backward_target(Tape& tape, TensorObject* t, const char* what);

// A Tensor or a sequence of Tensors as a list (borrowed); empty with an
// error set if an item is not a Tensor.
std::vector<TensorObject*> tensors_of(PyObject* obj, const char* what);

// compute_gradients' sources: a list (not a Tensor) of Tensors that require
// grad, as a new sequence (PySequence_Fast), or nullptr with an error set.
PyObject* checked_sources(PyObject* sources);

}  // namespace tapegrad
