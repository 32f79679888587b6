// The reverse sweep: one walk from the last row down (Note [Records are
// nodes]), written once over a row policy.
//
// Note [One sweep]
// Which rows a sweep visits, in which order, and what it does at leaves,
// versions, freed and stale rows, hooks and user records, does not depend on
// what a gradient is, so it is written once, here, in Sweep<Rows>. The
// policy `Rows` says what a gradient is and how one row's backward runs, as
// the backends of array_ops.hpp (Note [Backends]) say how one formula
// computes:
//   - NumericRows (numeric_sweep.hpp): doubles and ndarrays, the op tables'
//     numeric formulas, hot scalar ops inlined into the loop;
//   - RecordingRows (graph_sweep.hpp): Tensors, the same formulas through TapeValue
//     and Recording so that they record (create_graph, Note [Recording]).
// A replay or a tangent policy is one more `Rows`. A policy provides:
//   - `t`, `check_anomalies`, `reached` (a byte of Reach flags per row) and
//     top() (the rows at the start: rows recorded while it runs are not swept);
//   - `needed`, set by run() (Note [Needed rows]): an input whose row is not
//     needed gets no gradient computed (wants());
//   - start(): set up before the loop (false with an error set);
//   - Cursor and cursor(): the columns the loop reads, reloaded after any row
//     that can run Python (which may record, and so move them);
//   - INLINE_ROWS, special(code, flags) and scalar_row(): the rows the loop
//     runs inline, for a policy that has such (numeric scalar ops);
//   - op_row(): any other op row's backward (Next::SCALAR hands a row back to
//     scalar_row); pass_version(): a version row (Note [Versions]);
//   - nonfinite(node): Note [Anomaly mode];
//   - hook_argument(), gradient_value(), shape_of() and set_gradient(): what a
//     hook gets, and its result made the row's gradient;
//   - user_backward(), user_argument(), user_gradient() and add_gradient():
//     the same for a user record's backward;
//   - accumulate(): a leaf's gradient added into its .grad.
// Their errors come back as false (or a null object) with the Python error
// set; the policies' pybind11 code turns exceptions into that at its edges.
//
// Note [Reached]
// A row is visited only if one of its outputs received a gradient; that is a
// flag, not a test for zero, so a zero gradient still meets an infinite
// partial and gives NaN, as in PyTorch.
#pragma once

#include <pybind11/pybind11.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "anomaly.hpp"
#include "sweep_errors.hpp"
#include "sweep_sources.hpp"
#include "tape.hpp"
#include "tensor.hpp"

namespace tapegrad {

namespace py = pybind11;

#if defined(__GNUC__)
#define TAPEGRAD_NOINLINE __attribute__((noinline))
#else
#define TAPEGRAD_NOINLINE
#endif

// A row's flags in a sweep: reached (Note [Reached]), kept (a source's: its
// gradient is read after the sweep, so it is not spent), hooks already run.
enum Reach : uint8_t { REACHED = 1, KEEP = 2, HOOKS_RAN = 4 };

// What a special row leaves to the loop: nothing, its scalar backward, or an error.
enum class Next { DONE, SCALAR, FAILED };

template <class Rows>
class Sweep {
public:
    explicit Sweep(Tape& tape) : rows(tape), t(tape) {}
    Sweep(const Sweep&) = delete;
    Sweep& operator=(const Sweep&) = delete;

    // Runs the loop. every_leaf: backward()'s sweep, whose sources are every
    // leaf (check_stale); `needed` (Note [Needed rows]): the rows to sweep,
    // or nullptr for all.
    bool run(const std::vector<Source>& sources, bool every_leaf = false,
             const std::vector<uint8_t>* needed = nullptr);

    bool reached_node(uint32_t node) const { return node < rows.top() && (rows.reached[node] & REACHED); }

    // After a backward() that does not retain the graph: what it traversed
    // cannot be traversed again (the values stay until the tape is cleared).
    void free_traversed();

    // backward(): adds each reached leaf's gradient into its .grad.
    bool accumulate_leaf_grads();

    Rows rows;

private:
    // Kept out of run(): inlined there, the loop has fewer registers for its
    // columns (a column reloaded from the stack per row).
    template <bool CHECKS>
    TAPEGRAD_NOINLINE bool sweep_rows(const std::vector<Source>& sources, bool every_leaf,
                    const std::vector<uint8_t>* needed, int64_t lowest);
    bool custom_row(uint32_t row);
    Next special_row(uint32_t row, uint8_t code, uint8_t f, const std::vector<Source>& sources,
                     bool every_leaf);
    bool run_hooks(uint32_t row);
    bool user_record(uint32_t row);
    bool take_user_grads(PyObject* record, const std::vector<uint32_t>& inputs, PyObject* result);
    bool outputs_reached(uint32_t row) const;
    bool check_row(uint32_t row);

