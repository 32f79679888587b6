// The array-op table: ops with parameters (axis, shape, index, spec) or any
// number of inputs. Each is declared once: its forward and its backward.
//
// Note [Backends]
// Forwards and backwards are templates over a backend `B` whose values are
// Python objects (py::object). Numeric (numeric.hpp) computes with numpy;
// Recording (recording.hpp), for create_graph, runs the very same backward
// formulas on Tensors, so that they record. Pieces that several backwards
// share are written once over B in composite.hpp. A backward sets gx[k] for
// each input k with need[k] (left as None: no gradient), and may skip the
// others: a matmul by a constant computes one product, not two. Gradients may
// have a broadcast shape: the sweep sums them down to each input's shape in
// one place (sum_to_like).
//
// As elementwise ops declare what their backward reads (Note [Saved values]),
// an array op whose backward reads its output says `reads_out = true` (and
// one whose parameters may hold arrays its backward reads says `array_params =
// true`, Note [Immutable values] in arrays.hpp). The tape keeps only the
// layout of every other op's output, so that a product
// nobody reads is a temporary the next op may write into (Note
// [Temporaries]): in tanh(h @ w + b) the sum and the tanh reuse the product's
// array. Their backward is handed None for `out`: one that reads it without
// declaring so fails loudly rather than read the layout's zeros.
//
// Parameters come as a tuple normalised by the Python wrapper (axes as tuples
// of non-negative ints, or None); numpy validates the rest and its errors are
// reported with the op's name.
//
// Note [Tangent rules]
// A compiled tape's jvp (Note [Tangent sweep] in tangents.hpp) needs each
// row's J t, the tangent of its output from its inputs' tangents t. An array
// op gives it in one of three ways, beside its backward:
//   - `linear = true`: the op is linear in its inputs taken together (sum,
//     reshape, getitem, concatenate, where, cumsum): J t is the forward on the
//     tangents (zeros for an input that has none);
//   - `multilinear = true`: linear in each input alone (matmul, einsum,
//     convolve): J t is the sum over inputs k of the forward with x_k
//     replaced by t_k;
//   - `tangent(b, x, out, t, p)`: a formula, where t[k] is None for an input
//     with no tangent (a constant, or a row no input reaches).
// An op with none of these (the decompositions, expm, cumprod) gets J t from
// its backward, which is J^T g: one backward per output element e_j gives row
// j of J (tangents.cpp). That is exact, and cheap for the small outputs these
// ops have; the op table stays the one place a derivative is written.
#pragma once

#include <pybind11/pybind11.h>

#include <cstdint>
#include <type_traits>
#include <vector>

#include "composite.hpp"
#include "linalg.hpp"
#include "ops.hpp"
#include "scan_ops.hpp"

