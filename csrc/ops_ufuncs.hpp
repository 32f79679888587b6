// numpy's other differentiable float ufuncs (Note [One table] in ops.hpp).
#pragma once

#include "op_helpers.hpp"

namespace tapegrad {


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

}  // namespace tapegrad
