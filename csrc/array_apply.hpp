// Array ops on the tape: the entry point that computes and records them, and
// the backward the sweep and operation_history call.
#pragma once

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <cstdint>
#include <vector>

#include "composite.hpp"
#include "tape.hpp"

namespace tapegrad {

// array_op(code, inputs, params): computes array op `code` on a sequence of
// inputs (Tensors, numbers, arrays) and records it when an input requires grad.
PyObject* apply_array_op(long code, PyObject* inputs, PyObject* params);

// Array op `code`'s value on input values (numbers and ndarrays) with its
// parameters (a tuple), numpy's result as the op returns it; nullptr with the
// error set, the op's name in front. Records nothing (the replay of a
// compiled tape calls it too: replay.cpp).
PyObject* array_op_forward(Tape& tape, uint8_t code, const Values& values, PyObject* params);

// An array op's result as a float32/float64 ndarray (a new reference), read-only:
// the tape keeps it.
PyObject* as_result_array(PyObject* result);

// a @ b: the matmul array op on two operands (the `@` slot and np.matmul's dispatch).
PyObject* apply_matmul(PyObject* a, PyObject* b);

// The same as a METH_FASTCALL entry point: array_op(code, inputs, params).
PyObject* array_op_entry(PyObject*, PyObject* const* args, Py_ssize_t nargs);

// The backward of array-op row `row` for output gradient g: sets grads to one
// new reference (or nullptr: no gradient, a constant's, or an input whose row
// is not `needed`: Note [Needed rows]) per input. False with an error set.
bool array_op_backward(Tape& tape, uint32_t row, PyObject* g, std::vector<PyObject*>& grads,
                       const std::vector<uint8_t>* needed = nullptr);

// Whether array op `code` has a tangent rule (Note [Tangent rules] in array_ops.hpp).
bool array_op_has_tangent_rule(uint8_t code);

// The tangent of array-op row `row`, by its op's rule (Note [Tangent rules] in array_ops.hpp)
// from its inputs' tangents (borrowed, one per input; nullptr: none), with the
// row's and its inputs' values those of the forward just run. A new
// reference, or nullptr with an error set.
PyObject* array_op_tangent(Tape& tape, uint32_t row, const std::vector<PyObject*>& tangents);

}  // namespace tapegrad
