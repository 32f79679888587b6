// Special functions (special.hpp). Algorithms:
//   erfinv, erfcinv, ndtri: Newton's method on std::erf (|y| <= 1/2) or on
//     log(std::erfc(x)) (the tails, where it is nearly linear), from series or
//     asymptotic first guesses; 1 - |y|, 2 - z and 2p are exact where used.
//   digamma: the recurrence psi(x + 1) = psi(x) + 1/x up to x >= 10, then the
//     asymptotic series (DLMF 5.11.2); reflection (DLMF 5.5.4) for x < 0; near
//     its two roots closest to 0, where that cancels, its Taylor series there,
//     psi(x) = psi(r) + sum_n (-1)^(n+1) zeta(n + 1, r) (x - r)^n, as scipy does.
//   Hurwitz zeta: Euler-Maclaurin summation (DLMF 25.11 and 2.10.1), which
//     also serves polygamma(n, x) = (-1)^(n+1) n! zeta(n + 1, x) (DLMF 25.11.12);
//     for x < -1e4 polygamma reflects instead (DLMF 5.15.6), where the sum
//     would take |x| terms (scipy's takes them: 0.7 s at -1e7, forever at -1e15).
//   beta, betaln: products of std::tgamma ordered against overflow, std::lgamma
//     beyond tgamma's range, and for a >> b the expansion of log B(a, b) in 1/a,
//     with cephes' conventions at non-positive integers.
//   i0, i1: the power series (DLMF 10.25.2) up to 25, the asymptotic
//     expansion (DLMF 10.40.1) beyond.
//   log_ndtr: log1p(-ndtr(-x)) for x > 0, log(ndtr(x)) down to -20, and the
//     asymptotic series of the Mills ratio (DLMF 7.12.1) below.
#include "special.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>
#include <vector>

