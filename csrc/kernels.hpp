// The elementwise loops every array path shares: an op's forward over
// contiguous buffers, and its fused backward (arrays.cpp runs them over whole
// arrays, fusion.cpp over blocks of a fused group).
#pragma once

#include <numpy/npy_common.h>

#include <type_traits>

#include "ops.hpp"

namespace tapegrad {
namespace kernels {

// Note [Kernel ISA]
// The wheel is built for baseline x86-64 (SSE2), but a fused kernel runs
// ~20% faster with AVX2 and FMA (the elementwise chain at 1e6 elements: the
// divisions and multiplies of several streams, not memory, bound it). So on
// x86-64 Linux with GCC and glibc each loop is compiled twice, and the loader picks the
// AVX2 clone where the CPU has it (target_clones; glibc's ifunc).
#if defined(__x86_64__) && defined(__linux__) && defined(__GLIBC__) && defined(__GNUC__) && !defined(__clang__)
#define TAPEGRAD_KERNEL __attribute__((target_clones("default", "arch=x86-64-v3")))
#else
#define TAPEGRAD_KERNEL
#endif

// What a kernel does with one input's gradient.
// MERGED: both inputs are one array (x * x): each element gets da + db,
// summed in registers and stored once into pa by MODE_A, so the loop has one
// store stream and vectorizes (two stores to one address cannot).
enum SinkMode { NONE, WRITE, ADD, MERGED };

template <int MODE, class T>
inline void store(T* dest, npy_intp i, T v) {
    if constexpr (MODE == WRITE) dest[i] = v;
    else if constexpr (MODE == ADD) dest[i] += v;
}

// The fused loop of one op. Every choice is a template parameter, so each
// instantiation is branch-free and the compiler can vectorize it.
// An operand that is not an array is its `value` at every element.
template <class Op, class T, bool A_ARRAY, bool B_ARRAY, int MODE_A, int MODE_B>
TAPEGRAD_KERNEL void kernel_loop(npy_intp n, const T* a, T a_value, const T* b, T b_value,
                                 const T* out, const T* g, T* pa, T* pb) {
    for (npy_intp i = 0; i < n; ++i) {
        const T x = A_ARRAY ? a[i] : a_value;
        if constexpr (Op::arity == 2) {
            const T y = B_ARRAY ? b[i] : b_value;
            T da = T(0), db = T(0);
            backward_wanted<Op>(x, y, out[i], g[i], da, db, std::bool_constant<MODE_A != NONE>{},
                                std::bool_constant<MODE_B != NONE>{});
            if constexpr (MODE_B == MERGED) {
                store<MODE_A>(pa, i, da + db);
            } else {
                store<MODE_A>(pa, i, da);
                store<MODE_B>(pb, i, db);
            }
        } else {
            store<MODE_A>(pa, i, Op::backward(x, out[i], g[i]));
        }
    }
}

// p + start, for a pointer the kernel may not use (then null).
template <class P>
P* at(P* p, npy_intp start) { return p ? p + start : p; }

// Turns runtime choices into template arguments: f(integral_constant<int, v>).
template <int N, class F>
void with_choice(int v, F&& f) {
    static_assert(N == 2 || N == 3);
    if (v == 0) {
        f(std::integral_constant<int, 0>{});
    } else if constexpr (N == 2) {
        f(std::integral_constant<int, 1>{});
    } else {
        if (v == 1) f(std::integral_constant<int, 1>{});
        else f(std::integral_constant<int, 2>{});
    }
}

template <class Op, class T>
TAPEGRAD_KERNEL void forward_kernel(npy_intp n, const T* x, T* y) {
    for (npy_intp i = 0; i < n; ++i) y[i] = Op::forward(x[i]);
}

template <class Op, class T, bool A_ARRAY, bool B_ARRAY>
TAPEGRAD_KERNEL void forward_kernel2(npy_intp n, const T* a, T a_value, const T* b, T b_value, T* y) {
    for (npy_intp i = 0; i < n; ++i) y[i] = Op::forward(A_ARRAY ? a[i] : a_value, B_ARRAY ? b[i] : b_value);
}

}  // namespace kernels
}  // namespace tapegrad
