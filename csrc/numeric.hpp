// Numeric: the backend that computes array-op forwards and backwards with
// numpy (Note [Backends] in array_ops.hpp). numpy's functions are looked up
// once; every method returns a new value and leaves its arguments alone.
#pragma once

#include <pybind11/pybind11.h>

#include <algorithm>
#include <string>
#include <vector>

#include "array_ops.hpp"
#include "arrays.hpp"
#include "contract.hpp"
#include "pool.hpp"
#include "special.hpp"

namespace tapegrad {

namespace py = pybind11;
using namespace pybind11::literals;

class Numeric {
public:
    static Numeric& get() {
        static Numeric* instance = new Numeric();  // lives as long as the process
        return *instance;
    }

    // ---- reductions ----
    // ufunc.reduce(array, axis, dtype, out, keepdims), positionally: no kwargs dict.
    py::object sum(const py::object& x, const py::object& axis, const py::object& keepdims) {
        return f_sum(x, axis, py::none(), py::none(), keepdims);
    }
    py::object max(const py::object& x, const py::object& axis, const py::object& keepdims) {
        return f_max(x, axis, py::none(), py::none(), keepdims);
    }
    py::object min(const py::object& x, const py::object& axis, const py::object& keepdims) {
        return f_min(x, axis, py::none(), py::none(), keepdims);
    }
    py::object prod(const py::object& x, const py::object& axis, const py::object& keepdims) {
        return f_prod(x, axis, py::none(), py::none(), keepdims);
    }
    py::object var(const py::object& x, const py::object& axis, const py::object& keepdims,
                   const py::object& ddof) {
        return f_var(x, "axis"_a = axis, "keepdims"_a = keepdims, "ddof"_a = ddof);
    }
    py::object std(const py::object& x, const py::object& axis, const py::object& keepdims,
                   const py::object& ddof) {
        return f_std(x, "axis"_a = axis, "keepdims"_a = keepdims, "ddof"_a = ddof);
    }
    // Number of elements a reduction over `axis` combines.
    double count(const py::object& x, const py::object& axis) {
        py::tuple shape = this->shape(x);
        if (axis.is_none()) return static_cast<double>(py::len(shape) ? size(x) : 1);
        double n = 1;
        for (py::handle a : axis) n *= shape[a.cast<size_t>()].cast<double>();
        return n;
    }
    py::object logsumexp(const py::object& x, const py::object& axis, const py::object& keepdims) {
        if (is_last_axis(x, axis)) {
            if (PyObject* fast = softmax_last_axis(x.ptr(), true)) {
                py::object out = py::reinterpret_steal<py::object>(fast);
                return keepdims.cast<bool>() ? out : f_squeeze(out, "axis"_a = axis);
            }
            if (PyErr_Occurred()) throw py::error_already_set();
        }
        py::object m = max(x, axis, py::bool_(true));
        m = f_where(f_isfinite(m), m, 0.0);
        py::object s = f_log(sum(f_exp(sub(x, m)), axis, py::bool_(true)));
        py::object out = add(s, m);
        if (keepdims.cast<bool>()) return out;
        return axis.is_none() ? f_reshape(out, py::tuple()) : f_squeeze(out, "axis"_a = axis);
    }
    py::object softmax(const py::object& x, const py::object& axis) {
        if (is_last_axis(x, axis)) {
            if (PyObject* fast = softmax_last_axis(x.ptr(), false))
                return py::reinterpret_steal<py::object>(fast);
            if (PyErr_Occurred()) throw py::error_already_set();
        }
        py::object e = f_exp(sub(x, max(x, axis, py::bool_(true))));
        return div(e, sum(e, axis, py::bool_(true)));
    }
    // For each element, the product of the others in its reduction, by
    // exclusive cumulative products from both ends (no division, exact at 0).
    py::object prod_of_others(const py::object& x, const py::object& axis) {
        const size_t nd = py::len(shape(x));
        py::list reduced, kept;
        for (size_t i = 0; i < nd; ++i) {
            (reduces(axis, i) ? reduced : kept).append(py::int_(i));
        }
        py::list order;  // a new list: `= kept` would alias it (pybind11 objects are references)
        for (py::handle k : kept) order.append(k);
        for (py::handle r : reduced) order.append(r);
        py::object moved = f_transpose(x, py::tuple(order));
        py::tuple moved_shape = shape(moved);
        py::list flat_shape;
        for (size_t i = 0; i < py::len(kept); ++i) flat_shape.append(moved_shape[i]);
        flat_shape.append(py::int_(-1));
        py::object flat = f_reshape(moved, py::tuple(flat_shape));
        py::object none = py::none();
        py::object ones = f_ones_like(getitem(flat, last_axis(py::int_(0), py::int_(1))));
        py::object head = getitem(flat, last_axis(none, py::int_(-1)));
        py::object left = f_cumprod(f_concatenate(py::make_tuple(ones, head), "axis"_a = -1),
                                    "axis"_a = -1);
        py::object reversed = getitem(flat, last_axis(none, none, py::int_(-1)));
        py::object rhead = getitem(reversed, last_axis(none, py::int_(-1)));
        py::object right = f_cumprod(f_concatenate(py::make_tuple(ones, rhead), "axis"_a = -1),
                                     "axis"_a = -1);
        right = getitem(right, last_axis(none, none, py::int_(-1)));
        py::object others = f_reshape(mul(left, right), moved_shape);
        return f_transpose(others, inverse_permutation(py::tuple(order)));
    }

