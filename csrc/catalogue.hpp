// Note [Catalogue]
// An op's public face is declared on its struct, next to its math (ops.hpp
// for elementwise ops, array_ops.hpp and the family headers for the rest):
//   name      the op's name on the tape (records, viz, error messages);
//   function  tapegrad's function, dotted for a submodule ("linalg.inv");
//             the name unless given; nullptr for an op reached only through
//             an operator or another op (getitem, scatter_add);
//   numpy     the numpy or scipy callables that dispatch to it, space-separated
//             ("numpy.max numpy.amax"), or nullptr;
//   method    the Tensor method, or nullptr;
//   arity     the number of Tensor inputs (-1: any);
//   doc       one line, the start of the function's docstring.
// _core.CATALOGUE exports them, one tuple per op, and python/tapegrad/catalogue.py
// builds from them the functions, numpy's dispatch maps, the Tensor methods,
// __all__ and the docstrings; tests/test_catalogue.py fails when an entry is
// unreachable. Adding an op is its struct, one line in its table's list, and
// its tests.
#pragma once

#include <Python.h>

#include <type_traits>

namespace tapegrad {

// `function` when the struct declares it, else its name.
template <class Op, class = void>
struct FunctionOf {
    static constexpr const char* value = Op::name;
};
template <class Op>
struct FunctionOf<Op, std::void_t<decltype(Op::function)>> {
    static constexpr const char* value = Op::function;
};

// Adds the native function of each elementwise op (documented from its entry)
// and CATALOGUE to the module.
bool add_catalogue(PyObject* module);

}  // namespace tapegrad
