// ndarray values: conversion, the forward through numpy, the fused backward
// kernels, and the one place where broadcasting is undone.
#pragma once

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#define PY_ARRAY_UNIQUE_SYMBOL tapegrad_ARRAY_API
#ifndef TAPEGRAD_IMPORT_ARRAY
#define NO_IMPORT_ARRAY
#endif
#include <numpy/arrayobject.h>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace tapegrad {

bool init_arrays();

// Data given by the user as a float32 or float64 ndarray (integers and
// booleans become float64); a new reference, or nullptr with TypeError
// naming `what` and the dtype for complex, object, string and other data.
PyObject* to_float_array(PyObject* data, const char* what);

// The forward of op `code` on ndarray or float operands (b is nullptr for a
// unary op): numpy's ufunc where there is one, else the op's own template in
// one loop, writing into a pooled buffer when the output's layout is known up
// front (pool may be null), or into `into` when given (an array of the output's
// layout nobody else holds, Note [Temporaries]). Shape errors are reported with
// numpy's broadcasting rule.
class BufferPool;
PyObject* array_forward(uint8_t code, PyObject* a, PyObject* b, BufferPool* pool,
                        PyObject* into = nullptr);

// numpy's inner loop for op `code` on contiguous operands of dtype `type`
// (NPY_FLOAT32 or NPY_FLOAT64): the loop its ufunc call runs, so a block run
// through it gives the eager op's values. `exponent` (x ** e with a constant
// e, else null) takes the shortcuts array_forward takes. `found` is false
// when the op has no ufunc (its own template loop computes it) or numpy has
// no such loop.
struct InnerLoop {
    void (*function)(char** args, npy_intp const* dimensions, npy_intp const* steps, void* data) = nullptr;
    void* data = nullptr;
    bool has_ufunc = false;
    int inputs = 0;  // the loop's operands: 1, or 2 (x ** 2 runs square: 1)
};
InnerLoop ufunc_inner_loop(uint8_t code, int type, const double* exponent);

// numpy's ufunc of op `code` on a and b with `out` given (numpy's broadcasting
// and same_kind casting into out's shape and dtype): a new reference to out,
// or nullptr with numpy's error set.
PyObject* ufunc_into(uint8_t code, PyObject* a, PyObject* b, PyObject* out);

// Where one input's gradient goes: into `into`, a C-contiguous buffer of
// out's shape and dtype (written, or added to when `add`), or else into a new
// array of out's shape returned in `fresh`.
struct GradSink {
    PyObject* into = nullptr;
    bool add = false;
    PyObject* fresh = nullptr;  // new reference, when `into` is null
};

// The backward of op `code` for upstream gradient g (the shape and dtype of
// `out`), in one fused pass over memory that also accumulates into the
// sinks' buffers. A null sink is not computed; fresh sinks come from the pool
// (which may be null). Operands are ndarrays or floats.
bool array_backward(uint8_t code, PyObject* a, PyObject* b, PyObject* out, PyObject* g,
                    GradSink* ga, GradSink* gb, BufferPool* pool);

// Whether arr can take a gradient of out directly: same shape and dtype.
bool same_layout(PyObject* arr, PyObject* out);

// A new uninitialised C-contiguous array of like's shape and dtype.
PyObject* empty_like(PyObject* like);

// Note [Undoing broadcasts]
// A gradient that reaches an input of another shape was broadcast on the way
// to the output, and is summed back down to the input's shape. The rule
// (which axes are summed) is summed_axes, written once: the numeric sweep
// applies it with numpy's C API (sum_to_like), the recording sweep with
// recorded sums (RecordingRows::sum_to_node), so that both undo a broadcast
// alike.

// The axes of a gradient of shape `have` summed to give shape `want` (the
// shapes aligned at their last axes): the leading ones `have` has beyond
// `want`'s, and those where `want` is 1 and `have` is not. In increasing order.
std::vector<int> summed_axes(const std::vector<npy_intp>& have, const std::vector<npy_intp>& want);

// Broadcasting undone: g summed down to like's shape and cast to like's dtype,
// C-contiguous. Returns g itself (a new reference) when nothing is needed.
PyObject* sum_to_like(PyObject* g, PyObject* like);

// A read-only view of ndarray a broadcast to `dims` (numpy's rules), without
// numpy's Python-level broadcast_to.
PyObject* broadcast_view(PyObject* a, int nd, const npy_intp* dims);

// Along the last axis of a C-contiguous float32/float64 array x, kept as an
// axis of 1: log(sum(exp(x))) (`log` true) or exp(x) / sum(exp(x)) (false,
// then of x's shape). Each row's maximum is taken out first, so no exp
// overflows; numpy's exp (vectorised) does the exponentials and one loop per
// row the rest, instead of the six numpy calls of the general path. nullptr
// with no error set when x is not such an array or a row holds an infinity or
// a NaN (the general path handles those, warning as numpy does).
PyObject* softmax_last_axis(PyObject* x, bool log);

