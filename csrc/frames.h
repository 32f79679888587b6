/* The running Python frame's code and value stack (frames.c). */
#pragma once

#include <Python.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The frame the calling thread's interpreter is executing: its code object
 * (borrowed), the index in code units of the instruction being executed, and
 * the base of its value stack. 0 (nothing set) where this build of tapegrad
 * cannot read this Python's frames, or the frame is not a Python function's. */
int tapegrad_running_frame(PyObject** code, int* unit, PyObject*** stack);

#ifdef __cplusplus
}
#endif
