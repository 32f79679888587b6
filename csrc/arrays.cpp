#define TAPEGRAD_IMPORT_ARRAY
#include "arrays.hpp"

#define NO_IMPORT_UFUNC
#include <numpy/ufuncobject.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <type_traits>
#include <vector>

#include "ops.hpp"
#include "kernels.hpp"
#include "pool.hpp"

namespace tapegrad {

namespace {

using namespace kernels;

PyObject* ufuncs[OP_COUNT] = {};

// numpy's shortcuts for a ** e (ndarray.__pow__ takes them for a number e;
// np.power does not): a ** 2 is square, a ** 0.5 sqrt, a ** -1 reciprocal.
// Taking them gives x ** 2 on a Tensor numpy's speed and numpy's values:
// square, sqrt and reciprocal are single instructions per element where
// power calls pow.
PyObject* square_ufunc = nullptr;
PyObject* sqrt_ufunc = nullptr;
PyObject* reciprocal_ufunc = nullptr;

PyObject* power_shortcut(double e) {
    if (e == 2.0) return square_ufunc;
    if (e == 0.5) return sqrt_ufunc;
    if (e == -1.0) return reciprocal_ufunc;
    return nullptr;
}

// A borrowed reference that is released on scope exit.
struct Ref {
    PyObject* p = nullptr;
    Ref() = default;
    explicit Ref(PyObject* o) : p(o) {}
    ~Ref() { Py_XDECREF(p); }
    Ref(const Ref&) = delete;
    Ref& operator=(const Ref&) = delete;
    PyObject* release() {
        PyObject* o = p;
        p = nullptr;
        return o;
    }
};

PyArrayObject* arr(PyObject* o) { return reinterpret_cast<PyArrayObject*>(o); }

template <class T>
TAPEGRAD_KERNEL void add_loop(npy_intp n, T* d, const T* s) {
    for (npy_intp i = 0; i < n; ++i) d[i] += s[i];
}

template <class T>
TAPEGRAD_KERNEL void add_value_loop(npy_intp n, T* d, T v) {
    for (npy_intp i = 0; i < n; ++i) d[i] += v;
}

std::string shape_text(PyObject* o) {
    if (!PyArray_Check(o)) return "()";
    std::string s = "(";
    int nd = PyArray_NDIM(arr(o));
    for (int i = 0; i < nd; ++i) {
        if (i) s += ", ";
        s += std::to_string(PyArray_DIM(arr(o), i));
    }
    if (nd == 1) s += ",";
    return s + ")";
}

// An operand of a kernel: either one value for every element, or a
// contiguous buffer of the output's size in the kernel's dtype.
template <class T>
struct Operand {
    const T* data = nullptr;
    T value = T(0);
    Ref keep;
    T operator[](npy_intp i) const { return data ? data[i] : value; }
};

template <class T>
constexpr int npy_type_of() {
    return std::is_same<T, float>::value ? NPY_FLOAT32 : NPY_FLOAT64;
}

// Prepares o (float or ndarray) as an operand for an output of out's shape.
template <class T>
bool prepare(PyObject* o, PyObject* out, Operand<T>& operand) {
    if (!PyArray_Check(o)) {
        operand.value = static_cast<T>(PyFloat_AsDouble(o));
        return !PyErr_Occurred();
    }
    PyArrayObject* a = arr(o);
    if (PyArray_SIZE(a) == 1 && PyArray_SIZE(arr(out)) != 1) {
        Ref flat(PyArray_FROM_OTF(o, npy_type_of<T>(), NPY_ARRAY_CARRAY_RO | NPY_ARRAY_FORCECAST));
        if (!flat.p) return false;
        operand.value = *static_cast<const T*>(PyArray_DATA(arr(flat.p)));
        return true;
    }
    PyObject* source = o;
    Ref broadcast;
    if (!PyArray_SAMESHAPE(a, arr(out))) {
        broadcast.p = broadcast_view(o, PyArray_NDIM(arr(out)), PyArray_DIMS(arr(out)));
        if (!broadcast.p) return false;
        source = broadcast.p;
    }
    operand.keep.p = PyArray_FROM_OTF(source, npy_type_of<T>(), NPY_ARRAY_CARRAY_RO | NPY_ARRAY_FORCECAST);
    if (!operand.keep.p) return false;
    operand.data = static_cast<const T*>(PyArray_DATA(arr(operand.keep.p)));
    return true;
}


// A new array of out's layout: from the pool when there is one.
PyObject* fresh_like(PyObject* out, BufferPool* pool) {
    if (!pool) return empty_like(out);
    return pool->take(PyArray_NDIM(arr(out)), PyArray_DIMS(arr(out)), PyArray_TYPE(arr(out)));
}

template <class T>
bool open_sink(GradSink* sink, PyObject* out, BufferPool* pool, T*& data) {
    data = nullptr;
    if (!sink) return true;
    if (!sink->into) {
        sink->fresh = fresh_like(out, pool);
        if (!sink->fresh) return false;
    }
    data = static_cast<T*>(PyArray_DATA(arr(sink->into ? sink->into : sink->fresh)));
    return true;
}

// Elements per block when the gradient is uniform: a block of the one value
// (4 KiB of doubles) stays in L1 while the kernel runs over each block.
constexpr npy_intp UNIFORM_BLOCK = 512;

int sink_mode(const GradSink* sink) {
    using namespace kernels;
    if (!sink) return NONE;
    return sink->into && sink->add ? ADD : WRITE;
}

template <class Op, class T>
bool backward_kernel(PyObject* a, PyObject* b, PyObject* out, PyObject* g, GradSink* ga,
                     GradSink* gb, BufferPool* pool) {
    const npy_intp n = PyArray_SIZE(arr(out));
    // Only what the backward reads for the gradients wanted is prepared: add's
    // never broadcasts or copies its operands, x ** 2's never reads its output.
    const int reads = reads_wanted<Op>(ga != nullptr, gb != nullptr);
    Operand<T> va, vb;
    if (reads & READS_A) {
        if (!prepare<T>(a, out, va)) return false;
    }
    if (Op::arity == 2 && (reads & READS_B)) {
        if (!prepare<T>(b, out, vb)) return false;
    }
    // A uniform gradient (Note [Uniform gradients]) is read from a block of
    // its value, block by block, instead of being written out in full.
    const bool g_uniform = is_uniform(g);
    T g_block[UNIFORM_BLOCK];
    Ref gc;
    const T* gp = g_block;
    if (g_uniform) {
        const T v = static_cast<T>(uniform_value(g));
        std::fill(g_block, g_block + UNIFORM_BLOCK, v);
    } else {
        gc.p = PyArray_FROM_OTF(g, npy_type_of<T>(), NPY_ARRAY_CARRAY_RO | NPY_ARRAY_FORCECAST);
        if (!gc.p) return false;
        gp = static_cast<const T*>(PyArray_DATA(arr(gc.p)));
    }
    const T* op = nullptr;  // set when the backward uses `out`
    Ref oc;
    if (reads & READS_OUT) {
        // A row keeps its output only when a gradient it records wants it (reads_wanted).
        if (is_layout(out)) {
            PyErr_Format(PyExc_RuntimeError, "tapegrad: %s's backward needs its output, which its "
                         "row did not keep (please report this)", Op::name);
            return false;
        }
        oc.p = PyArray_FROM_OTF(out, npy_type_of<T>(), NPY_ARRAY_CARRAY_RO | NPY_ARRAY_FORCECAST);
        if (!oc.p) return false;
        op = static_cast<const T*>(PyArray_DATA(arr(oc.p)));
    }
    T* pa;
    T* pb;
    if (!open_sink<T>(ga, out, pool, pa) || !open_sink<T>(gb, out, pool, pb)) return false;
    // The whole range at once, or block by block over a uniform gradient.
    // `out` is g where the backward does not read it (a valid, unused pointer).
    auto over_range = [&](auto&& loop) {
        auto run = [&](npy_intp start, npy_intp len) {
            const T* g_here = g_uniform ? gp : gp + start;
            loop(start, len, op ? op + start : g_here, g_here);
        };
        if (!g_uniform) return run(0, n);
        for (npy_intp start = 0; start < n; start += UNIFORM_BLOCK)
            run(start, std::min(UNIFORM_BLOCK, n - start));
    };
    with_choice<2>(va.data != nullptr, [&](auto a_array) {
        with_choice<3>(sink_mode(ga), [&](auto mode_a) {
            if constexpr (Op::arity == 2) {
                with_choice<2>(vb.data != nullptr, [&](auto b_array) {
                    auto run = [&](auto mode_b) {
                        over_range([&](npy_intp start, npy_intp len, const T* o, const T* gs) {
                            kernel_loop<Op, T, a_array(), b_array(), mode_a(), mode_b()>(
                                len, at(va.data, start), va.value, at(vb.data, start), vb.value,
                                o, gs, at(pa, start), at(pb, start));
                        });
                    };
                    // One sink for both inputs (x * x): pa and pb are one buffer.
                    if constexpr (a_array() && b_array() && mode_a() != NONE) {
                        if (pa == pb) return run(std::integral_constant<int, MERGED>{});
                    }
                    with_choice<3>(sink_mode(gb), run);
                });
            } else if constexpr (mode_a() != NONE) {
                over_range([&](npy_intp start, npy_intp len, const T* o, const T* gs) {
                    kernel_loop<Op, T, a_array(), false, mode_a(), NONE>(
                        len, at(va.data, start), va.value, nullptr, T(0), o, gs, at(pa, start),
                        nullptr);
                });
            }
        });
    });
    return true;
}

template <class Op, class T>
PyObject* forward_loop(PyObject* a, BufferPool* pool, PyObject* into) {
    Ref ac(PyArray_FROM_OTF(a, npy_type_of<T>(), NPY_ARRAY_CARRAY_RO | NPY_ARRAY_FORCECAST));
    if (!ac.p) return nullptr;
    PyObject* r = into ? Py_NewRef(into) : fresh_like(ac.p, pool);
    if (!r) return nullptr;
    const npy_intp n = PyArray_SIZE(arr(ac.p));
    forward_kernel<Op, T>(n, static_cast<const T*>(PyArray_DATA(arr(ac.p))),
                          static_cast<T*>(PyArray_DATA(arr(r))));
    return r;
}

bool is_float_type(int t) { return t == NPY_FLOAT32 || t == NPY_FLOAT64; }

// A binary op with no numpy ufunc (scipy.special's xlogy, beta, ...): its own
// forward over the broadcast operands, float32 only where neither is float64.
template <class Op>
PyObject* forward_loop2(PyObject* a, PyObject* b, BufferPool* pool) {
    Ref it(PyArray_MultiIterNew(2, a, b));
    if (!it.p) return nullptr;
    auto* multi = reinterpret_cast<PyArrayMultiIterObject*>(it.p);
    auto is64 = [](PyObject* o) { return PyArray_Check(o) && PyArray_TYPE(arr(o)) != NPY_FLOAT32; };
    const int type = is64(a) || is64(b) || (!PyArray_Check(a) && !PyArray_Check(b)) ? NPY_FLOAT64 : NPY_FLOAT32;
    PyObject* r = pool ? pool->take(multi->nd, multi->dimensions, type)
                       : PyArray_Empty(multi->nd, multi->dimensions, PyArray_DescrFromType(type), 0);
    if (!r) return nullptr;
    Ref out(r);
    auto run = [&](auto t) -> bool {
        using T = decltype(t);
        Operand<T> va, vb;
        if (!prepare<T>(a, out.p, va) || !prepare<T>(b, out.p, vb)) return false;
        const npy_intp n = PyArray_SIZE(arr(out.p));
        T* y = static_cast<T*>(PyArray_DATA(arr(out.p)));
        with_choice<2>(va.data != nullptr, [&](auto a_array) {
            with_choice<2>(vb.data != nullptr, [&](auto b_array) {
                forward_kernel2<Op, T, a_array(), b_array()>(n, va.data, va.value, vb.data, vb.value, y);
            });
        });
        return true;
    };
    if (!(type == NPY_FLOAT32 ? run(float()) : run(double()))) return nullptr;
    return out.release();
}

}  // namespace

namespace {

template <class T>
PyObject* softmax_rows(PyArrayObject* x, bool log) {
    const int nd = PyArray_NDIM(x);
    const npy_intp n = PyArray_DIM(x, nd - 1), rows = PyArray_SIZE(x) / n;
    Ref shifted(PyArray_Empty(nd, PyArray_DIMS(x), PyArray_DescrFromType(npy_type_of<T>()), 0));
    if (!shifted.p) return nullptr;
    std::vector<double> row_max(static_cast<size_t>(rows));
    const T* xp = static_cast<const T*>(PyArray_DATA(x));
    T* sp = static_cast<T*>(PyArray_DATA(arr(shifted.p)));
    for (npy_intp r = 0; r < rows; ++r) {
        const T* row = xp + r * n;
        T m = row[0];
        for (npy_intp j = 1; j < n; ++j) m = (row[j] > m || row[j] != row[j]) ? row[j] : m;
        // An infinity or a NaN: the general path, which warns as numpy does.
        if (!std::isfinite(m)) return nullptr;
        row_max[static_cast<size_t>(r)] = m;
        for (npy_intp j = 0; j < n; ++j) sp[r * n + j] = row[j] - m;
    }
    Ref e(PyObject_CallFunctionObjArgs(ufuncs[OP_EXP], shifted.p, shifted.p, nullptr));
    if (!e.p) return nullptr;
    auto row_total = [&](npy_intp r) {
        T total = T(0);
        for (npy_intp j = 0; j < n; ++j) total += sp[r * n + j];
        return total;
    };
    if (!log) {
        for (npy_intp r = 0; r < rows; ++r) {
            const T total = row_total(r);
            for (npy_intp j = 0; j < n; ++j) sp[r * n + j] /= total;
        }
        return shifted.release();
    }
    std::vector<npy_intp> dims(PyArray_DIMS(x), PyArray_DIMS(x) + nd);
    dims[static_cast<size_t>(nd - 1)] = 1;
    PyObject* out = PyArray_Empty(nd, dims.data(), PyArray_DescrFromType(npy_type_of<T>()), 0);
    if (!out) return nullptr;
    T* op = static_cast<T*>(PyArray_DATA(arr(out)));
    for (npy_intp r = 0; r < rows; ++r)
        op[r] = static_cast<T>(std::log(row_total(r)) + row_max[static_cast<size_t>(r)]);
    return out;
}

}  // namespace

PyObject* softmax_last_axis(PyObject* x, bool log) {
    if (!PyArray_CheckExact(x)) return nullptr;  // (nullptr with no error: not for this kernel)
    PyArrayObject* a = arr(x);
    const int type = PyArray_TYPE(a);
    if (PyArray_NDIM(a) < 1 || PyArray_SIZE(a) == 0 || !PyArray_IS_C_CONTIGUOUS(a) ||
        !PyArray_ISALIGNED(a) || PyArray_ISBYTESWAPPED(a) || (type != NPY_FLOAT64 && type != NPY_FLOAT32))
        return nullptr;
    return type == NPY_FLOAT32 ? softmax_rows<float>(a, log) : softmax_rows<double>(a, log);
}

bool init_arrays() {
    if (PyArray_ImportNumPyAPI() < 0) return false;
    Ref numpy(PyImport_ImportModule("numpy"));
    if (!numpy.p) return false;
    // Each op's numpy ufunc, looked up once by the name its table entry gives
    // ("numpy.exp"): its kernel computes the op's forward on arrays. An op
    // with none (or a scipy ufunc) runs its own forward in a fused loop.
    Ref ufunc_type(PyObject_GetAttrString(numpy.p, "ufunc"));
    if (!ufunc_type.p) return false;
    auto load = [&](uint8_t code, const char* path) {
        const std::string attribute = numpy_ufunc_name(path);
        if (attribute.empty()) return true;
        Ref found(PyObject_GetAttrString(numpy.p, attribute.c_str()));
        if (!found.p) return false;
        const int is_ufunc = PyObject_IsInstance(found.p, ufunc_type.p);
        if (is_ufunc < 0) return false;
        if (is_ufunc) ufuncs[code] = found.release();
        return true;
    };
#define TAPEGRAD_LOAD(code, cls) \
    if (!load(OP_##code, cls::numpy)) return false;
    TAPEGRAD_OPS(TAPEGRAD_LOAD)
#undef TAPEGRAD_LOAD
    square_ufunc = PyObject_GetAttrString(numpy.p, "square");
    sqrt_ufunc = PyObject_GetAttrString(numpy.p, "sqrt");
    reciprocal_ufunc = PyObject_GetAttrString(numpy.p, "reciprocal");
    return square_ufunc && sqrt_ufunc && reciprocal_ufunc;
}

PyObject* to_float_array(PyObject* data, const char* what) {
    // A base-class ndarray: a subclass could carry a __dict__ that refers back
    // to the Tensor, a cycle the (untracked) Tensor could never be freed from.
    Ref a(PyArray_FromAny(data, nullptr, 0, 0, NPY_ARRAY_ENSUREARRAY, nullptr));
    if (!a.p) {
        if (PyErr_ExceptionMatches(PyExc_ValueError) || PyErr_ExceptionMatches(PyExc_TypeError)) {
            PyErr_Clear();
            PyErr_Format(PyExc_TypeError,
                         "%s: expected a number, a numeric ndarray or a nested list of numbers, "
                         "got %.100s",
                         what, Py_TYPE(data)->tp_name);
        }
        return nullptr;
    }
    int t = PyArray_TYPE(arr(a.p));
    if (is_float_type(t)) return a.release();
    if (PyTypeNum_ISINTEGER(t) || PyTypeNum_ISBOOL(t) || t == NPY_FLOAT16 || t == NPY_LONGDOUBLE)
        return PyArray_FROM_OTF(a.p, NPY_FLOAT64, NPY_ARRAY_DEFAULT);
    PyObject* dtype = PyObject_Str(reinterpret_cast<PyObject*>(PyArray_DESCR(arr(a.p))));
    const char* reason = PyTypeNum_ISCOMPLEX(t) ? " (complex numbers are not supported yet)" : "";
    PyErr_Format(PyExc_TypeError,
                 "%s: data of dtype %S cannot be differentiated%s; give float32 or float64 data "
                 "(integers and booleans are converted to float64)",
                 what, dtype ? dtype : Py_None, reason);
    Py_XDECREF(dtype);
    return nullptr;
}

namespace {
// The output of a ufunc on these operands when it is plain to see (same-shape
// float arrays of one dtype, or one such array with a float): a pooled buffer
// for it, or nullptr to let numpy allocate.
PyObject* pooled_output(PyObject* a, PyObject* b, BufferPool* pool) {
    if (!pool) return nullptr;
    PyObject* array = PyArray_Check(a) ? a : b;
    PyObject* other = array == a ? b : a;
    if (!array || !PyArray_Check(array)) return nullptr;
    PyArrayObject* x = arr(array);
    if (other && !PyFloat_Check(other) &&
        (!PyArray_Check(other) || PyArray_TYPE(arr(other)) != PyArray_TYPE(x)))
        return nullptr;
    if (!other || PyFloat_Check(other) || PyArray_SAMESHAPE(arr(other), x)) {
        if (static_cast<size_t>(PyArray_NBYTES(x)) < BufferPool::MIN_BYTES) return nullptr;
        return pool->take(PyArray_NDIM(x), PyArray_DIMS(x), PyArray_TYPE(x));
    }
    // Two shapes that broadcast (x - m over a batch): the output's, by numpy's
    // rule; shapes that do not broadcast get no buffer, and numpy's error.
    PyArrayObject* y = arr(other);
    const int nx = PyArray_NDIM(x), ny = PyArray_NDIM(y), nd = std::max(nx, ny);
    std::vector<npy_intp> dims(static_cast<size_t>(nd));
    npy_intp size = 1;
    for (int i = 1; i <= nd; ++i) {
        const npy_intp dx = i <= nx ? PyArray_DIM(x, nx - i) : 1, dy = i <= ny ? PyArray_DIM(y, ny - i) : 1;
        if (dx != dy && dx != 1 && dy != 1) return nullptr;
        dims[static_cast<size_t>(nd - i)] = dx == 1 ? dy : dx;
        size *= dims[static_cast<size_t>(nd - i)];
    }
    if (static_cast<size_t>(size) * static_cast<size_t>(PyArray_ITEMSIZE(x)) < BufferPool::MIN_BYTES) return nullptr;
    return pool->take(nd, dims.data(), PyArray_TYPE(x));
}
}  // namespace

// Note [Row broadcasts]
// `h @ w + b` adds a row to every row of a matrix, and the bias's gradient
// sums the rows back. numpy's iterator calls its inner loop once per row for
// these, so for short rows the per-call overhead dominates the arithmetic.
// One loop over the rows does both at the speed of a same-shape op; the
// arithmetic is numpy's, element for element.

namespace {

template <class Op, class T, bool ROW_FIRST>
TAPEGRAD_KERNEL void row_broadcast_kernel(npy_intp rows, npy_intp m, const T* big, const T* row,
                                          T* out) {
    for (npy_intp r = 0; r < rows; ++r) {
        const T* x = big + r * m;
        T* y = out + r * m;
        for (npy_intp j = 0; j < m; ++j)
            y[j] = ROW_FIRST ? Op::forward(row[j], x[j]) : Op::forward(x[j], row[j]);
    }
}

// Rows at least this big: below it numpy's per-call cost dominates anyway.
constexpr npy_intp ROW_BROADCAST_MIN_SIZE = 4096;

// Whether `row` (1-D, contiguous) broadcasts along the last axis of `big`
// (C-contiguous, 2-D or more), both of one float dtype.
bool is_row_of(PyObject* big, PyObject* row) {
    if (!PyArray_CheckExact(big) || !PyArray_CheckExact(row)) return false;
    PyArrayObject* g = arr(big);
    PyArrayObject* r = arr(row);
    const int type = PyArray_TYPE(g);
    return (type == NPY_FLOAT64 || type == NPY_FLOAT32) && PyArray_TYPE(r) == type &&
           PyArray_NDIM(g) >= 2 && PyArray_NDIM(r) == 1 && PyArray_SIZE(g) >= ROW_BROADCAST_MIN_SIZE &&
           PyArray_DIM(r, 0) == PyArray_DIM(g, PyArray_NDIM(g) - 1) && PyArray_IS_C_CONTIGUOUS(g) &&
           PyArray_IS_C_CONTIGUOUS(r) && PyArray_ISALIGNED(g) && PyArray_ISALIGNED(r) &&
           !PyArray_ISBYTESWAPPED(g) && !PyArray_ISBYTESWAPPED(r);
}

// a op b by row_broadcast_kernel (into `into` when given: the matrix's own
// array, Note [Temporaries]), or nullptr with no error when the operands are
// not a matrix and a row.
PyObject* row_broadcast(uint8_t code, PyObject* a, PyObject* b, BufferPool* pool, PyObject* into) {
    if (code != OP_ADD && code != OP_SUB && code != OP_MUL && code != OP_DIV) return nullptr;
    const bool row_first = is_row_of(b, a);
    if (!row_first && !is_row_of(a, b)) return nullptr;
    PyObject* big = row_first ? b : a;
    PyObject* row = row_first ? a : b;
    PyObject* out = into ? Py_NewRef(into) : fresh_like(big, pool);  // into: big's own array
    if (!out) return nullptr;
    const npy_intp m = PyArray_DIM(arr(row), 0), rows = PyArray_SIZE(arr(big)) / m;
    visit_op(code, [&](auto tag) {
        using Op = typename decltype(tag)::type;
        if constexpr (Op::arity == 2) {
            auto run = [&](auto t, auto first) {
                using T = decltype(t);
                row_broadcast_kernel<Op, T, first()>(rows, m, static_cast<const T*>(PyArray_DATA(arr(big))),
                                                     static_cast<const T*>(PyArray_DATA(arr(row))),
                                                     static_cast<T*>(PyArray_DATA(arr(out))));
            };
            const bool is32 = PyArray_TYPE(arr(big)) == NPY_FLOAT32;
            if (row_first) {
                if (is32) run(float(), std::true_type());
                else run(double(), std::true_type());
            } else {
                if (is32) run(float(), std::false_type());
                else run(double(), std::false_type());
            }
        }
    });
    return out;
}

}  // namespace

// Replaces numpy's broadcasting ValueError with one that names the op and the shapes.
static void broadcast_error(uint8_t code, PyObject* a, PyObject* b) {
    PyErr_Format(PyExc_ValueError,
                 "%s: shapes %s and %s cannot be broadcast together (numpy's rule: "
                 "align the shapes on the right; each pair of sizes must be equal or "
                 "one of them 1). Reshape an operand or add an axis with None.",
                 op_name(code), shape_text(a).c_str(), shape_text(b).c_str());
}

namespace {
// ufunc(a[, b], out=out): out by keyword, as numpy 2.4 asks of maximum and
// minimum (a third positional argument is deprecated there).
PyObject* call_with_out(PyObject* ufunc, PyObject* a, PyObject* b, PyObject* out) {
    static PyObject* out_name = Py_BuildValue("(s)", "out");
    if (!out_name) return nullptr;
    PyObject* args[4] = {nullptr, a, b ? b : out, out};
    const size_t positional = b ? 2 : 1;
    return PyObject_Vectorcall(ufunc, args + 1, positional | PY_VECTORCALL_ARGUMENTS_OFFSET, out_name);
}
}  // namespace

PyObject* array_forward(uint8_t code, PyObject* a, PyObject* b, BufferPool* pool, PyObject* into) {
    PyObject* ufunc = code < OP_COUNT ? ufuncs[code] : nullptr;
    // An op output is read-only (the tape may keep it); its only holder is writing it now.
    if (into) PyArray_ENABLEFLAGS(arr(into), NPY_ARRAY_WRITEABLE);
    if (b) {
        if (PyObject* out = row_broadcast(code, a, b, pool, into)) return out;
        if (PyErr_Occurred()) return nullptr;
    }
    Ref result;
    PyObject* second = b;  // the ufunc's second operand, if it takes one
    if (code == OP_POW && b && PyFloat_Check(b) && PyArray_Check(a)) {
        if (PyObject* shortcut = power_shortcut(PyFloat_AS_DOUBLE(b))) ufunc = shortcut, second = nullptr;
    }
    if (ufunc) {
        Ref out(into ? Py_NewRef(into) : pooled_output(a, b, pool));
        if (out.p) result.p = call_with_out(ufunc, a, second, out.p);
        else result.p = PyObject_CallFunctionObjArgs(ufunc, a, second, nullptr);
        if (!result.p) {
            if (b && PyErr_ExceptionMatches(PyExc_ValueError)) {
                PyErr_Clear();
                broadcast_error(code, a, b);
            }
            return nullptr;
        }
    } else {
        bool is32 = PyArray_Check(a) && PyArray_TYPE(arr(a)) == NPY_FLOAT32;
        visit_op(code, [&](auto tag) {
            using Op = typename decltype(tag)::type;
            if constexpr (Op::arity == 1) {
                result.p = is32 ? forward_loop<Op, float>(a, pool, into)
                                : forward_loop<Op, double>(a, pool, into);
            } else {
                result.p = forward_loop2<Op>(a, b, pool);
                if (!result.p && PyErr_ExceptionMatches(PyExc_ValueError)) {
                    PyErr_Clear();
                    broadcast_error(code, a, b);
                }
            }
        });
        if (!result.p) {
            if (!PyErr_Occurred())
                PyErr_Format(PyExc_RuntimeError, "tapegrad: no array forward for op %s",
                             op_name(code));
            return nullptr;
        }
    }
    // numpy returns a scalar for 0-d results; keep every array value an ndarray.
    if (!PyArray_Check(result.p)) {
        Ref as_array(PyArray_FROM_O(result.p));
        if (!as_array.p) return nullptr;
        std::swap(result.p, as_array.p);
    }
    if (!is_float_type(PyArray_TYPE(arr(result.p))))
        return PyArray_FROM_OTF(result.p, NPY_FLOAT64, NPY_ARRAY_DEFAULT);
    return result.release();
}

InnerLoop ufunc_inner_loop(uint8_t code, int type, const double* exponent) {
    InnerLoop loop;
    PyObject* ufunc = code < OP_COUNT ? ufuncs[code] : nullptr;
    if (code == OP_POW && exponent)
        if (PyObject* shortcut = power_shortcut(*exponent)) ufunc = shortcut;
    if (!ufunc) return loop;
    loop.has_ufunc = true;
    auto* u = reinterpret_cast<PyUFuncObject*>(ufunc);
    if (u->nout != 1 || u->core_enabled || !u->functions || !u->types) return loop;
    for (int i = 0; i < u->ntypes; ++i) {
        bool all = true;
        for (int k = 0; k < u->nargs; ++k) all = all && u->types[i * u->nargs + k] == type;
        if (!all || !u->functions[i]) continue;
        loop.function = u->functions[i];
        loop.data = u->data ? u->data[i] : nullptr;
        loop.inputs = u->nin;
        break;
    }
    return loop;
}

bool array_backward(uint8_t code, PyObject* a, PyObject* b, PyObject* out, PyObject* g,
                    GradSink* ga, GradSink* gb, BufferPool* pool) {
    bool is32 = PyArray_TYPE(arr(out)) == NPY_FLOAT32;
    bool ok = false;
    bool known = visit_op(code, [&](auto tag) {
        using Op = typename decltype(tag)::type;
        ok = is32 ? backward_kernel<Op, float>(a, b, out, g, ga, gb, pool)
                  : backward_kernel<Op, double>(a, b, out, g, ga, gb, pool);
    });
    if (!known) PyErr_Format(PyExc_RuntimeError, "tapegrad: no backward for op %d", int(code));
    if (!(known && ok)) {
        if (ga) Py_CLEAR(ga->fresh);
        if (gb) Py_CLEAR(gb->fresh);
    }
    return known && ok;
}

bool same_layout(PyObject* a, PyObject* out) {
    return PyArray_Check(a) && PyArray_TYPE(arr(a)) == PyArray_TYPE(arr(out)) &&
           PyArray_SAMESHAPE(arr(a), arr(out));
}

PyObject* empty_like(PyObject* like) {
    PyArrayObject* o = arr(like);
    return PyArray_Empty(PyArray_NDIM(o), PyArray_DIMS(o),
                         PyArray_DescrFromType(PyArray_TYPE(o)), 0);
}

PyObject* broadcast_view(PyObject* a_obj, int nd, const npy_intp* dims) {
    PyArrayObject* a = arr(a_obj);
    const int and_ = PyArray_NDIM(a);
    const int lead = nd - and_;
    std::string text = shape_text(a_obj);
    if (lead < 0) {
        PyErr_Format(PyExc_ValueError, "cannot broadcast an array of shape %s to %d dimensions",
                     text.c_str(), nd);
        return nullptr;
    }
    std::vector<npy_intp> strides(static_cast<size_t>(nd), 0);
    for (int i = lead; i < nd; ++i) {
        const npy_intp have = PyArray_DIM(a, i - lead);
        if (have == dims[i]) {
            strides[static_cast<size_t>(i)] = PyArray_STRIDE(a, i - lead);
        } else if (have != 1) {
            PyErr_Format(PyExc_ValueError, "cannot broadcast an array of shape %s: axis %d has "
                         "length %zd where %zd is needed", text.c_str(), i - lead,
                         static_cast<Py_ssize_t>(have), static_cast<Py_ssize_t>(dims[i]));
            return nullptr;
        }
    }
    PyArray_Descr* descr = PyArray_DESCR(a);
    Py_INCREF(descr);
    // A read-only view that keeps `a` alive, as np.broadcast_to makes.
    PyObject* view = PyArray_NewFromDescr(&PyArray_Type, descr, nd, const_cast<npy_intp*>(dims),
                                          strides.data(), PyArray_DATA(a), 0, nullptr);
    if (!view) return nullptr;
    Py_INCREF(a_obj);
    if (PyArray_SetBaseObject(arr(view), a_obj) < 0) {  // steals a_obj
        Py_DECREF(view);
        return nullptr;
    }
    return view;
}

namespace {
// One zero element that every layout view points at, never written.
alignas(16) const char layout_zero[16] = {};
}  // namespace

bool is_layout(PyObject* a) {
    return PyArray_Check(a) && PyArray_DATA(arr(a)) == static_cast<const void*>(layout_zero);
}

PyObject* layout_of(PyObject* a_obj) {
    PyArrayObject* a = arr(a_obj);
    std::vector<npy_intp> strides(static_cast<size_t>(PyArray_NDIM(a)), 0);
    PyArray_Descr* descr = PyArray_DESCR(a);
    Py_INCREF(descr);
    return PyArray_NewFromDescr(&PyArray_Type, descr, PyArray_NDIM(a), PyArray_DIMS(a),
                                strides.data(), const_cast<char*>(layout_zero), 0, nullptr);
}

namespace {
// out (m,) += every row of g (..., m), both of type T.
template <class T>
void sum_rows(PyObject* g, PyObject* out) {
    const npy_intp m = PyArray_DIM(arr(out), 0), rows = PyArray_SIZE(arr(g)) / m;
    T* o = static_cast<T*>(PyArray_DATA(arr(out)));
    const T* p = static_cast<const T*>(PyArray_DATA(arr(g)));
    for (npy_intp r = 0; r < rows; ++r) add_loop(m, o, p + r * m);
}
}  // namespace

std::vector<int> summed_axes(const std::vector<npy_intp>& have, const std::vector<npy_intp>& want) {
    // Shapes line up at their last axes, as numpy broadcasts them.
    const std::ptrdiff_t lead = static_cast<std::ptrdiff_t>(have.size()) - static_cast<std::ptrdiff_t>(want.size());
    std::vector<int> axes;
    for (std::ptrdiff_t i = 0; i < static_cast<std::ptrdiff_t>(have.size()); ++i)
        if (i < lead || (want[static_cast<size_t>(i - lead)] == 1 && have[static_cast<size_t>(i)] != 1))
            axes.push_back(static_cast<int>(i));
    return axes;
}

PyObject* sum_to_like(PyObject* g, PyObject* like) {
    PyArrayObject* ga = arr(g);
    PyArrayObject* la = arr(like);
    if (is_row_of(g, like)) {  // Note [Row broadcasts]
        PyObject* out = PyArray_Zeros(1, PyArray_DIMS(la), PyArray_DescrFromType(PyArray_TYPE(la)), 0);
        if (!out) return nullptr;
        if (PyArray_TYPE(la) == NPY_FLOAT32) sum_rows<float>(g, out);
        else sum_rows<double>(g, out);
        return out;
    }
    Ref reduced;
    PyObject* current = g;
    if (!PyArray_SAMESHAPE(ga, la)) {
        const int gnd = PyArray_NDIM(ga), lnd = PyArray_NDIM(la);
        if (gnd < lnd) {
            PyErr_Format(PyExc_ValueError,
                         "tapegrad: a gradient of shape %s cannot flow into a tensor of shape %s",
                         shape_text(g).c_str(), shape_text(like).c_str());
            return nullptr;
        }
        // One axis at a time with the C API, last first so the indices stay
        // valid; numpy's Python-level sum(axis=...) costs microseconds on small arrays.
        const std::vector<int> axes = summed_axes({PyArray_DIMS(ga), PyArray_DIMS(ga) + gnd},
                                                  {PyArray_DIMS(la), PyArray_DIMS(la) + lnd});
        Ref summed_array(Py_NewRef(g));
        for (auto axis = axes.rbegin(); axis != axes.rend(); ++axis) {
            const int i = *axis;
            PyObject* next = PyArray_Sum(arr(summed_array.p), i, NPY_NOTYPE, nullptr);
            if (!next) return nullptr;
            Ref next_array(PyArray_FROM_O(next));  // a 0-d result comes back as a scalar
            Py_DECREF(next);
            if (!next_array.p) return nullptr;
            std::swap(summed_array.p, next_array.p);
        }
        npy_intp none[1] = {0};
        PyArray_Dims dims = {lnd ? PyArray_DIMS(la) : none, lnd};
        reduced.p = PyArray_Newshape(arr(summed_array.p), &dims, NPY_CORDER);
        if (!reduced.p) return nullptr;
        current = reduced.p;
    }
    return PyArray_FROM_OTF(current, PyArray_TYPE(la), NPY_ARRAY_CARRAY_RO | NPY_ARRAY_FORCECAST);
}

namespace {

// out[position] += g over the iterator's elements, the position being
// pa + pb (pb when TWO), pa an index into an axis of `length` scaled by
// `stride` when RAW; false at an index or a position outside the array.
template <class T, bool RAW, bool TWO>
bool scatter_loop(NpyIter* it, T* out, npy_intp size, npy_intp length, npy_intp stride) {
    NpyIter_IterNextFunc* next = NpyIter_GetIterNext(it, nullptr);
    if (!next) return false;
    char** data = NpyIter_GetDataPtrArray(it);
    const npy_intp* strides = NpyIter_GetInnerStrideArray(it);
    const npy_intp* count = NpyIter_GetInnerLoopSizePtr(it);
    constexpr int gi = TWO ? 2 : 1;
    do {
        const char* pa = data[0];
        const char* pb = TWO ? data[1] : nullptr;
        const char* pg = data[gi];
        for (npy_intp i = 0, n = *count; i < n; ++i) {
            npy_intp k = *reinterpret_cast<const npy_intp*>(pa + i * strides[0]);
            if constexpr (RAW) {
                if (k < 0) k += length;
                if (static_cast<npy_uintp>(k) >= static_cast<npy_uintp>(length)) return false;
                k *= stride;
            }
            if constexpr (TWO) k += *reinterpret_cast<const npy_intp*>(pb + i * strides[1]);
            if (static_cast<npy_uintp>(k) >= static_cast<npy_uintp>(size)) return false;
            out[k] += *reinterpret_cast<const T*>(pg + i * strides[gi]);
        }
    } while (next(it));
    return true;
}

bool is_native_intp(PyObject* o) {
    return PyArray_Check(o) && PyArray_TYPE(arr(o)) == NPY_INTP && PyArray_ISBEHAVED_RO(arr(o));
}

}  // namespace

PyObject* scatter_positions(PyObject* shape, PyObject* a, npy_intp a_length, npy_intp a_stride,
                            PyObject* b, PyObject* g) {
    if (!PyArray_Check(g) || !is_float_type(PyArray_TYPE(arr(g))) || !PyArray_ISBEHAVED_RO(arr(g)) ||
        !is_native_intp(a) || (b && !is_native_intp(b)) || !PyTuple_Check(shape))
        return nullptr;
    // g must have the positions' shape (add.at would broadcast a smaller g).
    const int nd = PyArray_NDIM(arr(g));
    if (PyArray_NDIM(arr(a)) != nd || (b && PyArray_NDIM(arr(b)) != nd)) return nullptr;
    for (int i = 0; i < nd; ++i) {
        const npy_intp n = PyArray_DIM(arr(g), i), na = PyArray_DIM(arr(a), i);
        const npy_intp nb = b ? PyArray_DIM(arr(b), i) : 1;
        if ((na != n && na != 1) || (nb != n && nb != 1)) return nullptr;
    }
    const Py_ssize_t out_nd = PyTuple_GET_SIZE(shape);
    std::vector<npy_intp> dims(static_cast<size_t>(out_nd));
    npy_intp size = 1;
    for (Py_ssize_t i = 0; i < out_nd; ++i) {
        dims[static_cast<size_t>(i)] = PyLong_AsSsize_t(PyTuple_GET_ITEM(shape, i));
        if (dims[static_cast<size_t>(i)] < 0) {
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "scatter_add: negative dimension");
            return nullptr;
        }
        size *= dims[static_cast<size_t>(i)];
    }
    const int type = PyArray_TYPE(arr(g));
    Ref out(PyArray_ZEROS(static_cast<int>(out_nd), dims.data(), type, 0));
    if (!out.p) return nullptr;
    if (PyArray_SIZE(arr(g)) == 0) return out.release();
    PyArrayObject* ops[3] = {arr(a), b ? arr(b) : arr(g), arr(g)};
    npy_uint32 op_flags[3] = {NPY_ITER_READONLY, NPY_ITER_READONLY, NPY_ITER_READONLY};
    NpyIter* it = NpyIter_MultiNew(b ? 3 : 2, ops, NPY_ITER_EXTERNAL_LOOP, NPY_KEEPORDER, NPY_NO_CASTING,
                                   op_flags, nullptr);
    if (!it) return nullptr;
    bool ok = false;
    auto run = [&](auto t, auto raw, auto two) {
        using T = decltype(t);
        ok = scatter_loop<T, raw(), two()>(it, static_cast<T*>(PyArray_DATA(arr(out.p))), size, a_length, a_stride);
    };
    auto with_type = [&](auto raw, auto two) {
        if (type == NPY_FLOAT32) run(float(), raw, two);
        else run(double(), raw, two);
    };
    auto with_two = [&](auto raw) {
        if (b) with_type(raw, std::true_type());
        else with_type(raw, std::false_type());
    };
    if (a_length > 0) with_two(std::true_type());
    else with_two(std::false_type());
    NpyIter_Deallocate(it);
    if (!ok) {
        if (!PyErr_Occurred())
            PyErr_Format(PyExc_IndexError, "scatter_add: an index is out of bounds for shape %s",
                         shape_text(out.p).c_str());
        return nullptr;
    }
    return out.release();
}

double sum_all(PyObject* g) {
    if (is_uniform(g)) return uniform_value(g) * static_cast<double>(PyArray_SIZE(arr(g)));
    Ref c(PyArray_FROM_OTF(g, NPY_FLOAT64, NPY_ARRAY_CARRAY_RO | NPY_ARRAY_FORCECAST));
    if (!c.p) return 0.0;
    const double* p = static_cast<const double*>(PyArray_DATA(arr(c.p)));
    double s = 0.0;
    for (npy_intp i = 0, n = PyArray_SIZE(arr(c.p)); i < n; ++i) s += p[i];
    return s;
}

namespace {
// f(data, n) with a's data as float* or double*, by its dtype (float32 or float64).
template <class F>
void with_data(PyObject* a, F&& f) {
    void* p = PyArray_DATA(arr(a));
    const npy_intp n = PyArray_SIZE(arr(a));
    if (PyArray_TYPE(arr(a)) == NPY_FLOAT32) f(static_cast<float*>(p), n);
    else f(static_cast<double*>(p), n);
}
}  // namespace

void add_into(PyObject* buf, PyObject* g) {
    with_data(buf, [&](auto* d, npy_intp n) {
        add_loop(n, d, static_cast<const std::remove_pointer_t<decltype(d)>*>(PyArray_DATA(arr(g))));
    });
}

void fill(PyObject* a, double v) {
    with_data(a, [&](auto* p, npy_intp n) {
        std::fill(p, p + n, static_cast<std::remove_pointer_t<decltype(p)>>(v));
    });
}

PyObject* filled_like(PyObject* like, double v) {
    PyObject* r = empty_like(like);
    if (r) fill(r, v);
    return r;
}

bool is_uniform(PyObject* a) {
    if (!PyArray_Check(a)) return false;
    PyArrayObject* x = arr(a);
    const int type = PyArray_TYPE(x);
    // An empty array has all-zero strides too, but no value to read.
    if (PyArray_NDIM(x) == 0 || PyArray_SIZE(x) == 0 || PyArray_ISWRITEABLE(x) ||
        (type != NPY_FLOAT64 && type != NPY_FLOAT32))
        return false;
    for (int i = 0; i < PyArray_NDIM(x); ++i)
        if (PyArray_STRIDE(x, i) != 0) return false;
    return true;
}

double uniform_value(PyObject* a) {
    const void* p = PyArray_DATA(arr(a));
    return PyArray_TYPE(arr(a)) == NPY_FLOAT32 ? *static_cast<const float*>(p)
                                               : *static_cast<const double*>(p);
}

PyObject* uniform_like(PyObject* like, double v) {
    PyArrayObject* l = arr(like);
    if (PyArray_NDIM(l) == 0) return filled_like(like, v);
    Ref value(PyArray_Empty(0, nullptr, PyArray_DescrFromType(PyArray_TYPE(l)), 0));
    if (!value.p) return nullptr;
    fill(value.p, v);
    return broadcast_view(value.p, PyArray_NDIM(l), PyArray_DIMS(l));
}

void add_value(PyObject* buf, double v) {
    with_data(buf, [&](auto* d, npy_intp n) {
        add_value_loop(n, d, static_cast<std::remove_pointer_t<decltype(d)>>(v));
    });
}

PyObject* owned_copy(PyObject* a) { return PyArray_NewCopy(arr(a), NPY_CORDER); }

bool is_unseen(PyObject* a) {
    return Py_REFCNT(a) == 1 && PyArray_CheckExact(a) &&
           reinterpret_cast<PyArrayObject_fields*>(a)->weakreflist == nullptr &&
           PyArray_CHKFLAGS(arr(a), NPY_ARRAY_OWNDATA) && PyArray_BASE(arr(a)) == nullptr;
}

PyObject* ufunc_into(uint8_t code, PyObject* a, PyObject* b, PyObject* out) {
    PyObject* ufunc = code < OP_COUNT ? ufuncs[code] : nullptr;
    if (!ufunc) {
        PyErr_Format(PyExc_TypeError, "%s has no numpy ufunc", op_name(code));
        return nullptr;
    }
    Ref args(PyTuple_Pack(2, a, b));
    Ref kwargs(Py_BuildValue("{s:O}", "out", out));
    if (!args.p || !kwargs.p) return nullptr;
    return PyObject_Call(ufunc, args.p, kwargs.p);
}

PyObject* immutable_value(PyObject* a) {
    PyObject* own = is_unseen(a) ? Py_NewRef(a) : PyArray_NewCopy(arr(a), NPY_CORDER);
    if (own) PyArray_CLEARFLAGS(arr(own), NPY_ARRAY_WRITEABLE);
    return own;
}

namespace {
// Whether an array op's parameters hold an ndarray anywhere (most hold none:
// axes, shapes, flags). Ints, floats, None and slices are ruled out first, by
// their type's flags, before the slower ndarray subclass check.
bool holds_array(PyObject* params) {
    if (PyTuple_Check(params) || PyList_Check(params)) {
        for (Py_ssize_t k = 0; k < PySequence_Fast_GET_SIZE(params); ++k)
            if (holds_array(PySequence_Fast_GET_ITEM(params, k))) return true;
        return false;
    }
    if (params == Py_None || PyLong_Check(params) || PyFloat_Check(params) || PySlice_Check(params))
        return false;
    return PyArray_Check(params);
}
}  // namespace

PyObject* immutable_params(PyObject* params) {
    if (PyArray_Check(params)) return immutable_value(params);
    const bool tuple = PyTuple_Check(params);
    if ((!tuple && !PyList_Check(params)) || !holds_array(params)) return Py_NewRef(params);
    const Py_ssize_t n = PySequence_Fast_GET_SIZE(params);
    PyObject* out = tuple ? PyTuple_New(n) : PyList_New(n);
    bool changed = false;
    for (Py_ssize_t k = 0; out && k < n; ++k) {
        PyObject* item = PySequence_Fast_GET_ITEM(params, k);
        PyObject* kept = immutable_params(item);
        if (!kept) {
            Py_CLEAR(out);
            break;
        }
        changed = changed || kept != item;
        if (tuple) PyTuple_SET_ITEM(out, k, kept);
        else PyList_SET_ITEM(out, k, kept);
    }
    if (out && !changed) Py_SETREF(out, Py_NewRef(params));
    return out;
}

bool is_owned_buffer(PyObject* a, PyObject* like) {
    return is_unseen(a) && PyArray_ISCARRAY(arr(a)) && PyArray_TYPE(arr(a)) == PyArray_TYPE(arr(like)) &&
           PyArray_SAMESHAPE(arr(a), arr(like));
}

}  // namespace tapegrad