    // ---- scans (scan_ops.hpp): along one non-negative axis ----
    // numpy's add.accumulate walks a row at a time with a stride, which misses
    // the cache along a last axis: one pass over C-contiguous memory instead,
    // the same sums in the same order, so the values are numpy's to the bit.
    py::object cumsum(const py::object& x, const py::object& axis, bool reverse) {
        if (PyObject* fast = scan(x, axis.cast<int>(), reverse, false)) return steal(fast);
        if (!reverse) return f_add_accumulate(x, axis);
        py::tuple flip = flip_index(axis);
        return getitem(f_add_accumulate(getitem(x, flip), axis), flip);
    }
    py::object cumprod(const py::object& x, const py::object& axis) {
        if (PyObject* fast = scan(x, axis.cast<int>(), false, true)) return steal(fast);
        return f_multiply_accumulate(x, axis);
    }
    // Along each line, gx_k = E_k * R_k, where E_k = x_0 ... x_{k-1} and
    // R_k = g_k + x_{k+1} R_{k+1}: one pass from each end, no division.
    py::object cumprod_grad(const py::object& x, const py::object& g, const py::object& axis) {
        const bool single = PyArray_Check(x.ptr()) && PyArray_Check(g.ptr()) &&
                            PyArray_TYPE(reinterpret_cast<PyArrayObject*>(x.ptr())) == NPY_FLOAT32 &&
                            PyArray_TYPE(reinterpret_cast<PyArrayObject*>(g.ptr())) == NPY_FLOAT32;
        const int type = single ? NPY_FLOAT32 : NPY_FLOAT64;
        py::object xs = steal(check(PyArray_FROM_OTF(x.ptr(), type, NPY_ARRAY_IN_ARRAY)));
        py::object gfull = shape(g).equal(shape(xs)) ? g : broadcast_to(g, shape(xs));
        py::object gs = steal(check(PyArray_FROM_OTF(gfull.ptr(), type, NPY_ARRAY_IN_ARRAY)));
        auto* xa = reinterpret_cast<PyArrayObject*>(xs.ptr());
        const int nd = PyArray_NDIM(xa), ax = axis.cast<int>();
        py::object out = steal(check(PyArray_SimpleNew(nd, PyArray_DIMS(xa), type)));
        npy_intp outer = 1, inner = 1;
        for (int i = 0; i < ax; ++i) outer *= PyArray_DIM(xa, i);
        for (int i = ax + 1; i < nd; ++i) inner *= PyArray_DIM(xa, i);
        const npy_intp n = PyArray_DIM(xa, ax);
        void* xd = PyArray_DATA(xa);
        void* gd = PyArray_DATA(reinterpret_cast<PyArrayObject*>(gs.ptr()));
        void* od = PyArray_DATA(reinterpret_cast<PyArrayObject*>(out.ptr()));
        if (type == NPY_FLOAT32) {
            cumprod_grad_lines(static_cast<const float*>(xd), static_cast<const float*>(gd),
                               static_cast<float*>(od), outer, n, inner);
        } else {
            cumprod_grad_lines(static_cast<const double*>(xd), static_cast<const double*>(gd),
                               static_cast<double*>(od), outer, n, inner);
        }
        return out;
    }

    // ---- elementwise helpers (used inside backward formulas) ----
    py::object add(const py::object& a, const py::object& b) { return f_add(a, b); }
    py::object sub(const py::object& a, const py::object& b) { return f_subtract(a, b); }
    py::object mul(const py::object& a, const py::object& b) { return f_multiply(a, b); }
    py::object div(const py::object& a, const py::object& b) { return f_divide(a, b); }
    py::object exp(const py::object& a) { return f_exp(a); }
    py::object number(double v) { return py::float_(v); }
    // 1.0 where a == b, else 0.0, in a's dtype.
    py::object equal_mask(const py::object& a, const py::object& b) {
        return f_equal(a, b).attr("astype")(f_result_type(a));
    }
    py::object where(const py::object& c, const py::object& a, const py::object& b) {
        return f_where(c, a, b);
    }
    // Where x is 0 (a boolean array, or a numpy bool for a 0-d x).
    py::object is_zero(const py::object& x) { return f_equal(x, 0.0); }
    py::object clip(const py::object& x, const py::object& lo, const py::object& hi) {
        return f_clip(x, lo, hi);
    }
    py::object within(const py::object& x, const py::object& lo, const py::object& hi) {
        py::object inside = f_ones_like(x, "dtype"_a = "bool");
        if (!lo.is_none()) inside = f_logical_and(inside, f_greater_equal(x, lo));
        if (!hi.is_none()) inside = f_logical_and(inside, f_less_equal(x, hi));
        return inside;
    }

    // Where clip(x, lo, hi) takes its value from a bound, with PyTorch's ties
    // (Clip::backward): lo's where x < lo and lo < hi, hi's where x > hi or
    // hi < lo. The other bound may be None.
    py::object clip_from_bound(const py::object& x, const py::object& lo, const py::object& hi,
                               bool upper) {
        if (!upper) {
            py::object from = f_less(x, lo);
            return hi.is_none() ? from : f_logical_and(from, f_less(lo, hi));
        }
        py::object from = f_greater(x, hi);
        return lo.is_none() ? from : f_logical_or(from, f_less(hi, lo));
    }

    // ---- special functions ----
    // Beyond it n! overflows (the values are infinite), and the backward's n + 1 stays an int.
    static constexpr int MAX_POLYGAMMA_ORDER = 1 << 20;
    // polygamma(n, x) elementwise (special.hpp), in x's float dtype.
    py::object polygamma(const py::object& x, int n) {
        if (n < 0 || n > MAX_POLYGAMMA_ORDER) {
            PyErr_Format(PyExc_ValueError, "polygamma: the order n must be an integer from 0 to %d, got %d",
                         MAX_POLYGAMMA_ORDER, n);
            throw py::error_already_set();
        }
        if (!PyArray_Check(x.ptr())) return py::float_(special::polygamma(n, x.cast<double>()));
        auto* a = reinterpret_cast<PyArrayObject*>(x.ptr());
        const bool is32 = PyArray_TYPE(a) == NPY_FLOAT32;
        py::object in = py::reinterpret_steal<py::object>(
            check(PyArray_FROM_OTF(x.ptr(), is32 ? NPY_FLOAT32 : NPY_FLOAT64, NPY_ARRAY_CARRAY_RO | NPY_ARRAY_FORCECAST)));
        auto* c = reinterpret_cast<PyArrayObject*>(in.ptr());
        py::object out = py::reinterpret_steal<py::object>(
            check(PyArray_Empty(PyArray_NDIM(c), PyArray_DIMS(c), PyArray_DescrFromType(PyArray_TYPE(c)), 0)));
        const npy_intp size = PyArray_SIZE(c);
        void* dst = PyArray_DATA(reinterpret_cast<PyArrayObject*>(out.ptr()));
        if (is32) {
            const float* src = static_cast<const float*>(PyArray_DATA(c));
            for (npy_intp i = 0; i < size; ++i)
                static_cast<float*>(dst)[i] = static_cast<float>(special::polygamma(n, src[i]));
        } else {
            const double* src = static_cast<const double*>(PyArray_DATA(c));
            for (npy_intp i = 0; i < size; ++i) static_cast<double*>(dst)[i] = special::polygamma(n, src[i]);
        }
        return out;
    }
    // scipy.special.ive(v, z), in z's float dtype (scipy is imported here, at first use).
    py::object ive(const py::object& v, const py::object& z) {
        if (!f_ive) f_ive = py::module_::import("scipy.special").attr("ive");
        py::object r = f_ive(v, z);
        if (PyArray_Check(z.ptr())) r = r.attr("astype")(f_result_type(z, 0.0f), "copy"_a = false);
        return r;
    }
    py::object sign(const py::object& x) { return f_sign(x); }

