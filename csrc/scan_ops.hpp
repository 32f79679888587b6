// Scans: cumulative sums and products along one axis, array ops of their own
// (array_ops.hpp, Note [Backends]): as compositions of other ops they would
// cost n*n work. The Python wrapper flattens for axis=None, so the ops take
// one non-negative axis.
#pragma once

#include <pybind11/pybind11.h>

#include "composite.hpp"

namespace tapegrad {

// The backward of a cumulative sum is the cumulative sum taken from the other
// end, so one op with a direction serves both, and create_graph records it.
struct CumSum {
    static constexpr const char* name = "cumsum";  // params: (axis, reverse)
    static constexpr const char* numpy = "numpy.cumsum";
    static constexpr const char* method = "cumsum";
    static constexpr const char* doc = "Cumulative sum along axis (of the flattened values when axis is None).";
    static constexpr int arity = 1;
    static constexpr bool linear = true;  // Note [Tangent rules] in array_ops.hpp
    template <class B> static py::object forward(B& b, const Values& x, const py::tuple& p) {
        return b.cumsum(x[0], p[0], p[1].cast<bool>());
    }
    template <class B>
    static void backward(B& b, const Values&, const py::object&, const py::object& g,
                         const py::tuple& p, const Needs&, Values& gx) {
        gx[0] = b.cumsum(g, p[0], !p[1].cast<bool>());
    }
};

// Element k of the gradient is sum_{i >= k} g_i * prod_{j <= i, j != k} x_j,
// computed without dividing by x_k, so it is exact where elements are zero,
// however many (PyTorch's formula divides except at the first zero).
struct CumProd {
    static constexpr const char* name = "cumprod";  // params: (axis,)
    static constexpr const char* numpy = "numpy.cumprod";
    static constexpr const char* method = "cumprod";
    static constexpr const char* doc = "Cumulative product along axis; its gradient is exact where elements are zero.";
    static constexpr int arity = 1;
    template <class B> static py::object forward(B& b, const Values& x, const py::tuple& p) {
        return b.cumprod(x[0], p[0]);
    }
    template <class B>
    static void backward(B& b, const Values& x, const py::object&, const py::object& g,
                         const py::tuple& p, const Needs&, Values& gx) {
        gx[0] = b.cumprod_grad(x[0], g, p[0]);
    }
};

#define TAPEGRAD_SCAN_OPS(X) X(CUMSUM, CumSum) X(CUMPROD, CumProd)

}  // namespace tapegrad
