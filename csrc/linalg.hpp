// Linear algebra: numpy.linalg's and scipy.linalg's differentiable functions
// as array ops (Note [Backends] in array_ops.hpp). Each op's forward calls the
// backend (Numeric: numpy.linalg, scipy.linalg) and its backward is written
// over the backend too, so that create_graph records it: a backward that
// needs another solve, inverse or decomposition asks the backend for it, and
// Recording records that op. Functions that are compositions of these and of
// other ops (norm, matrix_power, cho_solve) are written in Python
// (python/tapegrad/linalg.py, python/tapegrad/scipy/linalg.py).
//
// Formulas: Giles 2008, "Collected matrix derivative results for forward and
// reverse mode algorithmic differentiation" (inverse, solve, determinant);
// Murray 2016 (Cholesky); PyTorch's FunctionsManual.cpp (eigh, svd, qr, pinv,
// the singular determinant); Mathias 1996 (expm). Every matrix is real.
//
// Note [Packed decompositions]
// An array op has one output. eigh, svd and qr have two or three: the op's
// value packs them into one array (eigh: (..., n + 1, n), the eigenvalues in
// row 0 above the eigenvectors; svd and qr: each factor flattened and joined
// along the last axis), and the Python function slices the factors out with
// getitem. getitem's backward scatters each factor's gradient back into the
// packed shape, so the op's backward reads the factors' gradients out of one
// array: zero for a factor nobody used.
//
// Note [Triangles read]
// numpy's cholesky and eigh read one triangle of their input (the lower by
// default) and solve_triangular reads one: the gradient is the derivative of
// the function numpy computes, zero on the triangle it does not read. For a
// symmetric matrix built from other values (B @ B.T, (X + X.T) / 2) the chain
// rule gives what PyTorch gives; on a leaf, PyTorch and JAX return the
// symmetric gradient G, and tapegrad tril(G + G.T) - diag(G), as HIPS autograd
// does for eigh. Both are right for symmetric perturbations; tapegrad's is
// also what finite differences of numpy's function give.
//
// Note [Repeated values]
// The derivatives of eigenvectors and singular vectors divide by differences
// of eigenvalues (of squared singular values), and those of a non-square
// matrix's singular vectors by the singular values. Where two are equal (or
// one is 0) the vectors are any basis of a space and have no derivative; a
// gradient that reaches them there is a 0/0 at best (the gradient of
// V diag(h(w)) V^T is a divided difference of h), which no backward can
// evaluate from the vectors' gradient alone. So the backward raises
// LinAlgError there, naming the op (PyTorch returns NaN or inf). Where the
// gradient reaching those vectors is exactly 0 the term is 0, computed
// without dividing: a function of the eigenvalues or singular values alone
// (eigvalsh, norms) has its exact first derivative at repeated values. Its
// second derivative there is such a divided difference, and raises. Values
// close but not equal give large gradients, as in PyTorch.
#pragma once

#include <pybind11/pybind11.h>

#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <string>
#include <utility>

#include "composite.hpp"

