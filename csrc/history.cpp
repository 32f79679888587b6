#include "history.hpp"

#include <vector>

#include <pybind11/pybind11.h>

#include "array_apply.hpp"
#include "array_ops.hpp"
#include "arrays.hpp"
#include "numeric_sweep.hpp"
#include "sweep_errors.hpp"
#include "tape.hpp"
#include "tensor.hpp"

namespace tapegrad {

namespace {

// Steals a new reference (null after an error) into an owner.
py::object owned(PyObject* o) { return py::reinterpret_steal<py::object>(o); }

// The labels of nodes, as a list; null with an error set.
py::object labels_of(Tape& tape, const std::vector<uint32_t>& nodes) {
    py::object list = owned(PyList_New(static_cast<Py_ssize_t>(nodes.size())));
    for (size_t k = 0; list && k < nodes.size(); ++k) {
        PyObject* label = tape.labels().label_of(nodes[k]);
        if (!label) return py::object();
        PyList_SET_ITEM(list.ptr(), static_cast<Py_ssize_t>(k), label);
    }
    return list;
}

// Appends `item` (a new reference, or null after an error) to `list`.
bool append_new(PyObject* list, PyObject* item) {
    const bool ok = item && PyList_Append(list, item) == 0;
    Py_XDECREF(item);
    return ok;
}

// Appends each of a row's input gradients (new references, stolen; null
// for no gradient: None) to `result`, shaped as its input (gradient_for_node).
bool append_input_grads(Tape& tape, const std::vector<uint32_t>& nodes, std::vector<PyObject*>& parts,
                        PyObject* result) {
    bool ok = true;
    for (size_t k = 0; k < parts.size(); ++k) {
        PyObject* part = parts[k];
        parts[k] = nullptr;
        if (!ok) Py_XDECREF(part);
        else ok = append_new(result, part ? gradient_for_node(tape, nodes[k], part) : Py_NewRef(Py_None));
    }
    return ok;
}

// Resolves an input or output key (a label or a Tensor) to a node.
uint32_t node_of_key(Tape& tape, PyObject* key, const char* which) {
    if (is_tensor(key)) return node_on(tape, reinterpret_cast<TensorObject*>(key));
    if (foreign_label_class && PyObject_TypeCheck(key, reinterpret_cast<PyTypeObject*>(foreign_label_class))) {
        // Note [Foreign labels]: the tensor the label was read from.
        const py::object tensor = owned(PyObject_GetAttrString(key, "tensor"));
        const uint32_t node = tensor && is_tensor(tensor.ptr())
                                  ? node_on(tape, reinterpret_cast<TensorObject*>(tensor.ptr()))
                                  : UINT32_MAX;
        if (node != UINT32_MAX || PyErr_Occurred()) return node;
    }
    if (!PyUnicode_Check(key)) {
        PyErr_Format(PyExc_TypeError,
                     "operation_history.append: %s must hold labels (str) or Tensors, got %.100s",
                     which, Py_TYPE(key)->tp_name);
        return UINT32_MAX;
    }
    const uint32_t node = tape.labels().node_of_label(key);
    if (node == Labels::AMBIGUOUS) {
        PyErr_Format(PyExc_ValueError,
                     "operation_history.append: the label %R names two tensors on this thread's "
                     "tape, one of them made on another thread (or in another tapegrad.Tape), "
                     "whose default labels are numbered separately; list the Tensor itself "
                     "instead of its label, or give it a label of its own",
                     key);
        return UINT32_MAX;
    }
    if (node == UINT32_MAX)
        PyErr_Format(PyExc_ValueError,
                     "operation_history.append: no tensor labelled %R on this thread's tape (was "
                     "it made before clear_history()?); list the Tensor itself instead of its label",
                     key);
    return node;
}

// A record's attribute `attr` (a sequence) as a new sequence; null with an error set.
py::object keys_of(PyObject* record, const char* attr, const char* message) {
    const py::object keys = owned(PyObject_GetAttrString(record, attr));
    return keys ? owned(PySequence_Fast(keys.ptr(), message)) : py::object();
}

bool nodes_of_keys(Tape& tape, PyObject* record, const char* attr, std::vector<uint32_t>& nodes) {
    const py::object seq =
        keys_of(record, attr, "operation_history.append: input_keys and output_keys must be lists");
    if (!seq) return false;
    for (Py_ssize_t k = 0; k < PySequence_Fast_GET_SIZE(seq.ptr()); ++k) {
        const uint32_t node = node_of_key(tape, PySequence_Fast_GET_ITEM(seq.ptr(), k), attr);
        if (node == UINT32_MAX) return false;
        nodes.push_back(node);
    }
    return true;
}

// A Function's outputs (Tensors, freshly made leaves) become recorded tensors:
// not leaves (no .grad), counted live on their rows (Note [Reclaiming records]).
bool function_outputs(Tape& tape, PyObject* record) {
    const py::object seq = keys_of(record, "output_keys", "Function outputs must be a sequence");
    if (!seq) return false;
    for (Py_ssize_t k = 0; k < PySequence_Fast_GET_SIZE(seq.ptr()); ++k) {
        PyObject* item = PySequence_Fast_GET_ITEM(seq.ptr(), k);
        if (!is_tensor(item)) {
            PyErr_SetString(PyExc_TypeError, "Function: every output must be a Tensor");
            return false;
        }
        auto* t = reinterpret_cast<TensorObject*>(item);
        const uint32_t node = node_on(tape, t);
        if (node == UINT32_MAX) return false;
        t->flags &= static_cast<uint8_t>(~T_LEAF);
        // No .grad on a Function's output, so the tape lets go of it: holding it
        // would keep it live, and its records with it, forever.
        tape.rows().let_go_of_leaf(node);
        tape.add_live(node);
    }
    return true;
}

}  // namespace

Py_ssize_t history_length() {
    Tape* tape = current_tape();
    return tape ? static_cast<Py_ssize_t>(tape->rows().n_ops()) : -1;
}

PyObject* history_item(Py_ssize_t k) {
    Tape* tape = current_tape();
    if (!tape) return nullptr;
    const std::vector<uint32_t>& rows = tape->rows().operation_rows();
    if (k < 0 || k >= static_cast<Py_ssize_t>(rows.size())) {
        PyErr_SetString(PyExc_IndexError, "operation_history index out of range");
        return nullptr;
    }
    const uint32_t row = rows[static_cast<size_t>(k)];
    if (tape->rows().op(row) == OP_CUSTOM) {
        const UserRecord& r = tape->rows().user_record(tape->rows().in0(row));
        return Py_BuildValue("(sOOkKO)", "custom", Py_None, Py_None, static_cast<unsigned long>(row),
                             static_cast<unsigned long long>(tape->epoch()), r.record);
    }
    const py::object inputs = labels_of(*tape, tape->rows().inputs_of(row));
    const py::object outputs = labels_of(*tape, {row});
    if (!inputs || !outputs) return nullptr;
    return Py_BuildValue("(sOOkKO)", row_op_name(tape->rows().op(row)), inputs.ptr(), outputs.ptr(),
                         static_cast<unsigned long>(row), static_cast<unsigned long long>(tape->epoch()), Py_None);
}

PyObject* record_vjp(uint64_t row64, uint64_t epoch, PyObject* g) {
    Tape* tape = current_tape();
    if (!tape) return nullptr;
    if (epoch != tape->epoch() || row64 >= tape->rows().size() || tape->rows().op(row64) <= OP_STALE) {
        PyErr_SetString(PyExc_RuntimeError,
                        "this record's backward_fn belongs to a history that clear_history() "
                        "removed (or to another thread's tape)");
        return nullptr;
    }
    // The row's backward is the sweep's (numeric_sweep.hpp), with each input's
    // gradient kept apart: x * x gives two.
    const uint32_t row = static_cast<uint32_t>(row64);
    const uint8_t code = tape->rows().op(row), f = tape->rows().flags(row);
    const bool binary = op_arity(code) == 2;
    const bool want_a = !(f & F_A_CONST), want_b = binary && !(f & F_B_CONST);
    const py::list result;
    std::vector<uint32_t> nodes;  // the row's Tensor inputs,
    std::vector<PyObject*> parts;  // and their gradients
    if (is_array_op(code)) {
        const py::object gc = py::reinterpret_steal<py::object>(to_float_array(g, "backward_fn"));
        if (!gc) return nullptr;
        if (!array_op_backward(*tape, row, gc.ptr(), parts)) return nullptr;
        const std::vector<int64_t> inputs = tape->rows().array_record(tape->rows().in0(row)).inputs;
        std::vector<PyObject*> kept;
        for (size_t k = 0; k < parts.size(); ++k) {
            if (inputs[k] < 0) {  // a constant: not an input of the record
                Py_XDECREF(parts[k]);
                continue;
            }
            nodes.push_back(static_cast<uint32_t>(inputs[k]));
            kept.push_back(parts[k]);
        }
        return append_input_grads(*tape, nodes, kept, result.ptr()) ? result.inc_ref().ptr() : nullptr;
    }
    if (!(f & F_ARRAY)) {
        const double gv = PyFloat_AsDouble(g);
        if (gv == -1.0 && PyErr_Occurred()) return nullptr;
        double ga = 0.0, gb = 0.0;
        scalar_row_gradients(*tape, row, gv, ga, gb);
        if (want_a && !append_new(result.ptr(), PyFloat_FromDouble(ga))) return nullptr;
        if (want_b && !append_new(result.ptr(), PyFloat_FromDouble(gb))) return nullptr;
        return result.inc_ref().ptr();
    }
    const py::object gc = py::reinterpret_steal<py::object>(to_float_array(g, "backward_fn"));
    if (!gc) return nullptr;
    if (!PyArray_SAMESHAPE(reinterpret_cast<PyArrayObject*>(gc.ptr()),
                           reinterpret_cast<PyArrayObject*>(tape->rows().array_of(row)))) {
        PyErr_Format(PyExc_ValueError, "backward_fn: the gradient must have the output's shape %S, not %S",
                     shape_text(tape->rows().array_of(row)).ptr(), shape_text(gc.ptr()).ptr());
        return nullptr;
    }
    GradSink sa, sb;
    const bool ok = elementwise_row_gradients(*tape, row, gc.ptr(), want_a ? &sa : nullptr, want_b ? &sb : nullptr,
                                              nullptr);
    if (want_a) {
        nodes.push_back(tape->rows().in0(row));
        parts.push_back(sa.fresh);
    }
    if (want_b) {
        nodes.push_back(tape->rows().in1(row));
        parts.push_back(sb.fresh);
    }
    if (!ok) {
        for (PyObject* part : parts) Py_XDECREF(part);
        return nullptr;
    }
    return append_input_grads(*tape, nodes, parts, result.ptr()) ? result.inc_ref().ptr() : nullptr;
}

PyObject* append_record(PyObject* record, bool function, PyObject* saved) {
    Tape* tape = current_tape();
    if (!tape) return nullptr;
    const py::object fn = owned(PyObject_GetAttrString(record, "backward_fn"));
    if (!fn) return nullptr;
    if (!PyCallable_Check(fn.ptr())) {
        PyErr_SetString(PyExc_TypeError, "operation_history.append: the record's backward_fn is not callable");
        return nullptr;
    }
    UserRecord r;
    if (!nodes_of_keys(*tape, record, "input_keys", r.inputs) ||
        !nodes_of_keys(*tape, record, "output_keys", r.outputs))
        return nullptr;
    if (r.outputs.empty()) {
        PyErr_SetString(PyExc_ValueError, "operation_history.append: a record needs at least one output");
        return nullptr;
    }
    if (function && !function_outputs(*tape, record)) return nullptr;
    // r.saved holds new references until the tape takes r.
    struct SavedGuard {
        UserRecord* r;
        ~SavedGuard() {
            if (r)
                for (PyObject* h : r->saved) Py_DECREF(h);
        }
    } guard{&r};
    // Note [Saved tensors]: recorded tensors a Function saves (its outputs, now
    // recorded, included) become saved handles.
    // A new tuple: PySequence_Tuple hands back the caller's own tuple when
    // given one, and a tuple others hold must not change under them.
    const py::object items = owned(PySequence_Tuple(saved));
    if (!items) return nullptr;
    const py::object replaced = owned(PyTuple_New(PyTuple_GET_SIZE(items.ptr())));
    if (!replaced) return nullptr;
    for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(items.ptr()); ++k) {
        PyObject* item = PyTuple_GET_ITEM(items.ptr(), k);
        PyObject* kept = nullptr;
        if (PyArray_Check(item)) {  // an array the caller may write later (Note [Immutable values])
            kept = immutable_value(item);
        } else if (is_tensor(item)) {
            uint32_t node;
            kept = saved_handle(*tape, reinterpret_cast<TensorObject*>(item), node);
            if (kept && node != UINT32_MAX) {
                r.saved.push_back(Py_NewRef(kept));
                r.saved_rows.push_back(node);
            }
        } else {
            kept = Py_NewRef(item);
        }
        if (!kept) return nullptr;
        PyTuple_SET_ITEM(replaced.ptr(), k, kept);  // steals kept
    }
    for (uint32_t o : r.outputs) tape->rows().mark_custom_output(o);
    Value v;
    v.index = tape->rows().user_record_count();
    if (tape->push(OP_CUSTOM, 0, static_cast<uint32_t>(v.index), 0, v) == UINT32_MAX) return nullptr;
    r.record = Py_NewRef(record);
    r.by_label = !function;
    guard.r = nullptr;  // the tape owns r.saved now
    tape->rows().add_user_record(std::move(r));  // counts a seed-style one in label_records
    return replaced.inc_ref().ptr();
}

