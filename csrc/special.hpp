// Special functions of scipy.special in double precision, for the op table
// (ops.hpp): each matches scipy's value (tests/test_special.py checks them
// against scipy and mpmath over wide ranges, poles and tails included).
#pragma once

namespace tapegrad::special {

double erfinv(double y);
double erfcinv(double z);
double ndtr(double x);
double log_ndtr(double x);
double ndtri(double p);
double logit(double p);
double xlogy(double x, double y);
double xlog1py(double x, double y);
double gamma(double x);
double rgamma(double x);
double gammaln(double x);
double digamma(double x);
double hurwitz_zeta(double s, double q);
double polygamma(int n, double x);
double beta(double a, double b);
double betaln(double a, double b);
double i0(double x);
double i1(double x);

}  // namespace tapegrad::special
