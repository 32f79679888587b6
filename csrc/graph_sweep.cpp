#include "graph_sweep.hpp"

#include "anomaly.hpp"
#include "array_ops.hpp"
#include "recording.hpp"
#include "sweep.hpp"

namespace tapegrad {

template class Sweep<RecordingRows>;

namespace {

// Runs f, a row's work that reports errors as exceptions: false with the
// error set if it threw.
template <class F>
bool guarded(F&& f) {
    try {
        f();
        return true;
    } catch (py::error_already_set& e) {
        e.restore();
        return false;
    }
}

py::tuple node_shape(const Tape& t, uint32_t node) {
    if (!t.rows().is_array(node)) return py::tuple();
    return py::reinterpret_borrow<py::object>(t.rows().array_of(node)).attr("shape");
}

}  // namespace

RecordingRows::RecordingRows(Tape& tape)
    : t(tape),
      reached(tape.rows().size(), 0),
      check_anomalies(tape.anomaly_mode()),
      grads(tape.rows().size()),
      was_enabled(tape.grad_mode()),
      was_sweeping(tape.scratch().start_sweep()) {  // no reclaiming while it runs (Note [Reclaiming records])
    t.grad_mode() = true;
}

RecordingRows::~RecordingRows() {
    t.grad_mode() = was_enabled;
    t.scratch().end_sweep(was_sweeping);
}

bool RecordingRows::start_from(uint32_t node, PyObject* initial) {
    // The recorded sweep works on Tensors: a uniform starting gradient is written out.
    if (is_uniform(initial)) Py_SETREF(initial, owned_copy(initial));
    if (!initial) return false;
    return guarded([&] { add(node, py::reinterpret_steal<py::object>(initial)); });
}

PyObject* RecordingRows::tensor_result(const Source& s) {
    PyObject* result = nullptr;
    guarded([&] { result = as_tensor(grads[s.node]).release().ptr(); });
    return result;
}

bool RecordingRows::accumulate(TensorObject* leaf, uint32_t row) {
    return guarded([&] {
        const py::object g = as_tensor(grads[row]);
        // Stored only if .grad is still the one summed (Note [Concurrent accumulation]).
        for (bool stored = false; !stored;) {
            py::object before = py::reinterpret_borrow<py::object>(leaf->grad ? leaf->grad : Py_None);
            py::object total = before.is_none() ? g : (TapeValue(before) + TapeValue(g)).v;
            stored = leaf->grad == (before.is_none() ? nullptr : before.ptr());
            if (stored) Py_XSETREF(leaf->grad, total.release().ptr());
            track(leaf);  // Note [Tracked tensors]
        }
    });
}

// An op row: its backward, recorded; then its gradient is spent (its
// tensors may go) unless the caller asked for it.
Next RecordingRows::op_row(uint32_t row, uint8_t code, uint8_t) {
    const bool ok = guarded([&] {
        if (is_array_op(code)) array_op_row(row);
        else elementwise_row(row);
    });
    if (!(reached[row] & KEEP)) grads[row] = py::object();
    return ok ? Next::DONE : Next::FAILED;
}

bool RecordingRows::pass_version(uint32_t row) {
    const bool ok = guarded([&] { add(t.rows().in0(row), grads[row]); });
    if (!(reached[row] & KEEP)) grads[row] = py::object();
    return ok;
}

py::object RecordingRows::gradient_value(const py::object& r, const char*) {
    return is_tensor(r.ptr()) ? r : value_of(r);
}

py::object RecordingRows::shape_of(const py::object& value) const { return Recording::get().shape(value); }

bool RecordingRows::set_gradient(uint32_t row, const py::object& value) {
    return guarded([&] { grads[row] = cast_to_node(value, row); });
}

bool RecordingRows::add_gradient(uint32_t node, const py::object& g) {
    return guarded([&] { add(node, g); });
}

// A user record: a tapegrad.Function's backward runs on Tensors and records;
// a seed-style OperationRecord's backward_fn returns plain numbers, whose
// dependence on the inputs nobody recorded, so it cannot be part of a
// gradient that will be differentiated again.
py::object RecordingRows::user_backward(const py::object& record) {
    py::object backward = py::getattr(record, "graph_backward", py::none());
    if (backward.is_none()) {
        PyErr_Format(PyExc_RuntimeError,
                     "create_graph=True: the gradient flows through %R, whose backward_fn is a "
                     "plain Python function: its result cannot be differentiated again. Write the "
                     "op as a tapegrad.Function whose backward uses Tensor operations, or "
                     "compute this gradient without create_graph.",
                     record.ptr());
        throw py::error_already_set();
    }
    return backward;
}

// An output's gradient for a user record's backward: zeros if it got none.
py::object RecordingRows::user_argument(uint32_t node) {
    if (reached[node] & REACHED) return as_tensor(grads[node]);
    return as_tensor(Numeric::get().mul(value_of(checked(node_tensor(t, node))), py::float_(0.0)));
}

// An elementwise row: the op's backward (ops.hpp) with T = TapeValue.
void RecordingRows::elementwise_row(uint32_t row) {
    const uint8_t code = t.rows().op(row), f = t.rows().flags(row);
    const uint32_t ia = t.rows().in0(row), ib = t.rows().in1(row);
    // Only the gradients an input wants are recorded (x ** 2: no log), and
    // only what they read is read (the row may not have kept the rest).
    const bool want_a = !(f & F_A_CONST) && wants(ia);
    const bool want_b = op_arity(code) == 2 && !(f & F_B_CONST) && wants(ib);
    const int reads = op_reads_wanted(code, want_a, want_b);
    if ((reads & READS_OUT) && t.rows().is_array(row) && is_layout(t.rows().array_of(row))) {
        PyErr_Format(PyExc_RuntimeError, "tapegrad: %s's backward needs its output, which its row "
                     "did not keep (please report this)", op_name(code));
        throw py::error_already_set();
    }
    // An operand as the formula sees it; a value it does not read stays None.
    auto operand = [&](uint32_t index, bool number, bool array, bool read) {
        if (number || array) return TapeValue(checked(t.rows().operand_object(index, number, array)));
        return read ? TapeValue(checked(node_tensor(t, index))) : TapeValue();
    };
    const TapeValue a = operand(ia, f & F_A_NUMBER, f & F_A_ARRAY, reads & READS_A);
    const TapeValue out = (reads & READS_OUT) ? TapeValue(checked(node_tensor(t, row))) : TapeValue();
    const TapeValue g(grads[row]);
    visit_op(code, [&](auto tag) {
        using Op = typename decltype(tag)::type;
        if constexpr (Op::arity == 2) {
            const TapeValue b = operand(ib, f & F_B_NUMBER, f & F_B_ARRAY, reads & READS_B);
            TapeValue ga, gb;
            backward_wanted<Op>(a, b, out, g, ga, gb, want_a, want_b);
            if (want_a) add(ia, ga.v);
            if (want_b) add(ib, gb.v);
        } else {
            add(ia, Op::backward(a, out, g).v);
        }
    });
}

// An array-op row: the op's backward (array_ops.hpp) with the Recording backend.
void RecordingRows::array_op_row(uint32_t row) {
    // Copied: recording appends to array_records.
    const std::vector<int64_t> inputs = t.rows().array_record(t.rows().in0(row)).inputs;
    const py::tuple params = py::reinterpret_borrow<py::tuple>(t.rows().array_record(t.rows().in0(row)).params);
    const uint8_t code = t.rows().op(row);
    Values x, gx(inputs.size(), py::none());
    Needs need;
    for (int64_t in : inputs) {
        x.push_back(in >= 0 ? checked(node_tensor(t, static_cast<uint32_t>(in)))
                            : py::reinterpret_borrow<py::object>(t.rows().array(static_cast<size_t>(-in - 1))));
        need.push_back(in >= 0 && (!needed || (*needed)[static_cast<size_t>(in)]));
    }
    const py::object out = array_op_reads_out(code) ? checked(node_tensor(t, row)) : py::none();
    const py::object g = grads[row];
    visit_array_op(code, [&](auto tag) {
        using Op = typename decltype(tag)::type;
        Op::backward(Recording::get(), x, out, g, params, need, gx);
    });
    for (size_t k = 0; k < inputs.size(); ++k)
        if (need[k] && !gx[k].is_none()) add(static_cast<uint32_t>(inputs[k]), gx[k]);
}

// Adds a gradient into node's, summed down to the node's shape and cast to
// its dtype first.
void RecordingRows::add(uint32_t node, py::object g) {
    g = cast_to_node(sum_to_node(std::move(g), node), node);
    grads[node] = grads[node] ? (TapeValue(grads[node]) + TapeValue(g)).v : g;
    reached[node] |= REACHED;
}

// Undoes broadcasting with recorded sums, by the rule sum_to_like follows
// (Note [Undoing broadcasts] in arrays.hpp).
py::object RecordingRows::sum_to_node(py::object g, uint32_t node) {
    Recording& rec = Recording::get();
    const py::tuple want = node_shape(t, node), have = rec.shape(g);
    if (want.equal(have)) return g;
    std::vector<npy_intp> want_dims, have_dims;
    for (py::handle d : want) want_dims.push_back(d.cast<npy_intp>());
    for (py::handle d : have) have_dims.push_back(d.cast<npy_intp>());
    py::list axes;
    for (int axis : summed_axes(have_dims, want_dims)) axes.append(axis);
    const size_t nw = want_dims.size(), nh = have_dims.size();
    if (py::len(axes)) g = rec.sum(g, py::tuple(axes), py::bool_(true));
    if (nh > nw) g = rec.reshape(g, rec.shape(g)[py::slice(nh - nw, nh, 1)]);  // leading 1s
    // A constant smaller than the node (a number, or a select of numbers) is broadcast up.
    return rec.shape(g).equal(want) ? g : rec.broadcast_to(g, want);
}

// A gradient has its input's dtype, as in the numeric sweep
// (sum_to_like): a backward's constants (a float64 array operand, the 0.5 of
// maximum's ties, a Python float where a select chose a constant) promote a
// float32 gradient, and the cast here, recorded, undoes that in one place. A
// scalar node's gradient is float64.
py::object RecordingRows::cast_to_node(py::object g, uint32_t node) {
    const int want = t.rows().is_array(node) ? PyArray_TYPE(reinterpret_cast<PyArrayObject*>(t.rows().array_of(node)))
                                      : NPY_FLOAT64;
    const py::object v = value_of(g);
    int have;
    if (PyFloat_Check(v.ptr())) have = NPY_FLOAT64;
    else if (PyArray_Check(v.ptr())) have = PyArray_TYPE(reinterpret_cast<PyArrayObject*>(v.ptr()));
    else have = -1;  // anything else (a numpy scalar): cast to be sure
    if (have == want) return g;
    return Recording::get().astype(g, py::reinterpret_steal<py::object>(
                                          reinterpret_cast<PyObject*>(PyArray_DescrFromType(want))));
}

// A gradient as a Tensor: itself, or a constant made from its value.
py::object RecordingRows::as_tensor(const py::object& g) {
    if (is_tensor(g.ptr())) return g;
    // A gradient the caller may hold (a grad_output it gave) is copied (Note [Immutable values]).
    return checked(constant_tensor(t, PyArray_Check(g.ptr()) ? immutable_value(g.ptr()) : Py_NewRef(g.ptr())));
}

}  // namespace tapegrad
