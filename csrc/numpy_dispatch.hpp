// Tensor.__array_ufunc__: numpy's ufuncs called on Tensors (Note [numpy dispatch]).
#pragma once

#define PY_SSIZE_T_CLEAN
#include <Python.h>

namespace tapegrad {

// set_ufunc_dispatch(codes, fallback): codes maps each differentiable ufunc
// to its op code; fallback(ufunc, method, inputs, kwargs) answers every other call.
PyObject* set_ufunc_dispatch(PyObject*, PyObject* const* args, Py_ssize_t nargs);

// The method itself (METH_FASTCALL | METH_KEYWORDS): (ufunc, method, *inputs, **kwargs).
PyObject* tensor_array_ufunc(PyObject* self, PyObject* const* args, size_t nargsf, PyObject* kwnames);

}  // namespace tapegrad
