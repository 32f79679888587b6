// pybind11 bindings only: no logic here. The two op entry points are plain
// CPython fastcall functions (one crossing per op, Note [Tensor layout]).
#include <pybind11/pybind11.h>

#include <memory>

#include "array_apply.hpp"
#include "array_ops.hpp"
#include "catalogue.hpp"
#include "contract.hpp"
#include "arrays.hpp"
#include "history.hpp"
#include "numpy_dispatch.hpp"
#include "ops.hpp"
#include "replay.hpp"
#include "gradients.hpp"
#include "tape.hpp"
#include "tensor.hpp"

namespace py = pybind11;
using namespace tapegrad;

namespace {

py::object checked(PyObject* result) {
    if (!result) throw py::error_already_set();
    return py::reinterpret_steal<py::object>(result);
}

Tape& tape() {
    Tape* t = current_tape();
    if (!t) throw py::error_already_set();
    return *t;
}

// A tapegrad.Tape's own tape (Python owns it; it is never a thread's default).
struct OwnTape {
    std::unique_ptr<Tape> tape = std::make_unique<Tape>();
};

PyMethodDef fast_methods[] = {
    {"apply_unary", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(apply_unary)),
     METH_FASTCALL, "apply_unary(code, a): op `code` on a, recorded when a requires grad."},
    {"apply_binary", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(apply_binary)),
     METH_FASTCALL, "apply_binary(code, a, b): op `code` on a and b, recorded when either requires grad."},
    {"array_op", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(array_op_entry)),
     METH_FASTCALL, "array_op(code, inputs, params): array op `code` (reductions, shapes, matmul...)."},
    {"set_ufunc_dispatch", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(set_ufunc_dispatch)),
     METH_FASTCALL, "set_ufunc_dispatch(codes, fallback): Note [numpy dispatch]."},
    {nullptr, nullptr, 0, nullptr}};

}  // namespace

