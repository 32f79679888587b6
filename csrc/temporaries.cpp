#include "temporaries.hpp"

// The C-stack check reads return addresses with glibc's backtrace and dladdr.
// Other C libraries (musl, macOS, Windows) get no elision: a check that was
// never run there must not decide what may be overwritten.
#if defined(__GLIBC__)
#define TAPEGRAD_STACK_CHECK 1
#include <dlfcn.h>
#include <execinfo.h>
#endif

#include <cstdint>
#include <cstring>

#include "frames.h"

namespace tapegrad {

// Note [Temporaries]
// In `tanh(x * w + b)` the product and the sum are temporaries: once the next
// op has read them nobody can, and when no backward reads them either (the
// tape keeps only what a backward reads, Note [Saved values]) their arrays
// are dead. numpy writes `a + b` into such a temporary instead of a fresh
// array (its "temporary elision"), and so do we: for a large array that
// saves a fresh buffer and a cold pass over memory. A Tensor is a temporary
// when its only reference is the one the operator was handed (refcount 1),
// its array is referenced by it alone, it is an op's output on this tape
// (not a leaf, a saved tensor or one with hooks), and the op's backward does
// not read it.
//
// A refcount of 1 proves that only if the reference is the interpreter's own,
// on its value stack. C code may pass on a borrowed reference to an object a
// container owns: f(*tup) and itertools.starmap hand the callee the tuple's
// items, numpy's object loops an array's. So two more checks, both required:
//  1. as numpy does, the C stack: above our own frames there must be only the
//     interpreter's, up to its eval loop;
//  2. the operand is on the running frame's value stack, among the operands of
//     the instruction being executed: BINARY_OP's two, UNARY_NEGATIVE's one,
//     the arguments of a call that pushed them one by one (not
//     CALL_FUNCTION_EX, f(*args)). Python 3.14 answers this itself
//     (PyUnstable_Object_IsUniqueReferencedTemporary). On 3.11-3.13 the frame
//     is read from CPython's internal structures (frames.c), and where its
//     operands sit from the bytecode (tapegrad/_stack.py, once per code
//     object, kept in the code object's extra slot). Elsewhere: no elision.

#if defined(TAPEGRAD_STACK_CHECK)

namespace {
const void* base_of(const void* address) {
    Dl_info info;
    return dladdr(address, &info) ? info.dli_fbase : nullptr;
}
}  // namespace

bool called_from_interpreter() {
    static const void* python = base_of(reinterpret_cast<const void*>(&PyNumber_Add));
    static const void* ours = base_of(reinterpret_cast<const void*>(&called_from_interpreter));
    static const void* eval = reinterpret_cast<const void*>(&_PyEval_EvalFrameDefault);
    // A sanitizer's runtime intercepts backtrace: its frame may come first.
    static const void* unwinder = base_of(reinterpret_cast<const void*>(&backtrace));
    if (!python || !ours || python == ours) return false;
    void* frames[16];
    const int n = backtrace(frames, 16);
    int k = 0;
    Dl_info info;
    while (k < n && dladdr(frames[k], &info) && (info.dli_fbase == ours || info.dli_fbase == unwinder))
        ++k;
    for (; k < n; ++k) {
        if (!dladdr(frames[k], &info) || info.dli_fbase != python) return false;
        if (info.dli_saddr == eval) return true;
    }
    return false;
}

#else

bool called_from_interpreter() { return false; }

#endif

#if PY_VERSION_HEX >= 0x030E0000

bool held_only_by_the_stack(PyObject* operand) {
    return PyUnstable_Object_IsUniqueReferencedTemporary(operand);
}

#else

namespace {

#if PY_VERSION_HEX >= 0x030C0000
#define TAPEGRAD_REQUEST_CODE_EXTRA PyUnstable_Eval_RequestCodeExtraIndex
#define TAPEGRAD_GET_CODE_EXTRA PyUnstable_Code_GetExtra
#define TAPEGRAD_SET_CODE_EXTRA PyUnstable_Code_SetExtra
#else
#define TAPEGRAD_REQUEST_CODE_EXTRA _PyEval_RequestCodeExtraIndex
#define TAPEGRAD_GET_CODE_EXTRA _PyCode_GetExtra
#define TAPEGRAD_SET_CODE_EXTRA _PyCode_SetExtra
#endif

// tapegrad._stack.operand_slots of a code object: per code unit, the stack's
// depth before the instruction and how many top entries its call takes.
struct OperandSlots {
    Py_ssize_t units;
    int16_t slots[1];  // 2 * units
};

void free_slots(void* table) { PyMem_RawFree(table); }

// The table of `code`, computed the first time (which runs Python), or
// nullptr where it cannot be had.
const OperandSlots* slots_of(PyObject* code) {
    // Set up once. The import can let another thread run, which meanwhile sees
    // `starting` and goes without (no elision) rather than wait.
    enum State { UNSET, STARTING, READY, FAILED };
    static State state = UNSET;
    static Py_ssize_t index = -1;
    static PyObject* compute = nullptr;  // tapegrad._stack.operand_slots, for the process's life
    if (state == UNSET) {
        state = STARTING;
        index = TAPEGRAD_REQUEST_CODE_EXTRA(free_slots);
        PyObject* module = index >= 0 ? PyImport_ImportModule("tapegrad._stack") : nullptr;
        compute = module ? PyObject_GetAttrString(module, "operand_slots") : nullptr;
        Py_XDECREF(module);
        state = compute ? READY : FAILED;
        PyErr_Clear();
    }
    if (state != READY) return nullptr;
    void* extra = nullptr;
    if (TAPEGRAD_GET_CODE_EXTRA(code, index, &extra) < 0) {
        PyErr_Clear();
        return nullptr;
    }
    if (extra) return static_cast<OperandSlots*>(extra);
    PyObject* computed = PyObject_CallOneArg(compute, code);
    if (!computed || !PyBytes_Check(computed)) {
        Py_XDECREF(computed);
        PyErr_Clear();
        return nullptr;
    }
    const Py_ssize_t bytes = PyBytes_GET_SIZE(computed);
    auto* table = static_cast<OperandSlots*>(PyMem_RawMalloc(sizeof(OperandSlots) + static_cast<size_t>(bytes)));
    if (table) {
        table->units = bytes / static_cast<Py_ssize_t>(2 * sizeof(int16_t));
        std::memcpy(table->slots, PyBytes_AS_STRING(computed), static_cast<size_t>(bytes));
        if (TAPEGRAD_SET_CODE_EXTRA(code, index, table) < 0) {
            PyMem_RawFree(table);
            table = nullptr;
            PyErr_Clear();
        }
    }
    Py_DECREF(computed);
    return table;
}

}  // namespace

bool held_only_by_the_stack(PyObject* operand) {
    PyObject* code;
    int unit;
    PyObject** stack;
    if (Py_REFCNT(operand) != 1 || !tapegrad_running_frame(&code, &unit, &stack)) return false;
    // The first look at a code object runs Python; the frame, suspended in
    // the call that reached us, stays where it is.
    const OperandSlots* table = slots_of(code);
    if (!table || unit < 0 || unit >= table->units) return false;
    const int depth = table->slots[2 * unit], count = table->slots[2 * unit + 1];
    for (int k = depth - count; k < depth; ++k)
        if (stack[k] == operand) return Py_REFCNT(operand) == 1;
    return false;
}

#endif

}  // namespace tapegrad
