// The reverse sweep: one loop from the last row down (Note [Records are nodes]).
//
// Note [Reached]
// A row is visited only if one of its outputs received a gradient; that is a
// flag, not a test for zero, so a zero gradient still meets an infinite
// partial and gives NaN, as in PyTorch. Scalar gradients live in a dense
// array of doubles; array gradients in buffers the sweep owns, one per
// arrays slot, added into in place.
#include "sweep.hpp"

#include <algorithm>
#include <set>
#include <unordered_map>
#include <cstring>
#include <string>
#include <type_traits>

#include "anomaly.hpp"
#include "array_apply.hpp"
#include "array_ops.hpp"
#include "arrays.hpp"
#include "graph_sweep.hpp"
#include "tensor.hpp"

namespace tapegrad {

const char* const HISTORY_GONE =
    "Either a backward() or grad() already went through it and freed it (pass "
    "retain_graph=True to that call to go through it again), or clear_history() ran after it "
    "was computed (compute gradients first), or it was computed on another thread.";

PyObject* label_text(TensorObject* t) { return PyObject_GetAttrString(reinterpret_cast<PyObject*>(t), "label"); }

bool freed_error(const Tape& t, uint32_t row) {
    PyObject* label = t.labels().label_of(row);
    PyErr_Format(PyExc_RuntimeError,
                 "Trying to backward through the graph a second time (through %s -> %S): "
                 "backward() and tapegrad.grad() free what they traverse. Pass "
                 "retain_graph=True to the first call if you need to go through it again.",
                 row_op_name(t.rows().op(row)), label ? label : Py_None);
    Py_XDECREF(label);
    return false;
}

bool constant_source_error(const char* what, Py_ssize_t k, TensorObject* t) {
    if (t->flags & T_REQUIRES_GRAD) return true;
    // Ops whose operands are all constants record nothing, so the gradient
    // through them would be missing: a partial answer. PyTorch refuses too.
    PyObject* label = label_text(t);
    PyErr_Format(PyExc_RuntimeError,
                 "%s: source %zd ('%S') does not require grad (it was made with "
                 "requires_grad=False, or by ops on such tensors), so the ops that used it are not "
                 "all recorded and its gradient cannot be had; make it with requires_grad=True",
                 what, k, label ? label : Py_None);
    Py_XDECREF(label);
    return false;
}

PyObject* value_layout(const Tape& tape, uint32_t node, TensorObject* t) {
    if (node == UINT32_MAX) return t->array;
    return tape.rows().is_array(node) ? tape.rows().array_of(node) : nullptr;
}

PyObject* read_only(PyObject* value) {
    if (value && PyArray_Check(value)) PyArray_CLEARFLAGS(reinterpret_cast<PyArrayObject*>(value), NPY_ARRAY_WRITEABLE);
    return value;
}

Source source_of(const Tape& tape, TensorObject* t) { return {t, identity_row(tape, find_node(tape, t))}; }

std::vector<uint8_t> needed_rows(const Tape& t, const std::vector<Source>& sources, size_t top) {
    if (t.rows().label_records()) return {};
    std::vector<uint8_t> need(top, 0);
    size_t start = top;
    for (const Source& s : sources) {
        if (s.node >= top) continue;
        need[s.node] = 1;
        start = std::min<size_t>(start, s.node);
    }
    if (t.foreign().any_stale()) start = 0;  // a stale row below every source must still be checked
    for (size_t r = start; r < top; ++r) {
        if (need[r]) continue;
        const uint8_t code = t.rows().op(r);
        if (code == OP_STALE) {
            need[r] = 1;
        } else if (code == OP_VERSION) {
            need[r] = need[t.rows().in0(r)];
        } else if (code == OP_CUSTOM) {
            const UserRecord& u = t.rows().user_record(t.rows().in0(r));
            for (uint32_t x : u.inputs) need[r] |= need[x];
            if (need[r])  // its outputs stand just below it, entered with it
                for (uint32_t o : u.outputs) need[o] = 1;
        } else if (is_array_op(code)) {
            for (int64_t in : t.rows().array_record(t.rows().in0(r)).inputs)
                if (in >= 0) need[r] |= need[static_cast<size_t>(in)];
        } else if (code > OP_STALE) {
            if (!(t.rows().flags(r) & F_A_CONST)) need[r] |= need[t.rows().in0(r)];
            if (op_arity(code) == 2 && !(t.rows().flags(r) & F_B_CONST)) need[r] |= need[t.rows().in1(r)];
        }
    }
    return need;
}

void add_retired(const Tape& tape, std::vector<Source>& sources) {
    if (!tape.foreign().any_retired()) return;
    const size_t n = sources.size();
    for (size_t k = 0; k < n; ++k) {
        const auto* rows = tape.foreign().retired_rows(reinterpret_cast<PyObject*>(sources[k].tensor));
        if (!rows) continue;
        for (uint32_t row : *rows) sources.push_back({sources[k].tensor, row});
    }
}

bool version_error(const Tape& tape, const Source& s, uint32_t row) {
    PyObject* label = label_text(s.tensor);
    PyObject* now = PyObject_GetAttrString(reinterpret_cast<PyObject*>(s.tensor), "shape");
    PyObject* then = tape.rows().is_array(row) ? PyObject_GetAttrString(tape.rows().array_of(row), "shape") : PyTuple_New(0);
    PyErr_Format(PyExc_ValueError,
                 "the gradient with respect to '%S' flows through a graph that used its earlier "
                 "value, of shape %S (or another dtype), but its value now has shape %S (it was "
                 "replaced with t.data = ...): one gradient cannot stand for both. Compute "
                 "gradients before changing its shape, or give the new value a new Tensor.",
                 label ? label : Py_None, then ? then : Py_None, now ? now : Py_None);
    Py_XDECREF(label);
    Py_XDECREF(now);
    Py_XDECREF(then);
    return false;
}

namespace {

// Note [Stale tensors] (tensor.cpp): a walk down the history behind a stale
// row, for a source it may reach. A foreign row's history is on its home
// tape, and the walk follows it there; where a tensor's history is gone, any
// source made before it may have fed it. For backward(), whose sources are
// every leaf, a leaf that requires grad on another tape counts, and history
// that is gone always does.
struct StaleWalk {
    const std::vector<Source>& sources;
    bool every_leaf;
    std::set<std::pair<const Tape*, uint32_t>> seen;
    TensorObject* found = nullptr;  // the source reached, or the stale tensor's
    bool gone = false;              // reached through history that is gone

