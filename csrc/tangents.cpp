#include "tangents.hpp"

#include <string>

#include "array_apply.hpp"
#include "array_ops.hpp"
#include "arrays.hpp"
#include "numeric_sweep.hpp"
#include "sweep_errors.hpp"

namespace tapegrad {

namespace {

PyArrayObject* arr(PyObject* a) { return reinterpret_cast<PyArrayObject*>(a); }

// Element j (in C order) of a C-contiguous float32 or float64 array set to v.
void set_flat(PyObject* a, npy_intp j, double v) {
    void* at = static_cast<char*>(PyArray_DATA(arr(a))) + j * PyArray_ITEMSIZE(arr(a));
    if (PyArray_TYPE(arr(a)) == NPY_FLOAT32) *static_cast<float*>(at) = static_cast<float>(v);
    else *static_cast<double*>(at) = v;
}

py::object steal(PyObject* p) {
    if (!p) throw py::error_already_set();
    return py::reinterpret_steal<py::object>(p);
}

// `t` as a fresh C-contiguous array of like's shape and dtype (a number is
// filled in, an array broadcast and cast). `what` names it in an error.
py::object shaped_like(PyObject* t, PyObject* like, const std::string& what) {
    if (!PyArray_Check(t)) {
        const double v = PyFloat_AsDouble(t);
        if (v == -1.0 && PyErr_Occurred()) throw py::error_already_set();
        return steal(filled_like(like, v));
    }
    const py::object view = steal(broadcast_view(t, PyArray_NDIM(arr(like)), PyArray_DIMS(arr(like))));
    PyArray_Descr* dtype = PyArray_DESCR(arr(like));
    Py_INCREF(dtype);
    py::object copy = steal(PyArray_FromAny(view.ptr(), dtype, 0, 0,
                                            NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_ENSURECOPY | NPY_ARRAY_WRITEABLE |
                                                NPY_ARRAY_FORCECAST,
                                            nullptr));
    if (!PyArray_SAMESHAPE(arr(copy.ptr()), arr(like)))
        throw py::value_error(what + ": a tangent of shape " + std::string(py::str(shape_text(t))) +
                              " for a value of shape " + std::string(py::str(shape_text(like))));
    return copy;
}

// A row of J dotted with the tangents: the sum over inputs of <g_k, t_k>
// (None on either side: nothing).
double dot(const std::vector<py::object>& grads, const std::vector<py::object>& tangents) {
    double sum = 0.0;
    for (size_t k = 0; k < grads.size(); ++k) {
        if (grads[k].is_none() || tangents[k].is_none()) continue;
        sum += sum_all(steal(PyNumber_Multiply(grads[k].ptr(), tangents[k].ptr())).ptr());
        if (PyErr_Occurred()) throw py::error_already_set();
    }
    return sum;
}

// J t of a row without a tangent rule of its own, from its backward (J^T g),
// for an output of layout `like` (nullptr: a number): row j of J is what
// pull(e_j) gives, one gradient per input (None: none), and (J t)_j is that
// row dotted with t. Each e_j is a fresh array: a backward may write into its g.
template <class Pull>
py::object by_backward(PyObject* like, const std::vector<py::object>& tangents, Pull&& pull) {
    if (!like) return py::float_(dot(pull(py::float_(1.0)), tangents));
    py::object result = steal(filled_like(like, 0.0));
    for (npy_intp j = 0, m = PyArray_SIZE(arr(like)); j < m; ++j) {
        const py::object unit = steal(filled_like(like, 0.0));
        set_flat(unit.ptr(), j, 1.0);
        set_flat(result.ptr(), j, dot(pull(unit), tangents));
    }
    return result;
}

// The tangents of one direction: a number per scalar row, an ndarray per array row.
class Tangents {
public:
    Tangents(Tape& tape) : t_(tape), rows_(tape.rows()), has_(rows_.size(), 0), number_(rows_.size(), 0.0),
                           array_(rows_.size()) {}

    void set_input(uint32_t row, PyObject* tangent, size_t k) {
        if (rows_.is_array(row)) {
            set(row, shaped_like(tangent, rows_.array_of(row), "jvp: input " + std::to_string(k)));
            return;
        }
        const double v = PyFloat_AsDouble(tangent);
        if (v == -1.0 && PyErr_Occurred()) {
            PyErr_Clear();
            throw py::value_error("jvp: input " + std::to_string(k) + " is a float; its tangent must be a number");
        }
        set(row, v);
    }