    // ---- linear algebra ----
    // A large product of two matrices of one dtype goes into a buffer from the
    // pool (Note [Buffer pool]): fresh memory for every product costs more than
    // the call. Smaller ones come from malloc's caches, which measured faster.
    static constexpr size_t POOLED_PRODUCT_BYTES = size_t(128) << 10;
    py::object matmul(const py::object& a, const py::object& b) {
        if (pool && PyArray_Check(a.ptr()) && PyArray_Check(b.ptr())) {
            auto* pa = reinterpret_cast<PyArrayObject*>(a.ptr());
            auto* pb = reinterpret_cast<PyArrayObject*>(b.ptr());
            const int type = PyArray_TYPE(pa);
            const npy_intp dims[2] = {PyArray_NDIM(pa) == 2 ? PyArray_DIM(pa, 0) : 0,
                                      PyArray_NDIM(pb) == 2 ? PyArray_DIM(pb, 1) : 0};
            const size_t bytes = static_cast<size_t>(dims[0] * dims[1]) * PyArray_ITEMSIZE(pa);
            if (PyArray_NDIM(pa) == 2 && PyArray_NDIM(pb) == 2 && PyArray_TYPE(pb) == type &&
                (type == NPY_FLOAT64 || type == NPY_FLOAT32) &&
                PyArray_DIM(pa, 1) == PyArray_DIM(pb, 0) && bytes >= POOLED_PRODUCT_BYTES) {
                py::object out = py::reinterpret_steal<py::object>(check(pool->take(2, dims, type)));
                return f_matmul(a, b, "out"_a = out);
            }
        }
        return f_matmul(a, b);
    }
    // While an op of this thread runs on a tape (PoolScope): where matmul takes
    // its outputs from. Per thread: numpy releases the GIL inside matmul.
    static inline thread_local BufferPool* pool = nullptr;
    // Through BLAS, with a cached plan (Note [Contractions]).
    py::object einsum(const py::tuple& specs, const py::object& out, const Values& x) {
        return contract(specs, out, x);
    }
    // numpy's convolve (1-D) when method is None, else scipy.signal.convolve,
    // imported the first time (import tapegrad never imports scipy). The
    // result has numpy's promoted dtype (scipy's fft path may not keep it).
    py::object convolve(const py::object& a, const py::object& v, const py::object& mode,
                        const py::object& method) {
        py::object r;
        if (method.is_none()) {
            r = f_convolve(a, v, mode);
        } else {
            if (!scipy_convolve) scipy_convolve = py::module_::import("scipy.signal").attr("convolve");
            r = scipy_convolve(a, v, "mode"_a = mode, "method"_a = method);
        }
        return r.attr("astype")(f_result_type(a, v), "copy"_a = false);
    }
    // ---- numpy.linalg and scipy.linalg (csrc/linalg.hpp) ----
    // numpy's LinAlgError for a singular or indefinite matrix says only that;
    // these say which shape, and what to do instead.
    py::object inv(const py::object& x) {
        return linalg_call([&] { return f_inv(x); }, x, "the matrix is singular (a of shape %S): it has no inverse. "
                           "numpy.linalg.pinv gives the pseudo-inverse");
    }
    // An inverse inside a backward formula (det's, slogdet's): scipy's getri
    // where scipy is installed, which inverts the LU factors in place instead
    // of solving against an identity (numpy's inv). inv, the op, keeps numpy's
    // values.
    py::object inverse(const py::object& x) {
        PyObject* sl = size(x) ? scipy_linalg(nullptr) : nullptr;
        if (!sl) return inv(x);
        return linalg_call([&] {
            return py::reinterpret_borrow<py::object>(sl).attr("inv")(x, "check_finite"_a = false);
        }, x, "the matrix is singular (a of shape %S): it has no inverse");
    }
    py::object solve(const py::object& a, const py::object& b) {
        return linalg_call([&] { return f_solve(a, b); }, a, "a (of shape %S) is singular: a @ x = b has no unique "
                           "solution. numpy.linalg.lstsq or pinv(a) @ b give the least-squares one");
    }
    py::object det(const py::object& x) { return f_det(x); }
    // (..., 2): the sign, then log|det| (Note [Packed decompositions]).
    py::object slogdet_packed(const py::object& x) {
        py::object r = f_slogdet(x);
        py::object sign = r.attr("sign"), logabs = r.attr("logabsdet");
        const size_t nd = ndim(sign);
        return f_concatenate(py::make_tuple(expand_dims(sign, nd), expand_dims(logabs, nd)), "axis"_a = -1);
    }
    py::object cholesky(const py::object& x, bool upper) {
        return linalg_call([&] { return f_cholesky(x, "upper"_a = upper); }, x,
                           "the matrix (a of shape %S) is not positive definite: cholesky needs a symmetric "
                           "positive-definite matrix (and reads only one triangle of it)");
    }
    // a x = b, or a^T x = b with trans, reading a's lower or upper triangle.
    // scipy's solver where scipy is installed; else (and for empty stacks, which
    // scipy refuses) numpy's solve on that triangle.
    py::object solve_triangular(const py::object& a, const py::object& b, bool trans, bool lower, bool unit) {
        PyObject* sl = size(a) && size(b) ? scipy_linalg(nullptr) : nullptr;
        if (sl) {
            return linalg_call([&] {
                return py::reinterpret_borrow<py::object>(sl).attr("solve_triangular")(
                    a, b, "trans"_a = trans ? 1 : 0, "lower"_a = lower, "unit_diagonal"_a = unit,
                    "check_finite"_a = false);
            }, a, "a (of shape %S) is singular: it has a zero on its diagonal");
        }
        py::object dtype = f_result_type(a);
        const long n = shape(a)[py::len(shape(a)) - 1].cast<long>();
        py::object t = mul(a, tri_mask(n, lower, 0, dtype));
        if (unit) {
            py::object eye_n = eye(n, dtype);
            t = add(mul(t, sub(py::float_(1.0), eye_n)), eye_n);
        }
        return solve(trans ? swap_last(t) : t, b);
    }
    // eigh's factors packed into one array (Note [Packed decompositions]).
    py::object eigh_packed(const py::object& x, bool lower) {
        py::object r = linalg_call([&] { return f_eigh(x, lower ? "L" : "U"); }, x,
                                   "the eigenvalue algorithm did not converge on a of shape %S");
        py::object w = r.attr("eigenvalues");
        return f_concatenate(py::make_tuple(expand_dims(w, ndim(w) - 1), r.attr("eigenvectors")), "axis"_a = -2);
    }
    py::object svd_packed(const py::object& x, bool full) {
        py::object r = linalg_call([&] { return f_svd(x, "full_matrices"_a = full); }, x,
                                   "the SVD did not converge on a of shape %S");
        return join_flat(r.attr("U"), r.attr("S"), r.attr("Vh"));
    }
    py::object qr_packed(const py::object& x, bool complete) {
        py::object r = f_qr(x, complete ? "complete" : "reduced");
        return join_flat(r.attr("Q"), py::none(), r.attr("R"));
    }
    py::object pinv(const py::object& x, const py::object& rcond) {
        return linalg_call([&] { return rcond.is_none() ? f_pinv(x) : f_pinv(x, rcond); }, x,
                           "the SVD did not converge on a of shape %S");
    }
    py::object expm(const py::object& x) {
        return py::reinterpret_borrow<py::object>(scipy_linalg("expm")).attr("expm")(x);
    }
    py::object sqrtm(const py::object& x) {
        py::object r = py::reinterpret_borrow<py::object>(scipy_linalg("sqrtm")).attr("sqrtm")(x);
        if (f_iscomplexobj(r).cast<bool>()) {
            PyErr_Format(PyExc_ValueError, "the principal square root of A (of shape %S) is complex: A has "
                         "negative real eigenvalues. tapegrad differentiates real matrices only",
                         shape(x).ptr());
            throw py::error_already_set();
        }
        return r.attr("astype")(f_result_type(x), "copy"_a = false);
    }
    // Bartels-Stewart with the triangular equation solved in blocks
    // (python/tapegrad/_sylvester.py): scipy's solve_sylvester spends most of
    // its time in LAPACK's element-wise trsyl.
    py::object sylvester(const py::object& a, const py::object& b, const py::object& q) {
        scipy_linalg("solve_sylvester");  // it needs scipy: the ImportError says so
        if (!f_sylvester) f_sylvester = py::module_::import("tapegrad._sylvester").attr("solve_sylvester");
        return f_sylvester(a, b, q);
    }
    // Values used inside the formulas, never differentiated.
    py::object value(const py::object& x) { return x; }
    py::object neg(const py::object& x) { return f_negative(x); }
    bool any_zero(const py::object& x) { return f_any(f_equal(x, 0.0)).cast<bool>(); }
    // det's backward takes the SVD formula where a determinant is 0 (the
    // first derivative through A^-1 is accurate up to there).
    bool nearly_singular(const py::object&, const py::object& det) { return any_zero(det); }
    bool all_zero(const py::object& x) { return !f_any(x).cast<bool>(); }
    bool any_infinite(const py::object& x) { return f_any(f_isinf(x)).cast<bool>(); }
    double max_abs(const py::object& x) {
        return size(x) ? f_max(f_abs(x), py::none(), py::none(), py::none(), false).cast<double>() : 0.0;
    }
    py::object zero_mask(const py::object& x) { return f_equal(x, 0.0); }
    // Whether a pair i != j with gaps[..., i, j] == 0 has x[..., i, j] or
    // x[..., j, i] nonzero: a gradient that would be divided by a zero gap
    // (Note [Repeated values]).
    bool couples(const py::object& gaps, const py::object& x) {
        const long n = shape(x)[py::len(shape(x)) - 1].cast<long>();
        py::object off = f_logical_not(f_eye(n, "dtype"_a = "bool"));
        py::object reached = f_logical_or(f_not_equal(x, 0.0), f_not_equal(swap_last(x), 0.0));
        py::object hit = f_logical_and(f_logical_and(f_equal(gaps, 0.0), off), reached);
        return f_any(hit).cast<bool>();
    }
    // Whether a determinant is 0, or (tolerance > 0) |det| <= tolerance * max|a|^n
    // for one of the matrices: singular to that relative precision.
    bool nearly_singular(const py::object& a, const py::object& det, double tolerance) {
        if (tolerance == 0) return any_zero(det);
        py::tuple s = shape(a);
        const long n = s[py::len(s) - 1].cast<long>();
        py::object scale = f_max(f_abs(a), py::make_tuple(-2, -1), py::none(), py::none(), false);
        py::object bound = mul(f_power(scale, py::float_(static_cast<double>(n))), py::float_(tolerance));
        return f_any(f_less_equal(f_abs(det), bound)).cast<bool>();
    }
    // Whether a zero singular value s[..., i] meets a nonzero gradient in column
    // i of g (columns) or in its row i (rows).
    bool reaches_zero(const py::object& s, const py::object& g, bool columns) {
        py::object zero = f_equal(s, 0.0);
        zero = expand_dims(zero, ndim(zero) - (columns ? 1 : 0));
        return f_any(f_logical_and(zero, f_not_equal(g, 0.0))).cast<bool>();
    }
    py::object eye(long n, const py::object& dtype) { return f_eye(n, "dtype"_a = dtype); }
    py::object zeros(const py::object& shape, const py::object& dtype) { return f_zeros(shape, "dtype"_a = dtype); }
    // Ones on and below diagonal k (lower), or on and above it, of an n x n matrix.
    py::object tri_mask(long n, bool lower, long k, const py::object& dtype) {
        py::object t = f_tri(n, n, lower ? k : -k, "dtype"_a = dtype);
        return lower ? t : t.attr("T");
    }

