// The elementwise op table: every elementwise op is declared once, in its
// family's header (ops_basic.hpp, ops_ufuncs.hpp, ops_special.hpp), and listed here.
//
// Note [One table]
// Each op is a struct with its name on the tape, its arity, what its backward
// reads, its catalogue entry (Note [Catalogue] in catalogue.hpp: the numpy
// ufunc it answers and whose kernel computes its forward on arrays, its
// method, its one-line doc; `function` when tapegrad's function is not named
// as the row) and two templates:
//   forward(a[, b])                       -> out
//   backward(a[, b], out, g, ga[, gb])    -> the input gradients
// A binary op whose gradients cost apart (pow: the exponent's takes a log)
// also gives each as backward_a and backward_b (a, b, out, g) -> gradient,
// backward calling both, and what each reads (reads_a, reads_b); the sweeps
// then compute only the gradients an input wants (backward_wanted), and a
// row keeps only what those read (reads_wanted: x ** 2 keeps no output).
// The templates take the element type T, so one formula serves the scalar
// fast path (T = double), the fused array kernels (T = float or double, one
// loop over memory) and TapeValue, the recording type of create_graph (recording.hpp).
// Nothing else in csrc/ knows an op's derivative.
//
// So that a recording type can run the backwards too, they use only
// arithmetic, comparisons, `select` (never `?:`, whose condition must be a
// C++ bool) and unqualified math functions (found by overloading, never std::).
//
// Edge cases follow PyTorch: abs and relu have gradient 0 at 0; pow's
// exponent gradient is 0 where the base is 0 and the exponent is >= 0.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>

#include "op_helpers.hpp"
#include "ops_basic.hpp"
#include "ops_special.hpp"
#include "ops_ufuncs.hpp"

