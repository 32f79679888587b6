#include "numeric_sweep.hpp"

#include <cstring>

#include "array_apply.hpp"
#include "array_ops.hpp"
#include "fusion.hpp"
#include "sweep.hpp"

namespace tapegrad {

template class Sweep<NumericRows>;

NumericRows::NumericRows(Tape& tape)
    : t(tape),
      nested(tape.scratch().start_sweep()),
      check_anomalies(tape.anomaly_mode()),
      grad(nested ? own_grad : tape.scratch().grad()),
      reached(nested ? own_reached : tape.scratch().reached()),
      array_grad(nested ? own_array_grad : tape.scratch().array_grad()) {
    grad.assign(t.rows().size(), 0.0);
    reached.assign(t.rows().size(), 0);
    array_grad.assign(t.rows().array_count(), nullptr);
}

NumericRows::~NumericRows() {
    std::vector<PyObject*> grads;
    grads.swap(array_grad);
    t.scratch().end_sweep(nested);
    for (PyObject* g : grads) t.pool.give(g);  // those not handed out are reused
}

bool NumericRows::start_from(uint32_t node, PyObject* initial) {
    if (t.rows().is_array(node)) return add_array(node, initial);
    grad[node] += PyFloat_AsDouble(initial);  // an output listed twice gets its gradient twice
    Py_DECREF(initial);
    reached[node] |= REACHED;
    return !PyErr_Occurred();
}

PyObject* NumericRows::result(const Source& s) {
    PyObject* value = s.tensor->array;
    if (s.node == UINT32_MAX || !(reached[s.node] & REACHED))
        return value ? filled_like(value, 0.0) : PyFloat_FromDouble(0.0);
    if (!t.rows().is_array(s.node)) return PyFloat_FromDouble(grad[s.node]);
    PyObject*& buffer = array_grad[t.rows().val(s.node).index];
    if (!buffer) return filled_like(value ? value : t.rows().array_of(s.node), 0.0);
    // Hand the buffer over the first time; a source listed twice gets a
    // copy, and a uniform gradient is written out (Note [Uniform gradients]).
    if (is_unseen(buffer) && !is_uniform(buffer)) return Py_NewRef(buffer);
    return owned_copy(buffer);
}

PyObject* NumericRows::tensor_result(const Source& s) { return constant_tensor(t, read_only(result(s))); }

// Every reached op row but a plain hot scalar one. SCALAR: a hooked hot
// scalar op, whose backward is left to the loop.
Next NumericRows::op_row(uint32_t row, uint8_t code, uint8_t f) {
    if (!(f & F_ARRAY) && code < OP_FIRST_COLD) return Next::SCALAR;
    if (!(f & F_ARRAY)) {
        cold_scalar_row(row);
        return Next::DONE;
    }
    bool ok;
    if (fused && fused->fused_root(row)) ok = fused->backward(*this, row);
    else ok = is_array_op(code) ? array_op_row(row) : array_row(row);
    return ok ? Next::DONE : Next::FAILED;
}

// A cold op's scalar row (op_row sends them here, out of the loop).
void NumericRows::cold_scalar_row(uint32_t row) {
    const uint8_t f = t.rows().flags(row);
    double ga = 0.0, gb = 0.0;
    scalar_row_gradients(t, row, grad[row], ga, gb);
    if (!(f & F_A_CONST)) add_number(t.rows().in0(row), ga);
    if (op_arity(t.rows().op(row)) == 2 && !(f & F_B_CONST)) add_number(t.rows().in1(row), gb);
}

// ---- one row's numeric backward, shared with record_vjp ----

void scalar_row_gradients(const Tape& t, uint32_t row, double g, double& ga, double& gb) {
    const uint8_t code = t.rows().op(row), f = t.rows().flags(row);
    const uint32_t ia = t.rows().in0(row), ib = t.rows().in1(row);
    const double a = (f & F_A_NUMBER) ? t.rows().constant(ia) : t.rows().val(ia).number;
    const double b = op_arity(code) != 2 ? 0.0 : (f & F_B_NUMBER) ? t.rows().constant(ib) : t.rows().val(ib).number;
    scalar_backward(code, a, b, t.rows().val(row).number, g, ga, gb);
}

bool elementwise_row_gradients(Tape& t, uint32_t row, PyObject* g, GradSink* sa, GradSink* sb, BufferPool* pool) {
    const uint8_t f = t.rows().flags(row);
    const bool binary = op_arity(t.rows().op(row)) == 2;
    const py::object a = py::reinterpret_steal<py::object>(t.rows().operand_object(t.rows().in0(row), f & F_A_NUMBER, f & F_A_ARRAY));
    const py::object b = py::reinterpret_steal<py::object>(
        binary ? t.rows().operand_object(t.rows().in1(row), f & F_B_NUMBER, f & F_B_ARRAY) : nullptr);
    return a && (b || !binary) && array_backward(t.rows().op(row), a.ptr(), b.ptr(), t.rows().array_of(row), g, sa, sb, pool);
}

PyObject* gradient_for_node(const Tape& t, uint32_t node, PyObject* g) {
    const py::object part = py::reinterpret_steal<py::object>(g);
    if (t.rows().is_array(node)) return sum_to_like(part.ptr(), t.rows().array_of(node));
    const double v = sum_all(part.ptr());
    return PyErr_Occurred() ? nullptr : PyFloat_FromDouble(v);
}

const char* NumericRows::nonfinite(uint32_t node) const {
    return t.rows().is_array(node) ? tapegrad::nonfinite(array_grad[t.rows().val(node).index]) : tapegrad::nonfinite(grad[node]);
}

// A hook gets a copy of the gradient: the buffer is the sweep's, added into later.
py::object NumericRows::hook_argument(uint32_t row) {
    const py::object g = py::reinterpret_steal<py::object>(grad_object(row));
    if (!g) throw py::error_already_set();
    PyObject* value = PyArray_Check(g.ptr()) ? read_only(owned_copy(g.ptr())) : g.inc_ref().ptr();
    PyObject* tensor = value ? constant_tensor(t, value) : nullptr;
    if (!tensor) throw py::error_already_set();
    return py::reinterpret_steal<py::object>(tensor);
}

// A hook's result (a Tensor, array or number) as a float array.
py::object NumericRows::gradient_value(const py::object& r, const char* what) {
    const py::object v = is_tensor(r.ptr())
                             ? py::reinterpret_steal<py::object>(value_object(reinterpret_cast<TensorObject*>(r.ptr())))
                             : r;
    PyObject* array = v ? to_float_array(v.ptr(), what) : nullptr;
    if (!array) throw py::error_already_set();
    return py::reinterpret_steal<py::object>(array);
}

// A float array of the row's shape as its gradient.
bool NumericRows::set_gradient(uint32_t row, const py::object& array) {
    if (!t.rows().is_array(row)) {
        grad[row] = PyFloat_AsDouble(array.ptr());
        return !PyErr_Occurred();
    }
    // Same shape: a cast, if any; then a buffer of the sweep's own.
    const py::object cast = py::reinterpret_steal<py::object>(sum_to_like(array.ptr(), t.rows().array_of(row)));
    PyObject* copy = cast ? owned_copy(cast.ptr()) : nullptr;
    if (!copy) return false;
    PyObject*& buffer = array_grad[t.rows().val(row).index];
    t.pool.give(buffer);
    buffer = copy;
    return true;
}

py::object NumericRows::user_argument(uint32_t node) {
    PyObject* g = grad_object(node);
    if (!g) throw py::error_already_set();
    return py::reinterpret_steal<py::object>(g);
}

// A user record's gradient as a float array; null (with an error set) if it is none.
py::object NumericRows::user_gradient(PyObject* item) {
    return py::reinterpret_steal<py::object>(to_float_array(item, "backward_fn"));
}

// A float array of node's shape (checked) added into its gradient.
bool NumericRows::add_gradient(uint32_t node, const py::object& array) {
    if (t.rows().is_array(node)) return add_array(node, array.inc_ref().ptr());
    const double v = PyFloat_AsDouble(array.ptr());
    if (v == -1.0 && PyErr_Occurred()) return false;
    add_number(node, v);
    return true;
}

namespace {

// like's value (a Tensor) plus g, shaped as like's and read-only (a new reference).
PyObject* sum_with(TensorObject* like, PyObject* g) {
    const py::object value = py::reinterpret_steal<py::object>(value_object(like));
    py::object sum = py::reinterpret_steal<py::object>(value ? PyNumber_Add(value.ptr(), g) : nullptr);
    if (sum && like->array) {  // a numpy scalar for 0-d arrays
        sum = py::reinterpret_steal<py::object>(
            PyArray_FromAny(sum.release().ptr(), nullptr, 0, 0, NPY_ARRAY_ENSUREARRAY, nullptr));
        if (sum) sum = py::reinterpret_steal<py::object>(sum_to_like(sum.ptr(), value.ptr()));
    }
    return read_only(sum.release().ptr());
}

}  // namespace

bool NumericRows::accumulate(TensorObject* leaf, uint32_t row) {
    PyObject* g = result(Source{leaf, row});
    if (!g) return false;
    const bool ok = accumulate_into(leaf, g);
    Py_DECREF(g);
    return ok;
}

// Takes g (a float or an ndarray) into leaf.grad, a Tensor whose
// identity stays across accumulations while it has no history, as in PyTorch.
//
// Note [Concurrent accumulation]
// backward() on several threads may add into one leaf's .grad at once
// (README, Guarantees). numpy releases the GIL inside an add, so an array
// .grad is read, added to and written back optimistically: the sum is
// stored only if .grad and its value are still the ones it was computed
// from; otherwise another thread stored first, and the sum is computed
// again on the newer value. A scalar is added in one step under the GIL.
bool NumericRows::accumulate_into(TensorObject* leaf, PyObject* g) {
    for (;;) {
        const py::object current = py::reinterpret_borrow<py::object>(leaf->grad);
        auto* acc = reinterpret_cast<TensorObject*>(current.ptr());
        if (acc && !(acc->flags & T_REQUIRES_GRAD)) return add_in_place(acc, g);
        // A new .grad: g itself, or the sum with a .grad that has history
        // (backward(create_graph=True) made it), which keeps its history:
        // as PyTorch, the sum is made out of place then.
        PyObject* value = acc ? sum_with(acc, g) : read_only(Py_NewRef(g));
        py::object fresh = py::reinterpret_steal<py::object>(value ? constant_tensor(t, value) : nullptr);
        if (!fresh) return false;
        // Stored only if .grad is still what it was (an allocation can run
        // Python, and so another thread): else added again to the newer one.
        if (leaf->grad == current.ptr()) {
            Py_XSETREF(leaf->grad, fresh.release().ptr());
            track(leaf);  // Note [Tracked tensors]
            return true;
        }
    }
}

// g into a constant .grad acc, whose identity stays across accumulations.
bool NumericRows::add_in_place(TensorObject* acc, PyObject* g) {
    bool ok = true;
    if (!acc->array) {
        const double v = PyArray_Check(g) ? sum_all(g) : PyFloat_AsDouble(g);
        ok = !PyErr_Occurred();
        if (ok) acc->scalar += v;
    } else {
        for (bool stored = false; ok && !stored;) {
            const py::object before = py::reinterpret_borrow<py::object>(acc->array);
            py::object shaped = py::reinterpret_steal<py::object>(sum_with(acc, g));
            ok = bool(shaped);
            stored = ok && acc->array == before.ptr();
            if (stored) Py_SETREF(acc->array, shaped.release().ptr());
        }
    }
    acc->epoch = 0;  // a new value: re-entered on its next use
    return ok;
}

// A version row (Note [Versions]): the gradient of a tensor's newer value
// goes on to the row of the value before it, of the same layout.
bool NumericRows::pass_version(uint32_t row) {
    const uint32_t previous = t.rows().in0(row);
    if (!t.rows().is_array(row)) {
        add_number(previous, grad[row]);
        return true;
    }
    PyObject*& g = array_grad[t.rows().val(row).index];
    if (!g) {
        reached[previous] |= REACHED;
        return true;
    }
    const bool spent = !(reached[row] & KEEP);
    const bool ok = pass_gradient(previous, g, t.rows().array_of(row), spent);
    if (spent && g) spend(g);
    return ok;
}

// Adds a gradient array (a new reference, stolen) into node, undoing broadcasting.
bool NumericRows::add_array(uint32_t node, PyObject* g) {
    reached[node] |= REACHED;
    if (!t.rows().is_array(node)) {
        double s = sum_all(g);
        Py_DECREF(g);
        grad[node] += s;
        return !PyErr_Occurred();
    }
    PyObject* like = t.rows().array_of(node);
    if (is_uniform(g) && PyArray_SAMESHAPE(reinterpret_cast<PyArrayObject*>(g),
                                           reinterpret_cast<PyArrayObject*>(like)))
        return add_uniform(node, g);
    PyObject* reduced = sum_to_like(g, like);
    t.pool.give(g);
    if (!reduced) return false;
    PyObject*& buffer = array_grad[t.rows().val(node).index];
    if (buffer) {
        if (!own(buffer, like)) {
            t.pool.give(reduced);
            return false;
        }
        add_into(buffer, reduced);
        t.pool.give(reduced);
    } else if (is_owned_buffer(reduced, like)) {
        buffer = reduced;
    } else {
        buffer = owned_copy(reduced);
        t.pool.give(reduced);
        if (!buffer) return false;
    }
    return true;
}

// Adds a uniform gradient of node's shape (stolen) into node: kept as it
// is while node has no other gradient (Note [Uniform gradients]).
bool NumericRows::add_uniform(uint32_t node, PyObject* g) {
    reached[node] |= REACHED;
    PyObject* like = t.rows().array_of(node);
    PyObject*& buffer = array_grad[t.rows().val(node).index];
    const double v = uniform_value(g);
    if (!buffer && PyArray_TYPE(reinterpret_cast<PyArrayObject*>(g)) ==
                       PyArray_TYPE(reinterpret_cast<PyArrayObject*>(like))) {
        buffer = g;
        return true;
    }
    Py_DECREF(g);
    if (!buffer || is_uniform(buffer)) {
        PyObject* sum = uniform_like(like, buffer ? uniform_value(buffer) + v : v);
        if (!sum) return false;
        Py_XSETREF(buffer, sum);
        return true;
    }
    add_value(buffer, v);
    return true;
}

// Writes out a uniform buffer (Note [Uniform gradients]) so that it can
// be added into; any other buffer is left as it is.
bool NumericRows::own(PyObject*& buffer, PyObject* like) {
    if (!buffer || !is_uniform(buffer)) return true;
    PyObject* filled = pooled_like(like);
    if (!filled) return false;
    fill(filled, uniform_value(buffer));
    Py_SETREF(buffer, filled);
    return true;
}

// Note [Passed gradients]
// Where an input's gradient is the row's own (add's both inputs, sub's
// first: the ops' `passes`), no kernel copies it. The input of the row's
// layout takes the row's buffer itself when the row is done with it, or
// has it added into its own; a broadcast input sums it down (add_array).
// In h @ w + b that saves two full-size passes over memory per add. The
// kernel runs first, for the inputs that are not passed, since the move
// empties the row's slot.
bool NumericRows::array_row(uint32_t row) {
    const uint8_t f = t.rows().flags(row);
    const uint32_t ia = t.rows().in0(row), ib = t.rows().in1(row);
    const bool binary = op_arity(t.rows().op(row)) == 2;
    const bool want_a = !(f & F_A_CONST) && wants(ia);
    const bool want_b = binary && !(f & F_B_CONST) && wants(ib);
    PyObject* out = t.rows().array_of(row);
    PyObject*& g = array_grad[t.rows().val(row).index];
    const int passes = g && (is_owned_buffer(g, out) || is_uniform(g)) ? op_passes(t.rows().op(row)) : 0;
    const bool pass_a = want_a && (passes & PASSES_A), pass_b = want_b && (passes & PASSES_B);
    const bool kernel_a = want_a && !pass_a, kernel_b = want_b && !pass_b;
    GradSink sa, sb;
    bool ok = true;
    if (kernel_a || kernel_b)
        ok = (!kernel_a || open_sink(ia, out, sa)) && (!kernel_b || open_sink(ib, out, sb)) &&
             elementwise_row_gradients(t, row, g, kernel_a ? &sa : nullptr, kernel_b ? &sb : nullptr, &t.pool);
    const bool spent = !(reached[row] & KEEP);
    ok = ok && (!pass_b || pass_gradient(ib, g, out, spent && !pass_a));
    ok = ok && (!pass_a || pass_gradient(ia, g, out, spent));
    // This row's gradient is spent unless the caller asked for it.
    if (spent && g) spend(g);
    if (!ok) {
        Py_XDECREF(sa.fresh);
        Py_XDECREF(sb.fresh);
        return false;
    }
    // Gradients that could not go straight into their buffer (broadcast
    // operands, scalars, other dtypes) are added now.
    if (sa.fresh && !add_array(ia, sa.fresh)) {
        Py_XDECREF(sb.fresh);
        return false;
    }
    return !sb.fresh || add_array(ib, sb.fresh);
}

// Gives node the row's gradient g unchanged (Note [Passed gradients]);
// with `move`, g itself may become node's buffer, emptying the row's slot.
bool NumericRows::pass_gradient(uint32_t node, PyObject*& g, PyObject* out, bool move) {
    if (!t.rows().is_array(node) || !same_layout(t.rows().array_of(node), out))
        return add_array(node, Py_NewRef(g));
    if (is_uniform(g)) {  // immutable: shared, never copied
        PyObject* shared = g;
        if (move) g = nullptr;
        else Py_INCREF(shared);
        return add_uniform(node, shared);
    }
    reached[node] |= REACHED;
    PyObject*& buffer = array_grad[t.rows().val(node).index];
    if (buffer) {
        if (!own(buffer, out)) return false;
        add_into(buffer, g);
    } else if (move) {
        buffer = g;
        g = nullptr;
    } else {
        buffer = pooled_like(out);
        if (!buffer) return false;
        std::memcpy(PyArray_DATA(reinterpret_cast<PyArrayObject*>(buffer)),
                    PyArray_DATA(reinterpret_cast<PyArrayObject*>(g)),
                    static_cast<size_t>(PyArray_NBYTES(reinterpret_cast<PyArrayObject*>(g))));
    }
    return true;
}

// An array op (array_ops.hpp): its backward formula gives one gradient per
// input, which add_array sums down to the input's shape.
bool NumericRows::array_op_row(uint32_t row) {
    if (!quiet_numpy.active() && !quiet_numpy.start()) return false;
    PyObject*& g = array_grad[t.rows().val(row).index];
    // An array op's backward gets a gradient it can hand to BLAS as it is.
    if (!own(g, t.rows().array_of(row))) return false;
    std::vector<PyObject*> grads;
    const bool ok = array_op_backward(t, row, g, grads, needed);
    if (!(reached[row] & KEEP)) spend(g);
    if (!ok) return false;
    const std::vector<int64_t> inputs = t.rows().array_record(t.rows().in0(row)).inputs;
    bool added = true;
    for (size_t k = 0; k < grads.size(); ++k) {
        if (!grads[k]) continue;
        if (added) added = add_array(static_cast<uint32_t>(inputs[k]), grads[k]);
        else Py_DECREF(grads[k]);
    }
    return added;
}

// Points the sink at the node's own gradient buffer when the node has the
// row's shape and dtype: the kernel then writes (first time) or adds into
// it, with no temporary and no second pass.
bool NumericRows::open_sink(uint32_t node, PyObject* out, GradSink& sink) {
    if (!t.rows().is_array(node) || !same_layout(t.rows().array_of(node), out)) return true;
    PyObject*& buffer = array_grad[t.rows().val(node).index];
    reached[node] |= REACHED;
    if (!own(buffer, out)) return false;
    sink.add = buffer != nullptr;
    if (!buffer) buffer = pooled_like(out);  // uninitialised: the kernel writes it all
    sink.into = buffer;
    return buffer != nullptr;
}

// Spent buffers go to the pool and serve later rows (Note [Buffer pool]).
void NumericRows::spend(PyObject*& buffer) {
    t.pool.give(buffer);
    buffer = nullptr;
}

// A buffer of like's layout from the pool (Note [Buffer pool]).
PyObject* NumericRows::pooled_like(PyObject* like) {
    PyArrayObject* a = reinterpret_cast<PyArrayObject*>(like);
    return t.pool.take(PyArray_NDIM(a), PyArray_DIMS(a), PyArray_TYPE(a));
}

// A gradient for `node` as a Python object: a float or its buffer.
PyObject* NumericRows::grad_object(uint32_t node) {
    const bool got = reached[node] & REACHED;
    if (!t.rows().is_array(node)) return PyFloat_FromDouble(got ? grad[node] : 0.0);
    PyObject* buffer = array_grad[t.rows().val(node).index];
    if (!got || !buffer) return filled_like(t.rows().array_of(node), 0.0);
    return is_uniform(buffer) ? owned_copy(buffer) : Py_NewRef(buffer);
}

}  // namespace tapegrad
