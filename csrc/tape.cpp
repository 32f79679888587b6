#include "tape.hpp"

#include "array_ops.hpp"
#include "arrays.hpp"
#include "tensor.hpp"

#include <algorithm>
#include <atomic>
#include <string>
#include <unordered_map>

namespace tapegrad {

namespace {

// num_nodes entries for tensors with no node (constants) keep the previous
// entry's node with this bit set, so the column stays sorted.
constexpr uint32_t NO_NODE_BIT = 0x80000000u;

void destroy_tape(PyObject* capsule) {
    delete static_cast<Tape*>(PyCapsule_GetPointer(capsule, "tapegrad.tape"));
}

// The last caller's thread state and tape. Every caller holds the GIL, so a
// plain static is safe, and cheaper than thread_local in a shared library.
PyThreadState* cached_state = nullptr;

}  // namespace

Tape* last_tape = nullptr;
uint64_t birth_clock = 0;

namespace {
// Every live tape by its current epoch (Note [Foreign tensors]).
std::unordered_map<uint64_t, Tape*>& live_tapes() {
    static auto* tapes = new std::unordered_map<uint64_t, Tape*>();
    return *tapes;
}
}  // namespace

uint64_t next_epoch() {
    static std::atomic<uint64_t> last{0};
    return ++last;
}

Tape::Tape()
    : epoch(next_epoch()), node_by_label(PyDict_New()), label_by_node(PyDict_New()) {
    live_tapes()[epoch] = this;
}

Tape::~Tape() {
    live_tapes().erase(epoch);
    for (const auto& [old, moved] : renamed) live_tapes().erase(old);
    if (last_tape == this) {
        last_tape = nullptr;
        cached_state = nullptr;
    }
    if (pushed_on) {  // destroyed while pushed (a context never exited): unlink it
        auto& stack = pushed_on->pushed;
        stack.erase(std::remove(stack.begin(), stack.end(), this), stack.end());
    }
    for (Tape* t : pushed) t->pushed_on = nullptr;
    reset(true);
    Py_XDECREF(node_by_label);
    Py_XDECREF(label_by_node);
}

size_t Tape::data_bytes(PyObject* arr) {
    if (!PyArray_Check(arr)) return 0;  // an array op's constant number
    auto* a = reinterpret_cast<PyArrayObject*>(arr);
    for (int d = 0; d < PyArray_NDIM(a); ++d)
        if (PyArray_STRIDES(a)[d] == 0 && PyArray_DIMS(a)[d] > 1) return PyArray_ITEMSIZE(a);
    return static_cast<size_t>(PyArray_NBYTES(a));
}

size_t Tape::params_bytes(PyObject* params) {
    if (PyArray_Check(params)) return data_bytes(params);
    if (!PyTuple_Check(params) && !PyList_Check(params)) return 0;
    size_t total = 0;
    for (Py_ssize_t k = 0; k < PySequence_Fast_GET_SIZE(params); ++k)
        total += params_bytes(PySequence_Fast_GET_ITEM(params, k));
    return total;
}

uint32_t Tape::overflow() {
    PyErr_SetString(PyExc_MemoryError,
                    "tapegrad: the tape holds 2**32 - 1 records, its limit; call clear_history()");
    return UINT32_MAX;
}

void Tape::set_num_node(int64_t num, uint32_t node) {
    if (num - num_base == static_cast<int64_t>(num_nodes.size()) && num_overflow.empty()) {
        if (node == UINT32_MAX)
            node = num_nodes.empty() ? NO_NODE_BIT : (num_nodes.back() | NO_NODE_BIT);
        num_nodes.push_back(node);
    } else if (node != UINT32_MAX) {
        num_overflow[num] = node;
    } else {
        num_overflow.erase(num);
    }
}

uint32_t Tape::node_of_num(int64_t num) const {
    if (!num_overflow.empty()) {
        auto it = num_overflow.find(num);
        if (it != num_overflow.end()) return it->second;
    }
    const int64_t index = num - num_base;
    if (index >= 0 && index < static_cast<int64_t>(num_nodes.size()) &&
        !(num_nodes[static_cast<size_t>(index)] & NO_NODE_BIT))
        return num_nodes[static_cast<size_t>(index)];
    return UINT32_MAX;
}

PyObject* Tape::label_of(uint32_t node) const {
    PyObject* key = PyLong_FromUnsignedLong(node);
    if (!key) return nullptr;
    PyObject* label = PyDict_GetItemWithError(label_by_node, key);
    Py_DECREF(key);
    if (label) return Py_NewRef(label);
    if (PyErr_Occurred()) return nullptr;
    auto masked_less = [](uint32_t entry, uint32_t n) { return (entry & ~NO_NODE_BIT) < n; };
    auto it = std::lower_bound(num_nodes.begin(), num_nodes.end(), node, masked_less);
    if (it != num_nodes.end() && *it == node)
        return PyUnicode_FromFormat("tensor_%lld",
                                    static_cast<long long>(num_base + (it - num_nodes.begin())));
    for (const auto& [num, n] : num_overflow)
        if (n == node) return PyUnicode_FromFormat("tensor_%lld", static_cast<long long>(num));
    Py_RETURN_NONE;
}

uint32_t Tape::node_of_label(PyObject* label) const {
    PyObject* node = PyDict_GetItemWithError(node_by_label, label);
    if (node) return static_cast<uint32_t>(PyLong_AsUnsignedLong(node));
    if (PyErr_Occurred()) {
        PyErr_Clear();
        return UINT32_MAX;
    }
    // A default label: tensor_<digits>.
    Py_ssize_t size = 0;
    const char* text = PyUnicode_AsUTF8AndSize(label, &size);
    if (!text) {
        PyErr_Clear();
        return UINT32_MAX;
    }
    std::string s(text, static_cast<size_t>(size));
    const std::string prefix = "tensor_";
    if (s.size() <= prefix.size() || s.compare(0, prefix.size(), prefix) != 0) return UINT32_MAX;
    std::string digits = s.substr(prefix.size());
    if (digits.size() > 18 || !std::all_of(digits.begin(), digits.end(), ::isdigit))
        return UINT32_MAX;
    const int64_t num = std::stoll(digits);
    const uint32_t own = node_of_num(num);
    auto it = foreign_numbers.find(num);
    if (it == foreign_numbers.end()) return own;
    return own == UINT32_MAX || own == it->second ? it->second : AMBIGUOUS;
}

const std::vector<uint32_t>& Tape::operation_rows() {
    for (; op_rows_scanned < op.size(); ++op_rows_scanned) {
        uint8_t code = op[op_rows_scanned];
        if (code == OP_CUSTOM || code > OP_STALE)
            op_rows.push_back(static_cast<uint32_t>(op_rows_scanned));
    }
    return op_rows;
}

void Tape::reset(bool restart_labels) {
    // Reset first, release after: releasing can run arbitrary Python code
    // (a __del__), which must find an empty, consistent tape.
    OwnedRefs old = swap_refs(OwnedRefs());
    const bool recorded = !op.empty();
    std::vector<PyObject*> old_grads;
    old_grads.swap(array_grad);
    op.clear();
    flags.clear();
    in0.clear();
    in1.clear();
    val.clear();
    consts.clear();
    stale_rows.clear();
    foreign_numbers.clear();
    num_nodes.clear();
    num_overflow.clear();
    live.clear();
    live_total = live_freed = 0;
    freed_any = pinned = false;
    op_rows.clear();
    op_rows_scanned = 0;
    n_ops = 0;
    label_records = 0;
    if (restart_labels) counter = 0;
    num_base = counter;
    live_tapes().erase(epoch);
    for (const auto& [old, moved] : renamed) live_tapes().erase(old);
    renamed.clear();
    compact_at = RECLAIM_ROWS;
    compact_bytes = RECLAIM_BYTES;
    array_bytes = 0;
    epoch = next_epoch();
    live_tapes()[epoch] = this;
    foreign.clear();
    retired.clear();
    // Keep the capacity of what is refilled at the same pace next time.
    arrays.reserve(old.arrays.capacity());
    if (node_by_label) PyDict_Clear(node_by_label);
    if (label_by_node) PyDict_Clear(label_by_node);
    for (PyObject* g : old_grads) pool.give(g);
    old.release(pool);
    // A reset of an empty tape (clear_history() after a backward that reset
    // it) ends no graph: it does not age the pool.
    if (recorded) pool.next_generation();
}

OwnedRefs Tape::swap_refs(OwnedRefs refs) {
    arrays.swap(refs.arrays);
    user_records.swap(refs.user_records);
    array_records.swap(refs.array_records);
    leaf_tensors.swap(refs.leaf_tensors);
    row_hooks.swap(refs.row_hooks);
    row_origins.swap(refs.row_origins);
    foreign_refs.swap(refs.foreign_refs);
    retired_refs.swap(refs.retired_refs);
    return refs;
}

void OwnedRefs::release(BufferPool& pool) {
    for (PyObject* a : arrays) pool.give(a, /*cold=*/true);  // read before the sweep's last buffers
    for (UserRecord& r : user_records) {
        Py_DECREF(r.record);
        for (PyObject* h : r.saved) Py_DECREF(h);
    }
    for (ArrayRecord& r : array_records) Py_DECREF(r.params);
    for (PyObject* leaf : leaf_tensors) Py_DECREF(leaf);
    for (auto& [row, hooks] : row_hooks) Py_DECREF(hooks);
    for (auto& [row, origin] : row_origins) Py_DECREF(origin);
    for (PyObject* t : foreign_refs) Py_DECREF(t);
    for (PyObject* t : retired_refs) Py_DECREF(t);
    *this = OwnedRefs();
}

std::vector<uint32_t> Tape::inputs_of(uint32_t row) const {
    const uint8_t code = op[row];
    if (code == OP_CUSTOM) return user_records[in0[row]].inputs;
    if (code == OP_VERSION) return {in0[row]};
    std::vector<uint32_t> nodes;
    if (is_array_op(code)) {
        for (int64_t in : array_records[in0[row]].inputs)
            if (in >= 0) nodes.push_back(static_cast<uint32_t>(in));
    } else if (code > OP_STALE) {
        if (!(flags[row] & F_A_CONST)) nodes.push_back(in0[row]);
        if (op_arity(code) == 2 && !(flags[row] & F_B_CONST)) nodes.push_back(in1[row]);
    }
    return nodes;
}

PyObject* Tape::hooks_of(uint32_t row) const {
    // A tensor the tape knows (a leaf it holds, a foreign tensor) has its hooks
    // read from it: they may have been registered after it entered this tape.
    PyObject* tensor = nullptr;
    if (op[row] == OP_LEAF && in0[row] != UINT32_MAX) {
        tensor = leaf_tensors[in0[row]];
    } else if (op[row] == OP_STALE) {
        auto info = stale_rows.find(row);
        tensor = info == stale_rows.end() ? nullptr : info->second.foreign;
    }
    if (tensor) {
        PyObject* hooks = is_tensor(tensor) ? reinterpret_cast<TensorObject*>(tensor)->hooks : nullptr;
        return hooks && PyList_GET_SIZE(hooks) ? hooks : nullptr;
    }
    auto it = row_hooks.find(row);
    return it == row_hooks.end() ? nullptr : it->second;
}

void Tape::compact() {
    const size_t n = op.size();
    // Mark, from the top down: a row is kept if a live tensor stands on it or
    // a kept row reads it; a user record if one of its outputs is kept.
    std::vector<uint8_t> keep(n, 0);
    for (size_t i = n; i-- > 0;) {
        const uint32_t r = static_cast<uint32_t>(i);
        const uint8_t code = op[r];
        if (code == OP_CUSTOM) {
            const UserRecord& u = user_records[in0[r]];
            for (uint32_t o : u.outputs) keep[r] |= keep[o] | (live[o] > 0);
            if (keep[r]) {
                for (uint32_t o : u.outputs) keep[o] = 1;
                for (uint32_t x : u.inputs) keep[x] = 1;
                for (uint32_t x : u.saved_rows) keep[x] = 1;
            }
            continue;
        }
        keep[r] |= live[r] > 0;
        if (keep[r] && code == OP_VERSION) keep[in0[r]] = 1;  // its gradient goes there
        if (!keep[r] || code <= OP_STALE) continue;
        if (code >= OP_COUNT) {  // an array op
            for (int64_t x : array_records[in0[r]].inputs)
                if (x >= 0) keep[static_cast<size_t>(x)] = 1;
            continue;
        }
        if (!(flags[r] & F_A_CONST)) keep[in0[r]] = 1;
        if (op_arity(code) == 2 && !(flags[r] & F_B_CONST)) keep[in1[r]] = 1;
    }
    // before[r]: the kept rows below r, which is r's new id when it is kept.
    std::vector<uint32_t> before(n + 1, 0);
    for (size_t r = 0; r < n; ++r) before[r + 1] = before[r] + keep[r];
    const uint32_t kept = before[n];
    if (kept > n / 2 && array_bytes < compact_bytes) {  // little to gain: wait until the tape doubles
        compact_at = std::max(RECLAIM_ROWS, 2 * n);
        return;
    }
    const uint64_t old_epoch = epoch;
    constexpr uint32_t NONE = UINT32_MAX;
    std::vector<uint32_t> const_map(consts.size(), NONE), array_map(arrays.size(), NONE),
        leaf_map(leaf_tensors.size(), NONE);
    std::vector<double> new_consts;
    OwnedRefs fresh;  // what the compacted tape will own
    auto array_slot = [&](uint64_t k) {
        if (array_map[k] == NONE) {
            array_map[k] = static_cast<uint32_t>(fresh.arrays.size());
            fresh.arrays.push_back(Py_NewRef(arrays[k]));
        }
        return array_map[k];
    };
    auto const_slot = [&](uint32_t k) {
        if (const_map[k] == NONE) {
            const_map[k] = static_cast<uint32_t>(new_consts.size());
            new_consts.push_back(consts[k]);
        }
        return const_map[k];
    };
    std::vector<uint8_t> new_op, new_flags, new_live;
    std::vector<uint32_t> new_in0, new_in1;
    std::vector<Value> new_val;
    for (size_t i = 0; i < n; ++i) {
        if (!keep[i]) continue;
        const uint32_t r = static_cast<uint32_t>(i);
        const uint8_t code = op[r], f = flags[r];
        uint32_t a = in0[r], b = in1[r];
        Value v = val[r];
        if (f & F_ARRAY) v.index = array_slot(v.index);
        if (code == OP_LEAF) {
            if (a != NONE) {
                if (leaf_map[a] == NONE) {
                    leaf_map[a] = static_cast<uint32_t>(fresh.leaf_tensors.size());
                    fresh.leaf_tensors.push_back(Py_NewRef(leaf_tensors[a]));
                }
                a = leaf_map[a];
            }
        } else if (code == OP_CUSTOM) {
            UserRecord u = user_records[a];
            for (uint32_t& x : u.inputs) x = before[x];
            for (uint32_t& o : u.outputs) o = before[o];
            for (uint32_t& x : u.saved_rows) x = before[x];
            u.record = Py_NewRef(u.record);
            for (PyObject* h : u.saved) Py_INCREF(h);  // rebound below
            a = static_cast<uint32_t>(fresh.user_records.size());
            v.index = a;
            fresh.user_records.push_back(std::move(u));
        } else if (code >= OP_COUNT) {  // an array op
            ArrayRecord ar = array_records[a];
            for (int64_t& x : ar.inputs)
                x = x >= 0 ? static_cast<int64_t>(before[static_cast<size_t>(x)])
                           : -static_cast<int64_t>(array_slot(static_cast<uint64_t>(-x - 1))) - 1;
            ar.params = Py_NewRef(ar.params);
            a = static_cast<uint32_t>(fresh.array_records.size());
            fresh.array_records.push_back(std::move(ar));
        } else if (code == OP_VERSION) {
            a = before[a];
        } else if (code > OP_STALE) {
            a = (f & F_A_NUMBER) ? const_slot(a) : (f & F_A_ARRAY) ? array_slot(a) : before[a];
            if (op_arity(code) == 2)
                b = (f & F_B_NUMBER) ? const_slot(b) : (f & F_B_ARRAY) ? array_slot(b) : before[b];
        }
        new_op.push_back(code);
        new_flags.push_back(f);
        new_in0.push_back(a);
        new_in1.push_back(b);
        new_val.push_back(v);
        new_live.push_back(live[r]);
    }
    // Tensors of this epoch and of earlier compactions find their new rows.
    std::unordered_map<uint32_t, uint32_t> moved;
    for (size_t r = 0; r < n; ++r)
        if (keep[r] && live[r]) moved[static_cast<uint32_t>(r)] = before[r];
    for (auto& [old, table] : renamed) {
        std::unordered_map<uint32_t, uint32_t> next;
        for (const auto& [from, to] : table)
            if (keep[to]) next[from] = before[to];
        table.swap(next);
    }
    renamed.emplace_back(old_epoch, std::move(moved));
    epoch = next_epoch();
    live_tapes()[epoch] = this;  // the old epoch stays registered: translate() serves it
    // Leaves the tape holds are rebound here directly; dropped ones re-enter on next use.
    for (size_t k = 0; k < leaf_tensors.size(); ++k) {
        if (!is_tensor(leaf_tensors[k])) continue;  // let go of (a Function's output)
        auto* t = reinterpret_cast<TensorObject*>(leaf_tensors[k]);
        if (t->epoch != old_epoch) continue;  // bound to another tape (a foreign row here)
        const uint32_t base = identity_row(*this, t->node);
        if (keep[t->node]) {
            t->epoch = epoch;
            t->node = before[t->node];
        } else if (keep[base]) {
            // Its newest value's row goes, but a graph kept reads an older one:
            // bound to its identity, as a tensor updated since (Note [Versions]).
            t->epoch = epoch;
            t->node = before[base];
            t->flags |= T_UPDATED;
        } else {
            t->epoch = 0;
        }
    }
    // Saved handles of kept records (Note [Saved tensors]) too.
    for (UserRecord& u : fresh.user_records)
        for (size_t k = 0; k < u.saved.size(); ++k) {
            auto* h = reinterpret_cast<TensorObject*>(u.saved[k]);
            if (h->epoch != old_epoch) continue;
            h->epoch = epoch;
            h->node = u.saved_rows[k];
        }
    // Side tables keyed by row.
    std::unordered_map<uint32_t, StaleRow> new_stale;
    for (const auto& [row, info] : stale_rows)
        if (keep[row]) new_stale[before[row]] = info;
    std::unordered_map<int64_t, uint32_t> new_numbers;
    for (const auto& [num, row] : foreign_numbers)
        if (keep[row]) new_numbers[num] = before[row];
    for (const auto& [row, hooks] : row_hooks)
        if (keep[row]) fresh.row_hooks[before[row]] = Py_NewRef(hooks);
    for (const auto& [row, origin] : row_origins)
        if (keep[row]) fresh.row_origins[before[row]] = Py_NewRef(origin);
    std::unordered_map<PyObject*, uint32_t> new_foreign;
    for (const auto& [tensor, row] : foreign) {
        // A foreign tensor's newest row may go while its identity stays (Note
        // [Versions]): the next use compares values and pushes a version again.
        const uint32_t kept_row = keep[row] ? row : identity_row(*this, row);
        if (!keep[kept_row]) continue;
        new_foreign[tensor] = before[kept_row];
        fresh.foreign_refs.push_back(Py_NewRef(tensor));
    }
    std::unordered_map<PyObject*, std::vector<uint32_t>> new_retired;
    for (const auto& [tensor, rows] : retired)
        for (uint32_t row : rows) {
            if (!keep[row]) continue;
            auto [it, first] = new_retired.try_emplace(tensor);
            if (first) fresh.retired_refs.push_back(Py_NewRef(tensor));
            it->second.push_back(before[row]);
        }
    // Labels: explicit ones in the dicts, tensor_N through num_nodes (kept sorted).
    PyObject* new_by_label = PyDict_New();
    PyObject* new_by_node = PyDict_New();
    if (new_by_label && new_by_node) {
        PyObject *key, *value;
        Py_ssize_t pos = 0;
        while (PyDict_Next(label_by_node, &pos, &key, &value)) {
            const size_t row = PyLong_AsSize_t(key);
            if (row >= n || !keep[row]) continue;
            PyObject* k = PyLong_FromUnsignedLong(before[row]);
            if (k) PyDict_SetItem(new_by_node, k, value);
            Py_XDECREF(k);
        }
        pos = 0;
        while (PyDict_Next(node_by_label, &pos, &key, &value)) {
            const size_t row = PyLong_AsSize_t(value);
            if (row >= n || !keep[row]) continue;
            PyObject* v2 = PyLong_FromUnsignedLong(before[row]);
            if (v2) PyDict_SetItem(new_by_label, key, v2);
            Py_XDECREF(v2);
        }
    }
    PyErr_Clear();  // a failed label entry only loses a name for display
    for (uint32_t& e : num_nodes) {
        const uint32_t node = e & ~NO_NODE_BIT;
        const bool real = !(e & NO_NODE_BIT) && node < n && keep[node];
        e = real ? before[node] : (before[std::min<size_t>(node, n)] | NO_NODE_BIT);
    }
    size_t dead = 0;  // numbers at the front that name no row any more
    while (dead < num_nodes.size() && (num_nodes[dead] & NO_NODE_BIT)) ++dead;
    num_nodes.erase(num_nodes.begin(), num_nodes.begin() + static_cast<std::ptrdiff_t>(dead));
    num_base += static_cast<int64_t>(dead);
    for (auto it = num_overflow.begin(); it != num_overflow.end();) {
        if (it->second < n && keep[it->second]) {
            it->second = before[it->second];
            ++it;
        } else {
            it = num_overflow.erase(it);
        }
    }
    // Swap in, then release the old references (which may run Python code).
    op.swap(new_op);
    flags.swap(new_flags);
    in0.swap(new_in0);
    in1.swap(new_in1);
    val.swap(new_val);
    live.swap(new_live);
    consts.swap(new_consts);
    OwnedRefs old = swap_refs(std::move(fresh));
    stale_rows.swap(new_stale);
    foreign_numbers.swap(new_numbers);
    foreign.swap(new_foreign);
    retired.swap(new_retired);
    std::swap(node_by_label, new_by_label);
    std::swap(label_by_node, new_by_node);
    op_rows.clear();
    op_rows_scanned = 0;
    n_ops = 0;
    for (uint8_t code : op) n_ops += code > OP_STALE || code == OP_CUSTOM;
    compact_at = std::max(RECLAIM_ROWS, 2 * static_cast<size_t>(kept));
    array_bytes = 0;
    for (PyObject* a : arrays) array_bytes += data_bytes(a);
    for (const ArrayRecord& r : array_records) array_bytes += params_bytes(r.params);
    compact_bytes = std::max(RECLAIM_BYTES, 2 * array_bytes);
    old.release(pool);  // new_by_label and new_by_node now hold the old dicts
    Py_XDECREF(new_by_label);
    Py_XDECREF(new_by_node);
}

Tape* tape_of_epoch_slow(uint64_t epoch) {
    auto it = live_tapes().find(epoch);
    return it == live_tapes().end() ? nullptr : it->second;
}

bool push_tape(Tape* tape) {
    last_tape = nullptr;  // the current tape changes: drop the cache
    cached_state = nullptr;
    Tape* base = current_tape();
    if (!base) return false;
    if (base->pushed_on) base = base->pushed_on;
    if (tape->pushed_on || tape == base) {
        PyErr_SetString(PyExc_RuntimeError, "tapegrad.Tape: this tape is already recording");
        return false;
    }
    base->pushed.push_back(tape);
    tape->pushed_on = base;
    last_tape = nullptr;
    cached_state = nullptr;
    return true;
}

bool pop_tape(Tape* tape) {
    Tape* base = tape->pushed_on;
    if (!base || base->pushed.empty() || base->pushed.back() != tape) {
        PyErr_SetString(PyExc_RuntimeError,
                        "tapegrad.Tape: contexts must be exited in the reverse order they were "
                        "entered, on the thread that entered them");
        return false;
    }
    base->pushed.pop_back();
    tape->pushed_on = nullptr;
    last_tape = nullptr;
    cached_state = nullptr;
    return true;
}

Tape* current_tape() {
    PyThreadState* state = PyThreadState_Get();
    if (state == cached_state && last_tape) return last_tape;
    PyObject* dict = PyThreadState_GetDict();
    if (!dict) {
        PyErr_SetString(PyExc_RuntimeError, "tapegrad: this thread has no Python thread state");
        return nullptr;
    }
    PyObject* capsule = PyDict_GetItemString(dict, "tapegrad.tape");
    Tape* tape;
    if (capsule) {
        tape = static_cast<Tape*>(PyCapsule_GetPointer(capsule, "tapegrad.tape"));
        if (!tape) return nullptr;
    } else {
        // The thread's dict owns the tape, so it is freed (with the GIL held)
        // when the thread's state is cleared.
        tape = new Tape();
        capsule = PyCapsule_New(tape, "tapegrad.tape", destroy_tape);
        if (!capsule) {
            delete tape;
            return nullptr;
        }
        int rc = PyDict_SetItemString(dict, "tapegrad.tape", capsule);
        Py_DECREF(capsule);
        if (rc < 0) return nullptr;
    }
    if (!tape->pushed.empty()) tape = tape->pushed.back();  // inside `with tapegrad.Tape()`
    cached_state = state;
    last_tape = tape;
    return tape;
}

}  // namespace tapegrad
