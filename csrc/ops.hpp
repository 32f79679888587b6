// The elementwise op table: every elementwise op is declared once, here.
//
// Note [One table]
// Each op is a struct with its name on the tape, its arity, what its backward
// reads, its catalogue entry (Note [Catalogue] in catalogue.hpp: the numpy
// ufunc it answers and whose kernel computes its forward on arrays, its
// method, its one-line doc; `function` when tapegrad's function is not named
// as the row) and two templates:
//   forward(a[, b])                       -> out
//   backward(a[, b], out, g, ga[, gb])    -> the input gradients
// The templates take the element type T, so one formula serves the scalar
// fast path (T = double), the fused array kernels (T = float or double, one
// loop over memory) and Rec, the recording type of create_graph (recording.hpp).
// Nothing else in csrc/ knows an op's derivative.
//
// So that a recording type can run the backwards too, they use only
// arithmetic, comparisons, `select` (never `?:`, whose condition must be a
// C++ bool) and unqualified math functions (found by overloading, never std::).
//
// Edge cases follow PyTorch: abs and relu have gradient 0 at 0; pow's
// exponent gradient is 0 where the base is 0 and the exponent is >= 0.
#pragma once

#include <cmath>
#include <cstdint>
#include <type_traits>

namespace tapegrad {

// What an op's backward reads besides the upstream gradient (its `reads`):
// kernels prepare only those, and a record need keep no other value.
enum Reads { READS_A = 1, READS_B = 2, READS_OUT = 4 };

// The inputs whose gradient is the upstream gradient itself (an op's
// `passes`, 0 when it declares none): on arrays the sweep hands them the
// row's gradient buffer rather than run a kernel that copies it
// (Note [Passed gradients], csrc/sweep.cpp). The backward must agree.
enum Passes { PASSES_A = 1, PASSES_B = 2 };

using std::abs, std::cos, std::exp, std::log, std::pow, std::sin, std::sqrt, std::tan, std::tanh;

// x where c holds, else y. Both are computed, which keeps the array kernels
// straight-line; a recording type makes it an elementwise where.
template <class T>
T select(bool c, T x, T y) {
    return c ? x : y;
}

template <class T>
T sign_of(T a) {
    return T((a > T(0)) - (a < T(0)));
}

struct Add {
    static constexpr const char* name = "add";
    static constexpr const char* numpy = "numpy.add";
    static constexpr const char* method = "add";
    static constexpr const char* doc = "a + b, elementwise with numpy broadcasting.";
    static constexpr int arity = 2;
    static constexpr int reads = 0;
    static constexpr int passes = PASSES_A | PASSES_B;
    template <class T> static T forward(T a, T b) { return a + b; }
    template <class T> static void backward(T, T, T, T g, T& ga, T& gb) { ga = g; gb = g; }
};

struct Sub {
    static constexpr const char* name = "sub";
    static constexpr const char* function = "subtract";
    static constexpr const char* numpy = "numpy.subtract";
    static constexpr const char* method = "subtract";
    static constexpr const char* doc = "a - b, elementwise with numpy broadcasting.";
    static constexpr int arity = 2;
    static constexpr int reads = 0;
    static constexpr int passes = PASSES_A;
    template <class T> static T forward(T a, T b) { return a - b; }
    template <class T> static void backward(T, T, T, T g, T& ga, T& gb) { ga = g; gb = -g; }
};

struct Mul {
    static constexpr const char* name = "mul";
    static constexpr const char* function = "multiply";
    static constexpr const char* numpy = "numpy.multiply";
    static constexpr const char* method = "multiply";
    static constexpr const char* doc = "a * b, elementwise: the seed's model op.";
    static constexpr int arity = 2;
    static constexpr int reads = READS_A | READS_B;
    template <class T> static T forward(T a, T b) { return a * b; }
    template <class T> static void backward(T a, T b, T, T g, T& ga, T& gb) {
        ga = g * b;
        gb = g * a;
    }
};

struct Div {
    static constexpr const char* name = "div";
    static constexpr const char* function = "divide";
    static constexpr const char* numpy = "numpy.true_divide";
    static constexpr const char* method = "divide";
    static constexpr const char* doc = "a / b, elementwise (true division).";
    static constexpr int arity = 2;
    static constexpr int reads = READS_B | READS_OUT;
    template <class T> static T forward(T a, T b) { return a / b; }
    template <class T> static void backward(T, T b, T out, T g, T& ga, T& gb) {
        ga = g / b;
        gb = -g * out / b;
    }
};

struct Pow {
    static constexpr const char* name = "pow";
    static constexpr const char* function = "power";
    static constexpr const char* numpy = "numpy.power";
    static constexpr const char* method = "pow";
    static constexpr const char* doc = "a ** b, elementwise; either side may be a Tensor.";
    static constexpr int arity = 2;
    static constexpr int reads = READS_A | READS_B | READS_OUT;
    template <class T> static T forward(T a, T b) { return std::pow(a, b); }
    template <class T> static void backward(T a, T b, T out, T g, T& ga, T& gb) {
        ga = select(b == T(0), T(0), g * b * pow(a, b - T(1)));
        gb = select(a == T(0) && b >= T(0), T(0), g * out * log(a));
    }
};

// Ties give half the gradient to each side, as PyTorch does.
struct Maximum {
    static constexpr const char* name = "maximum";
    static constexpr const char* numpy = "numpy.maximum";
    static constexpr const char* method = "maximum";
    static constexpr const char* doc = "The elementwise maximum; ties give half the gradient to each side.";
    static constexpr int arity = 2;
    static constexpr int reads = READS_A | READS_B;
    // NaN in either operand propagates, as numpy's maximum does.
    template <class T> static T forward(T a, T b) { return (a < b || b != b) ? b : a; }
    template <class T> static void backward(T a, T b, T, T g, T& ga, T& gb) {
        const T share = select(a > b, T(1), select(a == b, T(0.5), T(0)));
        ga = g * share;
        gb = g * (T(1) - share);
    }
};

struct Minimum {
    static constexpr const char* name = "minimum";
    static constexpr const char* numpy = "numpy.minimum";
    static constexpr const char* method = "minimum";
    static constexpr const char* doc = "The elementwise minimum; ties give half the gradient to each side.";
    static constexpr int arity = 2;
    static constexpr int reads = READS_A | READS_B;
    template <class T> static T forward(T a, T b) { return (b < a || b != b) ? b : a; }
    template <class T> static void backward(T a, T b, T, T g, T& ga, T& gb) {
        const T share = select(a < b, T(1), select(a == b, T(0.5), T(0)));
        ga = g * share;
        gb = g * (T(1) - share);
    }
};

struct Neg {
    static constexpr const char* name = "negative";
    static constexpr const char* numpy = "numpy.negative";
    static constexpr const char* method = "negative";
    static constexpr const char* doc = "-x.";
    static constexpr int arity = 1;
    static constexpr int reads = 0;
    template <class T> static T forward(T a) { return -a; }
    template <class T> static T backward(T, T, T g) { return -g; }
};

struct Abs {
    static constexpr const char* name = "abs";
    static constexpr const char* numpy = "numpy.absolute";
    static constexpr const char* method = "abs";
    static constexpr const char* doc = "|x|, with gradient 0 at 0.";
    static constexpr int arity = 1;
    static constexpr int reads = READS_A;
    template <class T> static T forward(T a) { return std::abs(a); }
    template <class T> static T backward(T a, T, T g) { return g * sign_of(a); }
};

struct Exp {
    static constexpr const char* name = "exp";
    static constexpr const char* numpy = "numpy.exp";
    static constexpr const char* method = "exp";
    static constexpr const char* doc = "e**x.";
    static constexpr int arity = 1;
    static constexpr int reads = READS_OUT;
    template <class T> static T forward(T a) { return std::exp(a); }
    template <class T> static T backward(T, T out, T g) { return g * out; }
};

struct Log {
    static constexpr const char* name = "log";
    static constexpr const char* numpy = "numpy.log";
    static constexpr const char* method = "log";
    static constexpr const char* doc = "The natural logarithm.";
    static constexpr int arity = 1;
    static constexpr int reads = READS_A;
    template <class T> static T forward(T a) { return std::log(a); }
    template <class T> static T backward(T a, T, T g) { return g / a; }
};

struct Sqrt {
    static constexpr const char* name = "sqrt";
    static constexpr const char* numpy = "numpy.sqrt";
    static constexpr const char* method = "sqrt";
    static constexpr const char* doc = "The square root.";
    static constexpr int arity = 1;
    static constexpr int reads = READS_OUT;
    template <class T> static T forward(T a) { return std::sqrt(a); }
    template <class T> static T backward(T, T out, T g) { return g / (T(2) * out); }
};

struct Sin {
    static constexpr const char* name = "sin";
    static constexpr const char* numpy = "numpy.sin";
    static constexpr const char* method = "sin";
    static constexpr const char* doc = "Sine.";
    static constexpr int arity = 1;
    static constexpr int reads = READS_A;
    template <class T> static T forward(T a) { return std::sin(a); }
    template <class T> static T backward(T a, T, T g) { return g * cos(a); }
};

struct Cos {
    static constexpr const char* name = "cos";
    static constexpr const char* numpy = "numpy.cos";
    static constexpr const char* method = "cos";
    static constexpr const char* doc = "Cosine.";
    static constexpr int arity = 1;
    static constexpr int reads = READS_A;
    template <class T> static T forward(T a) { return std::cos(a); }
    template <class T> static T backward(T a, T, T g) { return -g * sin(a); }
};

struct Tan {
    static constexpr const char* name = "tan";
    static constexpr const char* numpy = "numpy.tan";
    static constexpr const char* method = "tan";
    static constexpr const char* doc = "Tangent.";
    static constexpr int arity = 1;
    static constexpr int reads = READS_OUT;
    template <class T> static T forward(T a) { return std::tan(a); }
    template <class T> static T backward(T, T out, T g) { return g * (T(1) + out * out); }
};

struct Tanh {
    static constexpr const char* name = "tanh";
    static constexpr const char* numpy = "numpy.tanh";
    static constexpr const char* method = "tanh";
    static constexpr const char* doc = "Hyperbolic tangent.";
    static constexpr int arity = 1;
    static constexpr int reads = READS_OUT;
    template <class T> static T forward(T a) { return std::tanh(a); }
    template <class T> static T backward(T, T out, T g) { return g * (T(1) - out * out); }
};

struct Sigmoid {
    static constexpr const char* name = "sigmoid";
    static constexpr const char* numpy = nullptr;
    static constexpr const char* method = "sigmoid";
    static constexpr const char* doc = "The logistic function 1 / (1 + e**-x), computed without overflow.";
    static constexpr int arity = 1;
    static constexpr int reads = READS_OUT;
    // Written so that neither branch overflows: exp only ever sees a value <= 0.
    template <class T> static T forward(T a) {
        if (a >= T(0)) return T(1) / (T(1) + std::exp(-a));
        T e = std::exp(a);
        return e / (T(1) + e);
    }
    template <class T> static T backward(T, T out, T g) { return g * out * (T(1) - out); }
};

struct Relu {
    static constexpr const char* name = "relu";
    static constexpr const char* numpy = nullptr;
    static constexpr const char* method = "relu";
    static constexpr const char* doc = "max(x, 0), with gradient 0 at 0.";
    static constexpr int arity = 1;
    static constexpr int reads = READS_A;
    template <class T> static T forward(T a) { return a < T(0) ? T(0) : a; }
    template <class T> static T backward(T a, T, T g) { return select(a > T(0), g, T(0)); }
};

// X(CODE, Struct): the table. Adding an op is one struct above and one line here.
#define TAPEGRAD_BINARY_OPS(X) \
    X(ADD, Add) X(SUB, Sub) X(MUL, Mul) X(DIV, Div) X(POW, Pow) X(MAXIMUM, Maximum) X(MINIMUM, Minimum)
#define TAPEGRAD_UNARY_OPS(X)                                                           \
    X(NEG, Neg) X(ABS, Abs) X(EXP, Exp) X(LOG, Log) X(SQRT, Sqrt) X(SIN, Sin) X(COS, Cos) \
    X(TAN, Tan) X(TANH, Tanh) X(SIGMOID, Sigmoid) X(RELU, Relu)
#define TAPEGRAD_OPS(X) TAPEGRAD_BINARY_OPS(X) TAPEGRAD_UNARY_OPS(X)

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

// The attribute of numpy that an op's `numpy` entry names when it is one of
// numpy's own ufuncs ("numpy.exp" -> "exp"), else nullptr ("scipy.special.erf",
// "numpy.linalg.inv", none): only those have a kernel tapegrad calls directly.
constexpr const char* numpy_ufunc_name(const char* path) {
    if (!path) return nullptr;
    const char* prefix = "numpy.";
    for (; *prefix; ++prefix, ++path)
        if (*path != *prefix) return nullptr;
    for (const char* c = path; *c; ++c)
        if (*c == '.' || *c == ' ') return nullptr;
    return path;
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

// Calls f(OpTag<Op>{}) for the op with this code; returns false for a code
// that names no op (leaf, custom, stale or out of range).
template <class F>
TAPEGRAD_ALWAYS_INLINE bool visit_op(uint8_t code, F&& f) {
    switch (code) {
#define TAPEGRAD_CASE(code, cls) \
    case OP_##code:              \
        f(OpTag<cls>{});         \
        return true;
        TAPEGRAD_OPS(TAPEGRAD_CASE)
#undef TAPEGRAD_CASE
        default:
            return false;
    }
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

template <class Op, class = void>
struct PassesOf : std::integral_constant<int, 0> {};
template <class Op>
struct PassesOf<Op, std::void_t<decltype(Op::passes)>> : std::integral_constant<int, Op::passes> {};

inline int op_passes(uint8_t code) {
    int passes = 0;
    visit_op(code, [&](auto tag) { passes = PassesOf<typename decltype(tag)::type>::value; });
    return passes;
}

inline int op_arity(uint8_t code) {
    int arity = 0;
    visit_op(code, [&](auto tag) { arity = decltype(tag)::type::arity; });
    return arity;
}

}  // namespace tapegrad
