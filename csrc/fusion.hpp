// Fused groups of a compiled tape: runs of elementwise rows that a replay
// computes as one loop over memory, forward and backward.
//
// Note [Fused rows]
// In `tanh(x * w + b) * exp(-x * x)` every row is elementwise over one shape
// and every value but the last is read only by the next rows. Row by row, each
// is a pass over memory that writes an array the next pass reads back, and the
// backward reads them again. When a trace finishes (Note [Compiled tapes]), it
// groups such rows instead:
//   - a group is a set of elementwise rows of one layout (shape and float
//     dtype) whose values, but that of its root (its highest row), are read by
//     rows of the group only: no other row, guard, hook, Function or the output
//     reads them;
//   - its operands from outside are arrays of its layout (rows or constants),
//     numbers and scalar rows; broadcasting operands end a group.
// The forward runs a group at its root's place, block by block (a block's
// values stay in cache): each row through numpy's own inner loop for the op,
// so the values are the eager op's, or the op's template where the eager op
// runs that. With gradients asked for, each block then runs the group's rows
// backward, seeded with 1 at the root, with the op tables' kernels. Every row
// is elementwise, so that gives d root / d operand element by element (the
// Jacobian's diagonal), summed per outside operand into one array: its
// partials. The sweep, reaching the root with gradient g, adds g * partials
// into each outside operand's gradient; the group's other rows are never
// reached. A group thus reads its inputs once and writes its root's value and
// one array per input that takes a gradient; nothing in between leaves the
// cache.
//
// Partials multiply the chain rule's factors in another order than an eager
// backward does (g * (d1 * d2) for (g * d1) * d2): equal up to rounding. Where
// the order could matter and where numpy would warn, the group runs row by row
// instead, exactly as the eager ops do: when a block raised a floating-point
// exception (division by zero, overflow, invalid, underflow: numpy's errstate
// and warnings then apply as eagerly, and no partial is a subnormal product),
// under detect_anomaly() (which checks each row's gradients), and when an
// outside array is not contiguous. One difference remains: where eager's
// (g * d1) overflows but g * (d1 * d2) does not, the fused gradient is the
// finite one, exact where eager's is inf (no flag is raised to notice it).
#pragma once

#include <pybind11/pybind11.h>

#include <cstdint>
#include <vector>

#include "arrays.hpp"
#include "tape.hpp"

namespace tapegrad {

namespace py = pybind11;

class NumericRows;

// An operand of a fused row.
struct FusedOperand {
    enum Kind : uint8_t { ABSENT, NUMBER, STEP, ROW, CONSTANT } kind = ABSENT;
    uint32_t index = 0;  // STEP: the step; ROW: the row; CONSTANT: the tape's array
    double number = 0.0;  // NUMBER
    int target = -1;      // ROW: its partials (every outside row takes some)
    bool array = false;   // ROW: an array of the group's layout, not a scalar row
};

struct FusedStep {
    uint32_t row = 0;
    uint8_t code = 0;
    FusedOperand a, b;  // b ABSENT for a unary op
    InnerLoop loop;     // numpy's, or none: the op's own template
    bool loop_unary = false;  // x ** 2 runs numpy's square: a only
};

struct FusedGroup {
    std::vector<FusedStep> steps;   // ascending rows; the root last
    std::vector<uint32_t> targets;  // the outside rows, one partials array each
    py::object layout;              // the rows' shape and dtype
    // This replay's: whether it ran fused, and its partials (null: not computed).
    bool fused = false;
    std::vector<PyObject*> partials;
};

class FusedGroups {
public:
    enum class Ran { FUSED, BY_ROWS, FAILED };

    FusedGroups() = default;
    FusedGroups(const FusedGroups&) = delete;
    FusedGroups& operator=(const FusedGroups&) = delete;
    ~FusedGroups();

    // Groups the rows `order` computes. read_outside[row]: the output, a
    // guard's operand or a hooked row (its value leaves the group).
    void plan(const RowStore& rows, const std::vector<uint32_t>& order, const std::vector<uint8_t>& read_outside);

    // The group whose root `row` is (-1: none); whether `row` is a group's
    // other row, which the forward leaves to its root.
    int group_at(uint32_t row) const { return row < root_of_.size() ? root_of_[row] : -1; }
    bool inside(uint32_t row) const { return row < member_.size() && member_[row] >= 0 && root_of_[row] < 0; }
    // The group `row` is a step of, root or not (-1: none).
    int group_of(uint32_t row) const { return row < member_.size() ? member_[row] : -1; }
    std::vector<size_t> sizes() const {
        std::vector<size_t> n;
        for (const FusedGroup& g : groups_) n.push_back(g.steps.size());
        return n;
    }
    const std::vector<FusedStep>& steps(int group) const { return groups_[static_cast<size_t>(group)].steps; }

    // Group `group`'s forward at its root's place, with partials for the
    // outside rows `needed` marks (null: every one; no partials without
    // `with_partials`). BY_ROWS: the caller computes its rows one by one.
    Ran run(Tape& tape, int group, bool may_fuse, bool with_partials, const std::vector<uint8_t>* needed);

    // The sweep's, at a root that ran fused: g * partials into the outside
    // rows' gradients. False with an error set.
    bool fused_root(uint32_t row) const {
        const int g = group_at(row);
        return g >= 0 && groups_[static_cast<size_t>(g)].fused;
    }
    bool backward(NumericRows& sweep, uint32_t row);
    // Whether a sweep may take the partials as its gradients (one sweep reads them).
    void set_hand_over(bool one_sweep) { hand_over_ = one_sweep; }

    // This replay's partials back to the pool.
    void release(BufferPool& pool);

private:
    template <class T>
    Ran run_blocks(Tape& tape, FusedGroup& group, PyObject* out, bool with_partials);

    std::vector<FusedGroup> groups_;
    std::vector<int> root_of_, member_;  // per row: the group it is the root of, a step of
    std::vector<double> scratch_;        // a block's values and adjoints
    bool hand_over_ = false;
};

}  // namespace tapegrad
