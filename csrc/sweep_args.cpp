#include "sweep_args.hpp"

#include <pybind11/pybind11.h>

#include "arrays.hpp"
#include "sweep_errors.hpp"

namespace tapegrad {

PyObject* start_gradient_for(PyObject* like_obj, PyObject* grad_output, const char* what) {
    if (!like_obj) {
        if (grad_output == Py_None) return PyFloat_FromDouble(1.0);
        const py::object array = py::reinterpret_steal<py::object>(to_float_array(grad_output, what));
        if (!array) return nullptr;
        if (PyArray_SIZE(reinterpret_cast<PyArrayObject*>(array.ptr())) != 1) {
            PyErr_Format(PyExc_ValueError, "%s: the target is a scalar, so its gradient must be "
                         "a single number", what);
            return nullptr;
        }
        const double v = sum_all(array.ptr());
        return PyErr_Occurred() ? nullptr : PyFloat_FromDouble(v);
    }
    // One value for every element: uniform (Note [Uniform gradients]).
    if (grad_output == Py_None) return uniform_like(like_obj, 1.0);
    if (PyFloat_Check(grad_output) || PyLong_Check(grad_output)) {
        const double v = PyFloat_AsDouble(grad_output);
        return v == -1.0 && PyErr_Occurred() ? nullptr : uniform_like(like_obj, v);
    }
    const py::object array = py::reinterpret_steal<py::object>(to_float_array(grad_output, what));
    if (!array) return nullptr;
    PyArrayObject* like = reinterpret_cast<PyArrayObject*>(like_obj);
    if (!PyArray_SAMESHAPE(reinterpret_cast<PyArrayObject*>(array.ptr()), like)) {
        PyErr_Format(PyExc_ValueError,
                     "%s has shape %S but the target has shape %S; give one gradient per "
                     "element of the target",
                     what, shape_text(array.ptr()).ptr(), shape_text(like_obj).ptr());
        return nullptr;
    }
    return PyArray_FROM_OTF(array.ptr(), PyArray_TYPE(like), NPY_ARRAY_CARRAY_RO | NPY_ARRAY_FORCECAST);
}

PyObject* backward_start_gradient(PyObject* like, PyObject* gradient, const char* what) {
    if (gradient == Py_None && like && PyArray_SIZE(reinterpret_cast<PyArrayObject*>(like)) != 1) {
        PyErr_Format(PyExc_RuntimeError,
                     "%s: grad can be implicitly created only for scalar outputs; this output has "
                     "shape %S, so pass its gradient (an array of that shape)",
                     what, shape_text(like).ptr());
        return nullptr;
    }
    return start_gradient_for(like, gradient, what);
}

uint32_t backward_target(Tape& tape, TensorObject* t, const char* what) {
    const uint32_t here = find_node(tape, t);  // bound here, or foreign (Note [Foreign tensors])
    if (!(t->flags & T_REQUIRES_GRAD)) {
        PyErr_Format(PyExc_RuntimeError,
                     "%s: '%S' does not require grad and has no history, so there is nothing to "
                     "differentiate. Was it computed inside no_grad(), or only from tensors made "
                     "with requires_grad=False?",
                     what, label_text(t).ptr());
        return UINT32_MAX;
    }
    if (here != UINT32_MAX && tape.rows().op(identity_row(tape, here)) != OP_STALE) return here;
    if (t->flags & T_LEAF) return node_on(tape, t);  // a leaf: its gradient is the starting gradient itself
    PyErr_Format(PyExc_RuntimeError, "%s: the history of '%S' is gone. %s", what, label_text(t).ptr(),
                 HISTORY_GONE);
    return UINT32_MAX;
}

std::vector<TensorObject*> tensors_of(PyObject* obj, const char* what) {
    std::vector<TensorObject*> out;
    if (is_tensor(obj)) {
        out.push_back(reinterpret_cast<TensorObject*>(obj));
        return out;
    }
    const py::object seq =
        py::reinterpret_steal<py::object>(PySequence_Fast(obj, "expected a Tensor or a sequence of Tensors"));
    if (!seq) return out;
    for (Py_ssize_t k = 0; k < PySequence_Fast_GET_SIZE(seq.ptr()); ++k) {
        PyObject* item = PySequence_Fast_GET_ITEM(seq.ptr(), k);
        if (!is_tensor(item)) {
            PyErr_Format(PyExc_TypeError, "%s[%zd] is %.100s; expected Tensors", what, k,
                         Py_TYPE(item)->tp_name);
            out.clear();
            break;
        }
        out.push_back(reinterpret_cast<TensorObject*>(item));
    }
    return out;
}

PyObject* checked_sources(PyObject* sources) {
    if (is_tensor(sources)) {  // a Tensor is iterable: it would be taken for a list of its rows
        PyErr_SetString(PyExc_TypeError,
                        "compute_gradients: sources must be a list of Tensors, got a Tensor; "
                        "pass [x] for one source");
        return nullptr;
    }
    py::object seq = py::reinterpret_steal<py::object>(
        PySequence_Fast(sources, "compute_gradients: sources must be a list of Tensors"));
    if (!seq) return nullptr;
    PyObject** items = PySequence_Fast_ITEMS(seq.ptr());
    for (Py_ssize_t k = 0; k < PySequence_Fast_GET_SIZE(seq.ptr()); ++k) {
        if (!is_tensor(items[k])) {
            PyErr_Format(PyExc_TypeError,
                         "compute_gradients: sources[%zd] is %.100s; every source must be a Tensor",
                         k, Py_TYPE(items[k])->tp_name);
            return nullptr;
        }
        if (!constant_source_error("compute_gradients", k, reinterpret_cast<TensorObject*>(items[k])))
            return nullptr;
    }
    return seq.release().ptr();
}

}  // namespace tapegrad
