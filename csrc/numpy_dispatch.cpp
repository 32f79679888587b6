#include "numpy_dispatch.hpp"

#include "array_apply.hpp"
#include "array_ops.hpp"
#include "ops.hpp"
#include "tensor.hpp"

namespace tapegrad {

// Note [numpy dispatch]
// numpy hands `ndarray @ t`, `np.exp(t)` and every other ufunc call that has a
// Tensor operand to Tensor.__array_ufunc__. The common calls (a
// differentiable ufunc, called plainly with no keyword) are answered here
// with one native call, as the operators are; the rest (comparisons, methods
// such as reduce, keywords, and the errors that name them) go to the Python
// fallback, numpy_interop.array_ufunc, which knows every case. Both read the
// same table (numpy_interop.UFUNC_CODES).

namespace {
PyObject* ufunc_codes = nullptr;  // dict: ufunc -> op code; kept for the process
PyObject* fallback = nullptr;

PyObject* call_fallback(PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
    if (!fallback) {
        PyErr_SetString(PyExc_RuntimeError, "__array_ufunc__: tapegrad's numpy dispatch is not set up");
        return nullptr;
    }
    const Py_ssize_t n_kw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    PyObject* inputs = PyTuple_New(nargs - 2);
    PyObject* kwargs = PyDict_New();
    PyObject* result = nullptr;
    if (inputs && kwargs) {
        for (Py_ssize_t k = 2; k < nargs; ++k) PyTuple_SET_ITEM(inputs, k - 2, Py_NewRef(args[k]));
        bool ok = true;
        for (Py_ssize_t k = 0; ok && k < n_kw; ++k)
            ok = PyDict_SetItem(kwargs, PyTuple_GET_ITEM(kwnames, k), args[nargs + k]) == 0;
        if (ok) result = PyObject_CallFunctionObjArgs(fallback, args[0], args[1], inputs, kwargs, nullptr);
    }
    Py_XDECREF(inputs);
    Py_XDECREF(kwargs);
    return result;
}
}  // namespace

PyObject* set_ufunc_dispatch(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
    if (nargs != 2 || !PyDict_Check(args[0]) || !PyCallable_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "set_ufunc_dispatch(codes: dict, fallback: callable)");
        return nullptr;
    }
    Py_XSETREF(ufunc_codes, Py_NewRef(args[0]));
    Py_XSETREF(fallback, Py_NewRef(args[1]));
    Py_RETURN_NONE;
}

PyObject* tensor_array_ufunc(PyObject*, PyObject* const* args, size_t nargsf, PyObject* kwnames) {
    const Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (nargs < 2) {
        PyErr_SetString(PyExc_TypeError, "__array_ufunc__(ufunc, method, *inputs, **kwargs)");
        return nullptr;
    }
    const Py_ssize_t n_in = nargs - 2;
    const bool plain = ufunc_codes && (!kwnames || PyTuple_GET_SIZE(kwnames) == 0) &&
                       PyUnicode_Check(args[1]) && PyUnicode_CompareWithASCIIString(args[1], "__call__") == 0;
    PyObject* code_obj = plain ? PyDict_GetItemWithError(ufunc_codes, args[0]) : nullptr;  // borrowed
    if (!code_obj && PyErr_Occurred()) return nullptr;
    if (code_obj) {
        const long code = PyLong_AsLong(code_obj);
        if (code == -1 && PyErr_Occurred()) return nullptr;
        if (code == OP_MATMUL && n_in == 2) return apply_matmul(args[2], args[3]);
        if (code > 0 && code < OP_COUNT && op_arity(static_cast<uint8_t>(code)) == n_in) {
            PyObject* result = apply_op(static_cast<uint8_t>(code), args[2], n_in == 2 ? args[3] : nullptr);
            if (result != Py_NotImplemented) return result;  // a value, or an error to raise
            Py_DECREF(result);  // an operand the ops do not take: the fallback names it
        }
    }
    return call_fallback(args, nargs, kwnames);
}

}  // namespace tapegrad
