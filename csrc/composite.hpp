// Backward pieces built from a backend's primitives (Note [Backends] in
// array_ops.hpp), written once for every backend: with Numeric they compute,
// with Recording (create_graph) they record.
//
// A backend B provides: shape, ndim, size, dtype, number; reshape, broadcast_to,
// transpose, getitem(x, index, advanced), scatter_add(shape, index, advanced,
// g), einsum(specs, out, inputs), convolve(a, v, mode, method), matmul,
// sum(x, axis, keepdims), add, sub, mul, div, exp, where(condition, a, b); and
// values with no gradient: equal_mask, is_zero, within, clip_from_bound, count,
// inverse_permutation; and prod_of_others.
#pragma once

#include <pybind11/pybind11.h>

#include <algorithm>
#include <iterator>
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
// inputs onto k's distinct letters. Along a letter the others do not carry at
// k's length (one only k has, or one k has at length 1 where the others
// broadcast it, or the reverse) that einsum sums or never sees it: the
// gradient is constant along it, and is broadcast back to k's length. For a
// letter k repeats (a diagonal, 'ii->i') the gradient lies on the diagonal:
// one more einsum, with a constant delta (1 where the repeated indices agree).
template <class B>
py::object einsum_grad(B& b, const py::tuple& specs, const py::object& out_spec, const Values& x,
                       const py::object& g, size_t k) {
    const std::string sk = specs[k].cast<std::string>();
    const std::string out = out_spec.cast<std::string>();
    const py::tuple xshape = b.shape(x[k]);
    long elsewhere[128];  // each letter's length outside operand k; -1: absent
    std::fill(std::begin(elsewhere), std::end(elsewhere), -1L);
    std::string used = out;
    auto note = [&](const std::string& s, const py::tuple& shape) {
        used += s;
        for (size_t p = 0; p < s.size(); ++p) {
            long& n = elsewhere[static_cast<unsigned char>(s[p]) & 127];
            n = std::max(n, shape[p].cast<long>());
        }
    };
    py::list grad_specs;
    Values args;
    for (size_t j = 0; j < x.size(); ++j) {
        if (j == k) continue;
        const std::string sj = specs[j].cast<std::string>();
        note(sj, b.shape(x[j]));
        grad_specs.append(specs[j]);
        args.push_back(x[j]);
    }
    note(out, b.shape(g));
    grad_specs.append(out_spec);
    args.push_back(g);
    used += sk;
    auto length = [&](char c) { return xshape[sk.find(c)].template cast<long>(); };
    std::string uniq, reached;  // k's distinct letters; those the others carry at k's length
    for (char c : sk) {
        if (uniq.find(c) != std::string::npos) continue;
        uniq += c;
        if (elsewhere[static_cast<unsigned char>(c) & 127] == length(c)) reached += c;
    }
    const bool identity = args.size() == 1 && out == reached;  // g already is the answer
    py::object res = identity ? g : b.einsum(py::tuple(grad_specs), py::str(reached), args);
    if (reached != uniq) {
        py::list kept, full;
        for (char c : uniq) {
            kept.append(reached.find(c) != std::string::npos ? length(c) : 1L);
            full.append(length(c));
        }
        res = b.broadcast_to(b.reshape(res, py::tuple(kept)), py::tuple(full));
    }
    if (uniq.size() == sk.size()) return res;
    // The diagonal: k's spec with each repetition of a letter renamed to a
    // fresh letter, and a delta joining the renamed axes to the letter's.
    py::module_ np = py::module_::import("numpy");
    auto fresh = [&]() {
        for (char c : std::string("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"))
            if (used.find(c) == std::string::npos) return used += c, c;
        PyErr_SetString(PyExc_ValueError, "einsum: no letters left to differentiate a diagonal");
        throw py::error_already_set();
    };
    std::string target = sk;
    py::list diag_specs;
    diag_specs.append(py::str(uniq));
    Values diag_args{res};
    for (char c : uniq) {
        std::string axes(1, c);
        for (size_t p = sk.find(c) + 1; p < sk.size(); ++p)
            if (sk[p] == c) axes += target[p] = fresh();
        if (axes.size() == 1) continue;
        const long n = length(c);
        py::tuple shape(axes.size()), index(axes.size());
        py::object range = np.attr("arange")(n);
        for (size_t a = 0; a < axes.size(); ++a) shape[a] = py::int_(n), index[a] = range;
        py::object delta = np.attr("zeros")(shape, py::arg("dtype") = b.dtype(res));
        delta[index] = 1.0;
        diag_specs.append(py::str(axes));
        diag_args.push_back(delta);
    }
    return b.einsum(py::tuple(diag_specs), py::str(target), diag_args);
}

}  // namespace tapegrad
