// The recording sweep, for create_graph=True (Note [Recording sweep]).
#pragma once

#include <pybind11/pybind11.h>

#include <cstdint>
#include <vector>

#include "sweep.hpp"

namespace tapegrad {

namespace py = pybind11;

// Note [Recording sweep]
// The same walk as the numeric sweep (one loop from the top row down), with
// gradients that are Tensors (or constants, where nothing recorded feeds
// them) and each row's backward run through Rec or Recording (Note
// [Recording]). The backward's operations are recorded on the same tape,
// above the rows being swept, so the loop never meets them. The values a
// formula reads are Tensors standing on the rows that hold them
// (node_tensor), so the recorded backward is joined to the forward graph, and
// differentiating a gradient goes back through both. Grad mode is on while it
// runs, as in PyTorch. It is the slow path: one native op call per op of the
// backward.
class GraphSweep {
public:
    explicit GraphSweep(Tape& tape);
    ~GraphSweep();
    GraphSweep(const GraphSweep&) = delete;
    GraphSweep& operator=(const GraphSweep&) = delete;

    // Seeds `node` with `seed` (stolen: a float, an ndarray, or a Tensor whose
    // history then joins the gradients').
    bool seed(uint32_t node, PyObject* seed);
    // every_leaf: backward()'s sweep, whose sources are every leaf (check_stale).
    bool run(const std::vector<Source>& sources, bool every_leaf = false,
             const std::vector<uint8_t>* needed = nullptr);
    bool reached_node(uint32_t node) const { return node < reached.size() && reached[node]; }
    // The gradient of a reached source as a new Tensor (with history when it has one).
    PyObject* tensor_result(const Source& s);
    // backward(create_graph=True): adds each reached leaf's gradient into its
    // .grad, out of place (the sum is recorded), as PyTorch does.
    bool accumulate_leaf_grads();
    void free_traversed();

private:
    void elementwise_row(uint32_t row);
    void array_op_row(uint32_t row);
    void user_record(uint32_t row);
    void run_hooks(uint32_t row);
    bool outputs_reached(uint32_t row) const;
    bool check_row(uint32_t row) const;
    void add(uint32_t node, py::object g);
    py::object sum_to_node(py::object g, uint32_t node);
    py::object cast_to_node(py::object g, uint32_t node);
    py::object as_tensor(const py::object& g);
    py::tuple node_shape(uint32_t node) const;

    Tape& t;
    size_t top;  // rows at the start: those recorded by the sweep are not swept
    std::vector<py::object> grads;  // per row: the gradient so far, or null
    std::vector<uint8_t> reached, keep, hooks_ran;
    bool was_enabled, was_sweeping;
    const bool check_anomalies = t.anomaly_mode();  // Note [Anomaly mode]
    QuietNumpy quiet;
};

}  // namespace tapegrad