    bool reach(Tape& tape, uint32_t start, bool root);
    bool born_before(uint64_t born) {
        for (const Source& s : sources)
            if (s.tensor->born < born) {
                found = s.tensor;
                gone = true;
                return true;
            }
        return false;
    }
};

bool StaleWalk::reach(Tape& tape, uint32_t start, bool root) {
    std::unordered_map<uint32_t, TensorObject*> source_rows;
    for (const Source& s : sources) {
        const uint32_t node = root ? s.node : identity_row(tape, find_node(tape, s.tensor));
        if (node != UINT32_MAX) source_rows.emplace(node, s.tensor);
    }
    std::vector<uint32_t> stack{start};
    while (!stack.empty()) {
        const uint32_t r = stack.back();
        stack.pop_back();
        if (!seen.insert({&tape, r}).second) continue;
        auto hit = source_rows.find(r);
        if (hit != source_rows.end()) {
            found = hit->second;
            return true;
        }
        const uint8_t code = tape.rows().op(r);
        if (code == OP_LEAF) {
            if (every_leaf && !root && tape.rows().in0(r) != UINT32_MAX) {
                found = reinterpret_cast<TensorObject*>(tape.rows().leaf_tensor(tape.rows().in0(r)));
                return true;
            }
            if (!(tape.rows().flags(r) & F_CUSTOM_OUTPUT)) continue;
            for (const UserRecord& u : tape.rows().user_records())  // the record that made it
                if (std::find(u.outputs.begin(), u.outputs.end(), r) != u.outputs.end())
                    stack.insert(stack.end(), u.inputs.begin(), u.inputs.end());
        } else if (code == OP_VERSION) {
            stack.push_back(tape.rows().in0(r));
        } else if (code == OP_STALE) {
            const auto* info = tape.foreign().stale_row(r);
            if (!info) continue;
            auto* f = reinterpret_cast<TensorObject*>(info->foreign);
            Tape* home = f && f->epoch ? tape_of_epoch(f->epoch) : nullptr;
            const uint32_t there = home && home != &tape ? find_node(*home, f) : UINT32_MAX;
            if (there != UINT32_MAX) {
                if (reach(*home, there, false)) return true;
            } else if (every_leaf || born_before(info->born)) {
                if (every_leaf) gone = true;
                return true;
            }
        } else if (is_array_op(code)) {
            for (int64_t in : tape.rows().array_record(tape.rows().in0(r)).inputs)
                if (in >= 0) stack.push_back(static_cast<uint32_t>(in));
        } else if (code > OP_STALE) {
            if (!(tape.rows().flags(r) & F_A_CONST)) stack.push_back(tape.rows().in0(r));
            if (op_arity(code) == 2 && !(tape.rows().flags(r) & F_B_CONST)) stack.push_back(tape.rows().in1(r));
        }
    }
    return false;
}

}  // namespace

bool check_stale(Tape& t, uint32_t row, const std::vector<Source>& sources, bool every_leaf) {
    // A source standing on this row is the stale tensor itself: its gradient is read here.
    std::vector<Source> others;
    for (const Source& s : sources)
        if (s.node != row) others.push_back(s);
    StaleWalk walk{others, every_leaf, {}};
    const auto* info = t.foreign().stale_row(row);
    const bool foreign = info && info->foreign;
    // backward() through history that is gone: its leaves lose their gradient.
    if (every_leaf && !foreign) walk.gone = true;
    else if (!walk.reach(t, row, true)) return true;
    PyObject* stale_label = foreign ? label_text(reinterpret_cast<TensorObject*>(info->foreign))
                                    : t.labels().label_of(row);
    PyObject* source_label = walk.found ? label_text(walk.found) : nullptr;
    if (walk.gone && !walk.found)
        PyErr_Format(PyExc_RuntimeError,
                     "backward: the gradient flows through '%S', whose history is gone, so the "
                     "leaves it was computed from would get no gradient. %s Or use t.detach() to "
                     "treat it as a constant.",
                     stale_label ? stale_label : Py_None, HISTORY_GONE);
    else if (walk.gone)
        PyErr_Format(PyExc_RuntimeError,
                     "the gradient with respect to '%S' flows through '%S', whose history is "
                     "gone. %s Or use t.detach() to treat it as a constant.",
                     source_label ? source_label : Py_None,
                     stale_label ? stale_label : Py_None, HISTORY_GONE);
    else
        PyErr_Format(PyExc_RuntimeError,
                     "the gradient with respect to '%S' flows through '%S', which was recorded "
                     "on another tape (inside a tapegrad.Tape context, or on another thread), "
                     "and the gradient cannot follow it there. Record the whole computation on "
                     "one tape (or ask that tape: tape.gradient), or use t.detach() to treat "
                     "'%S' as a constant.",
                     source_label ? source_label : Py_None, stale_label ? stale_label : Py_None,
                     stale_label ? stale_label : Py_None);
    Py_XDECREF(stale_label);
    Py_XDECREF(source_label);
    return false;
}

namespace {

// numpy 2's context variable of error settings and a value of it that ignores
// everything, looked up once (new references kept for the process's life);
// both null when this numpy has none.
struct QuietSettings {
    PyObject* var = nullptr;
    PyObject* ignore_all = nullptr;
};

const QuietSettings& quiet_settings() {
    static QuietSettings settings = [] {
        QuietSettings q;
        PyObject* umath = PyImport_ImportModule("numpy._core.umath");
        PyObject* var = umath ? PyObject_GetAttrString(umath, "_extobj_contextvar") : nullptr;
        PyObject* make = umath ? PyObject_GetAttrString(umath, "_make_extobj") : nullptr;
        PyObject* kwargs = make ? Py_BuildValue("{s:s}", "all", "ignore") : nullptr;
        PyObject* empty = kwargs ? PyTuple_New(0) : nullptr;
        PyObject* ignore = empty ? PyObject_Call(make, empty, kwargs) : nullptr;
        if (var && ignore && PyContextVar_CheckExact(var)) {
            q.var = Py_NewRef(var);
            q.ignore_all = Py_NewRef(ignore);
        }
        PyErr_Clear();  // no such API: the np.seterr fallback
        Py_XDECREF(umath);
        Py_XDECREF(var);
        Py_XDECREF(make);
        Py_XDECREF(kwargs);
        Py_XDECREF(empty);
        Py_XDECREF(ignore);
        return q;
    }();
    return settings;
}

}  // namespace

bool QuietNumpy::start() {
    const QuietSettings& q = quiet_settings();
    if (q.var) {
        token = PyContextVar_Set(q.var, q.ignore_all);
        return token != nullptr;
    }
    PyObject* numpy = PyImport_ImportModule("numpy");
    if (!numpy) return false;
    seterr = PyObject_GetAttrString(numpy, "seterr");
    Py_DECREF(numpy);
    PyObject* kwargs = seterr ? Py_BuildValue("{s:s}", "all", "ignore") : nullptr;
    PyObject* empty = PyTuple_New(0);
    saved = kwargs && empty ? PyObject_Call(seterr, empty, kwargs) : nullptr;
    Py_XDECREF(kwargs);
    Py_XDECREF(empty);
    return saved != nullptr;
}

QuietNumpy::~QuietNumpy() {
    if (!token && !saved) return;
    PyObject *type, *value, *traceback;
    PyErr_Fetch(&type, &value, &traceback);  // an error in flight survives the restore
    if (token) {
        PyContextVar_Reset(quiet_settings().var, token);
        Py_DECREF(token);
    } else {
        PyObject* empty = PyTuple_New(0);
        PyObject* restored = empty ? PyObject_Call(seterr, empty, saved) : nullptr;
        Py_XDECREF(restored);
        Py_XDECREF(empty);
        Py_DECREF(saved);
        Py_XDECREF(seterr);
    }
    PyErr_Clear();
    PyErr_Restore(type, value, traceback);
}

namespace {

enum : uint8_t { REACHED = 1, KEEP = 2, HOOKS_RAN = 4 };




class Sweep {
public:
    // Uses the tape's scratch buffers (warm memory, Note [Reached]) unless a
    // sweep is already running on them: a user backward_fn may start another.
    explicit Sweep(Tape& tape)
        : t(tape),
          nested(tape.scratch().start_sweep()),
          grad(nested ? own_grad : tape.scratch().grad()),
          reached(nested ? own_reached : tape.scratch().reached()),
          array_grad(nested ? own_array_grad : tape.scratch().array_grad()) {
        grad.assign(t.rows().size(), 0.0);
        reached.assign(t.rows().size(), 0);
        array_grad.assign(t.rows().array_count(), nullptr);
    }
    ~Sweep() {
        std::vector<PyObject*> grads;
        grads.swap(array_grad);
        t.scratch().end_sweep(nested);
        for (PyObject* g : grads) t.pool.give(g);  // those not handed out are reused
    }
    Sweep(const Sweep&) = delete;
    Sweep& operator=(const Sweep&) = delete;

