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
// A binary op whose gradients cost apart (pow: the exponent's takes a log)
// also gives each as backward_a and backward_b (a, b, out, g) -> gradient,
// backward calling both, and what each reads (reads_a, reads_b); the sweeps
// then compute only the gradients an input wants (backward_wanted), and a
// row keeps only what those read (reads_wanted: x ** 2 keeps no output).
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
#include <cstring>
#include <string>
#include <type_traits>

#include "special.hpp"

namespace tapegrad {

// What an op's backward reads besides the upstream gradient (its `reads`):
// kernels prepare only those, and a record need keep no other value.
enum Reads { READS_A = 1, READS_B = 2, READS_OUT = 4 };

// The inputs whose gradient is the upstream gradient itself (an op's
// `passes`, 0 when it declares none): on arrays the sweep hands them the
// row's gradient buffer rather than run a kernel that copies it
// (Note [Passed gradients], csrc/sweep.cpp). The backward must agree.
enum Passes { PASSES_A = 1, PASSES_B = 2 };

using std::abs, std::cos, std::cosh, std::exp, std::exp2, std::floor, std::log, std::log1p, std::pow,
    std::sin, std::sinh, std::sqrt, std::tan, std::tanh, std::trunc;

constexpr double PI = 3.14159265358979323846;
constexpr double LN2 = 0.69314718055994530942;
constexpr double LN10 = 2.30258509299404568402;

// The special functions backwards use, on the element types of the kernels
// (computed in double; Rec has its own, recording.hpp).
inline double digamma(double x) { return special::digamma(x); }
inline float digamma(float x) { return static_cast<float>(special::digamma(x)); }
inline double polygamma(int n, double x) { return special::polygamma(n, x); }
inline float polygamma(int n, float x) { return static_cast<float>(special::polygamma(n, x)); }
inline double i0(double x) { return special::i0(x); }
inline float i0(float x) { return static_cast<float>(special::i0(x)); }
inline double i1(double x) { return special::i1(x); }
inline float i1(float x) { return static_cast<float>(special::i1(x)); }
inline double gamma(double x) { return special::gamma(x); }
inline float gamma(float x) { return static_cast<float>(special::gamma(x)); }

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

// pow(a, e), by a multiplication where e is 1 or 2: pow's derivative for
// x ** 2 and x ** 3, without a call to pow (a libm call per element). A loop
// with one e throughout predicts the test every time.
template <class T>
T power(T a, T e) {
    if (e == T(1)) return a;
    if (e == T(2)) return a * a;
    return pow(a, e);
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
    static constexpr int reads_a = READS_A | READS_B;  // backward_a's: x ** 2 keeps no output
    static constexpr int reads_b = READS_A | READS_B | READS_OUT;
    static constexpr int reads = reads_a | reads_b;
    template <class T> static T forward(T a, T b) { return std::pow(a, b); }
    // Each input's formula apart (Note [One table]): the exponent's takes a
    // log, which x ** 2 must not pay for.
    template <class T> static T backward_a(T a, T b, T, T g) {
        return select(b == T(0), T(0), g * b * power(a, b - T(1)));
    }
    template <class T> static T backward_b(T a, T b, T out, T g) {
        return select(a == T(0) && b >= T(0), T(0), g * out * log(a));
    }
    template <class T> static void backward(T a, T b, T out, T g, T& ga, T& gb) {
        ga = backward_a(a, b, out, g);
        gb = backward_b(a, b, out, g);
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
    static constexpr const char* numpy = "numpy.absolute numpy.abs";
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
    static constexpr const char* numpy = "scipy.special.expit";
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


// ---- numpy's other differentiable float ufuncs ----

struct Fabs {
    static constexpr const char* name = "fabs";
    static constexpr const char* numpy = "numpy.fabs";
    static constexpr const char* method = nullptr;
    static constexpr const char* doc = "|x| as numpy.fabs (floats only), with gradient 0 at 0.";
    static constexpr int arity = 1;
    static constexpr int reads = READS_A;
    template <class T> static T forward(T a) { return std::fabs(a); }
    template <class T> static T backward(T a, T, T g) { return g * sign_of(a); }
};

struct Exp2 {
    static constexpr const char* name = "exp2";
    static constexpr const char* numpy = "numpy.exp2";
    static constexpr const char* method = "exp2";
    static constexpr const char* doc = "2**x.";
    static constexpr int arity = 1;
    static constexpr int reads = READS_OUT;
    template <class T> static T forward(T a) { return std::exp2(a); }
    template <class T> static T backward(T, T out, T g) { return g * out * T(LN2); }
};

struct Expm1 {
    static constexpr const char* name = "expm1";
    static constexpr const char* numpy = "numpy.expm1";
    static constexpr const char* method = "expm1";
    static constexpr const char* doc = "e**x - 1, accurate for small x.";
    static constexpr int arity = 1;
    static constexpr int reads = READS_OUT;
    template <class T> static T forward(T a) { return std::expm1(a); }
    template <class T> static T backward(T, T out, T g) { return g * (out + T(1)); }
};

struct Log2 {
    static constexpr const char* name = "log2";
    static constexpr const char* numpy = "numpy.log2";
    static constexpr const char* method = "log2";
    static constexpr const char* doc = "The base-2 logarithm.";
    static constexpr int arity = 1;
    static constexpr int reads = READS_A;
    template <class T> static T forward(T a) { return std::log2(a); }
    template <class T> static T backward(T a, T, T g) { return g / (a * T(LN2)); }
};

struct Log10 {
    static constexpr const char* name = "log10";
    static constexpr const char* numpy = "numpy.log10";
    static constexpr const char* method = "log10";
    static constexpr const char* doc = "The base-10 logarithm.";
    static constexpr int arity = 1;
    static constexpr int reads = READS_A;
    template <class T> static T forward(T a) { return std::log10(a); }
    template <class T> static T backward(T a, T, T g) { return g / (a * T(LN10)); }
};

struct Log1p {
    static constexpr const char* name = "log1p";
    static constexpr const char* numpy = "numpy.log1p";
    static constexpr const char* method = "log1p";
    static constexpr const char* doc = "log(1 + x), accurate for small x.";
    static constexpr int arity = 1;
    static constexpr int reads = READS_A;
    template <class T> static T forward(T a) { return std::log1p(a); }
    template <class T> static T backward(T a, T, T g) { return g / (a + T(1)); }
};

// Its gradient is infinite at 0, as sqrt's is.
struct Cbrt {
    static constexpr const char* name = "cbrt";
    static constexpr const char* numpy = "numpy.cbrt";
    static constexpr const char* method = nullptr;
    static constexpr const char* doc = "The cube root (real, also of negative x); its gradient is infinite at 0.";
    static constexpr int arity = 1;
    static constexpr int reads = READS_OUT;
    template <class T> static T forward(T a) { return std::cbrt(a); }
    template <class T> static T backward(T, T out, T g) { return g / (T(3) * out * out); }
};

struct Square {
    static constexpr const char* name = "square";
    static constexpr const char* numpy = "numpy.square";
    static constexpr const char* method = "square";
    static constexpr const char* doc = "x * x.";
    static constexpr int arity = 1;
    static constexpr int reads = READS_A;
    template <class T> static T forward(T a) { return a * a; }
    template <class T> static T backward(T a, T, T g) { return g * (a + a); }
};

struct Reciprocal {
    static constexpr const char* name = "reciprocal";
    static constexpr const char* numpy = "numpy.reciprocal";
    static constexpr const char* method = "reciprocal";
    static constexpr const char* doc = "1 / x.";
    static constexpr int arity = 1;
    static constexpr int reads = READS_OUT;
    template <class T> static T forward(T a) { return T(1) / a; }
    template <class T> static T backward(T, T out, T g) { return -g * out * out; }
};

// The inverse trigonometric and hyperbolic functions: (1 - a)(1 + a) rather
// than 1 - a*a keeps their gradients accurate near |a| = 1.
struct Arcsin {
    static constexpr const char* name = "arcsin";
    static constexpr const char* numpy = "numpy.arcsin";
    static constexpr const char* method = "arcsin";
    static constexpr const char* doc = "The inverse sine; its gradient is infinite at -1 and 1.";
    static constexpr int arity = 1;
    static constexpr int reads = READS_A;
    template <class T> static T forward(T a) { return std::asin(a); }
    template <class T> static T backward(T a, T, T g) { return g / sqrt((T(1) - a) * (T(1) + a)); }
};

struct Arccos {
    static constexpr const char* name = "arccos";
    static constexpr const char* numpy = "numpy.arccos";
    static constexpr const char* method = "arccos";
    static constexpr const char* doc = "The inverse cosine; its gradient is infinite at -1 and 1.";
    static constexpr int arity = 1;
    static constexpr int reads = READS_A;
    template <class T> static T forward(T a) { return std::acos(a); }
    template <class T> static T backward(T a, T, T g) { return -g / sqrt((T(1) - a) * (T(1) + a)); }
};

struct Arctan {
    static constexpr const char* name = "arctan";
    static constexpr const char* numpy = "numpy.arctan";
    static constexpr const char* method = "arctan";
    static constexpr const char* doc = "The inverse tangent.";
    static constexpr int arity = 1;
    static constexpr int reads = READS_A;
    template <class T> static T forward(T a) { return std::atan(a); }
    template <class T> static T backward(T a, T, T g) { return g / (T(1) + a * a); }
};

struct Sinh {
    static constexpr const char* name = "sinh";
    static constexpr const char* numpy = "numpy.sinh";
    static constexpr const char* method = "sinh";
    static constexpr const char* doc = "Hyperbolic sine.";
    static constexpr int arity = 1;
    static constexpr int reads = READS_A;
    template <class T> static T forward(T a) { return std::sinh(a); }
    template <class T> static T backward(T a, T, T g) { return g * cosh(a); }
};

struct Cosh {
    static constexpr const char* name = "cosh";
    static constexpr const char* numpy = "numpy.cosh";
    static constexpr const char* method = "cosh";
    static constexpr const char* doc = "Hyperbolic cosine.";
    static constexpr int arity = 1;
    static constexpr int reads = READS_A;
    template <class T> static T forward(T a) { return std::cosh(a); }
    template <class T> static T backward(T a, T, T g) { return g * sinh(a); }
};

struct Arcsinh {
    static constexpr const char* name = "arcsinh";
    static constexpr const char* numpy = "numpy.arcsinh";
    static constexpr const char* method = "arcsinh";
    static constexpr const char* doc = "The inverse hyperbolic sine.";
    static constexpr int arity = 1;
    static constexpr int reads = READS_A;
    template <class T> static T forward(T a) { return std::asinh(a); }
    template <class T> static T backward(T a, T, T g) { return g / sqrt(a * a + T(1)); }
};

struct Arccosh {
    static constexpr const char* name = "arccosh";
    static constexpr const char* numpy = "numpy.arccosh";
    static constexpr const char* method = "arccosh";
    static constexpr const char* doc = "The inverse hyperbolic cosine (x >= 1); its gradient is infinite at 1.";
    static constexpr int arity = 1;
    static constexpr int reads = READS_A;
    template <class T> static T forward(T a) { return std::acosh(a); }
    template <class T> static T backward(T a, T, T g) { return g / sqrt((a - T(1)) * (a + T(1))); }
};

struct Arctanh {
    static constexpr const char* name = "arctanh";
    static constexpr const char* numpy = "numpy.arctanh";
    static constexpr const char* method = "arctanh";
    static constexpr const char* doc = "The inverse hyperbolic tangent (-1 < x < 1).";
    static constexpr int arity = 1;
    static constexpr int reads = READS_A;
    template <class T> static T forward(T a) { return std::atanh(a); }
    template <class T> static T backward(T a, T, T g) { return g / ((T(1) - a) * (T(1) + a)); }
};

// numpy's own formulas (x * (pi/180), x * (180/pi)), so scalars match its arrays.
struct Deg2rad {
    static constexpr const char* name = "deg2rad";
    static constexpr const char* numpy = "numpy.deg2rad numpy.radians";
    static constexpr const char* method = "deg2rad";
    static constexpr const char* doc = "Degrees to radians (numpy.radians is the same).";
    static constexpr int arity = 1;
    static constexpr int reads = 0;
    template <class T> static T forward(T a) { return a * T(PI / 180.0); }
    template <class T> static T backward(T, T, T g) { return g * T(PI / 180.0); }
};

struct Rad2deg {
    static constexpr const char* name = "rad2deg";
    static constexpr const char* numpy = "numpy.rad2deg numpy.degrees";
    static constexpr const char* method = "rad2deg";
    static constexpr const char* doc = "Radians to degrees (numpy.degrees is the same).";
    static constexpr int arity = 1;
    static constexpr int reads = 0;
    template <class T> static T forward(T a) { return a * T(180.0 / PI); }
    template <class T> static T backward(T, T, T g) { return g * T(180.0 / PI); }
};

// sin(pi x) / (pi x), 1 at 0 (numpy.sinc is a function, not a ufunc).
// Its derivative (cos(pi x) - sinc(x)) / x cancels near 0, so there it is its
// Taylor series, pi u sum_k (-1)^k 2k u^(2k-2) / (2k+1)! with u = pi x (|u| < 1,
// nine terms reach double precision). Being a polynomial there, the recorded
// backward also gives the second derivative at 0 (-pi^2/3), where PyTorch's is NaN.
struct Sinc {
    static constexpr const char* name = "sinc";
    static constexpr const char* numpy = "numpy.sinc";
    static constexpr const char* method = "sinc";
    static constexpr const char* doc = "The normalized sinc, sin(pi x) / (pi x), 1 at 0.";
    static constexpr int arity = 1;
    static constexpr int reads = READS_A | READS_OUT;
    template <class T> static T forward(T a) {
        if (a == T(0)) return T(1);
        const T u = T(PI) * a;
        return std::sin(u) / u;
    }
    template <class T> static T backward(T a, T out, T g) {
        const T u = T(PI) * a;
        const T s = u * u;
        T series = T(18.0 / 121645100408832000.0);
        series = T(-16.0 / 355687428096000.0) + s * series;
        series = T(14.0 / 1307674368000.0) + s * series;
        series = T(-12.0 / 6227020800.0) + s * series;
        series = T(10.0 / 39916800.0) + s * series;
        series = T(-8.0 / 362880.0) + s * series;
        series = T(6.0 / 5040.0) + s * series;
        series = T(-4.0 / 120.0) + s * series;
        series = T(2.0 / 6.0) + s * series;
        const auto near = s < T(1);
        const T a_safe = select(near, T(1), a);
        return g * select(near, -T(PI) * u * series, (cos(u) - out) / a_safe);
    }
};

// Ties and NaN as PyTorch: a gets the whole gradient where a >= b or b is NaN.
struct Fmax {
    static constexpr const char* name = "fmax";
    static constexpr const char* numpy = "numpy.fmax";
    static constexpr const char* method = "fmax";
    static constexpr const char* doc = "The elementwise maximum ignoring NaN; a tie gives the gradient to a (as PyTorch).";
    static constexpr int arity = 2;
    static constexpr int reads = READS_A | READS_B;
    template <class T> static T forward(T a, T b) { return (a >= b || b != b) ? a : b; }
    template <class T> static void backward(T a, T b, T, T g, T& ga, T& gb) {
        const auto to_a = a >= b || b != b;
        ga = select(to_a, g, T(0));
        gb = select(to_a, T(0), g);
    }
};

struct Fmin {
    static constexpr const char* name = "fmin";
    static constexpr const char* numpy = "numpy.fmin";
    static constexpr const char* method = "fmin";
    static constexpr const char* doc = "The elementwise minimum ignoring NaN; a tie gives the gradient to a (as PyTorch).";
    static constexpr int arity = 2;
    static constexpr int reads = READS_A | READS_B;
    template <class T> static T forward(T a, T b) { return (a <= b || b != b) ? a : b; }
    template <class T> static void backward(T a, T b, T, T g, T& ga, T& gb) {
        const auto to_a = a <= b || b != b;
        ga = select(to_a, g, T(0));
        gb = select(to_a, T(0), g);
    }
};

// The gradients exp(a - out) and exp(b - out) (softmax weights) never
// overflow, and neither do their derivatives.
struct Logaddexp {
    static constexpr const char* name = "logaddexp";
    static constexpr const char* numpy = "numpy.logaddexp";
    static constexpr const char* method = "logaddexp";
    static constexpr const char* doc = "log(exp(a) + exp(b)), computed without overflow.";
    static constexpr int arity = 2;
    static constexpr int reads = READS_A | READS_B | READS_OUT;
    template <class T> static T forward(T a, T b) {  // numpy's npy_logaddexp
        if (a == b) return a + T(LN2);  // also equal infinities
        const T d = a - b;
        if (d > T(0)) return a + std::log1p(std::exp(-d));
        if (d <= T(0)) return b + std::log1p(std::exp(d));
        return d;  // NaN
    }
    template <class T> static void backward(T a, T b, T out, T g, T& ga, T& gb) {
        ga = g * exp(a - out);
        gb = g * exp(b - out);
    }
};

struct Logaddexp2 {
    static constexpr const char* name = "logaddexp2";
    static constexpr const char* numpy = "numpy.logaddexp2";
    static constexpr const char* method = "logaddexp2";
    static constexpr const char* doc = "log2(2**a + 2**b), computed without overflow.";
    static constexpr int arity = 2;
    static constexpr int reads = READS_A | READS_B | READS_OUT;
    template <class T> static T forward(T a, T b) {  // numpy's npy_logaddexp2
        if (a == b) return a + T(1);
        const T d = a - b;
        if (d > T(0)) return a + std::log1p(std::exp2(-d)) / T(LN2);
        if (d <= T(0)) return b + std::log1p(std::exp2(d)) / T(LN2);
        return d;
    }
    template <class T> static void backward(T a, T b, T out, T g, T& ga, T& gb) {
        ga = g * exp2(a - out);
        gb = g * exp2(b - out);
    }
};

// At (0, 0) both gradients are 0, as PyTorch's (the derivative does not exist there).
struct Arctan2 {
    static constexpr const char* name = "arctan2";
    static constexpr const char* numpy = "numpy.arctan2";
    static constexpr const char* method = "arctan2";
    static constexpr const char* doc = "The angle of the point (b, a): arctan(a / b) in the right quadrant; gradient 0 at (0, 0).";
    static constexpr int arity = 2;
    static constexpr int reads = READS_A | READS_B;
    template <class T> static T forward(T a, T b) { return std::atan2(a, b); }
    template <class T> static void backward(T a, T b, T, T g, T& ga, T& gb) {
        const T r = a * a + b * b;
        const T r_safe = select(r == T(0), T(1), r);  // a = b = 0 there: both gradients are 0
        ga = g * b / r_safe;
        gb = -g * a / r_safe;
    }
};

// At (0, 0) the gradient is 0 (a subgradient, as for abs and norms), where
// PyTorch's is NaN.
struct Hypot {
    static constexpr const char* name = "hypot";
    static constexpr const char* numpy = "numpy.hypot";
    static constexpr const char* method = "hypot";
    static constexpr const char* doc = "sqrt(a**2 + b**2) without overflow; gradient 0 at (0, 0).";
    static constexpr int arity = 2;
    static constexpr int reads = READS_A | READS_B | READS_OUT;
    template <class T> static T forward(T a, T b) { return std::hypot(a, b); }
    template <class T> static void backward(T a, T b, T out, T g, T& ga, T& gb) {
        const T out_safe = select(out == T(0), T(1), out);
        ga = g * a / out_safe;
        gb = g * b / out_safe;
    }
};

// numpy's remainder (Python's %: the sign of b). Gradients as PyTorch's:
// 1 for a and -floor(a / b) for b (the jumps are not differentiable).
struct Remainder {
    static constexpr const char* name = "remainder";
    static constexpr const char* numpy = "numpy.remainder numpy.mod";
    static constexpr const char* method = "remainder";
    static constexpr const char* doc = "a % b with the sign of b, as Python's % and numpy.mod.";
    static constexpr int arity = 2;
    static constexpr int reads = READS_A | READS_B;
    static constexpr int passes = PASSES_A;
    template <class T> static T forward(T a, T b) {  // numpy's npy_divmod
        T mod = std::fmod(a, b);
        if (!b) return mod;
        if (mod) {
            if ((b < T(0)) != (mod < T(0))) mod += b;
        } else {
            mod = std::copysign(T(0), b);
        }
        return mod;
    }
    template <class T> static void backward(T a, T b, T, T g, T& ga, T& gb) {
        ga = g;
        gb = -g * floor(a / b);
    }
};

struct Fmod {
    static constexpr const char* name = "fmod";
    static constexpr const char* numpy = "numpy.fmod";
    static constexpr const char* method = "fmod";
    static constexpr const char* doc = "The C remainder of a / b, with the sign of a; gradients 1 and -trunc(a / b).";
    static constexpr int arity = 2;
    static constexpr int reads = READS_A | READS_B;
    static constexpr int passes = PASSES_A;
    template <class T> static T forward(T a, T b) { return std::fmod(a, b); }
    template <class T> static void backward(T a, T b, T, T g, T& ga, T& gb) {
        ga = g;
        gb = -g * trunc(a / b);
    }
};

// As PyTorch: a's gradient is +-1 (0 where a is 0), b's is 0.
struct Copysign {
    static constexpr const char* name = "copysign";
    static constexpr const char* numpy = "numpy.copysign";
    static constexpr const char* method = "copysign";
    static constexpr const char* doc = "|a| with the sign of b; a's gradient is 0 at 0, b gets none.";
    static constexpr int arity = 2;
    static constexpr int reads = READS_A | READS_OUT;
    template <class T> static T forward(T a, T b) { return std::copysign(a, b); }
    template <class T> static void backward(T a, T, T out, T g, T& ga, T& gb) {
        ga = g * (sign_of(a) * sign_of(out));
        gb = T(0);
    }
};

// numpy's float_power computes in float64 (float32 inputs too); the
// gradients come back in each input's dtype. Edge cases as power's.
struct FloatPower {
    static constexpr const char* name = "float_power";
    static constexpr const char* numpy = "numpy.float_power";
    static constexpr const char* method = "float_power";
    static constexpr const char* doc = "a ** b computed in float64, as numpy.float_power.";
    static constexpr int arity = 2;
    static constexpr int reads = READS_A | READS_B | READS_OUT;
    template <class T> static T forward(T a, T b) { return std::pow(a, b); }
    template <class T> static void backward(T a, T b, T out, T g, T& ga, T& gb) {
        Pow::backward(a, b, out, g, ga, gb);
    }
};

// ---- scipy.special's ufuncs ----
// Their values are computed in double (special.hpp, or the C library's), also
// for float32, and match scipy's (tests/test_special.py). Each is
// scipy.special's ufunc on Tensors once the user has imported scipy.special;
// tapegrad never imports scipy itself.

constexpr double TWO_OVER_SQRT_PI = 1.12837916709551257390;
constexpr double SQRT_PI_OVER_2 = 0.88622692545275801365;
constexpr double SQRT_2PI = 2.50662827463100050242;

struct Erf {
    static constexpr const char* name = "erf";
    static constexpr const char* numpy = "scipy.special.erf";
    static constexpr const char* method = "erf";
    static constexpr const char* doc = "The error function, 2/sqrt(pi) * integral of exp(-t**2) from 0 to x.";
    static constexpr int arity = 1;
    static constexpr int reads = READS_A;
    template <class T> static T forward(T a) { return T(std::erf(double(a))); }
    template <class T> static T backward(T a, T, T g) { return g * T(TWO_OVER_SQRT_PI) * exp(-(a * a)); }
};

struct Erfc {
    static constexpr const char* name = "erfc";
    static constexpr const char* numpy = "scipy.special.erfc";
    static constexpr const char* method = "erfc";
    static constexpr const char* doc = "1 - erf(x), accurate in the tail.";
    static constexpr int arity = 1;
    static constexpr int reads = READS_A;
    template <class T> static T forward(T a) { return T(std::erfc(double(a))); }
    template <class T> static T backward(T a, T, T g) { return -g * T(TWO_OVER_SQRT_PI) * exp(-(a * a)); }
};

struct Erfinv {
    static constexpr const char* name = "erfinv";
    static constexpr const char* numpy = "scipy.special.erfinv";
    static constexpr const char* method = "erfinv";
    static constexpr const char* doc = "The inverse of erf on (-1, 1); infinite at -1 and 1.";
    static constexpr int arity = 1;
    static constexpr int reads = READS_OUT;
    template <class T> static T forward(T a) { return T(special::erfinv(double(a))); }
    template <class T> static T backward(T, T out, T g) { return g * T(SQRT_PI_OVER_2) * exp(out * out); }
};

struct Erfcinv {
    static constexpr const char* name = "erfcinv";
    static constexpr const char* numpy = "scipy.special.erfcinv";
    static constexpr const char* method = nullptr;
    static constexpr const char* doc = "The inverse of erfc on (0, 2); infinite at 0 and 2.";
    static constexpr int arity = 1;
    static constexpr int reads = READS_OUT;
    template <class T> static T forward(T a) { return T(special::erfcinv(double(a))); }
    template <class T> static T backward(T, T out, T g) { return -g * T(SQRT_PI_OVER_2) * exp(out * out); }
};

// Infinite at 0 and NaN at the negative integers, as scipy's.
struct Gamma {
    static constexpr const char* name = "gamma";
    static constexpr const char* numpy = "scipy.special.gamma";
    static constexpr const char* method = nullptr;
    static constexpr const char* doc = "The gamma function; gradient gamma(x) * digamma(x).";
    static constexpr int arity = 1;
    static constexpr int reads = READS_A | READS_OUT;
    template <class T> static T forward(T a) { return T(special::gamma(double(a))); }
    template <class T> static T backward(T a, T out, T g) { return g * out * digamma(a); }
};

struct Gammaln {
    static constexpr const char* name = "gammaln";
    static constexpr const char* numpy = "scipy.special.gammaln";
    static constexpr const char* method = "lgamma";
    static constexpr const char* doc = "log|gamma(x)|; gradient digamma(x).";
    static constexpr int arity = 1;
    static constexpr int reads = READS_A;
    template <class T> static T forward(T a) { return T(special::gammaln(double(a))); }
    template <class T> static T backward(T a, T, T g) { return g * digamma(a); }
};

struct Digamma {
    static constexpr const char* name = "digamma";
    static constexpr const char* numpy = "scipy.special.digamma scipy.special.psi";
    static constexpr const char* method = "digamma";
    static constexpr const char* doc = "The logarithmic derivative of gamma (scipy.special.psi is the same); gradient polygamma(1, x).";
    static constexpr int arity = 1;
    static constexpr int reads = READS_A;
    template <class T> static T forward(T a) { return T(special::digamma(double(a))); }
    template <class T> static T backward(T a, T, T g) { return g * polygamma(1, a); }
};

// 1/gamma(x), 0 at the poles of gamma. Its derivative -digamma(x)/gamma(x) is
// written for x <= 0 as gamma(1 - x) (cos(pi x) - sin(pi x) digamma(1 - x) / pi)
// (by reflection), which is finite at the poles ((-1)^n n! at x = -n), and so
// is its own derivative. Each branch is evaluated where it is finite only.
struct Rgamma {
    static constexpr const char* name = "rgamma";
    static constexpr const char* numpy = "scipy.special.rgamma";
    static constexpr const char* method = nullptr;
    static constexpr const char* doc = "1 / gamma(x), an entire function: 0 at 0, -1, -2, ...";
    static constexpr int arity = 1;
    static constexpr int reads = READS_A | READS_OUT;
    template <class T> static T forward(T a) { return T(special::rgamma(double(a))); }
    template <class T> static T backward(T a, T out, T g) {
        const auto left = a <= T(0);
        const T neg = select(left, a, T(0)), pos = select(left, T(1), a);
        const T u = T(PI) * neg;
        const T reflected = gamma(T(1) - neg) * (cos(u) - sin(u) * digamma(T(1) - neg) / T(PI));
        return g * select(left, reflected, -(select(left, T(1), out) * digamma(pos)));
    }
};

struct Beta {
    static constexpr const char* name = "beta";
    static constexpr const char* numpy = "scipy.special.beta";
    static constexpr const char* method = nullptr;
    static constexpr const char* doc = "The beta function gamma(a) gamma(b) / gamma(a + b).";
    static constexpr int arity = 2;
    static constexpr int reads = READS_A | READS_B | READS_OUT;
    template <class T> static T forward(T a, T b) { return T(special::beta(double(a), double(b))); }
    template <class T> static void backward(T a, T b, T out, T g, T& ga, T& gb) {
        const T both = digamma(a + b);
        ga = g * out * (digamma(a) - both);
        gb = g * out * (digamma(b) - both);
    }
};

struct Betaln {
    static constexpr const char* name = "betaln";
    static constexpr const char* numpy = "scipy.special.betaln";
    static constexpr const char* method = nullptr;
    static constexpr const char* doc = "log|beta(a, b)|, without overflow.";
    static constexpr int arity = 2;
    static constexpr int reads = READS_A | READS_B;
    template <class T> static T forward(T a, T b) { return T(special::betaln(double(a), double(b))); }
    template <class T> static void backward(T a, T b, T, T g, T& ga, T& gb) {
        const T both = digamma(a + b);
        ga = g * (digamma(a) - both);
        gb = g * (digamma(b) - both);
    }
};

struct Logit {
    static constexpr const char* name = "logit";
    static constexpr const char* numpy = "scipy.special.logit";
    static constexpr const char* method = "logit";
    static constexpr const char* doc = "log(p / (1 - p)), the inverse of expit (sigmoid).";
    static constexpr int arity = 1;
    static constexpr int reads = READS_A;
    template <class T> static T forward(T a) { return T(special::logit(double(a))); }
    template <class T> static T backward(T a, T, T g) { return g / (a * (T(1) - a)); }
};

// 0 where x = 0 (unless y is NaN). Gradients as PyTorch's, except that y's is
// 0 where x = 0 (PyTorch: NaN at y = 0): the function is constant in y there.
struct Xlogy {
    static constexpr const char* name = "xlogy";
    static constexpr const char* numpy = "scipy.special.xlogy";
    static constexpr const char* method = "xlogy";
    static constexpr const char* doc = "x * log(y), 0 where x is 0.";
    static constexpr int arity = 2;
    static constexpr int reads = READS_A | READS_B;
    template <class T> static T forward(T a, T b) { return T(special::xlogy(double(a), double(b))); }
    template <class T> static void backward(T a, T b, T, T g, T& ga, T& gb) {
        const auto zero = a == T(0);
        ga = g * log(select(zero && b <= T(0), T(1), b));
        gb = g * a / select(zero, T(1), b);
    }
};

struct Xlog1py {
    static constexpr const char* name = "xlog1py";
    static constexpr const char* numpy = "scipy.special.xlog1py";
    static constexpr const char* method = nullptr;
    static constexpr const char* doc = "x * log1p(y), 0 where x is 0.";
    static constexpr int arity = 2;
    static constexpr int reads = READS_A | READS_B;
    template <class T> static T forward(T a, T b) { return T(special::xlog1py(double(a), double(b))); }
    template <class T> static void backward(T a, T b, T, T g, T& ga, T& gb) {
        const auto zero = a == T(0);
        ga = g * log1p(select(zero && b <= T(-1), T(0), b));
        gb = g * a / select(zero, T(1), b + T(1));
    }
};

struct Ndtr {
    static constexpr const char* name = "ndtr";
    static constexpr const char* numpy = "scipy.special.ndtr";
    static constexpr const char* method = nullptr;
    static constexpr const char* doc = "The standard normal CDF.";
    static constexpr int arity = 1;
    static constexpr int reads = READS_A;
    template <class T> static T forward(T a) { return T(special::ndtr(double(a))); }
    template <class T> static T backward(T a, T, T g) { return g * exp(a * a * T(-0.5)) / T(SQRT_2PI); }
};

// Its gradient, pdf/cdf = exp(-x^2/2 - log_ndtr(x)) / sqrt(2 pi), is finite far into the left tail.
struct LogNdtr {
    static constexpr const char* name = "log_ndtr";
    static constexpr const char* numpy = "scipy.special.log_ndtr";
    static constexpr const char* method = nullptr;
    static constexpr const char* doc = "The log of the standard normal CDF, accurate in both tails.";
    static constexpr int arity = 1;
    static constexpr int reads = READS_A | READS_OUT;
    template <class T> static T forward(T a) { return T(special::log_ndtr(double(a))); }
    template <class T> static T backward(T a, T out, T g) {
        return g * exp(a * a * T(-0.5) - out) / T(SQRT_2PI);
    }
};

struct Ndtri {
    static constexpr const char* name = "ndtri";
    static constexpr const char* numpy = "scipy.special.ndtri";
    static constexpr const char* method = nullptr;
    static constexpr const char* doc = "The inverse of ndtr, the standard normal quantile function.";
    static constexpr int arity = 1;
    static constexpr int reads = READS_OUT;
    template <class T> static T forward(T a) { return T(special::ndtri(double(a))); }
    template <class T> static T backward(T, T out, T g) { return g * T(SQRT_2PI) * exp(out * out * T(0.5)); }
};

struct I0 {
    static constexpr const char* name = "i0";
    static constexpr const char* numpy = "scipy.special.i0";
    static constexpr const char* method = "i0";
    static constexpr const char* doc = "The modified Bessel function of the first kind of order 0; gradient i1.";
    static constexpr int arity = 1;
    static constexpr int reads = READS_A;
    template <class T> static T forward(T a) { return T(special::i0(double(a))); }
    template <class T> static T backward(T a, T, T g) { return g * i1(a); }
};

// i1'(x) = i0(x) - i1(x)/x, which cancels near 0: there (|x| < 1/2) its
// series sum_k (2k+1) x^2k / (2^(2k+1) k! (k+1)!), eight terms; being a
// polynomial, its recorded derivatives are right at 0 too.
struct I1 {
    static constexpr const char* name = "i1";
    static constexpr const char* numpy = "scipy.special.i1";
    static constexpr const char* method = nullptr;
    static constexpr const char* doc = "The modified Bessel function of the first kind of order 1.";
    static constexpr int arity = 1;
    static constexpr int reads = READS_A | READS_OUT;
    template <class T> static T forward(T a) { return T(special::i1(double(a))); }
    template <class T> static T backward(T a, T out, T g) {
        const T s = a * a;
        T series = T(15.0 / 6658877030400.0);
        series = T(13.0 / 29727129600.0) + s * series;
        series = T(11.0 / 176947200.0) + s * series;
        series = T(9.0 / 1474560.0) + s * series;
        series = T(7.0 / 18432.0) + s * series;
        series = T(5.0 / 384.0) + s * series;
        series = T(3.0 / 16.0) + s * series;
        series = T(0.5) + s * series;
        const auto near = s < T(0.25);
        return g * select(near, series, i0(a) - out / select(near, T(1), a));
    }
};

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

// Note [Hot ops]
// The scalar sweep's loop inlines each op's backward through one switch.
// With every special function in that switch, GCC no longer keeps the loop's
// state in registers and every row pays for reloads. So the loop inlines only the ops
// ordinary programs are made of, and reaches the others through one
// out-of-line call, which is small beside their own cost (erfinv, digamma...).
// As visit_op, for the hot ops only; false for any other code.
template <class F>
TAPEGRAD_ALWAYS_INLINE bool visit_hot_op(uint8_t code, F&& f) {
    switch (code) {
#define TAPEGRAD_CASE(code, cls) \
    case OP_##code:              \
        f(OpTag<cls>{});         \
        return true;
        TAPEGRAD_HOT_OPS(TAPEGRAD_CASE)
#undef TAPEGRAD_CASE
        default:
            return false;
    }
}

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