// zeros of `shape` (a tuple) in g's dtype, with each element of g added at
// its position a + b (C-order element numbers; intp arrays broadcastable to
// g's shape, b may be null), repeated positions adding up: one pass over g
// (Note [Scatter by positions] in numeric.hpp). When a_length > 0, a holds
// indices into an axis of that length and stride a_stride instead, negative
// ones counting from the end, and the position is a * a_stride + b. nullptr
// with no error when g is not a float32/float64 array or the operands do not
// have that form (the caller then uses add.at); IndexError for an index or a
// position outside the array.
PyObject* scatter_positions(PyObject* shape, PyObject* a, npy_intp a_length, npy_intp a_stride,
                            PyObject* b, PyObject* g);

// Sum of all elements as a double (a gradient flowing into a scalar).
double sum_all(PyObject* g);

// buf += g, both C-contiguous arrays of one shape and dtype.
void add_into(PyObject* buf, PyObject* g);

// A read-only array of a's shape and dtype with no data of its own (zero
// strides over one element): what the tape keeps of a value no backward reads.
PyObject* layout_of(PyObject* a);

// Whether a is such a layout.
bool is_layout(PyObject* a);

// A new C-contiguous array of like's shape and dtype filled with v.
PyObject* filled_like(PyObject* like, double v);

// Sets every element of a C-contiguous float32/float64 array to v.
void fill(PyObject* a, double v);

// A private, writable, C-contiguous copy (for a gradient buffer we will add into).
PyObject* owned_copy(PyObject* arr);

// Note [Unseen arrays]
// The pool reuses an array, the sweep adds into a buffer in place and hands it
// out, and a temporary takes an op's result: each writes into memory, so each
// must know that nobody else can see it. A reference count of 1 is not enough:
// a weak reference (weakref.ref(a), a WeakValueDictionary) is not counted, and
// an array that is a view shares memory that other arrays see. So an array is
// unseen only when we hold its one reference, nothing refers to it weakly, it
// owns its data and has no base, and it is a plain ndarray (a subclass may
// keep references in its __dict__).
bool is_unseen(PyObject* arr);

// Note [Immutable values]
// A value the tape keeps must not change while a graph uses it: a gradient
// would mix values it never saw. So every array tapegrad keeps is read-only and
// reachable from nowhere else: the results of ops (read-only), and copies of
// what the caller gives: Tensor(a) copies, as np.array(a) and torch.tensor(a)
// do, and so does t.data = a; so are a constant operand a backward reads
// (x * c), an array op's constant inputs and array parameters (index arrays,
// masks, where's condition, clip's bounds) and arrays a Function saves. The
// caller's own array is copied even when it is read-only: its owner may make
// it writable again. Gradients handed out as Tensors are read-only too.
// A new reference to an array with a's values that nobody else can write: a
// itself when it is unseen (just made: it is made read-only), else a read-only copy.
PyObject* immutable_value(PyObject* a);

// The same for every ndarray inside an array op's parameters (nested tuples
// and lists, rebuilt where they hold one); anything else is kept as it is.
PyObject* immutable_params(PyObject* params);

// An unseen (Note [Unseen arrays]), writable, C-contiguous array of like's
// shape and dtype: a buffer the sweep may add into.
bool is_owned_buffer(PyObject* arr, PyObject* like);

// Note [Uniform gradients]
// The gradient of a sum or a mean over all elements, and compute_gradients'
// default starting gradient for an array target, is one value at every element. The sweep
// keeps such a gradient as a read-only view with zero strides over that value,
// as np.broadcast_to makes, instead of writing it out: a fused kernel reads it
// from a block of the value in L1 rather than a full-size buffer from memory,
// and add passes it on unchanged. It is written out (materialised) only where
// something is added into it, or where it leaves the fused kernels: a result
// returned to the user, a hook, a Function's backward, an array op's backward.
// At 1e6 elements that saves a write of the starting gradient, a copy at the first add and
// a full read of the gradient in each kernel it reaches.

// Whether a is such a view: a float32/float64 ndarray of at least one
// dimension, read-only, every stride zero.
bool is_uniform(PyObject* a);

// The one value of a uniform array.
double uniform_value(PyObject* a);

// A uniform array of like's shape and dtype holding v (a filled array for 0-d).
PyObject* uniform_like(PyObject* like, double v);

// buf += v, for a C-contiguous float32/float64 array.
void add_value(PyObject* buf, double v);

}  // namespace tapegrad