namespace tapegrad {

namespace linalg {

namespace py = pybind11;

inline std::string text(const py::handle& o) { return py::str(o).cast<std::string>(); }

inline PyObject* linalg_error() {
    static PyObject* type = py::object(py::module_::import("numpy.linalg").attr("LinAlgError")).release().ptr();
    return type;
}

[[noreturn]] inline void fail(PyObject* type, const std::string& message) {
    PyErr_SetString(type, message.c_str());
    throw py::error_already_set();
}

// A matrix or a stack of them, (..., m, n); square (..., n, n) when asked.
// numpy raises LinAlgError for these; so do we, with the shape.
inline void check_matrix(const char* what, const py::tuple& s, bool square) {
    const size_t nd = s.size();
    if (nd < 2)
        fail(linalg_error(), std::string(what) + " must be a " + (square ? "square " : "") +
                                 "matrix or a stack of them, of shape (..., " + (square ? "n, n" : "m, n") +
                                 "); got " + (nd ? "a vector of shape " : "a scalar of shape ") + text(s));
    if (square && !s[nd - 1].equal(s[nd - 2]))
        fail(linalg_error(), std::string(what) + " must be square, of shape (..., n, n); got shape " + text(s));
}

inline long dim(const py::tuple& s, long i) { return s[static_cast<size_t>(i < 0 ? i + static_cast<long>(s.size()) : i)].cast<long>(); }

// The right-hand side of a solve: a vector (n,) or a stack of matrices
// (..., n, k), as numpy 2's solve reads it (and scipy's solve_triangular).
inline void check_rhs(const py::tuple& sa, const py::tuple& sb) {
    if (sb.empty())
        fail(linalg_error(), "b must be a vector of shape (n,) or a matrix (or stack) of shape (..., n, k); got a scalar");
    const long n = dim(sa, -1);
    const long rows = sb.size() == 1 ? dim(sb, 0) : dim(sb, -2);
    if (rows != n)
        fail(linalg_error(), "a of shape " + text(sa) + " and b of shape " + text(sb) + " do not match: b's " +
                                 (sb.size() == 1 ? "length" : "second-to-last axis") + " (" + std::to_string(rows) +
                                 ") must be a's size (" + std::to_string(n) +
                                 "); b is a vector only when it has one axis, else a stack of matrices (..., n, k)");
}

inline py::object slice(const py::object& a, const py::object& b) {
    PyObject* s = PySlice_New(a.ptr(), b.ptr(), nullptr);
    if (!s) throw py::error_already_set();
    return py::reinterpret_steal<py::object>(s);
}
inline py::object upto(long stop) { return slice(py::none(), py::int_(stop)); }
inline py::object from(long start) { return slice(py::int_(start), py::none()); }
inline py::object span(long start, long stop) { return slice(py::int_(start), py::int_(stop)); }
inline py::object all() { return slice(py::none(), py::none()); }
// (..., r, c): an index into the last two axes.
inline py::tuple last2(const py::object& r, const py::object& c) { return py::make_tuple(py::ellipsis(), r, c); }
inline py::tuple last1(const py::object& c) { return py::make_tuple(py::ellipsis(), c); }

// The shape s with its last `drop` axes replaced by `tail`.
inline py::tuple with_tail(const py::tuple& s, size_t drop, std::initializer_list<long> tail) {
    py::list out;
    for (size_t i = 0; i + drop < s.size(); ++i) out.append(s[i]);
    for (long t : tail) out.append(py::int_(t));
    return py::tuple(out);
}

// ---- pieces of backward formulas, over a backend B ----

template <class B> py::object mT(B& b, const py::object& x) { return b.swap_last(x); }
// (..., n) -> (..., n, 1) and (..., 1, n).
template <class B> py::object col(B& b, const py::object& v) { return b.expand_dims(v, b.ndim(v)); }
template <class B> py::object row(B& b, const py::object& v) { return b.expand_dims(v, b.ndim(v) - 1); }
// (...) -> (..., 1, 1): a number per matrix, to scale matrices.
template <class B> py::object per_matrix(B& b, const py::object& v) { return col(b, col(b, v)); }
// The matrices with v (..., n) on their diagonals.
template <class B> py::object diag_embed(B& b, const py::object& v) {
    return b.mul(row(b, v), b.eye(b.shape(v)[b.ndim(v) - 1].template cast<long>(), b.dtype(v)));
}
// 1 / x, and 0 where x is 0; written so that no division by zero is ever
// computed, to any order (Note [Repeated values]: where it is 0 the term it
// multiplies is 0 too, else the backward has raised).
template <class B> py::object reciprocal_or_zero(B& b, const py::object& x) {
    py::object zero = b.zero_mask(x);
    py::object safe = b.where(zero, b.number(1.0), x);
    return b.where(zero, b.number(0.0), b.div(b.number(1.0), safe));
}
// A triangle of the last two axes (lower: on and below diagonal k; upper: on
// and above it), as a product with a constant mask.
template <class B> py::object triangle(B& b, const py::object& x, bool lower, long k) {
    return b.mul(x, b.tri_mask(b.shape(x)[b.ndim(x) - 1].template cast<long>(), lower, k, b.dtype(x)));
}
// The gradient with respect to the entries a function reads when it reads
// one triangle of a symmetric matrix, from G, its gradient with respect to
// the whole matrix (Note [Triangles read]): tril(G + G^T) - diag(G).
template <class B> py::object read_triangle(B& b, const py::object& g, bool lower) {
    return b.add(triangle(b, g, lower, 0), triangle(b, mT(b, g), lower, lower ? -1 : 1));
}
// x with the last axis or the last two axes' parts indexed.
template <class B> py::object part(B& b, const py::object& x, const py::tuple& index) { return b.getitem(x, index, false); }

// A packed svd or qr value (Note [Packed decompositions]): the first factor
// (..., m, k1) then the second (..., k2, n), flattened along the last axis,
// with (svd) the k singular values between them.
template <class B>
py::object unpack(B& b, const py::object& packed, long start, long rows, long cols) {
    py::tuple s = b.shape(packed);
    return b.reshape(part(b, packed, last1(span(start, start + rows * cols))), with_tail(s, 1, {rows, cols}));
}

struct SvdParts {
    py::object U, S, Vh;
};
// The factors of a packed svd of an (m, n) matrix (k1 = m or k, k2 = n or k).
template <class B>
SvdParts svd_parts(B& b, const py::object& packed, long m, long n, bool full) {
    const long k = std::min(m, n), k1 = full ? m : k, k2 = full ? n : k;
    return {unpack(b, packed, 0, m, k1), part(b, packed, last1(span(m * k1, m * k1 + k))),
            unpack(b, packed, m * k1 + k, k2, n)};
}

// The reduced svd of x, recorded when the backend records.
template <class B>
SvdParts svd_of(B& b, const py::object& x) {
    py::tuple s = b.shape(x);
    return svd_parts(b, b.svd_packed(x, false), dim(s, -2), dim(s, -1), false);
}

}  // namespace linalg

struct Inv {
    static constexpr const char* name = "inv";
    static constexpr const char* function = "linalg.inv";
    static constexpr const char* numpy = "numpy.linalg.inv";
    static constexpr const char* method = nullptr;
    static constexpr const char* doc = "Inverse of a square matrix, or of each matrix in a stack.";
    static constexpr int arity = 1;
    static constexpr bool reads_out = true;  // params: ()
    template <class B> static py::object forward(B& b, const Values& x, const py::tuple&) {
        linalg::check_matrix("a", b.shape(x[0]), true);
        return b.inv(x[0]);
    }
    // d(A^-1) = -A^-1 dA A^-1, so gA = -A^-T g A^-T (Giles 2.2.3).
    template <class B>
    static void backward(B& b, const Values&, const py::object& out, const py::object& g,
                         const py::tuple&, const Needs&, Values& gx) {
        py::object t = linalg::mT(b, out);
        gx[0] = b.neg(b.matmul(b.matmul(t, g), t));
    }
    // Note [Tangent rules]: the differential above, as it stands.
    template <class B>
    static py::object tangent(B& b, const Values&, const py::object& out, const Values& t, const py::tuple&) {
        return b.neg(b.matmul(b.matmul(out, t[0]), out));
    }
};

struct Solve {
    static constexpr const char* name = "solve";
    static constexpr const char* function = "linalg.solve";
    static constexpr const char* numpy = "numpy.linalg.solve";
    static constexpr const char* method = nullptr;
    static constexpr const char* doc =
        "The solution x of a @ x = b; b is a vector (n,) or a stack of matrices (..., n, k), "
        "batch axes broadcast (numpy 2's rule).";
    static constexpr int arity = 2;
    static constexpr bool reads_out = true;  // params: ()
    template <class B> static py::object forward(B& b, const Values& x, const py::tuple&) {
        py::tuple sa = b.shape(x[0]);
        linalg::check_matrix("a", sa, true);
        linalg::check_rhs(sa, b.shape(x[1]));
        return b.solve(x[0], x[1]);
    }
    // gb = A^-T g and gA = -gb x^T (Giles 2.3.1); the sweep sums broadcast
    // batch axes back down to each input's shape.
    template <class B>
    static void backward(B& b, const Values& x, const py::object& out, const py::object& g,
                         const py::tuple&, const Needs& need, Values& gx) {
        using namespace linalg;
        const bool vec = b.ndim(x[1]) == 1;
        py::object gb = b.solve(mT(b, x[0]), vec ? col(b, g) : g);
        if (need[1]) gx[1] = vec ? b.squeeze_axis(gb, b.ndim(gb) - 1) : gb;
        if (need[0]) gx[0] = b.neg(b.matmul(gb, mT(b, vec ? col(b, out) : out)));
    }
    // dx = A^-1 (db - dA x), a vector b taken as a column so that batch axes broadcast.
    template <class B>
    static py::object tangent(B& b, const Values& x, const py::object& out, const Values& t, const py::tuple&) {
        using namespace linalg;
        const bool vec = b.ndim(x[1]) == 1;
        py::object rhs = t[1].is_none() ? py::object() : vec ? col(b, t[1]) : t[1];
        if (!t[0].is_none()) {
            py::object moved = b.matmul(t[0], vec ? col(b, out) : out);
            rhs = rhs ? b.sub(rhs, moved) : b.neg(moved);
        }
        py::object dx = b.solve(x[0], rhs);
        return vec ? b.squeeze_axis(dx, b.ndim(dx) - 1) : dx;
    }
};

struct Det {
    static constexpr const char* name = "det";
    static constexpr const char* function = "linalg.det";
    static constexpr const char* numpy = "numpy.linalg.det";
    static constexpr const char* method = nullptr;
    static constexpr const char* doc =
        "Determinant of a square matrix, or of each matrix in a stack; differentiable at "
        "singular matrices too.";
    static constexpr int arity = 1;
    static constexpr bool reads_out = true;  // params: ()
    template <class B> static py::object forward(B& b, const Values& x, const py::tuple&) {
        linalg::check_matrix("a", b.shape(x[0]), true);
        return b.det(x[0]);
    }
    // d det A = det A tr(A^-1 dA): gA = g det(A) A^-T where A is invertible.
    // Where a determinant is 0 the gradient is g adj(A)^T, and A = U S V^T
    // gives adj(A)^T = det(U) det(V) U diag(prod_{j != i} s_j) V^T (Higham,
    // "What is the adjugate of a matrix?", PyTorch's formula): exact at every
    // rank, zero below rank n - 1. A stack with any singular matrix takes
    // that formula for all of its matrices; so does create_graph with a
    // nearly singular one (|det| <= 1e-8 max|A|^n), whose second derivative
    // through A^-1 would lose the digits A^-1 loses.
    template <class B>
    static void backward(B& b, const Values& x, const py::object& out, const py::object& g,
                         const py::tuple&, const Needs&, Values& gx) {
        using namespace linalg;
        if (!b.nearly_singular(x[0], out)) {
            gx[0] = b.mul(per_matrix(b, b.mul(g, out)), mT(b, b.inverse(x[0])));
            return;
        }
        SvdParts f = svd_of(b, x[0]);
        // det(U) det(V) is +-1, constant where it is defined.
        py::object sign = b.mul(b.det(b.value(f.U)), b.det(b.value(f.Vh)));
        py::object d = b.mul(col(b, b.mul(g, sign)), b.prod_of_others(f.S, py::make_tuple(b.ndim(f.S) - 1)));
        gx[0] = b.matmul(b.mul(f.U, row(b, d)), f.Vh);
    }
};

struct Slogdet {
    static constexpr const char* name = "slogdet";
    static constexpr const char* function = "linalg.slogdet";
    static constexpr const char* numpy = "numpy.linalg.slogdet";
    static constexpr const char* method = nullptr;
    static constexpr const char* doc =
        "The sign and the log of the absolute value of the determinant, for one matrix or a "
        "stack; the sign is a constant.";
    static constexpr int arity = 1;
    // params: (); the value is packed (Note [Packed decompositions]): (..., 2),
    // the sign then log|det|.
    static constexpr bool reads_out = true;
    template <class B> static py::object forward(B& b, const Values& x, const py::tuple&) {
        linalg::check_matrix("a", b.shape(x[0]), true);
        return b.slogdet_packed(x[0]);
    }
    // d log|det A| = tr(A^-1 dA): gA = g A^-T. At a singular matrix log|det|
    // is -inf and its gradient infinite: an error, never inf or NaN. The
    // sign's gradient is 0.
    template <class B>
    static void backward(B& b, const Values& x, const py::object& out, const py::object& g,
                         const py::tuple&, const Needs&, Values& gx) {
        using namespace linalg;
        const py::tuple logabs = last1(py::int_(1));
        if (b.any_infinite(part(b, out, logabs)))
            fail(linalg_error(), "a matrix of shape " + text(b.shape(x[0])) +
                                     " is singular: log|det| is -inf there and its gradient is infinite. "
                                     "Use det, whose gradient is defined at singular matrices");
        gx[0] = b.mul(per_matrix(b, part(b, g, logabs)), mT(b, b.inverse(x[0])));
    }
};

struct Cholesky {
    static constexpr const char* name = "cholesky";
    static constexpr const char* function = "linalg.cholesky";
    static constexpr const char* numpy = "numpy.linalg.cholesky";
    static constexpr const char* method = nullptr;
    static constexpr const char* doc =
        "The Cholesky factor L (lower; U = L^T with upper=True) of a symmetric positive-definite "
        "matrix, or of each in a stack. Reads one triangle, as numpy.";
    static constexpr int arity = 1;
    static constexpr bool reads_out = true;  // params: (upper,)
    template <class B> static py::object forward(B& b, const Values& x, const py::tuple& p) {
        linalg::check_matrix("a", b.shape(x[0]), true);
        return b.cholesky(x[0], p[0].cast<bool>());
    }
    // Murray 2016, with L the lower factor: gA = L^-T Phi(L^T gL) L^-1, where
    // Phi takes the lower triangle and halves the diagonal, made symmetric
    // (PyTorch's form); then the triangle numpy reads (Note [Triangles read]).
    template <class B>
    static void backward(B& b, const Values&, const py::object& out, const py::object& g,
                         const py::tuple& p, const Needs&, Values& gx) {
        using namespace linalg;
        const bool upper = p[0].cast<bool>();
        py::object L = upper ? mT(b, out) : out, gL = upper ? mT(b, g) : g;
        py::object P = triangle(b, b.matmul(mT(b, L), gL), true, 0);
        py::object phi = b.mul(b.add(P, mT(b, triangle(b, P, true, -1))), b.number(0.5));
        py::object t = b.solve_triangular(L, phi, true, true, false);                     // L^-T phi
        py::object s = mT(b, b.solve_triangular(L, mT(b, t), true, true, false));        // t L^-1
        gx[0] = read_triangle(b, s, !upper);
    }
};

struct SolveTriangular {
    static constexpr const char* name = "solve_triangular";
    static constexpr const char* function = "scipy.linalg.solve_triangular";
    static constexpr const char* numpy = nullptr;  // scipy converts Tensors with np.asarray: no dispatch
    static constexpr const char* method = nullptr;
    static constexpr const char* doc =
        "The solution x of a @ x = b (a.T @ x = b with trans=1) for a triangular a, of which "
        "only the lower or upper triangle is read.";
    static constexpr int arity = 2;
    static constexpr bool reads_out = true;  // params: (trans, lower, unit_diagonal)
    template <class B> static py::object forward(B& b, const Values& x, const py::tuple& p) {
        py::tuple sa = b.shape(x[0]);
        linalg::check_matrix("a", sa, true);
        linalg::check_rhs(sa, b.shape(x[1]));
        return b.solve_triangular(x[0], x[1], p[0].cast<bool>(), p[1].cast<bool>(), p[2].cast<bool>());
    }
    // With op(a) = a or a^T: gb = op(a)^-T g; ga = -gb x^T (or -x gb^T for
    // a^T), on the triangle read (without the diagonal when it is taken as 1).
    template <class B>
    static void backward(B& b, const Values& x, const py::object& out, const py::object& g,
                         const py::tuple& p, const Needs& need, Values& gx) {
        using namespace linalg;
        const bool trans = p[0].cast<bool>(), lower = p[1].cast<bool>(), unit = p[2].cast<bool>();
        const bool vec = b.ndim(x[1]) == 1;
        py::object gb = b.solve_triangular(x[0], vec ? col(b, g) : g, !trans, lower, unit);
        if (need[1]) gx[1] = vec ? b.squeeze_axis(gb, b.ndim(gb) - 1) : gb;
        if (!need[0]) return;
        py::object xm = vec ? col(b, out) : out;
        py::object full = trans ? b.matmul(xm, mT(b, gb)) : b.matmul(gb, mT(b, xm));
        gx[0] = b.neg(triangle(b, full, lower, unit ? (lower ? -1 : 1) : 0));
    }
};

struct Eigh {
    static constexpr const char* name = "eigh";
    static constexpr const char* function = "linalg.eigh";
    static constexpr const char* numpy = "numpy.linalg.eigh";
    static constexpr const char* method = nullptr;
    static constexpr const char* doc =
        "Eigenvalues (ascending) and eigenvectors of a symmetric matrix, or of each in a stack. "
        "Reads one triangle, as numpy.";
    static constexpr int arity = 1;
    static constexpr bool reads_out = true;  // params: (lower,); the value is packed
    template <class B> static py::object forward(B& b, const Values& x, const py::tuple& p) {
        linalg::check_matrix("a", b.shape(x[0]), true);
        return b.eigh_packed(x[0], p[0].cast<bool>());
    }
    // For symmetric dA: dw_i = v_i^T dA v_i and dV = V (F o (V^T dA V)) with
    // F_ij = 1 / (w_j - w_i) off the diagonal, so the gradient is
    // G = V (diag(gw) + F o (V^T gV)) V^T (Giles 3.1), F being 0 at repeated
    // eigenvalues (Note [Repeated values]); then the triangle read.
    template <class B>
    static void backward(B& b, const Values& x, const py::object& out, const py::object& g,
                         const py::tuple& p, const Needs&, Values& gx) {
        using namespace linalg;
        const py::tuple w_index = last2(py::int_(0), all()), v_index = last2(from(1), all());
        py::object w = part(b, out, w_index), V = part(b, out, v_index);
        py::object gw = part(b, g, w_index), gV = part(b, g, v_index);
        py::object inner;
        if (b.all_zero(gV)) {
            inner = diag_embed(b, gw);
        } else {
            py::object gaps = b.sub(row(b, w), col(b, w)), vgv = b.matmul(mT(b, V), gV);
            if (b.couples(gaps, vgv))
                fail(linalg_error(), "the gradient through the eigenvectors is undefined here: a (of shape " +
                                         text(b.shape(x[0])) + ") has a repeated eigenvalue and the function "
                                         "depends on its eigenvectors, which are any basis of its eigenspace "
                                         "(Note [Repeated values]). Functions of the eigenvalues alone (eigvalsh) "
                                         "have a gradient there; or perturb a so that its eigenvalues differ");
            inner = b.add(b.mul(reciprocal_or_zero(b, gaps), vgv), diag_embed(b, gw));
        }
        gx[0] = read_triangle(b, b.matmul(b.matmul(V, inner), mT(b, V)), p[0].cast<bool>());
    }
};

struct Svd {
    static constexpr const char* name = "svd";
    static constexpr const char* function = "linalg.svd";
    static constexpr const char* numpy = "numpy.linalg.svd";
    static constexpr const char* method = nullptr;
    static constexpr const char* doc =
        "Singular value decomposition a = U @ diag(S) @ Vh of a matrix or of each in a stack.";
    static constexpr int arity = 1;
    static constexpr bool reads_out = true;  // params: (full_matrices,); the value is packed
    template <class B> static py::object forward(B& b, const Values& x, const py::tuple& p) {
        linalg::check_matrix("a", b.shape(x[0]), false);
        return b.svd_packed(x[0], p[0].cast<bool>());
    }
    // PyTorch's svd_backward (real case), with E_jk = s_k^2 - s_j^2 and
    // skew(X) = X - X^T:
    //   gA = U [(skew(U^T gU) S + S skew(V^T gV)) / E + diag(gS)] V^T
    //        + (I - U U^T) gU S^-1 V^T     (m > k)
    //        + U S^-1 gV^T (I - V V^T)     (n > k)
    // At repeated singular values, and zero ones of a non-square matrix, the
    // vectors' gradient is undefined (Note [Repeated values]). With full_matrices, the gradients of U's and Vh's extra vectors
    // are ignored (they are any basis of the complement), as PyTorch.
    template <class B>
    static void backward(B& b, const Values& x, const py::object& out, const py::object& g,
                         const py::tuple& p, const Needs&, Values& gx) {
        using namespace linalg;
        const bool full = p[0].cast<bool>();
        py::tuple s = b.shape(x[0]);
        const long m = dim(s, -2), n = dim(s, -1), k = std::min(m, n);
        SvdParts f = svd_parts(b, out, m, n, full), gf = svd_parts(b, g, m, n, full);
        py::object U = f.U, Vh = f.Vh, gU = gf.U, gVh = gf.Vh;
        if (full && m > k) U = part(b, U, last2(all(), upto(k))), gU = part(b, gU, last2(all(), upto(k)));
        if (full && n > k) Vh = part(b, Vh, last2(upto(k), all())), gVh = part(b, gVh, last2(upto(k), all()));
        const bool no_u = b.all_zero(gU), no_v = b.all_zero(gVh);
        if (no_u && no_v) {
            gx[0] = m >= n ? b.matmul(U, b.mul(col(b, gf.S), Vh)) : b.matmul(b.mul(U, row(b, gf.S)), Vh);
            return;
        }
        py::object S = f.S, S2 = b.mul(S, S);
        py::object gaps = b.sub(row(b, S2), col(b, S2));
        py::object ugu = no_u ? py::object() : b.matmul(mT(b, U), gU);
        py::object vgv = no_v ? py::object() : b.matmul(Vh, mT(b, gVh));
        // Note [Repeated values]: vectors of a repeated singular value, or
        // beyond the rank of a non-square matrix, are any basis.
        const bool repeated = (!no_u && b.couples(gaps, ugu)) || (!no_v && b.couples(gaps, vgv));
        const bool beyond = (m > k && !no_u && b.reaches_zero(S, gU, true)) ||
                            (n > k && !no_v && b.reaches_zero(S, gVh, false));
        if (repeated || beyond)
            fail(linalg_error(), "the gradient through the singular vectors is undefined here: a (of shape " +
                                     text(s) + ") has " +
                                     (repeated ? "a repeated singular value" : "a zero singular value") +
                                     " and the function depends on its singular vectors, which are any basis "
                                     "of a space (Note [Repeated values]). Functions of the singular values "
                                     "alone (compute_uv=False, norms) have a gradient there; or perturb a");
        py::object inner;
        if (!no_u) inner = b.mul(b.sub(ugu, mT(b, ugu)), row(b, S));
        if (!no_v) {
            py::object term = b.mul(col(b, S), b.sub(vgv, mT(b, vgv)));
            inner = inner ? b.add(inner, term) : term;
        }
        inner = b.add(b.mul(inner, reciprocal_or_zero(b, gaps)), diag_embed(b, gf.S));
        if (m > k && !no_u) {
            py::object gus = b.mul(gU, row(b, reciprocal_or_zero(b, S)));
            py::object left = b.add(b.matmul(U, inner), b.sub(gus, b.matmul(U, b.matmul(mT(b, U), gus))));
            gx[0] = b.matmul(left, Vh);
        } else if (n > k && !no_v) {
            py::object sgv = b.mul(col(b, reciprocal_or_zero(b, S)), gVh);
            py::object right = b.add(b.matmul(inner, Vh), b.sub(sgv, b.matmul(b.matmul(sgv, mT(b, Vh)), Vh)));
            gx[0] = b.matmul(U, right);
        } else {
            gx[0] = b.matmul(b.matmul(U, inner), Vh);
        }
    }
};

struct Qr {
    static constexpr const char* name = "qr";
    static constexpr const char* function = "linalg.qr";
    static constexpr const char* numpy = "numpy.linalg.qr";
    static constexpr const char* method = nullptr;
    static constexpr const char* doc =
        "QR decomposition a = Q @ R of a matrix or of each in a stack (modes 'reduced', "
        "'complete', 'r').";
    static constexpr int arity = 1;
    static constexpr bool reads_out = true;  // params: (complete,); the value is packed
    template <class B> static py::object forward(B& b, const Values& x, const py::tuple& p) {
        linalg::check_matrix("a", b.shape(x[0]), false);
        return b.qr_packed(x[0], p[0].cast<bool>());
    }
    // PyTorch's linalg_qr_backward (real case), with M = gR R^T - Q^T gQ:
    //   m >= n: gA = (gQ + Q copyltu(M)) R^-T, copyltu(M) = triu(M) + triu(M, 1)^T;
    //   m < n:  gA = [Q tril(M^T - M) R1^-T, 0] + Q gR, R1 = R[:, :m].
    // Both need R (R1) invertible: a of full rank. mode='complete' with
    // m > n has no gradient: Q's last m - n columns are any basis.
    template <class B>
    static void backward(B& b, const Values& x, const py::object& out, const py::object& g,
                         const py::tuple& p, const Needs&, Values& gx) {
        using namespace linalg;
        const bool complete = p[0].cast<bool>();
        py::tuple s = b.shape(x[0]);
        const long m = dim(s, -2), n = dim(s, -1), k = complete ? m : std::min(m, n);
        if (complete && m > n)
            fail(PyExc_ValueError, "mode='complete' on a matrix with more rows than columns (shape " + text(s) +
                                       ") has no gradient: Q's last m - n columns are any basis of the "
                                       "complement. Use mode='reduced'");
        py::object Q = unpack(b, out, 0, m, k), R = unpack(b, out, m * k, k, n);
        py::object gQ = unpack(b, g, 0, m, k), gR = unpack(b, g, m * k, k, n);
        py::object M = b.sub(b.matmul(gR, mT(b, R)), b.matmul(mT(b, Q), gQ));
        if (m >= n) {
            py::object c = b.add(triangle(b, M, false, 0), mT(b, triangle(b, M, false, 1)));
            py::object y = b.add(gQ, b.matmul(Q, c));
            gx[0] = mT(b, b.solve_triangular(R, mT(b, y), false, false, false));  // y R^-T
            return;
        }
        py::object z = b.matmul(Q, triangle(b, b.sub(mT(b, M), M), true, 0));
        py::object R1 = part(b, R, last2(all(), upto(m)));
        py::object x1 = mT(b, b.solve_triangular(R1, mT(b, z), false, false, false));  // z R1^-T
        py::object pad = b.zeros(with_tail(b.shape(x1), 1, {n - m}), b.dtype(x1));
        gx[0] = b.add(b.concatenate(Values{x1, pad}, py::int_(b.ndim(x1) - 1)), b.matmul(Q, gR));
    }
};

struct Pinv {
    static constexpr const char* name = "pinv";
    static constexpr const char* function = "linalg.pinv";
    static constexpr const char* numpy = "numpy.linalg.pinv";
    static constexpr const char* method = nullptr;
    static constexpr const char* doc =
        "Moore-Penrose pseudo-inverse of a matrix or of each in a stack; differentiable where "
        "the rank does not change.";
    static constexpr int arity = 1;
    static constexpr bool reads_out = true;  // params: (rcond,), a number or None
    template <class B> static py::object forward(B& b, const Values& x, const py::tuple& p) {
        linalg::check_matrix("a", b.shape(x[0]), false);
        return b.pinv(x[0], p[0]);
    }
    // Golub and Pereyra 1973: with P = A^+,
    //   gA = -P^T g P^T + (I - A P) g^T P P^T + P^T P g^T (I - P A),
    // valid where A's rank is locally constant (pinv jumps where it changes).
    template <class B>
    static void backward(B& b, const Values& x, const py::object& out, const py::object& g,
                         const py::tuple&, const Needs&, Values& gx) {
        using namespace linalg;
        const py::object& A = x[0];
        py::object Pt = mT(b, out), gt = mT(b, g);
        py::object first = b.neg(b.matmul(b.matmul(Pt, g), Pt));
        py::object second = b.matmul(b.sub(gt, b.matmul(A, b.matmul(out, gt))), b.matmul(out, Pt));
        py::object third = b.matmul(b.matmul(Pt, out), b.sub(gt, b.matmul(b.matmul(gt, out), A)));
        gx[0] = b.add(b.add(first, second), third);
    }
};

struct Expm {
    static constexpr const char* name = "expm";
    static constexpr const char* function = "scipy.linalg.expm";
    static constexpr const char* numpy = nullptr;  // scipy converts Tensors with np.asarray: no dispatch
    static constexpr const char* method = nullptr;
    static constexpr const char* doc = "The matrix exponential of a square matrix or of each in a stack.";
    static constexpr int arity = 1;  // params: ()
    template <class B> static py::object forward(B& b, const Values& x, const py::tuple&) {
        linalg::check_matrix("A", b.shape(x[0]), true);
        return b.expm(x[0]);
    }
    // Mathias 1996: expm([[A^T, G], [0, A^T]]) has L(A^T, G), the adjoint of
    // expm's Frechet derivative at A applied to G, in its top-right block.
    // L is linear in G, so G is scaled to A's magnitude first (which keeps
    // the block's norm, and so expm's squarings, those of A) and the result
    // scaled back.
    template <class B>
    static void backward(B& b, const Values& x, const py::object&, const py::object& g,
                         const py::tuple&, const Needs&, Values& gx) {
        using namespace linalg;
        py::tuple s = b.shape(x[0]);
        const long n = dim(s, -1);
        const double ga = b.max_abs(g), aa = b.max_abs(x[0]);
        const double scale = ga > 0 && aa > 0 && std::isfinite(ga) && std::isfinite(aa) ? aa / ga : 1.0;
        py::object at = mT(b, x[0]);
        py::object top = b.concatenate(Values{at, b.mul(g, b.number(scale))}, py::int_(s.size() - 1));
        py::object bottom = b.concatenate(Values{b.zeros(s, b.dtype(at)), at}, py::int_(s.size() - 1));
        py::object block = b.expm(b.concatenate(Values{top, bottom}, py::int_(s.size() - 2)));
        gx[0] = b.mul(part(b, block, last2(upto(n), from(n))), b.number(1.0 / scale));
    }
};

struct Sqrtm {
    static constexpr const char* name = "sqrtm";
    static constexpr const char* function = "scipy.linalg.sqrtm";
    static constexpr const char* numpy = nullptr;  // scipy converts Tensors with np.asarray: no dispatch
    static constexpr const char* method = nullptr;
    static constexpr const char* doc =
        "The principal square root of a square matrix or of each in a stack (real results only).";
    static constexpr int arity = 1;
    static constexpr bool reads_out = true;  // params: ()
    template <class B> static py::object forward(B& b, const Values& x, const py::tuple&) {
        linalg::check_matrix("A", b.shape(x[0]), true);
        return b.sqrtm(x[0]);
    }
    // X = sqrtm(A): X dX + dX X = dA, so gA solves X^T gA + gA X^T = g, a
    // Sylvester equation, solvable when no two eigenvalues of X sum to 0:
    // not at a singular A, where sqrtm has no derivative.
    template <class B>
    static void backward(B& b, const Values&, const py::object& out, const py::object& g,
                         const py::tuple&, const Needs&, Values& gx) {
        py::object t = linalg::mT(b, out);
        gx[0] = b.sylvester(t, t, g);
    }
};

struct SolveSylvester {
    static constexpr const char* name = "solve_sylvester";
    static constexpr const char* function = "scipy.linalg.solve_sylvester";
    static constexpr const char* numpy = nullptr;  // scipy converts Tensors with np.asarray: no dispatch
    static constexpr const char* method = nullptr;
    static constexpr const char* doc = "The solution x of a @ x + x @ b = q.";
    static constexpr int arity = 3;
    static constexpr bool reads_out = true;  // params: ()
    template <class B> static py::object forward(B& b, const Values& x, const py::tuple&) {
        py::tuple sa = b.shape(x[0]), sb = b.shape(x[1]), sq = b.shape(x[2]);
        linalg::check_matrix("a", sa, true);
        linalg::check_matrix("b", sb, true);
        linalg::check_matrix("q", sq, false);
        if (linalg::dim(sq, -2) != linalg::dim(sa, -1) || linalg::dim(sq, -1) != linalg::dim(sb, -1))
            linalg::fail(linalg::linalg_error(), "a of shape " + linalg::text(sa) + ", b of shape " +
                                                     linalg::text(sb) + " and q of shape " + linalg::text(sq) +
                                                     " do not match: q must be (..., m, n) for a (..., m, m) "
                                                     "and b (..., n, n)");
        return b.sylvester(x[0], x[1], x[2]);
    }
    // a dX + dX b = dq - da X - X db, so with W solving a^T W + W b^T = g:
    // gq = W, ga = -W X^T, gb = -X^T W.
    template <class B>
    static void backward(B& b, const Values& x, const py::object& out, const py::object& g,
                         const py::tuple&, const Needs& need, Values& gx) {
        using namespace linalg;
        py::object w = b.sylvester(mT(b, x[0]), mT(b, x[1]), g);
        if (need[0]) gx[0] = b.neg(b.matmul(w, mT(b, out)));
        if (need[1]) gx[1] = b.neg(b.matmul(mT(b, out), w));
        if (need[2]) gx[2] = w;
    }
};

#define TAPEGRAD_LINALG_OPS(X)                                                                    \
    X(INV, Inv) X(SOLVE, Solve) X(DET, Det) X(SLOGDET, Slogdet) X(CHOLESKY, Cholesky)              \
    X(SOLVE_TRIANGULAR, SolveTriangular) X(EIGH, Eigh) X(SVD, Svd) X(QR, Qr) X(PINV, Pinv)       \
    X(EXPM, Expm) X(SQRTM, Sqrtm) X(SOLVE_SYLVESTER, SolveSylvester)

}  // namespace tapegrad
