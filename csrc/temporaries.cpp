#include "temporaries.hpp"

#include <dlfcn.h>
#include <execinfo.h>

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
// not read it. A refcount of 1 proves that only if the caller owns that
// reference: the interpreter does, but C code may pass a borrowed reference
// to an object a list owns. So, as numpy does, the C stack is checked: above
// our own frames there must be only the interpreter's, up to its eval loop.

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

}  // namespace tapegrad