    void row(uint32_t row) {
        const uint8_t code = rows_.op(row);
        if (code == OP_CUSTOM) return function_row(row);
        if (is_array_op(code)) return array_op_row(row);
        if (rows_.flags(row) & F_ARRAY) return elementwise_array_row(row);
        scalar_row(row);
    }

    py::object result(uint32_t output) const {
        if (!has_[output]) {
            if (rows_.is_array(output)) return steal(filled_like(rows_.array_of(output), 0.0));
            return py::float_(0.0);
        }
        if (rows_.is_array(output)) return array_[output];
        return py::float_(number_[output]);
    }

private:
    void set(uint32_t row, double v) {
        has_[row] = 1;
        number_[row] = v;
    }
    void set(uint32_t row, py::object a) {
        has_[row] = 1;
        array_[row] = std::move(a);
    }
    // Node `node`'s tangent as numpy takes it (a float or an ndarray), or None.
    py::object of(uint32_t node) const {
        if (!has_[node]) return py::none();
        return rows_.is_array(node) ? array_[node] : py::object(py::float_(number_[node]));
    }

    void scalar_row(uint32_t row) {
        const uint8_t f = rows_.flags(row);
        const uint32_t ia = rows_.in0(row), ib = rows_.in1(row);
        const bool ta = !(f & F_A_CONST) && has_[ia];
        const bool tb = op_arity(rows_.op(row)) == 2 && !(f & F_B_CONST) && has_[ib];
        if (!ta && !tb) return;
        double sum = 0.0, ga = 0.0, gb = 0.0;
        if (ta) {
            scalar_row_gradients(t_, row, number_[ia], ga, gb);
            sum += ga;
        }
        if (tb) {
            scalar_row_gradients(t_, row, number_[ib], ga, gb);
            sum += gb;
        }
        set(row, sum);
    }

    void elementwise_array_row(uint32_t row) {
        const uint8_t f = rows_.flags(row);
        PyObject* out = rows_.array_of(row);
        const uint32_t operand[2] = {rows_.in0(row), rows_.in1(row)};
        const bool tangent[2] = {!(f & F_A_CONST) && has_[operand[0]],
                                 op_arity(rows_.op(row)) == 2 && !(f & F_B_CONST) && has_[operand[1]]};
        py::object sum;
        for (int k = 0; k < 2; ++k) {
            if (!tangent[k]) continue;
            const py::object g = shaped_like(of(operand[k]).ptr(), out, row_op_name(rows_.op(row)));
            GradSink sink;
            if (sum) {
                sink.into = sum.ptr();
                sink.add = true;
            }
            if (!elementwise_row_gradients(t_, row, g.ptr(), k == 0 ? &sink : nullptr, k == 1 ? &sink : nullptr,
                                           nullptr))
                throw py::error_already_set();
            if (!sum) sum = steal(sink.fresh);
        }
        if (sum) set(row, sum);
    }

    void array_op_row(uint32_t row) {
        const ArrayRecord& r = rows_.array_record(rows_.in0(row));
        std::vector<py::object> held;
        std::vector<PyObject*> tangents;
        bool any = false;
        for (int64_t in : r.inputs) {
            held.push_back(in >= 0 ? of(static_cast<uint32_t>(in)) : py::none());
            any = any || !held.back().is_none();
            tangents.push_back(held.back().is_none() ? nullptr : held.back().ptr());
        }
        if (!any) return;
        PyObject* out = rows_.array_of(row);
        if (!array_op_has_tangent_rule(rows_.op(row))) {
            set(row, by_backward(out, held, [&](const py::object& unit) {
                std::vector<PyObject*> grads;
                if (!array_op_backward(t_, row, unit.ptr(), grads)) throw py::error_already_set();
                std::vector<py::object> pulled;
                for (PyObject* g : grads)
                    pulled.push_back(g ? py::reinterpret_steal<py::object>(g) : py::object(py::none()));
                return pulled;
            }));
            return;
        }
        const py::object t = steal(array_op_tangent(t_, row, tangents));
        set(row, shaped_like(t.ptr(), out, row_op_name(rows_.op(row))));
    }

