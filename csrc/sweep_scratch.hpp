// The buffers a reverse sweep works in, kept by the tape between sweeps.
#pragma once

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <cstdint>
#include <vector>

namespace tapegrad {

// Note [Sweep scratch]
// A sweep needs a gradient and a mark per row, and a gradient buffer per
// array slot. The tape keeps one set between sweeps, so that a loop of
// backward() calls sweeps warm memory instead of allocating it afresh; it is
// a part of its own because it belongs to no row and outlives none: it is
// sized by the sweep that borrows it and holds nothing between sweeps but
// capacity (array_grad is empty then). Only one sweep at a time may use it:
// start_sweep() says whether one is running already (a user backward_fn or a
// hook that starts another), and such a nested sweep brings its own buffers.
// While any sweep runs, the tape may not be reclaimed, compacted or cleared
// (sweeping()): the sweep holds row numbers.
class SweepScratch {
public:
    SweepScratch() = default;
    SweepScratch(const SweepScratch&) = delete;
    SweepScratch& operator=(const SweepScratch&) = delete;

    bool sweeping() const { return sweeping_; }
    // A sweep starts; returns whether one was running already (then the
    // buffers are taken: the new sweep must use its own).
    bool start_sweep() {
        const bool was = sweeping_;
        sweeping_ = true;
        return was;
    }
    // The sweep that started when `was_sweeping` was the state ends.
    void end_sweep(bool was_sweeping) { sweeping_ = was_sweeping; }

    // The buffers, for the sweep whose start_sweep() returned false.
    std::vector<double>& grad() { return grad_; }
    std::vector<uint8_t>& reached() { return reached_; }
    std::vector<PyObject*>& array_grad() { return array_grad_; }  // owned, per arrays slot

    // The array gradients a sweep left (a reset of the tape gives them to the pool).
    std::vector<PyObject*> take_array_grads() {
        std::vector<PyObject*> grads;
        grads.swap(array_grad_);
        return grads;
    }

private:
    bool sweeping_ = false;
    std::vector<double> grad_;
    std::vector<uint8_t> reached_;
    std::vector<PyObject*> array_grad_;
};

}  // namespace tapegrad
