// The numeric row policy (Note [One sweep]): gradients are doubles and ndarrays.
//
// Scalar gradients live in a dense array of doubles; array gradients in
// buffers the sweep owns, one per arrays slot, added into in place.
#pragma once

#include <pybind11/pybind11.h>

#include <cstdint>
#include <vector>

#include "arrays.hpp"
#include "ops.hpp"
#include "quiet_numpy.hpp"
#include "sweep.hpp"

namespace tapegrad {

class FusedGroups;

class NumericRows {
public:
    // Uses the tape's scratch buffers (warm memory) unless a sweep is
    // already running on them: a user backward_fn may start another.
    explicit NumericRows(Tape& tape);
    ~NumericRows();
    NumericRows(const NumericRows&) = delete;
    NumericRows& operator=(const NumericRows&) = delete;

    // Starts `node`'s gradient at `initial` (stolen: a float, or an ndarray of the node's
    // shape and dtype, which becomes its buffer when nothing else holds it).
    bool start_from(uint32_t node, PyObject* initial);
    // The gradient that reached a source: a float or an ndarray of its shape.
    PyObject* result(const Source& s);
    // The same as a Tensor (read-only: Note [Immutable values]).
    PyObject* tensor_result(const Source& s);

    // ---- the policy (Note [One sweep]) ----
    static constexpr bool INLINE_ROWS = true;

    struct Cursor {
        const uint8_t* op;
        const uint8_t* flags;
        const uint32_t* in0;
        const uint32_t* in1;
        const Value* val;
        const double* consts;
        double* grad;
        uint8_t* reached;
        Cursor(const Tape& t, std::vector<double>& g, std::vector<uint8_t>& r)
            : op(t.rows().op_data()), flags(t.rows().flags_data()), in0(t.rows().in0_data()), in1(t.rows().in1_data()),
              val(t.rows().val_data()), consts(t.rows().consts_data()), grad(g.data()), reached(r.data()) {}
    };
    Cursor cursor() { return Cursor(t, grad, reached); }
    size_t top() const { return reached.size(); }
    bool start() { return true; }  // numpy is quieted at the first array op (array_op_row)

    // Every row but a plain scalar op of the hot ones goes to Sweep::special_row.
    static bool special(uint8_t code, uint8_t f) {
        return code <= OP_STALE || code >= OP_FIRST_COLD || (f & (F_ARRAY | F_HOOKED | F_FREED));
    }

    // The hot loop's body: the op's backward is inlined per op by visit_hot_op,
    // so each case is straight-line code (a shared helper here costs 2x); the
    // other ops take one call (Note [Hot ops] in ops.hpp).
    TAPEGRAD_ALWAYS_INLINE static void scalar_row(const Cursor& c, uint32_t row, uint8_t code) {
        const uint8_t f = c.flags[row];
        const uint32_t ia = c.in0[row], ib = c.in1[row];
        const double a = (f & F_A_NUMBER) ? c.consts[ia] : c.val[ia].number;
        const double out = c.val[row].number, g = c.grad[row];
        visit_hot_op(code, [&](auto tag) { scalar_backward_into<typename decltype(tag)::type>(c, f, ia, ib, a, out, g); });
    }

    Next op_row(uint32_t row, uint8_t code, uint8_t f);
    bool pass_version(uint32_t row);
    const char* nonfinite(uint32_t node) const;
    py::object hook_argument(uint32_t row);
    py::object gradient_value(const py::object& r, const char* what);
    py::object shape_of(const py::object& value) const { return shape_text(value.ptr()); }
    bool set_gradient(uint32_t row, const py::object& value);
    py::object user_backward(const py::object& record) { return record.attr("backward_fn"); }
    py::object user_argument(uint32_t node);
    py::object user_gradient(PyObject* item);
    bool add_gradient(uint32_t node, const py::object& value);
    bool accumulate(TensorObject* leaf, uint32_t row);

