// The tape: records as rows of flat arrays, and the reverse sweep over them.
//
// Note [Records are nodes]
// Every record produces exactly one node, and a node's id is its row, so the
// tape needs no separate output column and creation order is a topological
// order: the sweep is one loop from the last row down, with no sort and no
// recursion. Rows that are not ops are leaves (a tensor's value with no
// history), stale tensors (see tensor.cpp) and user records (the seed's
// OperationRecord with a Python backward; its row holds no value).
//
// A row costs op 1 + flags 1 + in0 4 + in1 4 + value 8 = 18 bytes, plus 4 for
// the label index while recording and 9 for the sweep's gradient and flag.
// A value is a C double for scalars or an index into `arrays` for ndarrays.
//
// Note [Saved values]
// The tape keeps an array's data only while some backward reads it (each op
// declares what its backward reads: ops.hpp, and array_ops.hpp's `reads_out`).
// An op whose own backward does not read its output records a zero-stride
// "layout" view in its slot: the shape and dtype the sweep needs, no data. If
// a later op's backward reads that value, keep_value puts the real array in
// the slot. So a chain like tanh(x @ w + b) keeps x, w and tanh's output, not
// x @ w or x @ w + b, whose memory is reused at once.
// A constant operand is not a node: in0/in1 then index `consts` (a number) or
// `arrays` (an ndarray), as the row's flags say.
#pragma once

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <cstdint>
#include <unordered_map>
#include <vector>

#include "ops.hpp"
#include "pool.hpp"
#include "row_map.hpp"
#include "sweep_scratch.hpp"
#include "tape_foreign.hpp"
#include "tape_labels.hpp"
#include "tape_lifetime.hpp"

namespace tapegrad {

enum RowFlag : uint8_t {
    F_ARRAY = 1,          // the value is an ndarray: val[i].index into arrays
    F_A_NUMBER = 2,       // operand a is a constant number: in0 indexes consts
    F_A_ARRAY = 4,        // operand a is a constant ndarray: in0 indexes arrays
    F_B_NUMBER = 8,       // likewise for operand b and in1
    F_B_ARRAY = 16,
    F_CUSTOM_OUTPUT = 32,  // a leaf that a user record lists as an output
    F_FREED = 64,          // traversed by a backward() that did not retain the graph
    F_HOOKED = 128         // its tensor has hooks (register_hook) the sweep calls
};
constexpr uint8_t F_A_CONST = F_A_NUMBER | F_A_ARRAY;
constexpr uint8_t F_B_CONST = F_B_NUMBER | F_B_ARRAY;

union Value {
    double number;
    uint64_t index;
};

// The inputs and parameters of an array-op row (array_ops.hpp): an input is
// a node (>= 0) or a constant, -(k + 1) for arrays[k].
struct ArrayRecord {
    std::vector<int64_t> inputs;
    PyObject* params;  // owned tuple
};

// A user record: the seed's OperationRecord appended to operation_history.
struct UserRecord {
    PyObject* record;  // owned: the OperationRecord object itself
    std::vector<uint32_t> inputs, outputs;
    // A Function's saved handles (owned) and their rows (Note [Saved tensors]).
    std::vector<PyObject*> saved;
    std::vector<uint32_t> saved_rows;
    bool by_label;  // appended to operation_history (seed style), not made by a Function
};

// The references a tape owns, moved out in one piece: a reset or a compaction
// first leaves the tape consistent, then releases them (which can run Python
// code, a __del__, that must find a consistent tape).
struct OwnedRefs {
    std::vector<PyObject*> arrays;
    std::vector<UserRecord> user_records;
    std::vector<ArrayRecord> array_records;
    std::vector<PyObject*> leaf_tensors;
    std::unordered_map<uint32_t, PyObject*> row_hooks;
    std::unordered_map<uint32_t, PyObject*> row_origins;
    // Plain references the other parts of the tape let go of, released last.
    std::vector<PyObject*> references;
    // Arrays nobody else holds go to the pool (Note [Buffer pool]); the rest is released.
    void release(BufferPool& pool);
};

class Tape {
public:
    Tape();
    ~Tape();
    Tape(const Tape&) = delete;
    Tape& operator=(const Tape&) = delete;

