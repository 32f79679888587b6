// Note [Recording]
// create_graph=True runs the op tables' backward formulas on Tensors, so that
// the backward's own operations are recorded and the gradients it returns can
// be differentiated again, to any order. Nothing is written twice:
//   - TapeValue is the element type for the elementwise table (ops.hpp): its
//     arithmetic and math functions call the ops the operators call;
//   - Recording is the backend for the array-op table (array_ops.hpp).
// Both also take constants (numbers and arrays with no history) and keep them
// plain, so the part of a gradient that depends on nothing recorded records
// nothing. Comparisons give a Mask, a value that is never differentiated (the
// derivative of a comparison is zero almost everywhere), as in PyTorch.
// Errors are thrown as py::error_already_set.
#pragma once

#include <pybind11/pybind11.h>

#include <utility>

#include "array_apply.hpp"
#include "array_ops.hpp"
#include "numeric.hpp"
#include "replay.hpp"
#include "tensor.hpp"

namespace tapegrad {

namespace py = pybind11;

inline py::object checked(PyObject* o) {
    if (!o) throw py::error_already_set();
    return py::reinterpret_steal<py::object>(o);
}

// A Tensor's value (a float or an ndarray); anything else as it is.
inline py::object value_of(const py::object& x) {
    if (is_tensor(x.ptr())) return checked(value_object(reinterpret_cast<TensorObject*>(x.ptr())));
    return x;
}

// A value a formula decides something by (a mask, a branch, a constant built
// from it), not only its layout: while compile traces (Note [Compiled
// tapes]) such a read would be a constant of the trace, so it raises
// TraceError, naming `what`. Comparisons are guards instead (compare below).
inline py::object deciding_value(const py::object& x, const char* what) {
    if (is_tensor(x.ptr()) && !allowed_while_tracing(what)) throw py::error_already_set();
    return value_of(x);
}

// While compile traces, a mask a formula computes from values (a == b, x >= lo)
// is recorded as a guard on the comparison that decides it (Note [Compiled
// tapes]); the mask itself is computed as always.
inline void guard_mask(const py::object& a, const py::object& b, int op) {
    if (Tape::tracing_count && (is_tensor(a.ptr()) || is_tensor(b.ptr()))) checked(compare_values(a.ptr(), b.ptr(), op));
}

// ---- TapeValue: the element type for the elementwise table ----

struct TapeValue {
    py::object v;  // a Tensor, a float or an ndarray; None for a value the formula must not read
    TapeValue() : v(py::none()) {}
    TapeValue(double c) : v(py::float_(c)) {}  // NOLINT: T(0) in the formulas
    explicit TapeValue(py::object o) : v(std::move(o)) {}
};

struct Mask {
    py::object v;  // a bool or a boolean ndarray
};

inline TapeValue op2(uint8_t code, const TapeValue& a, const TapeValue& b) {
    py::object r = checked(apply_op(code, a.v.ptr(), b.v.ptr()));
    if (r.ptr() == Py_NotImplemented) {
        PyErr_Format(PyExc_TypeError, "create_graph: %s cannot take %.100s and %.100s", op_name(code),
                     Py_TYPE(a.v.ptr())->tp_name, Py_TYPE(b.v.ptr())->tp_name);
        throw py::error_already_set();
    }
    return TapeValue(std::move(r));
}
inline TapeValue op1(uint8_t code, const TapeValue& a) { return TapeValue(checked(apply_op(code, a.v.ptr(), nullptr))); }

inline TapeValue operator+(const TapeValue& a, const TapeValue& b) { return op2(OP_ADD, a, b); }
inline TapeValue operator-(const TapeValue& a, const TapeValue& b) { return op2(OP_SUB, a, b); }
inline TapeValue operator*(const TapeValue& a, const TapeValue& b) { return op2(OP_MUL, a, b); }
inline TapeValue operator/(const TapeValue& a, const TapeValue& b) { return op2(OP_DIV, a, b); }
inline TapeValue operator-(const TapeValue& a) { return op1(OP_NEG, a); }
inline TapeValue pow(const TapeValue& a, const TapeValue& b) { return op2(OP_POW, a, b); }
inline TapeValue power(const TapeValue& a, const TapeValue& b) { return pow(a, b); }  // recorded as pow, its own derivative
inline TapeValue log(const TapeValue& a) { return op1(OP_LOG, a); }
inline TapeValue exp(const TapeValue& a) { return op1(OP_EXP, a); }
inline TapeValue sin(const TapeValue& a) { return op1(OP_SIN, a); }
inline TapeValue cos(const TapeValue& a) { return op1(OP_COS, a); }
inline TapeValue sqrt(const TapeValue& a) { return op1(OP_SQRT, a); }
inline TapeValue sinh(const TapeValue& a) { return op1(OP_SINH, a); }
inline TapeValue cosh(const TapeValue& a) { return op1(OP_COSH, a); }
inline TapeValue log1p(const TapeValue& a) { return op1(OP_LOG1P, a); }
inline TapeValue exp2(const TapeValue& a) { return op1(OP_EXP2, a); }
inline TapeValue digamma(const TapeValue& a) { return op1(OP_DIGAMMA, a); }
inline TapeValue gamma(const TapeValue& a) { return op1(OP_GAMMA, a); }
inline TapeValue i0(const TapeValue& a) { return op1(OP_I0, a); }
inline TapeValue i1(const TapeValue& a) { return op1(OP_I1, a); }
// polygamma(n, x), n a constant: the array op, which records its own derivative.
inline TapeValue polygamma(int n, const TapeValue& a) {
    return TapeValue(checked(apply_array_op(OP_POLYGAMMA, py::make_tuple(a.v).ptr(), py::make_tuple(n).ptr())));
}

// A function of the value alone, as a constant: numpy's `name` on it. For
// the piecewise-constant functions, whose derivative is zero almost everywhere.
inline TapeValue constant_of(const char* name, const TapeValue& a) {
    return TapeValue(py::module_::import("numpy").attr(name)(deciding_value(a.v, "a create_graph backward through floor or trunc")));
}
inline TapeValue floor(const TapeValue& a) { return constant_of("floor", a); }
inline TapeValue trunc(const TapeValue& a) { return constant_of("trunc", a); }

// On the values; recorded as a guard while compile traces, so that a replay
// whose mask would differ traces again (Note [Compiled tapes]).
inline Mask compare(const TapeValue& a, const TapeValue& b, int how) {
    return Mask{checked(compare_values(a.v.ptr(), b.v.ptr(), how))};
}
inline Mask operator>(const TapeValue& a, const TapeValue& b) { return compare(a, b, Py_GT); }
inline Mask operator<(const TapeValue& a, const TapeValue& b) { return compare(a, b, Py_LT); }
inline Mask operator>=(const TapeValue& a, const TapeValue& b) { return compare(a, b, Py_GE); }
inline Mask operator<=(const TapeValue& a, const TapeValue& b) { return compare(a, b, Py_LE); }
inline Mask operator==(const TapeValue& a, const TapeValue& b) { return compare(a, b, Py_EQ); }
inline Mask operator!=(const TapeValue& a, const TapeValue& b) { return compare(a, b, Py_NE); }
inline Mask operator&&(const Mask& a, const Mask& b) {
    return Mask{py::module_::import("numpy").attr("logical_and")(a.v, b.v)};
}
inline Mask operator||(const Mask& a, const Mask& b) {
    return Mask{py::module_::import("numpy").attr("logical_or")(a.v, b.v)};
}

// The sign as a constant: its derivative is zero (almost everywhere). While
// compile traces, a > 0 and a < 0 are guards: they decide the sign.
inline TapeValue sign_of(const TapeValue& a) {
    if (Tape::tracing_count && is_tensor(a.v.ptr())) {
        const py::float_ zero(0.0);
        checked(compare_values(a.v.ptr(), zero.ptr(), Py_GT));
        checked(compare_values(a.v.ptr(), zero.ptr(), Py_LT));
    }
    return TapeValue(py::module_::import("numpy").attr("sign")(value_of(a.v)));
}

inline TapeValue select(const Mask& c, const TapeValue& x, const TapeValue& y) {
    if (!PyArray_Check(c.v.ptr())) return py::bool_(c.v) ? x : y;  // a bool or numpy bool
    if (!is_tensor(x.v.ptr()) && !is_tensor(y.v.ptr()))
        return TapeValue(py::module_::import("numpy").attr("where")(c.v, x.v, y.v));
    return TapeValue(checked(apply_array_op(OP_WHERE, py::make_tuple(x.v, y.v).ptr(),
                                      py::make_tuple(c.v).ptr())));
}

// ---- Recording: the backend for the array-op table ----

class Recording {
public:
    static Recording& get() {
        static Recording* instance = new Recording();  // lives as long as the process
        return *instance;
    }