    // ---- shapes ----
    py::tuple shape(const py::object& x) {
        return is_array(x) ? py::tuple(x.attr("shape")) : py::tuple(f_shape(x));
    }
    size_t ndim(const py::object& x) {
        if (is_array(x)) return static_cast<size_t>(PyArray_NDIM(reinterpret_cast<PyArrayObject*>(x.ptr())));
        return py::len(shape(x));
    }
    size_t size(const py::object& x) { return f_size(x).cast<size_t>(); }
    py::object dtype(const py::object& x) { return f_result_type(x); }
    // ndarray methods where x is an array: numpy's functions add a Python-level wrapper.
    py::object reshape(const py::object& x, const py::object& shape) {
        return is_array(x) ? x.attr("reshape")(shape) : f_reshape(x, shape);
    }
    py::object transpose(const py::object& x, const py::object& axes) {
        return is_array(x) ? x.attr("transpose")(axes) : f_transpose(x, axes);
    }
    // A copy in `dtype` (a new array, never a view of x).
    py::object astype(const py::object& x, const py::object& dtype) {
        return f_array(x, "dtype"_a = dtype);
    }
    py::object inverse_permutation(const py::object& axes) {
        return py::tuple(f_argsort(axes).attr("tolist")());
    }
    py::object broadcast_to(const py::object& x, const py::object& shape) {
        if (!is_array(x)) return f_broadcast_to(x, shape);
        std::vector<npy_intp> dims;
        for (py::handle n : shape) dims.push_back(n.cast<npy_intp>());
        return py::reinterpret_steal<py::object>(
            check(broadcast_view(x.ptr(), static_cast<int>(dims.size()), dims.data())));
    }
    py::object expand_dims(const py::object& x, size_t axis) {
        if (!is_array(x)) return f_expand_dims(x, py::int_(axis));
        py::list shape_list(shape(x));
        shape_list.insert(axis, py::int_(1));
        return x.attr("reshape")(py::tuple(shape_list));
    }
    py::object squeeze_axis(const py::object& x, size_t axis) {
        return is_array(x) ? x.attr("squeeze")(py::int_(axis))
                           : f_squeeze(x, "axis"_a = py::int_(axis));
    }
    py::object swap_last(const py::object& x) {
        if (!PyArray_Check(x.ptr())) return f_swapaxes(x, -1, -2);
        auto* a = reinterpret_cast<PyArrayObject*>(x.ptr());
        const int nd = PyArray_NDIM(a);
        return py::reinterpret_steal<py::object>(check(PyArray_SwapAxes(a, nd - 1, nd - 2)));
    }

