// The native part of a Tensor: its value and where it stands on the tape.
#pragma once

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <cstdint>

#include "tape.hpp"

namespace tapegrad {

enum TensorFlag : uint8_t {
    T_REQUIRES_GRAD = 1,
    T_LEAF = 2,  // made by the user, not by an op
    T_SAVED = 4,  // a Function's saved tensor that the tape holds: not counted live
    T_UPDATED = 8,  // its value changed since it was bound to `node` (Note [Versions])
};

// Note [Versions]
// A tensor's value can change after graphs recorded it: an in-place update
// under no_grad (w -= lr * w.grad, an optimizer step) or t.data = new. The
// rows that recorded the old value keep it (Note [Immutable values]), so those
// graphs still differentiate with the values they saw; the tensor is flagged
// T_UPDATED, and its next use on a tape pushes a version row: the new value,
// whose gradient goes on to the row of the value before it. So on a tape a
// tensor keeps one identity, its first row (identity_row): a gradient asked
// for the tensor is read there and collects what reached each of its values,
// as in PyTorch, where an update under no_grad keeps the tensor's node. Its
// .grad, its hooks and its label live there too.
// A value of another shape or dtype cannot share a gradient with the old one:
// the tensor then enters the tape anew (a leaf), and its old identity is
// retired (ForeignTensors::retire): a gradient asked for it through a graph that saw
// the old value raises, rather than come back as zero or of the old shape.

// Note [Tensor layout]
// tapegrad.Tensor is a Python subclass (with empty __slots__) of this C type,
// so an op reads its operands' fields with a pointer add and creates its
// result with tp_alloc, never running Python. A scalar's value is a C double;
// `array` is null then. Tensors hold no reference to their tape: `epoch` says
// whether `node` is a row of the current tape, so a tensor outliving a
// clear_history() or its thread is never a dangling pointer.
struct TensorObject {
    PyObject_HEAD
    double scalar;
    PyObject* array;  // owned ndarray (float32 or float64), or nullptr
    PyObject* label;  // owned str, or nullptr: "tensor_{num}" made when read
    PyObject* grad;   // owned Tensor accumulated by backward(), or nullptr
    PyObject* hooks;  // owned list of register_hook functions, or nullptr
    uint64_t epoch;   // the tape epoch `node` belongs to; 0 = none
    uint64_t born;    // the tape epoch the tensor was made in
    int64_t num;      // label number
    uint32_t node;
    uint8_t flags;
};

extern PyTypeObject* TensorBaseType;

// The exact class first: that is every op result, and it skips an MRO walk.
extern PyTypeObject* tensor_class;
inline bool is_tensor(PyObject* o) {
    return Py_TYPE(o) == tensor_class || PyObject_TypeCheck(o, TensorBaseType);
}

// Makes the collector watch t: it now holds a .grad or hooks, which can
// refer back to it (Note [Tracked tensors]).
void track(TensorObject* t);

// Registers the Python Tensor class that op results are made of.
bool set_tensor_class(PyObject* cls);

// Note [Foreign labels]
// Default labels are numbered per tape (each thread's, each tapegrad.Tape's),
// so another thread's tensor_0 and this thread's tensor_0 are two tensors. A
// seed-style OperationRecord names tensors by label: read on a thread where
// the tensor is foreign, the label is a str subclass that remembers the tensor
// (the class registered here, with a `tensor` attribute), and a record appended
// with it resolves to that tensor, not to this tape's own tensor_0. A foreign
// tensor's default label that a record names as a plain str, while this tape
// has its own tensor of that number, is ambiguous and raises
// (Note [Labels]).
extern PyObject* foreign_label_class;

// t.register_hook(fn): returns the tensor's list of hooks (for the handle).
PyObject* register_hook(PyObject* tensor, PyObject* fn);

// The native function of elementwise op `code`: METH_O for a unary op
// (tapegrad.exp(x)), METH_FASTCALL for a binary one (tapegrad.add(a, b)). One
// call per op, as the operators; nullptr for a code that is no elementwise op.
PyCFunction elementwise_function(uint8_t code);

// The node of a tensor on `tape`, entering it as a leaf (or a stale tensor)
// if it is not on this tape yet, or a version row if its value changed (Note
// [Versions]). UINT32_MAX with an error set on failure. Inline: every operand
// of every op asks, and nearly always the tensor is bound here already.
uint32_t node_on_slow(Tape& tape, TensorObject* t);
inline uint32_t node_on(Tape& tape, TensorObject* t) {
    if (t->epoch == tape.epoch() && !(t->flags & T_UPDATED)) return t->node;
    return node_on_slow(tape, t);
}

// A new Tensor (of the registered class) with this value: `array` (stolen) or,
// when it is null, the float `number`; on `node` of the tape, or a constant
// with no node when node is UINT32_MAX.
PyObject* new_tensor(Tape& tape, double number, PyObject* array, uint32_t node, bool requires_grad);

// The node of a tensor on `tape` if it has one there (bound or foreign), else
// UINT32_MAX; enters nothing. It may hold an older value than the tensor's
// (Note [Versions]); node_on() brings it up to date.
uint32_t find_node(const Tape& tape, TensorObject* t);

// The row where a tensor's gradient collects (Note [Versions]): `node` itself,
// or below its version rows, the row of its first value on this tape.
inline uint32_t identity_row(const Tape& tape, uint32_t node) { return tape.rows().identity_row(node); }

// Whether t's value has the layout of row `node`'s: both numbers, or arrays
// of one shape and dtype (Note [Versions]).
bool same_layout_as(const Tape& tape, uint32_t node, const TensorObject* t);

// t.data = value and the in-place operators: a new value (`array` stolen, or
// the float `number` when it is null) for the tensor (Note [Versions]).
void set_value(TensorObject* t, double number, PyObject* array);

// In-place `t op= other` (op: add, sub, mul or div) under no_grad (Note
// [In-place operators]): a new value of t's shape and dtype, written into t's
// own array when nothing else holds it. False with an error set.
bool update_in_place(PyObject* tensor, uint8_t code, PyObject* other);

// Note [Saved tensors]
// A Function's ctx keeps its saved tensors, and the tape keeps the Function's
// record; a recorded tensor held that way would count as live forever, and
// keep its own records alive (a cycle the tape cannot see). So a recorded
// tensor passed to save_for_backward is replaced by a saved handle: the same
// value and row, flagged T_SAVED, not counted live. The record lists the
// handles; compaction keeps their rows while the record is kept and rebinds
// them, and after a reset they are stale like any tensor of an old epoch.
// A leaf that requires grad gets a handle on its row too, and a constant a new
// constant of its value: an in-place update of either after the forward must
// not reach the backward (Note [Versions]), whose values are those saved.
// Returns the handle (new reference), or t itself when it needs none.
PyObject* saved_handle(Tape& tape, TensorObject* t, uint32_t& node);

// A constant Tensor (requires_grad=False, no node) of `value`, stolen: a float
// (kept as a C double) or an ndarray (kept). nullptr with an error set, or when
// value is nullptr.
PyObject* constant_tensor(Tape& tape, PyObject* value);

// A tensor's value as a new reference: a float or its ndarray.
PyObject* value_object(TensorObject* t);

// Op `code` on a and b (b null for a unary op), as the operators do: a new
// Tensor, recorded when an operand requires grad; a float or an ndarray when
// neither operand is a Tensor. nullptr with an error set, or NotImplemented.
PyObject* apply_op(uint8_t code, PyObject* a, PyObject* b);

// A tensor standing for `node` of the tape, whose value the tape keeps (Note
// [Recording]): the leaf itself for a leaf that requires grad, the value (a
// float or an ndarray, a constant) for one that does not, and otherwise (an
// op's or a user record's output) a new Tensor on that row, so that ops on it
// record against the row.
PyObject* node_tensor(Tape& tape, uint32_t node);

// Ready-to-bind entry points (METH_FASTCALL).
PyObject* apply_unary(PyObject*, PyObject* const* args, Py_ssize_t nargs);
PyObject* apply_binary(PyObject*, PyObject* const* args, Py_ssize_t nargs);

bool init_tensor_type(PyObject* module);

}  // namespace tapegrad
