// The recording row policy, for create_graph=True (Note [Recording sweep]).
#pragma once

#include <pybind11/pybind11.h>

#include <cstdint>
#include <vector>

#include "quiet_numpy.hpp"
#include "sweep.hpp"

namespace tapegrad {

namespace py = pybind11;

// Note [Recording sweep]
// The same walk as the numeric sweep (Note [One sweep]), with gradients that
// are Tensors (or constants, where nothing recorded feeds them) and each
// row's backward run through TapeValue or Recording (Note [Recording]). The
// backward's operations are recorded on the same tape, above the rows being
// swept, so the loop never meets them; since recording may move the tape's
// columns, every row is a special row (none runs inline). The values a
// formula reads are Tensors standing on the rows that hold them
// (node_tensor), so the recorded backward is joined to the forward graph, and
// differentiating a gradient goes back through both. Grad mode is on while it
// runs, as in PyTorch. It is the slow path: one native op call per op of the
// backward.
class RecordingRows {
public:
    explicit RecordingRows(Tape& tape);
    ~RecordingRows();
    RecordingRows(const RecordingRows&) = delete;
    RecordingRows& operator=(const RecordingRows&) = delete;

    // Starts `node`'s gradient at `initial` (stolen: a float, an ndarray, or a Tensor whose
    // history then joins the gradients').
    bool start_from(uint32_t node, PyObject* initial);
    // The gradient of a reached source as a new Tensor (with history when it has one).
    PyObject* tensor_result(const Source& s);

    // ---- the policy (Note [One sweep]) ----
    static constexpr bool INLINE_ROWS = false;
    struct Cursor {
        const uint8_t* op;
        const uint8_t* flags;
        uint8_t* reached;
    };
    Cursor cursor() { return {t.rows().op_data(), t.rows().flags_data(), reached.data()}; }
    size_t top() const { return reached.size(); }
    bool start() { return quiet.start(); }
    static bool special(uint8_t, uint8_t) { return true; }  // no row runs inline

    Next op_row(uint32_t row, uint8_t code, uint8_t f);
    bool pass_version(uint32_t row);
    const char* nonfinite(uint32_t node) const { return tapegrad::nonfinite(grads[node].ptr()); }
    py::object hook_argument(uint32_t row) { return as_tensor(grads[row]); }
    py::object gradient_value(const py::object& r, const char* what);
    py::object shape_of(const py::object& value) const;
    bool set_gradient(uint32_t row, const py::object& value);
    py::object user_backward(const py::object& record);
    py::object user_argument(uint32_t node);
    py::object user_gradient(PyObject* item) { return py::reinterpret_borrow<py::object>(item); }
    bool add_gradient(uint32_t node, const py::object& g);
    // backward(create_graph=True): a leaf's gradient added into its .grad out
    // of place (the sum is recorded), as PyTorch does.
    bool accumulate(TensorObject* leaf, uint32_t row);

    Tape& t;
    std::vector<uint8_t> reached;
    const bool check_anomalies;  // Note [Anomaly mode]
    const std::vector<uint8_t>* needed = nullptr;  // Note [Needed rows]; null: every row
    bool wants(uint32_t node) const { return t.rows().wants_gradient(node) && (!needed || (*needed)[node]); }

private:
    void elementwise_row(uint32_t row);
    void array_op_row(uint32_t row);
    void add(uint32_t node, py::object g);
    py::object sum_to_node(py::object g, uint32_t node);
    py::object cast_to_node(py::object g, uint32_t node);
    py::object as_tensor(const py::object& g);

    std::vector<py::object> grads;  // per row: the gradient so far, or null
    bool was_enabled, was_sweeping;
    QuietNumpy quiet;
};

extern template class Sweep<RecordingRows>;
using GraphSweep = Sweep<RecordingRows>;

}  // namespace tapegrad