    // ---- indexing and joining ----
    py::object getitem(const py::object& x, const py::object& index, bool = false) {
        if (PyFloat_Check(x.ptr())) {  // a scalar Tensor's value: index it as numpy's 0-d array
            py::object a = py::reinterpret_steal<py::object>(check(PyArray_FROM_OTF(x.ptr(), NPY_FLOAT64, 0)));
            return py::reinterpret_steal<py::object>(check(PyObject_GetItem(a.ptr(), index.ptr())));
        }
        return py::reinterpret_steal<py::object>(check(PyObject_GetItem(x.ptr(), index.ptr())));
    }
    // zeros of `shape` with g added at `index` (repeated indices add up).
    // Integer-array indices go through one pass over g (Note [Scatter by
    // positions]); numpy's add.at takes the rest (a boolean scalar in the index).
    py::object scatter_add(const py::object& shape, const py::object& index, bool advanced,
                           const py::object& g) {
        if (advanced) {
            Positions pos = position_terms(shape, index);
            if (!pos.terms.empty()) {
                PyObject* out = scatter_positions(shape.ptr(), pos.terms[0].ptr(), pos.axis_length, pos.stride,
                                                  pos.terms.size() > 1 ? pos.terms[1].ptr() : nullptr, g.ptr());
                if (out) return py::reinterpret_steal<py::object>(out);
                if (PyErr_Occurred()) throw py::error_already_set();
            }
        }
        py::object out = f_zeros(shape, "dtype"_a = f_result_type(g));
        if (advanced) {
            f_add_at(out, index, g);
        } else {
            check_int(PyObject_SetItem(out.ptr(), index.ptr(), g.ptr()));
        }
        return out;
    }
    py::object concatenate(const Values& x, const py::object& axis) {
        py::list seq;
        for (const py::object& v : x) seq.append(v);
        return f_concatenate(seq, "axis"_a = axis);
    }
private:
    Numeric() {
        py::module_ np = py::module_::import("numpy");
        auto fn = [&](const char* name) { return np.attr(name); };
        // The ufuncs' reduce methods: np.sum and friends add a Python-level wrapper
        // that costs a microsecond per call on small arrays.
        f_sum = np.attr("add").attr("reduce"), f_max = np.attr("maximum").attr("reduce");
        f_min = np.attr("minimum").attr("reduce"), f_prod = np.attr("multiply").attr("reduce");
        f_var = fn("var"), f_std = fn("std"), f_reshape = fn("reshape");
        f_broadcast_to = fn("broadcast_to"), f_where = fn("where"), f_isfinite = fn("isfinite");
        f_log = fn("log"), f_exp = fn("exp"), f_squeeze = fn("squeeze"), f_transpose = fn("transpose");
        f_ones_like = fn("ones_like"), f_cumprod = fn("cumprod"), f_concatenate = fn("concatenate");
        f_add = fn("add"), f_subtract = fn("subtract"), f_multiply = fn("multiply");
        f_divide = fn("true_divide"), f_equal = fn("equal"), f_result_type = fn("result_type");
        f_clip = fn("clip"), f_logical_and = fn("logical_and"), f_greater_equal = fn("greater_equal");
        f_less_equal = fn("less_equal"), f_matmul = fn("matmul"), f_convolve = fn("convolve");
        f_shape = fn("shape"), f_size = fn("size"), f_argsort = fn("argsort");
        f_expand_dims = fn("expand_dims"), f_swapaxes = fn("swapaxes"), f_zeros = fn("zeros");
        f_add_at = np.attr("add").attr("at"), f_array = fn("array");
        f_less = fn("less"), f_greater = fn("greater"), f_logical_or = fn("logical_or");
        py::module_ la = py::module_::import("numpy.linalg");
        f_inv = la.attr("inv"), f_solve = la.attr("solve"), f_det = la.attr("det"), f_slogdet = la.attr("slogdet");
        f_cholesky = la.attr("cholesky"), f_eigh = la.attr("eigh"), f_svd = la.attr("svd"), f_qr = la.attr("qr");
        f_pinv = la.attr("pinv"), f_linalg_error = la.attr("LinAlgError");
        f_negative = fn("negative"), f_any = fn("any"), f_isinf = fn("isinf"), f_abs = fn("absolute");
        f_eye = fn("eye"), f_tri = fn("tri"), f_iscomplexobj = fn("iscomplexobj");
        f_logical_not = fn("logical_not"), f_not_equal = fn("not_equal");
        f_power = fn("power");
        f_sign = fn("sign");
        f_arange = fn("arange");
        intp_type = fn("intp"), zero_intp = np.attr("zeros")(py::tuple(), "dtype"_a = intp_type);
        f_add_accumulate = np.attr("add").attr("accumulate");
        f_multiply_accumulate = np.attr("multiply").attr("accumulate");
        ndarray_type = fn("ndarray");
    }

    bool is_array(const py::object& x) { return py::isinstance(x, ndarray_type); }

    // scipy.linalg, imported on first use (import tapegrad does not import
    // scipy); nullptr when scipy is not installed and `what` is nullptr, else
    // an ImportError that names what needs it.
    PyObject* scipy_linalg(const char* what) {
        if (!scipy_tried) {
            scipy_tried = true;
            PyObject* m = PyImport_ImportModule("scipy.linalg");
            if (m) scipy_module = py::reinterpret_steal<py::object>(m);
            else PyErr_Clear();
        }
        if (!scipy_module && what) {
            PyErr_Format(PyExc_ImportError, "%s needs scipy, which is not installed: pip install scipy", what);
            throw py::error_already_set();
        }
        return scipy_module.ptr();
    }
    // Calls f; numpy's LinAlgError is raised again with `message` (where %S
    // is x's shape), of the same type.
    template <class F>
    py::object linalg_call(F&& f, const py::object& x, const char* message) {
        try {
            return f();
        } catch (py::error_already_set& e) {
            if (!e.matches(f_linalg_error)) throw;
            PyErr_Format(f_linalg_error.ptr(), message, shape(x).ptr());
            throw py::error_already_set();
        }
    }
    // Factors flattened and joined along the last axis (Note [Packed decompositions]).
    py::object join_flat(const py::object& first, const py::object& middle, const py::object& last) {
        py::list parts;
        for (const py::object* f : {&first, &middle, &last}) {
            if (f->is_none()) continue;
            py::tuple s = shape(*f);
            if (py::len(s) < 2 || f == &middle) {
                parts.append(*f);
                continue;
            }
            py::list flat;
            for (size_t i = 0; i + 2 < py::len(s); ++i) flat.append(s[i]);
            flat.append(py::int_(s[py::len(s) - 2].cast<long>() * s[py::len(s) - 1].cast<long>()));
            parts.append(f->attr("reshape")(py::tuple(flat)));
        }
        return f_concatenate(parts, "axis"_a = -1);
    }

