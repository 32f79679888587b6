// Compiled tapes: a tape recorded once by tapegrad.compile, then run again on
// new input values, forward and backward, without the Python that recorded it.
//
// Note [Compiled tapes]
// The tape is a program (Note [Records are nodes]): its rows, in order, say
// which op computes each value from which lower rows, constants and array
// parameters. A Trace owns a tape of its own. tapegrad.compile records f on it
// once (push, f on leaf Tensors, pop, finish); replay() then sets the input
// leaves' rows to new values, recomputes every op row that the output or a
// guard depends on with the op tables' forward formulas, and runs the reverse
// sweep on the same rows (Sweep<NumericRows>, retaining the graph), so hooks
// are called as in an eager backward. No Tensor is made and no Python line of
// f runs.
//
// A replay must never answer what f would not have. Three rules keep it so:
//   - Guards. Where f's Python reads a value to branch on it (bool(t), t < u
//     used as a Python value, max() of Tensors), the comparison is recorded
//     with the outcome seen, at its place among the rows. A replay checks it
//     when the rows below it are computed; another outcome stops the replay
//     (the caller traces that path too).
//   - Escapes. A value that leaves the tape into Python (Tensor.data, and so
//     float(t), t.item(), t.numpy(), printing) would be a constant of the
//     trace, so it raises TraceError while tracing; so do ops computed under
//     no_grad on values that require grad, gradients taken without
//     create_graph, other tapes pushed, and clear_history(), whose results
//     would be constants too.
//   - Rows a replay cannot run are refused when the trace finishes: the seed's
//     OperationRecords and in-place updates. A tapegrad.Function is a
//     callback: the replay calls its forward again on the new values (which
//     rebinds its backward, called by the sweep as in an eager one).
// Constants of the trace (numbers, closure arrays and Tensors) keep the values
// recorded (an array constant is copied when traced). An array argument is read
// in place, unless Python runs during the replay (hooks, Functions), which
// could write into it: then it is copied, as Tensor(x) copies. A trace is used by one replay at a time (busy()): a call that finds
// it busy (another thread, a hook calling the same function) traces anew.
#pragma once

#include <pybind11/pybind11.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "fusion.hpp"
#include "sweep_sources.hpp"
#include "tape.hpp"

namespace tapegrad {

namespace py = pybind11;

// An operand of a guard: a row of the trace, or a constant.
struct GuardOperand {
    uint32_t row = UINT32_MAX;
    py::object constant;
};

// One value f's Python branched on, with the outcome it saw.
struct Guard {
    size_t position;  // rows recorded before it: checked once they are computed
    int op;           // Py_LT .. Py_GE, or TRUTH
    GuardOperand a, b;
    py::object outcome;  // a bool (or numpy bool), or a bool array
};

class Trace {
public:
    static constexpr int TRUTH = -1;

    Trace();
    ~Trace();
    Trace(const Trace&) = delete;
    Trace& operator=(const Trace&) = delete;

    // Recording: this trace's tape is the calling thread's current tape from
    // push() to pop().
    void push();
    void pop();
    // After f returned: its input leaves (Tensors made while pushed, in the
    // order replay() gets their values) and its output (a Tensor or a number).
    // Raises TraceError for rows a replay cannot run.
    void finish(const py::sequence& inputs, const py::handle& output);

    // Runs the tape on new input values (floats and ndarrays of the recorded
    // layouts, one per input). None when a guard comes out otherwise, or when
    // the trace is running (busy(): another call uses it); else
    // (value, gradients): the gradients of the inputs `wrt` names (a list of
    // indices; None: no backward), floats and ndarrays. With `seeds` (a list of
    // output gradients: floats, or ndarrays of the output's layout), one
    // reverse sweep per seed over the one forward: a list of gradient lists.
    // With `tangents` (a list of directions, each one tangent per input, None
    // for zero) and no wrt: (value, [J t per direction]), by a forward sweep
    // of tangents over the one forward of values (Note [Tangent sweep]).
    py::object replay(const py::sequence& values, const py::object& wrt, const py::object& seeds,
                      const py::object& tangents = py::none());