namespace tapegrad {

// X(CODE, Struct): the table. Adding an op is one struct above and one line
// here: in a COLD list unless ordinary programs are made of it (Note [Hot ops]).
#define TAPEGRAD_HOT_BINARY_OPS(X) \
    X(ADD, Add) X(SUB, Sub) X(MUL, Mul) X(DIV, Div) X(POW, Pow) X(MAXIMUM, Maximum) X(MINIMUM, Minimum)
#define TAPEGRAD_COLD_BINARY_OPS(X)                                                               \
    X(FMAX, Fmax) X(FMIN, Fmin) X(LOGADDEXP, Logaddexp) X(LOGADDEXP2, Logaddexp2)                  \
    X(ARCTAN2, Arctan2) X(HYPOT, Hypot) X(REMAINDER, Remainder) X(FMOD, Fmod) X(COPYSIGN, Copysign) \
    X(FLOAT_POWER, FloatPower) X(BETA, Beta) X(BETALN, Betaln) X(XLOGY, Xlogy) X(XLOG1PY, Xlog1py)
#define TAPEGRAD_HOT_UNARY_OPS(X)                                                          \
    X(NEG, Neg) X(ABS, Abs) X(EXP, Exp) X(LOG, Log) X(SQRT, Sqrt) X(SIN, Sin) X(COS, Cos) \
    X(TAN, Tan) X(TANH, Tanh) X(SIGMOID, Sigmoid) X(RELU, Relu) X(SQUARE, Square)
#define TAPEGRAD_COLD_UNARY_OPS(X)                                                                   \
    X(FABS, Fabs) X(EXP2, Exp2) X(EXPM1, Expm1) X(LOG2, Log2) X(LOG10, Log10) X(LOG1P, Log1p)          \
    X(CBRT, Cbrt) X(RECIPROCAL, Reciprocal) X(ARCSIN, Arcsin) X(ARCCOS, Arccos) X(ARCTAN, Arctan)      \
    X(SINH, Sinh) X(COSH, Cosh) X(ARCSINH, Arcsinh) X(ARCCOSH, Arccosh) X(ARCTANH, Arctanh)            \
    X(DEG2RAD, Deg2rad) X(RAD2DEG, Rad2deg) X(SINC, Sinc) X(ERF, Erf) X(ERFC, Erfc) X(ERFINV, Erfinv) \
    X(ERFCINV, Erfcinv) X(GAMMA, Gamma) X(GAMMALN, Gammaln) X(DIGAMMA, Digamma) X(RGAMMA, Rgamma)     \
    X(LOGIT, Logit) X(NDTR, Ndtr) X(LOG_NDTR, LogNdtr) X(NDTRI, Ndtri) X(I0, I0) X(I1, I1)
#define TAPEGRAD_BINARY_OPS(X) TAPEGRAD_HOT_BINARY_OPS(X) TAPEGRAD_COLD_BINARY_OPS(X)
#define TAPEGRAD_UNARY_OPS(X) TAPEGRAD_HOT_UNARY_OPS(X) TAPEGRAD_COLD_UNARY_OPS(X)
#define TAPEGRAD_HOT_OPS(X) TAPEGRAD_HOT_BINARY_OPS(X) TAPEGRAD_HOT_UNARY_OPS(X)
#define TAPEGRAD_COLD_OPS(X) TAPEGRAD_COLD_BINARY_OPS(X) TAPEGRAD_COLD_UNARY_OPS(X)
// Hot ops take the first codes, so the sweep's switch is one dense jump table.
#define TAPEGRAD_OPS(X) TAPEGRAD_HOT_OPS(X) TAPEGRAD_COLD_OPS(X)

// Record kinds that are not ops come first: a leaf (a value with no history),
// a user record with a Python backward, a tensor's new value after an update
// (its gradient passes to in0, Note [Versions] in tensor.hpp), and a stale
// tensor (one whose own record was cleared, re-entered as an input of a new op).
enum OpCode : uint8_t {
    OP_LEAF,
    OP_CUSTOM,
    OP_VERSION,
    OP_STALE,
#define TAPEGRAD_ENUM(code, cls) OP_##code,
    TAPEGRAD_OPS(TAPEGRAD_ENUM)
#undef TAPEGRAD_ENUM
    OP_COUNT
};
// The first code of a cold op (Note [Hot ops]).
#define TAPEGRAD_ONE(code, cls) +1
constexpr uint8_t OP_FIRST_COLD = OP_STALE + 1 + (0 TAPEGRAD_HOT_OPS(TAPEGRAD_ONE));
#undef TAPEGRAD_ONE

// The attribute of numpy that the first path of an op's `numpy` entry names
// when it is in numpy's own namespace ("numpy.exp" -> "exp", "numpy.rad2deg
// numpy.degrees" -> "rad2deg"), else nullptr ("scipy.special.erf",
// "numpy.linalg.inv", none). Where that attribute is a ufunc, its kernel
// computes the op's forward on arrays (arrays.cpp: numpy.sinc is a Python
// function, so sinc runs its own forward).
inline std::string numpy_ufunc_name(const char* path) {
    if (!path) return {};
    const std::string first(path, std::strcspn(path, " "));
    const std::string prefix = "numpy.";
    if (first.compare(0, prefix.size(), prefix) != 0) return {};
    const std::string attribute = first.substr(prefix.size());
    return attribute.find('.') == std::string::npos ? attribute : std::string();
}

template <class Op>
struct OpTag {
    using type = Op;
};

// Forced inline where GCC's budget for a file would not: the hot loops (the
// scalar sweep, an op's forward) are one switch with each op's formula in it.
#if defined(__GNUC__)
#define TAPEGRAD_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define TAPEGRAD_ALWAYS_INLINE inline
#endif

// One case of the visitors below: calls f with the op's tag.
#define TAPEGRAD_VISIT_CASE(code, cls) \
    case OP_##code:                    \
        f(OpTag<cls>{});               \
        return true;

// Calls f(OpTag<Op>{}) for the op with this code; returns false for a code
// that names no op (leaf, custom, stale or out of range).
template <class F>
TAPEGRAD_ALWAYS_INLINE bool visit_op(uint8_t code, F&& f) {
    switch (code) {
        TAPEGRAD_OPS(TAPEGRAD_VISIT_CASE)
        default:
            return false;
    }
}

// Note [Hot ops]
// The scalar sweep's loop inlines each op's backward through one switch.
// With every special function in that switch, GCC no longer keeps the
// loop's state in registers and every row pays for reloads. So the loop
// inlines only the ops ordinary programs are made of; the others leave the
// loop for one out-of-line call, small beside their own cost (erfinv,
// digamma...).
// As visit_op, for the hot ops only; false for any other code.
template <class F>
TAPEGRAD_ALWAYS_INLINE bool visit_hot_op(uint8_t code, F&& f) {
    switch (code) {
        TAPEGRAD_HOT_OPS(TAPEGRAD_VISIT_CASE)
        default:
            return false;
    }
}
#undef TAPEGRAD_VISIT_CASE

// Op's backward for the inputs whose gradient is wanted (want_a, want_b:
// bools, or std::bool_constant in the array kernels). An op that gives each
// input's formula apart (backward_a, backward_b) computes only those; the
// others compute both, and the caller drops the one it does not want. A
// gradient not computed is left as it was.
template <class Op, class = void>
struct HasPartials : std::false_type {};
template <class Op>
struct HasPartials<Op, std::void_t<decltype(&Op::template backward_b<double>)>> : std::true_type {};

template <class Op, class T, class WantA, class WantB>
TAPEGRAD_ALWAYS_INLINE void backward_wanted(const T& a, const T& b, const T& out, const T& g, T& ga,
                                            T& gb, WantA want_a, WantB want_b) {
    if constexpr (HasPartials<Op>::value) {
        if (want_a) ga = Op::backward_a(a, b, out, g);
        if (want_b) gb = Op::backward_b(a, b, out, g);
    } else {
        Op::backward(a, b, out, g, ga, gb);
    }
}

// What Op's backward reads for the gradients wanted.
template <class Op>
constexpr int reads_wanted(bool want_a, bool want_b) {
    if constexpr (HasPartials<Op>::value) return (want_a ? Op::reads_a : 0) | (want_b ? Op::reads_b : 0);
    else return Op::reads;
}

// The scalar backward of op `code`: the partial contributions for upstream
// gradient g (gb is left alone for a unary op).
inline void scalar_backward(uint8_t code, double a, double b, double out, double g, double& ga,
                            double& gb) {
    visit_op(code, [&](auto tag) {
        using Op = typename decltype(tag)::type;
        if constexpr (Op::arity == 2) Op::backward(a, b, out, g, ga, gb);
        else ga = Op::backward(a, out, g);
    });
}

inline const char* op_name(uint8_t code) {
    const char* name = "?";
    if (code == OP_LEAF) return "leaf";
    if (code == OP_CUSTOM) return "custom";
    if (code == OP_STALE) return "stale";
    if (code == OP_VERSION) return "update";
    visit_op(code, [&](auto tag) { name = decltype(tag)::type::name; });
    return name;
}

inline int op_reads(uint8_t code) {
    int reads = 0;
    visit_op(code, [&](auto tag) { reads = decltype(tag)::type::reads; });
    return reads;
}

// What op `code`'s backward reads when these inputs want a gradient.
inline int op_reads_wanted(uint8_t code, bool want_a, bool want_b) {
    int reads = 0;
    visit_op(code, [&](auto tag) { reads = reads_wanted<typename decltype(tag)::type>(want_a, want_b); });
    return reads;
}

template <class Op, class = void>
struct PassesOf : std::integral_constant<int, 0> {};
template <class Op>
struct PassesOf<Op, std::void_t<decltype(Op::passes)>> : std::integral_constant<int, Op::passes> {};

inline int op_passes(uint8_t code) {
    int passes = 0;
    visit_op(code, [&](auto tag) { passes = PassesOf<typename decltype(tag)::type>::value; });
    return passes;
}

// A table, not a switch over visit_op: compact() asks it for every row.
inline int op_arity(uint8_t code) {
    static constexpr uint8_t arities[OP_COUNT] = {
        0, 0, 0, 0,  // leaf, custom, version, stale
#define TAPEGRAD_ARITY(code, cls) cls::arity,
        TAPEGRAD_OPS(TAPEGRAD_ARITY)
#undef TAPEGRAD_ARITY
    };
    return code < OP_COUNT ? arities[code] : 0;
}

}  // namespace tapegrad
