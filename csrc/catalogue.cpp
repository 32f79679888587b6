// Note [Catalogue] (catalogue.hpp): the op tables' entries, exported to Python.
#include "catalogue.hpp"

#include <string>
#include <vector>

#include "array_ops.hpp"
#include "ops.hpp"
#include "tensor.hpp"

namespace tapegrad {

namespace {

struct Entry {
    const char* name;
    const char* function;
    const char* kind;  // "elementwise" (ops.hpp) or "array" (array_ops.hpp)
    int code;
    int arity;
    const char* numpy;
    const char* method;
    const char* doc;
};

template <class Op>
Entry entry_of(const char* kind, int code) {
    return {Op::name, FunctionOf<Op>::value, kind, code, Op::arity, Op::numpy, Op::method, Op::doc};
}

std::vector<Entry> entries() {
    std::vector<Entry> all;
#define TAPEGRAD_ELEMENTWISE_ENTRY(code, cls) all.push_back(entry_of<cls>("elementwise", OP_##code));
    TAPEGRAD_OPS(TAPEGRAD_ELEMENTWISE_ENTRY)
#undef TAPEGRAD_ELEMENTWISE_ENTRY
#define TAPEGRAD_ARRAY_ENTRY(code, cls) all.push_back(entry_of<cls>("array", OP_##code));
    TAPEGRAD_ARRAY_OPS(TAPEGRAD_ARRAY_ENTRY)
#undef TAPEGRAD_ARRAY_ENTRY
    return all;
}

// The docstring of an elementwise op's function: its signature (which
// inspect.signature reads), its entry's line, what it does with plain values,
// and an example that tests/test_docstrings.py runs.
std::string elementwise_doc(const Entry& e) {
    const std::string f = e.function;
    const bool unary = e.arity == 1;
    return f + (unary ? "(x)" : "(a, b)") + "\n--\n\n" + e.doc + "\n\nRecorded when " +
           (unary ? "x is a Tensor" : "a or b is a Tensor") +
           "; on numbers or ndarrays, computes the value and records nothing.\n\n"
           "Example:\n    >>> import tapegrad as tg\n    >>> y = tg." + f +
           (unary ? "(tg.Tensor(0.5))" : "(tg.Tensor(0.5), 2.0)");
}

PyObject* optional_str(const char* s) { return s ? PyUnicode_FromString(s) : Py_NewRef(Py_None); }

}  // namespace

bool add_catalogue(PyObject* module) {
    const std::vector<Entry> all = entries();
    // Kept for the life of the process: Python's function objects point into them.
    static std::vector<std::string> docs;
    static std::vector<PyMethodDef> defs;
    docs.reserve(all.size());
    for (const Entry& e : all) {
        if (std::string(e.kind) != "elementwise" || !e.function) continue;
        docs.push_back(elementwise_doc(e));
        defs.push_back({e.function, elementwise_function(static_cast<uint8_t>(e.code)),
                        e.arity == 1 ? METH_O : METH_FASTCALL, docs.back().c_str()});
    }
    defs.push_back({nullptr, nullptr, 0, nullptr});
    if (PyModule_AddFunctions(module, defs.data()) < 0) return false;

    PyObject* catalogue = PyTuple_New(static_cast<Py_ssize_t>(all.size()));
    if (!catalogue) return false;
    for (size_t k = 0; k < all.size(); ++k) {
        const Entry& e = all[k];
        PyObject* item = Py_BuildValue("{s:s,s:N,s:s,s:i,s:i,s:N,s:N,s:s}", "name", e.name, "function",
                                       optional_str(e.function), "kind", e.kind, "code", e.code, "arity",
                                       e.arity, "numpy", optional_str(e.numpy), "method",
                                       optional_str(e.method), "doc", e.doc);
        if (!item) {
            Py_DECREF(catalogue);
            return false;
        }
        PyTuple_SET_ITEM(catalogue, static_cast<Py_ssize_t>(k), item);
    }
    if (PyModule_AddObject(module, "CATALOGUE", catalogue) == 0) return true;  // stolen on success
    Py_DECREF(catalogue);
    return false;
}

}  // namespace tapegrad
