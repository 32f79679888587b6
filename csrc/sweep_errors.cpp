#include "sweep_errors.hpp"

#include "array_ops.hpp"
#include "arrays.hpp"

namespace tapegrad {

const char* const HISTORY_GONE =
    "Either a backward() or grad() already went through it and freed it (pass "
    "retain_graph=True to that call to go through it again), or clear_history() ran after it "
    "was computed (compute gradients first), or it was computed on another thread.";

py::object label_text(TensorObject* t) {
    PyObject* label = PyObject_GetAttrString(reinterpret_cast<PyObject*>(t), "label");
    if (!label) PyErr_Clear();  // the message is being written: it says None
    return label ? py::reinterpret_steal<py::object>(label) : py::none();
}

py::object row_label(const Tape& t, uint32_t row) {
    PyObject* label = t.labels().label_of(row);
    if (!label) PyErr_Clear();
    return label ? py::reinterpret_steal<py::object>(label) : py::none();
}

py::object shape_text(PyObject* value) {
    if (value && PyTuple_Check(value)) return py::reinterpret_borrow<py::object>(value);
    if (value && (PyArray_Check(value) || is_tensor(value))) {
        if (PyObject* shape = PyObject_GetAttrString(value, "shape"))
            return py::reinterpret_steal<py::object>(shape);
        PyErr_Clear();
        return py::none();
    }
    return py::tuple();
}

bool freed_error(const Tape& t, uint32_t row) {
    PyErr_Format(PyExc_RuntimeError,
                 "Trying to backward through the graph a second time (through %s -> %S): "
                 "backward() and tapegrad.grad() free what they traverse. Pass "
                 "retain_graph=True to the first call if you need to go through it again.",
                 row_op_name(t.rows().op(row)), row_label(t, row).ptr());
    return false;
}

bool version_error(const Tape& tape, TensorObject* source, uint32_t row) {
    PyErr_Format(PyExc_ValueError,
                 "the gradient with respect to '%S' flows through a graph that used its earlier "
                 "value, of shape %S (or another dtype), but its value now has shape %S (it was "
                 "replaced with t.data = ...): one gradient cannot stand for both. Compute "
                 "gradients before changing its shape, or give the new value a new Tensor.",
                 label_text(source).ptr(), shape_text(tape.rows().is_array(row) ? tape.rows().array_of(row) : nullptr).ptr(),
                 shape_text(reinterpret_cast<PyObject*>(source)).ptr());
    return false;
}

bool constant_source_error(const char* what, Py_ssize_t k, TensorObject* t) {
    if (t->flags & T_REQUIRES_GRAD) return true;
    // Ops whose operands are all constants record nothing, so the gradient
    // through them would be missing: a partial answer. PyTorch refuses too.
    PyErr_Format(PyExc_RuntimeError,
                 "%s: source %zd ('%S') does not require grad (it was made with "
                 "requires_grad=False, or by ops on such tensors), so the ops that used it are not "
                 "all recorded and its gradient cannot be had; make it with requires_grad=True",
                 what, k, label_text(t).ptr());
    return false;
}

bool user_result_error(PyObject* record, PyObject* result) {
    PyErr_Format(PyExc_TypeError,
                 "backward_fn of %R returned %.100s; it must return a list with one "
                 "gradient per input (None for no gradient)",
                 record, Py_TYPE(result)->tp_name);
    return false;
}

bool user_count_error(PyObject* record, Py_ssize_t given, Py_ssize_t wanted) {
    PyErr_Format(PyExc_ValueError,
                 "backward_fn of %R returned %zd gradients for %zd inputs; return one per "
                 "input, in the order of input_keys (None for no gradient)",
                 record, given, wanted);
    return false;
}

bool user_type_error(PyObject* record, Py_ssize_t k, PyObject* given) {
    PyErr_Format(PyExc_TypeError,
                 "backward_fn of %R returned %.100s for input %zd; a gradient must be a "
                 "real number or a float array",
                 record, Py_TYPE(given)->tp_name, k);
    return false;
}

bool user_shape_error(PyObject* record, Py_ssize_t k, PyObject* got, PyObject* want) {
    PyErr_Format(PyExc_ValueError,
                 "backward_fn of %R returned a gradient of shape %S for input %zd, whose "
                 "shape is %S; return the input's shape",
                 record, shape_text(got).ptr(), k, shape_text(want).ptr());
    return false;
}

bool hook_shape_error(PyObject* got) {
    PyErr_Format(PyExc_ValueError,
                 "register_hook: a hook returned a gradient of shape %S; return one of the "
                 "tensor's shape (or None to keep the gradient)",
                 shape_text(got).ptr());
    return false;
}

}  // namespace tapegrad