    // The tape's current epoch (Lifetime): tensors compare their stored
    // epoch with it to know whether their node is still here.
    uint64_t epoch() const { return lifetime_.epoch(); }
    Labels& labels() { return labels_; }
    const Labels& labels() const { return labels_; }
    const Lifetime& lifetime() const { return lifetime_; }
    Lifetime& lifetime() { return lifetime_; }
    ForeignTensors& foreign() { return foreign_; }
    const ForeignTensors& foreign() const { return foreign_; }
    // Grad mode: false inside no_grad(), where ops record nothing. It is the
    // thread's, as in PyTorch, so it lives on the thread's default tape: a
    // `with tapegrad.Tape()` does not change it (use grad_mode(), not this).
    bool grad_enabled = true;
    bool& grad_mode() { return pushed_on ? pushed_on->grad_enabled : grad_enabled; }
    // detect_anomaly(), per thread as grad mode is (Note [Anomaly mode]).
    // anomaly_ever: whether any thread ever turned it on (a cheaper first test
    // for every op recorded).
    bool detect_anomaly = false;
    bool& anomaly_mode() { return pushed_on ? pushed_on->detect_anomaly : detect_anomaly; }
    static inline bool anomaly_ever = false;

    std::vector<uint8_t> op, flags;
    std::vector<uint32_t> in0, in1;
    std::vector<Value> val;

    std::vector<double> consts;
    std::vector<PyObject*> arrays;  // owned references
    std::vector<UserRecord> user_records;
    size_t label_records = 0;  // user records appended seed-style (they block reclaiming)
    // The hook lists of hooked non-leaf rows (leaves' are on leaf_tensors), owned.
    std::unordered_map<uint32_t, PyObject*> row_hooks;
    // Where ops recorded under detect_anomaly were recorded: "file:line" (owned
    // str) of the user's code (Note [Anomaly mode], anomaly.hpp).
    std::unordered_map<uint32_t, PyObject*> row_origins;
    // Leaves that require grad, owned, so backward() can accumulate their .grad;
    // a leaf row's in0 indexes this (UINT32_MAX: none). None where a leaf became
    // a Function's output.
    std::vector<PyObject*> leaf_tensors;
    std::vector<ArrayRecord> array_records;  // in0 of an array-op row indexes this
    size_t n_ops = 0;                   // rows that are ops or user records
    std::vector<uint32_t> op_rows;      // their row ids, built lazily for indexing
    size_t op_rows_scanned = 0;

    BufferPool pool;  // Note [Buffer pool]
    size_t temporaries_reused = 0;  // Note [Temporaries]; for tests

    // Note [Reclaiming records]: the live counts are the lifetime's; whether
    // a row is freed is its flag.
    void add_live(uint32_t node) { lifetime_.add_live(node, flags[node] & F_FREED); }
    // The first live tensor of a row just pushed: no checks needed.
    void add_live_new_row(uint32_t node) { lifetime_.add_live_new_row(node); }
    void drop_live(uint32_t node) {
        if (lifetime_.counts(node)) lifetime_.drop_live(node, flags[node] & F_FREED);
    }
    void mark_freed(uint32_t row) {
        if (flags[row] & F_FREED) return;
        flags[row] |= F_FREED;
        lifetime_.row_freed(row);
    }
    // At a safe point: drops the records when nothing can use them again, or
    // compacts a large tape to what live tensors can reach (Note [Compaction]).
    // The common case is the first test.
    void maybe_reclaim() {
        if (!lifetime_.may_reclaim(op.size(), array_bytes)) return;
        if (op.empty() || scratch_.sweeping() || lifetime_.pinned() || label_records != 0) return;
        if (lifetime_.all_dead()) {
            if (lifetime_.should_reset(op.size(), array_bytes)) reset(false);
        } else if (lifetime_.should_compact(op.size(), array_bytes)) {
            compact();
        }
    }
    // Note [Compaction]: keeps what live tensors reach, each part renumbered
    // by the same row map (Note [Row map]).
    void compact();
    size_t array_bytes = 0;  // data of `arrays` and of array ops' array parameters, as counted when added
    // Swaps the owned references with `refs` (moved in; the old ones returned).
    OwnedRefs swap_refs(OwnedRefs refs);
    // The register_hook functions of a row's tensor (borrowed), or nullptr.
    // Rows of leaves and foreign tensors are hooked when their tensor has
    // hooks, whatever their F_HOOKED flag says (hooked()).
    bool hooked(uint32_t row) const {
        return (flags[row] & F_HOOKED) || ((op[row] == OP_LEAF || op[row] == OP_STALE) && hooks_of(row));
    }
    PyObject* hooks_of(uint32_t row) const;

    // On a thread's default tape: the tapes pushed by `with tapegrad.Tape()`,
    // innermost last; ops record on the innermost (current_tape()).
    std::vector<Tape*> pushed;
    Tape* pushed_on = nullptr;  // on a pushed tape: the default tape it sits on