    // Seeds `node` with `seed` (stolen: a float, or an ndarray of the node's
    // shape and dtype, which becomes its buffer when nothing else holds it).
    bool seed(uint32_t node, PyObject* seed) {
        if (t.rows().is_array(node)) return add_array(node, seed);
        grad[node] += PyFloat_AsDouble(seed);  // an output listed twice is seeded twice
        Py_DECREF(seed);
        reached[node] |= REACHED;
        return !PyErr_Occurred();
    }

    // `needed` (Note [Needed rows]): the rows to sweep, or nullptr for all.
    bool run(const std::vector<Source>& sources, bool every_leaf = false,
             const std::vector<uint8_t>* needed = nullptr) {
        // Rows only pass gradients to lower rows, so nothing below the lowest
        // source can change a source's gradient: stop there, unless stale rows
        // below it still need their check (Note [Stale tensors]).
        int64_t lowest = !t.foreign().any_stale() ? static_cast<int64_t>(t.rows().size()) : 0;
        for (const Source& s : sources) {
            if (s.node == UINT32_MAX) continue;
            reached[s.node] |= KEEP;
            lowest = std::min<int64_t>(lowest, s.node);
        }
        if (lowest == static_cast<int64_t>(t.rows().size())) lowest = 0;
        // The loop is compiled twice, so that its common form (every row
        // needed, no anomaly checks) carries no test for either.
        if (!needed && !check_anomalies) return sweep_rows<false>(sources, every_leaf, nullptr, lowest);
        return sweep_rows<true>(sources, every_leaf, needed, lowest);
    }

    template <bool CHECKS>
    bool sweep_rows(const std::vector<Source>& sources, bool every_leaf,
                    const std::vector<uint8_t>* needed, int64_t lowest) {
        // Columns as raw pointers: a store to the uint8_t `reached` may alias
        // anything, so through the vectors every column pointer would be
        // reloaded per row. Rows that can run Python (which may record, and so
        // move the columns) reload them. The loop body is kept small: a plain
        // scalar op (the op's backward inlined, one switch) or a call.
        Columns c(t, grad, reached);
        for (int64_t i = static_cast<int64_t>(t.rows().size()) - 1; i >= lowest; --i) {
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
                c = Columns(t, grad, reached);
                continue;
            }
            if (!(c.reached[row] & REACHED)) continue;
            const uint8_t f = c.flags[row];
            if (code <= OP_STALE || code >= OP_FIRST_COLD || (f & (F_ARRAY | F_HOOKED | F_FREED))) {
                const Next next = special_row(row, code, f, sources, every_leaf);
                c = Columns(t, grad, reached);
                if (next == Next::FAILED) return false;
                if (next == Next::DONE) continue;
            }
            scalar_row(c, row, code);
            if (CHECKS && check_anomalies && !check_row(row)) return false;
        }
        return true;
    }

    enum class Next { DONE, SCALAR, FAILED };

    // A user record's row (Function or seed-style): its backward, if any of its outputs was reached.
    bool custom_row(uint32_t row) {
        if ((t.rows().flags(row) & F_FREED) && outputs_reached(row)) return freed_error(t, row);
        const bool ran = outputs_reached(row);
        if (!user_record(row)) return false;
        return !(ran && check_anomalies) || check_row(row);
    }

    // Every reached row but a plain scalar op: hooks, leaves, versions, freed and
    // stale rows, array rows. SCALAR: a hooked scalar op, whose backward is left
    // to the loop.
    Next special_row(uint32_t row, uint8_t code, uint8_t f, const std::vector<Source>& sources,
                     bool every_leaf) {
        if (t.hooked(row)) {
            // its gradient is complete: every consumer is above
            if (!run_hooks(row)) return Next::FAILED;
        }
        if (code == OP_LEAF) return Next::DONE;
        if (code == OP_VERSION)  // a newer value: its gradient is the older one's too
            return pass_version(row) ? Next::DONE : Next::FAILED;
        if (f & F_FREED) return freed_error(t, row) ? Next::DONE : Next::FAILED;
        if (code == OP_STALE) return check_stale(t, row, sources, every_leaf) ? Next::DONE : Next::FAILED;
        if (!(f & F_ARRAY) && code < OP_FIRST_COLD) return Next::SCALAR;
        if (!(f & F_ARRAY)) {
            cold_scalar_row(row, code);
            return !check_anomalies || check_row(row) ? Next::DONE : Next::FAILED;
        }
        const bool ok = is_array_op(code) ? array_op_row(row) : array_row(row);
        return ok && (!check_anomalies || check_row(row)) ? Next::DONE : Next::FAILED;
    }

