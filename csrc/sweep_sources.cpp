#include "sweep_sources.hpp"

#include <algorithm>
#include <set>
#include <unordered_map>

#include "array_ops.hpp"
#include "arrays.hpp"

namespace tapegrad {

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
    if (!!t.foreign().any_stale()) start = 0;  // a stale row below every source must still be checked
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
    const py::object stale_label =
        foreign ? label_text(reinterpret_cast<TensorObject*>(info->foreign))
                : row_label(t, row);
    const py::object source_label = walk.found ? label_text(walk.found) : py::none();
    if (walk.gone && !walk.found)
        PyErr_Format(PyExc_RuntimeError,
                     "backward: the gradient flows through '%S', whose history is gone, so the "
                     "leaves it was computed from would get no gradient. %s Or use t.detach() to "
                     "treat it as a constant.",
                     stale_label.ptr(), HISTORY_GONE);
    else if (walk.gone)
        PyErr_Format(PyExc_RuntimeError,
                     "the gradient with respect to '%S' flows through '%S', whose history is "
                     "gone. %s Or use t.detach() to treat it as a constant.",
                     source_label.ptr(), stale_label.ptr(), HISTORY_GONE);
    else
        PyErr_Format(PyExc_RuntimeError,
                     "the gradient with respect to '%S' flows through '%S', which was recorded "
                     "on another tape (inside a tapegrad.Tape context, or on another thread), "
                     "and the gradient cannot follow it there. Record the whole computation on "
                     "one tape (or ask that tape: tape.gradient), or use t.detach() to treat "
                     "'%S' as a constant.",
                     source_label.ptr(), stale_label.ptr(), stale_label.ptr());
    return false;
}

}  // namespace tapegrad