    // Row j of a Function's Jacobian is its backward of e_j (Note [Tangent sweep]).
    void function_row(uint32_t row) {
        // Copied: the callback runs Python.
        const UserRecord& record = rows_.user_record(rows_.in0(row));
        const std::vector<uint32_t> inputs = record.inputs, outputs = record.outputs;
        const py::object holder = py::reinterpret_borrow<py::object>(record.record);
        const py::object backward = holder.attr("backward_fn");
        std::vector<py::object> input_tangents;
        bool any = false;
        for (uint32_t in : inputs) {
            input_tangents.push_back(of(in));
            any = any || has_[in];
        }
        if (!any) return;
        auto zero_of = [&](uint32_t node) -> py::object {
            return rows_.is_array(node) ? steal(filled_like(rows_.array_of(node), 0.0)) : py::object(py::float_(0.0));
        };
        for (size_t q = 0; q < outputs.size(); ++q) {
            const uint32_t o = outputs[q];
            // Output q's unit, zeros for the others: the record's gradients of the inputs,
            // checked as the reverse sweep checks them (Sweep::take_user_grads): a
            // gradient broadcast against a tangent would give a wrong J t silently.
            py::object t = by_backward(rows_.is_array(o) ? rows_.array_of(o) : nullptr, input_tangents,
                                       [&](const py::object& unit) {
                py::tuple args(outputs.size());
                for (size_t q2 = 0; q2 < outputs.size(); ++q2) args[q2] = q2 == q ? unit : zero_of(outputs[q2]);
                const py::object grads = backward(*args);
                if (!PyList_Check(grads.ptr()) && !PyTuple_Check(grads.ptr())) {
                    user_result_error(holder.ptr(), grads.ptr());
                    throw py::error_already_set();
                }
                const py::tuple items = steal(PySequence_Tuple(grads.ptr()));
                if (items.size() != inputs.size()) {
                    user_count_error(holder.ptr(), static_cast<Py_ssize_t>(items.size()),
                                     static_cast<Py_ssize_t>(inputs.size()));
                    throw py::error_already_set();
                }
                std::vector<py::object> pulled(inputs.size(), py::none());
                for (size_t k = 0; k < inputs.size(); ++k) {
                    if (items[k].is_none() || input_tangents[k].is_none()) continue;
                    pulled[k] = py::reinterpret_steal<py::object>(to_float_array(items[k].ptr(), "backward_fn"));
                    if (!pulled[k]) {
                        PyErr_Clear();
                        user_type_error(holder.ptr(), static_cast<Py_ssize_t>(k), items[k].ptr());
                        throw py::error_already_set();
                    }
                    PyObject* like = rows_.is_array(inputs[k]) ? rows_.array_of(inputs[k]) : nullptr;
                    const py::object got = shape_text(pulled[k].ptr());
                    if (!shape_text(like).equal(got)) {
                        user_shape_error(holder.ptr(), static_cast<Py_ssize_t>(k), got.ptr(), like);
                        throw py::error_already_set();
                    }
                }
                return pulled;
            });
            if (rows_.is_array(o)) set(o, std::move(t));
            else set(o, t.cast<double>());
        }
    }

    Tape& t_;
    RowStore& rows_;
    std::vector<uint8_t> has_;
    std::vector<double> number_;
    std::vector<py::object> array_;
};

}  // namespace

py::object tangent_of(Tape& tape, const std::vector<uint32_t>& order, const std::vector<uint32_t>& inputs,
                      const py::sequence& direction, uint32_t output) {
    if (static_cast<size_t>(py::len(direction)) != inputs.size())
        throw py::value_error("jvp: " + std::to_string(py::len(direction)) + " tangents for " +
                              std::to_string(inputs.size()) + " inputs");
    Tangents tangents(tape);
    for (size_t k = 0; k < inputs.size(); ++k) {
        const py::object t = direction[k];
        if (inputs[k] != UINT32_MAX && !t.is_none()) tangents.set_input(inputs[k], t.ptr(), k);
    }
    for (uint32_t row : order) tangents.row(row);
    return tangents.result(output);
}

}  // namespace tapegrad