    // The gradient that reached a source: a float or an ndarray of its shape.
    PyObject* result(const Source& s) {
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

    bool reached_node(uint32_t node) const { return reached[node] & REACHED; }

    // After a backward() that does not retain the graph: what it traversed
    // cannot be traversed again (the values stay until the tape is cleared).
    void free_traversed() {
        // reached.size(): rows a backward_fn recorded during the sweep were not traversed.
        for (size_t row = 0; row < reached.size(); ++row) {
            const uint8_t code = t.rows().op(row);
            const bool traversed = code == OP_CUSTOM ? outputs_reached(static_cast<uint32_t>(row))
                                                     : (reached[row] & REACHED) && code > OP_STALE;
            if (!traversed) continue;
            t.mark_freed(static_cast<uint32_t>(row));
            // A Function's outputs stand on their own rows: freed with their record.
            if (code == OP_CUSTOM)
                for (uint32_t o : t.rows().user_record(t.rows().in0(row)).outputs) t.mark_freed(o);
        }
    }

    // backward(): adds each reached leaf's gradient into its .grad.
    bool accumulate_leaf_grads() {
        for (size_t row = 0; row < reached.size(); ++row) {
            if (t.rows().op(row) != OP_LEAF || !(reached[row] & REACHED) || t.rows().in0(row) == UINT32_MAX) continue;
            auto* leaf = reinterpret_cast<TensorObject*>(t.rows().leaf_tensor(t.rows().in0(row)));
            const Source source{leaf, static_cast<uint32_t>(row)};
            if (!same_layout_as(t, source.node, leaf)) return version_error(t, source, source.node);
            PyObject* g = result(source);
            if (!g || !add_to_grad(leaf, g)) return false;
        }
        return true;
    }

private:
    // Takes g (a float or an ndarray, stolen) into leaf.grad, a Tensor whose
    // identity stays across accumulations while it has no history, as in PyTorch.
    //
    // Note [Concurrent accumulation]
    // backward() on several threads may add into one leaf's .grad at once
    // (README, Guarantees). numpy releases the GIL inside an add, so an array
    // .grad is read, added to and written back optimistically: the sum is
    // stored only if .grad and its value are still the ones it was computed
    // from; otherwise another thread stored first, and the sum is computed
    // again on the newer value. A scalar is added in one step under the GIL.
    bool add_to_grad(TensorObject* leaf, PyObject* g) {
        const bool ok = accumulate(leaf, g);
        Py_DECREF(g);
        return ok;
    }

    // like's value (a Tensor) plus g, shaped as like's and read-only (a new reference).
    static PyObject* sum_with(TensorObject* like, PyObject* g) {
        PyObject* value = value_object(like);
        PyObject* sum = value ? PyNumber_Add(value, g) : nullptr;  // a numpy scalar for 0-d arrays
        PyObject* total = sum && like->array ? PyArray_FromAny(sum, nullptr, 0, 0, NPY_ARRAY_ENSUREARRAY, nullptr)
                                             : Py_XNewRef(sum);
        PyObject* shaped = total && like->array ? sum_to_like(total, value) : Py_XNewRef(total);
        Py_XDECREF(value);
        Py_XDECREF(sum);
        Py_XDECREF(total);
        return read_only(shaped);
    }

    bool accumulate(TensorObject* leaf, PyObject* g) {
        for (;;) {
            PyObject* current = Py_XNewRef(leaf->grad);
            auto* acc = reinterpret_cast<TensorObject*>(current);
            if (acc && !(acc->flags & T_REQUIRES_GRAD)) {
                const bool ok = add_in_place(acc, g);
                Py_DECREF(current);
                return ok;
            }
            // A new .grad: g itself, or the sum with a .grad that has history
            // (backward(create_graph=True) made it), which keeps its history:
            // as PyTorch, the sum is made out of place then.
            PyObject* value = acc ? sum_with(acc, g) : read_only(Py_NewRef(g));
            PyObject* fresh = value ? constant_tensor(t, value) : nullptr;
            if (!fresh) {
                Py_XDECREF(current);
                return false;
            }
            // Stored only if .grad is still what it was (an allocation can run
            // Python, and so another thread): else added again to the newer one.
            const bool stored = leaf->grad == current;
            if (stored) {
                Py_XSETREF(leaf->grad, fresh);
                track(leaf);  // Note [Tracked tensors]
            } else {
                Py_DECREF(fresh);
            }
            Py_XDECREF(current);
            if (stored) return true;
        }
    }

    // g into a constant .grad acc, whose identity stays across accumulations.
    bool add_in_place(TensorObject* acc, PyObject* g) {
        bool ok = true;
        if (!acc->array) {
            const double v = PyArray_Check(g) ? sum_all(g) : PyFloat_AsDouble(g);
            ok = !PyErr_Occurred();
            if (ok) acc->scalar += v;
        } else {
            for (bool stored = false; ok && !stored;) {
                PyObject* before = Py_NewRef(acc->array);
                PyObject* shaped = sum_with(acc, g);
                ok = shaped != nullptr;
                stored = ok && acc->array == before;
                if (stored) Py_SETREF(acc->array, shaped);
                else Py_XDECREF(shaped);
                Py_DECREF(before);
            }
        }
        acc->epoch = 0;  // a new value: re-entered on its next use
        return ok;
    }

    // Calls the register_hook functions of a row's tensor, in order, on its
    // complete gradient; one that returns a value replaces the gradient.
    bool run_hooks(uint32_t row) {
        if (reached[row] & HOOKS_RAN) return true;
        reached[row] |= HOOKS_RAN;
        PyObject* hooks = t.hooks_of(row);
        if (!hooks) return true;
        PyObject* snapshot = PySequence_List(hooks);  // a hook may add or remove hooks
        if (!snapshot) return false;
        bool ok = true;
        for (Py_ssize_t k = 0; ok && k < PyList_GET_SIZE(snapshot); ++k) {
            PyObject* g = grad_object(row);
            // The hook gets a copy: the buffer is the sweep's, added into later.
            PyObject* g_tensor =
                !g ? nullptr : constant_tensor(t, PyArray_Check(g) ? read_only(owned_copy(g)) : Py_NewRef(g));
            Py_XDECREF(g);
            PyObject* r = g_tensor ? PyObject_CallOneArg(PyList_GET_ITEM(snapshot, k), g_tensor) : nullptr;
            Py_XDECREF(g_tensor);
            ok = r && (r == Py_None || replace_grad(row, r));
            Py_XDECREF(r);
        }
        Py_DECREF(snapshot);
        return ok;
    }

    // A hook's result (a Tensor, array or number of the row's shape) as its gradient.
    bool replace_grad(uint32_t row, PyObject* value) {
        PyObject* v = is_tensor(value) ? value_object(reinterpret_cast<TensorObject*>(value))
                                       : Py_NewRef(value);
        PyObject* array = v ? to_float_array(v, "register_hook: a hook's result") : nullptr;
        Py_XDECREF(v);
        if (!array) return false;
        PyArrayObject* a = reinterpret_cast<PyArrayObject*>(array);
        const bool fits = t.rows().is_array(row)
                              ? PyArray_SAMESHAPE(a, reinterpret_cast<PyArrayObject*>(t.rows().array_of(row)))
                              : PyArray_NDIM(a) == 0;
        if (!fits) {
            PyObject* got = PyObject_GetAttrString(array, "shape");
            PyErr_Format(PyExc_ValueError,
                         "register_hook: a hook returned a gradient of shape %S; return one of the "
                         "tensor's shape (or None to keep the gradient)", got ? got : Py_None);
            Py_XDECREF(got);
            Py_DECREF(array);
            return false;
        }
        if (!t.rows().is_array(row)) {
            grad[row] = PyFloat_AsDouble(array);
            Py_DECREF(array);
            return !PyErr_Occurred();
        }
        PyObject* cast = sum_to_like(array, t.rows().array_of(row));  // same shape: a cast, if any
        Py_DECREF(array);
        if (!cast) return false;
        PyObject* copy = owned_copy(cast);
        Py_DECREF(cast);
        if (!copy) return false;
        PyObject*& buffer = array_grad[t.rows().val(row).index];
        t.pool.give(buffer);
        buffer = copy;
        return true;
    }

    // A version row (Note [Versions]): the gradient of a tensor's newer value
    // goes on to the row of the value before it, of the same layout.
    bool pass_version(uint32_t row) {
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

    // Note [Anomaly mode]: the gradients row's backward added into are finite.
    bool check_row(uint32_t row) {
        for (uint32_t node : t.rows().inputs_of(row)) {
            if (!(reached[node] & REACHED)) continue;
            const char* kind = t.rows().is_array(node) ? nonfinite(array_grad[t.rows().val(node).index])
                                                : nonfinite(grad[node]);
            if (kind) return anomaly_error(t, row, node, kind);
        }
        return true;
    }

    bool outputs_reached(uint32_t row) const {
        for (uint32_t o : t.rows().user_record(t.rows().in0(row)).outputs)
            if (reached[o] & REACHED) return true;
        return false;
    }



    Tape& t;
    QuietNumpy quiet_numpy;
    const bool nested;
    const bool check_anomalies = t.anomaly_mode();  // Note [Anomaly mode]
    std::vector<double> own_grad;
    std::vector<uint8_t> own_reached;
    std::vector<PyObject*> own_array_grad;
    std::vector<double>& grad;
    std::vector<uint8_t>& reached;
    std::vector<PyObject*>& array_grad;

    struct Columns {
        const uint8_t* op;
        const uint8_t* flags;
        const uint32_t* in0;
        const uint32_t* in1;
        const Value* val;
        const double* consts;
        double* grad;
        uint8_t* reached;
        Columns(const Tape& t, std::vector<double>& g, std::vector<uint8_t>& r)
            : op(t.rows().op_data()), flags(t.rows().flags_data()), in0(t.rows().in0_data()), in1(t.rows().in1_data()),
              val(t.rows().val_data()), consts(t.rows().consts_data()), grad(g.data()), reached(r.data()) {}
    };

    // The hot loop's body: the op's backward is inlined per op by visit_hot_op,
    // so each case is straight-line code (a shared helper here costs 2x); the
    // other ops take one call (Note [Hot ops] in ops.hpp).
    TAPEGRAD_ALWAYS_INLINE static void scalar_row(const Columns& c, uint32_t row, uint8_t code) {
        const uint8_t f = c.flags[row];
        const uint32_t ia = c.in0[row], ib = c.in1[row];
        const double a = (f & F_A_NUMBER) ? c.consts[ia] : c.val[ia].number;
        const double out = c.val[row].number, g = c.grad[row];
        visit_hot_op(code, [&](auto tag) { scalar_backward_into<typename decltype(tag)::type>(c, f, ia, ib, a, out, g); });
    }

    // A cold op's scalar row (special_row sends them here, out of the loop).
    void cold_scalar_row(uint32_t row, uint8_t code) {
        const Columns c(t, grad, reached);
        const uint8_t f = c.flags[row];
        const uint32_t ia = c.in0[row], ib = c.in1[row];
        const double a = (f & F_A_NUMBER) ? c.consts[ia] : c.val[ia].number;
        const double out = c.val[row].number, g = c.grad[row];
        visit_op(code, [&](auto tag) { scalar_backward_into<typename decltype(tag)::type>(c, f, ia, ib, a, out, g); });
    }

    // Adds a scalar row's backward into its inputs' gradients.
    template <class Op>
    TAPEGRAD_ALWAYS_INLINE static void scalar_backward_into(const Columns& c, uint8_t f, uint32_t ia, uint32_t ib,
                                                            double a, double out, double g) {
        if constexpr (Op::arity == 2) {
            const double b = (f & F_B_NUMBER) ? c.consts[ib] : c.val[ib].number;
            double ga = 0.0, gb = 0.0;
            backward_wanted<Op>(a, b, out, g, ga, gb, !(f & F_A_CONST), !(f & F_B_CONST));
            if (!(f & F_A_CONST)) {
                c.grad[ia] += ga;
                c.reached[ia] |= REACHED;
            }
            if (!(f & F_B_CONST)) {
                c.grad[ib] += gb;
                c.reached[ib] |= REACHED;
            }
        } else {
            c.grad[ia] += Op::backward(a, out, g);
            c.reached[ia] |= REACHED;
        }
    }

    void add_number(uint32_t node, double g) {
        grad[node] += g;
        reached[node] |= REACHED;
    }

    // Adds a gradient array (a new reference, stolen) into node, undoing broadcasting.
    bool add_array(uint32_t node, PyObject* g) {
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
    bool add_uniform(uint32_t node, PyObject* g) {
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
    bool own(PyObject*& buffer, PyObject* like) {
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
    bool array_row(uint32_t row) {
        const uint8_t f = t.rows().flags(row);
        const uint32_t ia = t.rows().in0(row), ib = t.rows().in1(row);
        const bool binary = op_arity(t.rows().op(row)) == 2;
        const bool want_a = !(f & F_A_CONST) && t.rows().wants_gradient(ia);
        const bool want_b = binary && !(f & F_B_CONST) && t.rows().wants_gradient(ib);
        PyObject* out = t.rows().array_of(row);
        PyObject*& g = array_grad[t.rows().val(row).index];
        const int passes = g && (is_owned_buffer(g, out) || is_uniform(g)) ? op_passes(t.rows().op(row)) : 0;
        const bool pass_a = want_a && (passes & PASSES_A), pass_b = want_b && (passes & PASSES_B);
        const bool kernel_a = want_a && !pass_a, kernel_b = want_b && !pass_b;
        GradSink sa, sb;
        bool ok = true;
        if (kernel_a || kernel_b) {
            PyObject* a = t.rows().operand_object(ia, f & F_A_NUMBER, f & F_A_ARRAY);
            PyObject* b = binary ? t.rows().operand_object(ib, f & F_B_NUMBER, f & F_B_ARRAY) : nullptr;
            ok = a && (b || !binary) && (!kernel_a || open_sink(ia, out, sa)) &&
                 (!kernel_b || open_sink(ib, out, sb)) &&
                 array_backward(t.rows().op(row), a, b, out, g, kernel_a ? &sa : nullptr,
                                kernel_b ? &sb : nullptr, &t.pool);
            Py_XDECREF(a);
            Py_XDECREF(b);
        }
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
    bool pass_gradient(uint32_t node, PyObject*& g, PyObject* out, bool move) {
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
    bool array_op_row(uint32_t row) {
        if (!quiet_numpy.active() && !quiet_numpy.start()) return false;
        PyObject*& g = array_grad[t.rows().val(row).index];
        // An array op's backward gets a gradient it can hand to BLAS as it is.
        if (!own(g, t.rows().array_of(row))) return false;
        std::vector<PyObject*> grads;
        const bool ok = array_op_backward(t, row, g, grads);
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
    // it, with no temporary and no second pass (DESIGN 2.7).
    bool open_sink(uint32_t node, PyObject* out, GradSink& sink) {
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
    void spend(PyObject*& buffer) {
        t.pool.give(buffer);
        buffer = nullptr;
    }

    // A buffer of like's layout from the pool (Note [Buffer pool]).
    PyObject* pooled_like(PyObject* like) {
        PyArrayObject* a = reinterpret_cast<PyArrayObject*>(like);
        return t.pool.take(PyArray_NDIM(a), PyArray_DIMS(a), PyArray_TYPE(a));
    }

    // A gradient for `node` as a Python object: a float or its buffer.
    PyObject* grad_object(uint32_t node) {
        const bool got = reached[node] & REACHED;
        if (!t.rows().is_array(node)) return PyFloat_FromDouble(got ? grad[node] : 0.0);
        PyObject* buffer = array_grad[t.rows().val(node).index];
        if (!got || !buffer) return filled_like(t.rows().array_of(node), 0.0);
        return is_uniform(buffer) ? owned_copy(buffer) : Py_NewRef(buffer);
    }

    bool user_record(uint32_t row) {
        bool any = false;
        for (uint32_t o : t.rows().user_record(t.rows().in0(row)).outputs) {
            if (!(reached[o] & REACHED)) continue;
            any = true;
            // The record consumes its outputs' gradients now, before their own rows.
            if (t.hooked(o) && !run_hooks(o)) return false;
        }
        if (!any) return true;
        const UserRecord& r = t.rows().user_record(t.rows().in0(row));
        // Copy what we need: the callback may append to (and so move) user_records.
        PyObject* record = Py_NewRef(r.record);
        std::vector<uint32_t> inputs = r.inputs;
        PyObject* args = PyTuple_New(static_cast<Py_ssize_t>(r.outputs.size()));
        bool ok = args != nullptr;
        for (size_t k = 0; ok && k < r.outputs.size(); ++k) {
            PyObject* g = grad_object(r.outputs[k]);
            if (!g) ok = false;
            else PyTuple_SET_ITEM(args, static_cast<Py_ssize_t>(k), g);
        }
        PyObject* result = nullptr;
        if (ok) {
            PyObject* fn = PyObject_GetAttrString(record, "backward_fn");
            result = fn ? PyObject_Call(fn, args, nullptr) : nullptr;
            Py_XDECREF(fn);
        }
        Py_XDECREF(args);
        ok = result && take_user_grads(record, inputs, result);
        Py_XDECREF(result);
        Py_DECREF(record);
        return ok;
    }

    bool take_user_grads(PyObject* record, const std::vector<uint32_t>& inputs, PyObject* result) {
        if (!PyList_Check(result) && !PyTuple_Check(result)) {
            PyErr_Format(PyExc_TypeError,
                         "backward_fn of %R returned %.100s; it must return a list with one "
                         "gradient per input (None for no gradient)",
                         record, Py_TYPE(result)->tp_name);
            return false;
        }
        const Py_ssize_t n = PySequence_Fast_GET_SIZE(result);
        if (n != static_cast<Py_ssize_t>(inputs.size())) {
            PyErr_Format(PyExc_ValueError,
                         "backward_fn of %R returned %zd gradients for %zd inputs; return one per "
                         "input, in the order of input_keys (None for no gradient)",
                         record, n, static_cast<Py_ssize_t>(inputs.size()));
            return false;
        }
        PyObject** items = PySequence_Fast_ITEMS(result);
        for (Py_ssize_t k = 0; k < n; ++k) {
            if (items[k] == Py_None) continue;
            if (!add_user_grad(record, k, inputs[static_cast<size_t>(k)], items[k])) return false;
        }
        return true;
    }

    bool add_user_grad(PyObject* record, Py_ssize_t k, uint32_t node, PyObject* g) {
        PyObject* array = to_float_array(g, "backward_fn");
        if (!array) {
            PyErr_Clear();
            PyErr_Format(PyExc_TypeError,
                         "backward_fn of %R returned %.100s for input %zd; a gradient must be a "
                         "real number or a float array",
                         record, Py_TYPE(g)->tp_name, k);
            return false;
        }
        PyArrayObject* a = reinterpret_cast<PyArrayObject*>(array);
        if (!t.rows().is_array(node)) {
            if (PyArray_NDIM(a) != 0) {
                PyErr_Format(PyExc_ValueError,
                             "backward_fn of %R returned an array of %d dimensions for input %zd, "
                             "which is a scalar; return a number",
                             record, PyArray_NDIM(a), k);
                Py_DECREF(array);
                return false;
            }
            double v = PyFloat_AsDouble(array);
            Py_DECREF(array);
            if (v == -1.0 && PyErr_Occurred()) return false;
            add_number(node, v);
            return true;
        }
        PyArrayObject* like = reinterpret_cast<PyArrayObject*>(t.rows().array_of(node));
        if (!PyArray_SAMESHAPE(a, like)) {
            PyObject* want = PyObject_GetAttrString(reinterpret_cast<PyObject*>(like), "shape");
            PyObject* got = PyObject_GetAttrString(array, "shape");
            PyErr_Format(PyExc_ValueError,
                         "backward_fn of %R returned a gradient of shape %S for input %zd, whose "
                         "shape is %S; return the input's shape",
                         record, got ? got : Py_None, k, want ? want : Py_None);
            Py_XDECREF(want);
            Py_XDECREF(got);
            Py_DECREF(array);
            return false;
        }
        return add_array(node, array);
    }

};

// The seed of a target whose value has the layout of `like` (an ndarray, or
// nullptr for a number): a float, or an array of like's shape and dtype.
PyObject* seed_for(PyObject* like_obj, PyObject* grad_output, const char* what) {
    if (!like_obj) {
        if (grad_output == Py_None) return PyFloat_FromDouble(1.0);
        PyObject* array = to_float_array(grad_output, what);
        if (!array) return nullptr;
        if (PyArray_SIZE(reinterpret_cast<PyArrayObject*>(array)) != 1) {
            Py_DECREF(array);
            PyErr_Format(PyExc_ValueError, "%s: the target is a scalar, so its gradient must be "
                         "a single number", what);
            return nullptr;
        }
        double v = sum_all(array);
        Py_DECREF(array);
        return PyErr_Occurred() ? nullptr : PyFloat_FromDouble(v);
    }
    // One value for every element: uniform (Note [Uniform gradients]).
    if (grad_output == Py_None) return uniform_like(like_obj, 1.0);
    if (PyFloat_Check(grad_output) || PyLong_Check(grad_output)) {
        const double v = PyFloat_AsDouble(grad_output);
        return v == -1.0 && PyErr_Occurred() ? nullptr : uniform_like(like_obj, v);
    }
    PyObject* array = to_float_array(grad_output, what);
    if (!array) return nullptr;
    PyArrayObject* a = reinterpret_cast<PyArrayObject*>(array);
    PyArrayObject* like = reinterpret_cast<PyArrayObject*>(like_obj);
    if (!PyArray_SAMESHAPE(a, like)) {
        PyObject* want = PyObject_GetAttrString(like_obj, "shape");
        PyObject* got = PyObject_GetAttrString(array, "shape");
        PyErr_Format(PyExc_ValueError,
                     "%s has shape %S but the target has shape %S; give one gradient per "
                     "element of the target",
                     what, got ? got : Py_None, want ? want : Py_None);
        Py_XDECREF(want);
        Py_XDECREF(got);
        Py_DECREF(array);
        return nullptr;
    }
    PyObject* cast = PyArray_FROM_OTF(array, PyArray_TYPE(like), NPY_ARRAY_CARRAY_RO | NPY_ARRAY_FORCECAST);
    Py_DECREF(array);
    return cast;
}

}  // namespace

PyObject* compute_gradients(PyObject* target_obj, PyObject* sources_obj, PyObject* grad_output) {
    if (!is_tensor(target_obj)) {
        PyErr_Format(PyExc_TypeError, "compute_gradients: the target must be a Tensor, got %.100s",
                     Py_TYPE(target_obj)->tp_name);
        return nullptr;
    }
    auto* target = reinterpret_cast<TensorObject*>(target_obj);
    if (is_tensor(sources_obj)) {  // a Tensor is iterable: it would be taken for a list of its rows
        PyErr_SetString(PyExc_TypeError,
                        "compute_gradients: sources must be a list of Tensors, got a Tensor; "
                        "pass [x] for one source");
        return nullptr;
    }
    PyObject* seq = PySequence_Fast(sources_obj, "compute_gradients: sources must be a list of Tensors");
    if (!seq) return nullptr;
    const Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject** items = PySequence_Fast_ITEMS(seq);
    for (Py_ssize_t k = 0; k < n; ++k) {
        if (!is_tensor(items[k])) {
            PyErr_Format(PyExc_TypeError,
                         "compute_gradients: sources[%zd] is %.100s; every source must be a Tensor",
                         k, Py_TYPE(items[k])->tp_name);
            Py_DECREF(seq);
            return nullptr;
        }
        if (!constant_source_error("compute_gradients", k, reinterpret_cast<TensorObject*>(items[k]))) {
            Py_DECREF(seq);
            return nullptr;
        }
    }
    Tape* tape = current_tape();
    if (!tape) {
        Py_DECREF(seq);
        return nullptr;
    }
    tape->maybe_reclaim();
    const uint32_t target_node = find_node(*tape, target);
    const bool on_tape = target_node != UINT32_MAX;
    PyObject* seed = seed_for(value_layout(*tape, target_node, target), grad_output,
                              "compute_gradients: grad_output");
    if (!seed) {
        Py_DECREF(seq);
        return nullptr;
    }
    PyObject* out = nullptr;
    std::vector<Source> sources;
    const bool leaf = target->flags & T_LEAF;
    bool only_itself = true;
    for (Py_ssize_t k = 0; k < n; ++k) {
        auto* s = reinterpret_cast<TensorObject*>(items[k]);
        only_itself = only_itself && s == target;
        sources.push_back(source_of(*tape, s));
    }
    add_retired(*tape, sources);
    const uint32_t base = on_tape ? identity_row(*tape, target_node) : UINT32_MAX;
    bool has_history = on_tape && (tape->rows().op(base) == OP_CUSTOM || tape->rows().op(base) > OP_STALE ||
                                   (tape->rows().op(base) == OP_LEAF && (tape->rows().flags(base) & F_CUSTOM_OUTPUT)));
    if (!only_itself && !has_history) {
        PyObject* label = label_text(target);
        if (!leaf)
            PyErr_Format(PyExc_RuntimeError,
                         "compute_gradients: the history of the target '%S' is gone. %s",
                         label ? label : Py_None, HISTORY_GONE);
        else
            PyErr_Format(PyExc_ValueError,
                         "compute_gradients: the target '%S' has no recorded history, so it "
                         "depends on no other tensor. Was it computed on .data values (which "
                         "records nothing)? Compute it with Tensor operations instead.",
                         label ? label : Py_None);
        Py_XDECREF(label);
    } else if (only_itself && !on_tape) {
        // Each source gets its own gradient, written out if the seed is uniform.
        out = PyList_New(n);
        for (Py_ssize_t k = 0; out && k < n; ++k) {
            PyObject* g = PyArray_Check(seed) ? owned_copy(seed) : Py_NewRef(seed);
            if (!g) Py_CLEAR(out);
            else PyList_SET_ITEM(out, k, g);
        }
    } else {
        Sweep sweep(*tape);
        const bool seeded = sweep.seed(target_node, seed);
        seed = nullptr;
        if (seeded && sweep.run(sources) && check_versions(*tape, sweep, sources, static_cast<size_t>(n))) {
            out = PyList_New(n);
            for (Py_ssize_t k = 0; out && k < n; ++k) {
                PyObject* g = sweep.result(sources[static_cast<size_t>(k)]);
                if (!g) Py_CLEAR(out);
                else PyList_SET_ITEM(out, k, g);
            }
        }
    }
    Py_XDECREF(seed);
    Py_DECREF(seq);
    return out;
}

namespace {

// A target of backward() or grad(): its node, or UINT32_MAX with an error set.
uint32_t backward_target(Tape& tape, TensorObject* t, const char* what) {
    PyObject* label = label_text(t);
    uint32_t node = UINT32_MAX;
    const uint32_t here = find_node(tape, t);  // bound here, or foreign (Note [Foreign tensors])
    if (!(t->flags & T_REQUIRES_GRAD)) {
        PyErr_Format(PyExc_RuntimeError,
                     "%s: '%S' does not require grad and has no history, so there is nothing to "
                     "differentiate. Was it computed inside no_grad(), or only from tensors made "
                     "with requires_grad=False?", what, label ? label : Py_None);
    } else if (here != UINT32_MAX && tape.rows().op(identity_row(tape, here)) != OP_STALE) {
        node = here;
    } else if (t->flags & T_LEAF) {
        node = node_on(tape, t);  // a leaf: its gradient is the seed itself
    } else {
        PyErr_Format(PyExc_RuntimeError, "%s: the history of '%S' is gone. %s", what,
                     label ? label : Py_None, HISTORY_GONE);
    }
    Py_XDECREF(label);
    return node;
}

// The seed of a target for backward()/grad(): implicit only for one element, as in PyTorch.
PyObject* backward_seed(PyObject* like, PyObject* gradient, const char* what) {
    if (gradient == Py_None && like && PyArray_SIZE(reinterpret_cast<PyArrayObject*>(like)) != 1) {
        PyObject* shape = PyObject_GetAttrString(like, "shape");
        PyErr_Format(PyExc_RuntimeError,
                     "%s: grad can be implicitly created only for scalar outputs; this output has "
                     "shape %S, so pass its gradient (an array of that shape)", what,
                     shape ? shape : Py_None);
        Py_XDECREF(shape);
        return nullptr;
    }
    return seed_for(like, gradient, what);
}

std::vector<TensorObject*> tensors_of(PyObject* obj, const char* what) {
    std::vector<TensorObject*> out;
    if (is_tensor(obj)) {
        out.push_back(reinterpret_cast<TensorObject*>(obj));
        return out;
    }
    PyObject* seq = PySequence_Fast(obj, "expected a Tensor or a sequence of Tensors");
    if (!seq) return out;
    for (Py_ssize_t k = 0; k < PySequence_Fast_GET_SIZE(seq); ++k) {
        PyObject* item = PySequence_Fast_GET_ITEM(seq, k);
        if (!is_tensor(item)) {
            PyErr_Format(PyExc_TypeError, "%s[%zd] is %.100s; expected Tensors", what, k,
                         Py_TYPE(item)->tp_name);
            out.clear();
            break;
        }
        out.push_back(reinterpret_cast<TensorObject*>(item));
    }
    Py_DECREF(seq);
    return out;
}

}  // namespace

namespace {

// Runs sweep S (Sweep, or GraphSweep for create_graph) for backward().
template <class S>
bool backward_with(Tape& tape, uint32_t node, PyObject* seed, bool retain_graph) {
    // Every leaf the tape holds is a source: they are what .grad is set on, and
    // the stale check needs them (Note [Stale tensors]).
    std::vector<Source> sources;
    for (size_t row = 0; row < tape.rows().size(); ++row)
        if (tape.rows().op(row) == OP_LEAF && tape.rows().in0(row) != UINT32_MAX)
            sources.push_back({reinterpret_cast<TensorObject*>(tape.rows().leaf_tensor(tape.rows().in0(row))),
                               static_cast<uint32_t>(row)});
    S sweep(tape);
    const bool ok = sweep.seed(node, seed) && sweep.run(sources, true) && sweep.accumulate_leaf_grads();
    if (ok && !retain_graph) sweep.free_traversed();
    // After a failed sweep too, the tape may be dropped once nothing live needs it.
    if (!ok) tape.lifetime().note_freed();
    return ok;
}

// The gradient of a reached source as a Tensor.
PyObject* tensor_result(Tape& tape, Sweep& sweep, const Source& src) {
    return constant_tensor(tape, read_only(sweep.result(src)));
}
PyObject* tensor_result(Tape&, GraphSweep& sweep, const Source& src) {
    return sweep.tensor_result(src);
}

// Runs sweep S for tapegrad.grad(); seeds_given holds one grad_output (or None) per output.
template <class S>
PyObject* grad_with(Tape& tape, const std::vector<TensorObject*>& outputs,
                    const std::vector<TensorObject*>& inputs, const std::vector<PyObject*>& seeds_given,
                    bool retain_graph, bool allow_unused) {
    constexpr bool graph = std::is_same_v<S, GraphSweep>;
    S sweep(tape);
    bool ok = true;
    for (size_t k = 0; ok && k < outputs.size(); ++k) {
        const uint32_t node = backward_target(tape, outputs[k], "grad");
        PyObject* given = seeds_given[k];
        PyObject* value = is_tensor(given) ? value_object(reinterpret_cast<TensorObject*>(given))
                                           : Py_NewRef(given);
        PyObject* seed = node == UINT32_MAX || !value
                             ? nullptr
                             : backward_seed(value_layout(tape, node, outputs[k]), value,
                                             "grad: grad_outputs");
        Py_XDECREF(value);
        // With create_graph a Tensor grad_output keeps its history (checked above by value).
        if (graph && seed && is_tensor(given)) Py_SETREF(seed, Py_NewRef(given));
        ok = seed && sweep.seed(node, seed);
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
    PyObject* out = PyTuple_New(static_cast<Py_ssize_t>(inputs.size()));
    for (size_t k = 0; out && k < inputs.size(); ++k) {
        const Source& src = sources[k];
        PyObject* item;
        if (src.node == UINT32_MAX || !sweep.reached_node(src.node)) {
            if (!allow_unused) {
                PyObject* label = label_text(src.tensor);
                PyErr_Format(PyExc_RuntimeError,
                             "grad: input %zd ('%S') does not appear in the graph of the "
                             "outputs. Pass allow_unused=True to get None for it.",
                             static_cast<Py_ssize_t>(k), label ? label : Py_None);
                Py_XDECREF(label);
                Py_CLEAR(out);
                break;
            }
            item = Py_NewRef(Py_None);
        } else {
            item = tensor_result(tape, sweep, src);
        }
        if (!item) {
            Py_CLEAR(out);
            break;
        }
        PyTuple_SET_ITEM(out, static_cast<Py_ssize_t>(k), item);
    }
    if (out && !retain_graph) sweep.free_traversed();
    return out;
}

}  // namespace

bool backward(PyObject* target_obj, PyObject* gradient, bool retain_graph, bool create_graph) {
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
    PyObject* seed = backward_seed(value_layout(*tape, node, target), gradient, "backward: gradient");
    if (!seed) return false;
    if (create_graph && is_tensor(gradient)) Py_SETREF(seed, Py_NewRef(gradient));
    return create_graph ? backward_with<GraphSweep>(*tape, node, seed, retain_graph)
                        : backward_with<Sweep>(*tape, node, seed, retain_graph);
}

PyObject* grad(PyObject* outputs_obj, PyObject* inputs_obj, PyObject* grad_outputs,
               bool retain_graph, bool create_graph, bool allow_unused) {
    std::vector<TensorObject*> outputs = tensors_of(outputs_obj, "grad: outputs");
    if (outputs.empty()) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "grad: outputs is empty");
        return nullptr;
    }
    std::vector<TensorObject*> inputs = tensors_of(inputs_obj, "grad: inputs");
    if (inputs.empty()) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "grad: inputs is empty");
        return nullptr;
    }
    for (size_t k = 0; k < inputs.size(); ++k)
        if (!constant_source_error("grad", static_cast<Py_ssize_t>(k), inputs[k])) return nullptr;
    std::vector<PyObject*> seeds_given(outputs.size(), Py_None);
    PyObject* seeds_seq = nullptr;
    if (grad_outputs != Py_None) {
        seeds_seq = is_tensor(grad_outputs) || PyArray_Check(grad_outputs) || PyFloat_Check(grad_outputs)
                        ? PyTuple_Pack(1, grad_outputs)
                        : PySequence_Tuple(grad_outputs);
        if (!seeds_seq) return nullptr;
        if (PyTuple_GET_SIZE(seeds_seq) != static_cast<Py_ssize_t>(outputs.size())) {
            PyErr_Format(PyExc_ValueError, "grad: %zd grad_outputs for %zd outputs",
                         PyTuple_GET_SIZE(seeds_seq), static_cast<Py_ssize_t>(outputs.size()));
            Py_DECREF(seeds_seq);
            return nullptr;
        }
        for (size_t k = 0; k < outputs.size(); ++k)
            seeds_given[k] = PyTuple_GET_ITEM(seeds_seq, static_cast<Py_ssize_t>(k));
    }
    Tape* tape = current_tape();
    PyObject* out = nullptr;
    if (tape) {
        tape->maybe_reclaim();
        out = create_graph
                  ? grad_with<GraphSweep>(*tape, outputs, inputs, seeds_given, retain_graph, allow_unused)
                  : grad_with<Sweep>(*tape, outputs, inputs, seeds_given, retain_graph, allow_unused);
    }
    Py_XDECREF(seeds_seq);
    return out;
}

}  // namespace tapegrad