    // Whether f's value depends on any of the inputs `wrt` names (a list of
    // indices): through the rows, not through a constant of the trace.
    bool depends_on(const py::sequence& wrt);
    bool busy() const { return busy_; }
    size_t row_count() const { return tape_->rows().size(); }
    size_t op_count() const { return order_.size(); }
    // For tests: the arrays its pool holds between replays, waiting and lent.
    size_t pooled_arrays() const { return tape_->pool.size() + tape_->pool.lent_count(); }
    size_t guard_count() const { return guards_.size(); }
    std::vector<size_t> fused_groups() const { return fusion_.sizes(); }
    // Whether f's value is one element (a float, or an array of size 1): only
    // then does replay() take gradients.
    bool scalar_output() const { return scalar_output_; }
    // Whether a hook is registered on a row or an input: it may change gradients.
    bool hooks() const { return hooks_; }

    // bool(t) or `t op u` while this trace records: the outcome (a new
    // reference), recorded as a guard. nullptr with an error set.
    PyObject* guard(int op, PyObject* a, PyObject* b);
    // An escape raised while recording (`message`, its TraceError's text):
    // kept, so that finish() raises it even if f caught it and went on.
    void note_escape(const std::string& message) {
        if (escape_.empty()) escape_ = message;
    }

private:
    enum class Ran { OK, GUARD_FAILED, FAILED };
    // `keep`: every row keeps its value (a tangent sweep reads them after), none released.
    Ran forward(bool may_fuse, bool with_partials, const std::vector<uint8_t>* needed, bool keep = false);
    bool run_group(int group, bool may_fuse, bool with_partials, const std::vector<uint8_t>* needed);
    const std::vector<uint8_t>* needed_for(const std::vector<size_t>& wanted, const std::vector<Source>& sources);
    Ran check_guards(size_t& g, size_t upto, size_t& next);
    bool compute_row(uint32_t row);
    bool run_function(uint32_t row);
    std::vector<uint8_t> read_by_caller() const;
    std::vector<uint8_t> depended_on(std::vector<uint8_t> live) const;
    void plan_releases();
    void release_after(size_t i);
    int guard_holds(const Guard& g);  // 1, 0, or -1 with an error set
    GuardOperand operand(PyObject* x);
    PyObject* operand_value(const GuardOperand& x);
    bool set_input(size_t k, PyObject* value);
    PyObject* start_gradient(const py::handle& seed);
    std::vector<Source> sources_of(const py::sequence& wrt, std::vector<size_t>& wanted) const;
    py::list gradients(const std::vector<Source>& sources, const std::vector<uint8_t>* needed,
                       const std::vector<py::object>& seeds);

    std::unique_ptr<Tape> tape_;
    std::vector<Guard> guards_;
    std::vector<PyObject*> inputs_;  // owned Tensors: the sweep's sources
    std::vector<uint32_t> input_rows_;  // UINT32_MAX: f did not use the input
    uint32_t output_row_ = UINT32_MAX;
    py::object output_constant_;  // f's value when it has no row
    std::vector<uint32_t> order_;  // the op rows replay() computes, ascending
    std::vector<uint32_t> tangent_order_;  // those the output depends on: a tangent sweep's
    // Note [Replay memory]: after order_[i] is computed, the array rows in
    // release_after_[i] (read by no backward, and by no later row or guard)
    // go back to a layout, their buffers to the pool. Empty with no array rows.
    std::vector<std::vector<uint32_t>> release_after_;
    std::map<std::vector<size_t>, std::vector<uint8_t>> needed_;  // Note [Needed rows], per wrt
    FusedGroups fusion_;  // Note [Fused rows]
    bool finished_ = false, busy_ = false, scalar_output_ = true;
    bool callbacks_ = false;  // hooks or Functions: Python runs during a replay
    bool hooks_ = false;
    std::string escape_;
};

// The class TraceError and the function that raises it for an escape
// (tapegrad.compiled sets them: the message names the user's line).
void set_trace_hooks(PyObject* error_class, PyObject* escape);

// Whether tensor t's value may be read into Python now: false, with TraceError
// set, when its own tape or the calling thread's records a trace (a tensor of a
// trace read on another thread escapes too). Cheap when no trace records.
bool value_may_leave_slow(PyObject* t, const char* what);
inline bool value_may_leave(PyObject* t, const char* what) {
    return Tape::tracing_count == 0 || value_may_leave_slow(t, what);
}

// bool(t) and the comparisons of Tensors (tensor.py): the outcome on the
// values, recorded as a guard while a trace records.
PyObject* compare_values(PyObject* a, PyObject* b, int op);

}  // namespace tapegrad
