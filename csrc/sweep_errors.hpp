// The sweep's error text, written once for every sweep policy and entry point.
#pragma once

#include <pybind11/pybind11.h>

#include <cstdint>

#include "tape.hpp"
#include "tensor.hpp"

namespace tapegrad {

namespace py = pybind11;

// Why a tensor's records can be gone, and what to do about each cause.
extern const char* const HISTORY_GONE;

// A tensor's label (None if it cannot be read).
py::object label_text(TensorObject* t);

// The label of a row's tensor (None if it cannot be read).
py::object row_label(const Tape& t, uint32_t row);

// The shape of a value for an error message: an ndarray's or a Tensor's
// shape, a tuple as it is, () for a number. Every shape-mismatch message
// takes its shapes from here.
py::object shape_text(PyObject* value);

// Sets the error for a gradient reaching a row a backward() freed; false.
bool freed_error(const Tape& t, uint32_t row);

// Sets the error for a source whose value changed shape or dtype after the
// graph used it on `row`; false.
bool version_error(const Tape& tape, TensorObject* source, uint32_t row);

// Sets the error for a source (the k-th of `what`'s) that does not require
// grad, and returns false; true for one that does.
bool constant_source_error(const char* what, Py_ssize_t k, TensorObject* t);

// Sets the error for a user record's backward (`record`) whose result is not
// a list or tuple, or has `given` gradients for `wanted` inputs; false.
bool user_result_error(PyObject* record, PyObject* result);
bool user_count_error(PyObject* record, Py_ssize_t given, Py_ssize_t wanted);

// Sets the error for a user record's gradient for input k that is not a
// number or float array (`given`), or has `got`'s shape where the input has
// `want`'s; false.
bool user_type_error(PyObject* record, Py_ssize_t k, PyObject* given);
bool user_shape_error(PyObject* record, Py_ssize_t k, PyObject* got, PyObject* want);

// Sets the error for a hook whose result has `got`'s shape; false.
bool hook_shape_error(PyObject* got);

}  // namespace tapegrad
