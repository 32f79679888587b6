// The seed's operation_history, read from and appended to the tape.
#pragma once

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <cstdint>

namespace tapegrad {

// Number of records (ops and user records) on the calling thread's tape.
Py_ssize_t history_length();

// The k-th record as (name, input labels, output labels, row, epoch, user
// record or None); a user record's name is "custom" and its labels are None.
// The row and the tape's epoch let record_vjp find the row later.
PyObject* history_item(Py_ssize_t k);

// The input gradients of built-in record `row` for output gradient g, one per
// Tensor input, each of its input's shape: what its backward_fn returns.
PyObject* record_vjp(uint64_t row, uint64_t epoch, PyObject* g);

// Appends a user record (an object with input_keys, output_keys and
// backward_fn) whose keys are labels or Tensors. A Function's record
// (`function`) names its Tensors and makes its outputs recorded tensors.
// Returns `saved` (a Function's saved tensors) as a tuple with recorded
// tensors replaced by saved handles (Note [Saved tensors]).
PyObject* append_record(PyObject* record, bool function, PyObject* saved);

// The rows a tensor depends on, in creation order, as (row, op name, input
// nodes, output nodes, label, shape); the label and shape of a user record
// (several outputs) are None. Empty for a tensor with no history here.
PyObject* graph_of(PyObject* tensor);

// Empties the calling thread's tape and restarts labels at tensor_0.
bool clear_history();

}  // namespace tapegrad
