#include "tape.hpp"

#include "array_ops.hpp"
#include "arrays.hpp"

#include <algorithm>
#include <unordered_map>

namespace tapegrad {

namespace {

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

Tape::Tape() { live_tapes()[epoch()] = this; }

Tape::~Tape() {
    for (uint64_t e : lifetime_.epochs()) live_tapes().erase(e);
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
    const std::vector<PyObject*> old_grads = scratch_.take_array_grads();
    op.clear();
    flags.clear();
    in0.clear();
    in1.clear();
    val.clear();
    consts.clear();
    op_rows.clear();
    op_rows_scanned = 0;
    n_ops = 0;
    label_records = 0;
    array_bytes = 0;
    foreign_.clear(old.references);
    for (uint64_t e : lifetime_.epochs()) live_tapes().erase(e);
    lifetime_.clear();
    live_tapes()[epoch()] = this;
    // Keep the capacity of what is refilled at the same pace next time.
    arrays.reserve(old.arrays.capacity());
    labels_.clear(restart_labels);  // can drop a label holding a tensor: after the rest
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
    for (PyObject* r : references) Py_DECREF(r);
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
        const ForeignTensors::StaleRow* info = foreign_.stale_row(row);
        tensor = info ? info->foreign : nullptr;
    }
    if (tensor) return tensor_hooks(tensor);
    auto it = row_hooks.find(row);
    return it == row_hooks.end() ? nullptr : it->second;
}

std::vector<uint8_t> Tape::reachable_rows() const {
    const size_t n = op.size();
    // From the top down: a row is kept if a live tensor stands on it or a kept
    // row reads it; a user record if one of its outputs is kept.
    std::vector<uint8_t> keep(n, 0);
    for (size_t i = n; i-- > 0;) {
        const uint32_t r = static_cast<uint32_t>(i);
        const uint8_t code = op[r];
        if (code == OP_CUSTOM) {
            const UserRecord& u = user_records[in0[r]];
            for (uint32_t o : u.outputs) keep[r] |= keep[o] | lifetime_.has_live(o);
            if (keep[r]) {
                for (uint32_t o : u.outputs) keep[o] = 1;
                for (uint32_t x : u.inputs) keep[x] = 1;
                for (uint32_t x : u.saved_rows) keep[x] = 1;
            }
            continue;
        }
        keep[r] |= lifetime_.has_live(r);
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
    return keep;
}

void Tape::remap_rows(const RowMap& map, OwnedRefs& old) {
    constexpr uint32_t NONE = UINT32_MAX;
    std::vector<uint32_t> const_map(consts.size(), NONE), array_map(arrays.size(), NONE),
        leaf_map(leaf_tensors.size(), NONE);
    std::vector<double> new_consts;
    OwnedRefs fresh;  // what the compacted rows will own
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
    std::vector<uint8_t> new_op, new_flags;
    std::vector<uint32_t> new_in0, new_in1;
    std::vector<Value> new_val;
    for (size_t i = 0; i < map.old_size(); ++i) {
        if (!map.kept(i)) continue;
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
            for (uint32_t& x : u.inputs) x = map[x];
            for (uint32_t& o : u.outputs) o = map[o];
            for (uint32_t& x : u.saved_rows) x = map[x];
            u.record = Py_NewRef(u.record);
            for (PyObject* h : u.saved) Py_INCREF(h);
            a = static_cast<uint32_t>(fresh.user_records.size());
            v.index = a;
            fresh.user_records.push_back(std::move(u));
        } else if (code >= OP_COUNT) {  // an array op
            ArrayRecord ar = array_records[a];
            for (int64_t& x : ar.inputs)
                x = x >= 0 ? static_cast<int64_t>(map[static_cast<size_t>(x)])
                           : -static_cast<int64_t>(array_slot(static_cast<uint64_t>(-x - 1))) - 1;
            ar.params = Py_NewRef(ar.params);
            a = static_cast<uint32_t>(fresh.array_records.size());
            fresh.array_records.push_back(std::move(ar));
        } else if (code == OP_VERSION) {
            a = map[a];
        } else if (code > OP_STALE) {
            a = (f & F_A_NUMBER) ? const_slot(a) : (f & F_A_ARRAY) ? array_slot(a) : map[a];
            if (op_arity(code) == 2)
                b = (f & F_B_NUMBER) ? const_slot(b) : (f & F_B_ARRAY) ? array_slot(b) : map[b];
        }
        new_op.push_back(code);
        new_flags.push_back(f);
        new_in0.push_back(a);
        new_in1.push_back(b);
        new_val.push_back(v);
    }
    // Side tables keyed by row.
    for (const auto& [row, hooks] : row_hooks)
        if (map.kept(row)) fresh.row_hooks[map[row]] = Py_NewRef(hooks);
    for (const auto& [row, origin] : row_origins)
        if (map.kept(row)) fresh.row_origins[map[row]] = Py_NewRef(origin);
    op.swap(new_op);
    flags.swap(new_flags);
    in0.swap(new_in0);
    in1.swap(new_in1);
    val.swap(new_val);
    consts.swap(new_consts);
    OwnedRefs released = swap_refs(std::move(fresh));
    released.references = std::move(old.references);
    old = std::move(released);
    op_rows.clear();
    op_rows_scanned = 0;
    n_ops = 0;
    for (uint8_t code : op) n_ops += code > OP_STALE || code == OP_CUSTOM;
    array_bytes = 0;
    for (PyObject* a : arrays) array_bytes += data_bytes(a);
    for (const ArrayRecord& r : array_records) array_bytes += params_bytes(r.params);
}

void Tape::compact() {
    const RowMap map(reachable_rows());
    if (lifetime_.compaction_gains_little(map.new_size(), map.old_size(), array_bytes)) return;
    OwnedRefs old;  // released once every part is renumbered (it may run Python code)
    // Parts that read the old rows (identity_row) go first.
    foreign_.remap(map, [this](uint32_t row) { return identity_row(row); }, old.references);
    const uint64_t old_epoch = lifetime_.remap(map);
    live_tapes()[epoch()] = this;  // the old epoch stays registered: translate() serves it
    for (PyObject* leaf : leaf_tensors) rebind_leaf(*this, leaf, old_epoch, map);
    labels_.remap(map, old.references);
    remap_rows(map, old);
    for (UserRecord& u : user_records)
        for (size_t k = 0; k < u.saved.size(); ++k) rebind_saved_handle(*this, u.saved[k], old_epoch, u.saved_rows[k]);
    lifetime_.compacted(array_bytes);
    old.release(pool);
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
