// Writing an op's result into a temporary operand's array (Note [Temporaries]).
#pragma once

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <cstddef>

namespace tapegrad {

// Arrays smaller than this are not worth the check: a fresh one is cheap.
constexpr size_t MIN_ELIDE_BYTES = size_t(256) << 10;

// Whether the running op was called by the interpreter itself (an operator or
// a call in Python code), not by C code that may hold a borrowed reference.
bool called_from_interpreter();

// Whether `operand` (refcount 1) is held only by the running frame's value
// stack, as an operand of the instruction being executed: an operator's, or a
// call's argument pushed one by one (Note [Temporaries]). False wherever that
// cannot be established.
bool held_only_by_the_stack(PyObject* operand);

}  // namespace tapegrad
