#include "tape.hpp"

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
    if (pushed_on_) {  // destroyed while pushed (a context never exited): unlink it
        auto& stack = pushed_on_->pushed_;
        stack.erase(std::remove(stack.begin(), stack.end(), this), stack.end());
    }
    for (Tape* t : pushed_) t->pushed_on_ = nullptr;
    reset(true);
}

uint32_t Tape::overflow() {
    PyErr_SetString(PyExc_MemoryError,
                    "tapegrad: the tape holds 2**32 - 1 records, its limit; call clear_history()");
    return UINT32_MAX;
}

void Tape::reset(bool restart_labels) {
    // Reset first, release after: releasing can run arbitrary Python code
    // (a __del__), which must find an empty, consistent tape.
    const bool recorded = !rows_.empty();
    const std::vector<PyObject*> old_grads = scratch_.take_array_grads();
    OwnedRefs old;
    rows_.clear(old);
    foreign_.clear(old.references);
    for (uint64_t e : lifetime_.epochs()) live_tapes().erase(e);
    lifetime_.clear();
    live_tapes()[epoch()] = this;
    labels_.clear(restart_labels);  // can drop a label holding a tensor: after the rest
    for (PyObject* g : old_grads) pool.give(g);
    old.release(pool);
    // A reset of an empty tape (clear_history() after a backward that reset
    // it) ends no graph: it does not age the pool.
    if (recorded) pool.next_generation();
}

PyObject* Tape::hooks_of(uint32_t row) const {
    // A tensor the tape knows (a leaf it holds, a foreign tensor) has its hooks
    // read from it: they may have been registered after it entered this tape.
    PyObject* tensor = nullptr;
    const uint8_t code = rows_.op(row);
    if (code == OP_LEAF && rows_.in0(row) != UINT32_MAX) {
        tensor = rows_.leaf_tensor(rows_.in0(row));
    } else if (code == OP_STALE) {
        const ForeignTensors::StaleRow* info = foreign_.stale_row(row);
        tensor = info ? info->foreign : nullptr;
    }
    return tensor ? tensor_hooks(tensor) : rows_.row_hooks(row);
}

std::vector<uint8_t> Tape::reachable_rows() const {
    const size_t n = rows_.size();
    // From the top down: a row is kept if a live tensor stands on it or a kept
    // row reads it; a user record if one of its outputs is kept.
    std::vector<uint8_t> keep(n, 0);
    for (size_t i = n; i-- > 0;) {
        const uint32_t r = static_cast<uint32_t>(i);
        const uint8_t code = rows_.op(r);
        if (code == OP_CUSTOM) {
            const UserRecord& u = rows_.user_record(rows_.in0(r));
            for (uint32_t o : u.outputs) keep[r] |= keep[o] | lifetime_.has_live(o);
            if (keep[r]) {
                for (uint32_t o : u.outputs) keep[o] = 1;
                for (uint32_t x : u.inputs) keep[x] = 1;
                for (uint32_t x : u.saved_rows) keep[x] = 1;
            }
            continue;
        }
        keep[r] |= lifetime_.has_live(r);
        if (keep[r] && code == OP_VERSION) keep[rows_.in0(r)] = 1;  // its gradient goes there
        if (!keep[r] || code <= OP_STALE) continue;
        if (code >= OP_COUNT) {  // an array op
            for (int64_t x : rows_.array_record(rows_.in0(r)).inputs)
                if (x >= 0) keep[static_cast<size_t>(x)] = 1;
            continue;
        }
        if (!(rows_.flags(r) & F_A_CONST)) keep[rows_.in0(r)] = 1;
        if (op_arity(code) == 2 && !(rows_.flags(r) & F_B_CONST)) keep[rows_.in1(r)] = 1;
    }
    return keep;
}

void Tape::compact() {
    const RowMap map(reachable_rows());
    if (lifetime_.compaction_gains_little(map.new_size(), map.old_size(), rows_.array_bytes())) return;
    OwnedRefs old;  // released once every part is renumbered (it may run Python code)
    // Parts that read the old rows (identity_row) go first.
    foreign_.remap(map, [this](uint32_t row) { return rows_.identity_row(row); }, old.references);
    const uint64_t old_epoch = lifetime_.remap(map);
    live_tapes()[epoch()] = this;  // the old epoch stays registered: translate() serves it
    for (PyObject* leaf : rows_.leaf_tensors()) rebind_leaf(*this, leaf, old_epoch, map);
    labels_.remap(map, old.references);
    rows_.remap(map, old);
    for (const UserRecord& u : rows_.user_records())
        for (size_t k = 0; k < u.saved.size(); ++k) rebind_saved_handle(*this, u.saved[k], old_epoch, u.saved_rows[k]);
    lifetime_.compacted(rows_.array_bytes());
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
    if (base->pushed_on_) base = base->pushed_on_;
    if (tape->pushed_on_ || tape == base) {
        PyErr_SetString(PyExc_RuntimeError, "tapegrad.Tape: this tape is already recording");
        return false;
    }
    base->pushed_.push_back(tape);
    tape->pushed_on_ = base;
    last_tape = nullptr;
    cached_state = nullptr;
    return true;
}

bool pop_tape(Tape* tape) {
    Tape* base = tape->pushed_on_;
    if (!base || base->pushed_.empty() || base->pushed_.back() != tape) {
        PyErr_SetString(PyExc_RuntimeError,
                        "tapegrad.Tape: contexts must be exited in the reverse order they were "
                        "entered, on the thread that entered them");
        return false;
    }
    base->pushed_.pop_back();
    tape->pushed_on_ = nullptr;
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
    if (!tape->pushed_.empty()) tape = tape->pushed_.back();  // inside `with tapegrad.Tape()`
    cached_state = state;
    last_tape = tape;
    return tape;
}

}  // namespace tapegrad
