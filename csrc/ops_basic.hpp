// The elementwise ops ordinary programs are made of: arithmetic and the common
// functions (Note [One table] in ops.hpp; most are hot ops, Note [Hot ops]).
#pragma once

#include "op_helpers.hpp"

namespace tapegrad {

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
    // Each input's gradient reads the other input only: x * 0.5 keeps no x.
    static constexpr int reads_a = READS_B;
    static constexpr int reads_b = READS_A;
    static constexpr int reads = reads_a | reads_b;
    template <class T> static T forward(T a, T b) { return a * b; }
    template <class T> static T backward_a(T, T b, T, T g) { return g * b; }
    template <class T> static T backward_b(T a, T, T, T g) { return g * a; }
    template <class T> static void backward(T a, T b, T out, T g, T& ga, T& gb) {
        ga = backward_a(a, b, out, g);
        gb = backward_b(a, b, out, g);
    }
};

struct Div {
    static constexpr const char* name = "div";
    static constexpr const char* function = "divide";
    static constexpr const char* numpy = "numpy.true_divide";
    static constexpr const char* method = "divide";
    static constexpr const char* doc = "a / b, elementwise (true division).";
    static constexpr int arity = 2;
    // x / 4.0 keeps no output: only the divisor's gradient reads it.
    static constexpr int reads_a = READS_B;
    static constexpr int reads_b = READS_B | READS_OUT;
    static constexpr int reads = reads_a | reads_b;
    template <class T> static T forward(T a, T b) { return a / b; }
    template <class T> static T backward_a(T, T b, T, T g) { return g / b; }
    template <class T> static T backward_b(T, T b, T out, T g) { return -g * out / b; }
    template <class T> static void backward(T a, T b, T out, T g, T& ga, T& gb) {
        ga = backward_a(a, b, out, g);
        gb = backward_b(a, b, out, g);
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


}  // namespace tapegrad
