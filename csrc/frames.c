/* The Python frame the calling thread is running, read from CPython's internal
 * structures (Note [Temporaries], temporaries.cpp). C, not C++: the internal
 * headers are C. Only the versions whose layout was checked are read, and only
 * on Linux, where the check that uses the frame runs (temporaries.cpp): on
 * Windows Py_BUILD_CORE would also turn Python.h's declarations of the C API
 * into exports, which an extension cannot link. */
#if defined(__linux__)
#define TAPEGRAD_READ_FRAMES 1
#define Py_BUILD_CORE
#endif
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "frames.h"

#if defined(TAPEGRAD_READ_FRAMES) && PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030E0000 \
    && !defined(Py_GIL_DISABLED)
#include "internal/pycore_frame.h"

int tapegrad_running_frame(PyObject** code, int* unit, PyObject*** stack) {
    PyThreadState* tstate = PyThreadState_Get();
#if PY_VERSION_HEX >= 0x030D0000
    _PyInterpreterFrame* frame = tstate->current_frame;
#else
    _PyInterpreterFrame* frame = tstate->cframe ? tstate->cframe->current_frame : NULL;
#endif
    if (!frame) return 0;
#if PY_VERSION_HEX >= 0x030C0000
    if (frame->owner == FRAME_OWNED_BY_CSTACK) return 0; /* a shim between C and Python */
#endif
#if PY_VERSION_HEX >= 0x030D0000
    if (!PyCode_Check(frame->f_executable)) return 0;
    *code = frame->f_executable;
#else
    *code = (PyObject*)frame->f_code;
#endif
    *unit = _PyInterpreterFrame_LASTI(frame);
    *stack = _PyFrame_Stackbase(frame);
    return 1;
}

#else

int tapegrad_running_frame(PyObject** code, int* unit, PyObject*** stack) {
    (void)code;
    (void)unit;
    (void)stack;
    return 0;
}

#endif
