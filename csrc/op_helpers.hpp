// What the elementwise op formulas (ops.hpp) are written with: the flags an op
// declares (what its backward reads, which gradients it passes on) and the
// helpers its templates may call on any element type (Note [One table]).
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
// (Note [Passed gradients], csrc/numeric_sweep.cpp). The backward must agree.
enum Passes { PASSES_A = 1, PASSES_B = 2 };

using std::abs, std::cos, std::cosh, std::exp, std::exp2, std::floor, std::log, std::log1p, std::pow,
    std::sin, std::sinh, std::sqrt, std::tan, std::tanh, std::trunc;

constexpr double PI = 3.14159265358979323846;
constexpr double LN2 = 0.69314718055994530942;
constexpr double LN10 = 2.30258509299404568402;

// The special functions backwards use, on the element types of the kernels
// (computed in double; TapeValue has its own, recording.hpp).
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

}  // namespace tapegrad
