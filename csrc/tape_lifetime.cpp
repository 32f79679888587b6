#include "tape_lifetime.hpp"

#include <atomic>

namespace tapegrad {

uint64_t next_epoch() {
    static std::atomic<uint64_t> last{0};
    return ++last;
}

std::vector<uint64_t> Lifetime::epochs() const {
    std::vector<uint64_t> all;
    for (const auto& [old, moved] : renamed_) all.push_back(old);
    all.push_back(epoch_);
    return all;
}

uint64_t Lifetime::remap(const RowMap& map) {
    const size_t n = map.old_size();
    std::vector<uint8_t> live(map.new_size());
    std::unordered_map<uint32_t, uint32_t> moved;  // tensors of this epoch find their new rows
    for (size_t r = 0; r < n; ++r) {
        if (!map.kept(r)) continue;
        live[map[r]] = live_[r];
        if (live_[r]) moved[static_cast<uint32_t>(r)] = map[r];
    }
    live_.swap(live);
    for (auto& [old, table] : renamed_) {  // and those of earlier compactions
        std::unordered_map<uint32_t, uint32_t> next;
        for (const auto& [from, to] : table)
            if (map.kept(to)) next[from] = map[to];
        table.swap(next);
    }
    const uint64_t old_epoch = epoch_;
    renamed_.emplace_back(old_epoch, std::move(moved));
    epoch_ = next_epoch();
    return old_epoch;
}

void Lifetime::clear() {
    live_.clear();
    live_total_ = live_freed_ = 0;
    freed_any_ = pinned_ = false;
    renamed_.clear();
    compact_at_ = RECLAIM_ROWS;
    compact_bytes_ = RECLAIM_BYTES;
    epoch_ = next_epoch();
}

}  // namespace tapegrad
