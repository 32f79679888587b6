#include "replay.hpp"

#include <algorithm>
#include <string>

#include "array_apply.hpp"
#include "array_ops.hpp"
#include "arrays.hpp"
#include "numeric_sweep.hpp"
#include "sweep_sources.hpp"
#include "tangents.hpp"
#include "tensor.hpp"

namespace tapegrad {

namespace {

// Kept for the process, as the numpy dispatch's table (set_trace_hooks).
PyObject* trace_error_class = nullptr;
PyObject* escape_hook = nullptr;

[[noreturn]] void raise_trace_error(const std::string& message) {
    PyErr_SetString(trace_error_class ? trace_error_class : PyExc_RuntimeError, message.c_str());
    throw py::error_already_set();
}

// A user record's replay callable (a tapegrad.Function made while tracing:
// autograd.py's _replay_of), or None for one a replay cannot run.
py::object replay_of(PyObject* record) {
    const py::handle r(record);
    if (py::hasattr(r, "replay")) return r.attr("replay");
    if (py::hasattr(r, "record") && py::hasattr(r.attr("record"), "replay")) return r.attr("record").attr("replay");
    return py::none();
}

// A Tensor's value (a new reference), anything else itself.
PyObject* value_of_operand(PyObject* x) {
    return is_tensor(x) ? value_object(reinterpret_cast<TensorObject*>(x)) : Py_NewRef(x);
}

// What Python gets for `a op b` on values (op: a rich comparison), or for
// bool(a) (op TRUTH; b unused): a new reference, nullptr with an error set.
PyObject* outcome_of(int op, PyObject* a, PyObject* b) {
    if (op != Trace::TRUTH) return PyObject_RichCompare(a, b, op);
    const int truth = PyObject_IsTrue(a);
    return truth < 0 ? nullptr : PyBool_FromLong(truth);
}

// What a user record is called in an error: its class and, for the seed's, its outputs' labels.
std::string record_text(PyObject* record) {
    const py::handle r(record);
    std::string text = py::str(py::type::handle_of(r).attr("__name__"));
    if (py::hasattr(r, "output_keys")) text += " with outputs " + std::string(py::str(r.attr("output_keys")));
    return text;
}

}  // namespace

void set_trace_hooks(PyObject* error_class, PyObject* escape) {
    Py_XSETREF(trace_error_class, Py_NewRef(error_class));
    Py_XSETREF(escape_hook, Py_NewRef(escape));
}

namespace {

// Raises TraceError for `what` on a tape that records a trace, and keeps its
// text on the trace (Trace::note_escape): f may catch the error, not undo it.
bool escape(Tape& tape, const char* what) {
    if (!escape_hook) {
        PyErr_Format(PyExc_RuntimeError, "tapegrad.compile: %s while tracing", what);
    } else {
        PyObject* r = PyObject_CallFunction(escape_hook, "s", what);  // raises TraceError
        if (r) {
            Py_DECREF(r);
            return true;
        }
    }
    if (tape.trace) {
        PyObject *type, *value, *traceback;
        PyErr_Fetch(&type, &value, &traceback);
        PyObject* text = value ? PyObject_Str(value) : nullptr;
        const char* utf8 = text ? PyUnicode_AsUTF8(text) : nullptr;
        tape.trace->note_escape(utf8 ? utf8 : what);
        Py_XDECREF(text);
        PyErr_Clear();
        PyErr_Restore(type, value, traceback);
    }
    return false;
}

}  // namespace

bool allowed_while_tracing_slow(const char* what) {
    Tape* tape = current_tape();
    if (!tape) return false;
    return !tape->tracing || escape(*tape, what);
}

bool value_may_leave_slow(PyObject* tensor, const char* what) {
    const auto* t = reinterpret_cast<const TensorObject*>(tensor);
    Tape* home = t->epoch ? tape_of_epoch(t->epoch) : nullptr;
    if (home && home->tracing) return escape(*home, what);
    return allowed_while_tracing_slow(what);
}

PyObject* compare_values(PyObject* a, PyObject* b, int op) {
    Tape* tape = Tape::tracing_count ? current_tape() : nullptr;
    if (Tape::tracing_count && !tape) return nullptr;
    if (tape && is_tensor(a)) {  // a traced value compared on another thread: no guard can hold it
        const auto* t = reinterpret_cast<const TensorObject*>(a);
        Tape* home = t->epoch ? tape_of_epoch(t->epoch) : nullptr;
        if (home && home->tracing && home != tape && !escape(*home, "a comparison on another thread"))
            return nullptr;
    }
    if (tape && tape->tracing && tape->trace) {
        try {
            return tape->trace->guard(op, a, b);
        } catch (py::error_already_set& e) {
            e.restore();
            return nullptr;
        }
    }
    const py::object va = py::reinterpret_steal<py::object>(value_of_operand(a));
    const py::object vb = py::reinterpret_steal<py::object>(value_of_operand(b ? b : Py_None));
    return outcome_of(op, va.ptr(), vb.ptr());
}

// ---- recording ----

Trace::Trace() : tape_(std::make_unique<Tape>()) { tape_->trace = this; }

Trace::~Trace() {
    if (tape_->tracing) {  // dropped while recording: the thread must not keep it as its tape
        tape_->tracing = false;
        --Tape::tracing_count;
        if (!pop_tape(tape_.get())) PyErr_Clear();
    }
    for (PyObject* t : inputs_) Py_DECREF(t);
}

void Trace::push() {
    if (finished_ || tape_->tracing) raise_trace_error("Trace.push: this trace has recorded already");
    if (!allowed_while_tracing("tracing another function")) throw py::error_already_set();
    if (!push_tape(tape_.get())) throw py::error_already_set();
    tape_->tracing = true;
    ++Tape::tracing_count;
}

void Trace::pop() {
    if (!tape_->tracing) throw py::value_error("Trace.pop: this trace is not recording");
    tape_->tracing = false;
    --Tape::tracing_count;
    if (!pop_tape(tape_.get())) throw py::error_already_set();
}

GuardOperand Trace::operand(PyObject* x) {
    GuardOperand g;
    if (is_tensor(x)) {
        g.row = node_on(*tape_, reinterpret_cast<TensorObject*>(x));
        if (g.row == UINT32_MAX) throw py::error_already_set();
    } else {
        g.constant = py::reinterpret_borrow<py::object>(x);
    }
    return g;
}

PyObject* Trace::operand_value(const GuardOperand& x) {
    if (x.row == UINT32_MAX) return Py_NewRef(x.constant.ptr());
    return tape_->rows().operand_object(x.row, false, false);
}

PyObject* Trace::guard(int op, PyObject* a, PyObject* b) {
    Guard g;
    g.op = op;
    g.a = operand(a);
    if (op != TRUTH) g.b = operand(b);
    g.position = tape_->rows().size();
    // The values from the tensors: a row may keep only its value's layout
    // while recording (Note [Saved values]); a replay computes every row it reads.
    const py::object va = py::reinterpret_steal<py::object>(value_of_operand(a));
    const py::object vb = py::reinterpret_steal<py::object>(value_of_operand(b ? b : Py_None));
    g.outcome = py::reinterpret_steal<py::object>(outcome_of(op, va.ptr(), vb.ptr()));
    if (!g.outcome) throw py::error_already_set();
    guards_.push_back(g);
    // f gets its own copy of a mask: it may write into it (numpy code does).
    if (PyArray_Check(g.outcome.ptr())) return owned_copy(g.outcome.ptr());
    return Py_NewRef(g.outcome.ptr());
}

void Trace::finish(const py::sequence& inputs, const py::handle& output) {
    if (finished_ || tape_->tracing) raise_trace_error("Trace.finish: the trace is still recording, or finished");
    if (!escape_.empty())
        raise_trace_error(escape_ + " (f caught this error and went on: the path it took then is not f's)");
    RowStore& rows = tape_->rows();
    // Rows a replay cannot run.
    for (uint32_t row = 0; row < rows.size(); ++row) {
        if (rows.op(row) == OP_CUSTOM && replay_of(rows.user_record(rows.in0(row)).record).is_none())
            raise_trace_error("tapegrad.compile: f recorded an OperationRecord appended to "
                              "operation_history (" + record_text(rows.user_record(rows.in0(row)).record) +
                              "); a compiled tape cannot replay its Python backward's values. Write it "
                              "as a tapegrad.Function (which replays), use tapegrad's ops inside f, or "
                              "call f eagerly (tapegrad.value_and_grad)");
        if (rows.op(row) == OP_VERSION)
            raise_trace_error("tapegrad.compile: f updated a Tensor's value in place (t.data = ..., "
                              "or an in-place operator under no_grad); a compiled tape replays "
                              "values, not updates. Compute a new Tensor instead (t = t + x)");
    }
    for (py::handle item : inputs) {
        if (!is_tensor(item.ptr())) throw py::type_error("Trace.finish: inputs must be Tensors");
        auto* t = reinterpret_cast<TensorObject*>(item.ptr());
        inputs_.push_back(Py_NewRef(item.ptr()));
        input_rows_.push_back(find_node(*tape_, t));
    }
    if (is_tensor(output.ptr())) {
        auto* out = reinterpret_cast<TensorObject*>(output.ptr());
        output_row_ = find_node(*tape_, out);
        if (output_row_ == UINT32_MAX) output_constant_ = py::reinterpret_steal<py::object>(value_object(out));
    } else {
        output_constant_ = py::reinterpret_borrow<py::object>(output);
    }
    const py::object value = output_row_ != UINT32_MAX ? py::reinterpret_steal<py::object>(rows.operand_object(output_row_, false, false))
                                                       : output_constant_;
    scalar_output_ = !PyArray_Check(value.ptr()) || PyArray_SIZE(reinterpret_cast<PyArrayObject*>(value.ptr())) == 1;
    // The rows the output and the guards depend on; the output alone, for a
    // tangent sweep (Note [Tangent sweep]: a guard's operands need values only).
    const std::vector<uint8_t> live = depended_on(read_by_caller());
    std::vector<uint8_t> output_mark(rows.size(), 0);
    if (output_row_ != UINT32_MAX) output_mark[output_row_] = 1;
    const std::vector<uint8_t> output_live = depended_on(std::move(output_mark));
    for (uint32_t row = 0; row < rows.size(); ++row) {
        if (!live[row] || !(rows.op(row) > OP_STALE || rows.op(row) == OP_CUSTOM)) continue;
        order_.push_back(row);
        if (output_live[row]) tangent_order_.push_back(row);
    }
    // Note [Fused rows]: values read outside the rows that compute them.
    std::vector<uint8_t> read_outside = read_by_caller();
    for (uint32_t row = 0; row < rows.size(); ++row)
        if (tape_->hooked(row)) read_outside[row] = 1;
    fusion_.plan(rows, order_, read_outside);
    plan_releases();
    // A fused group's inner rows are not computed by a fused replay: what
    // they kept when traced goes back to the pool.
    for (uint32_t row : order_) {
        if (!fusion_.inside(row) || is_layout(rows.array_of(row))) continue;
        PyObject* layout = layout_of(rows.array_of(row));
        if (!layout) throw py::error_already_set();
        tape_->pool.give(rows.swap_array_value(row, layout));
    }
    // Hooks as registered while f ran: a hook that removes itself (a one-shot)
    // is registered anew by every eager call, so every replay calls it.
    rows.snapshot_hooks();
    for (PyObject* t : inputs_) {
        auto* leaf = reinterpret_cast<TensorObject*>(t);
        if (leaf->hooks) Py_SETREF(leaf->hooks, PySequence_List(leaf->hooks));
        if (!leaf->hooks && PyErr_Occurred()) throw py::error_already_set();
    }
    // Python that runs during a replay: hooks, a Function's forward and backward.
    for (uint32_t row = 0; row < rows.size(); ++row) {
        hooks_ = hooks_ || tape_->hooked(row);
        callbacks_ = callbacks_ || rows.op(row) == OP_CUSTOM || tape_->hooked(row);
    }
    finished_ = true;
}

// The marked rows and every row they depend on: each marked row marks its operands.
std::vector<uint8_t> Trace::depended_on(std::vector<uint8_t> live) const {
    const RowStore& rows = tape_->rows();
    for (size_t i = rows.size(); i-- > 0;) {
        const uint32_t row = static_cast<uint32_t>(i);
        const uint8_t code = rows.op(row), f = rows.flags(row);
        if (code == OP_CUSTOM) {  // a Function: run again if any of its outputs is read
            const UserRecord& r = rows.user_record(rows.in0(row));
            for (uint32_t o : r.outputs) live[row] = live[row] || live[o];
            if (live[row])
                for (uint32_t in : r.inputs) live[in] = 1;
            continue;
        }
        if (!live[row] || code <= OP_STALE) continue;
        if (is_array_op(code)) {
            for (int64_t in : rows.array_record(rows.in0(row)).inputs)
                if (in >= 0) live[static_cast<size_t>(in)] = 1;
            continue;
        }
        if (!(f & F_A_CONST)) live[rows.in0(row)] = 1;
        if (op_arity(code) == 2 && !(f & F_B_CONST)) live[rows.in1(row)] = 1;
    }
    return live;
}

// A mark per row whose value the caller reads after a replay's rows ran: the
// output, and the operands of the guards.
std::vector<uint8_t> Trace::read_by_caller() const {
    std::vector<uint8_t> marks(tape_->rows().size(), 0);
    if (output_row_ != UINT32_MAX) marks[output_row_] = 1;
    for (const Guard& g : guards_) {
        if (g.a.row != UINT32_MAX) marks[g.a.row] = 1;
        if (g.b.row != UINT32_MAX) marks[g.b.row] = 1;
    }
    return marks;
}

// Note [Replay memory]
// A replay computes every op row anew, but only some values are read after
// the forward: those a backward reads (recorded as data, not a layout: Note
// [Saved values]), the output, and guards' operands. Any other array row's
// value is given back to the pool once its last reader in the forward has
// run, and its slot holds a layout again, so a replay holds about what the
// eager ops held, and later rows compute into memory that is still in cache.
void Trace::plan_releases() {
    const RowStore& rows = tape_->rows();
    std::vector<uint8_t> keep = read_by_caller();
    std::vector<int64_t> last_use(rows.size(), -1);
    bool any_array = false;
    // A fused group reads its operands at its root's place (Note [Fused rows]).
    std::vector<int64_t> group_place;
    for (size_t i = 0; i < order_.size(); ++i) {
        const int group = fusion_.group_at(order_[i]);
        if (group < 0) continue;
        if (group_place.size() <= static_cast<size_t>(group)) group_place.resize(static_cast<size_t>(group) + 1, -1);
        group_place[static_cast<size_t>(group)] = static_cast<int64_t>(i);
    }
    for (size_t i = 0; i < order_.size(); ++i) {
        const uint32_t row = order_[i];
        const uint8_t code = rows.op(row), f = rows.flags(row);
        if (code == OP_CUSTOM) {
            for (uint32_t in : rows.user_record(rows.in0(row)).inputs) keep[in] = 1;
            continue;
        }
        if (!(f & F_ARRAY)) continue;  // a scalar row reads only scalars
        any_array = true;
        if (!is_layout(rows.array_of(row))) keep[row] = 1;  // a backward reads it
        const int group = fusion_.group_of(row);
        const int64_t place = group >= 0 ? group_place[static_cast<size_t>(group)] : static_cast<int64_t>(i);
        for (uint32_t in : rows.inputs_of(row)) last_use[in] = std::max(last_use[in], place);
    }
    if (!any_array) return;
    release_after_.assign(order_.size(), {});
    for (size_t i = 0; i < order_.size(); ++i) {
        const uint32_t row = order_[i];
        if (!(rows.flags(row) & F_ARRAY) || keep[row] || fusion_.inside(row)) continue;
        const int64_t last = last_use[row] < 0 ? static_cast<int64_t>(i) : last_use[row];
        release_after_[static_cast<size_t>(last)].push_back(row);
    }
}

void Trace::release_after(size_t i) {
    RowStore& rows = tape_->rows();
    for (const uint32_t row : release_after_[i]) {
        PyObject* layout = layout_of(rows.array_of(row));
        if (!layout) {  // keeps the value: only memory is lost
            PyErr_Clear();
            continue;
        }
        tape_->pool.give(rows.swap_array_value(row, layout));
    }
}

// ---- replay ----

bool Trace::set_input(size_t k, PyObject* value) {
    const uint32_t row = input_rows_[k];
    if (row == UINT32_MAX) return true;  // f did not use it
    RowStore& rows = tape_->rows();
    if (rows.is_array(row)) {
        if (!PyArray_Check(value) || !same_layout(value, rows.array_of(row))) {
            PyErr_Format(PyExc_ValueError,
                         "Trace.replay: input %zd must be an ndarray of shape %S and dtype %S, as traced; got %R",
                         k, shape_text(rows.array_of(row)).ptr(),
                         reinterpret_cast<PyObject*>(PyArray_DESCR(reinterpret_cast<PyArrayObject*>(rows.array_of(row)))),
                         Py_TYPE(value));
            return false;
        }
        if (!callbacks_) {  // nothing of f's Python runs during the call: read in place
            Py_DECREF(rows.swap_array_value(row, Py_NewRef(value)));
            return true;
        }
        // A copy, as Tensor(x) copies: a hook or a Function's forward, run during the
        // call, may write into the caller's array; pooled, so the memory stays warm.
        auto* v = reinterpret_cast<PyArrayObject*>(value);
        PyObject* copy = tape_->pool.take(PyArray_NDIM(v), PyArray_DIMS(v), PyArray_TYPE(v));
        if (!copy || PyArray_CopyInto(reinterpret_cast<PyArrayObject*>(copy), v) < 0) {
            Py_XDECREF(copy);
            return false;
        }
        PyArray_CLEARFLAGS(reinterpret_cast<PyArrayObject*>(copy), NPY_ARRAY_WRITEABLE);
        tape_->pool.give(rows.swap_array_value(row, copy));
        return true;
    }
    if (!PyFloat_Check(value) && !PyLong_Check(value)) {
        PyErr_Format(PyExc_ValueError, "Trace.replay: input %zd must be a float, as traced; got %.100s", k,
                     Py_TYPE(value)->tp_name);
        return false;
    }
    const double v = PyFloat_AsDouble(value);
    if (v == -1.0 && PyErr_Occurred()) return false;
    rows.set_number(row, v);
    return true;
}

int Trace::guard_holds(const Guard& g) {
    const py::object va = py::reinterpret_steal<py::object>(operand_value(g.a));
    const py::object vb = py::reinterpret_steal<py::object>(g.op == TRUTH ? Py_NewRef(Py_None) : operand_value(g.b));
    if (!va || !vb) return -1;
    const py::object now = py::reinterpret_steal<py::object>(outcome_of(g.op, va.ptr(), vb.ptr()));
    if (!now) return -1;
    if (PyArray_Check(g.outcome.ptr())) {
        // A boolean array (a mask): the same shape and every element the same.
        try {
            static PyObject* array_equal = py::object(py::module_::import("numpy").attr("array_equal")).release().ptr();
            return py::reinterpret_borrow<py::object>(array_equal)(now, g.outcome).cast<bool>() ? 1 : 0;
        } catch (py::error_already_set& e) {
            e.restore();
            return -1;
        }
    }
    const int truth = PyObject_IsTrue(now.ptr()), seen = PyObject_IsTrue(g.outcome.ptr());
    if (truth < 0 || seen < 0) return -1;
    return truth == seen ? 1 : 0;
}

// An op row the forward loop leaves to a call: a cold op's scalar row, or
// an array row (elementwise through numpy, or an array op's forward).
bool Trace::compute_row(uint32_t row) {
    RowStore& rows = tape_->rows();
    const uint8_t code = rows.op(row), f = rows.flags(row);
    if (code == OP_CUSTOM) return run_function(row);
    PyObject* value = nullptr;
    if (!(f & F_ARRAY)) {
        const uint32_t ia = rows.in0(row), ib = rows.in1(row);
        const double a = (f & F_A_NUMBER) ? rows.constant(ia) : rows.val(ia).number;
        double out = 0.0;
        visit_op(code, [&](auto tag) {
            using Op = typename decltype(tag)::type;
            if constexpr (Op::arity == 2) out = Op::forward(a, (f & F_B_NUMBER) ? rows.constant(ib) : rows.val(ib).number);
            else out = Op::forward(a);
        });
        rows.set_number(row, out);
        return true;
    }
    // The value of the call before goes to the pool first, so that this row
    // can compute into it (it is no operand of its own row). The slot holds
    // None until the new value is in: a failed replay leaves it so, and the
    // next recomputes the row before anything reads it.
    tape_->pool.give(rows.swap_array_value(row, Py_NewRef(Py_None)));
    if (is_array_op(code)) {
        const ArrayRecord& r = rows.array_record(rows.in0(row));
        Values x;
        for (int64_t in : r.inputs)
            x.push_back(py::reinterpret_steal<py::object>(
                in >= 0 ? rows.operand_object(static_cast<uint32_t>(in), false, false)
                        : Py_NewRef(rows.array(static_cast<size_t>(-in - 1)))));
        for (const py::object& v : x)
            if (!v) return false;
        PyObject* result = array_op_forward(*tape_, code, x, r.params);
        if (!result) return false;
        value = as_result_array(result);
        Py_DECREF(result);
    } else {
        const py::object a = py::reinterpret_steal<py::object>(rows.operand_object(rows.in0(row), f & F_A_NUMBER, f & F_A_ARRAY));
        const bool binary = op_arity(code) == 2;
        const py::object b = py::reinterpret_steal<py::object>(
            binary ? rows.operand_object(rows.in1(row), f & F_B_NUMBER, f & F_B_ARRAY) : nullptr);
        if (!a || (binary && !b)) return false;
        value = array_forward(code, a.ptr(), b.ptr(), &tape_->pool);
        if (value) PyArray_CLEARFLAGS(reinterpret_cast<PyArrayObject*>(value), NPY_ARRAY_WRITEABLE);
    }
    if (!value) return false;
    Py_DECREF(rows.swap_array_value(row, value));  // None
    return true;
}

// A tapegrad.Function's row: its forward again on the inputs' values (a
// Python callback, which also rebinds its backward to the new values), its
// outputs' rows set to what it returns, each of the layout traced.
bool Trace::run_function(uint32_t row) {
    RowStore& rows = tape_->rows();
    // Copied: the callback runs Python.
    const UserRecord& r = rows.user_record(rows.in0(row));
    const std::vector<uint32_t> inputs = r.inputs, outputs = r.outputs;
    try {
        const py::object replay = replay_of(r.record);
        py::list values(inputs.size());
        for (size_t k = 0; k < inputs.size(); ++k)
            values[k] = py::reinterpret_steal<py::object>(rows.operand_object(inputs[k], false, false));
        const py::list results(replay(values));
        if (results.size() != outputs.size())
            throw py::value_error("Trace.replay: a Function's forward returned " + std::to_string(results.size()) +
                                  " values for its " + std::to_string(outputs.size()) + " traced outputs");
        for (size_t k = 0; k < outputs.size(); ++k) {
            const uint32_t out = outputs[k];
            PyObject* v = results[k].ptr();
            if (rows.is_array(out)) {
                if (!PyArray_Check(v) || !same_layout(v, rows.array_of(out)))
                    throw py::value_error("Trace.replay: a Function's forward returned a value of another "
                                          "shape or dtype than when traced (output " + std::to_string(k) + ")");
                Py_DECREF(rows.swap_array_value(out, Py_NewRef(v)));
            } else {
                const double number = PyFloat_AsDouble(v);
                if (number == -1.0 && PyErr_Occurred()) throw py::error_already_set();
                rows.set_number(out, number);
            }
        }
        return true;
    } catch (py::error_already_set& e) {
        e.restore();
    } catch (py::builtin_exception& e) {
        e.set_error();
    }
    return false;
}

// The guards from the g-th on whose rows are all computed before `row`.
// Returns the next guard's position (SIZE_MAX: none left) in `next`.
Trace::Ran Trace::check_guards(size_t& g, size_t upto, size_t& next) {
    for (; g < guards_.size() && guards_[g].position <= upto; ++g) {
        const int holds = guard_holds(guards_[g]);
        if (holds <= 0) return holds < 0 ? Ran::FAILED : Ran::GUARD_FAILED;
    }
    next = g < guards_.size() ? guards_[g].position : SIZE_MAX;
    return Ran::OK;
}

// The op rows in order, each from its operands' current values, as the eager
// ops compute them. A plain scalar row of a hot op runs inline (one switch, as
// the sweep's loop: Note [Hot ops]); any other row is a call.
Trace::Ran Trace::forward(bool may_fuse, bool with_partials, const std::vector<uint8_t>* needed, bool keep) {
    RowStore& rows = tape_->rows();
    size_t g = 0, next_guard = 0;
    Ran ran = check_guards(g, 0, next_guard);
    if (ran != Ran::OK) return ran;
    const uint8_t* op = rows.op_data();
    const uint8_t* flags = rows.flags_data();
    const uint32_t* in0 = rows.in0_data();
    const uint32_t* in1 = rows.in1_data();
    const double* consts = rows.consts_data();
    Value* val = rows.val_data_for_replay();
    for (size_t i = 0; i < order_.size(); ++i) {
        const uint32_t row = order_[i];
        if (row >= next_guard && (ran = check_guards(g, row, next_guard)) != Ran::OK) return ran;
        const uint8_t code = op[row], f = flags[row];
        if (!(f & F_ARRAY) && code < OP_FIRST_COLD && code != OP_CUSTOM) {
            const double a = (f & F_A_NUMBER) ? consts[in0[row]] : val[in0[row]].number;
            visit_hot_op(code, [&](auto tag) {
                using Op = typename decltype(tag)::type;
                if constexpr (Op::arity == 2)
                    val[row].number = Op::forward(a, (f & F_B_NUMBER) ? consts[in1[row]] : val[in1[row]].number);
                else
                    val[row].number = Op::forward(a);
            });
            continue;
        }
        if (fusion_.inside(row)) continue;  // computed by its group's root
        const int group = fusion_.group_at(row);
        if (!(group >= 0 ? run_group(group, may_fuse, with_partials, needed) : compute_row(row))) return Ran::FAILED;
        if (!keep && !release_after_.empty()) release_after(i);
    }
    return check_guards(g, SIZE_MAX, next_guard);
}

// A fused group's rows: as one loop, or (Note [Fused rows]) one by one.
bool Trace::run_group(int group, bool may_fuse, bool with_partials, const std::vector<uint8_t>* needed) {
    const FusedGroups::Ran ran = fusion_.run(*tape_, group, may_fuse, with_partials, needed);
    if (ran != FusedGroups::Ran::BY_ROWS) return ran == FusedGroups::Ran::FUSED;
    for (const FusedStep& step : fusion_.steps(group))
        if (!compute_row(step.row)) return false;
    return true;
}

namespace {

// Each array the list alone holds, lent to the caller (Note [Lent buffers]).
void lend_items(py::list& list, BufferPool& pool) {
    for (Py_ssize_t k = 0; k < PyList_GET_SIZE(list.ptr()); ++k) {
        // The list's reference goes to lend(); its result (a view, or the array) takes the slot.
        PyObject* item = PyList_GET_ITEM(list.ptr(), k);
        PyList_SET_ITEM(list.ptr(), k, pool.lend(item));
    }
}

// f's value for the caller: a copy of the output row's, lent (the caller's
// value of the call before may be back in the pool).
PyObject* lent_copy(BufferPool& pool, PyObject* a) {
    PyArrayObject* x = reinterpret_cast<PyArrayObject*>(a);
    PyObject* copy = pool.take(PyArray_NDIM(x), PyArray_DIMS(x), PyArray_TYPE(x));
    if (copy && PyArray_CopyInto(reinterpret_cast<PyArrayObject*>(copy), x) < 0) Py_CLEAR(copy);
    return copy ? pool.lend(copy) : nullptr;
}

}  // namespace

// The output's gradient to start a sweep from: `seed` (None: 1.0, for a
// value of one element), a float or an ndarray of the output's layout.
PyObject* Trace::start_gradient(const py::handle& seed) {
    const RowStore& rows = tape_->rows();
    const bool array = rows.is_array(output_row_);
    if (seed.is_none()) {
        if (!scalar_output_) {
            PyErr_SetString(PyExc_TypeError, "Trace.replay: gradients need a value of one element, or seeds");
            return nullptr;
        }
        return array ? filled_like(rows.array_of(output_row_), 1.0) : PyFloat_FromDouble(1.0);
    }
    if (!array) {
        const double v = PyFloat_AsDouble(seed.ptr());  // a number, or a one-element array
        if (v == -1.0 && PyErr_Occurred()) {
            PyErr_Format(PyExc_ValueError, "Trace.replay: a seed must be a float, as the output; got %R",
                         seed.ptr());
            return nullptr;
        }
        return PyFloat_FromDouble(v);
    }
    // Array-like, cast to the output's dtype; of its shape.
    PyObject* like = rows.array_of(output_row_);
    PyArray_Descr* dtype = PyArray_DESCR(reinterpret_cast<PyArrayObject*>(like));
    Py_INCREF(dtype);
    PyObject* g = PyArray_FromAny(seed.ptr(), dtype, 0, 0, NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_ENSURECOPY |
                                  NPY_ARRAY_WRITEABLE | NPY_ARRAY_FORCECAST, nullptr);
    if (g && !same_layout(g, like)) {
        PyErr_Format(PyExc_ValueError, "Trace.replay: a seed must have the output's shape %S; got shape %S",
                     shape_text(like).ptr(), shape_text(g).ptr());
        Py_CLEAR(g);
    }
    return g;
}

// The sweep's sources for the inputs `wrt` names; their indices in `wanted`.
std::vector<Source> Trace::sources_of(const py::sequence& wrt, std::vector<size_t>& wanted) const {
    std::vector<Source> sources;
    for (py::handle item : wrt) {
        const Py_ssize_t k = PyLong_AsSsize_t(item.ptr());
        if (k == -1 && PyErr_Occurred()) throw py::error_already_set();
        if (k < 0 || static_cast<size_t>(k) >= inputs_.size())
            throw py::value_error("Trace.replay: wrt names input " + std::to_string(k) + " of " +
                                  std::to_string(inputs_.size()));
        wanted.push_back(static_cast<size_t>(k));
        sources.push_back({reinterpret_cast<TensorObject*>(inputs_[static_cast<size_t>(k)]),
                           input_rows_[static_cast<size_t>(k)]});
    }
    return sources;
}

bool Trace::depends_on(const py::sequence& wrt) {
    std::vector<size_t> wanted;
    const std::vector<Source> sources = sources_of(wrt, wanted);
    if (output_row_ == UINT32_MAX) return false;
    for (const Source& s : sources)
        if (s.node == output_row_) return true;
    const std::vector<uint8_t> needed = needed_rows(*tape_, sources, tape_->rows().size());
    return needed.empty() || needed[output_row_];
}

// The rows that lead to the inputs `wanted` names (Note [Needed rows]); null: every row.
const std::vector<uint8_t>* Trace::needed_for(const std::vector<size_t>& wanted, const std::vector<Source>& sources) {
    if (output_row_ == UINT32_MAX) return nullptr;
    auto found = needed_.find(wanted);
    if (found == needed_.end()) {
        std::vector<uint8_t> mask = needed_rows(*tape_, sources, tape_->rows().size());
        // Every row needed: the sweep's loop without the test per row.
        if (std::find(mask.begin(), mask.end(), 0) == mask.end()) mask.clear();
        found = needed_.emplace(wanted, std::move(mask)).first;
    }
    return found->second.empty() ? nullptr : &found->second;
}

// One reverse sweep per seed over the values forward() left: the gradients
// of `sources`, a list per seed.
py::list Trace::gradients(const std::vector<Source>& sources, const std::vector<uint8_t>* needed,
                          const std::vector<py::object>& seeds) {
    py::list per_seed(seeds.size());
    fusion_.set_hand_over(seeds.size() == 1);
    for (size_t s = 0; s < seeds.size(); ++s) {
        py::list out(sources.size());
        {
        NumericSweep sweep(*tape_);
        sweep.rows.fused = &fusion_;
        if (output_row_ != UINT32_MAX) {
            PyObject* initial = start_gradient(seeds[s]);
            if (!initial || !sweep.rows.start_from(output_row_, initial) || !sweep.run(sources, false, needed))
                throw py::error_already_set();
        }
        for (size_t k = 0; k < sources.size(); ++k) {
            PyObject* g = sweep.rows.result(sources[k]);
            if (!g) throw py::error_already_set();
            PyList_SET_ITEM(out.ptr(), static_cast<Py_ssize_t>(k), g);
        }
        }
        lend_items(out, tape_->pool);  // the sweep has let go of its buffers
        per_seed[s] = out;
    }
    return per_seed;
}

py::object Trace::replay(const py::sequence& values, const py::object& wrt, const py::object& seeds,
                         const py::object& tangents) {
    if (!finished_) throw py::value_error("Trace.replay: the trace has not finished recording");
    // Busy (another thread, a hook calling the same function): the caller traces
    // anew, as for a guard; answered here, where no other call can start between
    // the check and the replay.
    if (busy_) return py::none();
    if (static_cast<size_t>(py::len(values)) != inputs_.size())
        throw py::value_error("Trace.replay: " + std::to_string(py::len(values)) + " values for " +
                              std::to_string(inputs_.size()) + " inputs");
    if (!seeds.is_none() && wrt.is_none()) throw py::value_error("Trace.replay: seeds without wrt");
    if (!tangents.is_none() && !wrt.is_none()) throw py::value_error("Trace.replay: tangents with wrt");
    if (!wrt.is_none() && seeds.is_none() && !scalar_output_)
        throw py::type_error("Trace.replay: gradients need a value of one element, or seeds");
    std::vector<py::object> seed_list;
    if (!seeds.is_none())
        for (py::handle seed : py::reinterpret_borrow<py::sequence>(seeds)) seed_list.push_back(py::reinterpret_borrow<py::object>(seed));
    else
        seed_list.push_back(py::none());
    // detect_anomaly() is the calling thread's (the trace's tape is never pushed).
    Tape* caller = current_tape();
    if (!caller) throw py::error_already_set();
    tape_->anomaly_mode() = caller->anomaly_mode();
    // The sweep's sources and the rows that lead to them: read by the forward too (a
    // fused group computes partials only for the rows a gradient reaches).
    std::vector<Source> sources;
    const std::vector<uint8_t>* needed = nullptr;
    if (!wrt.is_none()) {
        std::vector<size_t> wanted;
        sources = sources_of(wrt, wanted);
        needed = needed_for(wanted, sources);
    }
    busy_ = true;
    struct Release {
        bool& busy;
        FusedGroups& fusion;
        BufferPool& pool;
        ~Release() {
            busy = false;
            fusion.release(pool);
            // Each replay ages the pool, as a reset tape does: an array given back
            // and not taken by the next replay (an output numpy allocated itself)
            // is freed, not kept until MAX_ARRAYS, so the replays that follow find
            // its memory in malloc's hands instead of faulting fresh pages in.
            pool.next_generation();
        }
    } release{busy_, fusion_, tape_->pool};
    for (size_t k = 0; k < inputs_.size(); ++k)
        if (!set_input(k, values[k].ptr())) throw py::error_already_set();
    // Under detect_anomaly() every row's gradients are checked: none fused. A
    // tangent sweep reads every row's value: none fused, none released.
    const bool tangent_sweep = !tangents.is_none();
    const Ran ran = forward(!tape_->anomaly_mode() && !tangent_sweep, !wrt.is_none(), needed, tangent_sweep);
    if (ran == Ran::FAILED) throw py::error_already_set();
    if (ran == Ran::GUARD_FAILED) return py::none();
    py::object value = output_constant_;
    if (output_row_ != UINT32_MAX) {
        const RowStore& rows = tape_->rows();
        value = py::reinterpret_steal<py::object>(rows.is_array(output_row_) ? lent_copy(tape_->pool, rows.array_of(output_row_))
                                                                            : PyFloat_FromDouble(rows.val(output_row_).number));
        if (!value) throw py::error_already_set();
    }
    if (tangent_sweep) {
        py::list per_direction;
        for (py::handle direction : py::reinterpret_borrow<py::sequence>(tangents)) {
            if (output_row_ == UINT32_MAX) {  // f's value is a constant: J t is zero
                per_direction.append(PyArray_Check(value.ptr()) ? py::reinterpret_steal<py::object>(filled_like(value.ptr(), 0.0))
                                                                : py::object(py::float_(0.0)));
                continue;
            }
            per_direction.append(tangent_of(*tape_, tangent_order_, input_rows_, py::reinterpret_borrow<py::sequence>(direction),
                                            output_row_));
        }
        lend_items(per_direction, tape_->pool);
        return py::make_tuple(value, per_direction);
    }
    if (wrt.is_none()) return py::make_tuple(value, py::none());
    py::list grads = gradients(sources, needed, seed_list);
    return py::make_tuple(value, seeds.is_none() ? py::object(grads[0]) : py::object(grads));
}

}  // namespace tapegrad
