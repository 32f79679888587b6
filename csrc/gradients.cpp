#include "gradients.hpp"

#include <pybind11/pybind11.h>

#include <type_traits>
#include <vector>

#include "arrays.hpp"
#include "graph_sweep.hpp"
#include "numeric_sweep.hpp"
#include "sweep_args.hpp"

namespace tapegrad {

namespace {

// A list of n items from item(k) (new references), or nullptr if one fails.
template <class F>
PyObject* list_of(Py_ssize_t n, F&& item) {
    py::list out(n);
    for (Py_ssize_t k = 0; k < n; ++k) {
        PyObject* g = item(k);
        if (!g) return nullptr;
        PyList_SET_ITEM(out.ptr(), k, g);
    }
    return out.release().ptr();
}

// Runs sweep S (NumericSweep, or GraphSweep for create_graph) for backward().
template <class S>
bool backward_with(Tape& tape, uint32_t node, PyObject* initial, bool retain_graph) {
    // Every leaf the tape holds is a source: they are what .grad is set on, and
    // the stale check needs them (Note [Stale tensors]).
    std::vector<Source> sources;
    for (size_t row = 0; row < tape.rows().size(); ++row)
        if (tape.rows().op(row) == OP_LEAF && tape.rows().in0(row) != UINT32_MAX)
            sources.push_back({reinterpret_cast<TensorObject*>(tape.rows().leaf_tensor(tape.rows().in0(row))),
                               static_cast<uint32_t>(row)});
    S sweep(tape);
    const bool ok = sweep.rows.start_from(node, initial) && sweep.run(sources, true) && sweep.accumulate_leaf_grads();
    if (ok && !retain_graph) sweep.free_traversed();
    // After a failed sweep too, the tape may be dropped once nothing live needs it.
    if (!ok) tape.lifetime().note_freed();
    return ok;
}

// Runs sweep S for tapegrad.grad(); grad_outputs_given holds one grad_output (or None) per output.
template <class S>
PyObject* grad_with(Tape& tape, const std::vector<TensorObject*>& outputs,
                    const std::vector<TensorObject*>& inputs, const std::vector<PyObject*>& grad_outputs_given,
                    bool retain_graph, bool allow_unused) {
    constexpr bool graph = std::is_same_v<S, GraphSweep>;
    S sweep(tape);
    bool ok = true;
    for (size_t k = 0; ok && k < outputs.size(); ++k) {
        const uint32_t node = backward_target(tape, outputs[k], "grad");
        PyObject* given = grad_outputs_given[k];
        PyObject* value = is_tensor(given) ? value_object(reinterpret_cast<TensorObject*>(given))
                                           : Py_NewRef(given);
        PyObject* initial = node == UINT32_MAX || !value
                             ? nullptr
                             : backward_start_gradient(value_layout(tape, node, outputs[k]), value,
                                             "grad: grad_outputs");
        Py_XDECREF(value);
        // With create_graph a Tensor grad_output keeps its history (checked above by value).
        if (graph && initial && is_tensor(given)) Py_SETREF(initial, Py_NewRef(given));
        ok = initial && sweep.rows.start_from(node, initial);
    }
    std::vector<Source> sources;
    for (TensorObject* in : inputs) sources.push_back(source_of(tape, in));
    add_retired(tape, sources);
    const std::vector<uint8_t> needed = needed_rows(tape, sources, tape.rows().size());
    if (!ok || !sweep.run(sources, false, needed.empty() ? nullptr : &needed) ||
        !check_versions(tape, sweep, sources, inputs.size())) {
        tape.lifetime().note_freed();  // as after a backward: reclaimed once nothing live needs it
        return nullptr;
    }
    PyObject* out = list_of(static_cast<Py_ssize_t>(inputs.size()), [&](Py_ssize_t k) -> PyObject* {
        const Source& src = sources[static_cast<size_t>(k)];
        if (src.node != UINT32_MAX && sweep.reached_node(src.node)) return sweep.rows.tensor_result(src);
        if (allow_unused) return Py_NewRef(Py_None);
        PyErr_Format(PyExc_RuntimeError,
                     "grad: input %zd ('%S') does not appear in the graph of the "
                     "outputs. Pass allow_unused=True to get None for it.",
                     k, label_text(src.tensor).ptr());
        return nullptr;
    });
    if (!out) return nullptr;
    if (!retain_graph) sweep.free_traversed();
    PyObject* tuple = PyList_AsTuple(out);
    Py_DECREF(out);
    return tuple;
}

}  // namespace

PyObject* compute_gradients(PyObject* target_obj, PyObject* sources_obj, PyObject* grad_output) {
    // Its numbers would be constants of a trace (Note [Compiled tapes]).
    if (!allowed_while_tracing("compute_gradients()")) return nullptr;
    if (!is_tensor(target_obj)) {
        PyErr_Format(PyExc_TypeError, "compute_gradients: the target must be a Tensor, got %.100s",
                     Py_TYPE(target_obj)->tp_name);
        return nullptr;
    }
    auto* target = reinterpret_cast<TensorObject*>(target_obj);
    const py::object seq = py::reinterpret_steal<py::object>(checked_sources(sources_obj));
    if (!seq) return nullptr;
    const Py_ssize_t n = PySequence_Fast_GET_SIZE(seq.ptr());
    PyObject** items = PySequence_Fast_ITEMS(seq.ptr());
    Tape* tape = current_tape();
    if (!tape) return nullptr;
    tape->maybe_reclaim();
    const uint32_t target_node = find_node(*tape, target);
    const bool on_tape = target_node != UINT32_MAX;
    PyObject* initial = start_gradient_for(value_layout(*tape, target_node, target), grad_output,
                              "compute_gradients: grad_output");
    if (!initial) return nullptr;
    std::vector<Source> sources;
    bool only_itself = true;
    for (Py_ssize_t k = 0; k < n; ++k) {
        auto* s = reinterpret_cast<TensorObject*>(items[k]);
        only_itself = only_itself && s == target;
        sources.push_back(source_of(*tape, s));
    }
    add_retired(*tape, sources);
    const uint32_t base = on_tape ? identity_row(*tape, target_node) : UINT32_MAX;
    const bool has_history = on_tape && (tape->rows().op(base) == OP_CUSTOM || tape->rows().op(base) > OP_STALE ||
                                         (tape->rows().op(base) == OP_LEAF && (tape->rows().flags(base) & F_CUSTOM_OUTPUT)));
    if (!only_itself && !has_history) {
        Py_DECREF(initial);
        if (!(target->flags & T_LEAF))
            PyErr_Format(PyExc_RuntimeError, "compute_gradients: the history of the target '%S' is gone. %s",
                         label_text(target).ptr(), HISTORY_GONE);
        else
            PyErr_Format(PyExc_ValueError,
                         "compute_gradients: the target '%S' has no recorded history, so it "
                         "depends on no other tensor. Was it computed on .data values (which "
                         "records nothing)? Compute it with Tensor operations instead.",
                         label_text(target).ptr());
        return nullptr;
    }
    if (only_itself && !on_tape) {
        // Each source gets its own gradient, written out if the starting gradient is uniform.
        const py::object held = py::reinterpret_steal<py::object>(initial);
        return list_of(n, [&](Py_ssize_t) { return PyArray_Check(initial) ? owned_copy(initial) : Py_NewRef(initial); });
    }
    NumericSweep sweep(*tape);
    if (!sweep.rows.start_from(target_node, initial) || !sweep.run(sources) ||
        !check_versions(*tape, sweep, sources, static_cast<size_t>(n)))
        return nullptr;
    return list_of(n, [&](Py_ssize_t k) { return sweep.rows.result(sources[static_cast<size_t>(k)]); });
}

bool backward(PyObject* target_obj, PyObject* gradient, bool retain_graph, bool create_graph) {
    if (!allowed_while_tracing("backward()")) return false;  // its .grad would be a constant of the trace
    if (!is_tensor(target_obj)) {
        PyErr_Format(PyExc_TypeError, "backward: expected a Tensor, got %.100s",
                     Py_TYPE(target_obj)->tp_name);
        return false;
    }
    auto* target = reinterpret_cast<TensorObject*>(target_obj);
    Tape* tape = current_tape();
    if (!tape) return false;
    tape->maybe_reclaim();
    const uint32_t node = backward_target(*tape, target, "backward");
    if (node == UINT32_MAX) return false;
    PyObject* initial = backward_start_gradient(value_layout(*tape, node, target), gradient, "backward: gradient");
    if (!initial) return false;
    if (create_graph && is_tensor(gradient)) Py_SETREF(initial, Py_NewRef(gradient));
    return create_graph ? backward_with<GraphSweep>(*tape, node, initial, retain_graph)
                        : backward_with<NumericSweep>(*tape, node, initial, retain_graph);
}

PyObject* grad(PyObject* outputs_obj, PyObject* inputs_obj, PyObject* grad_outputs,
               bool retain_graph, bool create_graph, bool allow_unused) {
    // Without create_graph the gradients would be constants of a trace; with it they record.
    if (!create_graph && !allowed_while_tracing("tapegrad.grad without create_graph=True")) return nullptr;
    const std::vector<TensorObject*> outputs = tensors_of(outputs_obj, "grad: outputs");
    if (outputs.empty()) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "grad: outputs is empty");
        return nullptr;
    }
    const std::vector<TensorObject*> inputs = tensors_of(inputs_obj, "grad: inputs");
    if (inputs.empty()) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "grad: inputs is empty");
        return nullptr;
    }
    for (size_t k = 0; k < inputs.size(); ++k)
        if (!constant_source_error("grad", static_cast<Py_ssize_t>(k), inputs[k])) return nullptr;
    std::vector<PyObject*> grad_outputs_given(outputs.size(), Py_None);
    py::object given;  // holds the grad_outputs grad_outputs_given borrows from
    if (grad_outputs != Py_None) {
        const bool one = is_tensor(grad_outputs) || PyArray_Check(grad_outputs) || PyFloat_Check(grad_outputs);
        given = py::reinterpret_steal<py::object>(one ? PyTuple_Pack(1, grad_outputs) : PySequence_Tuple(grad_outputs));
        if (!given) return nullptr;
        if (PyTuple_GET_SIZE(given.ptr()) != static_cast<Py_ssize_t>(outputs.size())) {
            PyErr_Format(PyExc_ValueError, "grad: %zd grad_outputs for %zd outputs",
                         PyTuple_GET_SIZE(given.ptr()), static_cast<Py_ssize_t>(outputs.size()));
            return nullptr;
        }
        for (size_t k = 0; k < outputs.size(); ++k)
            grad_outputs_given[k] = PyTuple_GET_ITEM(given.ptr(), static_cast<Py_ssize_t>(k));
    }
    Tape* tape = current_tape();
    if (!tape) return nullptr;
    tape->maybe_reclaim();
    return create_graph ? grad_with<GraphSweep>(*tape, outputs, inputs, grad_outputs_given, retain_graph, allow_unused)
                        : grad_with<NumericSweep>(*tape, outputs, inputs, grad_outputs_given, retain_graph, allow_unused);
}

}  // namespace tapegrad
