// The tape: records as rows (tape_rows.hpp) and the parts that keep them:
// labels, lifetime, foreign tensors and the sweep's scratch. Each part holds
// its state privately and states its invariants; the Tape ties them together
// where one event touches several (a row pushed, a row freed, a compaction,
// a reset), so that they stay in step.
#pragma once

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <cstdint>
#include <vector>

#include "ops.hpp"
#include "pool.hpp"
#include "row_map.hpp"
#include "sweep_scratch.hpp"
#include "tape_foreign.hpp"
#include "tape_labels.hpp"
#include "tape_lifetime.hpp"
#include "tape_rows.hpp"

namespace tapegrad {

class Trace;

class Tape {
public:
    Tape();
    ~Tape();
    Tape(const Tape&) = delete;
    Tape& operator=(const Tape&) = delete;

    RowStore& rows() { return rows_; }
    const RowStore& rows() const { return rows_; }
    Labels& labels() { return labels_; }
    const Labels& labels() const { return labels_; }
    Lifetime& lifetime() { return lifetime_; }
    const Lifetime& lifetime() const { return lifetime_; }
    ForeignTensors& foreign() { return foreign_; }
    const ForeignTensors& foreign() const { return foreign_; }
    // Note [Sweep scratch].
    SweepScratch& scratch() { return scratch_; }
    const SweepScratch& scratch() const { return scratch_; }
    // The tape's current epoch (Lifetime): tensors compare their stored
    // epoch with it to know whether their node is still here.
    uint64_t epoch() const { return lifetime_.epoch(); }

    // Grad mode: false inside no_grad(), where ops record nothing. It is the
    // thread's, as in PyTorch, so it lives on the thread's default tape: a
    // `with tapegrad.Tape()` does not change it.
    bool& grad_mode() { return pushed_on_ ? pushed_on_->grad_enabled_ : grad_enabled_; }
    // detect_anomaly(), per thread as grad mode is (Note [Anomaly mode]).
    // anomaly_ever: whether any thread ever turned it on (a cheaper first test
    // for every op recorded).
    bool& anomaly_mode() { return pushed_on_ ? pushed_on_->detect_anomaly_ : detect_anomaly_; }
    static inline bool anomaly_ever = false;

    // Note [Compiled tapes] (replay.hpp): the trace that owns this tape, or
    // nullptr; `tracing` while that trace records f (on the thread that has
    // this tape pushed). A trace's rows are its program: never reclaimed,
    // compacted or freed.
    Trace* trace = nullptr;
    bool tracing = false;
    // How many tapes are recording a trace now, on any thread: 0 spares
    // every Tensor.data read and op the look at the current tape.
    static inline int tracing_count = 0;

    BufferPool pool;  // Note [Buffer pool]
    // Note [Temporaries]: counted for tests.
    void note_temporary_reused() { ++temporaries_reused_; }
    size_t temporaries_reused() const { return temporaries_reused_; }

    // Appends a row; returns its node id, or UINT32_MAX with MemoryError set.
    // Always inlined: it is on every recorded op's path, and the link-time
    // inliner otherwise leaves it out of line once the program grows.
    TAPEGRAD_ALWAYS_INLINE uint32_t push(uint8_t code, uint8_t row_flags, uint32_t a, uint32_t b, Value v) {
        if (rows_.size() >= UINT32_MAX - 1) return overflow();
        const uint32_t row = rows_.push(code, row_flags, a, b, v);
        lifetime_.push_row();
        if (anomaly_ever && RowStore::is_operation(code) && anomaly_mode()) note_origin(row);
        return row;
    }
    // Note [Anomaly mode]: keeps where the user's code recorded op `row`.
    void note_origin(uint32_t row);

    // Note [Reclaiming records]: the live counts are the lifetime's; whether
    // a row is freed is its flag.
    void add_live(uint32_t node) { lifetime_.add_live(node, rows_.flags(node) & F_FREED); }
    // The first live tensor of a row just pushed: no checks needed.
    void add_live_new_row(uint32_t node) { lifetime_.add_live_new_row(node); }
    void drop_live(uint32_t node) {
        if (lifetime_.counts(node)) lifetime_.drop_live(node, rows_.flags(node) & F_FREED);
    }
    // A backward() that did not retain the graph traversed `row`.
    void mark_freed(uint32_t row) {
        if (rows_.flags(row) & F_FREED) return;
        rows_.mark_freed(row);
        lifetime_.row_freed(row);
    }
    // At a safe point: drops the records when nothing can use them again, or
    // compacts a large tape to what live tensors can reach (Note [Compaction]).
    // The common case is the first test.
    void maybe_reclaim() {
        const size_t n = rows_.size(), bytes = rows_.array_bytes();
        if (!lifetime_.may_reclaim(n, bytes)) return;
        if (n == 0 || scratch_.sweeping() || lifetime_.pinned() || rows_.label_records() != 0 || trace) return;
        if (lifetime_.all_dead()) {
            if (lifetime_.should_reset(n, bytes)) reset(false);
        } else if (lifetime_.should_compact(n, bytes)) {
            compact();
        }
    }
    // Note [Compaction]: keeps what live tensors reach, each part renumbered
    // by the same row map (Note [Row map]).
    void compact();

