#include "tape.hpp"

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
    return node_of_num(std::stoll(digits));
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
    std::vector<PyObject*> old_arrays;
    old_arrays.swap(arrays);
    std::vector<UserRecord> old_records;
    old_records.swap(user_records);
    std::vector<ArrayRecord> old_array_records;
    old_array_records.swap(array_records);
    std::vector<PyObject*> old_leaves;
    old_leaves.swap(leaf_tensors);
    std::unordered_map<uint32_t, PyObject*> old_hooks;
    old_hooks.swap(row_hooks);
    std::vector<PyObject*> old_grads;
    old_grads.swap(array_grad);
    op.clear();
    flags.clear();
    in0.clear();
    in1.clear();
    val.clear();
    consts.clear();
    stale_born.clear();
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
    epoch = next_epoch();
    live_tapes()[epoch] = this;
    std::vector<PyObject*> old_foreign;
    old_foreign.swap(foreign_refs);
    foreign.clear();
    // Keep the capacity of what is refilled at the same pace next time.
    arrays.reserve(old_arrays.capacity());
    if (node_by_label) PyDict_Clear(node_by_label);
    if (label_by_node) PyDict_Clear(label_by_node);
    // Arrays nobody else holds go to the pool for the next steps (Note [Buffer pool]).
    for (PyObject* a : old_arrays) pool.give(a);
    for (PyObject* g : old_grads) pool.give(g);
    for (UserRecord& r : old_records) Py_DECREF(r.record);
    for (ArrayRecord& r : old_array_records) Py_DECREF(r.params);
    for (PyObject* leaf : old_leaves) Py_DECREF(leaf);
    for (auto& [row, hooks] : old_hooks) Py_DECREF(hooks);
    for (PyObject* t : old_foreign) Py_DECREF(t);
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