namespace tapegrad {

struct Sum {
    static constexpr const char* name = "sum";  // params: (axis, keepdims)
    static constexpr const char* numpy = "numpy.sum";
    static constexpr const char* method = "sum";
    static constexpr const char* doc = "Sum over axis (an int, a tuple, or None for every axis), as numpy.sum.";
    static constexpr int arity = 1;
    static constexpr bool linear = true;  // Note [Tangent rules]
    template <class B> static py::object forward(B& b, const Values& x, const py::tuple& p) {
        return b.sum(x[0], p[0], p[1]);
    }
    template <class B>
    static void backward(B& b, const Values& x, const py::object&, const py::object& g,
                         const py::tuple& p, const Needs&, Values& gx) {
        gx[0] = unreduce(b, g, x[0], p[0], p[1]);
    }
};

// max and min: ties share the gradient evenly.
template <bool IS_MAX>
struct Extreme {
    static constexpr const char* name = IS_MAX ? "max" : "min";  // params: (axis, keepdims)
    static constexpr const char* numpy = IS_MAX ? "numpy.max" : "numpy.min";  // amax, amin: reductions.py
    static constexpr const char* method = IS_MAX ? "max" : "min";
    static constexpr const char* doc = IS_MAX ? "Maximum over axis; tied elements share the gradient evenly."
                                              : "Minimum over axis; tied elements share the gradient evenly.";
    static constexpr int arity = 1;
    static constexpr bool reads_out = true;  // its backward reads its output
    template <class B> static py::object forward(B& b, const Values& x, const py::tuple& p) {
        return IS_MAX ? b.max(x[0], p[0], p[1]) : b.min(x[0], p[0], p[1]);
    }
    template <class B>
    static void backward(B& b, const Values& x, const py::object& out, const py::object& g,
                         const py::tuple& p, const Needs&, Values& gx) {
        py::object mask = b.equal_mask(x[0], unreduce(b, out, x[0], p[0], p[1]));
        py::object count = b.sum(mask, p[0], py::bool_(true));
        gx[0] = b.div(b.mul(mask, unreduce(b, g, x[0], p[0], p[1])), count);
    }
    template <class B>
    static py::object tangent(B& b, const Values& x, const py::object& out, const Values& t,
                              const py::tuple& p) {
        py::object mask = b.equal_mask(x[0], unreduce(b, out, x[0], p[0], p[1]));
        return b.div(b.sum(b.mul(mask, t[0]), p[0], p[1]), b.sum(mask, p[0], p[1]));
    }
};
using Max = Extreme<true>;
using Min = Extreme<false>;

struct Prod {
    static constexpr const char* name = "prod";  // params: (axis, keepdims)
    static constexpr const char* numpy = "numpy.prod";
    static constexpr const char* method = "prod";
    static constexpr const char* doc = "Product over axis; its gradient is exact where elements are zero.";
    static constexpr int arity = 1;
    template <class B> static py::object forward(B& b, const Values& x, const py::tuple& p) {
        return b.prod(x[0], p[0], p[1]);
    }
    // The product of the other elements, computed without dividing (exact at zeros).
    template <class B>
    static void backward(B& b, const Values& x, const py::object&, const py::object& g,
                         const py::tuple& p, const Needs&, Values& gx) {
        gx[0] = b.mul(unreduce(b, g, x[0], p[0], p[1]), b.prod_of_others(x[0], p[0]));
    }
    template <class B>
    static py::object tangent(B& b, const Values& x, const py::object&, const Values& t,
                              const py::tuple& p) {
        return b.sum(b.mul(b.prod_of_others(x[0], p[0]), t[0]), p[0], p[1]);
    }
};

struct Var {
    static constexpr const char* name = "var";  // params: (axis, keepdims, ddof)
    static constexpr const char* numpy = "numpy.var";
    static constexpr const char* method = "var";
    static constexpr const char* doc = "Variance over axis with ddof (0 by default, as numpy).";
    static constexpr int arity = 1;
    template <class B> static py::object forward(B& b, const Values& x, const py::tuple& p) {
        return b.var(x[0], p[0], p[1], p[2]);
    }
    template <class B>
    static void backward(B& b, const Values& x, const py::object&, const py::object& g,
                         const py::tuple& p, const Needs&, Values& gx) {
        py::object centred = b.sub(x[0], mean_kept(b, x[0], p[0]));
        py::object scale = b.number(2.0 / (b.count(x[0], p[0]) - p[2].cast<double>()));
        gx[0] = b.mul(unreduce(b, g, x[0], p[0], p[1]), b.mul(centred, scale));
    }
    template <class B>
    static py::object tangent(B& b, const Values& x, const py::object&, const Values& t,
                              const py::tuple& p) {
        py::object centred = b.sub(x[0], mean_kept(b, x[0], p[0]));
        py::object scale = b.number(2.0 / (b.count(x[0], p[0]) - p[2].cast<double>()));
        return b.mul(b.sum(b.mul(centred, t[0]), p[0], p[1]), scale);
    }
};

// std = sqrt(var). Where std is 0 (one element with ddof=0, or equal
// elements), sqrt's derivative is infinite and var's is 0: PyTorch defines the
// gradient there as 0, and so do we, to every order (the division reads 1 in
// place of a zero std, so no 0 * inf is ever formed). Where std is NaN (ddof >=
// n) the gradient is NaN, as PyTorch's.
struct Std {
    static constexpr const char* name = "std";  // params: (axis, keepdims, ddof)
    static constexpr const char* numpy = "numpy.std";
    static constexpr const char* method = "std";
    static constexpr const char* doc =
        "Standard deviation over axis with ddof; its gradient is 0 where it is 0.";
    static constexpr int arity = 1;
    static constexpr bool reads_out = true;  // its backward reads its output
    template <class B> static py::object forward(B& b, const Values& x, const py::tuple& p) {
        return b.std(x[0], p[0], p[1], p[2]);
    }
    template <class B>
    static void backward(B& b, const Values& x, const py::object& out, const py::object& g,
                         const py::tuple& p, const Needs&, Values& gx) {
        py::object zero = b.is_zero(out);
        py::object safe = b.where(zero, b.number(1.0), out);
        py::object g_var = b.where(zero, b.number(0.0), b.div(g, safe));  // 2 g d(std)/d(var)
        py::object centred = b.sub(x[0], mean_kept(b, x[0], p[0]));
        // n - ddof, as PyTorch (numpy's value divides by max(n - ddof, 0)).
        py::object scale = b.number(1.0 / (b.count(x[0], p[0]) - p[2].cast<double>()));
        gx[0] = b.mul(unreduce(b, g_var, x[0], p[0], p[1]), b.mul(centred, scale));
    }
    template <class B>
    static py::object tangent(B& b, const Values& x, const py::object& out, const Values& t,
                              const py::tuple& p) {
        py::object zero = b.is_zero(out);
        py::object safe = b.where(zero, b.number(1.0), out);
        py::object centred = b.sub(x[0], mean_kept(b, x[0], p[0]));
        py::object scale = b.number(1.0 / (b.count(x[0], p[0]) - p[2].cast<double>()));
        py::object dvar = b.mul(b.sum(b.mul(centred, t[0]), p[0], p[1]), scale);  // d(var) / 2
        return b.where(zero, b.number(0.0), b.div(dvar, safe));
    }
};

struct LogSumExp {
    static constexpr const char* name = "logsumexp";  // params: (axis, keepdims)
    static constexpr const char* numpy = nullptr;
    static constexpr const char* method = nullptr;
    static constexpr const char* doc = "log(sum(exp(x))) over axis, computed without overflow.";
    static constexpr int arity = 1;
    static constexpr bool reads_out = true;  // its backward reads its output
    template <class B> static py::object forward(B& b, const Values& x, const py::tuple& p) {
        return b.logsumexp(x[0], p[0], p[1]);
    }
    template <class B>
    static void backward(B& b, const Values& x, const py::object& out, const py::object& g,
                         const py::tuple& p, const Needs&, Values& gx) {
        py::object soft = b.exp(b.sub(x[0], unreduce(b, out, x[0], p[0], p[1])));
        gx[0] = b.mul(unreduce(b, g, x[0], p[0], p[1]), soft);
    }
    template <class B>
    static py::object tangent(B& b, const Values& x, const py::object& out, const Values& t,
                              const py::tuple& p) {
        py::object soft = b.exp(b.sub(x[0], unreduce(b, out, x[0], p[0], p[1])));
        return b.sum(b.mul(soft, t[0]), p[0], p[1]);
    }
};

struct Softmax {
    static constexpr const char* name = "softmax";  // params: (axis,)
    static constexpr const char* numpy = nullptr;
    static constexpr const char* method = nullptr;
    static constexpr const char* doc = "exp(x) / sum(exp(x)) along axis, computed without overflow.";
    static constexpr int arity = 1;
    static constexpr bool reads_out = true;  // its backward reads its output
    template <class B> static py::object forward(B& b, const Values& x, const py::tuple& p) {
        return b.softmax(x[0], p[0]);
    }
    template <class B>
    static void backward(B& b, const Values&, const py::object& out, const py::object& g,
                         const py::tuple& p, const Needs&, Values& gx) {
        py::object dot = b.sum(b.mul(g, out), p[0], py::bool_(true));
        gx[0] = b.mul(out, b.sub(g, dot));
    }
    template <class B>
    static py::object tangent(B& b, const Values&, const py::object& out, const Values& t,
                              const py::tuple& p) {
        return b.mul(out, b.sub(t[0], b.sum(b.mul(out, t[0]), p[0], py::bool_(true))));
    }
};

struct LogSoftmax {
    static constexpr const char* name = "log_softmax";  // params: (axis,)
    static constexpr const char* numpy = nullptr;
    static constexpr const char* method = nullptr;
    static constexpr const char* doc = "x - logsumexp(x) along axis.";
    static constexpr int arity = 1;
    static constexpr bool reads_out = true;  // its backward reads its output
    template <class B> static py::object forward(B& b, const Values& x, const py::tuple& p) {
        return b.sub(x[0], b.logsumexp(x[0], p[0], py::bool_(true)));
    }
    template <class B>
    static void backward(B& b, const Values&, const py::object& out, const py::object& g,
                         const py::tuple& p, const Needs&, Values& gx) {
        gx[0] = b.sub(g, b.mul(b.exp(out), b.sum(g, p[0], py::bool_(true))));
    }
    template <class B>
    static py::object tangent(B& b, const Values&, const py::object& out, const Values& t,
                              const py::tuple& p) {
        return b.sub(t[0], b.sum(b.mul(b.exp(out), t[0]), p[0], py::bool_(true)));
    }
};

// numpy's matmul: 1-D operands are promoted to a row (a) or a column (b)
// and the added axis removed from the result; batch axes broadcast.
struct MatMul {
    static constexpr const char* name = "matmul";  // params: ()
    static constexpr const char* numpy = "numpy.matmul";
    static constexpr const char* method = nullptr;
    static constexpr const char* doc = "a @ b with numpy's rules (1-D, 2-D and broadcast batches).";
    static constexpr int arity = 2;
    static constexpr bool multilinear = true;  // Note [Tangent rules]
    template <class B> static py::object forward(B& b, const Values& x, const py::tuple&) {
        check_shapes(b.shape(x[0]), b.shape(x[1]));
        return b.matmul(x[0], x[1]);
    }
    // numpy's message names a gufunc signature; ours names the axes.
    static void check_shapes(const py::tuple& sa, const py::tuple& sb) {
        const bool scalar = sa.empty() || sb.empty();
        if (!scalar && sa[sa.size() - 1].equal(sb[sb.size() == 1 ? 0 : sb.size() - 2])) return;
        auto text = [](const py::handle& o) { return py::str(o).cast<std::string>(); };
        const std::string shapes = text(sa) + " and " + text(sb);
        std::string error;
        if (scalar) {
            error = "operands must have at least one dimension, got shapes " + shapes +
                    "; use * to multiply by a scalar";
        } else {
            error = "shapes " + shapes + " do not align: the last axis of the first (" +
                    text(sa[sa.size() - 1]) + ") must equal the " +
                    (sb.size() == 1 ? "only axis" : "second-to-last axis") + " of the second (" +
                    text(sb[sb.size() == 1 ? 0 : sb.size() - 2]) + ")";
        }
        PyErr_SetString(PyExc_ValueError, error.c_str());
        throw py::error_already_set();
    }
    template <class B>
    static void backward(B& b, const Values& x, const py::object&, const py::object& g,
                         const py::tuple&, const Needs& need, Values& gx) {
        const bool a_vec = b.ndim(x[0]) == 1, b_vec = b.ndim(x[1]) == 1;
        py::object a2 = a_vec ? b.expand_dims(x[0], 0) : x[0];
        py::object b2 = b_vec ? b.expand_dims(x[1], 1) : x[1];
        py::object g2 = g;
        if (a_vec) g2 = b.expand_dims(g2, b.ndim(g2) - (b_vec ? 0 : 1));
        if (b_vec) g2 = b.expand_dims(g2, b.ndim(g2));
        if (need[0]) {
            py::object ga = b.matmul(g2, b.swap_last(b2));
            gx[0] = a_vec ? b.squeeze_axis(ga, b.ndim(ga) - 2) : ga;
        }
        if (need[1]) {
            py::object gb = b.matmul(b.swap_last(a2), g2);
            gx[1] = b_vec ? b.squeeze_axis(gb, b.ndim(gb) - 1) : gb;
        }
    }
};

struct Einsum {
    static constexpr const char* name = "einsum";  // params: (input specs tuple, output spec), explicit
    static constexpr const char* numpy = "numpy.einsum";
    static constexpr const char* method = nullptr;
    static constexpr const char* doc =
        "numpy.einsum: sums of products over the axes a spec names, contracted through BLAS.";
    static constexpr int arity = -1;
    static constexpr bool multilinear = true;  // Note [Tangent rules]
    // Numeric contracts through BLAS with a cached plan (Note [Contractions],
    // contract.hpp), which also checks the specs against the shapes.
    template <class B> static py::object forward(B& b, const Values& x, const py::tuple& p) {
        if (py::len(p) != 2 || !py::isinstance<py::tuple>(p[0]) || !py::isinstance<py::str>(p[1])) {
            PyErr_SetString(PyExc_TypeError, "params are (a tuple of input specs, the output spec), "
                                             "explicit: (('ij', 'jk'), 'ik')");
            throw py::error_already_set();
        }
        return b.einsum(p[0], p[1], x);
    }
    // Input k's gradient: the einsum of g with the other inputs onto k's
    // subscripts (broadcast over letters only k has, placed on the diagonal
    // for letters k repeats): einsum_grad in composite.hpp.
    template <class B>
    static void backward(B& b, const Values& x, const py::object&, const py::object& g,
                         const py::tuple& p, const Needs& need, Values& gx) {
        py::tuple specs = p[0];
        for (size_t k = 0; k < x.size(); ++k)
            if (need[k]) gx[k] = einsum_grad(b, specs, p[1], x, g, k);
    }
};

// The discrete convolution of two arrays: numpy's convolve (1-D, when the
// method parameter is None) or scipy.signal.convolve (N-D, with its method:
// 'auto', 'direct' or 'fft'). The op's modes are 'full' and 'valid'; 'same'
// is the middle of 'full' (python/tapegrad/products.py). The backward is
// convolutions again, of g with the other operand flipped along every axis,
// so it differentiates to any order:
//   'full':  ga = valid(g, flip(v)),   gv = valid(g, flip(a));
//   'valid', a at least as long as v along every axis:
//            ga = full(g, flip(v)),    gv = valid(flip(a), g),
// and the mirror image when v is the longer (numpy and scipy swap the
// operands then: convolution commutes). A 'valid' convolution where neither
// is the longer along every axis is refused by scipy in the forward.
struct Convolve {
    static constexpr const char* name = "convolve";  // params: (mode, method)
    static constexpr const char* numpy = "numpy.convolve";
    static constexpr const char* method = nullptr;
    static constexpr const char* doc = "numpy.convolve: the discrete convolution of two 1-D sequences.";
    static constexpr int arity = 2;
    static constexpr bool multilinear = true;  // Note [Tangent rules]
    template <class B> static py::object forward(B& b, const Values& x, const py::tuple& p) {
        is_full(p);  // checks the parameters
        return b.convolve(x[0], x[1], p[0], p[1]);
    }
    static bool is_full(const py::tuple& p) {
        const bool ok = py::len(p) == 2 && py::isinstance<py::str>(p[0]) &&
                        (p[1].is_none() || py::isinstance<py::str>(p[1]));
        const std::string mode = ok ? p[0].cast<std::string>() : "";
        if (mode != "full" && mode != "valid") {
            PyErr_SetString(PyExc_ValueError, "params are (mode, method): mode 'full' or 'valid', "
                                              "method None (numpy's convolve) or scipy's ('auto', "
                                              "'direct', 'fft')");
            throw py::error_already_set();
        }
        return mode == "full";
    }
    template <class B> static py::object flip(B& b, const py::object& x) {
        const size_t nd = b.ndim(x);
        py::tuple index(nd);
        for (size_t i = 0; i < nd; ++i) index[i] = py::slice(py::none(), py::none(), py::int_(-1));
        return b.getitem(x, index, false);
    }
    template <class B>
    static void backward(B& b, const Values& x, const py::object&, const py::object& g,
                         const py::tuple& p, const Needs& need, Values& gx) {
        const py::str full("full"), valid("valid");
        if (is_full(p)) {
            if (need[0]) gx[0] = b.convolve(g, flip(b, x[1]), valid, p[1]);
            if (need[1]) gx[1] = b.convolve(g, flip(b, x[0]), valid, p[1]);
            return;
        }
        const py::tuple sa = b.shape(x[0]), sv = b.shape(x[1]);
        bool a_longer = true;
        for (size_t i = 0; i < py::len(sa); ++i) a_longer = a_longer && sa[i].cast<long>() >= sv[i].cast<long>();
        const size_t big = a_longer ? 0 : 1, small = 1 - big;
        if (need[big]) gx[big] = b.convolve(g, flip(b, x[small]), full, p[1]);
        if (need[small]) gx[small] = b.convolve(flip(b, x[big]), g, valid, p[1]);
    }
};

struct Reshape {
    static constexpr const char* name = "reshape";  // params: (shape,)
    static constexpr const char* numpy = "numpy.reshape";
    static constexpr const char* method = "reshape";
    static constexpr const char* doc = "The same values in a new shape (one axis may be -1).";
    static constexpr int arity = 1;
    static constexpr bool linear = true;  // Note [Tangent rules]
    template <class B> static py::object forward(B& b, const Values& x, const py::tuple& p) {
        return b.reshape(x[0], p[0]);
    }
    template <class B>
    static void backward(B& b, const Values& x, const py::object&, const py::object& g,
                         const py::tuple&, const Needs&, Values& gx) {
        gx[0] = b.reshape(g, b.shape(x[0]));
    }
};

struct Transpose {
    static constexpr const char* name = "transpose";  // params: (axes,) a full permutation
    static constexpr const char* numpy = "numpy.transpose";
    static constexpr const char* method = "transpose";
    static constexpr const char* doc = "Permute the axes (reverse them by default).";
    static constexpr int arity = 1;
    static constexpr bool linear = true;  // Note [Tangent rules]
    template <class B> static py::object forward(B& b, const Values& x, const py::tuple& p) {
        return b.transpose(x[0], p[0]);
    }
    template <class B>
    static void backward(B& b, const Values&, const py::object&, const py::object& g,
                         const py::tuple& p, const Needs&, Values& gx) {
        gx[0] = b.transpose(g, b.inverse_permutation(p[0]));
    }
};

struct BroadcastTo {
    static constexpr const char* name = "broadcast_to";  // params: (shape,)
    static constexpr const char* numpy = "numpy.broadcast_to";
    static constexpr const char* method = nullptr;
    static constexpr const char* doc = "Broadcast to a shape as numpy does; the gradient is summed back.";
    static constexpr int arity = 1;
    static constexpr bool linear = true;  // Note [Tangent rules]
    template <class B> static py::object forward(B& b, const Values& x, const py::tuple& p) {
        return b.broadcast_to(x[0], p[0]);
    }
    template <class B>
    static void backward(B&, const Values&, const py::object&, const py::object& g,
                         const py::tuple&, const Needs&, Values& gx) {
        gx[0] = g;  // summed back to the input's shape by the sweep
    }
};

// A cast between float32 and float64 (the Python wrapper refuses other
// dtypes). The sweeps use it too: a gradient has its input's dtype
// (as in PyTorch), and create_graph casts with this op so that the cast records.
struct AsType {
    static constexpr const char* name = "astype";  // params: (dtype,) a numpy dtype
    static constexpr const char* numpy = nullptr;
    static constexpr const char* method = "astype";
    static constexpr const char* doc = "The values in float32 or float64 (an integer or bool dtype gives a plain array).";
    static constexpr int arity = 1;
    static constexpr bool linear = true;  // Note [Tangent rules]
    template <class B> static py::object forward(B& b, const Values& x, const py::tuple& p) {
        return b.astype(x[0], p[0]);
    }
    template <class B>
    static void backward(B& b, const Values& x, const py::object&, const py::object& g,
                         const py::tuple&, const Needs&, Values& gx) {
        gx[0] = b.astype(g, b.dtype(x[0]));
    }
};

struct GetItem {
    static constexpr const char* name = "getitem";  // params: (index, advanced)
    static constexpr const char* function = nullptr;  // reached through an operator, not a function
    static constexpr const char* numpy = nullptr;
    static constexpr const char* method = nullptr;
    static constexpr const char* doc = "x[index] with ints, slices, ..., None, boolean masks and integer arrays.";
    static constexpr int arity = 1;
    static constexpr bool linear = true;  // Note [Tangent rules]
    static constexpr bool array_params = true;  // arrays its backward reads: kept as copies
    template <class B> static py::object forward(B& b, const Values& x, const py::tuple& p) {
        return b.getitem(x[0], p[0], p[1].cast<bool>());
    }
    // Scattered back with accumulation, so repeated indices add up.
    template <class B>
    static void backward(B& b, const Values& x, const py::object&, const py::object& g,
                         const py::tuple& p, const Needs&, Values& gx) {
        gx[0] = b.scatter_add(b.shape(x[0]), p[0], p[1].cast<bool>(), g);
    }
};

// getitem's backward as an op of its own, so that create_graph can record it
// (and differentiate it: its backward is getitem again).
struct ScatterAdd {
    static constexpr const char* name = "scatter_add";  // params: (shape, index, advanced)
    static constexpr const char* function = nullptr;  // reached through an operator, not a function
    static constexpr const char* numpy = nullptr;
    static constexpr const char* method = nullptr;
    static constexpr const char* doc = "Scatters into zeros of a shape, adding at repeated indices (getitem's backward).";
    static constexpr int arity = 1;
    static constexpr bool linear = true;  // Note [Tangent rules]
    static constexpr bool array_params = true;  // arrays its backward reads: kept as copies
    template <class B> static py::object forward(B& b, const Values& x, const py::tuple& p) {
        return b.scatter_add(p[0], p[1], p[2].cast<bool>(), x[0]);
    }
    template <class B>
    static void backward(B& b, const Values&, const py::object&, const py::object& g,
                         const py::tuple& p, const Needs&, Values& gx) {
        gx[0] = b.getitem(g, p[1], p[2].cast<bool>());
    }
};

struct Concatenate {
    static constexpr const char* name = "concatenate";  // params: (axis,)
    static constexpr const char* numpy = "numpy.concatenate";
    static constexpr const char* method = nullptr;
    static constexpr const char* doc = "Join along an existing axis (axis=None flattens first), as numpy.";
    static constexpr int arity = -1;
    static constexpr bool linear = true;  // Note [Tangent rules]
    template <class B> static py::object forward(B& b, const Values& x, const py::tuple& p) {
        return b.concatenate(x, p[0]);
    }
    template <class B>
    static void backward(B& b, const Values& x, const py::object&, const py::object& g,
                         const py::tuple& p, const Needs&, Values& gx) {
        gx = unconcatenate(b, g, x, p[0]);
    }
};

struct Where {
    static constexpr const char* name = "where";  // params: (condition,) a constant
    static constexpr const char* numpy = "numpy.where";
    static constexpr const char* method = nullptr;
    static constexpr const char* doc = "Elements of x where a constant condition holds, else of y.";
    static constexpr int arity = 2;
    static constexpr bool linear = true;  // Note [Tangent rules]
    static constexpr bool array_params = true;  // arrays its backward reads: kept as copies
    template <class B> static py::object forward(B& b, const Values& x, const py::tuple& p) {
        return b.where(p[0], x[0], x[1]);
    }
    template <class B>
    static void backward(B& b, const Values&, const py::object&, const py::object& g,
                         const py::tuple& p, const Needs& need, Values& gx) {
        py::object zero = b.number(0.0);
        if (need[0]) gx[0] = b.where(p[0], g, zero);
        if (need[1]) gx[1] = b.where(p[0], zero, g);
    }
};

// Its inputs are x and each bound given (params: (has_lo, has_hi)); a bound
// may be a Tensor, and gets a gradient, as in PyTorch's clamp.
struct Clip {
    static constexpr const char* name = "clip";
    static constexpr const char* numpy = "numpy.clip";
    static constexpr const char* method = "clip";
    static constexpr const char* doc =
        "Limit values to [a_min, a_max]; the gradient goes to x where a_min <= x <= a_max, else to the bound.";
    static constexpr int arity = 3;  // x, a_min, a_max; a bound may be None
    template <class B> static py::object forward(B& b, const Values& x, const py::tuple& p) {
        return b.clip(x[0], lo(x, p), hi(x, p));
    }
    // PyTorch's ties (clamp_backward_min_max): x's where lo <= x <= hi,
    // boundaries included; lo's where x < lo < hi; hi's where x > hi or hi <
    // lo (then the value is hi everywhere). Where lo == hi > x nothing gets
    // a gradient (each side's one-sided derivative is 0), nor where x is NaN.
    template <class B>
    static void backward(B& b, const Values& x, const py::object&, const py::object& g,
                         const py::tuple& p, const Needs& need, Values& gx) {
        const py::object l = lo(x, p), h = hi(x, p), zero = b.number(0.0);
        gx[0] = b.where(b.within(x[0], l, h), g, zero);
        const size_t k_lo = 1, k_hi = p[0].cast<bool>() ? 2 : 1;
        if (!l.is_none() && need[k_lo]) gx[k_lo] = b.where(b.clip_from_bound(x[0], l, h, false), g, zero);
        if (!h.is_none() && need[k_hi]) gx[k_hi] = b.where(b.clip_from_bound(x[0], l, h, true), g, zero);
    }
    template <class B>
    static py::object tangent(B& b, const Values& x, const py::object&, const Values& t, const py::tuple& p) {
        const py::object l = lo(x, p), h = hi(x, p), zero = b.number(0.0);
        py::object sum = t[0].is_none() ? zero : b.where(b.within(x[0], l, h), t[0], zero);
        const size_t k_lo = 1, k_hi = p[0].cast<bool>() ? 2 : 1;
        if (!l.is_none() && !t[k_lo].is_none())
            sum = b.add(sum, b.where(b.clip_from_bound(x[0], l, h, false), t[k_lo], zero));
        if (!h.is_none() && !t[k_hi].is_none())
            sum = b.add(sum, b.where(b.clip_from_bound(x[0], l, h, true), t[k_hi], zero));
        return sum;
    }
    static py::object lo(const Values& x, const py::tuple& p) {
        return p[0].cast<bool>() ? x[1] : py::object(py::none());
    }
    static py::object hi(const Values& x, const py::tuple& p) {
        if (!p[1].cast<bool>()) return py::none();
        return x[p[0].cast<bool>() ? 2 : 1];
    }
};


// polygamma(n, x) = d^n/dx^n digamma(x) for an integer n >= 0 (a constant):
// computed in C++ (special.hpp); its derivative is polygamma(n + 1, x), this
// op again, so every order records.
struct Polygamma {
    static constexpr const char* name = "polygamma";  // params: (n,) an int >= 0
    static constexpr const char* numpy = nullptr;  // scipy's calls np.asarray: tapegrad.scipy.special's
    static constexpr const char* method = nullptr;
    static constexpr const char* doc = "polygamma(n, x), the n-th derivative of digamma, for an integer n >= 0.";
    static constexpr int arity = 1;
    template <class B> static py::object forward(B& b, const Values& x, const py::tuple& p) {
        return b.polygamma(x[0], p[0].cast<int>());
    }
    template <class B>
    static void backward(B& b, const Values& x, const py::object&, const py::object& g,
                         const py::tuple& p, const Needs&, Values& gx) {
        gx[0] = b.mul(g, b.polygamma(x[0], p[0].cast<int>() + 1));
    }
    template <class B>
    static py::object tangent(B& b, const Values& x, const py::object&, const Values& t, const py::tuple& p) {
        return b.mul(t[0], b.polygamma(x[0], p[0].cast<int>() + 1));
    }
};

// scipy.special.ive(v, z) = iv(v, z) exp(-|z|), differentiated in z (the
// order v is a constant): d/dz = (ive(v-1, z) + ive(v+1, z)) / 2 - sign(z)
// ive(v, z) (DLMF 10.29.1), which has no division, so it is finite at z = 0.
// The values come from scipy.special, imported when the op first runs.
struct Ive {
    static constexpr const char* name = "ive";  // params: (v,) a number or an array
    static constexpr const char* numpy = "scipy.special.ive";
    static constexpr const char* method = nullptr;
    static constexpr const char* doc = "The exponentially scaled modified Bessel function iv(v, z) * exp(-|z|), differentiable in z.";
    static constexpr int arity = 1;
    static constexpr bool reads_out = true;
    static constexpr bool array_params = true;
    template <class B> static py::object forward(B& b, const Values& x, const py::tuple& p) {
        return b.ive(p[0], x[0]);
    }
    template <class B>
    static void backward(B& b, const Values& x, const py::object& out, const py::object& g,
                         const py::tuple& p, const Needs&, Values& gx) {
        gx[0] = b.mul(g, slope(b, x, out, p));
    }
    template <class B>
    static py::object tangent(B& b, const Values& x, const py::object& out, const Values& t, const py::tuple& p) {
        return b.mul(t[0], slope(b, x, out, p));
    }
    template <class B>
    static py::object slope(B& b, const Values& x, const py::object& out, const py::tuple& p) {
        py::object v = p[0];
        py::object one = py::float_(1.0);
        py::object below = b.ive(py::reinterpret_steal<py::object>(PyNumber_Subtract(v.ptr(), one.ptr())), x[0]);
        py::object above = b.ive(py::reinterpret_steal<py::object>(PyNumber_Add(v.ptr(), one.ptr())), x[0]);
        return b.sub(b.mul(b.add(below, above), b.number(0.5)), b.mul(b.sign(x[0]), out));
    }
};

#define TAPEGRAD_ARRAY_OPS(X)                                                                   \
    X(SUM, Sum) X(MAX, Max) X(MIN, Min) X(PROD, Prod) X(VAR, Var) X(STD, Std)                      \
    X(LOGSUMEXP, LogSumExp) X(SOFTMAX, Softmax) X(LOG_SOFTMAX, LogSoftmax) X(MATMUL, MatMul)       \
    X(EINSUM, Einsum) X(RESHAPE, Reshape) X(TRANSPOSE, Transpose) X(BROADCAST_TO, BroadcastTo)     \
    X(ASTYPE, AsType) X(GETITEM, GetItem) X(SCATTER_ADD, ScatterAdd) X(CONCATENATE, Concatenate)  \
    X(WHERE, Where) X(CLIP, Clip) X(CONVOLVE, Convolve) X(POLYGAMMA, Polygamma) X(IVE, Ive) \
    TAPEGRAD_LINALG_OPS(X)  \
    TAPEGRAD_SCAN_OPS(X)

enum ArrayOpCode : uint8_t {
    OP_FIRST_ARRAY = OP_COUNT,
#define TAPEGRAD_ARRAY_ENUM(code, cls) OP_##code,
    TAPEGRAD_ARRAY_OPS(TAPEGRAD_ARRAY_ENUM)
#undef TAPEGRAD_ARRAY_ENUM
    OP_ARRAY_END
};
static_assert(OP_ARRAY_END < 255, "op codes are one byte");

inline bool is_array_op(uint8_t code) { return code > OP_FIRST_ARRAY && code < OP_ARRAY_END; }

// Calls f(OpTag<Op>{}) for the array op with this code; false if there is none.
template <class F>
bool visit_array_op(uint8_t code, F&& f) {
    switch (code) {
#define TAPEGRAD_ARRAY_CASE(code, cls) \
    case OP_##code:                    \
        f(OpTag<cls>{});               \
        return true;
        TAPEGRAD_ARRAY_OPS(TAPEGRAD_ARRAY_CASE)
#undef TAPEGRAD_ARRAY_CASE
        default:
            return false;
    }
}

// Whether op Op's backward reads its output: those that do say so.
template <class Op, class = void>
struct ReadsOut : std::false_type {};
template <class Op>
struct ReadsOut<Op, std::void_t<decltype(Op::reads_out)>> : std::bool_constant<Op::reads_out> {};

inline bool array_op_reads_out(uint8_t code) {
    bool reads = false;
    visit_array_op(code, [&](auto tag) { reads = ReadsOut<typename decltype(tag)::type>::value; });
    return reads;
}

// Whether op Op's parameters may hold arrays its backward reads (index arrays,
// masks, bounds): those the tape keeps as copies (Note [Immutable values]).
template <class Op, class = void>
struct ArrayParams : std::false_type {};
template <class Op>
struct ArrayParams<Op, std::void_t<decltype(Op::array_params)>> : std::bool_constant<Op::array_params> {};

inline bool array_op_array_params(uint8_t code) {
    bool arrays = false;
    visit_array_op(code, [&](auto tag) { arrays = ArrayParams<typename decltype(tag)::type>::value; });
    return arrays;
}

// The name of any row's op: elementwise, array, or a kind of row.
inline const char* row_op_name(uint8_t code) {
    const char* name = nullptr;
    visit_array_op(code, [&](auto tag) { name = decltype(tag)::type::name; });
    return name ? name : op_name(code);
}

}  // namespace tapegrad