    // Values, computed on the inputs' values: never differentiated.
    py::tuple shape(const py::object& x) { return np().shape(value_of(x)); }
    size_t ndim(const py::object& x) { return py::len(shape(x)); }
    size_t size(const py::object& x) { return np().size(value_of(x)); }
    py::object dtype(const py::object& x) { return np().dtype(value_of(x)); }
    py::object number(double v) { return py::float_(v); }
    double count(const py::object& x, const py::object& axis) { return np().count(value_of(x), axis); }
    py::object inverse_permutation(const py::object& axes) { return np().inverse_permutation(axes); }
    py::object equal_mask(const py::object& a, const py::object& b) {
        guard_mask(a, b, Py_EQ);
        return np().equal_mask(value_of(a), value_of(b));
    }
    py::object is_zero(const py::object& x) {
        guard_mask(x, py::float_(0.0), Py_EQ);
        return np().is_zero(value_of(x));
    }
    py::object within(const py::object& x, const py::object& lo, const py::object& hi) {
        if (!lo.is_none()) guard_mask(x, lo, Py_GE);
        if (!hi.is_none()) guard_mask(x, hi, Py_LE);
        return np().within(value_of(x), value_of(lo), value_of(hi));
    }
    py::object clip_from_bound(const py::object& x, const py::object& lo, const py::object& hi,
                               bool upper) {
        const py::object& bound = upper ? hi : lo;
        const py::object& other = upper ? lo : hi;
        guard_mask(x, bound, upper ? Py_GT : Py_LT);
        if (!other.is_none()) guard_mask(bound, other, Py_LT);
        return np().clip_from_bound(value_of(x), value_of(lo), value_of(hi), upper);
    }