    // Note [Scatter by positions]
    // The backward of x[index] with integer arrays adds g into zeros of x's
    // shape, repeated positions adding up. numpy's add.at does it one index
    // tuple at a time through its general iterator, a slow path per element.
    // Given the position in x
    // (its C-order element number) of each element of g, it is one loop:
    // out.flat[position] += g (scatter_positions in arrays.cpp).
    //
    // Positions are x's element numbers taken by the same index: the sum over
    // x's axes k of arange(n_k) * stride_k indexed as axis k is. Each term is
    // computed on a small array that has x's length on axis k only, the
    // entries for the other axes made neutral on it (a slice takes all of an
    // axis of 1, an integer 0, an integer array a 0 with as many axes, all of
    // length 1), so numpy applies its own rules (negative indices, where the
    // advanced axes go, boolean masks as their nonzero() arrays) and each term
    // comes out with g's number of axes, broadcastable to g's shape. The terms
    // are added smallest pair first down to two, which the loop adds per
    // element as it goes: in an im2col gather, (64, 3, 1, 1) and (1, 1, 900, 9),
    // the full-size array of positions is never made. (np.bincount needs it,
    // copies a read-only index and turns float32 weights into float64 and back,
    // which costs more than the scatter itself.)
    //
    // Terms broadcastable to g's shape (at most two), or none where an index
    // entry is not one of ints, slices, None, one Ellipsis, integer arrays and
    // boolean arrays of at least one dimension: add.at takes those. When
    // axis_length > 0 the first term is an index into an axis of that length
    // and that stride, negative values counting from the end; the scatter
    // loop checks and scales it (x[idx] on a vector makes no array at all).
    struct Positions {
        std::vector<py::object> terms;
        npy_intp axis_length = 0, stride = 0;
    };
    Positions position_terms(const py::object& shape_obj, const py::object& index) {
        Positions at;
        std::vector<py::object>& terms = at.terms;
        if (!PyTuple_Check(index.ptr()) || !PyTuple_Check(shape_obj.ptr())) return at;
        py::tuple shape = py::reinterpret_borrow<py::tuple>(shape_obj);
        const size_t nd = py::len(shape);
        // The entries, booleans replaced by their nonzero() arrays; axis[j] is the
        // axis of x that entry j indexes (-1: None).
        std::vector<py::object> items;
        std::vector<long> axis;
        long used = 0, ellipsis_at = -1;
        for (py::handle item : index) {
            PyObject* o = item.ptr();
            py::object entry = py::reinterpret_borrow<py::object>(item);
            if (o == Py_None) {
                items.push_back(entry), axis.push_back(-1);
            } else if (o == Py_Ellipsis) {
                if (ellipsis_at >= 0) return at;
                ellipsis_at = static_cast<long>(items.size());
            } else if (PySlice_Check(o)) {
                items.push_back(entry), axis.push_back(used++);
            } else if (PyArray_Check(o)) {
                auto* a = reinterpret_cast<PyArrayObject*>(o);
                if (PyArray_ISBOOL(a)) {
                    if (PyArray_NDIM(a) == 0) return at;
                    for (py::handle nz : py::tuple(entry.attr("nonzero")()))
                        items.push_back(py::reinterpret_borrow<py::object>(nz)), axis.push_back(used++);
                } else if (PyArray_ISINTEGER(a)) {
                    items.push_back(entry), axis.push_back(used++);
                } else {
                    return at;
                }
            } else if (!PyBool_Check(o) && !PyArray_IsScalar(o, Bool) && PyIndex_Check(o)) {
                items.push_back(entry), axis.push_back(used++);
            } else {
                return at;
            }
        }
        if (used > static_cast<long>(nd)) return at;  // numpy raises: add.at says so
        // The Ellipsis (or the end) stands for the axes no entry names.
        const size_t rest_at = ellipsis_at >= 0 ? static_cast<size_t>(ellipsis_at) : items.size();
        for (long r = 0; r < static_cast<long>(nd) - used; ++r) {
            items.insert(items.begin() + static_cast<long>(rest_at), slice(py::none(), py::none()));
            axis.insert(axis.begin() + static_cast<long>(rest_at), 0);
        }
        for (size_t j = 0, k = 0; j < axis.size(); ++j)
            if (items[j].ptr() != Py_None) axis[j] = static_cast<long>(k++);
        // Each entry made neutral on an axis of length 1.
        std::vector<py::object> neutral(items.size());
        for (size_t j = 0; j < items.size(); ++j) {
            PyObject* o = items[j].ptr();
            if (o == Py_None) neutral[j] = py::none();
            else if (PySlice_Check(o)) neutral[j] = slice(py::none(), py::none());
            else if (PyArray_Check(o)) neutral[j] = zero_of_ndim(PyArray_NDIM(reinterpret_cast<PyArrayObject*>(o)));
            else neutral[j] = py::int_(0);
        }
        // One integer array and no int: its axes stay where it stands (numpy's
        // rule), so its term is the array itself, which the loop scales.
        long lone = -1;
        for (size_t j = 0; j < items.size() && lone != -2; ++j) {
            PyObject* o = items[j].ptr();
            if (o == Py_None || PySlice_Check(o)) continue;
            lone = lone == -1 && PyArray_Check(o) ? static_cast<long>(j) : -2;
        }
        npy_intp stride = 1;
        for (size_t k = nd; k-- > 0; stride *= shape[k].cast<npy_intp>()) {
            const npy_intp n = shape[k].cast<npy_intp>();
            if (lone >= 0 && axis[static_cast<size_t>(lone)] == static_cast<long>(k)) {
                py::object term = in_place(items[static_cast<size_t>(lone)], static_cast<size_t>(lone), items.size());
                if (!term.is_none()) {
                    terms.insert(terms.begin(), std::move(term));  // first: the loop scales it
                    at.axis_length = n, at.stride = stride;
                    continue;
                }
            }
            py::list dims;
            for (size_t i = 0; i < nd; ++i) dims.append(i == k ? n : 1);
            py::object v = mul(f_arange(n, "dtype"_a = intp_type), py::int_(stride)).attr("reshape")(dims);
            py::tuple sub(items.size());
            for (size_t j = 0; j < items.size(); ++j)
                sub[j] = axis[j] == static_cast<long>(k) && items[j].ptr() != Py_None ? items[j] : neutral[j];
            // An array even where every entry is a number (numpy then gives a scalar).
            terms.push_back(py::reinterpret_steal<py::object>(check(PyArray_FROM_O(getitem(v, sub).ptr()))));
        }
        // Each has the result's number of axes (numpy's rules, one index form).
        for (const py::object& t : terms)
            if (PyArray_NDIM(reinterpret_cast<PyArrayObject*>(t.ptr())) !=
                PyArray_NDIM(reinterpret_cast<PyArrayObject*>(terms[0].ptr())))
                return Positions();
        // Added smallest pair first, down to two.
        auto joint_size = [](const py::object& a, const py::object& b) {
            auto *pa = reinterpret_cast<PyArrayObject*>(a.ptr()), *pb = reinterpret_cast<PyArrayObject*>(b.ptr());
            npy_intp n = 1;
            for (int i = 0; i < PyArray_NDIM(pa); ++i) n *= std::max(PyArray_DIM(pa, i), PyArray_DIM(pb, i));
            return n;
        };
        while (terms.size() > 2) {
            const size_t first = at.axis_length > 0 ? 1 : 0;  // a raw index is not added to
            size_t bi = first, bj = first + 1;
            npy_intp best = -1;
            for (size_t i = first; i < terms.size(); ++i)
                for (size_t j = i + 1; j < terms.size(); ++j) {
                    const npy_intp s = joint_size(terms[i], terms[j]);
                    if (best < 0 || s < best) best = s, bi = i, bj = j;
                }
            terms[bi] = add(terms[bi], terms[bj]);
            terms.erase(terms.begin() + static_cast<long>(bj));
        }
        return at;
    }

