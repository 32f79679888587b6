// The tape's rows for tensors whose history it does not hold: foreign
// tensors, stale tensors and retired identities.
#pragma once

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <cstdint>
#include <functional>
#include <unordered_map>
#include <vector>

#include "row_map.hpp"

namespace tapegrad {

// Note [Foreign tensors]
// A tensor is bound to one tape at a time (its epoch and node). Used on
// another tape while its home tape is still alive (another thread's, or
// the other side of a `with tapegrad.Tape()`), it is not rebound, which
// would cut it from the graphs it is in: it gets a row here that only this
// tape knows, found through row_of() (the tape holds the tensor, so the
// key cannot be reused). A tensor whose home tape is gone is simply rebound.
//
// These tables hold what the tape knows about tensors by identity rather
// than by binding, kept together because they share that reason to exist
// and the rule that goes with it: every tensor used as a key is held
// (an owned reference in held_), so its address names it for as long as the
// tape lists it.
// - foreign rows: a foreign tensor's newest row here;
// - retired identities (Note [Versions] in tensor.hpp): tensors whose value
//   changed shape or dtype after this tape recorded them, and the identity
//   rows of their old values; a gradient asked for such a tensor through
//   those rows raises;
// - stale rows (Note [Stale tensors] in tensor.cpp): when their tensor was
//   made (birth_clock), and for a foreign row the tensor.
class ForeignTensors {
public:
    struct StaleRow {
        uint64_t born;
        PyObject* foreign;  // held, when the stale tensor is foreign
    };

    ForeignTensors() = default;
    ForeignTensors(const ForeignTensors&) = delete;
    ForeignTensors& operator=(const ForeignTensors&) = delete;

    // A foreign tensor's row here, or UINT32_MAX.
    uint32_t row_of(PyObject* tensor) const {
        if (foreign_.empty()) return UINT32_MAX;
        auto it = foreign_.find(tensor);
        return it == foreign_.end() ? UINT32_MAX : it->second;
    }
    // A foreign tensor entered on `row` (the tape now holds it).
    void enter(PyObject* tensor, uint32_t row);
    // A foreign tensor's new value is on `row` (a version row, Note [Versions]).
    void move(PyObject* tensor, uint32_t row) { foreign_[tensor] = row; }
    // The tensor's identity on `identity_row` is retired; a foreign tensor
    // also loses its row (it enters anew on its next use).
    void retire(PyObject* tensor, uint32_t identity_row);
    // The retired identity rows of a tensor, or nullptr.
    const std::vector<uint32_t>* retired_rows(PyObject* tensor) const {
        if (retired_.empty()) return nullptr;
        auto it = retired_.find(tensor);
        return it == retired_.end() ? nullptr : &it->second;
    }
    bool any_retired() const { return !retired_.empty(); }

    // A stale tensor's row (Note [Stale tensors]); `foreign` is the tensor
    // when it is foreign (held by enter()), else nullptr.
    void note_stale(uint32_t row, uint64_t born, PyObject* foreign) { stale_[row] = {born, foreign}; }
    const StaleRow* stale_row(uint32_t row) const {
        auto it = stale_.find(row);
        return it == stale_.end() ? nullptr : &it->second;
    }
    bool any_stale() const { return !stale_.empty(); }

private:
    friend class Tape;  // which renumbers and empties every part at once

    // Note [Row map]. A foreign tensor's newest row may go while its identity
    // (identity_row of it) stays: it is then kept on its identity, and its
    // next use compares values and pushes a version again. The references
    // no longer needed go to `released`.
    void remap(const RowMap& map, const std::function<uint32_t(uint32_t)>& identity_row,
               std::vector<PyObject*>& released);
    // Forgets everything; the references go to `released`.
    void clear(std::vector<PyObject*>& released);

    std::unordered_map<PyObject*, uint32_t> foreign_;
    std::unordered_map<PyObject*, std::vector<uint32_t>> retired_;
    std::unordered_map<uint32_t, StaleRow> stale_;
    std::vector<PyObject*> held_;  // owned: every key above, once per table it is in
};

}  // namespace tapegrad
