// numpy's floating-point error state while a sweep runs.
#pragma once

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <pybind11/pybind11.h>

namespace tapegrad {

namespace py = pybind11;

// Note [Quiet numpy]
// NaN and inf propagate through a backward as values (0 * inf is NaN, as in
// PyTorch); numpy's floating-point warnings are silenced while a sweep runs
// array formulas, set once per sweep and restored after. numpy 2 keeps its
// error settings in a context variable, set here directly (two C calls);
// with an older numpy, np.seterr is called instead.
class QuietNumpy {
public:
    QuietNumpy() = default;
    QuietNumpy(const QuietNumpy&) = delete;
    QuietNumpy& operator=(const QuietNumpy&) = delete;
    bool active() const { return token || saved; }
    bool start();
    ~QuietNumpy();

private:
    py::object token;   // from PyContextVar_Set, for the reset
    py::object seterr;  // the fallback: np.seterr,
    py::object saved;   // and the previous settings, a dict
};

}  // namespace tapegrad