    // Recorded: each is an op of the tables.
    py::object add(const py::object& a, const py::object& b) { return (TapeValue(a) + TapeValue(b)).v; }
    py::object sub(const py::object& a, const py::object& b) { return (TapeValue(a) - TapeValue(b)).v; }
    py::object mul(const py::object& a, const py::object& b) { return (TapeValue(a) * TapeValue(b)).v; }
    py::object div(const py::object& a, const py::object& b) { return (TapeValue(a) / TapeValue(b)).v; }
    py::object exp(const py::object& a) { return tapegrad::exp(TapeValue(a)).v; }
    py::object sign(const py::object& x) { return sign_of(TapeValue(x)).v; }  // a constant
    py::object polygamma(const py::object& x, int n) { return op(OP_POLYGAMMA, {x}, py::make_tuple(n)); }
    py::object ive(const py::object& v, const py::object& z) { return op(OP_IVE, {z}, py::make_tuple(v)); }

    py::object sum(const py::object& x, const py::object& axis, const py::object& keepdims) {
        return op(OP_SUM, {x}, py::make_tuple(axes(x, axis), keepdims));
    }
    py::object prod(const py::object& x, const py::object& axis, const py::object& keepdims) {
        return op(OP_PROD, {x}, py::make_tuple(axes(x, axis), keepdims));
    }
    py::object reshape(const py::object& x, const py::object& shape) {
        return op(OP_RESHAPE, {x}, py::make_tuple(py::tuple(shape)));
    }
    py::object broadcast_to(const py::object& x, const py::object& shape) {
        return op(OP_BROADCAST_TO, {x}, py::make_tuple(py::tuple(shape)));
    }
    py::object transpose(const py::object& x, const py::object& perm) {
        return op(OP_TRANSPOSE, {x}, py::make_tuple(py::tuple(perm)));
    }
    py::object expand_dims(const py::object& x, size_t axis) {
        py::list s(shape(x));
        s.insert(axis, py::int_(1));
        return reshape(x, s);
    }
    py::object squeeze_axis(const py::object& x, size_t axis) {
        py::list s(shape(x));
        s.attr("pop")(axis);
        return reshape(x, s);
    }
    py::object swap_last(const py::object& x) {
        const size_t n = ndim(x);
        py::list perm;
        for (size_t i = 0; i < n; ++i) perm.append(i + 2 < n ? i : (i == n - 1 ? n - 2 : n - 1));
        return transpose(x, perm);
    }
    py::object astype(const py::object& x, const py::object& dtype) {
        return op(OP_ASTYPE, {x}, py::make_tuple(dtype));
    }
    py::object getitem(const py::object& x, const py::object& index, bool advanced) {
        return op(OP_GETITEM, {x}, py::make_tuple(index, advanced));
    }
    py::object scatter_add(const py::object& shape, const py::object& index, bool advanced,
                           const py::object& g) {
        return op(OP_SCATTER_ADD, {g}, py::make_tuple(py::tuple(shape), index, advanced));
    }
    py::object einsum(const py::tuple& specs, const py::object& out, const Values& x) {
        return op(OP_EINSUM, x, py::make_tuple(specs, out));
    }
    py::object matmul(const py::object& a, const py::object& b) {
        return op(OP_MATMUL, {a, b}, py::tuple());
    }
    py::object convolve(const py::object& a, const py::object& v, const py::object& mode,
                        const py::object& method) {
        return op(OP_CONVOLVE, {a, v}, py::make_tuple(mode, method));
    }
    py::object where(const py::object& c, const py::object& a, const py::object& b) {
        return select(Mask{c}, TapeValue(a), TapeValue(b)).v;
    }