namespace tapegrad::special {

namespace {

constexpr double PI = 3.14159265358979323846;
constexpr double EPS = std::numeric_limits<double>::epsilon();
constexpr double INF = std::numeric_limits<double>::infinity();
constexpr double NaN = std::numeric_limits<double>::quiet_NaN();
constexpr double TWO_OVER_SQRT_PI = 1.12837916709551257390;
constexpr double SQRT_PI = 1.77245385090551602730;
constexpr double SQRT1_2 = 0.70710678118654752440;
constexpr double LOG_SQRT_2PI = 0.91893853320467274178;
constexpr double MAX_GAMMA_ARG = 171.624376956302725;  // tgamma overflows beyond
constexpr double MAX_LOG = 709.782712893383973;
constexpr double REFLECT_BELOW = 1e4;  // polygamma(n, x) reflects for x < -REFLECT_BELOW

// log|Gamma(x)| and the sign of Gamma(x), thread-safely where the C library can.
double lgamma_signed(double x, int* sign) {
#if defined(__GLIBC__)
    return ::lgamma_r(x, sign);
#else
    *sign = (x > 0 || std::fmod(std::floor(x), 2.0) == 0) ? 1 : -1;
    return std::lgamma(x);
#endif
}

bool is_nonpositive_integer(double x) { return x <= 0 && x == std::floor(x); }

// Newton's method, stopped one step after the step fell below 1e-8 of x:
// convergence is quadratic, so that last step reaches rounding.
template <class Step>
double newton(double x, Step step, int limit) {
    bool close = false;
    for (int i = 0; i < limit; ++i) {
        const double s = step(x);
        if (!std::isfinite(s)) break;
        x -= s;
        if (close) break;
        close = std::fabs(s) <= 1e-8 * std::fabs(x);
    }
    return x;
}

// erf(x) = y for |y| <= 1/2, from sqrt(pi)/2 (y + pi y^3 / 12).
double erfinv_central(double y) {
    if (y == 0) return y;
    const double guess = 0.5 * SQRT_PI * y * (1 + PI / 12 * y * y);
    return newton(guess, [&](double x) { return (std::erf(x) - y) / (TWO_OVER_SQRT_PI * std::exp(-x * x)); }, 12);
}

// erfc(x) = z for 0 < z <= 1/2, from erfc(x) ~ exp(-x^2) / (x sqrt(pi)).
double erfcinv_tail(double z) {
    const double t = std::sqrt(-std::log(z));
    const double guess = t - std::log(t * SQRT_PI) / (2 * t);
    return newton(guess, [&](double x) {
        const double e = std::erfc(x);
        // d/dx log(erfc(x)) = -2/sqrt(pi) exp(-x^2) / erfc(x)
        return std::log(e / z) / (-TWO_OVER_SQRT_PI * std::exp(-x * x) / e);
    }, 40);
}

// x reduced to [-1, 1] modulo 2 (exactly).
double reduce_mod2(double x) {
    double r = std::fmod(x, 2.0);
    if (r < -1) r += 2;
    else if (r > 1) r -= 2;
    return r;
}

// sin(pi x), exact at integers.
double sinpi(double x) {
    double r = reduce_mod2(x);
    if (r > 0.5) r = 1 - r;
    else if (r < -0.5) r = -1 - r;
    return std::sin(PI * r);
}

// cos(pi x), exact at half-integers.
double cospi(double x) {
    const double a = std::fabs(reduce_mod2(x));
    return a <= 0.5 ? std::sin(PI * (0.5 - a)) : -std::sin(PI * (a - 0.5));
}

// d^n/dx^n cot(pi x) = pi^n P_n(cot(pi x)), P_0(c) = c, P_(k+1)(c) = -(1 + c^2) P_k'(c).
double cot_derivative(int n, double x) {
    const double c = cospi(x) / sinpi(x);
    std::vector<double> p(static_cast<size_t>(n) + 2, 0.0), next(p.size());
    p[1] = 1;  // P_0 = c: coefficients by power of c
    for (int k = 0; k < n; ++k) {
        std::fill(next.begin(), next.end(), 0.0);
        for (size_t j = 1; j < p.size(); ++j) {  // -(1 + c^2) * j p_j c^(j-1)
            if (p[j] == 0) continue;
            next[j - 1] -= j * p[j];
            if (j + 1 < next.size()) next[j + 1] -= j * p[j];
        }
        std::swap(p, next);
    }
    double value = 0;
    for (size_t j = p.size(); j-- > 0;) value = value * c + p[j];
    return std::pow(PI, n) * value;
}

// psi(x) for x >= 10: log x - 1/(2x) - sum_k B_2k / (2k x^2k).
double digamma_asymptotic(double x) {
    const double z = 1 / (x * x);
    const double series =
        z * (1.0 / 12 - z * (1.0 / 120 - z * (1.0 / 252 - z * (1.0 / 240 - z * (1.0 / 132 - z * (691.0 / 32760 - z / 12))))));
    return std::log(x) - 0.5 / x - series;
}

// The roots of psi nearest 0 and psi's values there (in double), and the
// Taylor coefficients (-1)^(n+1) zeta(n + 1, root), computed once.
constexpr double POS_ROOT = 1.4616321449683623, POS_ROOT_VALUE = -9.2412655217294275e-17;
constexpr double NEG_ROOT = -0.504083008264455409, NEG_ROOT_VALUE = 7.2897639029768949e-17;
constexpr int ROOT_TERMS = 100;

struct RootSeries {
    double root, value, coeff[ROOT_TERMS];
    RootSeries(double r, double v) : root(r), value(v) {
        for (int n = 1; n < ROOT_TERMS; ++n) coeff[n] = (n % 2 ? 1.0 : -1.0) * hurwitz_zeta(n + 1, r);
    }
    double operator()(double x) const {
        const double d = x - root;
        double sum = value, power = 1;
        for (int n = 1; n < ROOT_TERMS; ++n) {
            power *= d;
            const double term = coeff[n] * power;
            sum += term;
            if (std::fabs(term) < EPS * std::fabs(sum)) break;
        }
        return sum;
    }
};

double bessel_i_series(int nu, double x) {  // I_nu(x), 0 <= x <= 25
    const double q = 0.25 * x * x;
    double term = nu ? 0.5 * x : 1.0, sum = term;
    for (int k = 1; k < 500 && term > EPS * sum; ++k) {
        term *= q / (k * (k + nu));
        sum += term;
    }
    return sum;
}

double bessel_i(int nu, double x) {  // I_nu(x) for nu = 0, 1 and x >= 0
    if (std::isinf(x)) return INF;
    if (x <= 25) return bessel_i_series(nu, x);
    const double mu = 4.0 * nu * nu;
    double term = 1, sum = 1;
    for (int k = 1; k < 100; ++k) {
        const double odd = 2.0 * k - 1;
        const double next = term * -(mu - odd * odd) / (8.0 * k * x);
        if (std::fabs(next) >= std::fabs(term)) break;  // an asymptotic series: stop at its least term
        term = next;
        sum += term;
        if (std::fabs(term) <= EPS * std::fabs(sum)) break;
    }
    const double half = std::exp(0.5 * x);  // exp(x) would overflow before I_nu(x) does
    return half * (half / std::sqrt(2 * PI * x) * sum);
}

// log|B(a, b)| for a > 1e6 |b|: log Gamma(b) - b log a + b(1-b)/(2a) + ...
double lbeta_large_a(double a, double b, int* sign) {
    double r = lgamma_signed(b, sign) - b * std::log(a);
    r += b * (1 - b) / (2 * a);
    r += b * (1 - b) * (1 - 2 * b) / (12 * a * a);
    r += -b * b * (1 - b) * (1 - b) / (12 * a * a * a);
    return r;
}

// Gamma as beta's products take it: infinite at every pole.
double gamma_or_inf(double x) { return is_nonpositive_integer(x) ? INF : std::tgamma(x); }

// B(a, b) (log_of: log|B|) for a a non-positive integer, as cephes defines it.
double beta_nonpositive_integer(double a, double b, bool log_of) {
    if (b == std::floor(b) && std::fabs(b) < 1e15 && 1 - a - b > 0) {
        if (log_of) return betaln(1 - a - b, b);
        const double sign = std::fmod(b, 2.0) == 0 ? 1 : -1;
        return sign * beta(1 - a - b, b);
    }
    return INF;
}

double beta_impl(double a, double b, bool log_of) {
    if (std::isnan(a) || std::isnan(b)) return NaN;
    if (is_nonpositive_integer(a)) return beta_nonpositive_integer(a, b, log_of);
    if (is_nonpositive_integer(b)) return beta_nonpositive_integer(b, a, log_of);
    if (std::fabs(a) < std::fabs(b)) std::swap(a, b);
    if (std::fabs(a) > 1e6 * std::fabs(b) && a > 1e6) {
        int sign;
        const double y = lbeta_large_a(a, b, &sign);
        return log_of ? y : sign * std::exp(y);
    }
    const double s = a + b;
    if (std::fabs(s) > MAX_GAMMA_ARG || std::fabs(a) > MAX_GAMMA_ARG || std::fabs(b) > MAX_GAMMA_ARG) {
        int sa, sb, ss;
        const double y = lgamma_signed(a, &sa) + lgamma_signed(b, &sb) - lgamma_signed(s, &ss);
        if (log_of) return y;
        const int sign = sa * sb * ss;
        return y > MAX_LOG ? sign * INF : sign * std::exp(y);
    }
    const double ga = gamma_or_inf(a), gb = gamma_or_inf(b), gs = gamma_or_inf(s);
    if (gs == 0) return INF;
    // Divide the larger by Gamma(a + b) first: the product of two could overflow.
    const double r = std::fabs(std::fabs(ga) - std::fabs(gs)) > std::fabs(std::fabs(gb) - std::fabs(gs))
                         ? (gb / gs) * ga
                         : (ga / gs) * gb;
    return log_of ? std::log(std::fabs(r)) : r;
}

}  // namespace

double erfinv(double y) {
    if (std::isnan(y) || y < -1 || y > 1) return NaN;
    if (y == 1 || y == -1) return y * INF;
    if (std::fabs(y) <= 0.5) return erfinv_central(y);
    const double x = erfcinv_tail(1 - std::fabs(y));  // 1 - |y| is exact for |y| >= 1/2
    return y < 0 ? -x : x;
}

double erfcinv(double z) {
    if (std::isnan(z) || z < 0 || z > 2) return NaN;
    if (z == 0) return INF;
    if (z == 2) return -INF;
    if (z <= 0.5) return erfcinv_tail(z);
    if (z >= 1.5) return -erfcinv_tail(2 - z);  // exact
    return erfinv_central(1 - z);                // exact
}

double ndtr(double x) {
    if (std::isnan(x)) return NaN;
    const double t = x * SQRT1_2;
    if (std::fabs(t) < 1) return 0.5 + 0.5 * std::erf(t);
    const double half_tail = 0.5 * std::erfc(std::fabs(t));
    return t > 0 ? 1 - half_tail : half_tail;
}

double log_ndtr(double x) {
    if (std::isnan(x)) return NaN;
    if (x > 0) return std::log1p(-0.5 * std::erfc(x * SQRT1_2));
    if (x > -20) return std::log(0.5 * std::erfc(-x * SQRT1_2));
    // Phi(x) = phi(x)/(-x) (1 - 1/x^2 + 3/x^4 - 15/x^6 + ...), asymptotically.
    const double r = 1 / (x * x);
    double term = 1, sum = 1;
    for (int k = 1; k < 200; ++k) {
        term *= -(2 * k - 1) * r;
        sum += term;
        if (std::fabs(term) < EPS * std::fabs(sum)) break;
    }
    return -0.5 * x * x - std::log(-x) - LOG_SQRT_2PI + std::log(sum);
}

double ndtri(double p) {
    if (std::isnan(p) || p < 0 || p > 1) return NaN;
    if (p == 0) return -INF;
    if (p == 1) return INF;
    return -1.41421356237309504880 * erfcinv(2 * p);
}

// log(p / (1 - p)), which loses precision near 1/2: there, log1p(s) - log1p(-s), s = 2p - 1.
double logit(double p) {
    if (p < 0.3 || p > 0.65) return std::log(p / (1 - p));
    const double s = 2 * (p - 0.5);
    return std::log1p(s) - std::log1p(-s);
}

double xlogy(double x, double y) {
    if (x == 0 && !std::isnan(y)) return 0;
    return x * std::log(y);
}

double xlog1py(double x, double y) {
    if (x == 0 && !std::isnan(y)) return 0;
    return x * std::log1p(y);
}

double gamma(double x) { return std::tgamma(x); }  // scipy's poles too: +-inf at +-0, NaN at -1, -2, ...

double rgamma(double x) {
    if (x == 0) return x;  // 1/Gamma(+-0) = +-0
    if (is_nonpositive_integer(x)) return 0;
    // Reflection for x < 0 (1/Gamma(x) = sin(pi x) Gamma(1 - x) / pi): Gamma(x) itself
    // underflows to subnormals, and loses digits, before its reciprocal overflows.
    if (x < 0) return sinpi(x) * std::tgamma(1 - x) / PI;
    return 1 / std::tgamma(x);
}

double gammaln(double x) {
    int sign;
    return lgamma_signed(x, &sign);
}

double digamma(double x) {
    if (std::isnan(x) || x == INF) return x;
    if (x == -INF) return NaN;
    if (x == 0) return std::copysign(INF, -x);
    static const RootSeries near_neg_root(NEG_ROOT, NEG_ROOT_VALUE), near_pos_root(POS_ROOT, POS_ROOT_VALUE);
    if (std::fabs(x - NEG_ROOT) < 0.3) return near_neg_root(x);
    double result = 0;
    if (x < 0) {
        double whole;
        const double frac = std::modf(x, &whole);
        if (frac == 0) return NaN;  // a pole
        result = -PI / std::tan(PI * frac);  // psi(x) = psi(1 - x) - pi / tan(pi x)
        x = 1 - x;
    }
    if (std::fabs(x - POS_ROOT) < 0.5) return result + near_pos_root(x);
    for (; x < 10; x += 1) result -= 1 / x;
    return result + digamma_asymptotic(x);
}

double hurwitz_zeta(double s, double q) {
    if (std::isnan(s) || std::isnan(q)) return NaN;
    if (s == 1) return INF;
    if (s < 1) return NaN;
    if (q <= 0) {
        if (q == std::floor(q)) return INF;
        if (s != std::floor(s)) return NaN;  // q^-s is not real
        if (q < -REFLECT_BELOW) return NaN;  // the direct sum would take |q| terms (polygamma reflects)
    }
    if (q > 1e8) return (1 / (s - 1) + 1 / (2 * q)) * std::pow(q, 1 - s);  // DLMF 25.11.43
    // B_2j / (2j)!, j = 1..12.
    static constexpr double B[12] = {1.0 / 12, -1.0 / 720, 1.0 / 30240, -1.0 / 1209600, 1.0 / 47900160,
                                     -691.0 / 1307674368000.0, 1.0 / 74724249600.0,
                                     -3617.0 / 10670622842880000.0, 43867.0 / 5109094217170944000.0,
                                     -174611.0 / 802857662698291200000.0, 854513.0 / 1.5511210043330985984e23,
                                     -236364091.0 / 1.6938241367317436694528e27};
    // sum_{k < N} (q + k)^-s directly, with q + N > 9 and N >= 9 ...
    double sum = 0, a = q;
    for (int n = 0; n < 9 || a <= 9; ++n, a += 1) {
        const double term = std::pow(a, -s);
        sum += term;
        if (std::fabs(term) < EPS * std::fabs(sum)) return sum;
    }
    // ... and the rest by Euler-Maclaurin at a = q + N:
    // a^(1-s)/(s-1) + a^-s/2 + sum_j B_2j/(2j)! s(s+1)...(s+2j-2) a^(-s-2j+1).
    double tail = std::pow(a, 1 - s) / (s - 1) + 0.5 * std::pow(a, -s);
    double rising = s, power = std::pow(a, -s - 1);
    for (int j = 0; j < 12; ++j) {
        const double term = B[j] * rising * power;
        tail += term;
        if (std::fabs(term) < EPS * std::fabs(sum + tail)) break;
        rising *= (s + 2 * j + 1) * (s + 2 * j + 2);
        power /= a * a;
    }
    return sum + tail;
}

double polygamma(int n, double x) {
    if (n < 0) return NaN;
    if (n == 0) return digamma(x);
    // Far left, zeta's direct sum would take |x| terms: reflection instead,
    // psi^(n)(x) = (-1)^n psi^(n)(1 - x) - pi d^n/dx^n cot(pi x) (n up to 100).
    if (x < -REFLECT_BELOW && x != std::floor(x)) {
        if (n > 100) return NaN;
        return (n % 2 ? -1.0 : 1.0) * polygamma(n, 1 - x) - PI * cot_derivative(n, x);
    }
    return (n % 2 ? 1.0 : -1.0) * std::tgamma(n + 1.0) * hurwitz_zeta(n + 1.0, x);
}

double beta(double a, double b) { return beta_impl(a, b, false); }
double betaln(double a, double b) { return beta_impl(a, b, true); }

double i0(double x) { return bessel_i(0, std::fabs(x)); }
double i1(double x) { return std::copysign(bessel_i(1, std::fabs(x)), x); }

}  // namespace tapegrad::special
