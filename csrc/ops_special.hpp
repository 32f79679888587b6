// scipy.special's ufuncs (Note [One table] in ops.hpp).
#pragma once

#include "op_helpers.hpp"

namespace tapegrad {

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

}  // namespace tapegrad
