// The tape's labels: which node each tensor_N and each explicit label names.
#pragma once

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <cstdint>
#include <unordered_map>
#include <vector>

#include "row_map.hpp"

namespace tapegrad {

// Note [Labels]
// Labels are for people (repr, viz, the seed's OperationRecord), so the tape
// keeps them beside its rows, not in them. A tensor made on this tape gets
// the number `counter` (Tensor._counter) and the default label tensor_N; while
// numbers run in order the node of tensor_N is numbered_[N - base_], a column
// that stays sorted by node (a number whose tensor has no node keeps the
// previous entry's node with NO_NODE_BIT set), so label_of() is a binary
// search. Numbers given out of order (after Tensor._counter was set by hand)
// go to overflow_. Explicit labels live in two small dicts, one per
// direction. Default labels of foreign tensors (numbered by another tape) are
// kept apart in foreign_numbers_: tensor_N names both that tensor and this
// tape's own tensor_N, an ambiguity that a user record's label must not
// resolve silently (node_of_label). This is a part of its own because
// labels change on their own schedule: a tensor is named, renamed or
// numbered without touching a row, and a compaction only renumbers nodes.
class Labels {
public:
    Labels();
    ~Labels();
    Labels(const Labels&) = delete;
    Labels& operator=(const Labels&) = delete;

    // Tensor._counter: the number the next tensor made here gets.
    int64_t counter() const { return counter_; }
    void set_counter(int64_t n) { counter_ = n; }
    int64_t take_number() { return counter_++; }

    // Gives the tensor numbered `num` the node `node` (UINT32_MAX: none).
    void set_num_node(int64_t num, uint32_t node);
    // Node of tensor_N, or UINT32_MAX.
    uint32_t node_of_num(int64_t num) const;
    // Label of a node's tensor as a new str, or None when it has none.
    PyObject* label_of(uint32_t node) const;
    // Node of a label, or UINT32_MAX (no Python error set); AMBIGUOUS when a
    // default label names both a foreign tensor and one of this tape's.
    static constexpr uint32_t AMBIGUOUS = UINT32_MAX - 1;
    uint32_t node_of_label(PyObject* label) const;

    // Names `node` with an explicit label (a str). False with an error set.
    bool name(uint32_t node, PyObject* label);
    // Shows tensor_`num` (a number given elsewhere: by an earlier numbering of
    // this tape, or by another tape) for `node`; for a foreign tensor user
    // records resolve it too. False with an error set.
    bool name_by_number(uint32_t node, int64_t num, bool foreign);

private:
    friend class Tape;  // which renumbers and empties every part at once

    // Note [Row map]. The old dicts go to `released`, dropped once the tape
    // is consistent (a label may be a str subclass holding a tensor).
    void remap(const RowMap& map, std::vector<PyObject*>& released);
    // Forgets every node; numbering restarts at 0 if asked, else goes on.
    void clear(bool restart_numbers);

    int64_t counter_ = 0;
    std::vector<uint32_t> numbered_;  // numbered_[N - base_] is the node of tensor_N
    int64_t base_ = 0;
    std::unordered_map<int64_t, uint32_t> overflow_;
    std::unordered_map<int64_t, uint32_t> foreign_numbers_;
    PyObject* node_by_label_;  // owned dict str -> int
    PyObject* label_by_node_;  // owned dict int -> str
};

}  // namespace tapegrad