    // idx with its axes placed at entry `at` of `count` (one axis of 1 for
    // each other entry), a view, when idx is an intp array; else None.
    py::object in_place(const py::object& idx, size_t at, size_t count) {
        auto* a = reinterpret_cast<PyArrayObject*>(idx.ptr());
        if (PyArray_TYPE(a) != NPY_INTP || !PyArray_ISBEHAVED_RO(a)) return py::none();
        py::list dims;
        for (size_t j = 0; j < at; ++j) dims.append(1);
        for (int d = 0; d < PyArray_NDIM(a); ++d) dims.append(PyArray_DIM(a, d));
        for (size_t j = at + 1; j < count; ++j) dims.append(1);
        return idx.attr("reshape")(dims);
    }

    // A 0 with nd axes of length 1 (a view): an integer array made neutral.
    py::object zero_of_ndim(int nd) {
        std::vector<npy_intp> dims(static_cast<size_t>(nd), 1);
        return py::reinterpret_steal<py::object>(check(broadcast_view(zero_intp.ptr(), nd, dims.data())));
    }

    // Whether axis (a tuple of non-negative ints) is just x's last axis.
    static bool is_last_axis(const py::object& x, const py::object& axis) {
        if (!PyArray_Check(x.ptr()) || !PyTuple_Check(axis.ptr()) || PyTuple_GET_SIZE(axis.ptr()) != 1)
            return false;
        const long a = PyLong_AsLong(PyTuple_GET_ITEM(axis.ptr(), 0));
        if (a == -1 && PyErr_Occurred()) {
            PyErr_Clear();
            return false;
        }
        return a == PyArray_NDIM(reinterpret_cast<PyArrayObject*>(x.ptr())) - 1;
    }

