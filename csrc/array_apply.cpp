#include "array_apply.hpp"

#include <string>

#include "array_ops.hpp"
#include "arrays.hpp"
#include "numeric.hpp"
#include "tensor.hpp"

namespace tapegrad {

namespace {

// Re-raises the pending Python error with the op's name in front, keeping its type.
void prefix_error(const char* op) {
    PyObject *type, *value, *traceback;
    PyErr_Fetch(&type, &value, &traceback);
    PyErr_NormalizeException(&type, &value, &traceback);
    PyObject* text = value ? PyObject_Str(value) : nullptr;
    if (text && PyUnicode_Check(text)) {
        PyErr_Format(type, "%s: %U", op, text);
        Py_XDECREF(type);
        Py_XDECREF(value);
        Py_XDECREF(traceback);
    } else {
        PyErr_Restore(type, value, traceback);
    }
    Py_XDECREF(text);
}

// The value numpy computes with for one input, and whether it is a Tensor.
struct Input {
    py::object value;
    TensorObject* tensor = nullptr;
};

bool read_inputs(PyObject* seq_obj, const char* op, std::vector<Input>& inputs) {
    PyObject* seq = PySequence_Fast(seq_obj, "array_op: inputs must be a sequence");
    if (!seq) return false;
    const Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    bool ok = true;
    for (Py_ssize_t k = 0; ok && k < n; ++k) {
        PyObject* item = PySequence_Fast_GET_ITEM(seq, k);
        Input in;
        if (is_tensor(item)) {
            in.tensor = reinterpret_cast<TensorObject*>(item);
            in.value = py::reinterpret_steal<py::object>(value_object(in.tensor));
        } else if (PyFloat_Check(item) || PyLong_Check(item)) {
            in.value = py::reinterpret_steal<py::object>(PyFloat_FromDouble(PyFloat_AsDouble(item)));
        } else {
            in.value = py::reinterpret_steal<py::object>(to_float_array(item, op));
        }
        ok = in.value && !PyErr_Occurred();
        inputs.push_back(std::move(in));
    }
    Py_DECREF(seq);
    return ok;
}

}  // namespace

PyObject* as_result_array(PyObject* result) {
    PyObject* a = PyArray_FromAny(result, nullptr, 0, 0, NPY_ARRAY_ENSUREARRAY, nullptr);
    if (!a) return nullptr;
    const int type = PyArray_TYPE(reinterpret_cast<PyArrayObject*>(a));
    if (type != NPY_FLOAT32 && type != NPY_FLOAT64) {
        PyObject* cast = PyArray_FROM_OTF(a, NPY_FLOAT64, NPY_ARRAY_ENSUREARRAY);
        Py_DECREF(a);
        a = cast;
        if (!a) return nullptr;
    }
    PyArray_CLEARFLAGS(reinterpret_cast<PyArrayObject*>(a), NPY_ARRAY_WRITEABLE);
    return a;
}

namespace {

// Runs f, the C++ exception it may throw turned into the Python error it
// stands for (false); py::value_error and friends keep their Python type.
template <class F>
bool with_python_errors(F&& f) {
    try {
        f();
        return true;
    } catch (py::error_already_set& e) {
        e.restore();
    } catch (py::builtin_exception& e) {
        e.set_error();
    } catch (const std::exception& e) {
        PyErr_SetString(PyExc_RuntimeError, e.what());
    }
    return false;
}

}  // namespace

PyObject* array_op_forward(Tape& tape, uint8_t code, const Values& values, PyObject* params) {
    PyObject* result = nullptr;
    with_python_errors([&] {
        py::tuple p = py::reinterpret_borrow<py::tuple>(params);
        PoolScope use_pool(tape.pool);
        visit_array_op(code, [&](auto tag) {
            using Op = typename decltype(tag)::type;
            result = Op::forward(Numeric::get(), values, p).release().ptr();
        });
    });
    if (!result) prefix_error(row_op_name(code));
    return result;
}

PyObject* apply_array_op(long code_arg, PyObject* inputs_obj, PyObject* params) {
    if (code_arg <= OP_FIRST_ARRAY || code_arg >= OP_ARRAY_END) {
        PyErr_Format(PyExc_ValueError, "array_op: %ld is not the code of an array op", code_arg);
        return nullptr;
    }
    if (!PyTuple_Check(params)) {
        PyErr_SetString(PyExc_TypeError, "array_op: params must be a tuple");
        return nullptr;
    }
    const uint8_t code = static_cast<uint8_t>(code_arg);
    const char* name = row_op_name(code);
    Tape* tape = current_tape();
    if (!tape) return nullptr;
    tape->maybe_reclaim();  // a safe point, before any input is read
    std::vector<Input> inputs;
    if (!read_inputs(inputs_obj, name, inputs)) return nullptr;
    Values values;
    for (const Input& in : inputs) values.push_back(in.value);
    PyObject* result = array_op_forward(*tape, code, values, params);
    if (!result) return nullptr;
    bool any_tensor = false, record = false;
    for (const Input& in : inputs) {
        any_tensor = any_tensor || in.tensor;
        record = record || (in.tensor && (in.tensor->flags & T_REQUIRES_GRAD));
    }
    if (!any_tensor) return result;  // plain values in, numpy's value out
    PyObject* array = as_result_array(result);
    Py_DECREF(result);
    if (!array) return nullptr;
    if (!record || !tape->grad_mode()) {
        // Under no_grad, a value computed from f's inputs would be a constant of the trace.
        if (record && tape->tracing && !allowed_while_tracing("an op under no_grad")) {
            Py_DECREF(array);
            return nullptr;
        }
        return new_tensor(*tape, 0.0, array, UINT32_MAX, false);
    }
    ArrayRecord r;
    for (const Input& in : inputs) {
        if (in.tensor) {
            const uint32_t node = node_on(*tape, in.tensor);
            if (node == UINT32_MAX) {
                Py_DECREF(array);
                return nullptr;
            }
            // Array-op formulas may read any input (Note [Saved values]).
            if (in.tensor->array) tape->rows().keep_value(node, in.tensor->array);
            r.inputs.push_back(node);
        } else {
            // Formulas may read any constant: it must not change (Note [Immutable values]).
            PyObject* kept = PyArray_Check(in.value.ptr()) ? immutable_value(in.value.ptr())
                                                          : Py_NewRef(in.value.ptr());
            if (!kept) {
                Py_DECREF(array);
                return nullptr;
            }
            r.inputs.push_back(-static_cast<int64_t>(tape->rows().add_array(kept)) - 1);
            Py_DECREF(kept);
        }
    }
    // Note [Immutable values]: arrays among the parameters are kept as copies.
    r.params = array_op_array_params(code) ? immutable_params(params) : Py_NewRef(params);
    if (!r.params) {
        Py_DECREF(array);
        return nullptr;
    }
    // Index copies count toward the tape's memory bound (Note [Reclaiming records]).
    if (array_op_array_params(code)) tape->rows().count_params(r.params);
    Value v;
    // The data only if the op's backward reads it (array_ops.hpp, Note [Saved values]).
    PyObject* kept = array_op_reads_out(code) ? Py_NewRef(array) : layout_of(array);
    if (!kept) {
        Py_DECREF(r.params);
        Py_DECREF(array);
        return nullptr;
    }
    v.index = tape->rows().add_array(kept);
    Py_DECREF(kept);
    const uint32_t node = tape->push(code, F_ARRAY, tape->rows().next_array_record(), 0, v);
    if (node == UINT32_MAX) {
        Py_DECREF(r.params);
        Py_DECREF(array);
        return nullptr;
    }
    tape->rows().add_array_record(std::move(r));
    return new_tensor(*tape, 0.0, array, node, true);
}

PyObject* apply_matmul(PyObject* a, PyObject* b) {
    PyObject* inputs = PyTuple_Pack(2, a, b);
    PyObject* params = PyTuple_New(0);
    PyObject* result = inputs && params ? apply_array_op(OP_MATMUL, inputs, params) : nullptr;
    Py_XDECREF(inputs);
    Py_XDECREF(params);
    return result;
}

PyObject* array_op_entry(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "array_op(code, inputs, params) takes 3 arguments");
        return nullptr;
    }
    const long code = PyLong_AsLong(args[0]);
    if (code == -1 && PyErr_Occurred()) return nullptr;
    return apply_array_op(code, args[1], args[2]);
}