    // The register_hook functions of a row's tensor (borrowed), or nullptr.
    // Rows of leaves and foreign tensors are hooked when their tensor has
    // hooks, whatever their F_HOOKED flag says (hooked()).
    bool hooked(uint32_t row) const {
        const uint8_t code = rows_.op(row);
        return (rows_.flags(row) & F_HOOKED) || ((code == OP_LEAF || code == OP_STALE) && hooks_of(row));
    }
    PyObject* hooks_of(uint32_t row) const;

    // Empties the tape (keeping its buffers), takes a new epoch, and
    // restarts labels at tensor_0.
    void clear() { reset(true); }
    // Empties the tape and takes a new epoch; restarts labels if asked.
    void reset(bool restart_labels);

private:
    friend bool push_tape(Tape* tape);
    friend bool pop_tape(Tape* tape);
    friend Tape* current_tape();

    static uint32_t overflow();
    // The rows live tensors reach, and the records of kept outputs (Note [Compaction]).
    std::vector<uint8_t> reachable_rows() const;

    RowStore rows_;
    Labels labels_;
    Lifetime lifetime_;
    ForeignTensors foreign_;
    SweepScratch scratch_;
    bool grad_enabled_ = true;
    bool detect_anomaly_ = false;
    size_t temporaries_reused_ = 0;
    // On a thread's default tape: the tapes pushed by `with tapegrad.Tape()`,
    // innermost last; ops record on the innermost (current_tape()).
    std::vector<Tape*> pushed_;
    Tape* pushed_on_ = nullptr;  // on a pushed tape: the default tape it sits on
};

// Note [Tape and tensors]
// The tape holds tensors (leaves that require grad, foreign tensors, a
// Function's saved handles) as plain objects and does not know their layout:
// tensor.hpp includes tape.hpp, never the reverse. What the tape needs of a
// tensor it asks through these, which tensor.cpp defines.
// The register_hook functions of a tensor (borrowed), or nullptr when it has none.
PyObject* tensor_hooks(PyObject* tensor);
// After a compaction from `old_epoch`: a leaf the tape holds, bound to the
// old rows, is bound to its row's new id (or to its identity's, flagged
// updated, when only that is kept), or unbound.
void rebind_leaf(Tape& tape, PyObject* leaf, uint64_t old_epoch, const RowMap& map);
// After a compaction from `old_epoch`: a saved handle of a kept record
// (Note [Saved tensors]) is bound to `row`, its row's new id.
void rebind_saved_handle(Tape& tape, PyObject* handle, uint64_t old_epoch, uint32_t row);

// The tape the calling thread records on (the innermost pushed tape, else its
// default tape), or nullptr with a Python error set.
Tape* current_tape();

// `with tapegrad.Tape()`: makes `tape` the calling thread's current tape until
// popped; pops must come in reverse order. False with an error set.
bool push_tape(Tape* tape);
bool pop_tape(Tape* tape);

// Note [Compiled tapes] (replay.hpp): whether `what` (a value leaving the
// tape into Python, "Tensor.data", ...) may happen now: true unless the
// calling thread's tape is recording a trace, where it raises TraceError and
// returns false. Cheap when no trace records anywhere (replay.cpp defines it).
bool allowed_while_tracing_slow(const char* what);
inline bool allowed_while_tracing(const char* what) {
    return Tape::tracing_count == 0 || allowed_while_tracing_slow(what);
}

// The last tape current_tape() returned (its own cache; GIL-protected).
extern Tape* last_tape;

// The live tape (of any thread) whose current epoch is `epoch`, or nullptr.

// Never creates a tape or sets an error (deallocators use it). Epochs are
// unique, so the cached tape is right whatever thread asks.
Tape* tape_of_epoch_slow(uint64_t epoch);
inline Tape* tape_of_epoch(uint64_t epoch) {
    return last_tape && last_tape->epoch() == epoch ? last_tape : tape_of_epoch_slow(epoch);
}

// When a tensor is made: a process-wide count of tensors made, so that the
// order of two tensors is known whatever thread or tape made them (Note
// [Stale tensors]). The GIL guards it.
extern uint64_t birth_clock;
inline uint64_t next_birth() { return ++birth_clock; }

}  // namespace tapegrad
