// detect_anomaly(): where ops were recorded, and the check of the gradients a
// sweep produces.
//
// Note [Anomaly mode]
// Inside tapegrad.detect_anomaly() (per thread, as grad mode is) every op
// recorded keeps where the user's code recorded it: the file and line of the
// innermost Python frame outside tapegrad's own package (RowStore::origin).
// Outside the mode nothing is looked up, so it costs nothing. A sweep run in
// the mode checks, after each row's backward, the gradients that row added
// into: at the first NaN or infinity it raises, naming the op, its output's
// label and where it was recorded, as PyTorch's detect_anomaly names the
// backward that returned NaN. The checked value is the gradient accumulated
// so far, which was finite before the row (else an earlier row raised), so
// the row named is the one that made it non-finite. Gradients the caller
// gives and hooks' results are not checked: the sweep did not make them.
#pragma once

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <cstdint>

#include "tape.hpp"

namespace tapegrad {

// "nan" or "inf" when v is not finite, else nullptr.
const char* nonfinite(double v);

// The same for a gradient object: a float, an ndarray (every element looked
// at) or a Tensor (its value).
const char* nonfinite(PyObject* g);

// Sets the error for row `row`, whose backward made `input`'s gradient `what`
// ("nan" or "inf"); returns false.
bool anomaly_error(const Tape& tape, uint32_t row, uint32_t input, const char* what);

}  // namespace tapegrad
