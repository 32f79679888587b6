// The tape's rows: records as flat arrays, and what they index.
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

// The rows and everything they index: consts, arrays, array records, user
// records, the leaves that require grad, and the side tables keyed by row
// (hooks, anomaly origins). A part of its own because these change together:
// a row's in0/in1/val index them, so they are appended, renumbered
// (remap) and emptied as one. Invariants: every column has size() entries;
// an index a row holds is valid in the table its op and flags name (Note
// [Records are nodes]); a row only reads lower rows; array_bytes_ counts the
// data of arrays_ and of array records' parameters as they were added;
// n_ops_ counts the rows is_operation() accepts. Rows are only appended
// through Tape::push, which keeps the other parts in step.
class RowStore {
public:
    RowStore() = default;
    RowStore(const RowStore&) = delete;
    RowStore& operator=(const RowStore&) = delete;

    size_t size() const { return op_.size(); }
    bool empty() const { return op_.empty(); }
    // Rows that are ops or user records (operation_history's entries).
    static bool is_operation(uint8_t code) { return code > OP_STALE || code == OP_CUSTOM; }

    uint8_t op(uint32_t row) const { return op_[row]; }
    uint8_t flags(uint32_t row) const { return flags_[row]; }
    uint32_t in0(uint32_t row) const { return in0_[row]; }
    uint32_t in1(uint32_t row) const { return in1_[row]; }
    Value val(uint32_t row) const { return val_[row]; }
    // The columns as raw pointers, for the sweep's loop (valid until a row is pushed).
    const uint8_t* op_data() const { return op_.data(); }
    const uint8_t* flags_data() const { return flags_.data(); }
    const uint32_t* in0_data() const { return in0_.data(); }
    const uint32_t* in1_data() const { return in1_.data(); }
    const Value* val_data() const { return val_.data(); }
    const double* consts_data() const { return consts_.data(); }

    double constant(uint32_t k) const { return consts_[k]; }
    PyObject* array(size_t k) const { return arrays_[k]; }  // borrowed
    size_t array_count() const { return arrays_.size(); }
    const ArrayRecord& array_record(uint32_t k) const { return array_records_[k]; }
    const UserRecord& user_record(uint32_t k) const { return user_records_[k]; }
    const std::vector<UserRecord>& user_records() const { return user_records_; }
    size_t user_record_count() const { return user_records_.size(); }
    // A leaf that requires grad, by its row's in0 (borrowed; None once let go of).
    PyObject* leaf_tensor(uint32_t k) const { return leaf_tensors_[k]; }
    size_t leaf_count() const { return leaf_tensors_.size(); }
    const std::vector<PyObject*>& leaf_tensors() const { return leaf_tensors_; }
    // User records appended seed-style (they block reclaiming).
    size_t label_records() const { return label_records_; }
    size_t n_ops() const { return n_ops_; }
    // Data of `arrays` and of array ops' array parameters, as counted when added.
    size_t array_bytes() const { return array_bytes_; }

    bool is_array(uint32_t node) const { return flags_[node] & F_ARRAY; }
    // Whether a node's gradient is of any use: not a constant Tensor's (a leaf
    // that does not require grad has no holder), which may not be a source.
    bool wants_gradient(uint32_t node) const {
        return op_[node] != OP_LEAF || in0_[node] != UINT32_MAX || (flags_[node] & F_CUSTOM_OUTPUT);
    }
    PyObject* array_of(uint32_t node) const { return arrays_[val_[node].index]; }
    // An operand of a row as numpy sees it (a new reference): a constant
    // (number or ndarray, as the row's flags say) or a node's value.
    PyObject* operand_object(uint32_t index, bool is_number, bool is_array) const {
        if (is_number) return PyFloat_FromDouble(consts_[index]);
        if (is_array) return Py_NewRef(arrays_[index]);
        if (this->is_array(index)) return Py_NewRef(array_of(index));
        return PyFloat_FromDouble(val_[index].number);
    }
    // The row where a tensor's gradient collects (Note [Versions] in
    // tensor.hpp): `node` itself, or below its version rows, the row of its
    // first value on this tape.
    uint32_t identity_row(uint32_t node) const {
        while (node != UINT32_MAX && op_[node] == OP_VERSION) node = in0_[node];
        return node;
    }
    // The nodes whose gradients a row's backward gives: an op's Tensor inputs
    // (not its constants), a user record's inputs, a version row's older value.
    std::vector<uint32_t> inputs_of(uint32_t row) const;
    // Row ids of ops and user records, in order (extended as rows come).
    const std::vector<uint32_t>& operation_rows();
    // The hook list kept for a hooked non-leaf row (borrowed), or nullptr.
    PyObject* row_hooks(uint32_t row) const {
        auto it = row_hooks_.find(row);
        return it == row_hooks_.end() ? nullptr : it->second;
    }
    // Where op `row` was recorded under detect_anomaly (borrowed str), or nullptr.
    PyObject* origin(uint32_t row) const {
        auto it = row_origins_.find(row);
        return it == row_origins_.end() ? nullptr : it->second;
    }
    size_t origin_count() const { return row_origins_.size(); }