bool array_op_backward(Tape& tape, uint32_t row, PyObject* g, std::vector<PyObject*>& grads,
                       const std::vector<uint8_t>* needed) {
    // Copied: the backward may run Python that records, moving array_records.
    const ArrayRecord r = tape.rows().array_record(tape.rows().in0(row));
    const uint8_t code = tape.rows().op(row);
    grads.assign(r.inputs.size(), nullptr);
    const bool ok = with_python_errors([&] {
        Values x, gx(r.inputs.size());
        for (int64_t in : r.inputs) {
            PyObject* v = in >= 0 ? tape.rows().operand_object(static_cast<uint32_t>(in), false, false)
                                  : Py_NewRef(tape.rows().array(static_cast<size_t>(-in - 1)));
            x.push_back(py::reinterpret_steal<py::object>(v));
        }
        py::object out = array_op_reads_out(code) ? py::reinterpret_borrow<py::object>(tape.rows().array_of(row))
                                                  : py::none();
        py::object grad = py::reinterpret_borrow<py::object>(g);
        py::tuple p = py::reinterpret_borrow<py::tuple>(r.params);
        for (py::object& v : gx) v = py::none();
        Needs need;
        for (int64_t in : r.inputs)
            need.push_back(in >= 0 && tape.rows().wants_gradient(static_cast<uint32_t>(in)) &&
                           (!needed || (*needed)[static_cast<size_t>(in)]));
        PoolScope use_pool(tape.pool);
        visit_array_op(code, [&](auto tag) {
            using Op = typename decltype(tag)::type;
            Op::backward(Numeric::get(), x, out, grad, p, need, gx);
        });
        for (size_t k = 0; k < gx.size(); ++k) {
            if (!need[k] || gx[k].is_none()) continue;
            grads[k] = PyArray_FromAny(gx[k].ptr(), nullptr, 0, 0, NPY_ARRAY_ENSUREARRAY, nullptr);
            if (!grads[k]) throw py::error_already_set();
        }
    });
    if (ok) return true;
    for (PyObject*& gk : grads) Py_CLEAR(gk);
    prefix_error(row_op_name(code));
    return false;
}

