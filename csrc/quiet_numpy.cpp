#include "quiet_numpy.hpp"

namespace tapegrad {

namespace {

// numpy 2's context variable of error settings and a value of it that ignores
// everything, looked up once and kept for the process's life; both null
// when this numpy has none.
struct QuietSettings {
    PyObject* var = nullptr;
    PyObject* ignore_all = nullptr;
};

const QuietSettings& quiet_settings() {
    static QuietSettings settings = [] {
        QuietSettings q;
        try {
            const py::module_ umath = py::module_::import("numpy._core.umath");
            py::object var = umath.attr("_extobj_contextvar");
            py::object ignore = umath.attr("_make_extobj")(py::arg("all") = "ignore");
            if (PyContextVar_CheckExact(var.ptr())) {
                q.var = var.release().ptr();
                q.ignore_all = ignore.release().ptr();
            }
        } catch (py::error_already_set&) {
            PyErr_Clear();  // no such API: the np.seterr fallback
        }
        return q;
    }();
    return settings;
}

}  // namespace

bool QuietNumpy::start() {
    const QuietSettings& q = quiet_settings();
    try {
        if (q.var) {
            token = py::reinterpret_steal<py::object>(PyContextVar_Set(q.var, q.ignore_all));
            return bool(token);
        }
        seterr = py::module_::import("numpy").attr("seterr");
        saved = seterr(py::arg("all") = "ignore");
        return true;
    } catch (py::error_already_set& e) {
        e.restore();
        return false;
    }
}

QuietNumpy::~QuietNumpy() {
    if (!active()) return;
    PyObject *type, *value, *traceback;
    PyErr_Fetch(&type, &value, &traceback);  // an error in flight survives the restore
    if (token) {
        PyContextVar_Reset(quiet_settings().var, token.ptr());
    } else {
        PyObject* empty = PyTuple_New(0);
        PyObject* restored = empty ? PyObject_Call(seterr.ptr(), empty, saved.ptr()) : nullptr;
        Py_XDECREF(restored);
        Py_XDECREF(empty);
    }
    PyErr_Clear();
    PyErr_Restore(type, value, traceback);
}

}  // namespace tapegrad