    py::object concatenate(const Values& x, const py::object& axis) {
        return op(OP_CONCATENATE, x, py::make_tuple(axis));
    }
    py::object neg(const py::object& x) { return (-TapeValue(x)).v; }

    // Linear algebra (csrc/linalg.hpp): each recorded as its op.
    py::object inv(const py::object& x) { return op(OP_INV, {x}, py::tuple()); }
    py::object inverse(const py::object& x) { return inv(x); }
    py::object solve(const py::object& a, const py::object& b) { return op(OP_SOLVE, {a, b}, py::tuple()); }
    py::object det(const py::object& x) { return op(OP_DET, {x}, py::tuple()); }
    py::object solve_triangular(const py::object& a, const py::object& b, bool trans, bool lower, bool unit) {
        return op(OP_SOLVE_TRIANGULAR, {a, b}, py::make_tuple(trans, lower, unit));
    }
    py::object svd_packed(const py::object& x, bool full) { return op(OP_SVD, {x}, py::make_tuple(full)); }
    py::object expm(const py::object& x) { return op(OP_EXPM, {x}, py::tuple()); }
    py::object sylvester(const py::object& a, const py::object& b, const py::object& q) {
        return op(OP_SOLVE_SYLVESTER, {a, b, q}, py::tuple());
    }
    // Values the linear-algebra formulas branch on or build constants from.
    py::object value(const py::object& x) { return deciding_value(x, "a create_graph backward that reads values"); }
    bool any_zero(const py::object& x) { return np().any_zero(value(x)); }
    // A determinant's second derivative through A^-1 loses the digits A^-1
    // does: near a singular matrix det's backward takes the SVD formula.
    bool nearly_singular(const py::object& a, const py::object& det) {
        return np().nearly_singular(value(a), value(det), 1e-8);
    }
    bool any_infinite(const py::object& x) { return np().any_infinite(value(x)); }
    // Whether x is a constant zero: a Tensor may be zero now and still carry a
    // dependence that a higher derivative needs, so it never is.
    bool all_zero(const py::object& x) { return !is_tensor(x.ptr()) && np().all_zero(x); }
    double max_abs(const py::object& x) { return np().max_abs(value(x)); }
    py::object zero_mask(const py::object& x) { return np().zero_mask(value(x)); }
    bool couples(const py::object& gaps, const py::object& x) { return np().couples(value(gaps), value(x)); }
    bool reaches_zero(const py::object& s, const py::object& g, bool columns) {
        return np().reaches_zero(value(s), value(g), columns);
    }
    py::object eye(long n, const py::object& dtype) { return np().eye(n, dtype); }
    py::object zeros(const py::object& shape, const py::object& dtype) { return np().zeros(shape, dtype); }
    py::object tri_mask(long n, bool lower, long k, const py::object& dtype) {
        return np().tri_mask(n, lower, k, dtype);
    }