    // Note [Sweep scratch].
    SweepScratch& scratch() { return scratch_; }
    const SweepScratch& scratch() const { return scratch_; }

    // Appends a row; returns its node id, or UINT32_MAX with MemoryError set.
    uint32_t push(uint8_t code, uint8_t row_flags, uint32_t a, uint32_t b, Value v) {
        if (op.size() >= UINT32_MAX - 1) return overflow();
        op.push_back(code);
        flags.push_back(row_flags);
        in0.push_back(a);
        in1.push_back(b);
        val.push_back(v);
        lifetime_.push_row();
        const uint32_t row = static_cast<uint32_t>(op.size() - 1);
        if (code > OP_STALE || code == OP_CUSTOM) {
            ++n_ops;
            if (anomaly_ever && anomaly_mode()) note_origin(row);
        }
        return row;
    }
    // Note [Anomaly mode]: keeps where the user's code recorded op `row`.
    void note_origin(uint32_t row);
    // The nodes whose gradients a row's backward gives: an op's Tensor inputs
    // (not its constants), a user record's inputs, a version row's older value.
    std::vector<uint32_t> inputs_of(uint32_t row) const;
    uint32_t add_const(double c) {
        consts.push_back(c);
        return static_cast<uint32_t>(consts.size() - 1);
    }
    // Takes a new reference to arr.
    uint32_t add_array(PyObject* arr) {
        Py_INCREF(arr);
        arrays.push_back(arr);
        array_bytes += data_bytes(arr);
        return static_cast<uint32_t>(arrays.size() - 1);
    }
    // Makes sure an array node keeps its data (`value`, the tensor's array), not
    // only its layout: a backward recorded now reads it (Note [Saved values]).
    void keep_value(uint32_t node, PyObject* value) {
        if (!is_array(node)) return;
        PyObject*& slot = arrays[val[node].index];
        if (slot == value) return;
        Py_INCREF(value);
        Py_SETREF(slot, value);
        array_bytes += data_bytes(value);
    }
    // The bytes of data an entry of `arrays` holds (a layout view holds one element;
    // an array op's constant may be a number).
    static size_t data_bytes(PyObject* arr);
    // The bytes of the arrays among an array op's parameters (an index array
    // of x[idx], nested in tuples or lists): the tape holds copies of them.
    static size_t params_bytes(PyObject* params);
    // The row where a tensor's gradient collects (Note [Versions] in
    // tensor.hpp): `node` itself, or below its version rows, the row of its
    // first value on this tape.
    uint32_t identity_row(uint32_t node) const {
        while (node != UINT32_MAX && op[node] == OP_VERSION) node = in0[node];
        return node;
    }
    // Row ids of ops and user records, in order (extends op_rows as needed).
    const std::vector<uint32_t>& operation_rows();

    bool is_array(uint32_t node) const { return flags[node] & F_ARRAY; }
    // Whether a node's gradient is of any use: not a constant Tensor's (a leaf
    // that does not require grad has no holder), which may not be a source.
    bool wants_gradient(uint32_t node) const {
        return op[node] != OP_LEAF || in0[node] != UINT32_MAX || (flags[node] & F_CUSTOM_OUTPUT);
    }
    PyObject* array_of(uint32_t node) const { return arrays[val[node].index]; }
    // An operand of a row as numpy sees it (a new reference): a constant
    // (number or ndarray, as the row's flags say) or a node's value.
    PyObject* operand_object(uint32_t index, bool is_number, bool is_array) const {
        if (is_number) return PyFloat_FromDouble(consts[index]);
        if (is_array) return Py_NewRef(arrays[index]);
        if (this->is_array(index)) return Py_NewRef(array_of(index));
        return PyFloat_FromDouble(val[index].number);
    }

    // Empties the tape (keeping its buffers), takes a new epoch, and
    // restarts labels at tensor_0.
    void clear() { reset(true); }

    // Empties the tape and takes a new epoch; restarts labels if asked.
    void reset(bool restart_labels);

private:
    static uint32_t overflow();
    // The rows live tensors reach, and the records of kept outputs (Note [Compaction]).
    std::vector<uint8_t> reachable_rows() const;
    // Note [Row map] for the row store: what the old rows held goes to `old`.
    void remap_rows(const RowMap& map, OwnedRefs& old);

    Labels labels_;
    Lifetime lifetime_;
    ForeignTensors foreign_;
    SweepScratch scratch_;
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
