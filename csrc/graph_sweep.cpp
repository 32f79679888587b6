#include "graph_sweep.hpp"

#include <algorithm>

#include "anomaly.hpp"
#include "array_ops.hpp"
#include "recording.hpp"

namespace tapegrad {

GraphSweep::GraphSweep(Tape& tape)
    : t(tape),
      top(tape.rows().size()),
      grads(top),
      reached(top, 0),
      keep(top, 0),
      hooks_ran(top, 0),
      was_enabled(tape.grad_mode()),
      was_sweeping(tape.scratch().start_sweep()) {  // no reclaiming while it runs (Note [Reclaiming records])
    t.grad_mode() = true;
}

GraphSweep::~GraphSweep() {
    t.grad_mode() = was_enabled;
    t.scratch().end_sweep(was_sweeping);
}

bool GraphSweep::seed(uint32_t node, PyObject* seed) {
    // The recorded sweep works on Tensors: a uniform seed is written out.
    if (is_uniform(seed)) Py_SETREF(seed, owned_copy(seed));
    if (!seed) return false;
    py::object g = py::reinterpret_steal<py::object>(seed);
    try {
        add(node, g);
        return true;
    } catch (py::error_already_set& e) {
        e.restore();
        return false;
    }
}

bool GraphSweep::run(const std::vector<Source>& sources, bool every_leaf,
                     const std::vector<uint8_t>* needed) {
    if (!quiet.start()) return false;
    // As in the numeric sweep: nothing below the lowest source matters,
    // unless stale rows need their check.
    int64_t lowest = !t.foreign().any_stale() ? static_cast<int64_t>(top) : 0;
    for (const Source& s : sources) {
        if (s.node == UINT32_MAX || s.node >= top) continue;
        keep[s.node] = 1;
        lowest = std::min<int64_t>(lowest, s.node);
    }
    if (lowest == static_cast<int64_t>(top)) lowest = 0;
    try {
        for (int64_t i = static_cast<int64_t>(top) - 1; i >= lowest; --i) {
            const uint32_t row = static_cast<uint32_t>(i);
            const uint8_t code = t.rows().op(row);
            if (needed && !(*needed)[row]) {  // leads to no source (Note [Needed rows])
                reached[row] = 0;
                continue;
            }
            if (code == OP_CUSTOM) {
                if ((t.rows().flags(row) & F_FREED) && outputs_reached(row)) return freed_error(t, row);
                const bool ran = outputs_reached(row);
                user_record(row);
                if (ran && check_anomalies && !check_row(row)) return false;
                continue;
            }
            if (!reached[row]) continue;
            if (t.hooked(row)) run_hooks(row);
            if (code == OP_LEAF) continue;
            if (code == OP_VERSION) {  // a newer value: its gradient is the older one's too
                add(t.rows().in0(row), grads[row]);
                if (!keep[row]) grads[row] = py::object();
                continue;
            }
            if (t.rows().flags(row) & F_FREED) return freed_error(t, row);
            if (code == OP_STALE) {
                if (!check_stale(t, row, sources, every_leaf)) return false;
                continue;
            }
            if (is_array_op(code)) array_op_row(row);
            else elementwise_row(row);
            if (check_anomalies && !check_row(row)) return false;
            if (!keep[row]) grads[row] = py::object();  // spent: its tensors may go
        }
        return true;
    } catch (py::error_already_set& e) {
        e.restore();
        return false;
    }
}

PyObject* GraphSweep::tensor_result(const Source& s) {
    try {
        return as_tensor(grads[s.node]).release().ptr();
    } catch (py::error_already_set& e) {
        e.restore();
        return nullptr;
    }
}

bool GraphSweep::accumulate_leaf_grads() {
    try {
        for (size_t row = 0; row < top; ++row) {
            if (t.rows().op(row) != OP_LEAF || !reached[row] || t.rows().in0(row) == UINT32_MAX) continue;
            auto* leaf = reinterpret_cast<TensorObject*>(t.rows().leaf_tensor(t.rows().in0(row)));
            const Source source{leaf, static_cast<uint32_t>(row)};
            if (!same_layout_as(t, source.node, leaf)) {
                version_error(t, source, source.node);
                throw py::error_already_set();
            }
            const py::object g = as_tensor(grads[row]);
            // Stored only if .grad is still the one summed (Note [Concurrent accumulation]).
            for (bool stored = false; !stored;) {
                py::object before = py::reinterpret_borrow<py::object>(leaf->grad ? leaf->grad : Py_None);
                py::object total = before.is_none() ? g : (Rec(before) + Rec(g)).v;
                stored = leaf->grad == (before.is_none() ? nullptr : before.ptr());
                if (stored) Py_XSETREF(leaf->grad, total.release().ptr());
                track(leaf);  // Note [Tracked tensors]
            }
        }
        return true;
    } catch (py::error_already_set& e) {
        e.restore();
        return false;
    }
}

void GraphSweep::free_traversed() {
    for (size_t row = 0; row < top; ++row) {
        const uint8_t code = t.rows().op(row);
        const bool traversed = code == OP_CUSTOM ? outputs_reached(static_cast<uint32_t>(row))
                                                 : reached[row] && code > OP_STALE;
        if (!traversed) continue;
        t.mark_freed(static_cast<uint32_t>(row));
        if (code == OP_CUSTOM)
            for (uint32_t o : t.rows().user_record(t.rows().in0(row)).outputs) t.mark_freed(o);
    }
}

// An elementwise row: the op's backward (ops.hpp) with T = Rec.
void GraphSweep::elementwise_row(uint32_t row) {
    const uint8_t code = t.rows().op(row), f = t.rows().flags(row);
    const uint32_t ia = t.rows().in0(row), ib = t.rows().in1(row);
    // Only the gradients an input wants are recorded (x ** 2: no log), and
    // only what they read is read (the row may not have kept the rest).
    const bool want_a = !(f & F_A_CONST) && t.rows().wants_gradient(ia);
    const bool want_b = op_arity(code) == 2 && !(f & F_B_CONST) && t.rows().wants_gradient(ib);
    const int reads = op_reads_wanted(code, want_a, want_b);
    if ((reads & READS_OUT) && t.rows().is_array(row) && is_layout(t.rows().array_of(row))) {
        PyErr_Format(PyExc_RuntimeError, "tapegrad: %s's backward needs its output, which its row "
                     "did not keep (please report this)", op_name(code));
        throw py::error_already_set();
    }
    // An operand as the formula sees it; a value it does not read stays None.
    auto operand = [&](uint32_t index, bool number, bool array, bool read) {
        if (number || array) return Rec(checked(t.rows().operand_object(index, number, array)));
        return read ? Rec(checked(node_tensor(t, index))) : Rec();
    };
    const Rec a = operand(ia, f & F_A_NUMBER, f & F_A_ARRAY, reads & READS_A);
    const Rec out = (reads & READS_OUT) ? Rec(checked(node_tensor(t, row))) : Rec();
    const Rec g(grads[row]);
    visit_op(code, [&](auto tag) {
        using Op = typename decltype(tag)::type;
        if constexpr (Op::arity == 2) {
            const Rec b = operand(ib, f & F_B_NUMBER, f & F_B_ARRAY, reads & READS_B);
            Rec ga, gb;
            backward_wanted<Op>(a, b, out, g, ga, gb, want_a, want_b);
            if (want_a) add(ia, ga.v);
            if (want_b) add(ib, gb.v);
        } else {
            add(ia, Op::backward(a, out, g).v);
        }
    });
}

// An array-op row: the op's backward (array_ops.hpp) with the Recording backend.
void GraphSweep::array_op_row(uint32_t row) {
    // Copied: recording appends to array_records.
    const std::vector<int64_t> inputs = t.rows().array_record(t.rows().in0(row)).inputs;
    const py::tuple params = py::reinterpret_borrow<py::tuple>(t.rows().array_record(t.rows().in0(row)).params);
    const uint8_t code = t.rows().op(row);
    Values x, gx(inputs.size(), py::none());
    Needs need;
    for (int64_t in : inputs) {
        x.push_back(in >= 0 ? checked(node_tensor(t, static_cast<uint32_t>(in)))
                            : py::reinterpret_borrow<py::object>(t.rows().array(static_cast<size_t>(-in - 1))));
        need.push_back(in >= 0);
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

// A user record: a tapegrad.Function's backward runs on Tensors and records;
// a seed-style OperationRecord's backward_fn returns plain numbers, whose
// dependence on the inputs nobody recorded, so it cannot be part of a
// gradient that will be differentiated again.
void GraphSweep::user_record(uint32_t row) {
    if (!outputs_reached(row)) return;
    const UserRecord& r = t.rows().user_record(t.rows().in0(row));
    const std::vector<uint32_t> inputs = r.inputs, outputs = r.outputs;
    const py::object record = py::reinterpret_borrow<py::object>(r.record);
    for (uint32_t o : outputs)  // the record consumes its outputs' gradients now
        if (reached[o] && t.hooked(o)) run_hooks(o);
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
    py::tuple args(outputs.size());
    for (size_t k = 0; k < outputs.size(); ++k) {
        const uint32_t o = outputs[k];
        args[k] = reached[o] ? as_tensor(grads[o])
                             : as_tensor(Numeric::get().mul(value_of(checked(node_tensor(t, o))),
                                                            py::float_(0.0)));
    }
    py::object result = backward(*args);
    py::list items(result);
    if (items.size() != inputs.size()) {
        PyErr_Format(PyExc_ValueError, "backward of %R returned %zd gradients for %zd inputs",
                     record.ptr(), static_cast<Py_ssize_t>(items.size()),
                     static_cast<Py_ssize_t>(inputs.size()));
        throw py::error_already_set();
    }
    for (size_t k = 0; k < inputs.size(); ++k) {
        py::object g = items[k];
        if (g.is_none()) continue;
        py::tuple want = node_shape(inputs[k]), got = Recording::get().shape(g);
        if (!want.equal(got)) {
            PyErr_Format(PyExc_ValueError,
                         "backward of %R returned a gradient of shape %S for input %zd, whose "
                         "shape is %S; return the input's shape",
                         record.ptr(), got.ptr(), static_cast<Py_ssize_t>(k), want.ptr());
            throw py::error_already_set();
        }
        add(inputs[k], g);
    }
}

// Note [Anomaly mode]: the gradients row's backward added into are finite.
bool GraphSweep::check_row(uint32_t row) const {
    for (uint32_t node : t.rows().inputs_of(row)) {
        if (node >= top || !reached[node]) continue;
        if (const char* kind = nonfinite(grads[node].ptr())) return anomaly_error(t, row, node, kind);
    }
    return true;
}

bool GraphSweep::outputs_reached(uint32_t row) const {
    for (uint32_t o : t.rows().user_record(t.rows().in0(row)).outputs)
        if (reached_node(o)) return true;
    return false;
}

// The register_hook functions of a row's tensor, in order, on its complete
// gradient (a Tensor); one that returns a value replaces it.
void GraphSweep::run_hooks(uint32_t row) {
    if (hooks_ran[row]) return;
    hooks_ran[row] = 1;
    PyObject* hooks = t.hooks_of(row);
    if (!hooks) return;
    py::list snapshot(py::reinterpret_borrow<py::object>(hooks));  // a hook may change the list
    for (py::handle hook : snapshot) {
        py::object r = hook(as_tensor(grads[row]));
        if (r.is_none()) continue;
        py::tuple want = node_shape(row), got = Recording::get().shape(r);
        if (!want.equal(got)) {
            PyErr_Format(PyExc_ValueError,
                         "register_hook: a hook returned a gradient of shape %S; return one of the "
                         "tensor's shape (or None to keep the gradient)", got.ptr());
            throw py::error_already_set();
        }
        grads[row] = cast_to_node(is_tensor(r.ptr()) ? r : value_of(r), row);
    }
}

// Adds a gradient into node's, summed down to the node's shape and cast to
// its dtype first.
void GraphSweep::add(uint32_t node, py::object g) {
    g = cast_to_node(sum_to_node(std::move(g), node), node);
    grads[node] = grads[node] ? (Rec(grads[node]) + Rec(g)).v : g;
    reached[node] = 1;
}

py::tuple GraphSweep::node_shape(uint32_t node) const {
    if (!t.rows().is_array(node)) return py::tuple();
    return py::reinterpret_borrow<py::object>(t.rows().array_of(node)).attr("shape");
}

// Undoes broadcasting (DESIGN 2.6), with recorded sums.
py::object GraphSweep::sum_to_node(py::object g, uint32_t node) {
    Recording& rec = Recording::get();
    const py::tuple want = node_shape(node), have = rec.shape(g);
    if (want.equal(have)) return g;
    const size_t nw = py::len(want), nh = py::len(have);
    py::list axes;
    for (size_t i = 0; i < nh; ++i) {
        const bool leading = i + nw < nh;
        if (leading || (want[i + nw - nh].cast<long>() == 1 && have[i].cast<long>() != 1))
            axes.append(i);
    }
    if (py::len(axes)) g = rec.sum(g, py::tuple(axes), py::bool_(true));
    if (nh > nw) g = rec.reshape(g, rec.shape(g)[py::slice(nh - nw, nh, 1)]);  // leading 1s
    // A constant smaller than the node (a number, or a select of numbers) is broadcast up.
    return rec.shape(g).equal(want) ? g : rec.broadcast_to(g, want);
}

// A gradient has its input's dtype (DESIGN 4.3), as in the numeric sweep
// (sum_to_like): a backward's constants (a float64 array operand, the 0.5 of
// maximum's ties, a Python float where a select chose a constant) promote a
// float32 gradient, and the cast here, recorded, undoes that in one place. A
// scalar node's gradient is float64.
py::object GraphSweep::cast_to_node(py::object g, uint32_t node) {
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
py::object GraphSweep::as_tensor(const py::object& g) {
    if (is_tensor(g.ptr())) return g;
    // A gradient the caller may hold (a grad_output it gave) is copied (Note [Immutable values]).
    return checked(constant_tensor(t, PyArray_Check(g.ptr()) ? immutable_value(g.ptr()) : Py_NewRef(g.ptr())));
}

}  // namespace tapegrad