    py::object cumsum(const py::object& x, const py::object& axis, bool reverse) {
        return op(OP_CUMSUM, {x}, py::make_tuple(axis, reverse));
    }
    py::object cumprod(const py::object& x, const py::object& axis) {
        return op(OP_CUMPROD, {x}, py::make_tuple(axis));
    }
    // cumprod's gradient (scan_ops.hpp). Numeric runs a recurrence, which is
    // not an op; here row k of an n*n square is the line with a 1 in place
    // of x_k, whose cumulative product at i >= k is prod_{j <= i, j != k} x_j:
    // n*n values for a line of n, as prod_of_others below, and as exact at zeros.
    py::object cumprod_grad(const py::object& x, const py::object& g, const py::object& axis) {
        const size_t nd = ndim(x), ax = axis.cast<size_t>();
        const size_t n = shape(x)[ax].cast<size_t>();
        py::list order;  // axis moved last
        for (size_t i = 0; i < nd; ++i)
            if (i != ax) order.append(i);
        order.append(ax);
        py::object moved = transpose(x, order), gm = transpose(broadcast_to(g, shape(x)), order);
        py::list row_shape(shape(moved)), square_shape, g_shape(shape(moved));
        row_shape.insert(nd - 1, py::int_(1));
        for (py::handle k : row_shape) square_shape.append(k);
        square_shape[nd - 1] = py::int_(n);
        g_shape.insert(nd - 1, py::int_(1));
        py::module_ numpy = py::module_::import("numpy");
        py::object eye = numpy.attr("eye")(n, "dtype"_a = "bool");
        py::object lines = where(eye, number(1.0), broadcast_to(reshape(moved, row_shape), square_shape));
        py::object terms = mul(cumprod(lines, py::int_(nd)), reshape(gm, g_shape));
        py::object upper = numpy.attr("triu")(numpy.attr("ones")(py::make_tuple(n, n), "dtype"_a = "bool"));
        py::object grad = sum(where(upper, terms, number(0.0)), py::make_tuple(nd), py::bool_(false));
        return transpose(grad, inverse_permutation(py::tuple(order)));
    }

    // For each element, the product of the others in its reduction. Numeric
    // uses cumulative products, which are not an op; here each element's
    // product is taken over a copy of its reduction with a 1 in its place:
    // n*n values for a reduction of n, fine for the sizes one takes
    // higher derivatives of a product over.
    py::object prod_of_others(const py::object& x, const py::object& axis) {
        const size_t nd = ndim(x);
        py::tuple xshape = shape(x);
        py::list order, kept_shape;
        size_t n = 1;
        for (size_t i = 0; i < nd; ++i)
            if (!reduces(axis, i)) {
                order.append(i);
                kept_shape.append(xshape[i]);
            }
        for (size_t i = 0; i < nd; ++i)
            if (reduces(axis, i)) {
                order.append(i);
                n *= xshape[i].cast<size_t>();
            }
        py::object moved = transpose(x, order);
        py::list row_shape, square_shape;  // new lists: copying a py::list would alias it
        for (py::handle k : kept_shape) row_shape.append(k), square_shape.append(k);
        row_shape.append(1), row_shape.append(n);
        square_shape.append(n), square_shape.append(n);
        py::object square = broadcast_to(reshape(moved, row_shape), square_shape);
        py::object eye = py::module_::import("numpy").attr("eye")(n, "dtype"_a = "bool");
        py::object others = prod(where(eye, number(1.0), square), py::make_tuple(py::len(kept_shape) + 1),
                                 py::bool_(false));
        return transpose(reshape(others, shape(moved)), inverse_permutation(py::tuple(order)));
    }

private:
    static Numeric& np() { return Numeric::get(); }

    // An array op on these inputs: recorded when one of them requires grad.
    static py::object op(uint8_t code, const Values& inputs, const py::tuple& params) {
        py::tuple in(inputs.size());
        for (size_t k = 0; k < inputs.size(); ++k) in[k] = inputs[k];
        return checked(apply_array_op(code, in.ptr(), params.ptr()));
    }

    // Reduction axes as the table's ops take them: a tuple of non-negative ints, or None.
    py::object axes(const py::object& x, const py::object& axis) {
        if (axis.is_none() || py::isinstance<py::tuple>(axis)) return axis;
        const long nd = static_cast<long>(ndim(x));
        const long a = axis.cast<long>();
        return py::make_tuple(a < 0 ? a + nd : a);
    }
};

}  // namespace tapegrad
