// Backward pieces built from a backend's primitives (Note [Backends] in
// array_ops.hpp), written once for every backend: with Numeric they compute,
// with Recording (create_graph) they record.
//
// A backend B provides: shape, ndim, size, dtype, number; reshape, broadcast_to,
// transpose, getitem(x, index, advanced), scatter_add(shape, index, advanced,
// g), einsum(specs, out, inputs), matmul, sum(x, axis, keepdims), add, sub,
// mul, div, exp, where(condition, a, b); and values with no gradient:
// equal_mask, is_zero, within, clip_from_bound, count, inverse_permutation; and
// prod_of_others.
#pragma once

#include <pybind11/pybind11.h>

#include <string>
#include <vector>

namespace tapegrad {

namespace py = pybind11;
using Values = std::vector<py::object>;
using Needs = std::vector<bool>;  // which inputs want a gradient (not constants)

// True when axis (a tuple of axes, or None for all) contains i.
inline bool reduces(const py::object& axis, size_t i) {
    return axis.is_none() || py::bool_(axis.contains(py::int_(i)));
}

// A reduced value (or gradient) brought back to x's shape.
template <class B>
py::object unreduce(B& b, const py::object& g, const py::object& x, const py::object& axis,
                    const py::object& keepdims) {
    py::tuple shape = b.shape(x);
    py::object kept = g;
    if (!keepdims.cast<bool>()) {
        py::list kept_shape;
        for (size_t i = 0; i < py::len(shape); ++i)
            kept_shape.append(reduces(axis, i) ? py::int_(1) : py::int_(shape[i]));
        kept = b.reshape(g, py::tuple(kept_shape));
    }
    return b.broadcast_to(kept, shape);
}

// The mean over axis, keeping the reduced axes.
template <class B>
py::object mean_kept(B& b, const py::object& x, const py::object& axis) {
    return b.mul(b.sum(x, axis, py::bool_(true)), b.number(1.0 / b.count(x, axis)));
}

// The parts of g that each input of a concatenate along axis contributed.
template <class B>
Values unconcatenate(B& b, const py::object& g, const Values& x, const py::object& axis) {
    Values parts;
    py::object flat = axis.is_none() ? b.reshape(g, py::make_tuple(-1)) : g;
    const long ax = axis.is_none() ? 0 : axis.cast<long>();
    long start = 0;
    for (const py::object& v : x) {
        const long n = axis.is_none() ? static_cast<long>(b.size(v))
                                      : b.shape(v)[static_cast<size_t>(ax)].template cast<long>();
        py::list index;
        for (long i = 0; i < ax; ++i) index.append(py::slice(py::none(), py::none(), py::none()));
        index.append(py::slice(py::int_(start), py::int_(start + n), py::none()));
        py::object part = b.getitem(flat, py::tuple(index), false);
        parts.push_back(axis.is_none() ? b.reshape(part, b.shape(v)) : part);
        start += n;
    }
    return parts;
}

// Input k's gradient of einsum(specs -> out): the einsum of g with the other
// inputs onto k's distinct letters, broadcast along letters only k has, and
// placed on the diagonal for letters k repeats.
template <class B>
py::object einsum_grad(B& b, const py::tuple& specs, const py::object& out_spec, const Values& x,
                       const py::object& g, size_t k) {
    const std::string sk = specs[k].cast<std::string>();
    const std::string out = out_spec.cast<std::string>();
    std::string available = out;
    py::list grad_specs;
    Values args;
    for (size_t j = 0; j < x.size(); ++j) {
        if (j == k) continue;
        available += specs[j].cast<std::string>();
        grad_specs.append(specs[j]);
        args.push_back(x[j]);
    }
    grad_specs.append(out_spec);
    args.push_back(g);
    std::string uniq, reached;  // k's distinct letters; those the others or g carry
    for (char c : sk) {
        if (uniq.find(c) != std::string::npos) continue;
        uniq += c;
        if (available.find(c) != std::string::npos) reached += c;
    }
    py::object res = b.einsum(py::tuple(grad_specs), py::str(reached), args);
    py::tuple xshape = b.shape(x[k]);
    auto size_of = [&](char c) { return xshape[sk.find(c)]; };
    if (reached != uniq) {  // letters only k has: the gradient is constant along them
        py::list kept, full;
        for (char c : uniq) {
            kept.append(reached.find(c) != std::string::npos ? size_of(c) : py::int_(1));
            full.append(size_of(c));
        }
        res = b.broadcast_to(b.reshape(res, py::tuple(kept)), py::tuple(full));
    }
    if (uniq.size() == sk.size()) return res;
    // Letters k repeats (a diagonal): gather along the first occurrence of each
    // letter and zero where repeated positions differ.
    py::module_ np = py::module_::import("numpy");
    const size_t nd = sk.size();
    std::vector<py::object> grid;
    for (size_t p = 0; p < nd; ++p) {
        py::list shape_p;
        for (size_t q = 0; q < nd; ++q) shape_p.append(q == p ? xshape[p] : py::int_(1));
        grid.push_back(np.attr("arange")(xshape[p]).attr("reshape")(py::tuple(shape_p)));
    }
    py::list index;
    for (char c : uniq) index.append(grid[sk.find(c)]);
    py::object gathered = b.getitem(res, py::tuple(index), true);
    for (size_t p = 0; p < nd; ++p) {
        const size_t first = sk.find(sk[p]);
        if (first != p)
            gathered = b.mul(gathered, np.attr("equal")(grid[p], grid[first]).attr("astype")(b.dtype(g)));
    }
    return b.broadcast_to(gathered, xshape);
}

}  // namespace tapegrad