    uint32_t add_const(double c) {
        consts_.push_back(c);
        return static_cast<uint32_t>(consts_.size() - 1);
    }
    // Takes a new reference to arr.
    uint32_t add_array(PyObject* arr) {
        Py_INCREF(arr);
        arrays_.push_back(arr);
        array_bytes_ += data_bytes(arr);
        return static_cast<uint32_t>(arrays_.size() - 1);
    }
    // Makes sure an array node keeps its data (`value`, the tensor's array), not
    // only its layout: a backward recorded now reads it (Note [Saved values]).
    void keep_value(uint32_t node, PyObject* value) {
        if (!is_array(node)) return;
        PyObject*& slot = arrays_[val_[node].index];
        if (slot == value) return;
        Py_INCREF(value);
        Py_SETREF(slot, value);
        array_bytes_ += data_bytes(value);
    }
    // A compiled tape's replay (Note [Compiled tapes], replay.hpp) computes
    // every op row's value anew: a number in place, or a new array for the
    // row's slot (stolen; the old one is returned, a new reference).
    void set_number(uint32_t row, double v) { val_[row].number = v; }
    PyObject* swap_array_value(uint32_t row, PyObject* value) {
        PyObject*& slot = arrays_[val_[row].index];
        PyObject* old = slot;
        slot = value;
        return old;
    }
    Value* val_data_for_replay() { return val_.data(); }
    // The array parameters of an array op about to be recorded: the tape holds
    // copies of them, which count toward its memory bound.
    void count_params(PyObject* params) { array_bytes_ += params_bytes(params); }
    // The index the next array record gets; add_array_record appends it.
    uint32_t next_array_record() const { return static_cast<uint32_t>(array_records_.size()); }
    void add_array_record(ArrayRecord record) { array_records_.push_back(std::move(record)); }
    void add_user_record(UserRecord record) {
        if (record.by_label) ++label_records_;
        user_records_.push_back(std::move(record));
    }
    // Holds a leaf that requires grad (a new reference); its index, for its row's in0.
    uint32_t hold_leaf(PyObject* leaf) {
        leaf_tensors_.push_back(Py_NewRef(leaf));
        return static_cast<uint32_t>(leaf_tensors_.size() - 1);
    }
    // A leaf became a Function's output: the row holds it no more.
    void let_go_of_leaf(uint32_t node) {
        if (in0_[node] != UINT32_MAX) Py_SETREF(leaf_tensors_[in0_[node]], Py_NewRef(Py_None));
        in0_[node] = UINT32_MAX;
    }
    // A leaf listed as a user record's output.
    void mark_custom_output(uint32_t node) { flags_[node] |= F_CUSTOM_OUTPUT; }
    // A non-leaf row whose tensor has hooks: `hooks` (the tensor's list) is
    // kept for it, the first time.
    void hook_row(uint32_t node, PyObject* hooks) {
        flags_[node] |= F_HOOKED;
        if (!row_hooks_.count(node)) row_hooks_[node] = Py_NewRef(hooks);
    }
    // Each hooked row's hook list replaced by a copy of itself (a compiled
    // tape's, Note [Compiled tapes]): later edits of the tensor's list do not reach it.
    void snapshot_hooks() {
        for (auto& [row, hooks] : row_hooks_)
            if (PyObject* copy = PySequence_List(hooks)) Py_SETREF(hooks, copy);
            else PyErr_Clear();  // keeps the list itself
    }
    // Where op `row` was recorded (stolen str), replacing any earlier one.
    void set_origin(uint32_t row, PyObject* origin) { Py_XSETREF(row_origins_[row], origin); }

    // The bytes of data an entry of `arrays` holds (a layout view holds one element;
    // an array op's constant may be a number).
    static size_t data_bytes(PyObject* arr);
    // The bytes of the arrays among an array op's parameters (an index array
    // of x[idx], nested in tuples or lists): the tape holds copies of them.
    static size_t params_bytes(PyObject* params);

private:
    friend class Tape;  // which keeps its other parts in step with these

    uint32_t push(uint8_t code, uint8_t row_flags, uint32_t a, uint32_t b, Value v) {
        op_.push_back(code);
        flags_.push_back(row_flags);
        in0_.push_back(a);
        in1_.push_back(b);
        val_.push_back(v);
        if (is_operation(code)) ++n_ops_;
        return static_cast<uint32_t>(op_.size() - 1);
    }
    void mark_freed(uint32_t row) { flags_[row] |= F_FREED; }
    // Note [Row map]: what the old rows held goes to `old`.
    void remap(const RowMap& map, OwnedRefs& old);
    // Empties the rows; what they held goes to `old`.
    void clear(OwnedRefs& old);
    // Swaps the owned references with `refs` (moved in; the old ones returned).
    OwnedRefs swap_refs(OwnedRefs refs);

    std::vector<uint8_t> op_, flags_;
    std::vector<uint32_t> in0_, in1_;
    std::vector<Value> val_;
    std::vector<double> consts_;
    std::vector<PyObject*> arrays_;  // owned references
    std::vector<UserRecord> user_records_;
    size_t label_records_ = 0;
    // The hook lists of hooked non-leaf rows (leaves' are on leaf_tensors), owned.
    std::unordered_map<uint32_t, PyObject*> row_hooks_;
    // Where ops recorded under detect_anomaly were recorded: "file:line" (owned
    // str) of the user's code (Note [Anomaly mode], anomaly.hpp).
    std::unordered_map<uint32_t, PyObject*> row_origins_;
    // Leaves that require grad, owned, so backward() can accumulate their .grad;
    // a leaf row's in0 indexes this (UINT32_MAX: none). None where a leaf became
    // a Function's output.
    std::vector<PyObject*> leaf_tensors_;
    std::vector<ArrayRecord> array_records_;  // in0 of an array-op row indexes this
    size_t n_ops_ = 0;
    std::vector<uint32_t> op_rows_;  // rows that are operations, built lazily for indexing
    size_t op_rows_scanned_ = 0;
    size_t array_bytes_ = 0;
};

}  // namespace tapegrad