    Tape& t;
    QuietNumpy quiet_numpy;
    const bool nested;
    const bool check_anomalies;  // Note [Anomaly mode]
    const std::vector<uint8_t>* needed = nullptr;  // Note [Needed rows]; null: every row
    // A replay's fused groups (Note [Fused rows]): the roots that ran fused
    // take their backward from it. Null in an eager sweep.
    FusedGroups* fused = nullptr;
    // Whether an op's input `node` gets a gradient: it can take one and leads to a source.
    bool wants(uint32_t node) const { return t.rows().wants_gradient(node) && (!needed || (*needed)[node]); }

private:
    std::vector<double> own_grad;
    std::vector<uint8_t> own_reached;
    std::vector<PyObject*> own_array_grad;

public:
    // For an op's backward outside the policy (a fused group's): the sink of
    // input `node`'s gradient for an output of out's layout; g (stolen) added
    // into node's gradient; a row's gradient given back.
    bool open_sink(uint32_t node, PyObject* out, GradSink& sink);
    bool add_array(uint32_t node, PyObject* g);
    void spend(PyObject*& buffer);

    std::vector<double>& grad;
    std::vector<uint8_t>& reached;
    std::vector<PyObject*>& array_grad;

private:
    // Adds a scalar row's backward into its inputs' gradients.
    template <class Op>
    TAPEGRAD_ALWAYS_INLINE static void scalar_backward_into(const Cursor& c, uint8_t f, uint32_t ia, uint32_t ib,
                                                            double a, double out, double g) {
        if constexpr (Op::arity == 2) {
            const double b = (f & F_B_NUMBER) ? c.consts[ib] : c.val[ib].number;
            double ga = 0.0, gb = 0.0;
            backward_wanted<Op>(a, b, out, g, ga, gb, !(f & F_A_CONST), !(f & F_B_CONST));
            if (!(f & F_A_CONST)) {
                c.grad[ia] += ga;
                c.reached[ia] |= REACHED;
            }
            if (!(f & F_B_CONST)) {
                c.grad[ib] += gb;
                c.reached[ib] |= REACHED;
            }
        } else {
            c.grad[ia] += Op::backward(a, out, g);
            c.reached[ia] |= REACHED;
        }
    }

    void cold_scalar_row(uint32_t row);
    void add_number(uint32_t node, double g) {
        grad[node] += g;
        reached[node] |= REACHED;
    }
    bool add_uniform(uint32_t node, PyObject* g);
    bool own(PyObject*& buffer, PyObject* like);
    bool array_row(uint32_t row);
    bool pass_gradient(uint32_t node, PyObject*& g, PyObject* out, bool move);
    bool array_op_row(uint32_t row);
    PyObject* pooled_like(PyObject* like);
    PyObject* grad_object(uint32_t node);
    bool accumulate_into(TensorObject* leaf, PyObject* g);
    bool add_in_place(TensorObject* acc, PyObject* g);
};

// ---- one row's numeric backward, as the sweep runs it (record_vjp in
// history.cpp asks for one row's alone, a built-in record's backward_fn) ----

// A scalar row's input gradients for its output's gradient g (both
// computed; gb is 0 for a unary op).
void scalar_row_gradients(const Tape& t, uint32_t row, double g, double& ga, double& gb);

// An elementwise array row's backward for its output's gradient g: its
// operands read from the tape, its input gradients written into the sinks
// (nullptr: not wanted) in one fused pass (array_backward).
bool elementwise_row_gradients(Tape& t, uint32_t row, PyObject* g, GradSink* sa, GradSink* sb, BufferPool* pool);

// An input gradient (stolen) as node's: summed down to its shape (Note
// [Undoing broadcasts]), a float for a scalar node; a new reference.
PyObject* gradient_for_node(const Tape& t, uint32_t node, PyObject* g);

extern template class Sweep<NumericRows>;
using NumericSweep = Sweep<NumericRows>;

}  // namespace tapegrad
