// The renumbering a compaction applies to every part of the tape.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace tapegrad {

// Note [Row map]
// A compaction (Note [Compaction]) keeps some rows, in order, and drops the
// rest. Each part of the tape renumbers itself from this map (its `remap`):
// a kept row's new id is the number of kept rows below it, so the map is one
// prefix count. Rows past the old end count as dropped.
class RowMap {
public:
    explicit RowMap(std::vector<uint8_t> keep) : keep_(std::move(keep)), below_(keep_.size() + 1, 0) {
        for (size_t r = 0; r < keep_.size(); ++r) below_[r + 1] = below_[r] + keep_[r];
    }
    size_t old_size() const { return keep_.size(); }
    uint32_t new_size() const { return below_.back(); }
    bool kept(size_t row) const { return row < keep_.size() && keep_[row]; }
    // The new id of a kept row.
    uint32_t operator[](size_t row) const { return below_[row]; }
    // The kept rows below `row` (any row, up to the old end): where a dropped
    // row would have stood, which keeps a sorted column sorted.
    uint32_t kept_below(size_t row) const { return below_[row < keep_.size() ? row : keep_.size()]; }

private:
    std::vector<uint8_t> keep_;
    std::vector<uint32_t> below_;
};

}  // namespace tapegrad