PyObject* graph_of(PyObject* tensor_obj) {
    if (!is_tensor(tensor_obj)) {
        PyErr_Format(PyExc_TypeError, "to_dot: expected a Tensor, got %.100s", Py_TYPE(tensor_obj)->tp_name);
        return nullptr;
    }
    auto* t = reinterpret_cast<TensorObject*>(tensor_obj);
    Tape* tape = current_tape();
    if (!tape) return nullptr;
    py::object rows = owned(PyList_New(0));
    const uint32_t start = find_node(*tape, t);
    if (!rows || start == UINT32_MAX) return rows.release().ptr();  // no history on this tape
    // Everything t depends on: one pass from the top (a user record stands
    // above its outputs), marking the inputs of each marked row.
    std::vector<uint8_t> needed(tape->rows().size(), 0);
    needed[start] = 1;
    std::vector<uint32_t> order;
    for (int64_t i = static_cast<int64_t>(tape->rows().size()) - 1; i >= 0; --i) {
        const uint32_t row = static_cast<uint32_t>(i);
        const uint8_t code = tape->rows().op(row);
        std::vector<uint32_t> inputs;
        if (code == OP_CUSTOM) {
            const UserRecord& r = tape->rows().user_record(tape->rows().in0(row));
            for (uint32_t o : r.outputs) needed[row] |= needed[o];
            if (needed[row]) inputs = r.inputs;
        } else if (needed[row] && (code > OP_STALE || code == OP_VERSION)) {
            inputs = tape->rows().inputs_of(row);
        }
        if (!needed[row]) continue;
        for (uint32_t in : inputs) needed[in] = 1;
        order.push_back(row);
    }
    for (auto it = order.rbegin(); it != order.rend(); ++it) {
        const uint32_t row = *it;
        const uint8_t code = tape->rows().op(row);
        const bool custom = code == OP_CUSTOM;
        const std::vector<uint32_t> ins =
            custom ? tape->rows().user_record(tape->rows().in0(row)).inputs
                   : (code > OP_STALE || code == OP_VERSION ? tape->rows().inputs_of(row)
                                                             : std::vector<uint32_t>{});
        const std::vector<uint32_t> outs =
            custom ? tape->rows().user_record(tape->rows().in0(row)).outputs : std::vector<uint32_t>{row};
        const py::object in_list = owned(PyList_New(0)), out_list = owned(PyList_New(0));
        bool ok = in_list && out_list;
        for (uint32_t n : ins) ok = ok && append_new(in_list.ptr(), PyLong_FromUnsignedLong(n));
        for (uint32_t n : outs) ok = ok && append_new(out_list.ptr(), PyLong_FromUnsignedLong(n));
        py::object name;
        if (custom) {
            name = owned(PyObject_GetAttrString(tape->rows().user_record(tape->rows().in0(row)).record, "op"));
            if (!name) {  // a record of the user's own class
                PyErr_Clear();
                name = owned(PyUnicode_FromString("custom"));
            }
        } else if (code == OP_LEAF && (tape->rows().flags(row) & F_CUSTOM_OUTPUT)) {
            name = owned(PyUnicode_FromString("output"));  // made by a user record, not a leaf
        } else {
            name = owned(PyUnicode_FromString(row_op_name(code)));
        }
        const py::object label = custom ? py::none() : owned(tape->labels().label_of(row));
        const py::object shape = custom ? py::none() : shape_text(tape->rows().is_array(row) ? tape->rows().array_of(row) : nullptr);
        ok = ok && name && label && shape;
        if (!ok || !append_new(rows.ptr(), Py_BuildValue("(kOOOOO)", static_cast<unsigned long>(row), name.ptr(),
                                                         in_list.ptr(), out_list.ptr(), label.ptr(), shape.ptr())))
            return nullptr;
    }
    return rows.release().ptr();
}

bool clear_history() {
    if (!allowed_while_tracing("clear_history()")) return false;
    Tape* tape = current_tape();
    if (!tape) return false;
    if (tape->scratch().sweeping()) {
        PyErr_SetString(PyExc_RuntimeError,
                        "clear_history() cannot run while gradients are being computed (from "
                        "inside a backward_fn); call it after compute_gradients returns");
        return false;
    }
    tape->clear();
    return true;
}

}  // namespace tapegrad
