#include "anomaly.hpp"

#include <cmath>
#include <string>

#include "array_ops.hpp"
#include "arrays.hpp"
#include "tensor.hpp"

namespace tapegrad {

namespace {

// The directory of tapegrad's Python package (its frames are not the user's).
const std::string& package_directory() {
    static const std::string directory = [] {
        std::string dir;
        PyObject* module = PyImport_ImportModule("tapegrad");
        PyObject* file = module ? PyObject_GetAttrString(module, "__file__") : nullptr;
        const char* text = file && PyUnicode_Check(file) ? PyUnicode_AsUTF8(file) : nullptr;
        if (text) {
            dir = text;
            dir.erase(dir.find_last_of("/\\") + 1);
        }
        Py_XDECREF(file);
        Py_XDECREF(module);
        PyErr_Clear();
        return dir;
    }();
    return directory;
}

template <class T>
const char* first_nonfinite(const T* data, npy_intp n) {
    for (npy_intp i = 0; i < n; ++i)
        if (!std::isfinite(data[i])) return std::isnan(data[i]) ? "nan" : "inf";
    return nullptr;
}

}  // namespace

void Tape::note_origin(uint32_t row) {
    const std::string& ours = package_directory();
    PyFrameObject* frame = PyEval_GetFrame();  // borrowed
    Py_XINCREF(frame);
    while (frame) {
        PyCodeObject* code = PyFrame_GetCode(frame);
        const char* file = PyUnicode_AsUTF8(code->co_filename);
        const bool user = !file || ours.empty() || std::string(file).rfind(ours, 0) != 0;
        if (user) {
            PyObject* origin = PyUnicode_FromFormat("%U:%d", code->co_filename, PyFrame_GetLineNumber(frame));
            Py_DECREF(code);
            Py_DECREF(frame);
            if (!origin) break;
            rows_.set_origin(row, origin);
            return;
        }
        Py_DECREF(code);
        PyFrameObject* back = PyFrame_GetBack(frame);
        Py_DECREF(frame);
        frame = back;
    }
    PyErr_Clear();  // where is unknown: the check still names the op
}

const char* nonfinite(double v) {
    if (std::isfinite(v)) return nullptr;
    return std::isnan(v) ? "nan" : "inf";
}

const char* nonfinite(PyObject* g) {
    if (!g) return nullptr;
    if (is_tensor(g)) {
        auto* t = reinterpret_cast<TensorObject*>(g);
        return t->array ? nonfinite(t->array) : nonfinite(t->scalar);
    }
    if (PyFloat_Check(g)) return nonfinite(PyFloat_AS_DOUBLE(g));
    if (!PyArray_Check(g)) return nullptr;
    auto* a = reinterpret_cast<PyArrayObject*>(g);
    const int type = PyArray_TYPE(a);
    if (type != NPY_FLOAT64 && type != NPY_FLOAT32) return nullptr;
    PyObject* flat = PyArray_FROM_OTF(g, type, NPY_ARRAY_CARRAY_RO);
    if (!flat) {
        PyErr_Clear();
        return nullptr;
    }
    auto* f = reinterpret_cast<PyArrayObject*>(flat);
    const char* kind = type == NPY_FLOAT64
                           ? first_nonfinite(static_cast<const double*>(PyArray_DATA(f)), PyArray_SIZE(f))
                           : first_nonfinite(static_cast<const float*>(PyArray_DATA(f)), PyArray_SIZE(f));
    Py_DECREF(flat);
    return kind;
}

bool anomaly_error(const Tape& tape, uint32_t row, uint32_t input, const char* what) {
    const bool custom = tape.rows().op(row) == OP_CUSTOM;
    const UserRecord* record = custom ? &tape.rows().user_record(tape.rows().in0(row)) : nullptr;
    PyObject* name = custom ? PyObject_GetAttrString(record->record, "op")
                            : PyUnicode_FromString(row_op_name(tape.rows().op(row)));
    if (!name) {
        PyErr_Clear();
        name = PyUnicode_FromString("custom");
    }
    PyObject* output = tape.labels().label_of(custom ? record->outputs.front() : row);
    PyObject* label = tape.labels().label_of(input);
    PyObject* origin = tape.rows().origin(row);
    PyErr_Format(PyExc_RuntimeError,
                 "detect_anomaly: the backward of %S (output '%S'), recorded at %S, gave %s in "
                 "the gradient of its input '%S'. Look at that line's values: 0 * inf, log or "
                 "division at 0, sqrt at 0, ...",
                 name ? name : Py_None, output ? output : Py_None,
                 origin ? origin : Py_None, what,
                 label ? label : Py_None);
    Py_XDECREF(output);
    Py_XDECREF(name);
    Py_XDECREF(label);
    return false;
}

}  // namespace tapegrad