PYBIND11_MODULE(_core, m) {
    m.doc() = "tapegrad's native core: the tape, the op table and the reverse sweep.";
    if (!init_arrays() || !init_tensor_type(m.ptr()) || !add_catalogue(m.ptr()) ||
        PyModule_AddFunctions(m.ptr(), fast_methods) < 0)
        throw py::error_already_set();

    py::dict codes;
#define TAPEGRAD_CODE(code, cls) codes[cls::name] = static_cast<int>(OP_##code);
    TAPEGRAD_OPS(TAPEGRAD_CODE)
    TAPEGRAD_ARRAY_OPS(TAPEGRAD_CODE)
#undef TAPEGRAD_CODE
    m.attr("OP_CODES") = codes;
    m.attr("RECLAIM_ROWS") = Lifetime::RECLAIM_ROWS;  // Note [Reclaiming records]
    m.attr("RECLAIM_BYTES") = Lifetime::RECLAIM_BYTES;

    m.def("set_tensor_class", [](py::object cls) {
        if (!set_tensor_class(cls.ptr())) throw py::error_already_set();
    });
    m.def("set_foreign_label_class", [](py::object cls) {
        if (!PyType_Check(cls.ptr()) ||
            !PyType_IsSubtype(reinterpret_cast<PyTypeObject*>(cls.ptr()), &PyUnicode_Type))
            throw py::type_error("set_foreign_label_class: expected a subclass of str");
        Py_XSETREF(foreign_label_class, cls.inc_ref().ptr());  // kept for the life of the process
    });
    m.def("compute_gradients",
          [](py::object target, py::object sources, py::object grad_output) {
              return checked(compute_gradients(target.ptr(), sources.ptr(), grad_output.ptr()));
          },
          py::arg("target"), py::arg("sources"), py::arg("grad_output") = py::none());
    m.def("backward",
          [](py::object target, py::object gradient, bool retain_graph, bool create_graph) {
              if (!backward(target.ptr(), gradient.ptr(), retain_graph, create_graph))
                  throw py::error_already_set();
          },
          py::arg("target"), py::arg("gradient") = py::none(), py::arg("retain_graph") = false,
          py::arg("create_graph") = false);
    m.def("grad",
          [](py::object outputs, py::object inputs, py::object grad_outputs, bool retain_graph,
             bool create_graph, bool allow_unused) {
              return checked(grad(outputs.ptr(), inputs.ptr(), grad_outputs.ptr(), retain_graph,
                                  create_graph, allow_unused));
          },
          py::arg("outputs"), py::arg("inputs"), py::arg("grad_outputs") = py::none(),
          py::arg("retain_graph") = false, py::arg("create_graph") = false,
          py::arg("allow_unused") = false);
    m.def("is_grad_enabled", []() { return tape().grad_mode(); });
    m.def("set_grad_enabled", [](bool mode) {
        bool& enabled = tape().grad_mode();
        const bool previous = enabled;
        enabled = mode;
        return previous;
    });
    m.def("is_anomaly_enabled", []() { return tape().anomaly_mode(); });
    m.def("set_detect_anomaly", [](bool mode) {  // Note [Anomaly mode]
        bool& enabled = tape().anomaly_mode();
        const bool previous = enabled;
        enabled = mode;
        Tape::anomaly_ever = Tape::anomaly_ever || mode;
        return previous;
    });
    py::class_<OwnTape>(m, "OwnTape", "The tape of a tapegrad.Tape context.")
        .def(py::init<>())
        .def("push", [](OwnTape& t) {
            // Ops inside would record on this tape, not the trace (Note [Compiled tapes]).
            if (!allowed_while_tracing("a tapegrad.Tape context") || !push_tape(t.tape.get()))
                throw py::error_already_set();
        })
        .def("pop", [](OwnTape& t) {
            if (!pop_tape(t.tape.get())) throw py::error_already_set();
        })
        .def("clear", [](OwnTape& t) {
            if (t.tape->scratch().sweeping()) throw py::value_error("Tape.clear: a gradient is being computed");
            t.tape->clear();
        })
        .def("rows", [](OwnTape& t) { return t.tape->rows().size(); });
    py::class_<Trace>(m, "Trace", "A tape recorded once by tapegrad.compile and replayed (Note [Compiled tapes]).")
        .def(py::init<>())
        .def("push", &Trace::push)
        .def("pop", &Trace::pop)
        .def("finish", &Trace::finish, py::arg("inputs"), py::arg("output"))
        .def("replay", &Trace::replay, py::arg("values"), py::arg("wrt") = py::none(),
             py::arg("seeds") = py::none(), py::arg("tangents") = py::none())
        .def("depends_on", &Trace::depends_on, py::arg("wrt"))
        .def_property_readonly("busy", &Trace::busy)
        .def_property_readonly("rows", &Trace::row_count)
        .def_property_readonly("ops", &Trace::op_count)
        .def_property_readonly("pooled_arrays", &Trace::pooled_arrays)
        .def_property_readonly("guards", &Trace::guard_count)
        .def_property_readonly("fused_groups", [](const Trace& t) { py::list out; for (size_t n : t.fused_groups()) out.append(n); return out; },
                               "The fused groups' sizes in rows (Note [Fused rows]).")
        .def_property_readonly("scalar_output", &Trace::scalar_output)
        .def_property_readonly("hooks", &Trace::hooks);
    m.def("set_trace_hooks", [](py::object error_class, py::object escape) {
        if (!PyType_Check(error_class.ptr()) || !PyCallable_Check(escape.ptr()))
            throw py::type_error("set_trace_hooks(error_class: type, escape: callable)");
        set_trace_hooks(error_class.ptr(), escape.ptr());
    });
    m.def("tracing", []() { return tape().tracing; });
    m.def("untraced", [](py::object fn, py::args args) {
        // fn(*args) with the calling thread's trace paused: a Function's forward,
        // a callback the replay calls again (Note [Compiled tapes]).
        Tape& t = tape();
        if (!t.tracing) return fn(*args);
        t.tracing = false;
        --Tape::tracing_count;
        struct Resume {
            Tape& t;
            ~Resume() {
                t.tracing = true;
                ++Tape::tracing_count;
            }
        } resume{t};
        return fn(*args);
    });
    m.def("compare", [](py::object a, py::object b, int op) {
        // op: Python's rich comparison code (0..5), or -1 for bool(a).
        if (op < Trace::TRUTH || op > Py_GE) throw py::value_error("compare: op must be -1 (truth) or 0..5");
        if (!is_tensor(a.ptr())) throw py::type_error("compare: the first operand must be a Tensor");
        return checked(compare_values(a.ptr(), b.ptr(), op));
    });
    m.def("peek", [](py::object t) {
        // A Tensor's value for its layout (shape, dtype, size): no escape while tracing.
        if (!is_tensor(t.ptr())) throw py::type_error("peek: expected a Tensor");
        return checked(value_object(reinterpret_cast<TensorObject*>(t.ptr())));
    });
    m.def("register_hook", [](py::object tensor, py::object fn) {
        return checked(register_hook(tensor.ptr(), fn.ptr()));
    });
    m.def("graph_of", [](py::object tensor) { return checked(graph_of(tensor.ptr())); });
    m.def("clear_history", []() {
        if (!clear_history()) throw py::error_already_set();
    });
    m.def("get_counter", []() { return tape().labels().counter(); });
    m.def("set_counter", [](int64_t n) {
        if (n < 0) throw py::value_error("Tensor._counter must be >= 0");
        tape().labels().set_counter(n);
    });
    m.def("history_length", []() {
        Py_ssize_t n = history_length();
        if (n < 0) throw py::error_already_set();
        return n;
    });
    m.def("history_item", [](Py_ssize_t k) { return checked(history_item(k)); });
    m.def("record_vjp", [](uint64_t row, uint64_t epoch, py::object g) {
        return checked(record_vjp(row, epoch, g.ptr()));
    });
    m.def("append_record",
          [](py::object record, bool function, py::object saved) {
              return checked(append_record(record.ptr(), function, saved.ptr()));
          },
          py::arg("record"), py::arg("function") = false, py::arg("saved") = py::tuple());
    m.def("tape_rows", []() { return tape().rows().size(); });
    m.def("tape_stats", []() {  // for tests and debugging: what the lifetime rules see
        Tape& t = tape();
        py::dict d;
        d["rows"] = t.rows().size();
        d["live"] = t.lifetime().live_total();
        d["live_freed"] = t.lifetime().live_freed();
        d["freed_any"] = t.lifetime().freed_any();
        d["compact_at"] = t.lifetime().compact_at();
        d["leaves"] = t.rows().leaf_count();
        d["user_records"] = t.rows().user_record_count();
        d["pool_arrays"] = t.pool.size();
        d["pool_bytes"] = t.pool.bytes();
        d["temporaries_reused"] = t.temporaries_reused();
        d["origins"] = t.rows().origin_count();
        return d;
    });
    // For tests: how many einsum plans are cached (Note [Contractions]).
    m.def("einsum_plans", []() { return contraction_plans_cached(); });
}