    Tape& t;
};

// ---- the walk ----

template <class Rows>
bool Sweep<Rows>::run(const std::vector<Source>& sources, bool every_leaf,
                      const std::vector<uint8_t>* needed) {
    if (!rows.start()) return false;
    rows.needed = needed;
    // Rows only pass gradients to lower rows, so nothing below the lowest
    // source can change a source's gradient: stop there, unless stale rows
    // below it still need their check (Note [Stale tensors]).
    const int64_t top = static_cast<int64_t>(rows.top());
    int64_t lowest = !t.foreign().any_stale() ? top : 0;
    for (const Source& s : sources) {
        if (s.node == UINT32_MAX || s.node >= top) continue;
        rows.reached[s.node] |= KEEP;
        lowest = std::min<int64_t>(lowest, s.node);
    }
    if (lowest == top) lowest = 0;
    // The loop is compiled twice, so that its common form (every row needed,
    // no anomaly checks) carries no test for either.
    if (!needed && !rows.check_anomalies) return sweep_rows<false>(sources, every_leaf, nullptr, lowest);
    return sweep_rows<true>(sources, every_leaf, needed, lowest);
}

template <class Rows>
template <bool CHECKS>
bool Sweep<Rows>::sweep_rows(const std::vector<Source>& sources, bool every_leaf,
                             const std::vector<uint8_t>* needed, int64_t lowest) {
    // Columns as raw pointers: a store to the uint8_t `reached` may alias
    // anything, so through the vectors every column pointer would be reloaded
    // per row. The loop body is kept small: a row the policy runs inline (the
    // op's backward, one switch) or a call.
    typename Rows::Cursor c = rows.cursor();
    for (int64_t i = static_cast<int64_t>(rows.top()) - 1; i >= lowest; --i) {
        const uint32_t row = static_cast<uint32_t>(i);
        const uint8_t code = c.op[row];
        if constexpr (CHECKS) {
            if (needed && !(*needed)[row]) {  // leads to no source: not swept, not freed
                c.reached[row] &= static_cast<uint8_t>(~REACHED);
                continue;
            }
        }
        if (code == OP_CUSTOM) {
            if (!custom_row(row)) return false;
            c = rows.cursor();
            continue;
        }
        if (!(c.reached[row] & REACHED)) continue;
        const uint8_t f = c.flags[row];
        if (Rows::special(code, f)) {
            const Next next = special_row(row, code, f, sources, every_leaf);
            c = rows.cursor();
            if (next == Next::FAILED) return false;
            if (next == Next::DONE) continue;
        }
        if constexpr (Rows::INLINE_ROWS) {
            Rows::scalar_row(c, row, code);
            if (CHECKS && rows.check_anomalies && !check_row(row)) return false;
        }
    }
    return true;
}

// A user record's row (Function or seed-style): its backward, if any of its outputs was reached.
template <class Rows>
bool Sweep<Rows>::custom_row(uint32_t row) {
    const bool ran = outputs_reached(row);
    if (ran && (t.rows().flags(row) & F_FREED)) return freed_error(t, row);
    if (!user_record(row)) return false;
    return !(ran && rows.check_anomalies) || check_row(row);
}

// Every reached row but one the loop runs inline: hooks, leaves, versions,
// freed and stale rows, then the policy's op rows.
template <class Rows>
Next Sweep<Rows>::special_row(uint32_t row, uint8_t code, uint8_t f, const std::vector<Source>& sources,
                              bool every_leaf) {
    // its gradient is complete: every consumer is above
    if (t.hooked(row)) {
        if (!run_hooks(row)) return Next::FAILED;
        f = t.rows().flags(row);  // a hook's own grad() or backward() may have freed this row
    }
    if (code == OP_LEAF) return Next::DONE;
    if (code == OP_VERSION)  // a newer value: its gradient is the older one's too
        return rows.pass_version(row) ? Next::DONE : Next::FAILED;
    if (f & F_FREED) return freed_error(t, row) ? Next::DONE : Next::FAILED;
    if (code == OP_STALE) return check_stale(t, row, sources, every_leaf) ? Next::DONE : Next::FAILED;
    const Next next = rows.op_row(row, code, f);
    if (next == Next::DONE && rows.check_anomalies && !check_row(row)) return Next::FAILED;
    return next;
}

// Calls the register_hook functions of a row's tensor, in order, on its
// complete gradient; one that returns a value replaces the gradient.
template <class Rows>
bool Sweep<Rows>::run_hooks(uint32_t row) {
    if (rows.reached[row] & HOOKS_RAN) return true;
    rows.reached[row] |= HOOKS_RAN;
    PyObject* hooks = t.hooks_of(row);
    if (!hooks) return true;
    try {
        const py::list snapshot(py::reinterpret_borrow<py::object>(hooks));  // a hook may change the list
        for (py::handle hook : snapshot) {
            py::object r = hook(rows.hook_argument(row));
            if (r.is_none()) continue;
            const py::object value = rows.gradient_value(r, "register_hook: a hook's result");
            const py::object want = shape_text(t.rows().is_array(row) ? t.rows().array_of(row) : nullptr);
            if (!want.equal(rows.shape_of(value))) return hook_shape_error(value.ptr());
            if (!rows.set_gradient(row, value)) return false;
        }
        return true;
    } catch (py::error_already_set& e) {
        e.restore();
        return false;
    }
}

template <class Rows>
bool Sweep<Rows>::user_record(uint32_t row) {
    bool any = false;
    for (uint32_t o : t.rows().user_record(t.rows().in0(row)).outputs) {
        if (!(rows.reached[o] & REACHED)) continue;
        any = true;
        // The record consumes its outputs' gradients now, before their own rows.
        if (t.hooked(o) && !run_hooks(o)) return false;
    }
    if (!any) return true;
    // Copied: the callback may append to (and so move) user_records.
    const UserRecord& r = t.rows().user_record(t.rows().in0(row));
    const std::vector<uint32_t> inputs = r.inputs, outputs = r.outputs;
    const py::object record = py::reinterpret_borrow<py::object>(r.record);
    try {
        const py::object backward = rows.user_backward(record);
        py::tuple args(outputs.size());
        for (size_t k = 0; k < outputs.size(); ++k) args[k] = rows.user_argument(outputs[k]);
        const py::object result = backward(*args);
        return take_user_grads(record.ptr(), inputs, result.ptr());
    } catch (py::error_already_set& e) {
        e.restore();
        return false;
    }
}

// A user record's result: one gradient (or None) per input, of its shape.
template <class Rows>
bool Sweep<Rows>::take_user_grads(PyObject* record, const std::vector<uint32_t>& inputs, PyObject* result) {
    if (!PyList_Check(result) && !PyTuple_Check(result)) return user_result_error(record, result);
    const Py_ssize_t n = PySequence_Fast_GET_SIZE(result);
    if (n != static_cast<Py_ssize_t>(inputs.size()))
        return user_count_error(record, n, static_cast<Py_ssize_t>(inputs.size()));
    // Held: a gradient's conversion may run Python that changes the list.
    const py::tuple items = py::reinterpret_steal<py::tuple>(PySequence_Tuple(result));
    if (!items) return false;
    for (Py_ssize_t k = 0; k < n; ++k) {
        PyObject* item = PyTuple_GET_ITEM(items.ptr(), k);
        if (item == Py_None) continue;
        const uint32_t node = inputs[static_cast<size_t>(k)];
        const py::object value = rows.user_gradient(item);
        if (!value) {
            PyErr_Clear();
            return user_type_error(record, k, item);
        }
        PyObject* like = t.rows().is_array(node) ? t.rows().array_of(node) : nullptr;
        if (!shape_text(like).equal(rows.shape_of(value)))
            return user_shape_error(record, k, rows.shape_of(value).ptr(), like);
        if (!rows.add_gradient(node, value)) return false;
    }
    return true;
}

template <class Rows>
bool Sweep<Rows>::outputs_reached(uint32_t row) const {
    for (uint32_t o : t.rows().user_record(t.rows().in0(row)).outputs)
        if (reached_node(o)) return true;
    return false;
}

// Note [Anomaly mode]: the gradients row's backward added into are finite.
template <class Rows>
bool Sweep<Rows>::check_row(uint32_t row) {
    for (uint32_t node : t.rows().inputs_of(row)) {
        if (!reached_node(node)) continue;
        if (const char* kind = rows.nonfinite(node)) return anomaly_error(t, row, node, kind);
    }
    return true;
}

template <class Rows>
void Sweep<Rows>::free_traversed() {
    // top(): rows a backward recorded during the sweep were not traversed.
    for (size_t row = 0; row < rows.top(); ++row) {
        const uint8_t code = t.rows().op(row);
        const bool traversed = code == OP_CUSTOM ? outputs_reached(static_cast<uint32_t>(row))
                                                 : (rows.reached[row] & REACHED) && code > OP_STALE;
        if (!traversed) continue;
        t.mark_freed(static_cast<uint32_t>(row));
        // A Function's outputs stand on their own rows: freed with their record.
        if (code == OP_CUSTOM)
            for (uint32_t o : t.rows().user_record(t.rows().in0(row)).outputs) t.mark_freed(o);
    }
}

template <class Rows>
bool Sweep<Rows>::accumulate_leaf_grads() {
    for (size_t row = 0; row < rows.top(); ++row) {
        if (t.rows().op(row) != OP_LEAF || !(rows.reached[row] & REACHED) || t.rows().in0(row) == UINT32_MAX) continue;
        auto* leaf = reinterpret_cast<TensorObject*>(t.rows().leaf_tensor(t.rows().in0(row)));
        if (!same_layout_as(t, static_cast<uint32_t>(row), leaf))
            return version_error(t, leaf, static_cast<uint32_t>(row));
        if (!rows.accumulate(leaf, static_cast<uint32_t>(row))) return false;
    }
    return true;
}

}  // namespace tapegrad