// ---- tangents (Note [Tangent rules] in array_ops.hpp) ----

namespace {

template <class Op, class = void>
struct IsLinear : std::false_type {};
template <class Op>
struct IsLinear<Op, std::void_t<decltype(Op::linear)>> : std::bool_constant<Op::linear> {};
template <class Op, class = void>
struct IsMultilinear : std::false_type {};
template <class Op>
struct IsMultilinear<Op, std::void_t<decltype(Op::multilinear)>> : std::bool_constant<Op::multilinear> {};
template <class Op, class = void>
struct HasTangent : std::false_type {};
template <class Op>
struct HasTangent<Op, std::void_t<decltype(&Op::template tangent<Numeric>)>> : std::true_type {};

// Whether op Op has a tangent rule of its own (else the sweep takes J t from its backward).
template <class Op>
constexpr bool has_tangent_rule() {
    return IsLinear<Op>::value || IsMultilinear<Op>::value || HasTangent<Op>::value;
}

}  // namespace

bool array_op_has_tangent_rule(uint8_t code) {
    bool rule = false;
    visit_array_op(code, [&](auto tag) { rule = has_tangent_rule<typename decltype(tag)::type>(); });
    return rule;
}

PyObject* array_op_tangent(Tape& tape, uint32_t row, const std::vector<PyObject*>& tangents) {
    // Copied: a formula may run Python that records, moving array_records.
    const ArrayRecord r = tape.rows().array_record(tape.rows().in0(row));
    const uint8_t code = tape.rows().op(row);
    PyObject* result = nullptr;
    with_python_errors([&] {
        Values x, t;
        for (size_t k = 0; k < r.inputs.size(); ++k) {
            const int64_t in = r.inputs[k];
            x.push_back(py::reinterpret_steal<py::object>(
                in >= 0 ? tape.rows().operand_object(static_cast<uint32_t>(in), false, false)
                        : Py_NewRef(tape.rows().array(static_cast<size_t>(-in - 1)))));
            t.push_back(tangents[k] ? py::reinterpret_borrow<py::object>(tangents[k]) : py::none());
        }
        const py::object out = py::reinterpret_borrow<py::object>(tape.rows().array_of(row));
        const py::tuple p = py::reinterpret_borrow<py::tuple>(r.params);
        Numeric& b = Numeric::get();
        PoolScope use_pool(tape.pool);
        visit_array_op(code, [&](auto tag) {
            using Op = typename decltype(tag)::type;
            if constexpr (IsLinear<Op>::value) {
                Values z = t;  // an input with no tangent moves by zero
                for (size_t k = 0; k < z.size(); ++k)
                    if (z[k].is_none()) z[k] = b.zeros(b.shape(x[k]), b.dtype(x[k]));
                result = Op::forward(b, z, p).release().ptr();
            } else if constexpr (IsMultilinear<Op>::value) {
                py::object sum;
                for (size_t k = 0; k < t.size(); ++k) {
                    if (t[k].is_none()) continue;
                    Values y = x;
                    y[k] = t[k];
                    py::object term = Op::forward(b, y, p);
                    sum = sum ? b.add(sum, term) : term;
                }
                result = sum.release().ptr();
            } else if constexpr (HasTangent<Op>::value) {
                result = Op::tangent(b, x, out, t, p).release().ptr();
            } else {
                throw py::value_error("no tangent rule: its J t comes from its backward (tangents.cpp)");
            }
        });
    });
    if (!result) prefix_error(row_op_name(code));
    return result;
}

}  // namespace tapegrad