    static py::object steal(PyObject* o) { return py::reinterpret_steal<py::object>(o); }
    // The cumulative sum or product of a float32/float64 ndarray along axis
    // (from the far end when reverse), as a new C-contiguous array; nullptr
    // (no error) for anything else, which numpy's accumulate then handles.
    static PyObject* scan(const py::object& x, int axis, bool reverse, bool product) {
        if (!PyArray_Check(x.ptr())) return nullptr;
        auto* a = reinterpret_cast<PyArrayObject*>(x.ptr());
        const int type = PyArray_TYPE(a), nd = PyArray_NDIM(a);
        if ((type != NPY_FLOAT32 && type != NPY_FLOAT64) || axis < 0 || axis >= nd) return nullptr;
        PyArrayObject* in = PyArray_GETCONTIGUOUS(a);
        if (!in) throw py::error_already_set();
        PyObject* out = PyArray_SimpleNew(nd, PyArray_DIMS(a), type);
        if (!out) {
            Py_DECREF(in);
            throw py::error_already_set();
        }
        npy_intp outer = 1, inner = 1;
        for (int i = 0; i < axis; ++i) outer *= PyArray_DIM(a, i);
        for (int i = axis + 1; i < nd; ++i) inner *= PyArray_DIM(a, i);
        const npy_intp n = PyArray_DIM(a, axis);
        void* od = PyArray_DATA(reinterpret_cast<PyArrayObject*>(out));
        if (type == NPY_FLOAT32) {
            scan_lines(static_cast<const float*>(PyArray_DATA(in)), static_cast<float*>(od), outer, n,
                       inner, reverse, product);
        } else {
            scan_lines(static_cast<const double*>(PyArray_DATA(in)), static_cast<double*>(od), outer,
                       n, inner, reverse, product);
        }
        Py_DECREF(in);
        return out;
    }
    // Lines of n elements, `inner` apart, in `outer` blocks: each step adds (or
    // multiplies) a whole slab of inner elements, which vectorises.
    template <class T>
    static void scan_lines(const T* x, T* out, npy_intp outer, npy_intp n, npy_intp inner, bool reverse,
                           bool product) {
        if (inner == 1) return scan_rows(x, out, outer, n, reverse, product);
        for (npy_intp o = 0; o < outer; ++o, x += n * inner, out += n * inner) {
            for (npy_intp s = 0; s < n; ++s) {
                const npy_intp k = reverse ? n - 1 - s : s;
                const T* xk = x + k * inner;
                T* ok = out + k * inner;
                if (s == 0) {
                    for (npy_intp i = 0; i < inner; ++i) ok[i] = xk[i];
                    continue;
                }
                const T* prev = out + (reverse ? k + 1 : k - 1) * inner;
                if (product) {
                    for (npy_intp i = 0; i < inner; ++i) ok[i] = prev[i] * xk[i];
                } else {
                    for (npy_intp i = 0; i < inner; ++i) ok[i] = prev[i] + xk[i];
                }
            }
        }
    }
    // Along the last axis each line is a chain of dependent adds: eight lines
    // advance together, so that their chains overlap in the pipeline.
    template <class T>
    static void scan_rows(const T* x, T* out, npy_intp rows, npy_intp n, bool reverse, bool product) {
        constexpr npy_intp W = 8;
        npy_intp r = 0;
        for (; r + W <= rows; r += W) scan_block<T, W>(x + r * n, out + r * n, n, reverse, product);
        for (; r < rows; ++r) scan_block<T, 1>(x + r * n, out + r * n, n, reverse, product);
    }
    template <class T, npy_intp W>
    static void scan_block(const T* x, T* out, npy_intp n, bool reverse, bool product) {
        if (n == 0) return;
        T acc[W];
        const npy_intp first = reverse ? n - 1 : 0, step = reverse ? -1 : 1;
        for (npy_intp w = 0; w < W; ++w) acc[w] = out[w * n + first] = x[w * n + first];
        for (npy_intp s = 1, k = first + step; s < n; ++s, k += step) {
            for (npy_intp w = 0; w < W; ++w) {
                acc[w] = product ? acc[w] * x[w * n + k] : acc[w] + x[w * n + k];
                out[w * n + k] = acc[w];
            }
        }
    }
    // The same layout as scan_lines: R runs from the far end (out holds it),
    // then E from the near end multiplies it in.
    template <class T>
    static void cumprod_grad_lines(const T* x, const T* g, T* out, npy_intp outer, npy_intp n,
                                   npy_intp inner) {
        if (n == 0) return;
        if (inner == 1) {
            constexpr npy_intp W = 8;
            npy_intp r = 0;
            for (; r + W <= outer; r += W) cumprod_grad_block<T, W>(x + r * n, g + r * n, out + r * n, n);
            for (; r < outer; ++r) cumprod_grad_block<T, 1>(x + r * n, g + r * n, out + r * n, n);
            return;
        }
        std::vector<T> head(static_cast<size_t>(inner));
        for (npy_intp o = 0; o < outer; ++o, x += n * inner, g += n * inner, out += n * inner) {
            T* last = out + (n - 1) * inner;
            for (npy_intp i = 0; i < inner; ++i) last[i] = g[(n - 1) * inner + i];
            for (npy_intp k = n - 2; k >= 0; --k) {
                const T *gk = g + k * inner, *xnext = x + (k + 1) * inner;
                T *ok = out + k * inner, *onext = out + (k + 1) * inner;
                for (npy_intp i = 0; i < inner; ++i) ok[i] = gk[i] + xnext[i] * onext[i];
            }
            std::fill(head.begin(), head.end(), T(1));
            for (npy_intp k = 0; k < n; ++k) {
                const T* xk = x + k * inner;
                T* ok = out + k * inner;
                for (npy_intp i = 0; i < inner; ++i) {
                    ok[i] *= head[static_cast<size_t>(i)];
                    head[static_cast<size_t>(i)] *= xk[i];
                }
            }
        }
    }
    // W lines along the last axis together (their dependent chains overlap).
    template <class T, npy_intp W>
    static void cumprod_grad_block(const T* x, const T* g, T* out, npy_intp n) {
        T tail[W], head[W];
        for (npy_intp w = 0; w < W; ++w) tail[w] = out[w * n + n - 1] = g[w * n + n - 1];
        for (npy_intp k = n - 2; k >= 0; --k) {
            for (npy_intp w = 0; w < W; ++w) {
                tail[w] = g[w * n + k] + x[w * n + k + 1] * tail[w];
                out[w * n + k] = tail[w];
            }
        }
        for (npy_intp w = 0; w < W; ++w) head[w] = 1;
        for (npy_intp k = 0; k < n; ++k) {
            for (npy_intp w = 0; w < W; ++w) {
                out[w * n + k] *= head[w];
                head[w] *= x[w * n + k];
            }
        }
    }
    // (:, ..., ::-1) reversing `axis` (a non-negative int) of x.
    static py::tuple flip_index(const py::object& axis) {
        const size_t a = axis.cast<size_t>();
        py::tuple index(a + 1);
        for (size_t i = 0; i < a; ++i) index[i] = slice(py::none(), py::none());
        index[a] = slice(py::none(), py::none(), py::int_(-1));
        return index;
    }

    static PyObject* check(PyObject* o) {
        if (!o) throw py::error_already_set();
        return o;
    }
    static void check_int(int rc) {
        if (rc < 0) throw py::error_already_set();
    }
    static py::object slice(py::object a, py::object b, py::object c = py::none()) {
        return py::reinterpret_steal<py::object>(check(PySlice_New(a.ptr(), b.ptr(), c.ptr())));
    }
    // (..., a:b:c): a slice of the last axis.
    static py::tuple last_axis(py::object a, py::object b, py::object c = py::none()) {
        return py::make_tuple(py::ellipsis(), slice(std::move(a), std::move(b), std::move(c)));
    }

    py::object f_sum, f_max, f_min, f_prod, f_var, f_std, f_reshape, f_broadcast_to, f_where,
        f_isfinite, f_log, f_exp, f_squeeze, f_transpose, f_ones_like, f_cumprod, f_concatenate,
        f_add, f_subtract, f_multiply, f_divide, f_equal, f_result_type, f_clip, f_logical_and,
        f_greater_equal, f_less_equal, f_matmul, f_convolve, scipy_convolve, f_shape, f_size,
        f_argsort, f_expand_dims, f_swapaxes, f_zeros, f_add_at, f_array, f_less, f_greater,
        f_logical_or, f_sign, f_add_accumulate, f_multiply_accumulate, ndarray_type;
    py::object f_inv, f_solve, f_det, f_slogdet, f_cholesky, f_eigh, f_svd, f_qr, f_pinv, f_linalg_error,
        f_negative, f_any, f_isinf, f_abs, f_eye, f_tri, f_iscomplexobj, f_logical_not, f_not_equal,
        f_power;
    py::object scipy_module, f_sylvester;
    bool scipy_tried = false;
    py::object f_ive;  // scipy.special.ive, looked up at first use
    py::object f_arange, intp_type, zero_intp;  // Note [Scatter by positions]
};

// Numeric's matmul takes its outputs from `pool` for the scope's duration.
class PoolScope {
public:
    explicit PoolScope(BufferPool& pool) : previous(Numeric::pool) { Numeric::pool = &pool; }
    ~PoolScope() { Numeric::pool = previous; }
    PoolScope(const PoolScope&) = delete;
    PoolScope& operator=(const PoolScope&) = delete;

private:
    BufferPool* previous;
};

}  // namespace tapegrad
