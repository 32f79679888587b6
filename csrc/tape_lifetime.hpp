// How long the tape keeps its records: live counts, epochs and the
// thresholds of reclaiming and compaction.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <unordered_map>
#include <utility>
#include <vector>

#include "row_map.hpp"

namespace tapegrad {

// A fresh epoch id (process-wide, increasing, never reused).
uint64_t next_epoch();

// Note [Reclaiming records]
// live(row) counts the live recorded (non-leaf) tensors whose node is that
// row (saturating: a row with 255 pins the tape); live_total counts them
// all, live_freed those on rows a backward() has freed. When every live
// recorded tensor is on a freed row, or none is alive, no backward can use
// any record again: at the next safe point (the start of an op or of a
// gradient call, never during a sweep) the tape drops its records, keeping
// label numbering; leaves re-enter on their next use, tensors on freed
// rows keep their values and lose their (already freed) history. This is
// done only after a backward() or grad() freed something, or once the tape
// is large, and never while seed-style user records (which name tensors by
// label, and whose outputs are leaves) are on it, so such code keeps the
// seed's semantics until clear_history(). A Function's outputs are
// recorded tensors like any op's, so its records do not block reclaiming.
//
// Note [Compaction]
// Records stay alive while a live tensor can reach them; the whole-tape
// reset above only helps when no recorded tensor is alive, and a loop that
// keeps its last result (an evaluation loop outside no_grad) never gets
// there. So once the tape has grown to compact_at rows, compact() keeps
// the rows that live tensors (and the records of kept outputs) reach, in
// order, renumbered, and drops the rest with their values. Leaves the tape
// holds are renumbered in place. Other recorded tensors are not reachable
// from the tape, so the tape takes a new epoch and keeps, per old epoch,
// the new node of each row that had live tensors: find_node() rebinds a
// tensor of an old epoch when it is next used, and its deallocation finds
// its row through translate(). Constant leaves simply re-enter. The next
// compaction waits until the tape has doubled (in rows or in array bytes),
// so the work is amortised.
//
// Lifetime holds exactly this bookkeeping. Whether a row is freed is the
// row's F_FREED flag (the sweep reads it with the row), so the methods that
// depend on it are told; the tape (Tape::add_live, mark_freed) ties the two.
// Invariants: live_freed_ <= live_total_ = the sum of the unsaturated
// counts; the current epoch and every epoch in renamed_ are registered to
// this tape (tape_of_epoch), the old ones only for translate().
class Lifetime {
public:
    static constexpr size_t RECLAIM_ROWS = size_t(1) << 16;
    // The same for the array data the tape holds: an evaluation loop over large
    // arrays reaches this long before RECLAIM_ROWS.
    static constexpr size_t RECLAIM_BYTES = size_t(64) << 20;

    Lifetime() : epoch_(next_epoch()) {}

    // Tensors compare their stored epoch with the tape's to know whether their
    // node is still here.
    uint64_t epoch() const { return epoch_; }

    // Whether drop_live(node) has a count to drop (a row of this tape that a
    // counted tensor stands on, and not saturated).
    bool counts(uint32_t node) const {
        return node < live_.size() && live_[node] != 0 && live_[node] != UINT8_MAX;
    }
    bool has_live(uint32_t node) const { return live_[node] > 0; }
    // A gradient call ended (or failed) having freed what it traversed: the
    // records may be dropped once nothing live needs them.
    void note_freed() { freed_any_ = true; }

    // The cheap first test of Tape::maybe_reclaim: whether there may be
    // anything to do for a tape of `rows` rows holding `array_bytes`.
    bool may_reclaim(size_t rows, size_t array_bytes) const {
        return freed_any_ || rows >= compact_at_ || array_bytes >= compact_bytes_;
    }
    bool pinned() const { return pinned_; }
    // No backward can use any record again.
    bool all_dead() const { return live_total_ == live_freed_; }
    // Dropping every record is worth it.
    bool should_reset(size_t rows, size_t array_bytes) const {
        return freed_any_ || rows >= RECLAIM_ROWS || array_bytes >= RECLAIM_BYTES;
    }
    bool should_compact(size_t rows, size_t array_bytes) const {
        return rows >= compact_at_ || array_bytes >= compact_bytes_;
    }

    // The node of a tensor bound with (epoch, node) to this tape now, or UINT32_MAX.
    uint32_t translate(uint64_t tensor_epoch, uint32_t node) const {
        if (tensor_epoch == epoch_) return node;
        for (const auto& [old, moved] : renamed_) {
            if (old != tensor_epoch) continue;
            auto it = moved.find(node);
            return it == moved.end() ? UINT32_MAX : it->second;
        }
        return UINT32_MAX;
    }
    // Whether tensors of older epochs may still be rebound (translate()).
    bool renamed_any() const { return !renamed_.empty(); }
    // Every epoch registered to this tape (the current one last).
    std::vector<uint64_t> epochs() const;

    // For tests (tapegrad._core.tape_stats).
    size_t live_total() const { return live_total_; }
    size_t live_freed() const { return live_freed_; }
    bool freed_any() const { return freed_any_; }
    size_t compact_at() const { return compact_at_; }

private:
    // What changes the live counts or the epoch goes through the tape, which
    // keeps the rows in step (Tape::push, add_live, mark_freed, compact, reset).
    friend class Tape;

    // A new row, with no live tensor yet.
    void push_row() { live_.push_back(0); }
    // The first live tensor of a row just pushed: no checks needed.
    void add_live_new_row(uint32_t node) {
        live_[node] = 1;
        ++live_total_;
    }
    void add_live(uint32_t node, bool row_freed) {
        if (live_[node] == UINT8_MAX) {
            pinned_ = true;
            return;
        }
        ++live_[node];
        ++live_total_;
        if (row_freed) ++live_freed_;
    }
    void drop_live(uint32_t node, bool row_freed) {
        --live_[node];
        --live_total_;
        if (row_freed) --live_freed_;
    }
    // A backward() freed `row` (its F_FREED flag just set).
    void row_freed(uint32_t row) {
        live_freed_ += live_[row] == UINT8_MAX ? 0 : live_[row];
        freed_any_ = true;
    }
    // Whether keeping `kept` of `rows` rows gains too little (the array data
    // still below the threshold): then the next try waits until the tape doubles.
    bool compaction_gains_little(size_t kept, size_t rows, size_t array_bytes) {
        if (kept <= rows / 2 || array_bytes >= compact_bytes_) return false;
        compact_at_ = std::max(RECLAIM_ROWS, 2 * rows);
        return true;
    }
    // Note [Row map]: the live counts follow their rows; the current epoch
    // becomes an old one, with the new node of each row that had live
    // tensors, and a fresh epoch is taken. Returns the old epoch.
    uint64_t remap(const RowMap& map);
    // After a compaction: the next waits until the tape doubles (in rows, or
    // from the `array_bytes` it now holds).
    void compacted(size_t array_bytes) {
        compact_at_ = std::max(RECLAIM_ROWS, 2 * live_.size());
        compact_bytes_ = std::max(RECLAIM_BYTES, 2 * array_bytes);
    }
    // Forgets every row and old epoch, takes a fresh epoch.
    void clear();


    uint64_t epoch_;
    std::vector<uint8_t> live_;
    size_t live_total_ = 0, live_freed_ = 0;
    bool freed_any_ = false, pinned_ = false;
    size_t compact_at_ = RECLAIM_ROWS, compact_bytes_ = RECLAIM_BYTES;
    std::vector<std::pair<uint64_t, std::unordered_map<uint32_t, uint32_t>>> renamed_;
};

}  // namespace tapegrad
